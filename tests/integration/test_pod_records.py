"""Pod records (issue 7): a pod whose runtime was killed shows Unknown until `gc`; a pod that ended
stays listed (Completed / Error, exit codes, termination messages, events) until `delete`, a new
`run` of it, or `run --rm`; every run gets a fresh UID; init containers' ready and waiting reasons,
qosClass and the postStart failure as the kubelet reports them."""

from __future__ import annotations

import json
import os
import signal
from typing import Any

import pytest
from conftest import Sandbox

pytestmark = pytest.mark.root

TWO = """
apiVersion: v1
kind: Pod
metadata: {name: %s}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - {name: web, image: busybox, command: ["sleep", "1000"]}
  - {name: side, image: busybox, command: ["sleep", "1000"]}
"""

ONCE = """
apiVersion: v1
kind: Pod
metadata: {name: %s}
spec:
  restartPolicy: Never
  containers:
  - name: job
    image: busybox
    command: ["sh", "-c", "echo working; echo %s > /dev/termination-log; exit %d"]
"""


def table_row(sbx: Sandbox, name: str) -> list[str]:
    result = sbx.run("get", "pods")
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    return next(row for row in rows if row[0] == name)


def pod_json(sbx: Sandbox, name: str) -> dict[str, Any]:
    result = sbx.run("get", "pod", name, "-o", "json")
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def log_dirs(sbx: Sandbox, name: str) -> list[str]:
    return sorted(p.name for p in (sbx.root / "log" / "pods").glob(f"default_{name}_*"))


def test_a_killed_runtime_shows_unknown_until_gc_cleans_it_up(sbx: Sandbox) -> None:
    proc = sbx.start(sbx.manifest(TWO % "lost"))
    state = sbx.wait_running("lost", containers=2)
    pids = [state["pause"]["pid"]] + [c["process"]["pid"] for c in state["containers"].values()]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    sbx.finished.add(proc.pid)
    sbx.wait_for(lambda: not any(os.path.exists(f"/proc/{pid}") for pid in pids), timeout=5,
                 message="the pod's processes to die with the runtime")

    assert table_row(sbx, "lost")[1:3] == ["0/2", "Unknown"]
    described = sbx.run("describe", "pod", "lost").stdout
    lines = {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in described.splitlines()
             if line and not line.startswith(" ") and ":" in line}
    assert lines["Status"] == "Unknown" and lines["Reason"] == "RuntimeLost"
    assert "is no longer running" in described and "sandbox gc" in described
    status = pod_json(sbx, "lost")["status"]
    assert status["phase"] == "Unknown" and status["reason"] == "RuntimeLost"
    conditions = {c["type"]: c for c in status["conditions"]}
    for kind in ("Ready", "ContainersReady"):
        assert conditions[kind]["status"] == "False" and conditions[kind]["reason"] == "RuntimeLost"
        assert conditions[kind]["message"] == "containers with unknown status: [web side]"
    for cs in status["containerStatuses"]:
        assert cs["ready"] is False
        assert cs["state"]["terminated"]["reason"] == "ContainerStatusUnknown"
        assert cs["state"]["terminated"]["exitCode"] == 137

    layers = os.listdir(sbx.root / "lib" / "containers")
    assert len(layers) == 2  # the dead runtime's layers wait for gc
    result = sbx.run("gc")
    assert result.returncode == 0, result.stderr
    assert "removed pod default/lost" in result.stdout
    assert sbx.state("lost") is None and sbx.run("get", "pod", "lost").returncode == 1
    assert os.listdir(sbx.root / "lib" / "containers") == []
    assert log_dirs(sbx, "lost") == []  # a removed pod's logs go with it


