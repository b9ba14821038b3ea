"""The only importer of `sandbox._native` (the cffi core): typed requests in, errors out.

Strings are encoded and arrays NULL-terminated here, before the call, and every `ffi.new` object
is kept alive in `_Keep` until the native call returns: after the fork the child may not allocate
or call back into Python.
"""

from __future__ import annotations

import errno
import os
import sys
import time

from sandbox._native import ffi, lib
from sandbox.errors import ContainerStartError, spawn_failure
from sandbox.process.request import CLONE_NEWCGROUP as CLONE_NEWCGROUP  # re-exported, as the rest
from sandbox.process.request import CLONE_NEWIPC as CLONE_NEWIPC
from sandbox.process.request import CLONE_NEWNET as CLONE_NEWNET
from sandbox.process.request import CLONE_NEWNS as CLONE_NEWNS
from sandbox.process.request import CLONE_NEWPID as CLONE_NEWPID
from sandbox.process.request import CLONE_NEWUTS as CLONE_NEWUTS
from sandbox.process.request import SpawnRequest as SpawnRequest
from sandbox.process.request import join_paths
from sandbox.record import Record

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from sandbox.trace import Tracer

SPAWN_TIMEOUT = lib.SBX_SPAWN_TIMEOUT_MS / 1000  # seconds stage 2 gets to set up and exec
_DEADLINE_OP = b"spawn deadline (stage 2)"  # sbx_spawn_finish()'s op when it killed stage 2

class _Keep:
    """Holds every cdata object referenced by the request until the call returns."""

    def __init__(self) -> None:
        self.items: list[Any] = []

    def cstr(self, value: str | None, what: str) -> Any:
        """A C string; a NUL inside would silently cut it there, so it is refused, with `what`."""
        if value is None:
            return ffi.NULL
        data = os.fsencode(value)
        if b"\0" in data:
            raise ContainerStartError("CreateContainerError", f"{what} contains a NUL byte", errno.EINVAL,
                                      value.replace("\0", "\\0")[:100])
        item = ffi.new("char[]", data)
        self.items.append(item)
        return item

    def cstrv(self, values: Sequence[str], what: str) -> Any:
        strings = [self.cstr(v, f"{what}[{i}]") for i, v in enumerate(values)]
        array = ffi.new("char *[]", [*strings, ffi.NULL])
        self.items.append(array)
        return array


def _build(req: SpawnRequest, keep: _Keep) -> Any:
    c = ffi.new("struct sbx_spawn_req *")
    keep.items.append(c)
    c.join_pidfd, c.join_ns, c.new_ns = req.join_pidfd, req.join_ns, req.new_ns
    c.hostname = keep.cstr(req.hostname, "hostname")
    c.loopback_up = int(req.loopback_up)
    c.sysctls = keep.cstrv([text for pair in req.sysctls for text in pair], "sysctls")
    ops = ffi.new("struct sbx_mount_op[]", max(len(req.ops), 1))
    keep.items.append(ops)
    for i, op in enumerate(req.ops):
        what = f"mount {op.target}"
        ops[i].kind = int(op.kind)
        ops[i].source = keep.cstr(op.source or None, what)
        ops[i].target = keep.cstr(op.target, what)
        ops[i].fstype = keep.cstr(op.fstype or None, what)
        ops[i].flags = op.flags
        ops[i].data = keep.cstr(op.data or None, what)
    c.ops, c.n_ops = ops, len(req.ops)
    c.pivot, c.readonly_root, c.exec_fd = int(req.pivot), int(req.readonly_root), req.exec_fd
    c.argv, c.envp = keep.cstrv(req.argv, "command"), keep.cstrv(req.env, "env")
    c.cwd = keep.cstr(req.cwd, "workingDir")
    c.stdio = list(req.stdio)
    c.set_oom_score_adj = int(req.oom_score_adj is not None)
    c.oom_score_adj = req.oom_score_adj or 0
    c.uid, c.gid, c.no_new_privs = req.uid, req.gid, int(req.no_new_privs)
    groups = ffi.new("unsigned int[]", list(req.groups) or [0])
    keep.items.append(groups)
    c.groups, c.n_groups = groups, len(req.groups)
    c.set_caps, c.caps = int(req.caps is not None), req.caps or 0
    if req.seccomp_bpf is not None:
        if not req.seccomp_bpf or len(req.seccomp_bpf) % 8:
            raise ValueError(f"seccomp filter of {len(req.seccomp_bpf)} bytes is not a struct sock_filter array")
        bpf = ffi.from_buffer(req.seccomp_bpf)
        keep.items.append(bpf)
        c.seccomp_filter, c.seccomp_len = bpf, len(req.seccomp_bpf) // 8
    c.new_session, c.pdeathsig = int(req.new_session), req.pdeathsig
    c.pod_mount = keep.cstr(req.pod_mount, "pod mount")
    c.stage_name = keep.cstr(req.stage_name, "stage name")
    c.cgroup_fd = req.cgroup_fd
    c.cgroup_root_fd = req.cgroup_root_fd
    c.join_cgroups = keep.cstrv(join_paths(req), "cgroups") if req.cgroup_root_fd >= 0 else ffi.NULL
    return c


