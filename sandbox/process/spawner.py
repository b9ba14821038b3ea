"""The one interface every process of a pod is started through.

Today `DirectSpawner` forks from the runtime itself (through the native core), so pause and every
container's main process are children of `sandbox run`. The node-agent issue adds a small native
per-pod parent (the role conmon and containerd-shim play) so pods outlive the Python process; it
will implement the same `Spawner` protocol and nothing above this module changes.
"""

from __future__ import annotations

import os

from sandbox import native
from sandbox.native import SpawnRequest
from sandbox.record import Record
from sandbox.signals import signal

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from collections.abc import Callable


class ExitInfo(Record):
    exit_code: int  # the status, or 128 + signal as Kubernetes reports a signal death
    signal: int  # 0 unless killed by a signal

    @classmethod
    def from_waitid(cls, result: os.waitid_result) -> ExitInfo:
        if result.si_code == os.CLD_EXITED:
            return cls(result.si_status, 0)
        return cls(128 + result.si_status, result.si_status)


class ChildProcess:
    """A spawned process we are the parent of, watched through its pidfd (no polling)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.pidfd = os.pidfd_open(pid)
        self.exit: ExitInfo | None = None

    def send_signal(self, sig: int) -> None:
        if self.exit is None:
            try:
                signal.pidfd_send_signal(self.pidfd, sig)
            except ProcessLookupError:
                pass

    def poll(self) -> ExitInfo | None:
        """Reap without blocking; the pidfd turns readable when the process has exited."""
        if self.exit is None:
            result = os.waitid(os.P_PIDFD, self.pidfd, os.WEXITED | os.WNOHANG)
            if result is not None:
                self.exit = ExitInfo.from_waitid(result)
        return self.exit

    def wait(self) -> ExitInfo:
        while self.exit is None:
            try:
                result = os.waitid(os.P_PIDFD, self.pidfd, os.WEXITED)
                if result is not None:
                    self.exit = ExitInfo.from_waitid(result)
            except ChildProcessError:
                self.exit = ExitInfo(255, 0)
        return self.exit

    def close(self) -> None:
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1


class Spawner:
    """The interface (a plain base class rather than a typing.Protocol, for start-up time)."""

    def spawn(self, req: SpawnRequest, before_start: Callable[[int], None] | None = None) -> ChildProcess:
        """Start `req`: `before_start(pid)` runs while stage 2 still waits for "go"; stage 2
        enters `req.cgroups` right after "go", before anything else.

        Raises ContainerStartError when the child could not be set up or exec'd; nothing of it
        is left running then.
        """
        raise NotImplementedError

    def start(self, req: SpawnRequest, before_start: Callable[[int], None] | None = None) -> PendingChild:
        """`spawn`, without waiting for stage 2's set-up (DirectSpawner's stage 2 sets up while
        the caller goes on; others are ready at once)."""
        return PendingChild(self.spawn(req, before_start=before_start))


class PendingChild:
    """A child started by `Spawner.start`: `process` exists (a pidfd, a pid to record), its stage 2
    may still be setting up. `ready()` waits for its exec, raising as `spawn` would (the process
    is then killed and reaped); until then nothing may join its namespaces."""

    def __init__(self, process: ChildProcess, complete: Callable[[], None] | None = None,
                 abandon: Callable[[], None] | None = None) -> None:
        self.process = process
        self._complete = complete
        self._abandon = abandon

    @property
    def done(self) -> bool:
        return self._complete is None

    def ready(self) -> ChildProcess:
        complete, self._complete = self._complete, None
        if complete is not None:
            complete()
        return self.process

    def abandon(self) -> None:
        """Not waited for after all (the pod ends; its caller kills the process): the spawn's
        channel is closed."""
        abandon, self._complete, self._abandon = self._abandon, None, None
        if abandon is not None:
            abandon()


class DirectSpawner(Spawner):
    """Spawns as children of this process. Call from the main thread only: PR_SET_PDEATHSIG fires
    when the spawning *thread* exits, so a helper thread's exit would kill the pod.

    `exec_stage1`: stage 1 is the shim binary exec'd (native.stage1_helper), not a fork of this
    process. A fork marks every page of the runtime copy-on-write, and each one it writes later
    faults: ~1,500 faults (1.3-3.6 us each on this VM) per one-container pod cycle of
    `sandbox run`, for two forks. A small process (`sandbox exec`) forks about as fast."""

    def __init__(self, exec_stage1: bool = True) -> None:
        self.helper = native.stage1_helper() if exec_stage1 else None

    def spawn(self, req: SpawnRequest, before_start: Callable[[int], None] | None = None) -> ChildProcess:
        req, started = self._stage1(req)
        try:
            if before_start is not None:
                before_start(started.pid)
            finish(started, req)
        except BaseException:
            try:
                os.kill(started.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(started.pid, 0)
            raise
        return ChildProcess(started.pid)

    def start(self, req: SpawnRequest, before_start: Callable[[int], None] | None = None) -> PendingChild:
        # Stage 2 is released at once and sets itself up (namespaces, mounts, exec) on the other
        # CPU while this process goes on: pause's ~2 ms of set-up (6 ms under load) overlap the
        # first container's preparation (service.pause_ready waits before that container spawns).
        req, started = self._stage1(req)
        try:
            if before_start is not None:
                before_start(started.pid)
            process = ChildProcess(started.pid)
        except BaseException:
            started.discard()
            os.kill(started.pid, signal.SIGKILL)
            os.waitpid(started.pid, 0)
            raise
        started.release()

        def complete() -> None:
            try:
                finish(started, req)
            except BaseException:
                process.send_signal(signal.SIGKILL)
                process.wait()
                raise

        return PendingChild(process, complete, started.discard)


    def _stage1(self, req: SpawnRequest) -> tuple[SpawnRequest, native.Started]:
        """Stage 1 started; stage 2 exists and waits for "go". Returns the request as sent."""
        req, root_fd = self_joining(req)
        try:
            started = _start_in_cgroup(req, self.helper) if req.cgroup2 else native.spawn_start(req, self.helper)
        finally:
            if root_fd >= 0:
                os.close(root_fd)  # stage 1 and 2 hold their own copies
        return req, started


def finish(started: native.Started, req: SpawnRequest) -> None:
    """started.finish(), with a cgroup stage 2 could not join named by its whole path (stage 2
    knows it only beneath `req.cgroup_root`)."""
    from sandbox.errors import ContainerStartError

    try:
        started.finish()
    except ContainerStartError as e:
        if e.op == "join cgroup" and req.cgroup_root:
            e.path = os.path.normpath(os.path.join(req.cgroup_root, e.path))
        raise


def self_joining(req: SpawnRequest) -> tuple[SpawnRequest, int]:
    """`req` with the directory fd its stage 2 joins its v1 cgroups through, and that fd (-1
    without v1 cgroups; the caller closes it once stage 1 has started).

    Stage 2 moves itself (spawn.c join_cgroups) rather than the runtime writing its pid into
    each cgroup.procs: the kernel then skips the global rwsem whose cold write lock waits an RCU
    grace period, 7-16 ms of every pod start and exec on a v1 or hybrid host (measured on this
    project's VM; ~0.4 ms for the same move this way)."""
    if not req.cgroups:
        return req, -1
    from sandbox.record import replace

    root = os.path.commonpath(req.cgroups)
    try:
        fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        from sandbox.errors import ContainerStartError

        raise ContainerStartError("CreateContainerError", "open cgroup", e.errno or 0, root) from e
    return replace(req, cgroup_root=root, cgroup_root_fd=fd), fd


def _join_cgroups(cgroups: tuple[str, ...], pid: int) -> None:
    """The runtime moves `pid` (a shim that predates self_joining started it)."""
    from sandbox.cgroups.fs import CgroupError, join
    from sandbox.errors import ContainerStartError

    try:
        join(cgroups, pid)
    except CgroupError as e:
        raise ContainerStartError("CreateContainerError", e.op, e.errno or 0, e.path) from e


def _start_in_cgroup(req: SpawnRequest, helper: str | None = None) -> native.Started:
    """Stage 2 born in the cgroup2 directory `req.cgroup2` (clone3 CLONE_INTO_CGROUP)."""
    from sandbox.errors import ContainerStartError
    from sandbox.record import replace

    assert req.cgroup2 is not None
    try:
        fd = os.open(req.cgroup2, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise ContainerStartError("CreateContainerError", "open cgroup", e.errno or 0, req.cgroup2) from e
    try:
        return native.spawn_start(replace(req, cgroup_fd=fd), helper)
    finally:
        os.close(fd)
