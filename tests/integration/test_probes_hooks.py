"""Probes and hooks, modelled on the Kubernetes documentation tasks (configure liveness, readiness
and startup probes; attach handlers to lifecycle events; termination messages), with periods
shortened only through `sandbox run --probe-scale`. The statuses checked are those a user reads
with kubectl: restartCount, lastState, ready, conditions, events."""

from __future__ import annotations

import time
from typing import Any

import pytest
from conftest import Sandbox

pytestmark = pytest.mark.root

TRAP = "trap 'exit 0' TERM"


def events(state: dict[str, Any], reason: str) -> list[dict[str, Any]]:
    return [e for e in state.get("events", []) if e["reason"] == reason]


def container(state: dict[str, Any], index: int = 0) -> dict[str, Any]:
    return state["status"]["containerStatuses"][index]


def test_exec_liveness_restarts_the_container(sbx: Sandbox) -> None:
    """tasks/configure-pod-container: liveness-exec, with 5 s delay/period scaled by 0.2."""
    manifest = sbx.manifest(f"""
apiVersion: v1
kind: Pod
metadata: {{name: liveness-exec}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: liveness
    image: registry.k8s.io/busybox:1.27.2
    args: ["/bin/sh", "-c", "{TRAP}; touch /tmp/healthy; sleep 3; rm -f /tmp/healthy; while true; do sleep 0.1; done"]
    livenessProbe:
      exec: {{command: [cat, /tmp/healthy]}}
      initialDelaySeconds: 5
      periodSeconds: 5
""")
    proc = sbx.start(manifest, "--probe-scale", "0.2", "--backoff-initial", "100ms")
    state = sbx.wait_for(lambda: (s := sbx.state("liveness-exec")) and container(s)["restartCount"] >= 1 and s,
                         timeout=20, message="a restart after the liveness probe failed")
    cs = container(state)
    assert cs["lastState"]["terminated"]["exitCode"] == 0  # it handled SIGTERM
    unhealthy = events(state, "Unhealthy")
    assert unhealthy and unhealthy[0]["message"].startswith("Liveness probe failed: cat: can't open '/tmp/healthy'")
    assert unhealthy[0]["count"] >= 3  # failureThreshold 3, aggregated into one event
    killing = events(state, "Killing")
    assert killing[0]["message"] == "Container liveness failed liveness probe, will be restarted"
    sbx.stop(proc)


def test_http_liveness_failure_status(sbx: Sandbox) -> None:
    manifest = sbx.manifest(f"""
apiVersion: v1
kind: Pod
metadata: {{name: liveness-http}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: web
    image: busybox
    command: ["sh", "-c", "{TRAP}; mkdir -p /www; echo ok > /www/healthz; (sleep 2; rm /www/healthz) & httpd -f -p 8080 -h /www & wait"]
    ports: [{{name: http, containerPort: 8080}}]
    livenessProbe:
      httpGet: {{path: /healthz, port: http}}
      periodSeconds: 1
      failureThreshold: 2
""")
    proc = sbx.start(manifest, "--backoff-initial", "100ms")
    state = sbx.wait_for(lambda: (s := sbx.state("liveness-http")) and events(s, "Killing") and s,
                         timeout=20, message="the liveness kill")
    assert events(state, "Unhealthy")[0]["message"] == "Liveness probe failed: HTTP probe failed with statuscode: 404"
    sbx.stop(proc)


def test_tcp_readiness_gates_ready_and_conditions(sbx: Sandbox) -> None:
    manifest = sbx.manifest(f"""
apiVersion: v1
kind: Pod
metadata: {{name: tcp-ready}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: server
    image: busybox
    command: ["sh", "-c", "{TRAP}; until [ -e /tmp/go ]; do sleep 0.05; done; httpd -f -p 8080 & wait"]
    readinessProbe:
      tcpSocket: {{port: 8080}}
      periodSeconds: 1
    livenessProbe:
      tcpSocket: {{port: 8080}}
      initialDelaySeconds: 60
""")
    proc = sbx.start(manifest)
    sbx.wait_running("tcp-ready")

    def readiness_failed() -> dict[str, Any] | None:
        s = sbx.state("tcp-ready")
        failed = s and any(e["message"].startswith("Readiness probe failed") for e in events(s, "Unhealthy"))
        return s if failed else None

    state = sbx.wait_for(readiness_failed, timeout=10, message="a failed readiness probe")
    assert container(state)["ready"] is False and container(state)["started"] is True
    conditions = {c["type"]: c for c in state["status"]["conditions"]}
    assert conditions["Ready"]["status"] == "False" and conditions["ContainersReady"]["reason"] == "ContainersNotReady"
    assert state["summary"]["ready"] == "0/1"
    assert sbx.run("exec", "tcp-ready", "--", "touch", "/tmp/go").returncode == 0
    state = sbx.wait_for(lambda: (s := sbx.state("tcp-ready")) and container(s)["ready"] and s, timeout=10,
                         message="ready")
    conditions = {c["type"]: c for c in state["status"]["conditions"]}
    assert conditions["Ready"]["status"] == "True"
    assert state["summary"]["ready"] == "1/1"
    sbx.stop(proc)