def test_a_completed_pod_stays_listed_with_exit_code_message_and_events(sbx: Sandbox) -> None:
    result = sbx.run("run", str(sbx.manifest(ONCE % ("job-ok", "all-done", 0))))
    assert result.returncode == 0, result.stderr
    assert table_row(sbx, "job-ok")[1:4] == ["0/1", "Completed", "0"]
    state = sbx.state("job-ok")
    assert state is not None and state["ended"] is True
    assert state["pause"] is None and all(c["process"] is None and c["layer"] is None
                                          for c in state["containers"].values())
    assert sorted(os.listdir(sbx.root / "run" / "pods" / "default_job-ok")) == ["lock", "state.json"]
    status = pod_json(sbx, "job-ok")["status"]
    assert status["phase"] == "Succeeded"
    terminated = status["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"], terminated["message"]) == (0, "Completed", "all-done\n")
    described = sbx.run("describe", "pod", "job-ok").stdout
    for expected in ("Succeeded", "Terminated", "Completed", "all-done", "Exit Code:", "Events:", "Started"):
        assert expected in described, expected
    assert sbx.run("logs", "job-ok").stdout == "working\n"
    # gc keeps an ended pod: it holds nothing but its record.
    gc = sbx.run("gc")
    assert gc.returncode == 0 and "job-ok" not in gc.stdout
    assert sbx.state("job-ok") is not None


def test_a_failed_pod_shows_error_and_delete_removes_record_and_logs(sbx: Sandbox) -> None:
    result = sbx.run("run", str(sbx.manifest(ONCE % ("job-bad", "went-wrong", 3))))
    assert result.returncode == 1
    assert table_row(sbx, "job-bad")[1:3] == ["0/1", "Error"]
    status = pod_json(sbx, "job-bad")["status"]
    assert status["phase"] == "Failed"
    terminated = status["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"], terminated["message"]) == (3, "Error", "went-wrong\n")
    assert "Exit Code:    3" in sbx.run("describe", "pod", "job-bad").stdout
    assert len(log_dirs(sbx, "job-bad")) == 1

    deleted = sbx.run("delete", "job-bad")
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.strip() == 'pod "job-bad" deleted'
    assert sbx.state("job-bad") is None
    assert not (sbx.root / "run" / "pods" / "default_job-bad").exists()
    assert log_dirs(sbx, "job-bad") == []
    missing = sbx.run("get", "pod", "job-bad")
    assert missing.returncode == 1 and 'pods "job-bad" not found' in missing.stderr


def test_run_rm_removes_the_record_and_logs_at_exit(sbx: Sandbox) -> None:
    result = sbx.run("run", "--rm", str(sbx.manifest(ONCE % ("job-rm", "x", 0))))
    assert result.returncode == 0, result.stderr
    assert "[job] working" in result.stdout
    assert sbx.state("job-rm") is None and log_dirs(sbx, "job-rm") == []
    assert not (sbx.root / "run" / "pods" / "default_job-rm").exists()


UID_POD = """
apiVersion: v1
kind: Pod
metadata: {name: %s, uid: 11111111-2222-4333-8444-555555555555}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 2
  volumes: [{name: scratch, emptyDir: {}}]
  containers:
  - name: c
    image: busybox
    command: ["sh", "-c", "%s"]
    env:
    - name: POD_UID
      valueFrom: {fieldRef: {fieldPath: metadata.uid}}
    volumeMounts: [{name: scratch, mountPath: /scratch}]
"""


def test_every_run_gets_a_fresh_uid_and_a_rerun_replaces_the_record(sbx: Sandbox) -> None:
    manifest = sbx.manifest(UID_POD % ("uid", "env"))
    uids = []
    for _ in range(2):
        result = sbx.run("run", "--quiet", str(manifest))
        assert result.returncode == 0, result.stderr
        state = sbx.state("uid")
        assert state is not None and state["ended"] is True
        uid = state["uid"]
        assert uid != "11111111-2222-4333-8444-555555555555" and len(uid) == 36
        assert pod_json(sbx, "uid")["metadata"]["uid"] == uid
        assert f"POD_UID={uid}" in sbx.run("logs", "uid").stdout.splitlines()
        assert log_dirs(sbx, "uid") == [f"default_uid_{uid}"]  # the replaced run's logs are gone
        uids.append(uid)
    assert uids[0] != uids[1]


