"""`delete --grace-period=N` and `--now` (kubectl's): the delete's grace period replaces the
pod's terminationGracePeriodSeconds for that stop, for a foreground `run` pod (through its
runtime's SIGTERM) and for a node agent's pod (through StopPod), and `get -o json` shows it as
metadata.deletionGracePeriodSeconds while the pod terminates."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.conftest import Sandbox

pytestmark = pytest.mark.root

# PID 1 of its own PID namespace ignoring SIGTERM (and trapping it besides): only SIGKILL ends it,
# at the end of a grace period of two minutes unless the delete shortens it.
STUBBORN = """apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 120
  containers:
  - name: main
    image: busybox:1.36
    command: ["sh", "-c", "trap 'echo ignored' TERM; echo up; while :; do sleep 0.2; done"]
{extra}"""

# preStop that would outlast the pod's own grace period: the delete's shorter one cuts it off too
LONG_PRE_STOP = """    lifecycle:
      preStop:
        exec: {command: ["sleep", "100"]}
"""


def deletion_grace(sbx: Sandbox, name: str) -> list[int] | None:
    """[metadata.deletionGracePeriodSeconds] as `get -o json` shows it, once it is there."""
    shown = sbx.run("get", "pod", name, "-o", "json")
    if shown.returncode != 0:
        return None
    value = json.loads(shown.stdout)["metadata"].get("deletionGracePeriodSeconds")
    return None if value is None else [value]


def delete_in_background(sbx: Sandbox, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(sbx.cmd("delete", *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_delete(delete: subprocess.Popen[str], started: float) -> float:
    try:
        out, err = delete.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        delete.kill()
        delete.communicate()
        raise
    assert delete.returncode == 0, err
    assert "deleted" in out
    return time.monotonic() - started


def test_grace_period_shortens_the_stop_of_a_foreground_pod(sbx: Sandbox) -> None:
    proc = sbx.start(sbx.manifest(STUBBORN.format(name="stubborn", extra="")), "--network", "none")
    sbx.wait_running("stubborn")
    main = sbx.pid_of("stubborn", "main")
    started = time.monotonic()
    delete = delete_in_background(sbx, "pod", "stubborn", "--grace-period=1")
    shown = sbx.wait_for(lambda: deletion_grace(sbx, "stubborn"), message="deletionGracePeriodSeconds")
    assert shown == [1]
    took = finish_delete(delete, started)
    # SIGKILL no sooner than 2 s after SIGTERM (the kubelet's minimum), and well before 120 s
    assert 1.5 < took < 10, took
    assert not Path(f"/proc/{main}").exists()
    sbx.finish(proc, timeout=10)
    assert sbx.state("stubborn") is None


def test_force_kills_a_foreground_pod_at_once(sbx: Sandbox) -> None:
    proc = sbx.start(sbx.manifest(STUBBORN.format(name="forced", extra="")), "--network", "none")
    sbx.wait_running("forced")
    started = time.monotonic()
    done = sbx.run("delete", "pod", "forced", "--force", timeout=30)
    assert done.returncode == 0, done.stderr
    assert "Immediate deletion does not wait" in done.stderr
    assert time.monotonic() - started < 5
    sbx.finish(proc, timeout=10)
    assert sbx.state("forced") is None


def test_now_cuts_prestop_and_grace_of_an_agent_pod(agent_sbx: Sandbox) -> None:
    sbx = agent_sbx
    path = sbx.manifest(STUBBORN.format(name="agented", extra=LONG_PRE_STOP), "agented.yaml")
    done = sbx.run("run", "-d", "--network", "none", str(path))
    assert done.returncode == 0, done.stderr
    main = sbx.pid_of("agented", "main")
    started = time.monotonic()
    delete = delete_in_background(sbx, "pod", "agented", "--now")
    shown = sbx.wait_for(lambda: deletion_grace(sbx, "agented"), message="deletionGracePeriodSeconds")
    assert shown == [1]
    took = finish_delete(delete, started)
    # preStop gets the 1 s, then SIGTERM, SIGKILL 2 s later: not the 120 s of the pod's own
    assert took < 10, took
    assert not Path(f"/proc/{main}").exists()
    assert sbx.state("agented") is None


def test_a_second_delete_only_shortens_the_grace_of_a_terminating_pod(sbx: Sandbox) -> None:
    """As the API server takes a delete of a pod already being deleted: one without a shorter
    grace period changes nothing (the pod keeps terminating, its preStop runs on), a shorter one
    moves the end earlier (a container still in its preStop is signalled now, SIGKILL 2 s later)."""
    proc = sbx.start(sbx.manifest(STUBBORN.format(name="twice", extra=LONG_PRE_STOP)), "--network", "none")
    sbx.wait_running("twice")
    main = sbx.pid_of("twice", "main")
    first = delete_in_background(sbx, "pod", "twice")
    assert sbx.wait_for(lambda: deletion_grace(sbx, "twice"), message="the first delete") == [120]
    again = sbx.run("delete", "pod", "twice", "--timeout", "2", timeout=30)
    assert again.returncode != 0 and "did not stop within 2s" in again.stderr, again.stderr
    assert Path(f"/proc/{main}").exists() and deletion_grace(sbx, "twice") == [120]  # not killed
    started = time.monotonic()
    shorter = sbx.run("delete", "pod", "twice", "--grace-period=3", timeout=30)
    assert shorter.returncode == 0, shorter.stderr
    took = time.monotonic() - started
    assert took < 10, took  # SIGTERM at once (the preStop had 100 s), SIGKILL by the 3 s end
    assert not Path(f"/proc/{main}").exists()
    finish_delete(first, started)
    sbx.finish(proc, timeout=10)
    assert sbx.state("twice") is None
