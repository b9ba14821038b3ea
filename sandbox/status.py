"""Pod status as the kubelet computes it: phase, conditions, the kubectl STATUS column, API JSON.

Pure functions over container status records. The supervisor records events (started, exited,
probe results) into `ContainerStatus` values; everything a user sees about a pod's state is
derived here, so it can be checked against the kubelet's rules case by case.

A container status whose `state` is None stands for a container the kubelet has no status for
("unknown" in getPhase and in the condition messages).
"""

from __future__ import annotations

import time

from sandbox.record import Record, replace

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any


class PodPhase:
    """`status.phase` values. A kubelet never sets `Unknown` (the API's phase for a pod whose state
    cannot be obtained, typically because its node is lost); readers show it for a pod whose
    runtime is gone."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    UNKNOWN = "Unknown"
    TERMINAL = (SUCCEEDED, FAILED)


class Waiting(Record):
    reason: str  # ContainerCreating, PodInitializing, CrashLoopBackOff, CreateContainerError, ...
    message: str = ""


class Running(Record):
    started_at: float  # wall-clock epoch seconds


class Terminated(Record):
    exit_code: int
    reason: str  # Completed, Error, OOMKilled, StartError, ContainerStatusUnknown
    started_at: float
    finished_at: float
    message: str = ""
    signal: int = 0  # always 0 through CRI; a signal death shows as exit_code 128 + signo
    container_id: str = ""


State = Waiting | Running | Terminated


class LinuxUser(Record):
    """`user.linux` of a container's status (Kubernetes 1.33+, SupplementalGroupsPolicy): the
    identity the runtime gave the container's first process, as containerd's ContainerStatus
    reports its spec's process user (additionalGids: the primary group, the image's /etc/group
    memberships, supplementalGroups and fsGroup, sorted, each once)."""

    uid: int
    gid: int
    supplemental_groups: tuple[int, ...] = ()


class VolumeMountStatus(Record):
    """A `volumeMounts[]` entry of a container's status (RecursiveReadOnlyMounts, GA in 1.33): the
    kubelet copies each of the spec's mounts; `recursive_read_only` is said of read-only mounts
    only, as the mount came out."""

    name: str
    mount_path: str
    read_only: bool = False
    recursive_read_only: str = ""  # Enabled | Disabled; "" for a read-write mount


def volume_mount_statuses(mounts: Sequence[Any]) -> tuple[VolumeMountStatus, ...]:
    """The status entries of a container's spec.volumeMounts (spec.model.VolumeMount). Every
    read-only bind this runtime makes is read-only recursively, whatever recursiveReadOnly asks
    (Disabled included), so a read-only mount reports Enabled: the API has IfPossible turned into
    what the mount came out as."""
    return tuple(VolumeMountStatus(m.name, m.mount_path, bool(m.read_only), "Enabled" if m.read_only else "")
                 for m in mounts)


class ContainerStatus(Record):
    name: str
    image: str
    state: State | None  # None: no status known for this container
    last_state: Terminated | None = None
    restart_count: int = 0
    ready: bool = False
    started: bool = False
    container_id: str = ""  # "<runtime>://<id>"
    image_id: str = ""
    sidecar: bool = False  # an init container with restartPolicy: Always
    user: LinuxUser | None = None  # set, as imageID, once a container was created
    volume_mounts: tuple[VolumeMountStatus, ...] = ()  # the spec's, from the first status on

    def __post_init__(self) -> None:
        if self.restart_count < 0:
            raise ValueError(f"container {self.name!r}: restart count must not be negative")


class PodCondition(Record):
    type: str
    status: str  # "True" | "False"
    reason: str = ""
    message: str = ""
    last_transition_time: float = 0.0


def default_waiting_reason(has_init_containers: bool) -> str:
    """Why a container that has not run yet waits: the kubelet's defaultWaitingState
    (convertToAPIContainerStatuses), PodInitializing for every container, init or app, of a pod
    that has init containers (sidecars count), ContainerCreating otherwise."""
    return "PodInitializing" if has_init_containers else "ContainerCreating"


def init_container_ready(cs: ContainerStatus, *, probe_ready: bool) -> bool:
    """`ready` of an init container (prober manager UpdatePodStatus): a plain one is ready exactly
    when it exited 0, never while it runs; a sidecar as an app container, once started and running,
    when it has no readiness probe or its probe last succeeded (`probe_ready`)."""
    if not cs.sidecar:
        return isinstance(cs.state, Terminated) and cs.state.exit_code == 0
    return cs.started and isinstance(cs.state, Running) and probe_ready


def terminated_reason(exit_code: int, oom: bool = False) -> str:
    """The runtime's terminated reason: an OOM kill wins over the exit code (containerd)."""
    if oom:
        return "OOMKilled"
    return "Completed" if exit_code == 0 else "Error"