def address_of(data: bytes) -> tuple[Any, int]:
    """The address of `data`'s bytes as a syscall argument wants it (a sock_fprog's pointer), and
    the object that keeps it valid: hold it until the call returns."""
    buffer = ffi.from_buffer(data)
    return buffer, int(ffi.cast("uintptr_t", buffer))


def _error(err: Any) -> ContainerStartError:
    return spawn_failure(int(err.stage) == lib.SBX_STAGE_EXEC, ffi.string(err.op).decode(errors="replace"),
                         int(err.err), ffi.string(err.path).decode(errors="replace"))


class Started(Record, frozen=False):
    """Stage 2 exists and waits for `finish()`; `pid` is the caller's own child."""

    pid: int
    _res: Any
    _keep: _Keep

    def finish(self, timeout: float = SPAWN_TIMEOUT) -> None:
        """Let stage 2 set up and exec; raises ContainerStartError if it could not, or if it has
        not exec'd within `timeout` seconds (then it is killed).

        On failure the caller still owns (and must reap) `pid`, which exits with status 127 (or is
        killed). A signal interrupts the wait: its Python handler runs (Ctrl-C raises
        KeyboardInterrupt here), then the wait goes on until the same deadline.
        """
        deadline = time.monotonic() + timeout
        try:
            while True:
                left_ms = max(0, int((deadline - time.monotonic()) * 1000))
                rc = lib.sbx_spawn_finish(self._res, left_ms)
                if rc == 0 or self._res.chan < 0:
                    break
        except BaseException:  # a signal handler raised between two waits
            os.close(self._res.chan)
            self._res.chan = -1
            raise
        self._keep.items.clear()
        if rc < 0:
            if ffi.string(self._res.err.op) == _DEADLINE_OP:
                raise ContainerStartError("CreateContainerError", f"timed out after {timeout:g}s waiting for "
                                          "the container's set-up (stage 2)", errno.ETIMEDOUT, "")
            raise _error(self._res.err)

    def release(self) -> None:
        """Let stage 2 set up and exec now; `finish()` then only waits for the outcome. Sends the
        "go" sbx_spawn_finish would send (it sees `released` and does not send it again)."""
        if self._res.released or self._res.chan < 0:
            return
        try:
            os.write(self._res.chan, b"G")
        except OSError:
            pass  # stage 2 is gone already: finish() reads its record, if it left one
        self._res.released = 1

    def discard(self) -> None:
        """Close the spawn channel without releasing stage 2 (it reads EOF and exits 127)."""
        if self._res.chan >= 0:
            os.close(self._res.chan)
            self._res.chan = -1


