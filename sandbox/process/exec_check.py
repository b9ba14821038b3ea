"""Exec probes and hooks: a command run inside a running container (all its namespaces, its
environment and working directory, as `sandbox exec`), driven as a non-blocking `Check`.

The process is our child, watched through its pidfd; its stdout and stderr go to one pipe we
read (capped), never to the container's log: hook and probe output is for events, not logs. It
gets no host file descriptor: stdin is an empty pipe, and stage 2 marks every fd >= 3
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

OUTPUT_LIMIT = 10 * 1024  # what the kubelet keeps of a probe's output


class ExecCheck(Check):
    def __init__(self, spawner: Spawner, main_pidfd: int, argv: list[str], env: list[str], cwd: str,
                 timeout: float, identity: Identity | None = None, cgroup: dict[str, Any] | None = None,
                 *, hook: bool = False) -> None:
        super().__init__(timeout)
        self.hook = hook  # a lifecycle hook's failure names the exit code; a probe's is its output alone
        self.spawner, self.main_pidfd, self.argv, self.env, self.cwd = spawner, main_pidfd, argv, env, cwd
        self.identity = identity or Identity()  # who the container's processes run as
        self.cgroup = cgroup or {}  # the container's: a probe counts against its limits, as runc exec's
        self.process: ChildProcess | None = None
        self.out_fd = -1
        self.output = bytearray()

    def _begin(self, now: float) -> Outcome | None:
        if not self.argv:
            return Outcome(ERROR, "exec: no command")
        identity = self.identity.request_fields()  # reads the seccomp filter: before any fd is open
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        os.set_blocking(write_fd, True)
        # stdin: an empty pipe (end-of-file at once, as /dev/null) rather than a host file.
        null, no_input = os.pipe2(os.O_CLOEXEC)
        os.close(no_input)
        req = SpawnRequest(argv=self.argv, env=self.env, join_pidfd=self.main_pidfd, join_ns=ALL_NAMESPACES,
                           cwd=self.cwd, stdio=(null, write_fd, write_fd), stage_name="probe",
                           **self.cgroup, **identity)
        try:
            self.process = self.spawner.spawn(req)
        except ContainerStartError as e:
            os.close(read_fd)
            return Outcome(FAILURE, str(e))
        finally:
            os.close(write_fd)
            os.close(null)
        self.out_fd = read_fd
        return None

    def interest(self) -> list[tuple[int, int]]:
        fds = [(self.out_fd, poller.EVENT_READ)] if self.out_fd >= 0 else []
        if self.process is not None and self.process.pidfd >= 0:
            fds.append((self.process.pidfd, poller.EVENT_READ))
        return fds

    def on_ready(self, fd: int, mask: int, now: float) -> Outcome | None:
        if fd == self.out_fd:
            self._read()
        if self.process is None or self.process.poll() is None:
            return None
        self._read(drain=True)
        code = self.process.exit.exit_code if self.process.exit else 255
        text = self.output.decode(errors="replace")
        if code != 0 and not text and self.hook:
            text = f"command exited with {code}"
        # a probe's output is the command's, empty or not (pkg/probe/exec: "Readiness probe failed: ")
        return Outcome(SUCCESS if code == 0 else FAILURE, text)

    def on_timeout(self, now: float) -> Outcome:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        from sandbox.process.downward import go_quote

        # the kubelet's words (remote_runtime.go ExecSync on DeadlineExceeded): the argv joined by spaces, %q
        return Outcome(FAILURE, f"command {go_quote(' '.join(self.argv))} timed out")

    def close(self) -> None:
        if self.out_fd >= 0:
            os.close(self.out_fd)
            self.out_fd = -1
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGKILL)
                self.process.wait()
            self.process.close()

    def _read(self, drain: bool = False) -> None:
        while self.out_fd >= 0:
            try:
                data = os.read(self.out_fd, 65536)
            except BlockingIOError:
                return
            if not data:
                os.close(self.out_fd)
                self.out_fd = -1
                return
            self.output += data[: max(0, OUTPUT_LIMIT - len(self.output))]
            if not drain:
                return