# --- phase (kubelet_pods.go getPhase) ------------------------------------------------------------


class _Counts:
    """getPhase's counters (a plain class: one more dataclass would cost start-up time)."""

    __slots__ = (
        "failed_init",
        "pending_init",
        "pending_sidecar",
        "running",
        "stopped",
        "succeeded",
        "unknown",
        "waiting",
    )

    def __init__(self) -> None:
        self.pending_init = 0  # plain init containers not finished yet
        self.failed_init = 0
        self.pending_sidecar = 0
        self.running = 0
        self.waiting = 0
        self.stopped = 0
        self.succeeded = 0
        self.unknown = 0


def _count_plain_init(counts: _Counts, cs: ContainerStatus) -> None:
    state = cs.state
    if isinstance(state, Terminated):
        counts.failed_init += state.exit_code != 0
    elif isinstance(state, Waiting) and cs.last_state is not None:
        # Waiting to be retried: the previous attempt decides.
        counts.failed_init += cs.last_state.exit_code != 0
    else:  # no status, running, or waiting for its first start
        counts.pending_init += 1


def _count_sidecar(counts: _Counts, cs: ContainerStatus) -> None:
    # Sidecars feed the app counters too; a terminated or restarting sidecar is ignored.
    state = cs.state
    if state is None:
        counts.unknown += 1
    elif isinstance(state, Running):
        counts.running += 1
        counts.pending_sidecar += not cs.started
    elif isinstance(state, Waiting) and cs.last_state is None:
        counts.waiting += 1
        counts.pending_sidecar += 1


def _count_app(counts: _Counts, cs: ContainerStatus) -> None:
    state = cs.state
    if state is None:
        counts.unknown += 1
    elif isinstance(state, Running):
        counts.running += 1
    elif isinstance(state, Terminated):
        counts.stopped += 1
        counts.succeeded += state.exit_code == 0
    elif cs.last_state is not None:  # waiting to restart: counts as stopped, never as succeeded
        counts.stopped += 1
    else:
        counts.waiting += 1


def any_app_started(app: Sequence[ContainerStatus]) -> bool:
    """kubelet HasAnyRegularContainerStarted: an app container is running or has terminated."""
    return any(isinstance(cs.state, (Running, Terminated)) for cs in app)


def pod_phase(
    restart_policy: str,
    init: Sequence[ContainerStatus],
    app: Sequence[ContainerStatus],
    *,
    terminal: bool = False,
    static: bool = False,
    previous: str = "",
) -> str:
    """The pod phase by the kubelet's getPhase rules.

    `init` holds plain init containers and sidecars (`sidecar=True`) in spec order. `terminal`
    means the pod is being deleted or torn down, so nothing will restart. `previous` is the phase
    reported before: a terminal phase never changes back (generateAPIPodStatus).
    """
    if previous in PodPhase.TERMINAL:
        return previous
    counts = _Counts()
    for cs in init:
        (_count_sidecar if cs.sidecar else _count_plain_init)(counts, cs)
    for cs in app:
        _count_app(counts, cs)
    return _decide_phase(restart_policy, counts, any_app_started(app), terminal and not static)