def test_startup_probe_protects_a_slow_start(sbx: Sandbox) -> None:
    manifest = sbx.manifest(f"""
apiVersion: v1
kind: Pod
metadata: {{name: slow-start}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "{TRAP}; sleep 2; touch /tmp/started; while true; do sleep 0.1; done"]
    startupProbe:
      exec: {{command: [test, -e, /tmp/started]}}
      periodSeconds: 1
      failureThreshold: 10
    livenessProbe:
      exec: {{command: [sh, -c, "test -e /tmp/started && touch /tmp/alive"]}}
      periodSeconds: 1
      failureThreshold: 1
""")
    proc = sbx.start(manifest)
    state = sbx.wait_running("slow-start")
    assert container(state)["started"] is False
    state = sbx.wait_for(lambda: (s := sbx.state("slow-start")) and container(s)["started"] and s, timeout=15,
                         message="started")
    sbx.wait_for(lambda: sbx.run("exec", "slow-start", "--", "test", "-e", "/tmp/alive").returncode == 0,
                 timeout=10, message="a liveness probe that ran and passed")
    state = sbx.state("slow-start")
    assert state is not None
    assert container(state)["restartCount"] == 0 and container(state)["ready"] is True
    assert not events(state, "Killing")
    sbx.stop(proc)


def test_failing_startup_probe_kills_and_restarts(sbx: Sandbox) -> None:
    manifest = sbx.manifest(f"""
apiVersion: v1
kind: Pod
metadata: {{name: never-starts}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "{TRAP}; while true; do sleep 0.1; done"]
    startupProbe:
      exec: {{command: [test, -e, /tmp/never]}}
      periodSeconds: 1
      failureThreshold: 2
""")
    proc = sbx.start(manifest, "--backoff-initial", "100ms")
    state = sbx.wait_for(lambda: (s := sbx.state("never-starts")) and container(s)["restartCount"] >= 1 and s,
                         timeout=15, message="restart after startup failure")
    assert events(state, "Killing")[0]["message"] == "Container app failed startup probe, will be restarted"
    sbx.stop(proc)


def test_post_start_hook_runs_before_running(sbx: Sandbox) -> None:
    """tasks/configure-pod-container/attach-handler-lifecycle-event (with busybox instead of nginx)."""
    manifest = sbx.manifest(f"""
apiVersion: v1
kind: Pod
metadata: {{name: lifecycle-demo}}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: lifecycle-demo-container
    image: busybox
    command: ["sh", "-c", "{TRAP}; while true; do sleep 0.1; done"]
    lifecycle:
      postStart:
        exec: {{command: ["/bin/sh", "-c", "sleep 1; mkdir -p /usr/share; echo Hello from the postStart handler > /usr/share/message"]}}
      preStop:
        exec: {{command: ["/bin/sh", "-c", "sleep 1.5; echo stopping > /dev/shm/prestop-ran"]}}
""")
    proc = sbx.start(manifest)
    state = sbx.wait_for(lambda: sbx.state("lifecycle-demo"), message="state")
    assert "waiting" in container(state)["state"]  # not Running while postStart runs
    state = sbx.wait_running("lifecycle-demo")
    out = sbx.run("exec", "lifecycle-demo", "--", "cat", "/usr/share/message").stdout
    assert out == "Hello from the postStart handler\n"
    started = time.monotonic()
    code, out, err = sbx.stop(proc)
    assert time.monotonic() - started >= 1.5  # preStop ran before SIGTERM
    assert "Hello from the postStart handler" not in out and "stopping" not in out  # hooks never log
    assert "lifecycle-demo-container: terminated (Completed, exit code 0)" in err


