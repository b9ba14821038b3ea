"""Where `sandbox` keeps things on disk.

Defaults follow the kubelet and containerd: images and container layers under /var/lib/sandbox,
live state under /run/sandbox, logs under /var/log/pods. One option (`--root` or the environment
variable SANDBOX_ROOT) moves all three under one directory so tests can isolate themselves.

Every path built from a name goes through `RootLayout.under`, which re-checks that the result stays
below its base (names are validated before they get here; this is the second line, as runc's
validateID is).
"""

from __future__ import annotations

import os

from sandbox.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

NAME_MAX = 255  # bytes in one file name (ext4, xfs, tmpfs): `<namespace>_<name>[_<uid>]` must fit
UID_LENGTH = 36  # a pod UID as text
# The pod's log directory, the kubelet's `<namespace>_<name>_<uid>`, is the longest file name a
# pod's names make: together they may have at most this many bytes (217; kubernetes issue 104288)
POD_NAMES_MAX = NAME_MAX - UID_LENGTH - 2
ROOT_ENV = "SANDBOX_ROOT"
DEFAULT_RUN = "/run/sandbox"


class RootLayout(Record):
    lib: Path  # images and per-container writable layers
    run: Path  # live state: one directory per pod, removed when the pod ends
    logs: Path  # CRI log files; they stay after the pod ends

    @classmethod
    def from_root(cls, root: str | os.PathLike[str] | None = None) -> RootLayout:
        """`root` (or $SANDBOX_ROOT) moves everything under it; unset means the system paths."""
        # pathlib is imported here, not at the top: `sandbox exec` reads its pod's state through
        # pod_state_file and never loads it (`import pathlib` 3.2 ms: urllib.parse, ipaddress).
        from pathlib import Path

        base = _base(root)
        if base is None:
            return cls(Path("/var/lib/sandbox"), Path(DEFAULT_RUN), Path("/var/log/pods"))
        return cls(Path(base, "lib"), Path(run_dir(root)), Path(base, "log", "pods"))

    @property
    def images(self) -> Path:
        return self.lib / "images"

    @property
    def containers(self) -> Path:
        return self.lib / "containers"

    @property
    def pods(self) -> Path:
        return self.run / "pods"

    def pod_state_dir(self, namespace: str, name: str) -> Path:
        return under(self.pods, f"{namespace}_{name}")

    def pod_log_dir(self, namespace: str, name: str, uid: str) -> Path:
        return under(self.logs, f"{namespace}_{name}_{uid}")


def under(base: Path, *parts: str) -> Path:
    """Join `parts` below `base`, refusing anything that would leave it."""
    for part in parts:
        _check_part(base, part)
    return base.joinpath(*parts)


def run_dir(root: str | os.PathLike[str] | None) -> str:
    """`RootLayout.from_root(root).run` as a plain string, built without pathlib: `sandbox exec`
    and `run -d` need only this directory."""
    base = _base(root)
    return DEFAULT_RUN if base is None else os.path.join(base, "run")


def pod_names_fit(namespace: str, name: str) -> bool:
    """Whether a pod of these names can exist here: `sandbox run` refuses one whose log directory
    would be no file name, and the CLI finds no such pod without looking."""
    return len(namespace.encode()) + len(name.encode()) <= POD_NAMES_MAX


def pod_state_file(root: str | None, namespace: str, name: str) -> str:
    """`RootLayout.from_root(root).pod_state_dir(namespace, name) / "state.json"` as a plain
    string, built without pathlib: the one path `sandbox exec` needs. The same file (os.getcwd()
    joined as Path.absolute() joins it; the kernel reads "." and "//" as Path writes them)."""
    pods = os.path.join(run_dir(root), "pods")
    part = f"{namespace}_{name}"
    _check_part(pods, part)
    return os.path.join(pods, part, "state.json")


def _base(root: str | os.PathLike[str] | None) -> str | None:
    """`root` (or $SANDBOX_ROOT) made absolute as Path.absolute() does (joined to the working
    directory, nothing resolved); None: the system paths."""
    chosen = root if root is not None else os.environ.get(ROOT_ENV) or None
    return None if chosen is None else os.path.join(os.getcwd(), chosen)


def _check_part(base: object, part: str) -> None:
    if not part or part in (".", "..") or "/" in part or "\0" in part:
        raise ValueError(f"unsafe path component {part!r} below {base}")
