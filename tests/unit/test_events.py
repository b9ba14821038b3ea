"""The pod event recorder: aggregation like client-go's correlator, bounds, JSON round trip, and
the kubelet's message texts."""

from __future__ import annotations

import pytest

from sandbox import events
from sandbox.events import MAX_EVENTS, Event, EventRecorder, field_path, parse_rfc3339

T0 = 1795364682.0  # 2026-11-22T16:24:42Z
WEB = "spec.containers{web}"


def test_identical_events_are_counted_with_first_and_last_time() -> None:
    rec = EventRecorder()
    rec.record(*events.unhealthy("liveness", "HTTP probe failed with statuscode: 500"), obj=WEB, now=T0)
    rec.record(*events.unhealthy("liveness", "HTTP probe failed with statuscode: 500"), obj=WEB, now=T0 + 3)
    last = rec.record(*events.unhealthy("liveness", "HTTP probe failed with statuscode: 500"), obj=WEB, now=T0 + 6)
    assert len(rec) == 1
    assert (last.count, last.first_timestamp, last.last_timestamp) == (3, T0, T0 + 6)


@pytest.mark.parametrize("other", [
    ("Normal", "Unhealthy", "m", WEB),
    ("Warning", "BackOff", "m", WEB),
    ("Warning", "Unhealthy", "other", WEB),
    ("Warning", "Unhealthy", "m", "spec.containers{side}"),
    ("Warning", "Unhealthy", "m", ""),
])
def test_any_difference_in_the_key_makes_a_new_event(other: tuple[str, str, str, str]) -> None:
    rec = EventRecorder()
    rec.record("Warning", "Unhealthy", "m", WEB, T0)
    rec.record(*other, now=T0 + 1)
    assert [e.count for e in rec.events()] == [1, 1]


def test_a_repeated_event_moves_to_the_end() -> None:
    rec = EventRecorder()
    rec.record(*events.created("web"), obj=WEB, now=T0)
    rec.record(*events.started("web"), obj=WEB, now=T0 + 1)
    rec.record(*events.created("web"), obj=WEB, now=T0 + 2)
    assert [e.reason for e in rec.events()] == ["Started", "Created"]


def test_only_the_newest_distinct_events_are_kept() -> None:
    rec = EventRecorder()
    for i in range(MAX_EVENTS + 20):
        rec.record("Normal", "Pulled", f"image {i}", WEB, T0 + i)
    kept = rec.events()
    assert len(kept) == MAX_EVENTS
    assert kept[0].message == "image 20" and kept[-1].message == f"image {MAX_EVENTS + 19}"


def test_an_old_event_seen_again_survives_eviction() -> None:
    rec = EventRecorder(limit=3)
    rec.record("Normal", "A", "a", "", T0)
    rec.record("Normal", "B", "b", "", T0 + 1)
    rec.record("Normal", "A", "a", "", T0 + 2)
    rec.record("Normal", "C", "c", "", T0 + 3)
    rec.record("Normal", "D", "d", "", T0 + 4)
    assert [e.reason for e in rec.events()] == ["A", "C", "D"]
    assert rec.events()[0].count == 2


def test_bad_type_and_limit_are_rejected() -> None:
    with pytest.raises(ValueError, match="Normal or Warning"):
        EventRecorder().record("Error", "Failed", "x", "", T0)
    with pytest.raises(ValueError, match="at least 1"):
        EventRecorder(limit=0)


def test_json_has_the_api_field_names() -> None:
    rec = EventRecorder()
    rec.record(*events.back_off("web", "p", "default", "u-1"), obj=WEB, now=T0)
    rec.record(*events.back_off("web", "p", "default", "u-1"), obj=WEB, now=T0 + 10)
    assert rec.to_json() == [{
        "type": "Warning",
        "reason": "BackOff",
        "message": "Back-off restarting failed container web in pod p_default(u-1)",
        "count": 2,
        "firstTimestamp": "2026-11-22T16:24:42Z",
        "lastTimestamp": "2026-11-22T16:24:52Z",
        "involvedObject": {"fieldPath": WEB},
    }]


def test_json_round_trip_keeps_order_counts_and_aggregation() -> None:
    rec = EventRecorder()
    rec.record(*events.sandbox_changed(), obj="", now=T0)
    rec.record(*events.killing("web"), obj=WEB, now=T0 + 1)
    rec.record(*events.killing("web"), obj=WEB, now=T0 + 2)
    again = EventRecorder.from_json(rec.to_json())
    assert again.events() == rec.events()
    assert again.record(*events.killing("web"), obj=WEB, now=T0 + 5).count == 3


def test_from_json_sorts_by_last_time_and_applies_the_limit() -> None:
    data = [Event("Normal", r, r, "", 1, T0 + i, T0 + i).to_json() for i, r in enumerate("CAB")]
    data.reverse()
    assert [e.reason for e in EventRecorder.from_json(data, limit=2).events()] == ["A", "B"]


