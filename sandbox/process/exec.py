"""`sandbox exec`: run a command inside a running container: all its namespaces (net, ipc, uts,
pid, mount, so its root too), its environment and working directory.

The same native spawn as a container start. The command never gets a file descriptor of the
host (security-reliability.md 1.10): handing it our own stdout would let it re-open the caller's
file through /proc/self/fd/1. Its stdio are pipes we relay (stdin only with `-i`, else an empty
pipe, as kubectl attaches no stream), or with `-t` a terminal of the container's own devpts
instance, opened as runc opens its console: inside the container, the master kept by us. It runs
in a new session as runc's exec does (no access to our terminal); signals we get are forwarded.
"""

from __future__ import annotations

import os
import select
import sys

from sandbox.errors import ContainerStartError
from sandbox.fdio import write_all
from sandbox.process.request import ALL_NAMESPACES, Identity, SpawnRequest
from sandbox.process.spawner import DirectSpawner
from sandbox.security.filterfile import read_filter
from sandbox.signals import signal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sandbox.process.spawner import ChildProcess

FORWARDED = (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP)
CHUNK = 65536


def exec_in_container(main_pidfd: int, argv: list[str], env: list[str], cwd: str,
                      identity: Identity | None = None, *, stdin: bool = False,
                      tty: bool = False, main_pid: int = -1, cgroup: dict[str, Any] | None = None) -> int:
    """Run argv in the container whose main process `main_pidfd` (pid `main_pid`) names, relaying
    our stdio; returns its exit code (128 + signal for a signal death, as a shell reports it).
    `cgroup`: the SpawnRequest fields that start it in the container's cgroup, as runc exec's."""
    identity = identity or Identity()
    # The container's compiled filter, as its start stored it (cached by content), never rebuilt.
    seccomp_bpf = read_filter(identity.seccomp) if identity.seccomp is not None else None
    stdio: _PipeStdio | _TtyStdio = _TtyStdio(main_pid, main_pidfd, stdin) if tty else _PipeStdio(stdin)
    try:
        req = SpawnRequest(argv=argv, env=exec_env(env, tty), join_pidfd=main_pidfd, join_ns=ALL_NAMESPACES, cwd=cwd,
                           stdio=stdio.child_fds, new_session=True, stage_name="exec", **(cgroup or {}),
                           **identity.request_fields(seccomp_bpf))
        try:
            process = DirectSpawner().spawn(req)
        finally:
            stdio.close_child_ends()
        return _supervise(process, stdio)
    finally:
        stdio.close()


def exec_env(env: list[str], tty: bool) -> list[str]:
    """The container's environment, with TERM=xterm over any TERM when a terminal is given:
    containerd's CRI exec adds it (oci.WithEnv) for `kubectl exec -t`."""
    if not tty:
        return env
    return [*(e for e in env if not e.startswith("TERM=")), "TERM=xterm"]


def _supervise(process: ChildProcess, stdio: _PipeStdio | _TtyStdio) -> int:
    def forward(sig: int, _frame: object) -> None:
        process.send_signal(sig)

    old = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    if isinstance(stdio, _TtyStdio):
        old[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, lambda _s, _f: stdio.copy_size())
        # A resize while the command was being spawned had no handler yet: copy the size again.
        stdio.copy_size()
    try:
        stdio.begin()
        _relay(process, stdio)
        exit_info = process.wait()
        if "sandbox.trace" in sys.modules:  # loaded by --trace only: off costs this lookup
            from sandbox.trace import emit

            emit("runtime", "exit", f"waitid(P_PIDFD, pid {process.pid}) -> exit code "
                              f"{exit_info.exit_code}", pid=process.pid, exitCode=exit_info.exit_code)
        return exit_info.exit_code
    finally:
        stdio.end()
        for sig, handler in old.items():
            signal.signal(sig, handler)
        process.close()


class _PipeStdio:
    """Three pipes: our stdin (or nothing) -> its 0, its 1 -> our 1, its 2 -> our 2."""

    def __init__(self, stdin: bool) -> None:
        in_r, self.in_w = os.pipe2(os.O_CLOEXEC)
        if not stdin:  # an empty pipe: reads give end-of-file, as from /dev/null
            os.close(self.in_w)
            self.in_w = -1
        else:
            os.set_blocking(self.in_w, False)
        self.out_r, out_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self.err_r, err_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        for fd in (out_w, err_w):
            os.set_blocking(fd, True)
        self.child_fds = (in_r, out_w, err_w)
        self.outputs = {self.out_r: 1, self.err_r: 2}
        self.input = (0, self.in_w) if stdin else None

    def close_child_ends(self) -> None:
        for fd in self.child_fds:
            os.close(fd)
        self.child_fds = (-1, -1, -1)

    def begin(self) -> None:
        pass

    def end(self) -> None:
        pass

    def close_input(self) -> None:
        if self.in_w >= 0:
            os.close(self.in_w)
            self.in_w = -1

    def close(self) -> None:
        if self.child_fds[0] >= 0:
            self.close_child_ends()
        for fd in (self.in_w, self.out_r, self.err_r):
            if fd >= 0:
                os.close(fd)
        self.in_w = self.out_r = self.err_r = -1