def _decide_phase(restart_policy: str, c: _Counts, app_started: bool, terminal: bool) -> str:
    if c.failed_init and restart_policy == "Never":
        return PodPhase.FAILED
    if c.pending_init or (c.pending_sidecar and not app_started):
        # A sidecar restarting after the app containers ran must not put the pod back to Pending.
        return PodPhase.PENDING
    if c.waiting:
        return PodPhase.PENDING
    if c.running and not c.unknown:
        return PodPhase.RUNNING
    if c.running or not c.stopped or c.unknown:
        return PodPhase.PENDING
    all_succeeded = c.stopped == c.succeeded
    if terminal:  # nothing will be restarted whatever the policy
        return PodPhase.SUCCEEDED if all_succeeded else PodPhase.FAILED
    if restart_policy == "Always":  # every container exited and is being restarted
        return PodPhase.RUNNING
    if all_succeeded:
        return PodPhase.SUCCEEDED
    if restart_policy == "Never":
        return PodPhase.FAILED
    return PodPhase.RUNNING  # OnFailure: the failed ones are restarting


# --- conditions (pkg/kubelet/status/generate.go) -------------------------------------------------


def _names(label: str, names: list[str]) -> list[str]:
    # Go prints a []string with %s as "[a b]".
    return [f"containers with {label} status: [{' '.join(names)}]"] if names else []


def _initialized(phase: str, init: Sequence[ContainerStatus], app: Sequence[ContainerStatus]) -> PodCondition:
    unknown = [cs.name for cs in init if cs.state is None]
    incomplete = [cs.name for cs in init if cs.state is not None and not _init_done(cs)]
    if phase == PodPhase.SUCCEEDED and not unknown:
        return PodCondition("Initialized", "True", reason="PodCompleted")
    if any_app_started(app):
        # Initialized once; a sidecar restarting later does not undo it.
        return PodCondition("Initialized", "True")
    message = ", ".join(_names("unknown", unknown) + _names("incomplete", incomplete))
    if message:
        return PodCondition("Initialized", "False", reason="ContainersNotInitialized", message=message)
    return PodCondition("Initialized", "True")


def _init_done(cs: ContainerStatus) -> bool:
    """A sidecar counts once started; a plain init container once it exited 0.

    The kubelet reads a plain init container's `ready`, which it sets exactly when the container
    exited 0; reading the state instead means the two can never disagree.
    """
    if cs.sidecar:
        return cs.started
    return isinstance(cs.state, Terminated) and cs.state.exit_code == 0


def _containers_ready(
    phase: str, init: Sequence[ContainerStatus], app: Sequence[ContainerStatus]
) -> PodCondition:
    watched = [cs for cs in init if cs.sidecar] + list(app)  # sidecar readiness counts too
    unknown = [cs.name for cs in watched if cs.state is None]
    unready = [cs.name for cs in watched if cs.state is not None and not cs.ready]
    if phase == PodPhase.SUCCEEDED and not unknown:
        return PodCondition("ContainersReady", "False", reason="PodCompleted")
    if phase == PodPhase.FAILED:  # containers may still be stopping: never report them ready
        return PodCondition("ContainersReady", "False", reason="PodFailed")
    message = ", ".join(_names("unknown", unknown) + _names("unready", unready))
    if message:
        return PodCondition("ContainersReady", "False", reason="ContainersNotReady", message=message)
    return PodCondition("ContainersReady", "True")


