"""The supervisor's published phase, status object and summary."""

from __future__ import annotations

from sandbox import status as st
from sandbox.supervisor.snapshot import next_phase, status_json, summary

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
        {"ready": "2/2", "status": "Running", "restarts": 0}


def test_status_json_carries_the_qos_class_after_the_container_statuses() -> None:
    status = status_json("Running", [], 0.0, [], [RUNNING], qos_class="Burstable")
    assert list(status)[-1] == "qosClass" and status["qosClass"] == "Burstable"
