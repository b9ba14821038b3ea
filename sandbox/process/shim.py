"""The client of the per-pod parent (sandbox/_bin/shim, native/shim.c): start or reach a pod's
shim, spawn through it, and hear about exits and output (protocol: docs/shim-protocol.md).

Every process of a pod spawned through a `ShimSpawner` is the shim's child, not ours: it outlives
this process, its exit status waits in the shim until a client ACKs it, and its output goes to
its CRI log file whether or not anyone is connected. A `ShimChild` is watched as a
`ChildProcess` is: its pidfd turns readable at exit (a pidfd of a non-child does too), and the
exit itself comes from the shim's EXIT event.
"""

from __future__ import annotations

import os
import select
import signal
import socket

from sandbox.errors import SandboxError
from sandbox.fdio import write_all
from sandbox.log import get_logger
from sandbox.process import shimproto as proto
from sandbox.process.spawner import ChildProcess, ExitInfo, Spawner

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    import builtins  # Shim.list shadows the builtin inside the class
    from collections.abc import Callable, Sequence

    from sandbox.native import SpawnRequest
    from sandbox.state.proc import ProcessRef

    Event = proto.ChildInfo | proto.Output | proto.Dropped

log = get_logger(__name__)

SOCKET_NAME = "shim.sock"
SHUTDOWN_WAIT_SECONDS = 5.0  # a shim whose children are dead exits at once; a stuck one is killed
KILLED_WAIT_SECONDS = 10.0  # SIGKILL cannot be caught: only an uninterruptible sleep delays it
REPLY_TIMEOUT = 30.0  # seconds; a SPAWN waits for stage 1, which has its own 10 s deadline
_CMSG_SPACE = socket.CMSG_SPACE(4 * proto.MAX_FDS)


class ShimError(SandboxError):
    """No shim answers at a directory, or one broke the protocol or went away."""


def shim_binary() -> str:
    """Built next to the package by setup.py (as pause)."""
    import sandbox

    return os.path.join(os.path.dirname(sandbox.__file__), "_bin", "shim")


