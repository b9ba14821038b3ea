"""securityContext to the seccomp filter a container's processes load (security-reliability.md
1.7): which profile applies, then one call into the compiler (sandbox/security/seccomp.py).
no_new_privs is part of the container's identity (process/launch.py).

Stricter than the kubelet, on purpose: a container with no seccompProfile at either level gets
RuntimeDefault; the kubelet's default is Unconfined unless it runs with `seccompDefault: true`.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

    from sandbox.spec.model import Container, Pod

RUNTIME_DEFAULT, UNCONFINED = "RuntimeDefault", "Unconfined"


def seccomp_profile(pod: Pod, container: Container) -> tuple[str, str | None]:
    """(type, localhostProfile): the container's seccompProfile over the pod's, RuntimeDefault
    when neither is set; a privileged container runs Unconfined whatever it asks (containerd's
    CRI plugin generates no seccomp section for it)."""
    sc = container.security_context
    if sc is not None and sc.privileged:
        return UNCONFINED, None
    profile = sc.seccomp_profile if sc is not None else None
    if profile is None and pod.spec.security_context is not None:
        profile = pod.spec.security_context.seccomp_profile
    if profile is None or not profile.type:
        return RUNTIME_DEFAULT, None
    return profile.type, profile.localhost_profile


def profiles_root(lib: Path) -> Path:
    """Where Localhost profiles live: the runtime's `<lib>/seccomp`, as the kubelet's
    `<root-dir>/seccomp` (/var/lib/kubelet/seccomp)."""
    return lib / "seccomp"


def seccomp_cache(lib: Path) -> Path:
    return lib / "cache" / "seccomp"


def seccomp_filter(pod: Pod, container: Container, caps: int, lib: Path) -> str | None:
    """The compiled filter (a file of the seccomp cache) the container's processes load before
    execve; None: no filter. Raises ContainerStartError (CreateContainerError) for a Localhost
    profile it cannot load."""
    from sandbox.security import seccomp

    kind, localhost = seccomp_profile(pod, container)
    if kind == UNCONFINED:
        return None
    path = seccomp.filter_file_for(kind, localhost, caps, profiles_root(lib), seccomp_cache(lib))
    return None if path is None else str(path)