def started_from_channel(pid: int, chan: int, req: SpawnRequest | None = None) -> Started:
    """A stage 2 that another process started (the shim), its spawn channel `chan` received over a
    socket: `finish()` releases it exactly as after `spawn_start`. The Started owns `chan`. `req`:
    the request it runs, which words its trace records while tracing (dropped without it)."""
    res = ffi.new("struct sbx_spawn_res *")
    res.pid, res.chan = pid, chan
    keep = _Keep()
    tracer = _tracer()
    if tracer is not None and req is not None:
        _receive_trace(tracer, req, res, keep)
    return Started(pid, res, keep)


def _tracer() -> Tracer | None:
    """The active --trace tracer. sandbox/trace.py is loaded only by --trace: when it is off, this
    is one dictionary lookup, and nothing of the trace machinery is imported."""
    if "sandbox.trace" not in sys.modules:
        return None
    from sandbox import trace

    return trace.active


def _receive_trace(tracer: Tracer, req: SpawnRequest, res: Any, keep: _Keep) -> None:
    """Hand the stages' trace records of this spawn to the active tracer as they are read."""
    from sandbox import trace

    global _callback_defined
    if not _callback_defined:
        ffi.def_extern(name="sbx_py_trace")(_on_trace)
        _callback_defined = True
    handle = ffi.new_handle(trace.SpawnTrace(tracer, req, trace.spawn_label(req)))
    keep.items.append(handle)
    res.on_trace, res.trace_ctx = lib.sbx_py_trace, handle


_callback_defined = False


def trace_recorder(req: SpawnRequest) -> Any:
    """While tracing: a function taking one raw struct sbx_trace (as the shim forwards stage 1's
    records) and wording it with `req`; None otherwise."""
    tracer = _tracer()
    if tracer is None:
        return None
    from sandbox import trace

    spawn = trace.SpawnTrace(tracer, req, trace.spawn_label(req))

    def record(raw: bytes) -> None:
        rec = ffi.new("struct sbx_trace *")
        ffi.memmove(rec, raw, min(len(raw), ffi.sizeof("struct sbx_trace")))
        step = ffi.string(ffi.cast("enum sbx_trace_step", rec.step))
        spawn.record(int(rec.stage), str(step).removeprefix("SBX_TRACE_"), int(rec.a), int(rec.b),
                     ffi.string(rec.text).decode(errors="replace"))

    return record


def _on_trace(ctx: Any, rec: Any) -> None:
    """sbx_py_trace: called by sbx_spawn_start/finish in this process (never after a fork)."""
    step = ffi.string(ffi.cast("enum sbx_trace_step", rec.step))
    ffi.from_handle(ctx).record(int(rec.stage), str(step).removeprefix("SBX_TRACE_"), int(rec.a), int(rec.b),
                                ffi.string(rec.text).decode(errors="replace"))


def spawn_start(req: SpawnRequest, helper: str | None = None) -> Started:
    """Stage 1 and 2 up to the point where stage 2 waits; raises ContainerStartError. Stage 1
    is a fork of this process, or with `helper` (stage1_helper()) that program, exec'd:
    sbx_spawn_start_exec in native/sbx.h says why."""
    keep = _Keep()
    res = ffi.new("struct sbx_spawn_res *")
    tracer = _tracer()
    if tracer is not None:
        _receive_trace(tracer, req, res, keep)
    if helper is not None:
        from sandbox.fdio import write_all
        from sandbox.process.shimproto import pack_request

        data, fds = pack_request(req, trace=tracer is not None)
        memfd = os.memfd_create("sbx-spawn-request", os.MFD_CLOEXEC)
        try:
            write_all(memfd, data)
            rc = lib.sbx_spawn_start_exec(os.fsencode(helper), memfd, fds, len(fds), res)
        finally:
            os.close(memfd)
    else:
        c = _build(req, keep)
        c.trace = int(tracer is not None)
        rc = lib.sbx_spawn_start(c, res)
    if rc < 0:
        raise _error(res.err)
    return Started(int(res.pid), res, keep)


