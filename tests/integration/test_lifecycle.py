"""The pod lifecycle as the kubelet runs it: init containers, deadlines, status strings."""

from __future__ import annotations

import time

import pytest
from conftest import Sandbox

pytestmark = pytest.mark.root


def test_init_containers_run_in_order_before_apps(sbx: Sandbox) -> None:
    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: init-order}
spec:
  restartPolicy: Never
  initContainers:
  - {name: first, image: busybox, command: ["sh", "-c", "echo first > /dev/shm/order"]}
  - {name: second, image: busybox, command: ["sh", "-c", "sleep 0.3; echo second >> /dev/shm/order"]}
  containers:
  - {name: app, image: busybox, command: ["sh", "-c", "echo app >> /dev/shm/order; cat /dev/shm/order"]}
""")
    result = sbx.run("run", str(manifest))
    assert result.returncode == 0, result.stderr
    assert [l for l in result.stdout.splitlines() if l.startswith("[app]")] == \
        ["[app] first", "[app] second", "[app] app"]
    assert "first: terminated (Completed, exit code 0)" in result.stderr


def test_init_status_strings_while_initializing(sbx: Sandbox) -> None:
    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: init-wait}
spec:
  terminationGracePeriodSeconds: 2
  initContainers:
  - {name: quick, image: busybox, command: ["true"]}
  - {name: waits, image: busybox, command: ["sh", "-c", "until [ -e /dev/shm/go ]; do sleep 0.05; done"]}
  containers:
  - {name: app, image: busybox, command: ["sleep", "1000"]}
""")
    proc = sbx.start(manifest)

    def initializing() -> dict | None:
        s = sbx.state("init-wait")
        if not s or s["summary"]["status"] != "Init:1/2":
            return None
        waits = s["status"]["initContainerStatuses"][1]
        return s if "running" in waits["state"] else None  # Init:1/2 comes before its start too

    state = sbx.wait_for(initializing, message="Init:1/2")
    assert state["status"]["phase"] == "Pending"
    app = state["status"]["containerStatuses"][0]
    assert app["state"]["waiting"]["reason"] == "PodInitializing"
    conditions = {c["type"]: c for c in state["status"]["conditions"]}
    assert conditions["Initialized"]["status"] == "False"
    assert conditions["Initialized"]["reason"] == "ContainersNotInitialized"
    assert sbx.run("exec", "init-wait", "-c", "waits", "--", "touch", "/dev/shm/go").returncode == 0
    state = sbx.wait_running("init-wait")
    assert state["summary"]["status"] == "Running"
    assert {c["type"]: c["status"] for c in state["status"]["conditions"]}["Initialized"] == "True"
    sbx.stop(proc)


def test_failing_init_container_with_never_fails_the_pod(sbx: Sandbox) -> None:
    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: init-fail}
spec:
  restartPolicy: Never
  initContainers:
  - {name: broken, image: busybox, command: ["sh", "-c", "exit 4"]}
  containers:
  - {name: app, image: busybox, command: ["echo", "never runs"]}
""")
    result = sbx.run("run", str(manifest))
    assert result.returncode == 1
    assert "never runs" not in result.stdout
    assert "broken: terminated (Error, exit code 4)" in result.stderr
    assert "app: waiting (PodInitializing)" in result.stderr
    status = sbx.state("init-fail")["status"]
    # the kubelet's getPhase makes it Failed; nothing writes a pod-level reason or message for it
    assert status["phase"] == "Failed" and "message" not in status and "reason" not in status, status


def test_failing_init_container_is_retried_under_on_failure(sbx: Sandbox) -> None:
    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: init-retry}
spec:
  restartPolicy: OnFailure
  initContainers:
  - name: flaky
    image: busybox
    command: ["sh", "-c", "n=$(cat /dev/shm/n 2>/dev/null || echo 0); echo $((n+1)) > /dev/shm/n; [ $n -ge 1 ]"]
  containers:
  - {name: app, image: busybox, command: ["echo", "app ran"]}
""")
    result = sbx.run("run", "--backoff-initial", "100ms", str(manifest))
    assert result.returncode == 0, result.stderr
    assert "[app] app ran" in result.stdout
    assert "flaky: terminated (Completed, exit code 0), restarts 1" in result.stderr


def test_sidecar_init_container_runs_beside_the_app_and_stops_after_it(sbx: Sandbox) -> None:
    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: sidecar}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 2
  initContainers:
  - name: logger
    image: busybox
    restartPolicy: Always
    command: ["sh", "-c", "trap 'echo logger stopping; exit 0' TERM; touch /dev/shm/logger-up; while true; do sleep 0.05; done"]
  containers:
  - {name: app, image: busybox, command: ["sh", "-c", "[ -e /dev/shm/logger-up ] && echo sidecar was up"]}