class Shim:
    """One connection to a pod's shim. Replies come in request order; events (EXIT, OUTPUT,
    DROPPED) may arrive between them and are kept for `events()` (EXITs also in `exits`)."""

    def __init__(self, sock: socket.socket, directory: str) -> None:
        self.sock = sock
        self.directory = directory
        self.exits: dict[int, proto.ChildInfo] = {}  # pid -> EXIT seen on this connection
        self._events: builtins.list[Event] = []
        self.pid = 0
        self.version = 1  # the protocol spoken with this shim: the lower of its and ours
        self.pid = self._hello()

    @classmethod
    def start(cls, directory: str, binary: str | None = None) -> Shim:
        """Start a detached shim listening in `directory` and connect to it. ShimError with the
        shim's own message when it could not start."""
        return Launch(directory, binary).connect()

    @classmethod
    def connect(cls, directory: str) -> Shim:
        path = os.path.join(directory, SOCKET_NAME)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        dir_fd = -1
        try:
            if len(path.encode()) >= 108:  # sun_path: reach a deep directory through an fd of it
                dir_fd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
                sock.connect(f"/proc/self/fd/{dir_fd}/{SOCKET_NAME}")
            else:
                sock.connect(path)
            return cls(sock, directory)
        except OSError as e:
            sock.close()
            raise ShimError(f"no shim answers at {path}: {e.strerror or e}") from e
        except BaseException:
            sock.close()
            raise
        finally:
            if dir_fd >= 0:
                os.close(dir_fd)

    def fileno(self) -> int:
        """For the caller's selector: readable when an event (or a reply) is waiting."""
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    # -- requests --------------------------------------------------------------------------

    def spawn(self, child_id: str, req: SpawnRequest, log_path: str | None = None,
              on_trace: Callable[[bytes], None] | None = None) -> tuple[int, int, int]:
        """SPAWN: (pid, spawn channel fd, pidfd) of stage 2, waiting for "go" on the channel;
        ContainerStartError (nothing left running) when the shim could not start it. `on_trace`
        (`--trace`): the stages send trace records; stage 1's (a struct sbx_trace each) come
        before the reply and go to it."""
        data, fds = proto.pack_request(req, trace=on_trace is not None)
        memfd = os.memfd_create("sbx-spawn-request", os.MFD_CLOEXEC)
        try:
            write_all(memfd, data)
            self._send(proto.SPAWN, proto.spawn_body(child_id, log_path), [memfd, *fds])
            type_, body, got = self._reply(on_trace)
        finally:
            os.close(memfd)
        if type_ == proto.R_ERROR:
            _close_all(got)
            raise proto.parse_failure(body).start_error()
        if type_ != proto.R_SPAWNED or len(got) != 2:
            _close_all(got)
            raise ShimError(f"shim in {self.directory}: unexpected reply {type_} to SPAWN")
        _, pid = proto.parse_spawned(body)
        return pid, got[0], got[1]

    def list(self) -> builtins.list[ShimChild]:
        """Every child the shim holds, running (with a pidfd) or exited and not yet ACKed."""
        self._send(proto.LIST)
        children: builtins.list[ShimChild] = []
        while True:
            type_, body, fds = self._reply()
            if type_ == proto.R_LIST_END:
                return children
            if type_ != proto.R_LIST_ENTRY:
                _close_all(fds)
                raise ShimError(f"shim in {self.directory}: unexpected reply {type_} to LIST")
            info = proto.parse_child(body)
            child = ShimChild(self, info.id, info.pid, fds[0] if fds else -1)
            if not info.running:
                child.set_exit(info)
            children.append(child)

    def ack(self, pid: int) -> None:
        """The caller has recorded `pid`'s exit: the shim may forget it."""
        self._ok(proto.ACK, proto.PID.pack(pid, 0), f"ack {pid}")
        self.exits.pop(pid, None)

    def reopen(self, child_id: str) -> None:
        """ReopenContainerLog: the shim closes and reopens the child's log path (the caller
        renamed the file first); later output goes to the new file."""
        self._ok(proto.REOPEN, proto.ID.pack(proto.encode_id(child_id)), f"reopen log of {child_id}")

    def watch(self, on: bool = True) -> None:
        """OUTPUT events for every chunk any child writes from now on (see `events`)."""
        self._ok(proto.WATCH, proto.WATCH_BODY.pack(int(on), 0), "watch")

    def shutdown(self) -> None:
        """The shim exits once no child runs and every exit reached a client; the caller stops
        the children itself (by their pidfds)."""
        self._ok(proto.SHUTDOWN, b"", "shutdown")

    def events(self) -> builtins.list[Event]:
        """Every event waiting now, without blocking (ChildInfo for EXIT, Output, Dropped)."""
        while self._receive(block=False) is not None:
            pass
        out, self._events = self._events, []
        return out

    def wait_exit(self, pid: int) -> proto.ChildInfo:
        """Block until the shim reports `pid`'s exit on this connection."""
        while pid not in self.exits:
            self._receive(block=True)
        return self.exits[pid]

    # -- the wire --------------------------------------------------------------------------

    def _hello(self) -> int:
        type_, body, _ = self._request(proto.HELLO, proto.HELLO_BODY.pack(proto.HELLO_VERSION, 0))
        if type_ == proto.R_ERROR:
            raise ShimError(f"shim in {self.directory} refused protocol version {proto.HELLO_VERSION}: "
                            f"{proto.parse_failure(body)}")
        if type_ != proto.R_HELLO:
            raise ShimError(f"shim in {self.directory}: unexpected reply {type_} to HELLO")
        version, pid = proto.HELLO_REPLY.unpack(body)
        self.version = min(int(version), proto.PROTO_VERSION)
        return int(pid)

    def _ok(self, type_: int, body: bytes, what: str) -> None:
        got, reply, _ = self._request(type_, body)
        if got == proto.R_ERROR:
            failure = proto.parse_failure(reply)
            raise OSError(failure.errno, f"shim: {what}: {failure}")
        if got != proto.R_OK:
            raise ShimError(f"shim in {self.directory}: unexpected reply {got} to {what}")

    def _request(self, type_: int, body: bytes, fds: Sequence[int] = ()) -> tuple[int, bytes, builtins.list[int]]:
        self._send(type_, body, fds)
        return self._reply()

    def _send(self, type_: int, body: bytes = b"", fds: Sequence[int] = ()) -> None:
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, bytes(memoryview(_ints(fds))))] if fds else []
        try:
            self.sock.sendmsg([proto.message(type_, body)], ancillary)
        except OSError as e:
            raise ShimError(f"shim in {self.directory}: {e.strerror or e}") from e

    def _reply(self, on_trace: Callable[[bytes], None] | None = None) -> tuple[int, bytes, builtins.list[int]]:
        while True:
            got = self._receive(block=True, timeout=REPLY_TIMEOUT)
            if got is None:
                raise ShimError(f"shim in {self.directory}: no reply within {REPLY_TIMEOUT:g}s")
            if got[0] == proto.R_TRACE:  # a step of the SPAWN in progress, before its reply
                if on_trace is not None:
                    on_trace(got[1])
                continue
            if got[0] < proto.E_EXIT:
                return got

    def _receive(self, block: bool, timeout: float | None = None) -> tuple[int, bytes, builtins.list[int]] | None:
        """One packet; events are queued and returned too. None: nothing there (or timeout)."""
        if not _readable(self.sock.fileno(), timeout if block else 0):
            return None
        try:
            data, ancdata, flags, _ = self.sock.recvmsg(proto.MSG_MAX, _CMSG_SPACE, socket.MSG_CMSG_CLOEXEC)
        except OSError as e:
            raise ShimError(f"shim in {self.directory}: {e.strerror or e}") from e
        fds = _received_fds(ancdata)
        if not data:
            raise ShimError(f"shim in {self.directory} closed the connection")
        try:
            type_, body = proto.split(data)
            if type_ >= proto.E_EXIT:
                self._event(type_, body)
        except ValueError as e:
            _close_all(fds)
            raise ShimError(f"shim in {self.directory}: {e}") from e
        return type_, body, fds

    def _event(self, type_: int, body: bytes) -> None:
        event: Event
        if type_ == proto.E_EXIT:
            event = proto.parse_child(body)
            self.exits[event.pid] = event
        elif type_ == proto.E_OUTPUT:
            event = proto.parse_output(body)
        elif type_ == proto.E_DROPPED:
            event = proto.Dropped(proto.COUNT.unpack(body)[0])
        else:
            raise ValueError(f"unknown event type {type_}")
        self._events.append(event)