def test_the_next_container_starts_once_the_post_start_hook_returned(sbx: Sandbox) -> None:
    """The kubelet's startContainer runs postStart synchronously, so the containers after one with
    a hook start when it has returned (what sidecar proxies waited on before native sidecars)."""
    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: ordered}
spec:
  restartPolicy: Never
  volumes: [{name: shared, emptyDir: {}}]
  containers:
  - name: proxy
    image: busybox:1.36
    command: ["sh", "-c", "sleep 5"]
    volumeMounts: [{name: shared, mountPath: /shared}]
    lifecycle:
      postStart:
        exec: {command: ["sh", "-c", "sleep 1.5; touch /shared/proxy-ready"]}
  - name: app
    image: busybox:1.36
    command: ["sh", "-c", "test -f /shared/proxy-ready && echo proxy was ready || echo too early"]
    volumeMounts: [{name: shared, mountPath: /shared}]
""")
    result = sbx.run("run", "--network", "none", str(manifest))
    assert result.returncode == 0, result.stderr
    assert "[app] proxy was ready\n" in result.stdout, result.stdout


UPTIME = "cut -d' ' -f1 /proc/uptime"  # one clock for every container: the host's


def shared_times(sbx: Sandbox, pod: str, name: str) -> list[float]:
    """The uptimes the containers appended to /shared/<name>, read through the `reader` container."""
    result = sbx.run("exec", pod, "-c", "reader", "--", "sh", "-c", f"cat /shared/{name} 2>/dev/null; true")
    return [float(line) for line in result.stdout.split()]


def test_a_restart_waits_for_another_containers_post_start_hook(sbx: Sandbox) -> None:
    """The kubelet runs postStart inside startContainer, so while one runs the pod worker starts
    nothing: a container that crashed meanwhile is restarted once the hook has returned."""
    manifest = sbx.manifest(f"""
apiVersion: v1
kind: Pod
metadata: {{name: held}}
spec:
  terminationGracePeriodSeconds: 1
  volumes: [{{name: shared, emptyDir: {{}}}}]
  containers:
  - name: crasher
    image: busybox:1.36
    command: ["sh", "-c", "{UPTIME} >> /shared/starts; sleep 0.3; exit 1"]
    volumeMounts: [{{name: shared, mountPath: /shared}}]
  - name: reader
    image: busybox:1.36
    command: ["sleep", "1000"]
    volumeMounts: [{{name: shared, mountPath: /shared}}]
    lifecycle:
      postStart:
        exec: {{command: ["sh", "-c", "sleep 3; {UPTIME} > /shared/hook-done"]}}
""")
    proc = sbx.start(manifest, "--backoff-initial", "100ms")
    crasher = sbx.wait_for(lambda: (s := sbx.state("held")) and "terminated" in container(s)["state"] and container(s),
                           timeout=20, message="crasher's exit")
    # held, not restarted: the exit is its state, nothing before it its lastState
    assert (crasher["restartCount"], crasher["lastState"]) == (0, {}), crasher
    sbx.wait_for(lambda: len(shared_times(sbx, "held", "starts")) >= 2, timeout=20, message="a restart of crasher")
    starts, (hook_done,) = shared_times(sbx, "held", "starts"), shared_times(sbx, "held", "hook-done")
    assert starts[0] < hook_done - 2, (starts, hook_done)  # crashed (after 0.3 s) long before the hook returned
    assert starts[1] >= hook_done, (starts, hook_done)  # restarted only after it
    state = sbx.wait_for(lambda: (s := sbx.state("held")) and container(s)["restartCount"] >= 1 and s,
                         message="the restart in the status")
    assert container(state)["lastState"]["terminated"]["exitCode"] == 1
    sbx.stop(proc)


def test_a_restarted_containers_post_start_hook_holds_the_other_restarts(sbx: Sandbox) -> None:
    """A restart goes through startContainer as the first start does: its postStart holds the pod
    worker too, and no other container is restarted until it has returned."""
    manifest = sbx.manifest(f"""
