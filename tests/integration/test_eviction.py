"""Ephemeral-storage eviction as the kubelet's eviction manager does it: a writable layer, logs or
an emptyDir over its limit ends the pod Failed with reason Evicted, the kubelet's message and a
Warning event, without a restart whatever the restartPolicy. The monitoring period is scaled down
with the documented `--eviction-interval` option."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from conftest import Sandbox

pytestmark = pytest.mark.root

INTERVAL = ("--eviction-interval", "0.2s")
# Writes, then waits; a SIGTERM handler so that the grace is not what the test waits for. The
# handler is set before the write: the eviction can come while dd still runs, and sh as its PID
# namespace's init ignores a SIGTERM it has no handler for (SIGKILL, 137, after the grace).
WRITE_ROOT = "trap 'exit 143' TERM; dd if=/dev/urandom of=/big bs=1024 count=4096 2>/dev/null; echo written; " \
             "sleep 3600 & wait"
IDLE = "trap 'exit 143' TERM; sleep 3600 & wait"


def container(name: str, script: str, limit: str | None = None, mounts: str = "") -> str:
    text = f"""
  - name: {name}
    image: busybox
    command: ["sh", "-c", {json.dumps(script)}]"""
    if limit is not None:
        text += f"\n    resources: {{limits: {{ephemeral-storage: {limit}}}}}"
    if mounts:
        text += f"\n    volumeMounts: {mounts}"
    return text


def pod(name: str, *containers: str, policy: str = "Always", grace: int = 30, extra: str = "") -> str:
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: {policy}
  terminationGracePeriodSeconds: {grace}
  containers:{"".join(containers)}
{extra}"""


def evicted_events(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in state["events"] if e["reason"] == "Evicted"]


def assert_evicted(sbx: Sandbox, name: str, message: str) -> dict[str, Any]:
    state = sbx.state(name)
    assert state is not None and state["finished"]
    status = state["status"]
    assert status["phase"] == "Failed"
    assert status["reason"] == "Evicted"
    assert status["message"] == message
    events = evicted_events(state)
    assert len(events) == 1
    assert events[0]["type"] == "Warning" and events[0]["message"] == message
    assert events[0]["involvedObject"]["fieldPath"] == ""  # an event on the pod, not a container
    for cs in status["containerStatuses"]:
        assert cs["restartCount"] == 0
        assert "terminated" in cs["state"]
    return state


def test_writable_layer_over_the_limit_evicts_the_pod_without_restart(sbx: Sandbox) -> None:
    # One container: the pod's total (its limit is the one container's) is checked first.
    stubborn = "dd if=/dev/urandom of=/big bs=1024 count=4096 2>/dev/null; echo written; exec sleep 3600"
    manifest = sbx.manifest(pod("layer", container("main", stubborn, "1Mi")))
    started = time.monotonic()
    result = sbx.run("run", *INTERVAL, str(manifest))
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    assert result.stdout.count("written") == 1  # restartPolicy Always, yet never started again
    assert "pod default/layer: Failed" in result.stderr
    # PID 1 without a SIGTERM handler: SIGKILL after the eviction's grace (2 s minimum), not
    # after terminationGracePeriodSeconds (30).
    assert elapsed < 15, elapsed
    assert "main: terminated (Error, exit code 137), restarts 0" in result.stderr
    state = assert_evicted(sbx, "layer",
                           "Pod ephemeral local storage usage exceeds the total limit of containers 1Mi. ")
    terminated = state["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["reason"] == "Error" and terminated["exitCode"] == 137


def test_a_container_over_its_own_limit_is_named(sbx: Sandbox) -> None:
    # The writer gives its sibling a second to start before it writes: an eviction between the
    # two starts (CI saw one) ends the pod with `idle` never started, waiting, not terminated 143.
    writer = WRITE_ROOT.replace("dd if=", "sleep 1; dd if=", 1)
    manifest = sbx.manifest(pod("own", container("writer", writer, "1Mi"), container("idle", IDLE, "10Mi")))
    result = sbx.run("run", *INTERVAL, str(manifest))
    assert result.returncode == 1, result.stderr
    assert_evicted(sbx, "own", 'Container writer exceeded its local ephemeral storage limit "1Mi". ')
    assert "writer: terminated (Error, exit code 143), restarts 0" in result.stderr
    assert "idle: terminated (Error, exit code 143), restarts 0" in result.stderr


def test_empty_dir_over_its_size_limit_evicts(sbx: Sandbox) -> None:
    script = "dd if=/dev/urandom of=/data/big bs=1024 count=2048 2>/dev/null; " + IDLE
    volumes = "  volumes:\n  - name: data\n    emptyDir: {sizeLimit: 1Mi}"
    manifest = sbx.manifest(pod("vol", container("main", script, mounts="[{name: data, mountPath: /data}]"),
                                extra=volumes))
    result = sbx.run("run", *INTERVAL, str(manifest))
    assert result.returncode == 1, result.stderr
    assert_evicted(sbx, "vol", 'Usage of EmptyDir volume "data" exceeds the limit "1Mi". ')


def test_container_logs_count_against_its_limit(sbx: Sandbox) -> None:
    # ~2.4 MB of output, nothing written to the root filesystem: only the log file grows.
    talk = "yes 0123456789012345678901234567890123456789 | head -n 60000; " + IDLE
    manifest = sbx.manifest(pod("talk", container("talker", talk, "1Mi"), container("idle", IDLE, "10Mi")))
    result = sbx.run("run", "-q", *INTERVAL, str(manifest))
    assert result.returncode == 1, result.stderr
    assert_evicted(sbx, "talk", 'Container talker exceeded its local ephemeral storage limit "1Mi". ')


def test_under_the_limits_nothing_happens(sbx: Sandbox) -> None:
    script = "dd if=/dev/urandom of=/data/f bs=1024 count=512 2>/dev/null; " \
             "dd if=/dev/urandom of=/f bs=1024 count=512 2>/dev/null; sleep 1.5; echo done"
    volumes = "  volumes:\n  - name: data\n    emptyDir: {sizeLimit: 4Mi}"
    manifest = sbx.manifest(pod("calm", container("main", script, "4Mi", "[{name: data, mountPath: /data}]"),
                                policy="Never", extra=volumes))
    result = sbx.run("run", "--eviction-interval", "0.1s", str(manifest))
    assert result.returncode == 0, result.stderr
    assert "pod default/calm: Succeeded" in result.stderr
    state = sbx.state("calm")
    assert state is not None
    assert evicted_events(state) == []
    assert "reason" not in state["status"]


def test_a_bad_eviction_interval_is_a_usage_error(sbx: Sandbox) -> None:
    manifest = sbx.manifest(pod("bad", container("main", IDLE)))
    for value in ("0", "-1s", "soon"):
        result = sbx.run("run", f"--eviction-interval={value}", str(manifest))
        assert result.returncode == 2, (value, result.stderr)
        assert "--eviction-interval" in result.stderr