def test_look_alike_manifests_no_longer_share_an_empty_dir(sbx: Sandbox) -> None:
    writer = sbx.start(sbx.manifest(UID_POD % ("one", "echo mine > /scratch/f; exec sleep 1000"), "one.yaml"))
    sbx.wait_running("one")
    sbx.wait_for(lambda: sbx.run("exec", "one", "--", "test", "-e", "/scratch/f").returncode == 0,
                 message="the file in one's emptyDir")
    other = sbx.start(sbx.manifest(UID_POD % ("two", "exec sleep 1000"), "two.yaml"))
    sbx.wait_running("two")
    assert sbx.run("exec", "two", "--", "test", "-e", "/scratch/f").returncode == 1
    one, two = sbx.state("one"), sbx.state("two")
    assert one is not None and two is not None and one["volumesDir"] != two["volumesDir"]
    sbx.stop(other)
    assert sbx.run("exec", "one", "--", "test", "-e", "/scratch/f").returncode == 0  # two's end left it
    sbx.stop(writer)
    for name in ("one", "two"):
        assert sbx.run("delete", name).returncode == 0


MOUNTS = """
apiVersion: v1
kind: Pod
metadata: {name: mounts}
spec:
  terminationGracePeriodSeconds: 1
  volumes: [{name: scratch, emptyDir: {}}]
  initContainers:
  - {name: prep, image: busybox, command: ["true"], volumeMounts: [{name: scratch, mountPath: /out}]}
  containers:
  - name: c
    image: busybox
    command: ["sleep", "1000"]
    volumeMounts:
    - {name: scratch, mountPath: /scratch}
    - {name: scratch, mountPath: /ro, readOnly: true}
"""


def test_container_statuses_carry_the_volume_mounts(sbx: Sandbox) -> None:
    # As the kubelet 1.33 (RecursiveReadOnlyMounts) copies each container's mounts into its status;
    # a read-only one says how it came out: recursively read-only, this runtime's only kind.
    proc = sbx.start(sbx.manifest(MOUNTS))
    sbx.wait_running("mounts")
    status = pod_json(sbx, "mounts")["status"]
    assert status["initContainerStatuses"][0]["volumeMounts"] == [{"name": "scratch", "mountPath": "/out"}]
    assert status["containerStatuses"][0]["volumeMounts"] == [
        {"name": "scratch", "mountPath": "/scratch"},
        {"name": "scratch", "mountPath": "/ro", "readOnly": True, "recursiveReadOnly": "Enabled"}]
    assert sbx.run("exec", "mounts", "--", "touch", "/ro/x").returncode != 0
    sbx.stop(proc)
    assert sbx.run("delete", "mounts").returncode == 0


INIT = """
apiVersion: v1
kind: Pod
metadata: {name: init-ready}
spec:
  terminationGracePeriodSeconds: 2
  initContainers:
  - {name: first, image: busybox, command: ["sh", "-c", "until [ -e /dev/shm/go ]; do sleep 0.05; done"]}
  - {name: second, image: busybox, command: ["true"]}
  containers:
  - name: app
    image: busybox
    command: ["sleep", "1000"]
    resources:
      limits: {cpu: 100m, memory: 64Mi}
"""


