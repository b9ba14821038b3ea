"""`sandbox exec` and exec hooks/probes hand the container no host file descriptor
(security-reliability.md 1.10; runc's create.bats "detect fd leak as comprehensively as possible").

Before: `sandbox exec` passed the caller's own stdout/stderr, so the command could re-open the
caller's host file through /proc/self/fd/1 (truncate it, read it). Now its stdio are pipes the
runtime relays, or with `-t` a terminal of the container's own devpts.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from integration_conftest import Sandbox

pytestmark = pytest.mark.root

POD = r"""
apiVersion: v1
kind: Pod
metadata: {name: fds}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: busybox
    command: [sleep, "1000"]
    lifecycle:
      postStart:
        exec:
          command: [sh, -c, "fds=$(ls -l /proc/$$/fd); echo \"$fds\" > /tmp/hook-fds"]
    readinessProbe:
      periodSeconds: 1
      exec:
        command: [sh, -c, "fds=`ls -l /proc/$$$$/fd`; echo \"$fds\" > /tmp/probe-fds"]
"""

SHOW_FDS = "for f in 0 1 2; do readlink /proc/self/fd/$f; done; ls /proc/self/fd"


@pytest.fixture
def pod(sbx: Sandbox) -> Iterator[Sandbox]:
    proc = sbx.start(sbx.manifest(POD))
    sbx.wait_running("fds")
    yield sbx
    sbx.stop(proc)


def _fd_report(text: str) -> tuple[list[str], list[str]]:
    lines = text.split()
    return lines[:3], lines[3:]


def test_exec_stdio_are_pipes_and_nothing_else_is_open(pod: Sandbox) -> None:
    result = pod.run("exec", "fds", "--", "sh", "-c", SHOW_FDS)
    assert result.returncode == 0, result.stderr
    links, listed = _fd_report(result.stdout)
    assert all(link.startswith("pipe:[") for link in links), links
    assert len(set(links)) == 3  # stdin, stdout and stderr apart, as kubectl keeps them
    # 0, 1, 2 and the directory ls itself reads /proc/self/fd through
    assert listed == ["0", "1", "2", "3"], listed


def test_exec_with_stdin_relays_it_through_a_pipe(pod: Sandbox) -> None:
    result = subprocess.run(pod.cmd("exec", "-i", "fds", "--", "sh", "-c", "cat; readlink /proc/self/fd/0"),
                            input="from the caller\n", capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "from the caller" and lines[1].startswith("pipe:[")


def test_stdin_the_command_does_not_read_does_not_change_its_exit_code(pod: Sandbox) -> None:
    result = subprocess.run(pod.cmd("exec", "-i", "fds", "--", "sh", "-c", "exit 3"),
                            input=b"x" * (4 << 20), capture_output=True, timeout=30)
    assert result.returncode == 3, result.stderr


def test_exec_without_stdin_reads_end_of_file(pod: Sandbox) -> None:
    result = subprocess.run(pod.cmd("exec", "fds", "--", "sh", "-c", "cat; echo done"),
                            input="not passed\n", capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stdout == "done\n", result


def test_reopening_proc_self_fd_1_reaches_only_the_relay(pod: Sandbox, tmp_path: Path) -> None:
    """With our own stdout handed over, `> /proc/self/fd/1` re-opened the caller's host file and
    truncated it (losing "first"), and `stat -L` saw a regular file."""
    host_file = tmp_path / "caller-output"
    with open(host_file, "w") as out:
        result = subprocess.run(pod.cmd("exec", "fds", "--", "sh", "-c",
                                        "echo first; stat -L -c %F /proc/self/fd/1; echo second > /proc/self/fd/1"),
                                stdout=out, stderr=subprocess.PIPE, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert host_file.read_text() == "first\nfifo\nsecond\n"


def test_large_output_comes_through_intact(pod: Sandbox) -> None:
    result = subprocess.run(pod.cmd("exec", "fds", "--", "sh", "-c",
                                    "head -c 10485760 /dev/urandom | tee /tmp/big | md5sum >&2; cat /tmp/big"),
                            capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout) == 10 * 1024 * 1024
    import hashlib

    assert hashlib.md5(result.stdout).hexdigest() == result.stderr.split()[0].decode()


@pytest.mark.parametrize("command, code", [("true", 0), ("false", 1), ("exit 7", 7), ("exit 127", 127), ("kill -INT $$", 130)])
def test_exit_codes_are_preserved(pod: Sandbox, command: str, code: int) -> None:
    assert pod.run("exec", "fds", "--", "sh", "-c", command).returncode == code


def test_missing_command_is_127(pod: Sandbox) -> None:
    result = pod.run("exec", "fds", "--", "no-such-command")
    assert result.returncode == 127 and "not found" in result.stderr


def test_ctrl_c_is_forwarded(pod: Sandbox) -> None:
    """The command runs in its own session (runc's exec does too): Ctrl-C reaches the runtime,
    which forwards it."""
    proc = subprocess.Popen(pod.cmd("exec", "fds", "--", "sh", "-c", "echo started; exec sleep 100"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "started\n"
    begin = time.monotonic()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 130
    assert time.monotonic() - begin < 5
    proc.communicate()


def test_exec_hook_and_probe_get_no_host_fd(pod: Sandbox) -> None:
    """The hook's and the probe's shell ($$; the probe's written `$$$$` in backquotes: the kubelet
    expands $(VAR) in probe commands, not in hooks) lists its fds before any redirection of its own, from
    a command substitution (whose pipe it then holds too): every one is a pipe (runc's fd-leak
    test allows pipes, ptys and anonymous sockets only)."""
    pod.wait_for(lambda: pod.run("exec", "fds", "--", "test", "-s", "/tmp/probe-fds").returncode == 0,
                 message="the readiness probe ran")
    for who in ("hook", "probe"):
        listing = pod.run("exec", "fds", "--", "cat", f"/tmp/{who}-fds").stdout
        links = dict(line.split()[-3::2] for line in listing.splitlines() if " -> " in line)
        assert {"0", "1", "2"} <= set(links), (who, listing)
        assert all(target.startswith("pipe:[") for target in links.values()), (who, listing)


def _in_terminal(pod: Sandbox, args: list[str], feed: list[tuple[float, bytes]] | None = None,
                 size: tuple[int, int] = (33, 101), resize: tuple[float, int, int] | None = None) -> tuple[int, str]:
    """Run `sandbox exec` on a fresh pty as a user's terminal; returns (exit code, what it showed)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", *size, 0, 0))
    proc = subprocess.Popen(pod.cmd("exec", *args), stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True, preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
    os.close(slave)
    begin, out = time.monotonic(), b""
    todo = list(feed or [])
    try:
        while True:
            now = time.monotonic() - begin
            if todo and now >= todo[0][0]:
                os.write(master, todo.pop(0)[1])
            if resize and now >= resize[0]:
                fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", resize[1], resize[2], 0, 0))
                proc.send_signal(signal.SIGWINCH)  # the kernel signals only the terminal's foreground group
                resize = None
            if not select.select([master], [], [], 0.05)[0]:
                if proc.poll() is not None or now > 30:
                    break
                continue
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: every holder of the terminal closed it
                break
            out += data
        return proc.wait(timeout=10), out.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def test_tty_is_the_containers_own_pty_with_our_size(pod: Sandbox) -> None:
    code, shown = _in_terminal(pod, ["-it", "fds", "--", "sh", "-c",
                                     "readlink /proc/self/fd/0; readlink /proc/self/fd/1; readlink /proc/self/fd/2; "
                                     "stty size; ls /proc/self/fd | tr '\\n' ' '; exit 5"])
    assert code == 5, shown
    lines = shown.replace("\r", "").splitlines()
    assert lines[0] == lines[1] == lines[2] and lines[0].startswith("/dev/pts/"), lines  # the container's devpts
    assert lines[3] == "33 101"
    # the fds, then (no newline after them) kubectl's words for the exit code on the same terminal
    assert lines[4] == "0 1 2 3 command terminated with exit code 5", lines


def test_tty_sets_term_as_containerd_does(pod: Sandbox) -> None:
    # containerd's CRI exec adds TERM=xterm to a terminal's environment; pipes get none.
    code, shown = _in_terminal(pod, ["-it", "fds", "--", "sh", "-c", "echo term=$TERM"])
    assert code == 0 and "term=xterm" in shown.replace("\r", "").splitlines(), shown
    assert pod.run("exec", "fds", "--", "sh", "-c", "echo term=$TERM").stdout == "term=\n"


def test_tty_ctrl_c_and_interactive_input(pod: Sandbox) -> None:
    code, shown = _in_terminal(pod, ["-it", "fds", "--", "sh"], feed=[(1.0, b"echo hi $((6*7))\n"),
                                                                     (1.5, b"exit 4\n")])
    assert code == 4 and "hi 42" in shown, shown
    code, shown = _in_terminal(pod, ["-it", "fds", "--", "sh", "-c", "echo ready; exec sleep 100"],
                               feed=[(1.0, b"\x03")])
    assert code == 130, shown


def test_tty_follows_the_window_size(pod: Sandbox) -> None:
    code, shown = _in_terminal(pod, ["-it", "fds", "--", "sh", "-c", "for i in $(seq 30); do stty size; sleep 0.1; done"],
                               resize=(1.0, 50, 150))
    sizes = set(shown.replace("\r", "").splitlines())
    assert code == 0 and {"33 101", "50 150"} <= sizes, sizes


def test_tty_without_a_terminal_on_stdin_falls_back_as_kubectl(pod: Sandbox) -> None:
    result = subprocess.run(pod.cmd("exec", "-it", "fds", "--", "sh", "-c", "cat; readlink /proc/self/fd/0"),
                            input="piped\n", capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert "Unable to use a TTY" in result.stderr
    assert result.stdout.splitlines()[0] == "piped" and result.stdout.splitlines()[1].startswith("pipe:[")


def test_tty_without_stdin_is_dropped_as_kubectl_drops_it(pod: Sandbox) -> None:
    # kubectl exec -t without -i gives no terminal (its SetupTTY), even from a terminal
    code, shown = _in_terminal(pod, ["-t", "fds", "--", "sh", "-c", "readlink /proc/self/fd/1; echo term=$TERM"])
    lines = shown.replace("\r", "").splitlines()
    assert code == 0 and lines[0].startswith("pipe:[") and "term=" in lines, shown