def pod_conditions(
    phase: str,
    init: Sequence[ContainerStatus],
    app: Sequence[ContainerStatus],
    *,
    sandbox_ready: bool,
    previous: Sequence[PodCondition],
    now: float,
) -> list[PodCondition]:
    """The kubelet-owned conditions, in the kubelet's order.

    Ready mirrors ContainersReady (no readinessGates: there is no API server to set them).
    PodScheduled is always True for a pod the node runs on its own. A condition keeps its
    `last_transition_time` from `previous` while its status is unchanged (status manager
    updateLastTransitionTime); otherwise it transitions at `now`.
    """
    containers_ready = _containers_ready(phase, init, app)
    fresh = [
        PodCondition("PodReadyToStartContainers", "True" if sandbox_ready else "False"),
        _initialized(phase, init, app),
        replace(containers_ready, type="Ready"),
        containers_ready,
        PodCondition("PodScheduled", "True"),
    ]
    before = {c.type: c for c in previous}
    return [_stamp(c, before.get(c.type), now) for c in fresh]


def _stamp(condition: PodCondition, old: PodCondition | None, now: float) -> PodCondition:
    if old is not None and old.status == condition.status:
        return replace(condition, last_transition_time=old.last_transition_time)
    return replace(condition, last_transition_time=now)


# --- kubectl STATUS column (pkg/printers/internalversion/printers.go printPod) ------------------


def _exit_text(state: Terminated) -> str:
    if state.reason:
        return state.reason
    return f"Signal:{state.signal}" if state.signal else f"ExitCode:{state.exit_code}"


def _init_stop(init: Sequence[ContainerStatus]) -> int:
    """Where printPod's walk over the init containers stops: the index of the first one neither
    exited 0 nor a started sidecar (len(init) when none is left)."""
    for index, cs in enumerate(init):
        state = cs.state
        if isinstance(state, Terminated) and state.exit_code == 0:
            continue
        if cs.sidecar and cs.started:
            continue
        return index
    return len(init)


def _init_status(init: Sequence[ContainerStatus]) -> str:
    """`Init:...` for the first unfinished init container, or "" when none is left."""
    index = _init_stop(init)
    if index == len(init):
        return ""
    state = init[index].state
    if isinstance(state, Terminated):
        return "Init:" + _exit_text(state)
    if isinstance(state, Waiting) and state.reason and state.reason != "PodInitializing":
        return "Init:" + state.reason
    return f"Init:{index}/{len(init)}"  # total counts sidecars too


def _app_status(reason: str, app: Sequence[ContainerStatus], ready: bool) -> str:
    has_running = False
    for cs in reversed(app):  # last to first, so the first container's reason wins
        state = cs.state
        if isinstance(state, Waiting) and state.reason:
            reason = state.reason
        elif isinstance(state, Terminated):
            reason = _exit_text(state)
        elif cs.ready and isinstance(state, Running):
            has_running = True
    if reason == "Completed" and has_running:
        # One container completed while another still serves: not a completed pod.
        return "Running" if ready else "NotReady"
    return reason


def status_string(
    phase: str,
    init: Sequence[ContainerStatus],
    app: Sequence[ContainerStatus],
    *,
    initialized: bool,
    ready: bool,
    deleting: bool = False,
    reason: str = "",
) -> str:
    """What `kubectl get pod` shows in STATUS.

    `initialized` and `ready` are the Initialized and Ready conditions; `reason` is the pod's
    `status.reason` (DeadlineExceeded, Evicted), which replaces the phase as the starting text.
    """
    text = reason or phase
    init_text = _init_status(init)
    if init_text:
        text = init_text
    if not init_text or initialized:
        text = _app_status(text, app, ready)
    if deleting and phase not in PodPhase.TERMINAL:
        return "Terminating"
    return text


class PodCounts(Record):
    """READY and RESTARTS of `kubectl get pod`: `last_restart` is the newest counted
    lastState.terminated.finishedAt (epoch seconds, 0 when none), the "(2m ago)"."""

    ready: int
    total: int
    restarts: int
    last_restart: float = 0.0