""")
    result = sbx.run("run", str(manifest), timeout=30)
    assert result.returncode == 0, result.stderr
    assert "[app] sidecar was up" in result.stdout
    assert "[logger] logger stopping" in result.stdout
    assert "pod default/sidecar: Succeeded" in result.stderr


def test_active_deadline_fails_the_pod(sbx: Sandbox) -> None:
    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: deadline}
spec:
  activeDeadlineSeconds: 1
  terminationGracePeriodSeconds: 2
  containers:
  - {name: app, image: busybox, command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.05; done"]}
""")
    started = time.monotonic()
    proc = sbx.start(manifest)
    sbx.wait_running("deadline")
    code, out, err = sbx.finish(proc, timeout=20)
    assert 1.0 <= time.monotonic() - started < 5
    assert code == 1 and "pod default/deadline: Failed" in err
    assert "activeDeadlineSeconds" in err


NOT_LOCATED = {"exitCode": 137, "reason": "ContainerStatusUnknown",
               "message": "The container could not be located when the pod was terminated",
               "startedAt": None, "finishedAt": None}


def test_a_container_that_never_started_ends_with_its_pod(sbx: Sandbox) -> None:
    # The kubelet's TerminatePod: a container not terminated when its pod ends is ended as
    # ContainerStatusUnknown (137), so the final status never shows a finished pod still waiting.
    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: never-ran}
spec:
  activeDeadlineSeconds: 1
  terminationGracePeriodSeconds: 1
  containers:
  - {name: app, image: busybox, command: ["sleep", "3600"]}
  - {name: absent, image: "no-such-image:1", imagePullPolicy: Never}
""")
    result = sbx.run("run", str(manifest), timeout=20)
    assert result.returncode == 1, result.stderr
    assert "absent: terminated (ContainerStatusUnknown, exit code 137)" in result.stderr
    state = sbx.state("never-ran")
    app, absent = state["status"]["containerStatuses"]
    assert app["state"]["terminated"]["reason"] == "Error"  # killed at the deadline
    assert absent["state"] == {"terminated": NOT_LOCATED}
    assert absent["restartCount"] == 0 and not absent["started"]
    assert state["status"]["phase"] == "Failed"


def test_the_container_whose_start_error_ended_the_pod_keeps_its_reason(sbx: Sandbox) -> None:
    # The kubelet would leave it waiting and retry; a one-shot runtime ends the pod, and the
    # status must still say why (not ContainerStatusUnknown, TerminatePod's word for the others).
    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: bad-start}
spec:
  containers:
  - {name: ok, image: busybox, command: ["sleep", "3600"]}
  - {name: rooted, image: busybox, command: ["true"], securityContext: {runAsNonRoot: true}}
""")
    result = sbx.run("run", str(manifest), timeout=30)
    assert result.returncode == 1, result.stderr
    ok, rooted = sbx.state("bad-start")["status"]["containerStatuses"]
    assert rooted["state"]["waiting"]["reason"] == "CreateContainerConfigError"
    assert "runAsNonRoot" in rooted["state"]["waiting"]["message"]
    assert ok["state"]["terminated"]["exitCode"] == 137  # stopped with the pod


def test_init_containers_never_reached_stay_waiting(sbx: Sandbox) -> None:
    # Not initialized: app containers stay waiting; init containers up to the last one with any
    # evidence of a start are ended (the first one when none has any), the rest stay waiting.
    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: never-init}
spec:
  activeDeadlineSeconds: 1
  initContainers:
  - {name: first, image: "no-such-image:1", imagePullPolicy: Never}
  - {name: second, image: busybox, command: ["true"]}
  containers:
  - {name: app, image: busybox, command: ["true"]}
""")
    result = sbx.run("run", str(manifest), timeout=20)
    assert result.returncode == 1, result.stderr
    status = sbx.state("never-init")["status"]
    first, second = status["initContainerStatuses"]
    assert first["state"] == {"terminated": NOT_LOCATED}
    assert second["state"] == {"waiting": {"reason": "PodInitializing"}}
    assert status["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}


def test_on_delete_sidecars_stop_after_the_app_in_reverse_order(sbx: Sandbox) -> None:
    trap = "trap 'echo {n} got TERM at $(cat /proc/uptime); sleep 0.3; exit 0' TERM; while true; do sleep 0.05; done"
    manifest = sbx.manifest(f"""
apiVersion: v1
kind: Pod
metadata: {{name: order}}
spec:
  terminationGracePeriodSeconds: 10
  initContainers:
  - {{name: side-a, image: busybox, restartPolicy: Always, command: ["sh", "-c", "{trap.format(n='side-a')}"]}}
  - {{name: side-b, image: busybox, restartPolicy: Always, command: ["sh", "-c", "{trap.format(n='side-b')}"]}}
  containers:
  - {{name: app, image: busybox, command: ["sh", "-c", "{trap.format(n='app')}"]}}
