"""What the supervisor publishes about its pod: the phase it moves to, the Kubernetes status
object, and the `get pods` summary. Pure functions over the container statuses (layer 1 plus the
status module), so the rules are unit-tested without running a pod."""

from __future__ import annotations

from sandbox import status as st

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any


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
                failure_message: str = "", failure_reason: str = "", qos_class: str = "") -> dict[str, Any]:
    """`status` of the Pod object (`sandbox get pod -o json`), in the API's field order."""
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": [st.condition_json(c) for c in conditions],
        "startTime": st.rfc3339(created_at),
    }
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
    """The `sandbox get pods` columns: READY counts app containers and sidecars (as kubectl)."""
    true = {c.type for c in conditions if c.status == "True"}
    text = st.status_string(phase, init, app, initialized="Initialized" in true, ready="Ready" in true,
                            deleting=deleting)
    ready = sum(1 for c in app if c.ready) + sum(1 for c in init if c.sidecar and c.ready)
    total = len(app) + sum(1 for c in init if c.sidecar)
    restarts = sum(c.restart_count for c in [*init, *app])
    return {"ready": f"{ready}/{total}", "status": text, "restarts": restarts}