def stage1_helper() -> str | None:
    """The shim binary, which runs a spawn's stage 1 as `shim --stage1` (None: not built)."""
    global _helper
    if _helper is None:
        import sandbox

        path = os.path.join(os.path.dirname(sandbox.__file__), "_bin", "shim")
        _helper = path if os.access(path, os.X_OK) else ""
    return _helper or None


_helper: str | None = None


def spawn(req: SpawnRequest) -> int:
    """Start and finish in one go; returns the pid of the exec'd process."""
    started = spawn_start(req)
    try:
        started.finish()
    except ContainerStartError:
        os.waitpid(started.pid, 0)
        raise
    return started.pid


def socket_in_netns(pidfd: int, family: int, type_: int) -> int:
    """A socket fd created in the network namespace of the process `pidfd` names (netns.c); raises
    OSError(errno, op) when it could not be."""
    err = ffi.new("struct sbx_err *")
    fd = lib.sbx_socket_in_netns(pidfd, family, type_, 0, err)
    if fd < 0:
        raise OSError(int(err.err), ffi.string(err.op).decode(errors="replace"))
    return int(fd)


def mount_tmpfs(target: str, flags: int, data: str) -> None:
    """A tmpfs of the runtime's own at the directory `target` (not followed if a symlink)."""
    err = ffi.new("struct sbx_err *")
    if lib.sbx_mount_tmpfs(os.fsencode(target), flags, os.fsencode(data), err) < 0:
        raise OSError(int(err.err), f"{ffi.string(err.op).decode()}: {os.strerror(int(err.err))}", target)


def umount(target: str) -> None:
    """Detach the mount at `target` (MNT_DETACH); OSError (EINVAL: not a mount point) otherwise."""
    err = ffi.new("struct sbx_err *")
    if lib.sbx_umount(os.fsencode(target), err) < 0:
        raise OSError(int(err.err), f"{ffi.string(err.op).decode()}: {os.strerror(int(err.err))}", target)


def rename_exchange(source: str, target: str) -> None:
    """Swap the names `source` and `target` atomically (renameat2 RENAME_EXCHANGE); OSError
    (ENOENT when either is missing)."""
    err = ffi.new("struct sbx_err *")
    if lib.sbx_rename_exchange(os.fsencode(source), os.fsencode(target), err) < 0:
        raise OSError(int(err.err), f"{ffi.string(err.op).decode()}: {os.strerror(int(err.err))}", target)


# <sys/file.h>'s flock operations, as the fcntl module names them
LOCK_SH, LOCK_EX, LOCK_NB, LOCK_UN = 1, 2, 4, 8


def flock(fd: int, operation: int) -> None:
    """fcntl.flock without the fcntl module (one shared library less for `sandbox run` to load,
    ~0.25 ms, -X importtime on this VM); raises the same OSError (BlockingIOError when a
    LOCK_NB lock is held elsewhere)."""
    err = ffi.new("struct sbx_err *")
    if lib.sbx_flock(fd, operation, err) < 0:
        raise OSError(int(err.err), os.strerror(int(err.err)))


def add_inode_flags(fd: int, flags: int) -> None:
    """Add the inode flags `flags` (FS_IOC_GETFLAGS/SETFLAGS) to the open file `fd` where
    missing; OSError (ENOTTY, EOPNOTSUPP: a filesystem without them) otherwise."""
    err = ffi.new("struct sbx_err *")
    if lib.sbx_add_inode_flags(fd, flags, err) < 0:
        raise OSError(int(err.err), f"{ffi.string(err.op).decode()}: {os.strerror(int(err.err))}")