""")
    proc = sbx.start(manifest)
    sbx.wait_running("order")
    code, out, err = sbx.stop(proc)
    order = [line.split("] ")[1].split()[0] for line in out.splitlines() if "got TERM" in line]
    assert order == ["app", "side-b", "side-a"], out
    assert "pod default/order: Succeeded" in err


def test_empty_dir_is_shared_between_containers_and_removed_with_the_pod(sbx: Sandbox) -> None:
    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: shared-vol}
spec:
  restartPolicy: Never
  containers:
  - name: writer
    image: busybox
    command: ["sh", "-c", "echo data > /cache/file; stat -c %a /cache"]
    volumeMounts: [{name: cache, mountPath: /cache}]
  - name: reader
    image: busybox
    command: ["sh", "-c", "until [ -s /data/file ]; do sleep 0.05; done; cat /data/file; touch /data/x 2>&1 || echo read-only"]
    volumeMounts: [{name: cache, mountPath: /data, readOnly: true}]
  volumes:
  - name: cache
    emptyDir: {}
""")
    result = sbx.run("run", str(manifest), timeout=30)
    assert result.returncode == 0, result.stderr
    assert "[writer] 777" in result.stdout
    assert "[reader] data" in result.stdout and "[reader] read-only" in result.stdout
    assert not (sbx.root / "lib" / "pods").exists() or not any((sbx.root / "lib" / "pods").iterdir())


def test_unsupported_volume_types_are_refused_before_anything_starts(sbx: Sandbox) -> None:
    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: nfs-vol}
spec:
  containers:
  - {name: a, image: busybox, volumeMounts: [{name: share, mountPath: /share}]}
  volumes:
  - {name: share, nfs: {server: nfs.example, path: /exports}}
""")
    result = sbx.run("run", str(manifest))
    assert result.returncode == 2
    assert "spec.volumes[0].nfs: Forbidden: " in result.stderr


def test_a_dead_sandbox_is_recreated_and_init_containers_rerun(sbx: Sandbox) -> None:
    """computePodActions "Kill pod and recreate everything if the pod sandbox is dead": new pause,
    init containers again, app containers restarted (restartCount + 1), event SandboxChanged."""
    import os
    import signal

    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: phoenix}
spec:
  terminationGracePeriodSeconds: 2
  initContainers:
  - {name: setup, image: busybox, command: ["sh", "-c", "echo run >> /state/init-runs"],
     volumeMounts: [{name: state, mountPath: /state}]}
  containers:
  - {name: app, image: busybox, command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"]}
  volumes:
  - {name: state, emptyDir: {}}
""")
    proc = sbx.start(manifest)
    state = sbx.wait_running("phoenix")
    old_pause = state["pause"]["pid"]
    os.kill(old_pause, signal.SIGKILL)

    def recreated() -> dict | None:
        s = sbx.state("phoenix")
        if not s or not s.get("pause") or s["pause"]["pid"] == old_pause:
            return None
        app = s["status"]["containerStatuses"][0]
        return s if app["restartCount"] == 1 and "running" in app["state"] else None

    state = sbx.wait_for(recreated, timeout=20, message="a new sandbox")
    assert [e for e in state["events"] if e["reason"] == "SandboxChanged"]
    runs = sbx.run("exec", "phoenix", "--", "true")
    assert runs.returncode == 0
    volume = next((sbx.root / "lib" / "pods").iterdir()) / "volumes" / "empty-dir" / "state" / "init-runs"
    assert volume.read_text() == "run\nrun\n"
    sbx.stop(proc)


def test_a_dead_sandbox_under_never_ends_the_pod(sbx: Sandbox) -> None:
    import os
    import signal

    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: mortal}
spec:
  restartPolicy: Never
  containers:
  - {name: app, image: busybox, command: ["sleep", "1000"]}
""")
    proc = sbx.start(manifest)
    state = sbx.wait_running("mortal")
    os.kill(state["pause"]["pid"], signal.SIGKILL)
    code, _, err = sbx.finish(proc, timeout=20)
    assert code == 1 and "pod default/mortal: Failed" in err


def test_a_runtime_killed_mid_pod_leaves_its_mounts_to_delete(sbx: Sandbox) -> None:
    """A `sandbox run` killed while its pod waits (here for a ConfigMap that never comes, as a
    timed-out `sbx.run` kills it) leaves the pod files' tmpfs for `delete` (or `gc`) to finish:
    after it, nothing is mounted under the runtime's root."""
    import subprocess

    from conftest import mounts_under

    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: waits}
spec:
  containers:
  - {name: a, image: busybox, command: [sleep, "60"], volumeMounts: [{name: cfg, mountPath: /cfg}]}
  volumes:
  - {name: cfg, configMap: {name: never-made}}
""")
    with pytest.raises(subprocess.TimeoutExpired):
        sbx.run("run", str(manifest), timeout=3)
    assert mounts_under(sbx.root), "the killed runtime's pod files tmpfs should still be mounted"
    result = sbx.run("delete", "waits")
    assert result.returncode == 0, result.stderr
    assert mounts_under(sbx.root) == []
    sbx.killed = False  # finished here: the fixture finds nothing left to delete