@pytest.mark.parametrize("bad", [
    {"reason": "x", "firstTimestamp": "2026-11-22T16:24:42Z", "lastTimestamp": "2026-11-22T16:24:42Z"},
    {"type": "Normal", "reason": "x", "firstTimestamp": "yesterday", "lastTimestamp": "2026-11-22T16:24:42Z"},
    {"type": "Normal", "reason": "x", "count": "many", "firstTimestamp": "2026-11-22T16:24:42Z",
     "lastTimestamp": "2026-11-22T16:24:42Z"},
])
def test_malformed_json_is_a_value_error(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Event.from_json(bad)


def test_parse_rfc3339_inverts_the_status_format() -> None:
    assert parse_rfc3339("2026-11-22T16:24:42Z") == T0


def test_field_paths() -> None:
    assert field_path("web") == "spec.containers{web}"
    assert field_path("init-db", init=True) == "spec.initContainers{init-db}"


@pytest.mark.parametrize("note, want", [
    (events.pulled("busybox"), ("Normal", "Pulled", 'Container image "busybox" already present on machine')),
    (events.pulling("nginx:1.25"), ("Normal", "Pulling", 'Pulling image "nginx:1.25"')),
    (events.pulled_now("nginx:1.25", 2.5, 70000000),
     ("Normal", "Pulled", 'Successfully pulled image "nginx:1.25" in 2.5s (2.5s including waiting). '
                          "Image size: 70000000 bytes.")),
    (events.never_pull("busybox:1"),
     ("Warning", "ErrImageNeverPull", 'Container image "busybox:1" is not present with pull policy of Never')),
    (events.created("web"), ("Normal", "Created", "Created container: web")),
    (events.started("web"), ("Normal", "Started", "Started container web")),
    (events.killing("web"), ("Normal", "Killing", "Stopping container web")),
    (events.killing_after_post_start(), ("Normal", "Killing", "FailedPostStartHook")),  # killContainer's message
    (events.killing_after_probe("web", "liveness"),
     ("Normal", "Killing", "Container web failed liveness probe, will be restarted")),
    (events.killing_after_probe("web", "startup"),
     ("Normal", "Killing", "Container web failed startup probe, will be restarted")),
    (events.unhealthy("liveness", "cat: /tmp/healthy: No such file or directory"),
     ("Warning", "Unhealthy", "Liveness probe failed: cat: /tmp/healthy: No such file or directory")),
    (events.unhealthy("readiness", "HTTP probe failed with statuscode: 503"),
     ("Warning", "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503")),
    (events.unhealthy("startup", "dial tcp 127.0.0.1:8080: connect: connection refused"),
     ("Warning", "Unhealthy", "Startup probe failed: dial tcp 127.0.0.1:8080: connect: connection refused")),
    (events.probe_errored("liveness", "timeout"), ("Warning", "Unhealthy", "Liveness probe errored: timeout")),
    (events.probe_warning("readiness", "Probe terminated redirects"),
     ("Warning", "ProbeWarning", "Readiness probe warning: Probe terminated redirects")),
    (events.back_off("web", "p", "default", "uid"),
     ("Warning", "BackOff", "Back-off restarting failed container web in pod p_default(uid)")),
    (events.failed_post_start_hook(), ("Warning", "FailedPostStartHook", "PostStartHook failed")),
    (events.failed_pre_stop_hook(), ("Warning", "FailedPreStopHook", "PreStopHook failed")),
    (events.failed('failed to create containerd task: exec: "nope"'),
     ("Warning", "Failed", 'Error: failed to create containerd task: exec: "nope"')),
    (events.sandbox_changed(), ("Normal", "SandboxChanged", "Pod sandbox changed, it will be killed and re-created.")),
    (events.deadline_exceeded(),
     ("Normal", "DeadlineExceeded", "Pod was active on the node longer than the specified deadline")),
])
def test_kubelet_messages(note: tuple[str, str, str], want: tuple[str, str, str]) -> None:
    assert note == want


def test_post_start_hook_event_keeps_the_handlers_message_out() -> None:
    # Kubernetes >= 1.26 (kubernetes#119541): the message may carry secrets.
    assert events.failed_post_start_hook() == ("Warning", "FailedPostStartHook", "PostStartHook failed")


def test_lifecycle_hook_failed_has_the_handler_runners_wording() -> None:
    from sandbox.spec.model import ExecAction, HTTPGetAction, LifecycleHandler, SleepAction

    pod = "web_default(0b6c5e0a-0000-4000-8000-000000000000)"
    exec_hook = LifecycleHandler(exec=ExecAction(("sh", "-c", "exit 3")))
    error = "command 'sh -c exit 3' exited with 3: oops\n"
    output = 'said "no"\noops\n' + b"\xff".decode(errors="surrogateescape")
    # handlers.go: "error: %v, message: %q", the output Go-quoted (an invalid byte as \xff)
    assert events.lifecycle_hook_failed(exec_hook, "app", pod, error, output) == (
        'Exec lifecycle hook ([sh -c exit 3]) for Container "app" in Pod '
        '"web_default(0b6c5e0a-0000-4000-8000-000000000000)" failed - error: command \'sh -c exit 3\' exited '
        'with 3: oops\n, message: "said \\"no\\"\\noops\\n\\xff"')
    assert events.lifecycle_hook_failed(exec_hook, "app", pod, "no such file").endswith(
        'failed - error: no such file, message: ""')
    http_hook = LifecycleHandler(http_get=HTTPGetAction(port=80, path="/start"))
    assert events.lifecycle_hook_failed(http_hook, "app", pod, "connection refused").startswith(
        'HTTP lifecycle hook (/start) for Container "app" in Pod "web_default(')
    sleep_hook = LifecycleHandler(sleep=SleepAction(5))
    assert events.lifecycle_hook_failed(sleep_hook, "app", pod, "x").startswith("Sleep lifecycle hook (5) for")