def pod_counts(
    init: Sequence[ContainerStatus], app: Sequence[ContainerStatus], *, initialized: bool
) -> PodCounts:
    """printPod's READY and RESTARTS. The init walk counts the containers it passes and the one it
    stops at; once the app containers are shown (nothing left to initialize, or the Initialized
    condition is True), only sidecars and app containers count: a plain init container's restarts
    while the pod initialized are no longer shown. READY counts a sidecar the walk passed as
    started, and an app container that is ready and running, only when the app containers are."""
    stop = _init_stop(init)
    counted = list(init[: stop + 1])
    ready = sum(1 for cs in init[:stop] if cs.sidecar and cs.started and cs.ready)
    if stop == len(init) or initialized:
        counted = [cs for cs in counted if cs.sidecar] + list(app)
        ready += sum(1 for cs in app if cs.ready and isinstance(cs.state, Running))
    restarts = sum(cs.restart_count for cs in counted)
    last = max((cs.last_state.finished_at for cs in counted if cs.last_state is not None), default=0.0)
    total = len(app) + sum(1 for cs in init if cs.sidecar)
    return PodCounts(ready, total, restarts, last if restarts else 0.0)


# --- QoS class (pkg/apis/core/v1/helper/qos ComputePodQOS) -------------------------------------


def qos_class(spec: dict[str, Any]) -> str:
    """`status.qosClass` from a (defaulted) pod spec in its API form (what the runtime records and
    `describe` reads back). The rule is the one in sandbox/cgroups/resources.py (`qos_class`, with
    pod-level `spec.resources` deciding alone when it names cpu, memory or hugepages, defaulted as
    the API server does); this only reads the quantities out of the dict."""
    from sandbox.cgroups.resources import default_pod_level
    from sandbox.cgroups.resources import qos_class as compute_qos

    app = [_requirements(c.get("resources"), False) for c in _dicts(spec.get("containers"))]
    init = [_requirements(c.get("resources"), c.get("restartPolicy") == "Always")
            for c in _dicts(spec.get("initContainers"))]
    pod_level = spec.get("resources")
    names = [n for key in ("requests", "limits") for n in _dict(pod_level, key)]
    if any(n in ("cpu", "memory") or n.startswith("hugepages-") for n in names):
        return compute_qos([*app, *init], default_pod_level(_requirements(pod_level, False), app, init))
    return compute_qos([*app, *init])


def _requirements(resources: object, sidecar: bool) -> Any:
    """A ResourceRequirements dict as cgroups.resources.ContainerResources (cpu and memory: the
    only resources the QoS class reads)."""
    from sandbox.cgroups.resources import ContainerResources

    requests, limits = _dict(resources, "requests"), _dict(resources, "limits")
    return ContainerResources(
        cpu_request_milli=_milli(requests.get("cpu")), cpu_limit_milli=_milli(limits.get("cpu")),
        memory_request=_value(requests.get("memory")), memory_limit=_value(limits.get("memory")),
        restartable_init=sidecar)


def _dict(obj: object, key: str) -> dict[str, Any]:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, dict) else {}


def _dicts(items: object) -> list[dict[str, Any]]:
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def _milli(text: object) -> int | None:
    if text is None:
        return None
    from sandbox.spec.quantity import parse_quantity  # only pods that set resources pay for it

    q = parse_quantity(str(text))
    return q.milli if q is not None else None


