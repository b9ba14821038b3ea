"""Busybox Pods from the Kubernetes documentation (../shared/corpus/k8s-examples), run unmodified,
each checked for the behaviour its documentation page describes. Periods are shortened only with
`sandbox run --probe-scale`. Pods needing features of later issues (ConfigMaps, Secrets, the
downward API, hostPath, ...) are not here."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest
from conftest import Sandbox
from corpus import require_corpus

pytestmark = pytest.mark.root


def corpus(name: str) -> Path:
    path = require_corpus() / name
    assert path.exists(), f"{name} is missing from the corpus"
    return path


def log_text(sbx: Sandbox, pod: str, container: str) -> str:
    from sandbox.logs.cri import iter_log_lines

    files = sorted(sbx.root.glob(f"log/pods/default_{pod}_*/{container}/*.log"))
    return "".join(line.decode() for path in files for _, line in iter_log_lines(path))


def test_counter_pod_logs_every_second(sbx: Sandbox) -> None:
    """debug/counter-pod.yaml: `kubectl logs counter` shows one numbered line per second."""
    proc = sbx.start(corpus("debug__counter-pod.yaml"))
    sbx.wait_for(lambda: "2: " in log_text(sbx, "counter", "count"), timeout=10, message="three lines")
    assert sbx.run("logs", "counter").stdout.startswith("0: ")
    sbx.stop_now(proc)


def test_dependent_environment_variables(sbx: Sandbox) -> None:
    """inject/dependent-envars.yaml: earlier variables expand, later ones stay literal, $$ escapes."""
    proc = sbx.start(corpus("pods__inject__dependent-envars.yaml"))
    sbx.wait_for(lambda: "ESCAPED_REFERENCE\n$(PROTOCOL)" in log_text(sbx, "dependent-envars-demo", "dependent-envars-demo"),
                 timeout=10, message="the whole printout")
    text = log_text(sbx, "dependent-envars-demo", "dependent-envars-demo")
    assert "https://172.17.0.1:80" in text  # SERVICE_ADDRESS
    assert "$(PROTOCOL)://172.17.0.1:80" in text  # ESCAPED_REFERENCE
    env = sbx.run("exec", "dependent-envars-demo", "--", "printenv", "UNCHANGED_REFERENCE").stdout
    assert env == "$(PROTOCOL)://172.17.0.1:80\n"  # PROTOCOL was declared after it
    sbx.stop_now(proc)


def test_exec_liveness_example(sbx: Sandbox) -> None:
    """probe/exec-liveness.yaml: healthy for 30 s, then three failed probes and a restart. Probe
    times scaled by 0.2 (its own `sleep 30` is not: the kill comes about 33 s in)."""
    proc = sbx.start(corpus("pods__probe__exec-liveness.yaml"), "--probe-scale", "0.2")
    sbx.wait_running("liveness-exec")

    def killed() -> dict | None:
        s = sbx.state("liveness-exec")
        return s if s and any(e["reason"] == "Killing" for e in s["events"]) else None

    state = sbx.wait_for(killed, timeout=60, message="the liveness kill")
    unhealthy = [e for e in state["events"] if e["reason"] == "Unhealthy"]
    assert "Liveness probe failed: cat: can't open '/tmp/healthy': No such file or directory" in unhealthy[0]["message"]
    # healthy at first: the probe (every second from 1 s on) failed only once /tmp/healthy was gone
    started = next(e for e in state["events"] if e["reason"] == "Started")
    healthy_for = (datetime.fromisoformat(unhealthy[0]["firstTimestamp"])
                   - datetime.fromisoformat(started["firstTimestamp"])).total_seconds()
    assert healthy_for >= 28, healthy_for  # `sleep 30` before the rm; whole-second timestamps, slack
    sbx.stop_now(proc)


def test_adapter_sidecar_reads_the_shared_volume(sbx: Sandbox) -> None:
    """multi-container/adapter.yaml: the sidecar adapter re-emits the app's raw log lines."""
    proc = sbx.start(corpus("pods__multi-container__adapter.yaml"))
    pod = sbx.wait_for(lambda: next((p.name.split("_")[1] for p in sbx.root.glob("run/pods/default_*")), None),
                       message="the pod")
    sbx.wait_for(lambda: "adapted: " in log_text(sbx, pod, "adapter"), timeout=15, message="adapted lines")
    assert "raw event" in log_text(sbx, pod, "adapter")
    sbx.stop_now(proc)


def test_startup_coordination_sidecar_gates_the_app(sbx: Sandbox) -> None:
    """multi-container/startup-coordination.yaml: the app starts only after the sidecar's
    startupProbe sees the config it wrote, so the app's first line is the greeting."""
    proc = sbx.start(corpus("pods__multi-container__startup-coordination.yaml"), "--probe-scale", "0.2")
    pod = sbx.wait_for(lambda: next((p.name.split("_")[1] for p in sbx.root.glob("run/pods/default_*")), None),
                       message="the pod")
    state = sbx.wait_for(lambda: (s := sbx.state(pod)) and s["status"]["phase"] == "Running" and s,
                         timeout=20, message="Running")
    app = state["status"]["containerStatuses"][0]["name"]
    sbx.wait_for(lambda: "greeting=hello" in log_text(sbx, pod, app), timeout=10, message="the greeting")
    sbx.stop_now(proc)


def test_downward_api_environment(sbx: Sandbox) -> None:
    """inject/dapi-envars-pod.yaml and dapi-envars-container.yaml: pod fields and container
    resources reach the environment (resources in units of their divisor, CPU rounded up)."""
    proc = sbx.start(corpus("pods__inject__dapi-envars-pod.yaml"))
    sbx.wait_running("dapi-envars-fieldref")
    env = sbx.run("exec", "dapi-envars-fieldref", "--", "env").stdout
    assert f"MY_NODE_NAME={os.uname().nodename}\n" in env
    assert "MY_POD_NAME=dapi-envars-fieldref\n" in env and "MY_POD_NAMESPACE=default\n" in env
    sbx.stop_now(proc)
    proc = sbx.start(corpus("pods__inject__dapi-envars-container.yaml"))
    sbx.wait_running("dapi-envars-resourcefieldref")
    env = sbx.run("exec", "dapi-envars-resourcefieldref", "--", "env").stdout
    # requests 125m / 32Mi, limits 250m / 64Mi, default divisor 1: whole cores rounded up, bytes
    assert "MY_CPU_REQUEST=1\n" in env and "MY_CPU_LIMIT=1\n" in env, env
    assert "MY_MEM_REQUEST=33554432\n" in env and "MY_MEM_LIMIT=67108864\n" in env, env
    sbx.stop_now(proc)
