"""The only importer of `sandbox._native` (the cffi core): typed requests in, errors out.

Strings are encoded and arrays NULL-terminated here, before the call, and every `ffi.new` object
is kept alive in `_Keep` until the native call returns: after the fork the child may not allocate
or call back into Python.
"""

from __future__ import annotations

import os

from sandbox._native import ffi, lib
from sandbox.errors import ContainerStartError
from sandbox.record import field, record
from sandbox.rootfs.plan import MountOp

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

@record(frozen=False)
class SpawnRequest:
    argv: list[str]
    env: list[str]  # "NAME=value"
    join_pidfd: int = -1
    join_ns: int = 0
    new_ns: int = 0
    hostname: str | None = None
    loopback_up: bool = False
    ops: list[MountOp] = field(default_factory=list)
    pivot: bool = False
    readonly_root: bool = False
    exec_fd: int = -1
    cwd: str | None = None
    stdio: tuple[int, int, int] = (-1, -1, -1)
    oom_score_adj: int | None = None
    uid: int = -1
    gid: int = -1
    no_new_privs: bool = False
    caps: int | None = None  # keep only these capabilities (bit n = capability n); None: unchanged
    new_session: bool = True
    pdeathsig: int = 9  # SIGKILL: nothing outlives a crashed runtime
    pod_mount: str | None = None
    stage_name: str = "sbx"


class _Keep:
    """Holds every cdata object referenced by the request until the call returns."""

    def __init__(self) -> None:
        self.items: list[Any] = []

    def cstr(self, value: str | None) -> Any:
        if value is None:
            return ffi.NULL
        item = ffi.new("char[]", os.fsencode(value))
        self.items.append(item)
        return item

    def cstrv(self, values: list[str]) -> Any:
        strings = [self.cstr(v) for v in values]
        array = ffi.new("char *[]", [*strings, ffi.NULL])
        self.items.append(array)
        return array


def _build(req: SpawnRequest, keep: _Keep) -> Any:
    c = ffi.new("struct sbx_spawn_req *")
    keep.items.append(c)
    c.join_pidfd, c.join_ns, c.new_ns = req.join_pidfd, req.join_ns, req.new_ns
    c.hostname = keep.cstr(req.hostname)
    c.loopback_up = int(req.loopback_up)
    ops = ffi.new("struct sbx_mount_op[]", max(len(req.ops), 1))
    keep.items.append(ops)
    for i, op in enumerate(req.ops):
        ops[i].kind = int(op.kind)
        ops[i].source = keep.cstr(op.source or None)
        ops[i].target = keep.cstr(op.target)
        ops[i].fstype = keep.cstr(op.fstype or None)
        ops[i].flags = op.flags
        ops[i].data = keep.cstr(op.data or None)
    c.ops, c.n_ops = ops, len(req.ops)
    c.pivot, c.readonly_root, c.exec_fd = int(req.pivot), int(req.readonly_root), req.exec_fd
    c.argv, c.envp = keep.cstrv(req.argv), keep.cstrv(req.env)
    c.cwd = keep.cstr(req.cwd)
    c.stdio = list(req.stdio)
    c.set_oom_score_adj = int(req.oom_score_adj is not None)
    c.oom_score_adj = req.oom_score_adj or 0
    c.uid, c.gid, c.no_new_privs = req.uid, req.gid, int(req.no_new_privs)
    c.set_caps, c.caps = int(req.caps is not None), req.caps or 0
    c.new_session, c.pdeathsig = int(req.new_session), req.pdeathsig
    c.pod_mount = keep.cstr(req.pod_mount)
    c.stage_name = keep.cstr(req.stage_name)
    return c


def _error(err: Any) -> ContainerStartError:
    stage = int(err.stage)
    reason = "ContainerCannotRun" if stage == lib.SBX_STAGE_EXEC else "CreateContainerError"
    op = ffi.string(err.op).decode(errors="replace")
    path = ffi.string(err.path).decode(errors="replace")
    return ContainerStartError(reason, op, int(err.err), path)


@record(frozen=False)
class Started:
    """Stage 2 exists and waits for `finish()`; `pid` is the caller's own child."""

    pid: int
    _res: Any
    _keep: _Keep

    def finish(self) -> None:
        """Let stage 2 set up and exec; raises ContainerStartError if it could not.

        On failure the caller still owns (and must reap) `pid`, which exits with status 127.
        """
        rc = lib.sbx_spawn_finish(self._res)
        self._keep.items.clear()
        if rc < 0:
            raise _error(self._res.err)


def spawn_start(req: SpawnRequest) -> Started:
    """Fork and clone up to the point where stage 2 waits; raises ContainerStartError."""
    keep = _Keep()
    c = _build(req, keep)
    res = ffi.new("struct sbx_spawn_res *")
    if lib.sbx_spawn_start(c, res) < 0:
        raise _error(res.err)
    return Started(int(res.pid), res, keep)


def spawn(req: SpawnRequest) -> int:
    """Start and finish in one go; returns the pid of the exec'd process."""
    started = spawn_start(req)
    try:
        started.finish()
    except ContainerStartError:
        os.waitpid(started.pid, 0)
        raise
    return started.pid
