"""The verbs a kubectl user reaches for, against real pods: `exec -it` driven through a real
terminal (typing, resize, Ctrl-C, Ctrl-D), `get -w` through a crash loop, `logs` options,
`events`, `wait`."""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import signal
import struct
import subprocess
import termios
import threading
import time

import pytest
from conftest import Sandbox

pytestmark = pytest.mark.root

SHELL = """
apiVersion: v1
kind: Pod
metadata: {name: shell}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: sh, image: busybox, command: ["sleep", "1000"]}
"""


class Terminal:
    """`sandbox exec -it` on a fresh pty, as a user's terminal runs it: the CLI is the session
    leader and the foreground process group of the terminal, so the kernel sends it SIGWINCH when
    the terminal is resized."""

    def __init__(self, sbx: Sandbox, *args: str, rows: int = 24, cols: int = 80) -> None:
        master, slave = os.openpty()
        self.master = master
        self.resize(rows, cols)
        self.proc = subprocess.Popen(sbx.cmd("exec", "-it", *args), stdin=slave, stdout=slave, stderr=slave,
                                     start_new_session=True,
                                     preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        os.close(slave)
        self.seen = b""  # output not yet matched
        self.transcript = b""  # everything shown

    def resize(self, rows: int, cols: int) -> None:
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def expect(self, pattern: str, timeout: float = 15) -> re.Match[str]:
        """Read until the output since the last match has `pattern` (output stays for the next
        call after the match)."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.seen.decode(errors="replace").replace("\r", "")
            found = re.search(pattern, text)
            if found:
                self.seen = text[found.end():].encode()
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {pattern!r} in the terminal: {text!r}")
            if select.select([self.master], [], [], min(left, 0.1))[0]:
                try:
                    data = os.read(self.master, 4096)
                except OSError:  # EIO: the CLI and the command closed the terminal
                    raise AssertionError(f"terminal closed before {pattern!r}: {text!r}") from None
                self.seen += data
                self.transcript += data

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


def test_exec_it_typing_resize_ctrl_c_and_ctrl_d(sbx: Sandbox) -> None:
    proc = sbx.start(sbx.manifest(SHELL))
    sbx.wait_running("shell")
    term = Terminal(sbx, "shell", "--", "sh", rows=30, cols=100)
    try:
        term.type(b"echo hi $((6*7))\n")  # typed ahead, before the shell even started: kept
        term.expect(r"\nhi 42\n")
        term.expect(r"# ")
        term.type(b"stty size\n")
        term.expect(r"\n30 100\n")
        term.expect(r"# ")
        term.resize(50, 150)  # the kernel sends the CLI SIGWINCH; it sets the container's pty size
        time.sleep(0.3)
        term.type(b"stty size\n")
        term.expect(r"\n50 150\n")
        term.expect(r"# ")
        # Ctrl-C reaches the command in the container (its terminal's line discipline), not the CLI.
        term.type(b"sleep 100; echo not-interrupted\n")
        time.sleep(0.5)
        term.type(b"\x03")
        term.type(b"echo status $?\n")
        term.expect(r"\nstatus 130\n")
        term.expect(r"# ")
        shown = term.transcript.decode(errors="replace").replace("\r", "").splitlines()
        assert "not-interrupted" not in shown  # the line typed holds it, its output would be alone
        assert term.proc.poll() is None, "Ctrl-C ended the CLI"
        term.type(b"\x04")  # Ctrl-D at an empty prompt: the shell's end of input
        assert term.proc.wait(timeout=15) == 0
    finally:
        term.close()
    sbx.stop(proc)


CRASHER = """
apiVersion: v1
kind: Pod
metadata: {name: crasher}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: busybox, command: ["sh", "-c", "echo started; sleep 1; exit 3"]}
"""


class Verb:
    """A `sandbox` verb left running (-w, -f, wait): its stdout lines as they come."""

    def __init__(self, sbx: Sandbox, *args: str) -> None:
        self.proc = subprocess.Popen(sbx.cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.pump = threading.Thread(target=self._pump, daemon=True)
        self.pump.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def __enter__(self) -> Verb:
        return self

    def __exit__(self, *exc: object) -> None:
        """A test that fails before end() must not leave the verb running (ended: a no-op)."""
        if not self.proc.stdout or not self.proc.stdout.closed:
            self.end(signal.SIGKILL, timeout=10)

    def end(self, sig: int | None = None, timeout: float = 30) -> int:
        """Its exit code, after `sig` (if any); killed if it does not end."""
        if sig is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.pump.join(10)
            assert self.proc.stdout is not None and self.proc.stderr is not None
            self.proc.stdout.close()
            self.proc.stderr.close()


def test_get_watch_follows_a_crash_loop(sbx: Sandbox) -> None:
    with Verb(sbx, "get", "pods", "-w") as watch:
        lines = watch.lines
        time.sleep(0.5)  # watching before the pod exists: its first record is a change too
        proc = sbx.start(sbx.manifest(CRASHER), "--backoff-initial", "1s", "--backoff-max", "2s")

        def statuses() -> list[tuple[str, str]]:
            return [(f[2], f[3]) for f in (line.split() for line in lines[1:]) if len(f) >= 4 and f[0] == "crasher"]

        sbx.wait_for(lambda: any(s == "CrashLoopBackOff" and int(r) >= 1 for s, r in statuses()), timeout=30,
                     message="a CrashLoopBackOff row")
        sbx.stop(proc)
        assert watch.end(signal.SIGINT) == 0
    seen = [s for s, _ in statuses()]
    assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert "Running" in seen and seen.index("Running") < seen.index("CrashLoopBackOff"), seen
    assert "Error" in seen, seen
    assert all(a != b for a, b in zip(statuses(), statuses()[1:])), "a row printed with no change"


TWO = """
apiVersion: v1
kind: Pod
metadata: {name: two}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "echo a1; echo a2; touch /tmp/ready; sleep 1; echo a3; exec sleep 1000"]
    readinessProbe:
      exec: {command: [test, -e, /tmp/ready]}
      periodSeconds: 1
  - {name: side, image: busybox, command: ["sh", "-c", "echo s1; exec sleep 1000"]}