class _TtyStdio:
    """A pseudo-terminal of the container's devpts: the slave is its 0, 1 and 2."""

    def __init__(self, main_pid: int, main_pidfd: int, stdin: bool) -> None:
        import fcntl

        self.master = -1
        try:
            self.master = _open_container_ptmx(main_pid, main_pidfd)
            fcntl.ioctl(self.master, TIOCSPTLCK, b"\0\0\0\0")  # unlockpt
            # TIOCGPTPEER opens the slave from the master, with no path the container could swap
            # (and fails on anything that is not a pty master).
            slave = fcntl.ioctl(self.master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError as e:
            if self.master >= 0:
                os.close(self.master)
            raise ContainerStartError("CreateContainerError", "open a terminal in the container", e.errno or 0,
                                      "/dev/pts/ptmx") from None
        self.child_fds = (slave, slave, slave)
        self.outputs = {self.master: 1}
        self.input = (0, self.master) if stdin else None
        self.saved: list[Any] | None = None
        self.copy_size()

    def copy_size(self) -> None:
        """Our terminal's size onto the container's (TIOCGWINSZ -> TIOCSWINSZ); on SIGWINCH too."""
        import fcntl
        import termios

        for fd in (0, 1, 2):
            try:
                size = fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
            except OSError:
                continue
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, size)
            return

    def close_child_ends(self) -> None:
        if self.child_fds[0] >= 0:
            os.close(self.child_fds[0])
        self.child_fds = (-1, -1, -1)

    def begin(self) -> None:
        """Raw mode on our terminal: Ctrl-C and friends travel as bytes to the container's
        terminal, whose line discipline signals the command (kubectl exec -t does the same)."""
        if self.input is not None and os.isatty(0):
            import termios
            import tty

            self.saved = termios.tcgetattr(0)
            # TCSANOW, not setraw's default TCSAFLUSH: what the user typed before the command
            # started is kept and goes to it (kubectl's term.MakeRaw flushes nothing either).
            tty.setraw(0, termios.TCSANOW)

    def end(self) -> None:
        if self.saved is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, self.saved)
            self.saved = None

    def close(self) -> None:
        self.close_child_ends()
        if self.master >= 0:
            os.close(self.master)
            self.master = -1


TIOCSPTLCK = 0x40045431  # unlockpt(3)
TIOCGPTPEER = 0x5441  # Linux 4.13; neither is in Python's termios


def _open_container_ptmx(main_pid: int, main_pidfd: int) -> int:
    """The container's /dev/pts/ptmx, reached through /proc/PID/root one component at a time with
    O_NOFOLLOW: a symlink planted by the container cannot send us to a host file."""
    root = os.open(f"/proc/{main_pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    fds = [root]
    try:
        # The pid could have been reused between reading the state and opening its root.
        signal.pidfd_send_signal(main_pidfd, 0)
        for name in ("dev", "pts"):
            fds.append(os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fds[-1]))
        return os.open("ptmx", os.O_RDWR | os.O_NOCTTY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                       dir_fd=fds[-1])
    finally:
        for fd in fds:
            os.close(fd)


def _relay(process: ChildProcess, stdio: _PipeStdio | _TtyStdio) -> None:
    """Copy until the command has exited and its output is drained. Our input goes through a
    one-chunk buffer, so a command that does not read never keeps us from draining its output."""
    outputs = dict(stdio.outputs)
    source, sink = stdio.input if stdio.input is not None else (-1, -1)
    pending = b""
    while True:
        want = dict.fromkeys(outputs, select.POLLIN)
        want[process.pidfd] = select.POLLIN
        if pending:
            want[sink] = want.get(sink, 0) | select.POLLOUT
        elif source >= 0:
            want[source] = select.POLLIN
        poller = select.poll()
        for fd, events in want.items():
            poller.register(fd, events)
        ready = dict(poller.poll())
        for fd in [fd for fd in outputs if ready.get(fd)]:
            if not _copy_once(fd, outputs[fd]):
                del outputs[fd]
        if pending and ready.get(sink, 0) & (select.POLLOUT | select.POLLERR):
            written = _write_some(sink, pending)
            if written < 0:  # it closed its stdin: the rest of ours goes nowhere, as with kubectl
                pending, source = b"", -1
            pending = pending[written:]
        elif source >= 0 and ready.get(source):
            pending = os.read(source, CHUNK)
            if not pending:  # end of our input: end of the command's (a terminal keeps its own)
                source = -1
                if isinstance(stdio, _PipeStdio):
                    stdio.close_input()
        if ready.get(process.pidfd):
            for fd, to in outputs.items():
                _drain(fd, to)
            return


def _copy_once(fd: int, to: int) -> bool:
    """One read from `fd` written out to `to`; False at end-of-file (EIO: the terminal's last
    holder closed it)."""
    try:
        data = os.read(fd, CHUNK)
    except BlockingIOError:
        return True
    except OSError as e:
        if e.errno == 5:  # EIO
            return False
        raise
    if not data:
        return False
    write_all(to, data)
    return True


def _drain(fd: int, to: int) -> None:
    """All the exited command wrote is in the pipe already; a background child of it that keeps
    the pipe open does not hold us (as runc's exec returns at the process's exit)."""
    while _copy_once(fd, to):
        try:
            if not select.select([fd], [], [], 0)[0]:
                return
        except OSError:
            return



def _write_some(fd: int, data: bytes) -> int:
    """Bytes written (0 when full), or -1 when the reading side is gone."""
    try:
        return os.write(fd, data)
    except BlockingIOError:
        return 0
    except BrokenPipeError:
        return -1
