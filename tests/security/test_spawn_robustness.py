"""The spawn handshake has a deadline and yields to signals (security-reliability.md 4.4).

A stage 2 that never reaches execve (blocked opening a FIFO, a hung filesystem) used to freeze the
runtime in sbx_spawn_finish() forever, deaf to Ctrl-C. The trigger here is real and from outside:
stage 2 is stopped with SIGSTOP while it waits for "go", so it can never answer.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from sandbox import native
from sandbox.errors import ContainerStartError
from sandbox.native import SPAWN_TIMEOUT, SpawnRequest
from sandbox.process.spawner import DirectSpawner

pytestmark = pytest.mark.root


def _request() -> SpawnRequest:
    # No namespaces, no mounts: the handshake alone, with a harmless host command.
    return SpawnRequest(argv=["/bin/true"], env=[], stage_name="test")


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _wait_in_poll(pid: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/wchan") as f:
            if "poll" in f.read():
                return
        time.sleep(0.01)
    raise AssertionError("the spawn never started waiting")


def _signal_state(pid: int) -> str:
    """What a stuck child shows: where it sleeps and its signal masks (for the failure message)."""
    try:
        with open(f"/proc/{pid}/wchan") as f:
            wchan = f.read()
        with open(f"/proc/{pid}/status") as f:
            masks = [line.strip() for line in f if line.startswith(("SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt"))]
    except OSError as e:
        return f"gone ({e})"
    return f"wchan {wchan}; " + "; ".join(masks)


def test_default_deadline_is_ten_seconds() -> None:
    assert SPAWN_TIMEOUT == 10


# Stage 1 forked from this process, or the shim binary exec'd as stage 1 (what DirectSpawner uses).
STAGE1 = [pytest.param(None, id="forked"), pytest.param(native.stage1_helper(), id="exec")]


@pytest.mark.parametrize("helper", STAGE1)
def test_stuck_stage2_becomes_a_create_container_error_and_is_killed(helper: str | None) -> None:
    started = native.spawn_start(_request(), helper)
    os.kill(started.pid, signal.SIGSTOP)
    begin = time.monotonic()
    with pytest.raises(ContainerStartError) as caught:
        started.finish(timeout=0.5)
    took = time.monotonic() - begin
    assert caught.value.reason == "CreateContainerError"
    assert "timed out after 0.5s waiting for the container's set-up (stage 2)" in str(caught.value)
    assert 0.4 < took < 3, took
    # The caller reaps it, as after any failure: killed by the deadline, not left stopped.
    _, status = os.waitpid(started.pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert _gone(started.pid)


@pytest.mark.parametrize("helper", STAGE1)
def test_the_next_spawn_after_a_timeout_works(helper: str | None) -> None:
    stuck = native.spawn_start(_request(), helper)
    os.kill(stuck.pid, signal.SIGSTOP)
    with pytest.raises(ContainerStartError):
        stuck.finish(timeout=0.2)
    os.waitpid(stuck.pid, 0)
    process = DirectSpawner().spawn(_request())
    try:
        assert process.wait().exit_code == 0
    finally:
        process.close()


def test_ctrl_c_stops_a_stuck_spawn() -> None:
    """SIGINT during the wait reaches Python's handler (KeyboardInterrupt) long before the
    deadline; the spawner kills and reaps stage 2 on the way out."""
    script = textwrap.dedent("""
        import os, signal, sys
        from sandbox import native
        started = native.spawn_start(native.SpawnRequest(argv=["/bin/true"], env=[]))
        os.kill(started.pid, signal.SIGSTOP)
        print(started.pid, flush=True)
        try:
            started.finish(timeout=60)
        except KeyboardInterrupt:
            os.kill(started.pid, signal.SIGKILL)  # as DirectSpawner does on any exception
            os.waitpid(started.pid, 0)
            print("interrupted", flush=True)
            sys.exit(130)
    """)
    # Python leaves SIGINT ignored in a child that inherits it ignored (a shell's `cmd &` does
    # that): start the child as a terminal would, with the default disposition.
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert proc.stdout is not None
        stage2 = int(proc.stdout.readline())
        _wait_in_poll(proc.pid)  # the deadline is 60 s away
        begin = time.monotonic()
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"no reaction to SIGINT: {_signal_state(proc.pid)}") from None
        assert time.monotonic() - begin < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130 and "interrupted" in out
    assert _gone(stage2)
