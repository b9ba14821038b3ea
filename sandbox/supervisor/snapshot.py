"""What the supervisor publishes about its pod: the phase it moves to, the Kubernetes status
object, and the `get pods` summary. Pure functions over the container statuses (layer 1 plus the
status module), so the rules are unit-tested without running a pod."""

from __future__ import annotations

from sandbox import status as st

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from sandbox.process.downward import Addresses

def next_phase(previous: str, restart_policy: str, init: Sequence[st.ContainerStatus],
               app: Sequence[st.ContainerStatus], *, deleting: bool, done: bool, failed: bool) -> str:
    """The kubelet's getPhase, plus what only the runtime knows: a terminal phase never changes
    back, and a pod that has ended but whose containers would not say so (a start error, a failed
    init container, a dead sandbox: `failed`) is Failed."""
    if previous in st.PodPhase.TERMINAL:
        return previous
    phase = st.pod_phase(restart_policy, init, app, terminal=deleting)
    if done and (phase not in st.PodPhase.TERMINAL or failed):
        return st.PodPhase.FAILED
    return phase


def status_json(phase: str, conditions: Sequence[st.PodCondition], created_at: float,
                init: Sequence[st.ContainerStatus], app: Sequence[st.ContainerStatus],
                failure_message: str = "", failure_reason: str = "", qos_class: str = "",
                addresses: Addresses | None = None) -> dict[str, Any]:
    """`status` of the Pod object (`sandbox get pod -o json`), in the API's field order."""
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": [st.condition_json(c) for c in conditions],
    }
    if addresses is not None and addresses.host_ips:
        status["hostIP"] = addresses.host_ips[0]
        status["hostIPs"] = [{"ip": ip} for ip in addresses.host_ips]
    if addresses is not None and addresses.pod_ips:
        status["podIP"] = addresses.pod_ips[0]
        status["podIPs"] = [{"ip": ip} for ip in addresses.pod_ips]
    status["startTime"] = st.rfc3339(created_at)
    if init:
        status["initContainerStatuses"] = [st.container_status_json(c) for c in init]
    status["containerStatuses"] = [st.container_status_json(c) for c in app]
    if qos_class:
        status["qosClass"] = qos_class
    if failure_message and phase == st.PodPhase.FAILED:
        status["message"] = failure_message
        if failure_reason:
            status["reason"] = failure_reason
    return status


def summary(phase: str, conditions: Sequence[st.PodCondition], init: Sequence[st.ContainerStatus],
            app: Sequence[st.ContainerStatus], *, deleting: bool) -> dict[str, Any]:
    """The `sandbox get pods` columns as kubectl's printPod counts them (READY counts sidecars;
    RESTARTS, and `lastRestart` for its "(2m ago)", only the containers the STATUS walk reaches)."""
    true = {c.type for c in conditions if c.status == "True"}
    initialized = "Initialized" in true
    text = st.status_string(phase, init, app, initialized=initialized, ready="Ready" in true, deleting=deleting)
    counts = st.pod_counts(init, app, initialized=initialized)
    return {"ready": f"{counts.ready}/{counts.total}", "status": text, "restarts": counts.restarts,
            "lastRestart": st.rfc3339(counts.last_restart) if counts.last_restart else None}


# --- what a reader shows in place of a runtime that is gone -----------------------------------------

LOST_CONDITIONS = ("Ready", "ContainersReady")


def runtime_lost(state: dict[str, Any], since: float) -> dict[str, Any]:
    """The record of a pod whose runtime died without ending it, as readers show it.

    The runtime was the only one to know the pod's state, and every process of the pod died with
    it (PR_SET_PDEATHSIG). So, as the API server shows a pod whose node is lost: phase `Unknown`,
    `status.reason` RuntimeLost (the node controller's `NodeLost`) with a message saying what
    cleans it up, Ready and ContainersReady False (PodReadyToStartContainers too: the sandbox is
    gone), and every container that had a process terminated with the kubelet's reason for a
    container it can no longer find (ContainerStatusUnknown, exit code 137), none ready or started.
    `since` is the last moment the runtime was heard from (its last state write): the time of
    every condition that changes. Pure: returns a new dict; `state` is left alone.
    """
    out = dict(state)
    status = dict(state.get("status") or {})
    records = state.get("containers") or {}
    runtime = state.get("runtime") or {}
    pid = f", pid {runtime['pid']}" if isinstance(runtime, dict) and runtime.get("pid") else ""
    name = state.get("name") or ""
    message = (f"The runtime (sandbox run{pid}) that ran pod {name} is no longer running; its containers died "
               f"with it. sandbox gc (or a new sandbox run of the pod) cleans it up.")
    lost: list[str] = []
    for key in ("initContainerStatuses", "containerStatuses"):
        if key in status:
            status[key] = [_lost_container(cs, records.get(cs.get("name")), lost) for cs in status[key] or []]
    unknown = f"containers with unknown status: [{' '.join(lost)}]" if lost else message
    conditions = []
    for c in status.get("conditions") or []:
        c = dict(c)
        if c.get("type") in (*LOST_CONDITIONS, "PodReadyToStartContainers"):
            if c.get("status") != "False":
                c["lastTransitionTime"] = st.rfc3339(since)
            c["status"] = "False"
            c.pop("reason", None)
            c.pop("message", None)
            if c["type"] in LOST_CONDITIONS:
                c.update(reason=st.RUNTIME_LOST, message=unknown)
        conditions.append(c)
    status.update(phase=st.PodPhase.UNKNOWN, conditions=conditions, reason=st.RUNTIME_LOST, message=message)
    out["status"] = status
    summary = dict(state.get("summary") or {})
    total = str(summary.get("ready", "0/0")).partition("/")[2] or "0"
    summary.update(ready=f"0/{total}", status=st.PodPhase.UNKNOWN)
    out["summary"] = summary
    return out


def _lost_container(cs: dict[str, Any], record: Any, lost: list[str]) -> dict[str, Any]:
    cs = dict(cs, ready=False, started=False)
    had_process = isinstance(record, dict) and record.get("process") is not None
    state = cs.get("state") or {}
    if had_process or "running" in state:
        lost.append(str(cs.get("name", "")))
        started = (state.get("running") or {}).get("startedAt")
        terminated: dict[str, Any] = {
            "exitCode": 137,
            "reason": st.CONTAINER_STATUS_UNKNOWN,
            "message": "The container could not be located: the runtime that ran it is gone",
            "startedAt": started,
            "finishedAt": None,
        }
        if cs.get("containerID"):
            terminated["containerID"] = cs["containerID"]
        cs["state"] = {"terminated": terminated}
    return cs
