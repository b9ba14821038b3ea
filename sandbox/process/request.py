"""The spawn request: what crosses into the native core, as one frozen record.

Pure data (no cffi), so the spec-to-request conversion (process/launch.py, the runtime's specconv)
is unit-tested without a build. Requests are built in one place each and never edited after:
sandbox/native.py only encodes them for C.
"""

from __future__ import annotations

import os

from sandbox.process.capabilities import DEFAULT_MASK as DEFAULT_CAPS  # containerd's 14
from sandbox.record import Record

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from sandbox.rootfs.plan import MountOp

# <sched.h>
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
# what `sandbox exec`, exec probes and hooks join (runc's exec joins the cgroup namespace too)
ALL_NAMESPACES = CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWCGROUP


class SpawnRequest(Record):
    argv: Sequence[str]
    env: Sequence[str]  # "NAME=value"
    join_pidfd: int = -1
    join_ns: int = 0
    # unshare()d by stage 1; CLONE_NEWCGROUP is unshared by stage 2 after the runtime's parent-side
    # steps, so the namespace's root is the cgroup the container was placed in (runc does the same).
    new_ns: int = 0
    hostname: str | None = None
    loopback_up: bool = False
    # (path under /proc/sys, value), written by stage 1 after it unshared net/ipc: the pod's sysctls
    sysctls: tuple[tuple[str, str], ...] = ()
    ops: Sequence[MountOp] = ()
    pivot: bool = False
    readonly_root: bool = False
    exec_fd: int = -1
    cwd: str | None = None
    stdio: tuple[int, int, int] = (-1, -1, -1)
    oom_score_adj: int | None = None
    uid: int = -1  # -1 keeps root
    gid: int = -1  # -1 keeps root's groups; otherwise the supplementary groups become `groups`
    groups: tuple[int, ...] = ()
    no_new_privs: bool = False
    caps: int | None = None  # keep only these capabilities (bit n = capability n); None: unchanged
    seccomp_bpf: bytes | None = None  # a struct sock_filter array, loaded last before execve
    new_session: bool = True
    pdeathsig: int = 9  # SIGKILL: nothing outlives a crashed runtime
    pod_mount: str | None = None
    stage_name: str = "sbx"
    # cgroup directories (one per v1 hierarchy) the process is in before any of the container's
    # code runs: stage 2 moves itself right after "go" through `cgroup_root_fd` (spawner.py)
    cgroups: tuple[str, ...] = ()
    cgroup_root: str = ""  # set by the spawner: a directory above every entry of `cgroups` ...
    cgroup_root_fd: int = -1  # ... opened O_PATH, which stage 2 resolves them beneath
    # the cgroup2 directory stage 2 is born in (clone3 CLONE_INTO_CGROUP); the spawner opens it
    cgroup2: str | None = None
    cgroup_fd: int = -1  # set by the spawner from `cgroup2`, not by callers


class Identity(Record):
    """Who a container's processes run as: the main process, `sandbox exec`, exec probes, hooks."""

    uid: int = 0
    gid: int = 0
    groups: tuple[int, ...] = ()
    caps: int = DEFAULT_CAPS
    no_new_privs: bool = True
    privileged: bool = False
    seccomp: str | None = None  # the compiled seccomp filter (sandbox/security/seccomp.py); None: none
    # The user's home in the image's /etc/passwd ("/" without an entry): the HOME a container's
    # environment gets when it has none (launch.with_home). Not in to_json: the environment
    # itself is in the state, for exec.
    home: str = "/"

    def request_fields(self, seccomp_bpf: bytes | None = None) -> dict[str, Any]:
        """The SpawnRequest fields of this identity (a privileged process loads no filter). The
        filter is read from `seccomp` unless given; a missing file fails the spawn (never runs
        a process unfiltered)."""
        if seccomp_bpf is None and self.seccomp is not None:
            from sandbox.security.filterfile import read_filter

            seccomp_bpf = read_filter(self.seccomp)
        return {"uid": self.uid, "gid": self.gid, "groups": self.groups, "caps": self.caps,
                "no_new_privs": self.no_new_privs, "seccomp_bpf": None if self.privileged else seccomp_bpf}

    def to_json(self) -> dict[str, Any]:
        return {"uid": self.uid, "gid": self.gid, "groups": list(self.groups), "caps": self.caps,
                "noNewPrivs": self.no_new_privs, "privileged": self.privileged, "seccomp": self.seccomp}

    @classmethod
    def from_json(cls, data: Any) -> Identity:
        """What a pod's state recorded; a record without one (an older runtime's) gets the default."""
        if not isinstance(data, dict):
            return cls()
        return cls(int(data.get("uid", 0)), int(data.get("gid", 0)), tuple(int(g) for g in data.get("groups", ())),
                   int(data.get("caps", DEFAULT_CAPS)), bool(data.get("noNewPrivs", True)),
                   bool(data.get("privileged", False)),
                   str(data["seccomp"]) if data.get("seccomp") is not None else None)


def join_paths(req: SpawnRequest) -> list[str]:
    """The v1 cgroup directories stage 2 joins, relative to `req.cgroup_root` (its fd's path)."""
    base = req.cgroup_root.rstrip("/") + "/"
    for path in req.cgroups:
        if not path.startswith(base) and path != req.cgroup_root:
            raise ValueError(f"cgroup {path} is not beneath {req.cgroup_root}")
    return [path[len(base):] or "." for path in req.cgroups]


def membership(paths: Mapping[str, object] | None) -> dict[str, Any]:
    """The SpawnRequest fields that start a process in the cgroup whose directories are `paths`
    (hierarchy key -> directory, "unified" for cgroup2, as Cgroup.paths and the pod record hold
    them): the cgroup2 one joined at birth (CLONE_INTO_CGROUP), the v1 ones by stage 2 itself."""
    if not paths:
        return {}
    v1 = sorted({os.fspath(p) for key, p in paths.items() if key != "unified" and isinstance(p, (str, os.PathLike))})
    unified = paths.get("unified")
    return {"cgroups": tuple(v1), "cgroup2": os.fspath(unified) if isinstance(unified, (str, os.PathLike)) else None}
