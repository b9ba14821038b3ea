"""The supervisor's published phase, status object and summary."""

from __future__ import annotations

from sandbox import status as st
from sandbox.record import replace
from sandbox.supervisor.snapshot import next_phase, runtime_lost, status_json, summary

RUNNING = st.ContainerStatus("a", "busybox", st.Running(1.0), ready=True, started=True)
DONE_OK = st.ContainerStatus("a", "busybox", st.Terminated(0, "Completed", 1.0, 2.0))
DONE_ERR = st.ContainerStatus("a", "busybox", st.Terminated(1, "Error", 1.0, 2.0))
WAITING = st.ContainerStatus("a", "busybox", st.Waiting("CreateContainerError", "boom"))


def test_terminal_phase_never_changes_back() -> None:
    assert next_phase("Succeeded", "Always", [], [RUNNING], deleting=False, done=False, failed=False) == "Succeeded"


def test_running_and_natural_end() -> None:
    assert next_phase("Pending", "Always", [], [RUNNING], deleting=False, done=False, failed=False) == "Running"
    assert next_phase("Running", "Never", [], [DONE_OK], deleting=False, done=True, failed=False) == "Succeeded"
    assert next_phase("Running", "Never", [], [DONE_ERR], deleting=False, done=True, failed=False) == "Failed"


def test_deleted_pod_is_judged_by_exit_codes() -> None:
    assert next_phase("Running", "Always", [], [DONE_OK], deleting=True, done=True, failed=False) == "Succeeded"
    assert next_phase("Running", "Always", [], [DONE_ERR], deleting=True, done=True, failed=False) == "Failed"


def test_an_ended_pod_that_containers_cannot_explain_is_failed() -> None:
    # A start error leaves the container waiting: getPhase says Pending, the pod is over: Failed.
    assert next_phase("Pending", "Always", [], [WAITING], deleting=False, done=True, failed=True) == "Failed"
    assert next_phase("Running", "Never", [], [DONE_OK], deleting=False, done=True, failed=True) == "Failed"
    assert next_phase("Pending", "Always", [], [WAITING], deleting=False, done=False, failed=True) == "Pending"


