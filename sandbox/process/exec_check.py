"""Exec probes and hooks: a command run inside a running container (all its namespaces, its
environment and working directory, as `sandbox exec`), driven as a non-blocking `Check`.

The process is our child, watched through its pidfd; its stdout and stderr go to two pipes we
read (each capped), never to the container's log: hook and probe output is for events, not logs.
The output is stdout then stderr, as the kubelet's RunInContainer appends ExecSync's two streams.
It gets no host file descriptor: stdin is an empty pipe, and stage 2 marks every fd >= 3
close-on-exec right before execve.
Past the deadline it is killed (the kubelet's ExecProbeTimeout behaviour) and reaped.
"""

from __future__ import annotations

import os
import signal

from sandbox import poller
from sandbox.errors import ContainerStartError
from sandbox.probing.checks import Check
from sandbox.probing.outcome import ERROR, FAILURE, SUCCESS, Outcome
from sandbox.process.request import ALL_NAMESPACES, Identity, SpawnRequest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sandbox.process.spawner import ChildProcess, Spawner

OUTPUT_LIMIT = 10 * 1024  # what the kubelet keeps of a probe's output (and we of each hook stream)


class ExecCheck(Check):
    def __init__(self, spawner: Spawner, main_pidfd: int, argv: list[str], env: list[str], cwd: str,
                 timeout: float, identity: Identity | None = None, cgroup: dict[str, Any] | None = None,
                 *, hook: bool = False) -> None:
        super().__init__(timeout)
        self.hook = hook  # a lifecycle hook's failure is the runtime's error; a probe's is its output alone
        self.spawner, self.main_pidfd, self.argv, self.env, self.cwd = spawner, main_pidfd, argv, env, cwd
        self.identity = identity or Identity()  # who the container's processes run as
        self.cgroup = cgroup or {}  # the container's: a probe counts against its limits, as runc exec's
        self.process: ChildProcess | None = None
        self.out_fd = self.err_fd = -1
        self.stdout, self.stderr = bytearray(), bytearray()

    def _begin(self, now: float) -> Outcome | None:
        if not self.argv:
            return Outcome(ERROR, "exec: no command")
        identity = self.identity.request_fields()  # reads the seccomp filter: before any fd is open
        out_r, out_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        err_r, err_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        os.set_blocking(out_w, True)
        os.set_blocking(err_w, True)
        # stdin: an empty pipe (end-of-file at once, as /dev/null) rather than a host file.
        null, no_input = os.pipe2(os.O_CLOEXEC)
        os.close(no_input)
        req = SpawnRequest(argv=self.argv, env=self.env, join_pidfd=self.main_pidfd, join_ns=ALL_NAMESPACES,
                           cwd=self.cwd, stdio=(null, out_w, err_w), stage_name="probe",
                           **self.cgroup, **identity)
        try:
            self.process = self.spawner.spawn(req)
        except ContainerStartError as e:
            os.close(out_r)
            os.close(err_r)
            return self._failed(cri_exec_error(e, os.urandom(32).hex()) if self.hook else str(e))
        finally:
            os.close(out_w)
            os.close(err_w)
            os.close(null)
        self.out_fd, self.err_fd = out_r, err_r
        return None

    def interest(self) -> list[tuple[int, int]]:
        fds = [(fd, poller.EVENT_READ) for fd in (self.out_fd, self.err_fd) if fd >= 0]
        if self.process is not None and self.process.pidfd >= 0:
            fds.append((self.process.pidfd, poller.EVENT_READ))
        return fds

    def on_ready(self, fd: int, mask: int, now: float) -> Outcome | None:
        if fd == self.out_fd:
            self.out_fd = self._read(self.out_fd, self.stdout)
        elif fd == self.err_fd:
            self.err_fd = self._read(self.err_fd, self.stderr)
        if self.process is None or self.process.poll() is None:
            return None
        self.out_fd = self._read(self.out_fd, self.stdout, drain=True)
        self.err_fd = self._read(self.err_fd, self.stderr, drain=True)
        code = self.process.exit.exit_code if self.process.exit else 255
        return self.result(code)

    def result(self, code: int) -> Outcome:
        """The attempt's outcome once the command exited with `code` and its output is read."""
        output = bytes(self.stdout + self.stderr)
        if code == 0:
            return Outcome(SUCCESS, output[:OUTPUT_LIMIT].decode(errors="replace"))
        if self.hook:
            # the CRI client's error for a non-zero exit (cri-client remote_runtime.go ExecSync):
            # the argv joined by spaces, the code and the stderr, beside the whole output
            error = f"command '{' '.join(self.argv)}' exited with {code}: {self.stderr.decode(errors='replace')}"
            return self._failed(error, output)
        # a probe's output is the command's, empty or not (pkg/probe/exec: "Readiness probe failed: ")
        return Outcome(FAILURE, output[:OUTPUT_LIMIT].decode(errors="replace"))

    def _failed(self, error: str, output: bytes = b"") -> Outcome:
        """A failed attempt: for a hook, the runtime's error and the command's output (the handler
        runner's "error: %v, message: %q"), kept apart for the hook's own wording."""
        if not self.hook:
            return Outcome(FAILURE, error)
        return Outcome(FAILURE, error, message=output.decode(errors="surrogateescape"))

    def on_timeout(self, now: float) -> Outcome:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        from sandbox.process.downward import go_quote

        # the kubelet's words (remote_runtime.go ExecSync on DeadlineExceeded): the argv joined by spaces, %q
        return self._failed(f"command {go_quote(' '.join(self.argv))} timed out", bytes(self.stdout + self.stderr))

    def close(self) -> None:
        for fd in (self.out_fd, self.err_fd):
            if fd >= 0:
                os.close(fd)
        self.out_fd = self.err_fd = -1
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGKILL)
                self.process.wait()
            self.process.close()

    @staticmethod
    def _read(fd: int, into: bytearray, drain: bool = False) -> int:
        """Read what `fd` holds now into `into` (capped); returns the fd, or -1 once closed at its end."""
        while fd >= 0:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return fd
            if not data:
                os.close(fd)
                return -1
            into += data[: max(0, OUTPUT_LIMIT - len(into))]
            if not drain:
                return fd
        return fd


