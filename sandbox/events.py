"""The kubelet's events for one pod: what `kubectl describe pod` shows under "Events".

Pure: the caller passes the wall-clock time. Identical events (same type, reason, involved
object and message) are folded into one with `count` + 1 and a new `lastTimestamp`, keeping
`firstTimestamp`, as client-go's EventCorrelator (`EventLogger.eventObserve`) does before the
API server stores them. Its other two layers are not reproduced: the spam filter (a token bucket
per source and object) and the aggregator that merges > 10 similar events with different
messages into "(combined from similar events): ...". Only the newest `MAX_EVENTS` distinct
events are kept (the API server expires events after an hour; a local pod has no TTL).

The helper constructors return `(type, reason, message)` notes with the kubelet's own wording
(`pkg/kubelet/events/event.go` reasons, messages from kuberuntime_container.go, prober/, images/),
to be passed on as `recorder.record(*events.started("web"), obj=..., now=...)`.
"""

from __future__ import annotations

from sandbox.record import Record

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from typing import Any

    Note = tuple[str, str, str]  # (type, reason, message)

NORMAL = "Normal"
WARNING = "Warning"
TYPES = (NORMAL, WARNING)
MAX_EVENTS = 100


class Event(Record):
    type: str  # Normal | Warning
    reason: str  # Created, Started, Killing, Unhealthy, BackOff, ...
    message: str
    field_path: str  # involvedObject.fieldPath: "spec.containers{web}", "" for the pod itself
    count: int
    first_timestamp: float  # wall-clock epoch seconds
    last_timestamp: float

    def key(self) -> tuple[str, str, str, str]:
        return (self.type, self.reason, self.field_path, self.message)

    def to_json(self) -> dict[str, Any]:
        from sandbox.status import rfc3339

        return {
            "type": self.type,
            "reason": self.reason,
            "message": self.message,
            "count": self.count,
            "firstTimestamp": rfc3339(self.first_timestamp),
            "lastTimestamp": rfc3339(self.last_timestamp),
            "involvedObject": {"fieldPath": self.field_path},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Event:
        """Inverse of to_json; raises ValueError on a malformed entry."""
        try:
            involved = data.get("involvedObject") or {}
            return cls(str(data["type"]), str(data["reason"]), str(data.get("message", "")),
                       str(involved.get("fieldPath", "")), int(data.get("count", 1)),
                       parse_rfc3339(str(data["firstTimestamp"])), parse_rfc3339(str(data["lastTimestamp"])))
        except (KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"malformed event {data!r}: {e}") from None


class EventRecorder:
    """One pod's events, oldest first by last occurrence; at most `limit` distinct ones."""

    def __init__(self, limit: int = MAX_EVENTS) -> None:
        if limit < 1:
            raise ValueError(f"event limit must be at least 1, got {limit}")
        self.limit = limit
        # Insertion order is last-occurrence order: a repeated event moves to the end, so the
        # first entry is always the one to drop.
        self._events: dict[tuple[str, str, str, str], Event] = {}

    def record(self, type: str, reason: str, message: str, obj: str = "", now: float = 0.0) -> Event:
        """Add one occurrence; `obj` is the field path ("spec.containers{web}") or "" for the pod."""
        if type not in TYPES:
            raise ValueError(f"event type must be Normal or Warning, got {type!r}")
        key = (type, reason, obj, message)
        seen = self._events.pop(key, None)
        if seen is None:
            event = Event(type, reason, message, obj, 1, now, now)
        else:
            event = Event(type, reason, message, obj, seen.count + 1, seen.first_timestamp, now)
        self._events[key] = event
        while len(self._events) > self.limit:
            del self._events[next(iter(self._events))]
        return event

    def events(self) -> list[Event]:
        return list(self._events.values())

    def __len__(self) -> int:
        return len(self._events)

    def to_json(self) -> list[dict[str, Any]]:
        return [e.to_json() for e in self._events.values()]

    @classmethod
    def from_json(cls, data: list[dict[str, Any]], limit: int = MAX_EVENTS) -> EventRecorder:
        recorder = cls(limit)
        for event in sorted((Event.from_json(d) for d in data), key=lambda e: e.last_timestamp):
            recorder._events.pop(event.key(), None)
            recorder._events[event.key()] = event
        while len(recorder._events) > limit:
            del recorder._events[next(iter(recorder._events))]
        return recorder


def parse_rfc3339(text: str) -> float:
    """`2026-11-22T16:24:42Z` (what sandbox.status.rfc3339 writes) to epoch seconds."""
    import calendar
    import time

    try:
        return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        raise ValueError(f"bad RFC 3339 time {text!r}: expected YYYY-MM-DDTHH:MM:SSZ") from None


def field_path(container: str, init: bool = False) -> str:
    """involvedObject.fieldPath of a container, as the kubelet's GenerateContainerRef sets it."""
    return f"spec.initContainers{{{container}}}" if init else f"spec.containers{{{container}}}"


# --- The kubelet's messages ------------------------------------------------------------------------


def pulled(image: str) -> Note:
    return (NORMAL, "Pulled", f'Container image "{image}" already present on machine')


def pulling(image: str) -> Note:
    return (NORMAL, "Pulling", f'Pulling image "{image}"')


def pulled_now(image: str, seconds: float, size: int) -> Note:
    """The kubelet's message after a pull, also sent for an Always pull that found the stored
    digest current (only the manifest travelled): its duration twice, truncated to milliseconds
    and written as Go's time.Duration (`2.5s`, `12ms`); the second counts waiting for a pull
    another pod started, which a one-pod runtime never does."""
    from sandbox.supervisor.backoff import format_duration

    took = format_duration(int(seconds * 1000) / 1000)
    return (NORMAL, "Pulled", f'Successfully pulled image "{image}" in {took} ({took} including '
                              f"waiting). Image size: {size} bytes.")


def failed_pull_secrets(names: tuple[str, ...]) -> Note:
    """The kubelet's getPullSecretsForPod, when imagePullSecrets names Secrets it cannot read (the
    event is the pod's; the pull goes on without them)."""
    return (WARNING, "FailedToRetrieveImagePullSecret",
            f"Unable to retrieve some image pull secrets ({', '.join(names)}); attempting to pull the image "
            "may not succeed.")


def image_pull_failed(image: str, message: str) -> Note:
    return (WARNING, "Failed", f'Failed to pull image "{image}": {message}')


def image_back_off(image: str) -> Note:
    return (NORMAL, "BackOff", f'Back-off pulling image "{image}"')


def never_pull_message(image: str) -> str:
    """The kubelet's ErrImageNeverPull text (event, waiting message, refusal of an `image` volume)."""
    return f'Container image "{image}" is not present with pull policy of Never'


def never_pull(image: str) -> Note:
    return (WARNING, "ErrImageNeverPull", never_pull_message(image))


def created(container: str) -> Note:
    return (NORMAL, "Created", f"Created container: {container}")


def started(container: str) -> Note:
    return (NORMAL, "Started", f"Started container {container}")


def killing(container: str) -> Note:
    return (NORMAL, "Killing", f"Stopping container {container}")


def killing_after_post_start() -> Note:
    """The kill that follows FailedPostStartHook: the kubelet's killContainer gets the message
    "FailedPostStartHook", which replaces the default "Stopping container <name>"."""
    return (NORMAL, "Killing", "FailedPostStartHook")


def killing_after_probe(container: str, probe: str) -> Note:
    """`probe` is "liveness" or "startup": the kill that follows its Unhealthy event."""
    return (NORMAL, "Killing", f"Container {container} failed {probe} probe, will be restarted")


def unhealthy(probe: str, output: str) -> Note:
    """`probe` is "liveness", "readiness" or "startup"; `output` the probe's failure text."""
    return (WARNING, "Unhealthy", f"{probe.capitalize()} probe failed: {output}")


def probe_errored(probe: str, error: str) -> Note:
    """The probe could not run at all (3 tries within one tick)."""
    return (WARNING, "Unhealthy", f"{probe.capitalize()} probe errored: {error}")


def probe_warning(probe: str, output: str) -> Note:
    """An HTTP probe redirected to another host: counted as success, reported once per occurrence."""
    return (WARNING, "ProbeWarning", f"{probe.capitalize()} probe warning: {output}")


def back_off(container: str, pod: str, namespace: str, uid: str) -> Note:
    return (WARNING, "BackOff", f"Back-off restarting failed container {container} in pod {pod}_{namespace}({uid})")


def failed_post_start_hook() -> Note:
    """Since Kubernetes 1.26 the kubelet leaves the handler's message out of the event (it may
    carry secrets: kubernetes#119541); the message goes to the container's waiting state instead
    (PostStartHookError, `lifecycle_hook_failed`)."""
    return (WARNING, "FailedPostStartHook", "PostStartHook failed")


def lifecycle_hook_failed(handler: Any, container: str, pod: str, error: str, output: str = "") -> str:
    """The handler runner's message for a failed hook (pkg/kubelet/lifecycle/handlers.go Run),
    which the kubelet shows as the container's `PostStartHookError` waiting message. `pod` is
    "<name>_<namespace>(<uid>)" (format.Pod); `error` the check's own failure text; `output` an
    exec hook's output (stdout then stderr), which the exec wording quotes after the error."""
    where = f'for Container "{container}" in Pod "{pod}" failed - error: {error}'
    if getattr(handler, "exec", None) is not None:
        return f"Exec lifecycle hook ([{' '.join(handler.exec.command)}]) {where}, message: {go_quote_bytes(output)}"
    if getattr(handler, "http_get", None) is not None:
        return f"HTTP lifecycle hook ({handler.http_get.path or ''}) {where}"
    if getattr(handler, "sleep", None) is not None:
        return f"Sleep lifecycle hook ({handler.sleep.seconds}) {where}"
    return f"Cannot run handler: {error}"


def go_quote_bytes(text: str) -> str:
    """Go's %q of a byte string: `text` holds its undecodable bytes as surrogate escapes
    (errors="surrogateescape"), which strconv.Quote writes as \\xNN."""
    import re

    from sandbox.process.downward import go_quote

    parts = re.split("([\udc80-\udcff]+)", text)
    quoted = [go_quote(part)[1:-1] if i % 2 == 0 else "".join(f"\\x{ord(ch) - 0xDC00:02x}" for ch in part)
              for i, part in enumerate(parts)]
    return '"' + "".join(quoted) + '"'


def failed_pre_stop_hook() -> Note:
    return (WARNING, "FailedPreStopHook", "PreStopHook failed")


def failed(error: str) -> Note:
    """A container that could not be created or started (CreateContainerError, ...)."""
    return (WARNING, "Failed", f"Error: {error}")


def invalid_env_names(message: str) -> Note:
    """envFrom keys skipped as environment variable names (kubelet makeEnvironmentVariables)."""
    return (WARNING, "InvalidEnvironmentVariableNames", message)


def sandbox_changed() -> Note:
    return (NORMAL, "SandboxChanged", "Pod sandbox changed, it will be killed and re-created.")


def deadline_exceeded() -> Note:
    return (NORMAL, "DeadlineExceeded", "Pod was active on the node longer than the specified deadline")


def evicted(message: str) -> Note:
    """The eviction manager's event on the pod (eviction_manager.go evictPod): reason Evicted,
    the same message the pod's status.message carries."""
    return (WARNING, "Evicted", message)


def background_process_killed(container: str, commands: list[str], policy: str, exit_code: int | None) -> Note:
    """The foreground rule (our own reason; the kubelet has none): the main process exited while
    processes it had started were still running, and they were killed with it. `commands` names
    them (no pids, so a crash loop folds into one event with a count); `exit_code` is the main
    process's, when known, to say whether restartPolicy OnFailure restarts the container."""
    shown = ", ".join(commands[:3]) + (f" and {len(commands) - 3} more" if len(commands) > 3 else "")
    return (WARNING, "BackgroundProcessKilled",
            f"Container {container}'s main process exited while {len(commands)} process(es) it started were "
            f"still running ({shown}); they were killed with it. A container lives exactly as long as its main "
            f"process, so restartPolicy {policy} {restart_consequence(policy, exit_code)}. Keep the main process "
            "in the foreground (e.g. `exec app`).")


def restart_consequence(policy: str, exit_code: int | None) -> str:
    """What restartPolicy does with a container whose main process exited with `exit_code`."""
    if policy == "Never":
        return "leaves it terminated"
    if policy == "OnFailure":
        if exit_code is None:
            return "restarts it if it exited non-zero"
        return "restarts it" if exit_code != 0 else "leaves it terminated (exit code 0)"
    return "restarts it"


def pid_limit_capped(limit: int | None) -> Note:
    """The kubelet's warning when spec.resources.limits.pids asks for more than the node allows."""
    return (WARNING, "PIDLimitCapped", f"the pod's pids limit is capped at the node's podPidsLimit ({limit})")


def missing_cluster_dns(pod_ref: str) -> Note:
    """dns.go GetPodDNS, on every ClusterFirst pod when the kubelet has no clusterDNS; `pod_ref`
    is format.Pod's "<name>_<namespace>(<uid>)"."""
    return (WARNING, "MissingClusterDNS",
            f'pod: "{pod_ref}". kubelet does not have ClusterDNS IP configured and cannot create Pod using '
            '"ClusterFirst" policy. Falling back to "Default" policy.')


def dns_config_forming(message: str) -> Note:
    """dns.go formDNSConfigFitsLimits: nameservers or search paths dropped to fit the limits."""
    return (WARNING, "DNSConfigForming", message)