class ShimChild(ChildProcess):
    """A process the shim is the parent of: `ChildProcess`'s interface over a pidfd we hold and
    the shim's EXIT event. `info` keeps the raw wait status and exit time once known."""

    def __init__(self, shim: Shim, child_id: str, pid: int, pidfd: int) -> None:
        self.shim = shim
        self.id = child_id
        self.pid = pid
        self.pidfd = pidfd
        self.exit: ExitInfo | None = None
        self.info: proto.ChildInfo | None = None

    def set_exit(self, info: proto.ChildInfo) -> None:
        self.info = info
        code, sig = info.exit_code()
        self.exit = ExitInfo(code, sig)

    def send_signal(self, sig: int) -> None:
        if self.exit is None and self.pidfd >= 0:
            try:
                signal.pidfd_send_signal(self.pidfd, sig)
            except ProcessLookupError:
                pass

    def poll(self) -> ExitInfo | None:
        """Without blocking while it runs; once its pidfd is readable (it has exited), the EXIT
        event is read from the shim (which reaps it at once)."""
        if self.exit is None:
            info = self.shim.exits.get(self.pid)
            if info is None and (self.pidfd < 0 or _readable(self.pidfd, 0)):
                return self.wait()
            if info is not None:
                self.set_exit(info)
        return self.exit

    def wait(self) -> ExitInfo:
        if self.exit is None:
            try:
                self.set_exit(self.shim.wait_exit(self.pid))
            except ShimError as e:
                # The shim died (killed from outside): its children die with it, by their
                # parent-death signal, and nobody holds their status any more.
                log.warning("%s; pid %d is reported killed (137)", e, self.pid)
                if self.pidfd >= 0:
                    _readable(self.pidfd, KILLED_WAIT_SECONDS)
                self.exit = ExitInfo(128 + signal.SIGKILL, signal.SIGKILL)
        assert self.exit is not None
        return self.exit

    def close(self) -> None:
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1


