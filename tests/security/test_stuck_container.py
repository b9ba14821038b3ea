"""One container whose start hangs, the others unaffected (security-reliability.md 4.4).

The hang is real: the container's workingDir lies on a filesystem that never answers a lookup
(tests/hangfs.py), so its stage 2 sleeps in the kernel until the spawn deadline (10 s) kills it,
as on a hung network filesystem. The kubelet starts a pod's containers one after another and
retries a failed create on its next sync: the containers before it run on (their probes too), the
ones after it start once the deadline passed, and the stuck one waits in CreateContainerError
and starts on a later try once the filesystem answers. Found by it: the runtime ended the whole
pod on that timeout, as on a start error of the spec.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hangfs import HangFS
from integration_conftest import Sandbox

pytestmark = [pytest.mark.root, pytest.mark.slow]

POD = """
apiVersion: v1
kind: Pod
metadata: {name: stuck}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: early
    image: busybox
    command: [sleep, "1000"]
    livenessProbe:  # in flight when the next container's start begins to hang
      exec: {command: [sleep, "1"]}
      periodSeconds: 2
      timeoutSeconds: 3
      failureThreshold: 1
  - name: held
    image: busybox
    command: [sleep, "1000"]
    workingDir: /hang/dir
    volumeMounts: [{name: hang, mountPath: /hang}]
  - name: late
    image: busybox
    command: [sleep, "1000"]
  volumes:
  - name: hang
    hostPath: {path: MOUNTPOINT}
"""


@pytest.fixture
def hang(sbx: Sandbox, tmp_path: Path) -> Iterator[HangFS]:
    """Torn down before `sbx` checks for leaks: nothing of it is left mounted."""
    mountpoint = tmp_path / "hang"
    mountpoint.mkdir()
    fs = HangFS(mountpoint, hold_uids={0})
    yield fs
    fs.close()


def _states(sbx: Sandbox) -> dict[str, dict[str, Any]]:
    state = sbx.state("stuck") or {}
    return {c["name"]: c for c in state.get("status", {}).get("containerStatuses", [])}


def _reason(status: dict[str, Any]) -> str:
    return str(status["state"].get("waiting", {}).get("reason", next(iter(status["state"]), "")))


def test_a_stuck_start_leaves_its_siblings_running(sbx: Sandbox, hang: HangFS) -> None:
    proc = sbx.start(sbx.manifest(POD.replace("MOUNTPOINT", str(hang.mountpoint))))
    hang.wait_held()
    sbx.wait_running("stuck")
    states = _states(sbx)
    assert "running" in states["early"]["state"]
    assert _reason(states["held"]) == _reason(states["late"]) == "ContainerCreating"
    # the deadline: the held start gives up, the next container starts, the pod goes on
    held = sbx.wait_for(lambda: _reason(_states(sbx)["held"]) == "CreateContainerError" and _states(sbx)["held"],
                        timeout=20, message="the held start's deadline")
    assert "timed out after 10s waiting for the container's set-up (stage 2)" in held["state"]["waiting"]["message"]
    assert held["restartCount"] == 0
    sbx.wait_running("stuck", containers=2)
    states = _states(sbx)
    assert "running" in states["late"]["state"] and "running" in states["early"]["state"]
    assert states["early"]["restartCount"] == 0, sbx.run("describe", "pod", "stuck").stdout[-3000:]  # its liveness probe was not failed by the stall
    assert proc.poll() is None
    # the filesystem answers again: the next try starts it
    hang.release()
    sbx.wait_running("stuck", containers=3, timeout=30)
    assert _states(sbx)["held"]["restartCount"] == 0
    sbx.stop(proc)


def test_the_pod_ends_while_a_start_hangs(sbx: Sandbox, hang: HangFS) -> None:
    """Ctrl-C while the start is stuck: the pod ends (after the deadline at the latest) and its
    tear-down removes everything (the fixture checks), the held stage included."""
    proc = sbx.start(sbx.manifest(POD.replace("MOUNTPOINT", str(hang.mountpoint))))
    stage2 = hang.wait_held()
    sbx.wait_running("stuck")
    begin = time.monotonic()
    sbx.stop(proc, timeout=30)
    assert time.monotonic() - begin < 15  # the deadline (10 s) at the latest, then the grace (1 s)
    state = sbx.state("stuck") or {}
    assert state.get("ended"), state.keys()
    assert not Path(f"/proc/{stage2}").exists()


def test_an_agent_pod_with_a_stuck_start(agent_sbx: Sandbox, hang: HangFS) -> None:
    """The same through the node agent and the pod's shim (run -d): the shim's spawn has the same
    deadline, the agent's supervisor the same retry."""
    sbx = agent_sbx
    done = sbx.run("run", "-d", str(sbx.manifest(POD.replace("MOUNTPOINT", str(hang.mountpoint)))), timeout=60)
    # run -d answers once every container runs or failed to: the held one, reported, waits on
    assert done.stdout == "pod/stuck created\n", done.stdout
    assert done.stderr == "pod/stuck: container held: waiting (CreateContainerError)\n", done.stderr
    assert _reason(_states(sbx)["held"]) == "CreateContainerError"
    sbx.wait_running("stuck", containers=2)
    assert _states(sbx)["early"]["restartCount"] == 0
    hang.release()
    sbx.wait_running("stuck", containers=3, timeout=30)
    deleted = sbx.run("delete", "pod", "stuck", timeout=60)
    assert deleted.returncode == 0, deleted.stderr