def test_init_containers_ready_waiting_reasons_and_qos_class(sbx: Sandbox) -> None:
    proc = sbx.start(sbx.manifest(INIT))

    def first_running() -> dict[str, Any] | None:
        s = sbx.state("init-ready")
        return s if s and "running" in s["status"]["initContainerStatuses"][0]["state"] else None

    state = sbx.wait_for(first_running, message="the first init container running")
    first, second = state["status"]["initContainerStatuses"]
    assert first["ready"] is False and first["started"] is True  # running: not ready
    assert second["state"] == {"waiting": {"reason": "PodInitializing"}}  # not started yet
    assert state["status"]["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
    assert state["summary"]["status"] == "Init:0/2"
    assert sbx.run("exec", "init-ready", "-c", "first", "--", "touch", "/dev/shm/go").returncode == 0
    state = sbx.wait_running("init-ready")
    for cs in state["status"]["initContainerStatuses"]:
        assert cs["ready"] is True and cs["state"]["terminated"]["exitCode"] == 0  # exited 0: ready
    # Guaranteed needs cpu and memory limits on every container, init ones too (ComputePodQOS).
    assert pod_json(sbx, "init-ready")["status"]["qosClass"] == "Burstable"
    described = sbx.run("describe", "pod", "init-ready").stdout.splitlines()
    assert [line.split() for line in described if line.startswith("QoS Class:")] == [["QoS", "Class:", "Burstable"]]
    sbx.stop(proc)
    assert sbx.run("delete", "init-ready").returncode == 0


HOOK = """
apiVersion: v1
kind: Pod
metadata: {name: hook}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: busybox
    command: ["sleep", "1000"]
    lifecycle:
      postStart:
        exec: {command: ["sh", "-c", "echo no way; echo 'said \\"no\\"' >&2; exit 3"]}
"""


def test_failed_post_start_hook_event_and_waiting_message(sbx: Sandbox) -> None:
    proc = sbx.start(sbx.manifest(HOOK))

    def hook_failed() -> dict[str, Any] | None:
        s = sbx.state("hook")
        waiting = s and s["status"]["containerStatuses"][0]["state"].get("waiting") or {}
        return s if waiting.get("reason") == "PostStartHookError" else None

    state = sbx.wait_for(hook_failed, message="PostStartHookError")
    message = state["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
    # handlers.go "error: %v, message: %q": the CRI client's error names the stderr, the message
    # quotes stdout then stderr
    command = """sh -c echo no way; echo 'said "no"' >&2; exit 3"""
    assert message == (f'Exec lifecycle hook ([{command}]) for Container "app" in Pod "hook_default({state["uid"]})" '
                       f"""failed - error: command '{command}' exited with 3: said "no"\n, """
                       'message: "no way\\nsaid \\"no\\"\\n"')
    code, _, _ = sbx.finish(proc)
    assert code == 1
    events = [e for e in (sbx.state("hook") or {})["events"] if e["reason"] == "FailedPostStartHook"]
    assert [(e["type"], e["message"]) for e in events] == [("Warning", "PostStartHook failed")]
    assert "FailedPostStartHook" in sbx.run("describe", "pod", "hook").stdout


CRASHING = """
apiVersion: v1
kind: Pod
metadata: {name: crashing}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - {name: c, image: busybox, command: ["sh", "-c", "echo run; exit 1"]}
"""


def test_a_pod_stopped_in_back_off_ends_with_its_last_termination(sbx: Sandbox) -> None:
    proc = sbx.start(sbx.manifest(CRASHING), "-q", "--backoff-initial", "30s")

    def backing_off() -> bool:
        s = sbx.state("crashing")
        cs = s["status"]["containerStatuses"][0] if s else {}
        return bool(cs) and cs["restartCount"] == 1 and "waiting" in cs["state"]

    sbx.wait_for(backing_off, message="CrashLoopBackOff after the second run")
    assert table_row(sbx, "crashing")[2] == "CrashLoopBackOff"
    sbx.stop(proc)
    # Not restarted any more: the kubelet shows the last termination, the one before as lastState.
    cs = pod_json(sbx, "crashing")["status"]["containerStatuses"][0]
    assert cs["state"]["terminated"]["exitCode"] == 1 and cs["lastState"]["terminated"]["exitCode"] == 1
    assert cs["restartCount"] == 1
    assert table_row(sbx, "crashing")[1:4] == ["0/1", "Error", "1"]
    assert pod_json(sbx, "crashing")["status"]["phase"] == "Failed"