# spawn.c's op for a command its PATH search did not find (exec_command)
NOT_FOUND_OP = "executable file not found in $PATH"


def cri_exec_error(error: ContainerStartError, exec_id: str) -> str:
    """What the kubelet's CRI client returns for an exec whose process could not start, which a
    hook's failure message quotes: containerd's ExecSync ("failed to exec in container: failed
    to start exec %q: %w", `exec_id` its 64-hex exec ID) over its shim's "OCI runtime exec
    failed: " and runc's "exec failed: unable to start container process: %w", as a gRPC status
    of code Unknown (the ": unknown" the error's round trip adds)."""
    from sandbox.process.downward import go_quote

    return (f"rpc error: code = Unknown desc = failed to exec in container: failed to start exec {go_quote(exec_id)}: "
            f"OCI runtime exec failed: exec failed: unable to start container process: {runc_start_error(error)}: "
            "unknown")


def runc_start_error(error: ContainerStartError) -> str:
    """runc's words for a process that did not start: its exec.LookPath error (Go's exec.Error)
    for a command not found, missing or not executable, os.PathError "exec" for an execve that
    failed; another set-up step as our op, path and the error in Go's lower-case words."""
    import errno

    from sandbox.process.downward import go_quote

    reason = os.strerror(error.errno)
    reason = reason[:1].lower() + reason[1:]
    if error.op == NOT_FOUND_OP:
        return f"exec: {go_quote(error.path)}: {NOT_FOUND_OP}"
    if error.op != "execve":
        return f"{error.op} {error.path}: {reason}" if error.path else f"{error.op}: {reason}"
    if error.errno == errno.ENOENT:
        return f"exec: {go_quote(error.path)}: stat {error.path}: {reason}"
    if error.errno == errno.EACCES:
        return f"exec: {go_quote(error.path)}: {reason}"
    return f"exec {error.path}: {reason}"
