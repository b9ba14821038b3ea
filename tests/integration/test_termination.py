"""Stopping a pod: Ctrl-C / SIGTERM / `sandbox delete` as the kubelet deletes a pod (SIGTERM, SIGKILL
after terminationGracePeriodSeconds), and a killed runtime leaving nothing running."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from conftest import Sandbox

from sandbox.events import parse_rfc3339

pytestmark = pytest.mark.root

MIXED = """
apiVersion: v1
kind: Pod
metadata: {name: %s}
spec:
  terminationGracePeriodSeconds: %d
  containers:
  - name: polite
    image: busybox
    command: ["sh", "-c", "trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done"]
  - name: stubborn
    image: busybox
    # PID 1 of its PID namespace with no SIGTERM handler: the kernel drops SIGTERM.
    command: ["sleep", "1000"]
"""


def test_sigint_stops_gracefully_then_kills_at_grace_deadline(sbx: Sandbox) -> None:
    proc = sbx.start(sbx.manifest(MIXED % ("graceful", 3)))
    sbx.wait_running("graceful", containers=2)
    started = time.monotonic()
    code, out, err = sbx.stop(proc, signal.SIGINT)
    elapsed = time.monotonic() - started
    assert 3.0 <= elapsed < 6.0, elapsed
    assert "[polite] bye" in out
    assert "polite: terminated (Completed, exit code 0)" in err
    assert "stubborn: terminated (Error, exit code 137)" in err
    assert code == 1 and "pod default/graceful: Failed" in err


def test_grace_period_minimum_is_two_seconds(sbx: Sandbox) -> None:
    proc = sbx.start(sbx.manifest(MIXED % ("min-grace", 0)))
    sbx.wait_running("min-grace", containers=2)
    started = time.monotonic()
    sbx.stop(proc, signal.SIGTERM)
    assert 2.0 <= time.monotonic() - started < 4.5


def test_second_ctrl_c_kills_at_once(sbx: Sandbox) -> None:
    proc = sbx.start(sbx.manifest(MIXED % ("impatient", 30)))
    sbx.wait_running("impatient", containers=2)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    # the second Ctrl-C only after the first was handled (two pending SIGINTs are one): the graceful
    # stop has begun once `polite` has exited on its SIGTERM and the Killing events are recorded
    sbx.wait_for(lambda: (s := sbx.state("impatient")) and any(e["reason"] == "Killing" for e in s["events"]),
                 message="the graceful stop under way")
    code, _, err = sbx.stop(proc, signal.SIGINT)
    assert time.monotonic() - started < 3
    assert "stubborn: terminated (Error, exit code 137)" in err


def test_a_pod_shows_terminating_for_its_whole_grace_period(sbx: Sandbox) -> None:
    # kubectl shows Terminating from the deletion on; a container that ignores SIGTERM must not
    # leave the record saying Running until its SIGKILL.
    proc = sbx.start(sbx.manifest(MIXED.replace("trap 'echo bye; exit 0' TERM; ", "") % ("slow", 30)))
    sbx.wait_running("slow", containers=2)
    stopped_at = time.time()
    proc.send_signal(signal.SIGINT)
    sbx.wait_for(lambda: (s := sbx.state("slow")) and s["summary"]["status"] == "Terminating", timeout=3,
                 message="Terminating in the pod's record")
    row = sbx.run("get", "pods", "slow").stdout.splitlines()[1].split()
    assert row[2] == "Terminating", row
    assert [e["reason"] for e in sbx.state("slow")["events"]].count("Killing") == 2
    # the API server's deletion marks, and kubectl describe's lines for them
    meta = json.loads(sbx.run("get", "pod", "slow", "-o", "json").stdout)["metadata"]
    assert meta["deletionGracePeriodSeconds"] == 30
    # the API server's deletionTimestamp is the end of the grace period, not the delete's time
    ends = parse_rfc3339(meta["deletionTimestamp"])
    assert stopped_at + 30 - 1 <= ends <= time.time() + 30, (meta["deletionTimestamp"], stopped_at)
    described = sbx.run("describe", "pod", "slow").stdout
    # kubectl's "lasts" is the time since that timestamp: HumanDuration of a future time
    assert "Status:                    Terminating (lasts <invalid>)" in described
    assert "Termination Grace Period:  30s" in described
    code, _, err = sbx.stop(proc, signal.SIGINT)  # the second Ctrl-C: SIGKILL now
    assert "pod default/slow: Failed" in err


def test_ctrl_c_held_down_never_interrupts_the_tear_down(sbx: Sandbox) -> None:
    """A key held down sends SIGINT every few milliseconds: the pod still ends through its own
    tear-down and prints its summary (the handlers stay in place until the tear-down is done)."""
    proc = sbx.start(sbx.manifest(MIXED % ("held", 30)))
    sbx.wait_running("held", containers=2)
    while proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        time.sleep(0.002)
    code, _, err = sbx.finish(proc)
    assert code == 1, err  # a pod stopped by the user: Failed, as the kubelet shows killed containers
    assert "pod default/held:" in err and "Traceback" not in err


def test_delete_from_another_process(sbx: Sandbox) -> None:
    proc = sbx.start(sbx.manifest(MIXED % ("deleted", 2)))
    sbx.wait_running("deleted", containers=2)
    result = sbx.run("delete", "deleted")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'pod "deleted" deleted'
    assert proc.wait(timeout=10) == 1
    assert sbx.state("deleted") is None
    assert sbx.run("get", "pod", "deleted").returncode == 1


def test_killed_runtime_takes_the_pod_down_and_delete_cleans_up(sbx: Sandbox) -> None:
    proc = sbx.start(sbx.manifest(MIXED % ("crashed", 2)))
    state = sbx.wait_running("crashed", containers=2)
    pids = [state["pause"]["pid"]] + [c["process"]["pid"] for c in state["containers"].values()]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)

    def all_gone() -> bool:
        return not any(os.path.exists(f"/proc/{pid}") for pid in pids)

    sbx.wait_for(all_gone, timeout=5, message="pod processes to die with the runtime (PR_SET_PDEATHSIG)")
    assert sbx.state("crashed") is not None  # the record stays until someone cleans up
    result = sbx.run("delete", "crashed")
    assert result.returncode == 0, result.stderr
    assert sbx.state("crashed") is None


def test_second_run_of_the_same_pod_is_refused_while_running(sbx: Sandbox) -> None:
    manifest = sbx.manifest(MIXED % ("twice", 2))
    proc = sbx.start(manifest)
    sbx.wait_running("twice", containers=2)
    again = sbx.run("run", str(manifest))
    assert again.returncode == 1
    assert 'pod "twice" is already running in namespace "default"' in again.stderr
    sbx.stop(proc)


def test_gc_cleans_up_after_a_killed_runtime_but_not_a_live_pod(sbx: Sandbox) -> None:
    dead = sbx.start(sbx.manifest(MIXED % ("dead", 2), "dead.yaml"))
    sbx.wait_running("dead", containers=2)
    alive = sbx.start(sbx.manifest(MIXED % ("alive", 2), "alive.yaml"))
    sbx.wait_running("alive", containers=2)
    dead.send_signal(signal.SIGKILL)
    dead.wait(timeout=10)
    layers_before = set(os.listdir(sbx.root / "lib" / "containers"))
    result = sbx.run("gc")
    assert result.returncode == 0, result.stderr
    assert "removed pod default/dead" in result.stdout
    assert sbx.state("dead") is None and sbx.state("alive") is not None
    layers_after = set(os.listdir(sbx.root / "lib" / "containers"))
    assert len(layers_after) == 2 and layers_after < layers_before  # alive's two layers stay
    assert sbx.run("exec", "alive", "--", "true").returncode == 0
    sbx.stop(alive)