"""


def test_logs_events_and_wait_on_a_running_pod(sbx: Sandbox) -> None:
    proc = sbx.start(sbx.manifest(TWO))
    sbx.wait_for(lambda: sbx.state("two"), message="the pod's record")  # kubectl wait: NotFound before
    met = sbx.run("wait", "--for=condition=Ready", "pod/two", "--timeout", "30s")
    assert met.returncode == 0 and met.stdout == "pod/two condition met\n", met.stderr
    phase = sbx.run("wait", "--for=jsonpath={.status.phase}=Running", "pod/two", "--timeout=5s")
    assert phase.stdout == "pod/two condition met\n"
    sbx.wait_for(lambda: "a3" in sbx.run("logs", "two", "-c", "app").stdout, message="a3 logged")

    every = sbx.run("logs", "two", "--all-containers", "--prefix", "--timestamps").stdout.splitlines()
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}(Z|[+-]\d\d:\d\d)"
    assert [re.sub(stamp, "T", line) for line in every] == [
        "[pod/two/app] T a1", "[pod/two/app] T a2", "[pod/two/app] T a3", "[pod/two/side] T s1"]
    assert sbx.run("logs", "two", "-c", "app", "--tail", "1").stdout == "a3\n"
    assert sbx.run("logs", "two", "-c", "app", "--since", "1h").stdout == "a1\na2\na3\n"

    with Verb(sbx, "logs", "two", "-f", "--all-containers", "--prefix", "--tail", "1") as follower:
        sbx.wait_for(lambda: len(follower.lines) >= 2, message="the followed lines")
        assert sorted(follower.lines) == ["[pod/two/app] a3", "[pod/two/side] s1"]

        table = sbx.run("events", "--for", "pod/two").stdout.splitlines()
        assert table[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
        reasons = [line.split()[2] for line in table[1:]]
        assert reasons.count("Started") == 2 and all(line.split()[3] == "Pod/two" for line in table[1:]), table
        items = json.loads(sbx.run("events", "-o", "json").stdout)["items"]
        assert {i["involvedObject"].get("fieldPath") for i in items} >= {"spec.containers{app}", "spec.containers{side}"}

        sbx.stop(proc)
        assert follower.end() == 0  # -f ends with the pod
    with Verb(sbx, "wait", "--for=delete", "pod/two", "--timeout", "30s") as gone:
        time.sleep(0.3)
        assert sbx.run("delete", "two").returncode == 0
        assert gone.end() == 0 and gone.lines == ["pod/two deleted"]