class ShimSpawner(Spawner):
    """Spawns through a pod's shim, with DirectSpawner's contract: stage 2 is placed in its
    cgroups and `before_start` runs while it waits for "go", and on any failure nothing of it is
    left running (its exit is waited for and ACKed)."""

    def __init__(self, shim: Shim) -> None:
        self.shim = shim
        self._count = 0

    def spawn(self, req: SpawnRequest, before_start: Callable[[int], None] | None = None, *,
              child_id: str | None = None, log_path: str | None = None) -> ShimChild:
        """`child_id` names it in the shim's events (unique among the children it holds);
        `log_path`: the shim writes its stdout and stderr there in the CRI format (the
        request's stdio 1 and 2 are replaced)."""
        from sandbox import native
        from sandbox.process.spawner import _join_cgroups, finish, self_joining

        if child_id is None:
            self._count += 1
            child_id = f"{req.stage_name}-{os.getpid()}-{self._count}"
        root_fd = -1
        if self.shim.version >= 2:  # its stage 2 joins the v1 cgroups itself (spawner.self_joining)
            req, root_fd = self_joining(req)
        try:
            pid, chan, pidfd = self._start(req, child_id, log_path)
        finally:
            if root_fd >= 0:
                os.close(root_fd)
        child = ShimChild(self.shim, child_id, pid, pidfd)
        started = native.started_from_channel(pid, chan, req)
        try:
            if req.cgroups and root_fd < 0:  # a shim of protocol 1: the runtime moves stage 2
                _join_cgroups(req.cgroups, pid)
            if before_start is not None:
                before_start(pid)
            finish(started, req)
        except BaseException:
            started.discard()
            self._reap(child)
            raise
        return child

    def _start(self, req: SpawnRequest, child_id: str, log_path: str | None) -> tuple[int, int, int]:
        from sandbox import native

        on_trace = native.trace_recorder(req)  # None unless `--trace`
        if not req.cgroup2:
            return self.shim.spawn(child_id, req, log_path, on_trace)
        from sandbox.errors import ContainerStartError
        from sandbox.record import replace

        try:
            fd = os.open(req.cgroup2, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise ContainerStartError("CreateContainerError", "open cgroup", e.errno or 0, req.cgroup2) from e
        try:
            return self.shim.spawn(child_id, replace(req, cgroup_fd=fd), log_path, on_trace)
        finally:
            os.close(fd)

    def release(self, child: ChildProcess) -> None:
        """The exit of `child` is recorded in the caller's state: the shim may forget it (a
        restarted agent must not see it again). Nothing to do when the shim is gone."""
        if isinstance(child, ShimChild) and child.shim is self.shim:
            try:
                self.shim.ack(child.pid)
            except (ShimError, OSError) as e:
                log.debug("shim: ack of pid %d: %s", child.pid, e)

    def _reap(self, child: ShimChild) -> None:
        """After a failed start: kill it, wait for the shim's EXIT, ACK it."""
        child.send_signal(signal.SIGKILL)
        try:
            child.wait()
            self.shim.ack(child.pid)
        finally:
            child.close()


def stop_shim(ref: ProcessRef, directory: str) -> bool:
    """The tear-down of a pod's shim (pod/teardown.py's Shim record), once the pod's processes
    are dead: every exit it holds is ACKed (nobody will read them now), SHUTDOWN lets it drain the
    pipes into the logs and exit; SIGKILL if it does not within SHUTDOWN_WAIT_SECONDS or does not
    answer. False if it was gone already."""
    pidfd = ref.open_pidfd()
    if pidfd is None:
        return False
    try:
        try:
            shim = Shim.connect(directory)
        except ShimError:
            shim = None
        if shim is not None:
            try:
                for child in shim.list():
                    if child.exit is not None:
                        shim.ack(child.pid)
                    child.close()
                shim.shutdown()
            except (ShimError, OSError) as e:
                log.warning("shim %d: %s; killing it", ref.pid, e)
            finally:
                shim.close()
        if shim is None or not _readable(pidfd, SHUTDOWN_WAIT_SECONDS):
            try:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            except ProcessLookupError:
                return True
            _readable(pidfd, KILLED_WAIT_SECONDS)
        return True
    finally:
        os.close(pidfd)


class Launch:
    """`shim --ready-fd N DIR` started in a new session, not yet waited for: it double-forks and
    writes its final pid on the ready pipe. The caller may do other work meanwhile (the runtime
    makes the pod's cgroups while the shim comes up: ~1-2 ms of process start-ups) and must then
    call `wait()` and/or `connect()`, whatever happened in between."""

    def __init__(self, directory: str, binary: str | None = None) -> None:
        self.directory = directory
        binary = binary or shim_binary()
        ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        try:
            os.set_inheritable(ready_w, True)
            actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                       (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                       (os.POSIX_SPAWN_DUP2, err_w, 2)]
            try:
                self.first = os.posix_spawn(binary, [binary, "--ready-fd", str(ready_w), directory], os.environ,
                                            file_actions=actions, setsid=True)
            except OSError as e:
                raise ShimError(f"cannot run {binary}: {e.strerror or e}") from e
        except BaseException:
            os.close(ready_r)
            os.close(err_r)
            raise
        finally:
            os.close(ready_w)
            os.close(err_w)
        self.ready_r, self.err_r = ready_r, err_r
        self.pid = 0  # known once `wait()` returned

    def wait(self) -> int:
        """The shim's pid once it listens, or ShimError with what the shim printed."""
        if self.pid:
            return self.pid
        try:
            ready = _read_all(self.ready_r)
            message = _read_all(self.err_r).decode(errors="replace").strip()
            _, status = os.waitpid(self.first, 0)
        finally:
            os.close(self.ready_r)
            os.close(self.err_r)
        if not ready.strip().isdigit():
            detail = message or f"exit status {os.waitstatus_to_exitcode(status)}"
            raise ShimError(f"shim for {self.directory} did not start: {detail}")
        self.pid = int(ready)
        return self.pid

    def connect(self) -> Shim:
        pid = self.wait()
        shim = Shim.connect(self.directory)
        if shim.pid != pid:
            shim.close()
            raise ShimError(f"shim in {self.directory}: started pid {pid}, but pid {shim.pid} answers")
        return shim


def _readable(fd: int, timeout: float | None) -> bool:
    """poll(), not select(): an agent holding many pods has fds past FD_SETSIZE (1024)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(None if timeout is None else int(timeout * 1000)))


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    return b"".join(chunks)



def _ints(fds: Sequence[int]) -> bytes:
    import array

    return array.array("i", fds).tobytes()


def _received_fds(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    import array

    fds: list[int] = []
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            arr = array.array("i")
            arr.frombytes(data[: len(data) - len(data) % arr.itemsize])
            fds.extend(arr)
    return fds


def _close_all(fds: Sequence[int]) -> None:
    for fd in fds:
        os.close(fd)