def device_filter_attach(cgroup_fd: int, rules: Sequence[tuple[str, int, int, str, bool]]) -> None:
    """Attach an eBPF device program built from `rules` (type, major, minor, access, allow; -1 =
    any) to the cgroup2 directory `cgroup_fd` (devices.c: the last matching rule decides, no match
    denies). OSError(errno, op) when it could not be loaded or attached."""
    if len(rules) > lib.SBX_DEVICE_RULES_MAX:
        raise OSError(errno.E2BIG, f"{len(rules)} device rules, at most {lib.SBX_DEVICE_RULES_MAX}")
    c = ffi.new("struct sbx_device_rule[]", max(len(rules), 1))
    for i, (type_, major, minor, access, allow) in enumerate(rules):
        c[i].type, c[i].major, c[i].minor = type_.encode(), major, minor
        c[i].access, c[i].allow = access.encode(), int(allow)
    err = ffi.new("struct sbx_err *")
    if lib.sbx_device_filter_attach(cgroup_fd, c, len(rules), err) < 0:
        raise OSError(int(err.err), f"{ffi.string(err.op).decode()}: {os.strerror(int(err.err))}")
    tracer = _tracer()
    if tracer is not None:
        tracer.emit("runtime", "bpf", f"bpf(BPF_PROG_LOAD, CGROUP_DEVICE: {len(rules)} rules), "
                          f"bpf(BPF_PROG_ATTACH) to {os.readlink(f'/proc/self/fd/{cgroup_fd}')}", rules=len(rules))


# ---- the layer extractor (native/extract.c), driven by sandbox/images/untar.py ----------------


def has_layer_extractor() -> bool:
    """Whether this build of the core has native/extract.c (a tree built before it has not) and
    it found zlib and libcrypto (dlopen()ed here, once)."""
    return hasattr(lib, "sbx_layer_supported") and bool(lib.sbx_layer_supported())


def layer_inflaters() -> list[str]:
    """The inflaters gzip layers can go through, the one used first: "isal" when this build has
    isa-l's (its header was there) and libisal.so.2 loads, then "zlib"."""
    return (["isal"] if hasattr(lib, "sbx_layer_isal") and lib.sbx_layer_isal() else []) + ["zlib"]


class LayerFailure(Record):
    """Why a layer failed, for untar.py to word as extract.py does: `detail` about the entry
    named `entry` (None: about the layer), each \\x01 in it standing for `subject`."""
    detail: str
    entry: bytes | None
    subject: bytes


_CLOSED = LayerFailure("the layer is closed", None, b"")


class NativeLayer:
    """One sbx_layer state below the directory `root_fd` (kept open by the caller until
    close()); each call runs without the GIL (cffi releases it)."""

    def __init__(self, root_fd: int, *, gzip: bool, allow_devices: bool, zlib: bool = False) -> None:
        self.res = ffi.new("struct sbx_layer_res *")
        flags = (lib.SBX_LAYER_GZIP if gzip else 0) | (lib.SBX_LAYER_DEVICES if allow_devices else 0)
        if zlib:  # zlib's inflate even where isa-l's is found (the tests run both)
            flags |= lib.SBX_LAYER_ZLIB
        self.state = lib.sbx_layer_new(root_fd, flags, self.res)
        if self.state == ffi.NULL:
            raise OSError(errno.ENOSYS, ffi.string(self.res.detail).decode(errors="replace"))

    def feed(self, data: bytes) -> LayerFailure | None:
        if self.state == ffi.NULL:
            return _CLOSED
        return self._failure() if lib.sbx_layer_feed(self.state, data, len(data), self.res) < 0 else None

    def finish(self) -> tuple[int, int, str] | LayerFailure:
        """(files, bytes, diff_id), or why the stream or the archive ends badly."""
        if self.state == ffi.NULL:
            return _CLOSED
        if lib.sbx_layer_finish(self.state, self.res) < 0:
            return self._failure()
        res = self.res
        return int(res.files), int(res.bytes), ffi.string(res.diff_id).decode()

    def _failure(self) -> LayerFailure:
        res = self.res
        entry = ffi.buffer(res.entry, res.entry_len)[:] if res.has_entry else None
        return LayerFailure(ffi.string(res.detail).decode("utf-8", "surrogateescape"), entry,
                            ffi.buffer(res.subject, res.subject_len)[:])

    def close(self) -> None:
        if self.state != ffi.NULL:
            lib.sbx_layer_free(self.state)
            self.state = ffi.NULL