def _value(text: object) -> int | None:
    milli = _milli(text)
    return -(-milli // 1000) if milli is not None else None  # whole bytes, rounded up (Quantity.Value)


# --- a pod whose runtime is gone -----------------------------------------------------------------

# The reason a reader gives a pod whose runtime died without ending it (killed, crashed, a reboot):
# the runtime's counterpart of the node lifecycle controller's `NodeLost`, which is what the API
# server shows on a pod whose node stopped reporting (status.reason, with phase Unknown).
RUNTIME_LOST = "RuntimeLost"
# The kubelet's terminated reason for a container it can no longer find (exit code 137).
CONTAINER_STATUS_UNKNOWN = "ContainerStatusUnknown"


NOT_LOCATED = "The container could not be located when the pod was terminated"


def _never_ran(cs: ContainerStatus) -> bool:
    # The kubelet's "no evidence of a container start": still waiting, no previous termination.
    return isinstance(cs.state, Waiting) and cs.last_state is None


def _initialized_for_termination(init: Sequence[ContainerStatus], app: Sequence[ContainerStatus]) -> bool:
    """The status manager's hasPodInitialized (not the Initialized condition): no init containers,
    an app container that ever left waiting, or the last init container done (a plain one exited
    0, now or before; a sidecar running and started)."""
    if not init:
        return True
    if any(not isinstance(cs.state, Waiting) or cs.last_state is not None for cs in app):
        return True
    last = init[-1]
    if last.sidecar:
        return isinstance(last.state, Running) and last.started
    return any(isinstance(t, Terminated) and t.exit_code == 0 for t in (last.last_state, last.state))


def terminate_statuses(
    init: Sequence[ContainerStatus], app: Sequence[ContainerStatus]
) -> tuple[list[ContainerStatus], list[ContainerStatus]]:
    """The container statuses a pod ends with (status manager TerminatePod): a container that is
    not terminated when its pod is becomes terminated, ContainerStatusUnknown, exit code 137, so a
    never-started container cannot make the pod look successful. App containers only once the pod
    has initialized; init containers up to the last one with any evidence of a start (the first
    one when none has any), so a suffix never reached stays waiting. The kubelet sets no start or
    finish time (null in JSON)."""
    unknown = Terminated(137, CONTAINER_STATUS_UNKNOWN, 0.0, 0.0, NOT_LOCATED)

    def ended(cs: ContainerStatus) -> ContainerStatus:
        if isinstance(cs.state, Terminated):
            return cs
        return replace(cs, state=unknown)

    reached = len(init)
    while reached > 1 and _never_ran(init[reached - 1]):
        reached -= 1
    new_init = [ended(cs) if i < reached else cs for i, cs in enumerate(init)]
    new_app = [ended(cs) for cs in app] if _initialized_for_termination(init, app) else list(app)
    return new_init, new_app


# --- Kubernetes API JSON --------------------------------------------------------------------------


def rfc3339(ts: float) -> str:
    """UTC time with seconds precision, as metav1.Time serialises (`2026-11-22T16:24:42Z`)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _time_json(ts: float) -> str | None:
    # A zero metav1.Time serialises as null.
    return rfc3339(ts) if ts else None


def _state_json(state: State | None) -> dict[str, object]:
    if isinstance(state, Waiting):
        return {"waiting": _drop_empty({"reason": state.reason, "message": state.message})}
    if isinstance(state, Running):
        return {"running": {"startedAt": _time_json(state.started_at)}}
    if isinstance(state, Terminated):
        body: dict[str, object] = {"exitCode": state.exit_code}
        body.update(_drop_empty({"signal": state.signal, "reason": state.reason, "message": state.message}))
        body["startedAt"] = _time_json(state.started_at)
        body["finishedAt"] = _time_json(state.finished_at)
        body.update(_drop_empty({"containerID": state.container_id}))
        return {"terminated": body}
    return {}


def _drop_empty(fields: dict[str, object]) -> dict[str, object]:
    """Go's `omitempty`: zero values are left out."""
    return {key: value for key, value in fields.items() if value}


def container_status_json(cs: ContainerStatus) -> dict[str, object]:
    """A `containerStatuses[]` entry, with the API's field names and order."""
    out: dict[str, object] = {
        "name": cs.name,
        "state": _state_json(cs.state),
        "lastState": _state_json(cs.last_state),
        "ready": cs.ready,
        "restartCount": cs.restart_count,
        "image": cs.image,
        "imageID": cs.image_id,
    }
    out.update(_drop_empty({"containerID": cs.container_id}))
    out["started"] = cs.started
    if cs.volume_mounts:
        out["volumeMounts"] = [_volume_mount_json(m) for m in cs.volume_mounts]
    if cs.user is not None:
        linux: dict[str, object] = {"uid": cs.user.uid, "gid": cs.user.gid}
        linux.update(_drop_empty({"supplementalGroups": list(cs.user.supplemental_groups)}))
        out["user"] = {"linux": linux}
    return out


def _volume_mount_json(m: VolumeMountStatus) -> dict[str, object]:
    out: dict[str, object] = {"name": m.name, "mountPath": m.mount_path}
    if m.read_only:
        out.update(readOnly=True, recursiveReadOnly=m.recursive_read_only)
    return out


def condition_json(c: PodCondition) -> dict[str, object]:
    """A `conditions[]` entry; the kubelet never sets lastProbeTime, so it is null."""
    out: dict[str, object] = {
        "type": c.type,
        "status": c.status,
        "lastProbeTime": None,
        "lastTransitionTime": _time_json(c.last_transition_time),
    }
    out.update(_drop_empty({"reason": c.reason, "message": c.message}))
    return out


# --- back from JSON (a re-adopted pod's record) ------------------------------------------------------


def _time_from_json(text: object) -> float:
    from sandbox.events import parse_rfc3339

    return parse_rfc3339(text) if isinstance(text, str) and text else 0.0


def _state_from_json(data: object) -> State | None:
    if not isinstance(data, dict) or not data:
        return None
    if "waiting" in data:
        body = data["waiting"] or {}
        return Waiting(str(body.get("reason", "")), str(body.get("message", "")))
    if "running" in data:
        return Running(_time_from_json((data["running"] or {}).get("startedAt")))
    if "terminated" in data:
        body = data["terminated"] or {}
        return Terminated(int(body.get("exitCode", 0)), str(body.get("reason", "")),
                          _time_from_json(body.get("startedAt")), _time_from_json(body.get("finishedAt")),
                          str(body.get("message", "")), int(body.get("signal", 0)), str(body.get("containerID", "")))
    return None


def _user_from_json(data: object) -> LinuxUser | None:
    linux = data.get("linux") if isinstance(data, dict) else None
    if not isinstance(linux, dict):
        return None
    return LinuxUser(int(linux.get("uid", 0)), int(linux.get("gid", 0)),
                     tuple(int(g) for g in linux.get("supplementalGroups") or ()))


def container_status_from_json(data: dict[str, Any], *, sidecar: bool = False) -> ContainerStatus:
    """Inverse of container_status_json (times to the second, as the API keeps them); ValueError
    on a malformed entry."""
    try:
        last = _state_from_json(data.get("lastState"))
        return ContainerStatus(
            name=str(data["name"]), image=str(data.get("image", "")), state=_state_from_json(data.get("state")),
            last_state=last if isinstance(last, Terminated) else None,
            restart_count=int(data.get("restartCount", 0)), ready=bool(data.get("ready")),
            started=bool(data.get("started")), container_id=str(data.get("containerID", "")),
            image_id=str(data.get("imageID", "")), sidecar=sidecar, user=_user_from_json(data.get("user")),
            volume_mounts=tuple(VolumeMountStatus(str(m["name"]), str(m["mountPath"]), bool(m.get("readOnly")),
                                                  str(m.get("recursiveReadOnly", "")))
                                for m in data.get("volumeMounts") or ()))
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise ValueError(f"malformed container status {data!r}: {e}") from None


def condition_from_json(data: dict[str, Any]) -> PodCondition:
    try:
        return PodCondition(str(data["type"]), str(data["status"]), str(data.get("reason", "")),
                            str(data.get("message", "")), _time_from_json(data.get("lastTransitionTime")))
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"malformed condition {data!r}: {e}") from None