apiVersion: v1
kind: Pod
metadata: {{name: rehooked}}
spec:
  terminationGracePeriodSeconds: 1
  volumes: [{{name: shared, emptyDir: {{}}}}]
  containers:
  - name: hooked
    image: busybox:1.36
    command: ["sh", "-c", "sleep 2.5; exit 1"]
    volumeMounts: [{{name: shared, mountPath: /shared}}]
    lifecycle:
      postStart:
        exec: {{command: ["sh", "-c", "{UPTIME} >> /shared/hook-begin; sleep 1.5; {UPTIME} >> /shared/hook-end"]}}
  - name: crasher
    image: busybox:1.36
    command: ["sh", "-c", "{UPTIME} >> /shared/starts; sleep 0.2; exit 1"]
    volumeMounts: [{{name: shared, mountPath: /shared}}]
  - name: reader
    image: busybox:1.36
    command: ["sleep", "1000"]
    volumeMounts: [{{name: shared, mountPath: /shared}}]
""")
    proc = sbx.start(manifest, "--backoff-initial", "100ms", "--backoff-max", "200ms")
    sbx.wait_for(lambda: len(shared_times(sbx, "rehooked", "hook-end")) >= 3, timeout=30,
                 message="hooked's postStart after two restarts")
    begins, ends = shared_times(sbx, "rehooked", "hook-begin"), shared_times(sbx, "rehooked", "hook-end")
    starts = shared_times(sbx, "rehooked", "starts")
    assert len(starts) >= 4, starts  # crasher restarted between the hooks
    for begin, end in zip(begins[1:3], ends[1:3]):  # the restarts' hooks
        # a crasher instance started just before hooked's restart may write a little after the hook did
        inside = [t for t in starts if begin + 0.2 < t < end]
        assert not inside, (begin, end, starts)
    sbx.stop(proc)


def test_a_failed_post_start_hook_holds_the_pod_until_its_container_is_dead(sbx: Sandbox) -> None:
    """killContainer runs inside startContainer after a failed postStart: nothing else starts
    until the container killed for it has exited (here a shell ignoring SIGTERM: 2 s of grace)."""
    manifest = sbx.manifest(f"""
apiVersion: v1
kind: Pod
metadata: {{name: failing}}
spec:
  terminationGracePeriodSeconds: 2
  volumes: [{{name: shared, emptyDir: {{}}}}]
  containers:
  - name: crasher
    image: busybox:1.36
    command: ["sh", "-c", "{UPTIME} >> /shared/starts; sleep 0.2; exit 1"]
    volumeMounts: [{{name: shared, mountPath: /shared}}]
  - name: bad
    image: busybox:1.36
    command: ["sh", "-c", "sleep 1000"]
    volumeMounts: [{{name: shared, mountPath: /shared}}]
    lifecycle:
      postStart:
        exec: {{command: ["sh", "-c", "sleep 1; {UPTIME} >> /shared/hook-failed; exit 1"]}}
  - name: reader
    image: busybox:1.36
    command: ["sleep", "1000"]
    volumeMounts: [{{name: shared, mountPath: /shared}}]
""")
    proc = sbx.start(manifest, "--backoff-initial", "100ms", "--backoff-max", "200ms")
    sbx.wait_for(lambda: len(shared_times(sbx, "failing", "starts")) >= 3, timeout=20, message="crasher's restarts")
    failed = shared_times(sbx, "failing", "hook-failed")[0]
    starts = shared_times(sbx, "failing", "starts")
    assert starts[0] < failed, (starts, failed)
    # SIGTERM at the failure, SIGKILL 2 s later: the crasher's restart waited for that exit
    assert not [t for t in starts if failed + 0.2 < t < failed + 1.8], (failed, starts)
    sbx.stop(proc)


def test_a_failing_exec_probe_without_output_has_an_empty_message(sbx: Sandbox) -> None:
    # pkg/probe/exec returns the command's output alone: "Readiness probe failed: " when it printed
    # nothing (no exit code); a hook's failure still names it
    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: quiet}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox:1.36
    command: ["sleep", "600"]
    readinessProbe:
      exec: {command: ["test", "-f", "/nope"]}
      periodSeconds: 1
""")
    proc = sbx.start(manifest)
    state = sbx.wait_for(lambda: (s := sbx.state("quiet")) and events(s, "Unhealthy") and s,
                         timeout=15, message="an Unhealthy event")
    assert [e["message"] for e in events(state, "Unhealthy")] == ["Readiness probe failed: "]
    sbx.stop(proc)