def test_status_json_and_summary() -> None:
    ready = st.PodCondition("Ready", "True")
    status = status_json("Failed", [ready], 0.0, [], [DONE_ERR], "Pod was active too long", "DeadlineExceeded")
    assert status["phase"] == "Failed" and status["reason"] == "DeadlineExceeded"
    assert "initContainerStatuses" not in status
    assert status["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 1
    assert "message" not in status_json("Running", [], 0.0, [], [RUNNING], "x")
    sidecar = st.ContainerStatus("s", "busybox", st.Running(1.0), ready=True, started=True, sidecar=True)
    assert summary("Running", [ready], [sidecar], [RUNNING], deleting=False) == \
        {"ready": "2/2", "status": "Running", "restarts": 0, "lastRestart": None}


def test_summary_counts_restarts_as_kubectl_once_the_pod_initialized() -> None:
    # An init container that failed twice before it exited 0 no longer counts (printPod).
    init = replace(DONE_OK, name="i", restart_count=2, last_state=st.Terminated(1, "Error", 1.0, 2.0))
    app = replace(RUNNING, restart_count=1, last_state=st.Terminated(1, "Error", 3.0, 4.0))
    initialized = st.PodCondition("Initialized", "True")
    assert summary("Running", [initialized], [init], [app], deleting=False) == \
        {"ready": "1/1", "status": "Running", "restarts": 1, "lastRestart": st.rfc3339(4.0)}
    pending = replace(init, state=st.Waiting("CrashLoopBackOff"))
    waiting = replace(WAITING, state=st.Waiting("PodInitializing"))
    assert summary("Pending", [], [pending], [waiting], deleting=False) == \
        {"ready": "0/1", "status": "Init:CrashLoopBackOff", "restarts": 2, "lastRestart": st.rfc3339(2.0)}


def test_status_json_carries_the_qos_class_after_the_container_statuses() -> None:
    status = status_json("Running", [], 0.0, [], [RUNNING], qos_class="Burstable")
    assert list(status)[-1] == "qosClass" and status["qosClass"] == "Burstable"


# --- a pod whose runtime is gone (issue 7) -----------------------------------------------------------

T = 1795364682.0


def live_state() -> dict:
    """What a runtime wrote while its two containers ran, ready (then it was SIGKILLed)."""
    ready = st.PodCondition("Ready", "True", last_transition_time=T)
    conditions = [st.PodCondition("PodReadyToStartContainers", "True", last_transition_time=T),
                  st.PodCondition("Initialized", "True", last_transition_time=T), ready,
                  replace(ready, type="ContainersReady"), st.PodCondition("PodScheduled", "True", last_transition_time=T)]
    web = replace(RUNNING, name="web", container_id="sandbox://1")
    side = replace(RUNNING, name="side", container_id="sandbox://2")
    never = st.ContainerStatus("late", "busybox", st.Waiting("ContainerCreating"))
    return {
        "name": "p", "namespace": "default", "uid": "u", "runtime": {"pid": 4242, "startTime": 1},
        "containers": {"web": {"process": {"pid": 1, "startTime": 1}}, "side": {"process": {"pid": 2, "startTime": 1}},
                       "late": {"process": None}},
        "status": status_json("Running", conditions, T, [], [web, side, never], qos_class="BestEffort"),
        "summary": {"ready": "2/3", "status": "Running", "restarts": 1},
    }


def test_a_lost_runtime_shows_phase_unknown_with_reason_and_how_to_clean_up() -> None:
    state = live_state()
    before = repr(state)
    shown = runtime_lost(state, T + 60)
    assert repr(state) == before  # pure
    status = shown["status"]
    assert status["phase"] == "Unknown" and status["reason"] == "RuntimeLost"
    assert "pid 4242" in status["message"] and "no longer running" in status["message"]
    assert "sandbox gc" in status["message"] and "sandbox run" in status["message"]
    assert shown["summary"] == {"ready": "0/3", "status": "Unknown", "restarts": 1}
    assert status["qosClass"] == "BestEffort"


def test_a_lost_runtime_makes_ready_false_with_the_lost_containers_named() -> None:
    conditions = {c["type"]: c for c in runtime_lost(live_state(), T + 60)["status"]["conditions"]}
    for kind in ("Ready", "ContainersReady"):
        assert conditions[kind]["status"] == "False"
        assert conditions[kind]["reason"] == "RuntimeLost"
        assert conditions[kind]["message"] == "containers with unknown status: [web side]"
        assert conditions[kind]["lastTransitionTime"] == st.rfc3339(T + 60)
    assert conditions["PodReadyToStartContainers"]["status"] == "False"  # the sandbox is gone
    assert "reason" not in conditions["PodReadyToStartContainers"]
    assert conditions["Initialized"]["status"] == "True"
    assert conditions["Initialized"]["lastTransitionTime"] == st.rfc3339(T)


def test_containers_of_a_lost_runtime_are_terminated_with_status_unknown() -> None:
    statuses = {c["name"]: c for c in runtime_lost(live_state(), T + 60)["status"]["containerStatuses"]}
    web = statuses["web"]
    assert web["ready"] is False and web["started"] is False
    assert web["state"] == {"terminated": {
        "exitCode": 137, "reason": "ContainerStatusUnknown",
        "message": "The container could not be located: the runtime that ran it is gone",
        "startedAt": st.rfc3339(1.0), "finishedAt": None, "containerID": "sandbox://1"}}
    assert statuses["late"]["state"] == {"waiting": {"reason": "ContainerCreating"}}  # never had a process


def test_a_lost_runtime_keeps_conditions_that_were_already_false() -> None:
    state = live_state()
    for c in state["status"]["conditions"]:
        if c["type"] == "Ready":
            c.update(status="False", reason="ContainersNotReady", message="containers with unready status: [web]")
    ready = next(c for c in runtime_lost(state, T + 60)["status"]["conditions"] if c["type"] == "Ready")
    assert ready["lastTransitionTime"] == st.rfc3339(T) and ready["reason"] == "RuntimeLost"
