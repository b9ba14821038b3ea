"""Pod sysctls (`spec.securityContext.sysctls`): which the pod may set, and where they live.

The API server checks names and duplicates, and forbids net.* with hostNetwork and the IPC ones
with hostIPC. The kubelet then admits only its safe set unless an admin allows more
(`--allowed-unsafe-sysctls`); sandbox allows every *namespaced* sysctl of a namespace the pod owns
(the node's admin is the one running `sandbox run`), and refuses the rest: a sysctl outside the
pod's network or IPC namespace would change the host.
"""

from __future__ import annotations

from sandbox.errors import FieldError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sandbox.spec.model import PodSpec

# kubelet pkg/kubelet/sysctl/namespace.go: the namespace each group of sysctls belongs to
_IPC_EXACT = ("kernel.sem",)
_IPC_PREFIXES = ("kernel.shm", "kernel.msg", "fs.mqueue.")
# validation.go SysctlContainSlashFmt: dots or slashes between segments, 253 characters at most
NAME = r"([a-z0-9]([-_a-z0-9]*[a-z0-9])?[./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?"
NAME_MAX = 253
NAME_RULE = ("must have at most 253 characters and match regex "
             "^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$")


def dotted(name: str) -> str:
    """The dotted form used for classification (`net/ipv4/tcp_syncookies` -> `net.ipv4.tcp_syncookies`)."""
    return name.replace("/", ".") if "/" in name else name


def namespace(name: str) -> str | None:
    """"net" or "ipc" for a namespaced sysctl, None for one of the whole node."""
    name = dotted(name)
    if name.startswith("net."):
        return "net"
    if name in _IPC_EXACT or name.startswith(_IPC_PREFIXES):
        return "ipc"
    return None


def proc_path(name: str) -> str:
    """The file under /proc/sys. With slashes the name is that path already, and its dots are part
    of a segment (`net/ipv4/conf/eth0.100/rp_filter`); otherwise dots separate segments."""
    return name if "/" in name else name.replace(".", "/")


def check(spec: PodSpec, path: str) -> list[FieldError]:
    """`path` is the pod securityContext's (`spec.securityContext`): every problem of its sysctls."""
    import re

    sc = spec.security_context
    errors: list[FieldError] = []
    seen: set[str] = set()
    for i, item in enumerate(sc.sysctls if sc is not None else ()):
        name, where = str(item.get("name") or ""), f"{path}.sysctls[{i}].name"
        q = f'"{name}"'
        if not name:
            errors.append(FieldError(where, "Required value"))
            continue
        if len(name) > NAME_MAX or not re.fullmatch(NAME, name):
            errors.append(FieldError(where, f"Invalid value: {q}: {NAME_RULE}"))
            continue
        if name in seen:
            errors.append(FieldError(where, f"Duplicate value: {q}"))
        seen.add(name)
        owner = namespace(name)
        if owner == "net" and spec.host_network:
            errors.append(FieldError(where, f"Invalid value: {q}: may not be specified when 'hostNetwork' is true"))
        elif owner == "ipc" and spec.host_ipc:
            errors.append(FieldError(where, f"Invalid value: {q}: may not be specified when 'hostIPC' is true"))
        elif owner is None:
            errors.append(FieldError(where, f"Forbidden: {q} is not a namespaced sysctl (net.*, kernel.shm*, "
                                            "kernel.msg*, kernel.sem, fs.mqueue.*): setting it would change the host"))
    return errors