def test_failing_post_start_hook_kills_the_container(sbx: Sandbox) -> None:
    manifest = sbx.manifest(f"""
apiVersion: v1
kind: Pod
metadata: {{name: bad-hook}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "{TRAP}; while true; do sleep 0.1; done"]
    lifecycle:
      postStart:
        exec: {{command: ["sh", "-c", "exit 3"]}}
""")
    proc = sbx.start(manifest, "--backoff-initial", "100ms")
    state = sbx.wait_for(lambda: (s := sbx.state("bad-hook")) and container(s)["restartCount"] >= 1 and s,
                         timeout=15, message="restart after the hook failed")
    hook = events(state, "FailedPostStartHook")
    assert hook and hook[0]["message"] == "PostStartHook failed" and hook[0]["type"] == "Warning"
    # the kubelet's killContainer(..., "FailedPostStartHook", ...): that message, not "Stopping container app"
    assert [e["message"] for e in events(state, "Killing")] == ["FailedPostStartHook"]
    sbx.stop(proc)


def test_termination_message_from_file_and_from_logs(sbx: Sandbox) -> None:
    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: termination-demo}
spec:
  restartPolicy: Never
  containers:
  - name: from-file
    image: busybox
    command: ["/bin/sh", "-c", "echo Sleep expired > /dev/termination-log"]
  - name: custom-path
    image: busybox
    terminationMessagePath: /tmp/my-log
    command: ["/bin/sh", "-c", "echo custom > /tmp/my-log; exit 2"]
  - name: from-logs
    image: busybox
    terminationMessagePolicy: FallbackToLogsOnError
    command: ["/bin/sh", "-c", "echo first; echo last words; exit 1"]
  - name: keeps-the-pod-up
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"]
""")
    proc = sbx.start(manifest)

    def messages() -> dict[str, str] | None:
        s = sbx.state("termination-demo")
        if not s:
            return None
        found = {c["name"]: c["state"].get("terminated", {}).get("message")
                 for c in s["status"]["containerStatuses"][:3]}
        return found if all(v is not None for v in found.values()) else None

    found = sbx.wait_for(messages, timeout=15, message="three terminations")
    assert found == {"from-file": "Sleep expired\n", "custom-path": "custom\n", "from-logs": "first\nlast words\n"}
    sbx.stop(proc)


def test_describe_shows_probes_conditions_and_events(sbx: Sandbox) -> None:
    manifest = sbx.manifest(f"""
apiVersion: v1
kind: Pod
metadata: {{name: described, labels: {{app: demo}}}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "{TRAP}; while true; do sleep 0.1; done"]
    readinessProbe:
      exec: {{command: ["true"]}}
      periodSeconds: 1
""")
    proc = sbx.start(manifest)
    sbx.wait_for(lambda: (s := sbx.state("described")) and container(s)["ready"], timeout=10, message="ready")
    out = sbx.run("describe", "pod", "described").stdout
    for expected in ("Name:", "described", "Labels:", "app=demo", "Status:", "Running", "Containers:",
                     "Readiness:", "exec [true] delay=0s timeout=1s period=1s #success=1 #failure=3",
                     "Conditions:", "Ready", "Events:", "Started", "Started container app"):
        assert expected in out, (expected, out)
    sbx.stop(proc)


def test_http_and_sleep_hooks(sbx: Sandbox) -> None:
    """An httpGet postStart counts any HTTP status as success (here a 404); a sleep preStop delays
    the SIGTERM by its seconds. The server is a sidecar whose startupProbe makes sure it listens
    before the app (and its hook) starts."""
    manifest = sbx.manifest(f"""
apiVersion: v1
kind: Pod
metadata: {{name: http-hook}}
spec:
  terminationGracePeriodSeconds: 5
  initContainers:
  - name: web
    image: busybox
    restartPolicy: Always
    command: ["sh", "-c", "{TRAP}; httpd -f -v -p 8080 -h /etc & wait"]
    startupProbe:
      tcpSocket: {{port: 8080}}
      periodSeconds: 1
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "{TRAP}; while true; do sleep 0.1; done"]
    lifecycle:
      postStart:
        httpGet: {{path: /no-such-page, port: 8080}}
      preStop:
        sleep: {{seconds: 1}}
""")
    proc = sbx.start(manifest)
    state = sbx.wait_running("http-hook")
    assert not events(state, "FailedPostStartHook")
    started = time.monotonic()
    code, out, err = sbx.stop(proc)
    assert 1.0 <= time.monotonic() - started < 4
    # httpd -v logs the hook on stderr: it came to the pod IP, as the kubelet's (no `host` given)
    assert f"[web] [::ffff:{state['status']['podIP']}]" in err and "response:404" in err
    assert "app: terminated (Completed, exit code 0)" in err
