"""Pod phase, conditions, kubectl STATUS and API JSON, case by case against the kubelet's rules."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.record import replace
from sandbox.status import (
    ContainerStatus,
    PodCondition,
    Running,
    Terminated,
    Waiting,
    condition_json,
    container_status_json,
    default_waiting_reason,
    init_container_ready,
    pod_conditions,
    pod_counts,
    pod_phase,
    qos_class,
    rfc3339,
    status_string,
    terminated_reason,
    volume_mount_statuses,
)

T0 = 1795364682.0  # 2026-11-22T16:24:42Z


def run(
    name: str = "a", *, ready: bool = True, started: bool = True, sidecar: bool = False
) -> ContainerStatus:
    return ContainerStatus(name, "busybox", Running(T0), ready=ready, started=started, sidecar=sidecar)


def done(
    name: str = "a", code: int = 0, *, reason: str | None = None, signal: int = 0, sidecar: bool = False
) -> ContainerStatus:
    why = terminated_reason(code) if reason is None else reason
    state = Terminated(code, why, T0, T0 + 5, signal=signal)
    return ContainerStatus(name, "busybox", state, ready=False, sidecar=sidecar)


def wait(
    name: str = "a", reason: str = "ContainerCreating", *, last: int | None = None, sidecar: bool = False
) -> ContainerStatus:
    last_state = None if last is None else Terminated(last, terminated_reason(last), T0, T0 + 1)
    restarts = 0 if last is None else 1
    return ContainerStatus(
        name, "busybox", Waiting(reason), last_state=last_state, restart_count=restarts, sidecar=sidecar
    )


def crashloop(name: str = "a", last: int = 1, *, sidecar: bool = False) -> ContainerStatus:
    return wait(name, "CrashLoopBackOff", last=last, sidecar=sidecar)


def unknown(name: str = "a", *, sidecar: bool = False) -> ContainerStatus:
    return ContainerStatus(name, "busybox", None, sidecar=sidecar)


A, O, N = "Always", "OnFailure", "Never"
INIT_WAIT = wait("a", "PodInitializing")

# fmt: off
PHASE_CASES = [
    # rule 1: a failed plain init container fails the pod only under Never
    ("init failed, Never", N, [done("i", 1)], [INIT_WAIT], "Failed"),
    ("init failed then waiting, Never", N, [crashloop("i")], [INIT_WAIT], "Failed"),
    ("init failed, OnFailure retries", O, [crashloop("i")], [INIT_WAIT], "Pending"),
    ("init failed, Always retries", A, [done("i", 1)], [INIT_WAIT], "Pending"),
    ("init retry after success is not failure", N, [wait("i", last=0)], [INIT_WAIT], "Pending"),
    # rule 2: pending init containers
    ("init running", A, [run("i")], [INIT_WAIT], "Pending"),
    ("init not started", A, [wait("i", "PodInitializing")], [INIT_WAIT], "Pending"),
    ("init without status", N, [unknown("i")], [INIT_WAIT], "Pending"),
    ("init done, second running", A, [done("i"), run("j")], [INIT_WAIT], "Pending"),
    ("pending plain init wins even with apps running", A, [run("i")], [run("a")], "Pending"),
    ("sidecar not started, apps not started", A, [run("s", started=False, sidecar=True)], [INIT_WAIT], "Pending"),
    ("sidecar not started after apps ran", A, [run("s", started=False, sidecar=True)], [run("a")], "Running"),
    # kubelet quirk: an app in crash-loop back-off has not "started" (not running/terminated)
    ("sidecar restarting while app crash-loops", A, [run("s", started=False, sidecar=True)], [crashloop("a")], "Pending"),
    ("sidecar started while app crash-loops", A, [run("s", sidecar=True)], [crashloop("a")], "Running"),
    ("sidecar started, next init running", A, [run("s", sidecar=True), run("i")], [INIT_WAIT], "Pending"),
    # rule 3: anything waiting for its first start
    ("app creating", A, [], [wait("a")], "Pending"),
    ("one running, one creating", N, [], [run("a"), wait("b")], "Pending"),
    ("sidecar never started", A, [wait("s", sidecar=True)], [run("a")], "Pending"),
    # rule 4: running with nothing unknown
    ("app running", N, [], [run("a")], "Running"),
    ("app running, not ready", N, [], [run("a", ready=False)], "Running"),
    ("init done, app running", O, [done("i")], [run("a")], "Running"),
    ("running plus exited", N, [], [run("a"), done("b", 1)], "Running"),
    ("sidecar running alone after apps exited", A, [run("s", sidecar=True)], [done("a")], "Running"),
    ("sidecar restarting is ignored", N, [crashloop("s", sidecar=True)], [run("a")], "Running"),
    ("running but one unknown", A, [], [run("a"), unknown("b")], "Pending"),
    ("sidecar unknown", A, [unknown("s", sidecar=True)], [run("a")], "Pending"),
    # rule 5: everything stopped
    ("all exited 0, Always restarts", A, [], [done("a"), done("b")], "Running"),
    ("all exited 0, OnFailure", O, [], [done("a"), done("b")], "Succeeded"),
    ("all exited 0, Never", N, [], [done("a"), done("b")], "Succeeded"),
    ("one failed, Always", A, [], [done("a"), done("b", 1)], "Running"),
    ("one failed, OnFailure restarting", O, [], [done("a"), crashloop("b")], "Running"),
    ("one failed, OnFailure", O, [], [done("a"), done("b", 2)], "Running"),
    ("one failed, Never", N, [], [done("a"), done("b", 1)], "Failed"),
    ("OOM killed, Never", N, [], [done("a", 137, reason="OOMKilled")], "Failed"),
    ("restarting after exit 0 is not success", O, [], [wait("a", last=0)], "Running"),
    ("restarting, Always", A, [], [crashloop("a")], "Running"),
    ("sidecar exit code does not decide", N, [done("s", 1, sidecar=True)], [done("a")], "Succeeded"),
    ("running sidecar keeps pod Running", N, [run("s", sidecar=True)], [done("a")], "Running"),
    # rule 6
    ("stopped plus unknown", N, [], [done("a"), unknown("b")], "Pending"),
    ("nothing known", A, [], [unknown("a")], "Pending"),
    ("no containers", A, [], [], "Pending"),
]
# fmt: on


@pytest.mark.parametrize(
    ("policy", "init", "app", "expected"),
    [case[1:] for case in PHASE_CASES],
    ids=[case[0] for case in PHASE_CASES],
)
def test_phase_table(
    policy: str, init: list[ContainerStatus], app: list[ContainerStatus], expected: str
) -> None:
    assert pod_phase(policy, init, app) == expected


# fmt: off
TERMINAL_CASES = [
    # (policy, app, static, expected): a terminal pod restarts nothing, so Always/OnFailure end too
    (A, [done("a"), done("b")], False, "Succeeded"),
    (A, [done("a"), done("b", 143)], False, "Failed"),
    (O, [crashloop("a")], False, "Failed"),
    (N, [done("a")], False, "Succeeded"),
    # static pods skip the terminal shortcut and use the restart-policy rules
    (A, [done("a"), done("b", 143)], True, "Running"),
    (O, [done("a", 1)], True, "Running"),
    (N, [done("a", 1)], True, "Failed"),
    # terminal does not matter while something still runs
    (A, [run("a"), done("b")], False, "Running"),
]
# fmt: on


@pytest.mark.parametrize(("policy", "app", "static", "expected"), TERMINAL_CASES)
def test_phase_of_terminal_pod(policy: str, app: list[ContainerStatus], static: bool, expected: str) -> None:
    assert pod_phase(policy, [], app, terminal=True, static=static) == expected


@pytest.mark.parametrize("previous", ["Failed", "Succeeded"])
def test_terminal_phase_never_changes_back(previous: str) -> None:
    assert pod_phase(A, [], [run("a")], previous=previous) == previous
    assert pod_phase(A, [], [run("a")], previous="Pending") == "Running"


@pytest.mark.parametrize(
    ("code", "oom", "reason"),
    [
        (0, False, "Completed"),
        (1, False, "Error"),
        (137, False, "Error"),
        (137, True, "OOMKilled"),
        (0, True, "OOMKilled"),
    ],
)
def test_terminated_reason(code: int, oom: bool, reason: str) -> None:
    assert terminated_reason(code, oom) == reason


def test_negative_restart_count_is_refused() -> None:
    with pytest.raises(ValueError, match="restart count"):
        ContainerStatus("a", "busybox", None, restart_count=-1)


# --- conditions ---------------------------------------------------------------------------------

TYPES = ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]


def conditions(
    phase: str, init: list[ContainerStatus], app: list[ContainerStatus], **kw: object
) -> dict[str, PodCondition]:
    args: dict[str, object] = {"sandbox_ready": True, "previous": [], "now": T0}
    args.update(kw)
    result = pod_conditions(phase, init, app, **args)  # type: ignore[arg-type]
    assert [c.type for c in result] == TYPES
    return {c.type: c for c in result}


def brief(c: PodCondition) -> tuple[str, str, str]:
    return (c.status, c.reason, c.message)


COND_CASES = [
    # (phase, init, app, {type: (status, reason, message)})
    ("Running", [], [run("a")], {t: ("True", "", "") for t in TYPES}),
    (
        "Running",
        [],
        [run("a", ready=False), run("b", ready=False)],
        {
            "Ready": ("False", "ContainersNotReady", "containers with unready status: [a b]"),
            "ContainersReady": ("False", "ContainersNotReady", "containers with unready status: [a b]"),
            "Initialized": ("True", "", ""),
        },
    ),
    (
        "Pending",
        [],
        [run("a", ready=False), unknown("b")],
        {
            "ContainersReady": (
                "False",
                "ContainersNotReady",
                "containers with unknown status: [b], containers with unready status: [a]",
            ),
        },
    ),
    (
        "Pending",
        [done("i1"), run("i2", ready=False), wait("i3", "PodInitializing")],
        [INIT_WAIT],
        {
            "Initialized": (
                "False",
                "ContainersNotInitialized",
                "containers with incomplete status: [i2 i3]",
            ),
            "ContainersReady": ("False", "ContainersNotReady", "containers with unready status: [a]"),
        },
    ),
    (
        "Pending",
        [unknown("i1"), wait("i2", "PodInitializing")],
        [INIT_WAIT],
        {
            "Initialized": (
                "False",
                "ContainersNotInitialized",
                "containers with unknown status: [i1], containers with incomplete status: [i2]",
            ),
        },
    ),
    (  # a started sidecar counts as initialized; its readiness counts for ContainersReady
        "Running",
        [done("i"), run("s", ready=False, sidecar=True)],
        [run("a")],
        {
            "Initialized": ("True", "", ""),
            "ContainersReady": ("False", "ContainersNotReady", "containers with unready status: [s]"),
        },
    ),
    (  # a sidecar running but not started yet blocks initialization
        "Pending",
        [run("s", started=False, ready=False, sidecar=True)],
        [INIT_WAIT],
        {"Initialized": ("False", "ContainersNotInitialized", "containers with incomplete status: [s]")},
    ),
    (  # once an app container started, a restarting sidecar does not undo Initialized
        "Running",
        [crashloop("s", sidecar=True)],
        [run("a")],
        {
            "Initialized": ("True", "", ""),
            "Ready": ("False", "ContainersNotReady", "containers with unready status: [s]"),
        },
    ),
    (  # plain init containers never count for readiness
        "Running",
        [done("i")],
        [run("a")],
        {"ContainersReady": ("True", "", ""), "Ready": ("True", "", "")},
    ),
    (
        "Succeeded",
        [done("i")],
        [done("a"), done("b")],
        {
            "Initialized": ("True", "PodCompleted", ""),
            "Ready": ("False", "PodCompleted", ""),
            "ContainersReady": ("False", "PodCompleted", ""),
        },
    ),
    (
        "Failed",
        [],
        [run("a"), done("b", 1)],
        {
            "Ready": ("False", "PodFailed", ""),
            "ContainersReady": ("False", "PodFailed", ""),
            "Initialized": ("True", "", ""),
        },
    ),
    (  # init container failed under Never: pod Failed before any app ran
        "Failed",
        [done("i", 1)],
        [INIT_WAIT],
        {
            "Initialized": ("False", "ContainersNotInitialized", "containers with incomplete status: [i]"),
            "ContainersReady": ("False", "PodFailed", ""),
        },
    ),
]


@pytest.mark.parametrize(("phase", "init", "app", "expected"), COND_CASES)
def test_conditions_table(
    phase: str,
    init: list[ContainerStatus],
    app: list[ContainerStatus],
    expected: dict[str, tuple[str, str, str]],
) -> None:
    got = conditions(phase, init, app)
    assert {t: brief(got[t]) for t in expected} == expected
    assert brief(got["PodScheduled"]) == ("True", "", "")


def test_ready_to_start_containers_follows_the_sandbox() -> None:
    assert (
        conditions("Pending", [], [wait("a")], sandbox_ready=False)["PodReadyToStartContainers"].status
        == "False"
    )
    assert (
        conditions("Pending", [], [wait("a")], sandbox_ready=True)["PodReadyToStartContainers"].status
        == "True"
    )


def test_plain_init_done_means_exited_0() -> None:
    init = [ContainerStatus("i", "busybox", Terminated(0, "Completed", T0, T0), ready=False)]
    assert conditions("Pending", init, [wait("a")])["Initialized"].status == "True"
    init = [ContainerStatus("i", "busybox", Running(T0), ready=True, started=True)]
    assert conditions("Pending", init, [wait("a")])["Initialized"].status == "False"


def test_transition_times_kept_while_status_unchanged() -> None:
    first = pod_conditions("Running", [], [run("a", ready=False)], sandbox_ready=True, previous=[], now=100.0)
    assert {c.last_transition_time for c in first} == {100.0}
    # Ready flips, everything else keeps its time; a changed message alone is not a transition.
    second = pod_conditions("Running", [], [run("a")], sandbox_ready=True, previous=first, now=200.0)
    times = {c.type: c.last_transition_time for c in second}
    assert times == {
        "PodReadyToStartContainers": 100.0,
        "Initialized": 100.0,
        "Ready": 200.0,
        "ContainersReady": 200.0,
        "PodScheduled": 100.0,
    }
    third = pod_conditions(
        "Running",
        [],
        [run("a", ready=False), run("b", ready=False)],
        sandbox_ready=True,
        previous=second,
        now=300.0,
    )
    fourth = pod_conditions(
        "Running", [], [run("a", ready=False)], sandbox_ready=True, previous=third, now=400.0
    )
    ready = {c.type: c for c in fourth}["Ready"]
    assert (ready.message, ready.last_transition_time) == ("containers with unready status: [a]", 300.0)


def test_missing_previous_condition_transitions_now() -> None:
    previous = [PodCondition("PodScheduled", "True", last_transition_time=50.0)]
    got = pod_conditions("Pending", [], [wait("a")], sandbox_ready=False, previous=previous, now=60.0)
    assert [c.last_transition_time for c in got] == [60.0, 60.0, 60.0, 60.0, 50.0]


# --- kubectl STATUS -----------------------------------------------------------------------------

# fmt: off
STATUS_CASES = [
    # (id, phase, init, app, initialized, ready, extra kwargs, expected)
    ("running", "Running", [], [run("a")], True, True, {}, "Running"),
    ("creating", "Pending", [], [wait("a")], True, False, {}, "ContainerCreating"),
    ("first init running", "Pending", [run("i"), wait("j", "PodInitializing")], [INIT_WAIT], False, False, {}, "Init:0/2"),
    ("second init running", "Pending", [done("i"), run("j")], [INIT_WAIT], False, False, {}, "Init:1/2"),
    ("init not started yet", "Pending", [wait("i", "PodInitializing")], [INIT_WAIT], False, False, {}, "Init:0/1"),
    ("init without status", "Pending", [unknown("i")], [INIT_WAIT], False, False, {}, "Init:0/1"),
    ("init failed", "Failed", [done("i", 1)], [INIT_WAIT], False, False, {}, "Init:Error"),
    ("init crash loop", "Pending", [crashloop("i")], [INIT_WAIT], False, False, {}, "Init:CrashLoopBackOff"),
    ("init image error", "Pending", [wait("i", "ErrImagePull")], [INIT_WAIT], False, False, {}, "Init:ErrImagePull"),
    ("init exit code, no reason", "Failed", [done("i", 3, reason="")], [INIT_WAIT], False, False, {}, "Init:ExitCode:3"),
    ("init signal, no reason", "Failed", [done("i", 137, reason="", signal=9)], [INIT_WAIT], False, False, {}, "Init:Signal:9"),
    ("started sidecar skipped", "Pending", [run("s", sidecar=True), run("i")], [INIT_WAIT], False, False, {}, "Init:1/2"),
    ("sidecar starting", "Pending", [run("s", started=False, sidecar=True)], [INIT_WAIT], False, False, {}, "Init:0/1"),
    ("init done, app initializing", "Pending", [done("i")], [INIT_WAIT], True, False, {}, "PodInitializing"),
    ("init done, app running", "Running", [done("i")], [run("a")], True, True, {}, "Running"),
    ("crash loop", "Running", [], [crashloop("a")], True, False, {}, "CrashLoopBackOff"),
    ("completed", "Succeeded", [], [done("a")], True, False, {}, "Completed"),
    ("error", "Failed", [], [done("a", 1)], True, False, {}, "Error"),
    ("oom", "Failed", [], [done("a", 137, reason="OOMKilled")], True, False, {}, "OOMKilled"),
    ("exit code without reason", "Failed", [], [done("a", 2, reason="")], True, False, {}, "ExitCode:2"),
    ("signal without reason", "Failed", [], [done("a", 143, reason="", signal=15)], True, False, {}, "Signal:15"),
    ("first container wins", "Running", [], [crashloop("a"), done("b", 1)], True, False, {}, "CrashLoopBackOff"),
    ("completed while another serves, ready", "Running", [], [run("a"), done("b")], True, True, {}, "Running"),
    ("completed while another serves, not ready", "Running", [], [run("a"), done("b")], True, False, {}, "NotReady"),
    ("crash loop while another serves", "Running", [], [run("a"), crashloop("b")], True, True, {}, "CrashLoopBackOff"),
    ("completed, other running but unready", "Running", [], [run("a", ready=False), done("b")], True, False, {}, "Completed"),
    ("not ready running shows phase", "Running", [], [run("a", ready=False)], True, False, {}, "Running"),
    ("deleting running pod", "Running", [], [run("a")], True, True, {"deleting": True}, "Terminating"),
    ("deleting pending pod", "Pending", [run("i")], [INIT_WAIT], False, False, {"deleting": True}, "Terminating"),
    ("deleting finished pod", "Succeeded", [], [done("a")], True, False, {"deleting": True}, "Completed"),
    ("pod reason replaces phase", "Failed", [], [run("a", ready=False)], True, False, {"reason": "DeadlineExceeded"}, "DeadlineExceeded"),
    ("container reason beats pod reason", "Failed", [], [done("a", 1)], True, False, {"reason": "Evicted"}, "Error"),
    (  # Initialized stays True while a sidecar restarts: the init text stands, apps are consulted
        "sidecar restarting after init",
        "Running",
        [crashloop("s", sidecar=True)],
        [done("a", 1)],
        True,
        False,
        {},
        "Error",
    ),
    ("sidecar crash loop before init done", "Pending", [crashloop("s", sidecar=True)], [INIT_WAIT], False, False, {}, "Init:CrashLoopBackOff"),
]
# fmt: on


@pytest.mark.parametrize(
    ("phase", "init", "app", "initialized", "ready", "kwargs", "expected"),
    [case[1:] for case in STATUS_CASES],
    ids=[case[0] for case in STATUS_CASES],
)
def test_status_string_table(
    phase: str,
    init: list[ContainerStatus],
    app: list[ContainerStatus],
    initialized: bool,
    ready: bool,
    kwargs: dict[str, object],
    expected: str,
) -> None:
    got = status_string(phase, init, app, initialized=initialized, ready=ready, **kwargs)  # type: ignore[arg-type]
    assert got == expected


def restarted(cs: ContainerStatus, count: int, finished: float) -> ContainerStatus:
    """`cs` after `count` restarts, the newest previous instance ended at `finished`."""
    return replace(cs, restart_count=count, last_state=Terminated(1, "Error", finished - 1, finished))


def test_a_plain_init_containers_restarts_stop_counting_once_the_pod_initialized() -> None:
    # kubectl printPod: once the app containers are shown, RESTARTS counts sidecars and app
    # containers only (an init container that failed twice, then exited 0, shows 0).
    init = [restarted(done("i"), 2, T0 + 1)]
    counts = pod_counts(init, [run("a")], initialized=True)
    assert (counts.ready, counts.total, counts.restarts, counts.last_restart) == (1, 1, 0, 0.0)
    app = [restarted(run("a"), 1, T0 + 9)]
    assert pod_counts(init, app, initialized=True).restarts == 1
    assert pod_counts(init, app, initialized=True).last_restart == T0 + 9  # not the init container's


def test_while_initializing_the_init_containers_walked_count_and_the_apps_do_not() -> None:
    init = [restarted(done("i"), 2, T0 + 1), restarted(crashloop("j"), 3, T0 + 7), restarted(wait("k"), 5, T0 + 20)]
    app = [restarted(wait("a", "PodInitializing"), 4, T0 + 30)]
    counts = pod_counts(init, app, initialized=False)
    assert (counts.restarts, counts.last_restart) == (5, T0 + 7)  # i and j: the walk stops at j


def test_sidecars_count_in_ready_and_restarts_as_kubectl_counts_them() -> None:
    side = restarted(run("s", sidecar=True), 2, T0 + 3)
    plain = restarted(done("i"), 1, T0 + 50)
    counts = pod_counts([side, plain], [run("a")], initialized=True)
    assert (counts.ready, counts.total, counts.restarts, counts.last_restart) == (2, 2, 2, T0 + 3)
    # An unready sidecar is not counted ready; an app container waiting is not either.
    unready = replace(side, ready=False)
    assert pod_counts([unready], [crashloop("a")], initialized=True).ready == 0
    # The walk stops at a sidecar that has not started: a later one, even ready, is not reached.
    late = run("t", sidecar=True)
    counts = pod_counts([crashloop("s", sidecar=True), late], [run("a")], initialized=True)
    assert (counts.ready, counts.total, counts.restarts) == (1, 3, 1)
    # While initializing, a started sidecar before the running init container is ready already.
    counts = pod_counts([run("s", sidecar=True), run("i", ready=False)], [INIT_WAIT], initialized=False)
    assert (counts.ready, counts.total) == (1, 2)


# --- API JSON -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ts", "text"),
    [(0, "1970-01-01T00:00:00Z"), (T0, "2026-11-22T16:24:42Z"), (T0 + 0.999, "2026-11-22T16:24:42Z")],
)
def test_rfc3339_utc_seconds(ts: float, text: str) -> None:
    assert rfc3339(ts) == text


def test_volume_mounts_in_the_status_as_the_kubelet_copies_them_from_the_spec() -> None:
    # RecursiveReadOnlyMounts (GA in 1.33): name, mountPath, readOnly and, for a read-only mount,
    # recursiveReadOnly as the mount came out (this runtime binds every read-only mount recursively)
    from sandbox.spec.model import VolumeMount

    mounts = volume_mount_statuses((VolumeMount("data", "/data"), VolumeMount("conf", "/etc/conf", True, "Disabled"),
                                    VolumeMount("logs", "/logs", False, sub_path="a")))
    cs = ContainerStatus("web", "nginx", Running(T0), volume_mounts=mounts)
    out = container_status_json(cs)
    assert out["volumeMounts"] == [
        {"name": "data", "mountPath": "/data"},
        {"name": "conf", "mountPath": "/etc/conf", "readOnly": True, "recursiveReadOnly": "Enabled"},
        {"name": "logs", "mountPath": "/logs"},
    ]
    assert list(out)[-1] == "volumeMounts"  # after started, before user
    assert "volumeMounts" not in container_status_json(ContainerStatus("web", "nginx", Running(T0)))


def test_running_container_json() -> None:
    cs = ContainerStatus(
        "web",
        "nginx:1.27",
        Running(T0),
        restart_count=2,
        ready=True,
        started=True,
        container_id="sandbox://abc",
        image_id="sha256:01",
        last_state=Terminated(137, "Error", T0 - 60, T0 - 1, container_id="sandbox://old"),
    )
    assert container_status_json(cs) == {
        "name": "web",
        "state": {"running": {"startedAt": "2026-11-22T16:24:42Z"}},
        "lastState": {
            "terminated": {
                "exitCode": 137,
                "reason": "Error",
                "startedAt": "2026-11-22T16:23:42Z",
                "finishedAt": "2026-11-22T16:24:41Z",
                "containerID": "sandbox://old",
            }
        },
        "ready": True,
        "restartCount": 2,
        "image": "nginx:1.27",
        "imageID": "sha256:01",
        "containerID": "sandbox://abc",
        "started": True,
    }
    assert list(container_status_json(cs)) == [
        "name",
        "state",
        "lastState",
        "ready",
        "restartCount",
        "image",
        "imageID",
        "containerID",
        "started",
    ]


def test_the_runtimes_user_follows_started_as_the_api_orders_it() -> None:
    # ContainerStatus.User (1.33+): {linux: {uid, gid, supplementalGroups}}, after started
    from sandbox.status import LinuxUser

    cs = ContainerStatus("web", "nginx", Running(T0), container_id="sandbox://abc",
                         user=LinuxUser(1000, 3000, (3000, 4000)))
    out = container_status_json(cs)
    assert list(out)[-2:] == ["started", "user"]
    assert out["user"] == {"linux": {"uid": 1000, "gid": 3000, "supplementalGroups": [3000, 4000]}}
    root = container_status_json(ContainerStatus("web", "nginx", Running(T0), user=LinuxUser(0, 0)))
    assert root["user"] == {"linux": {"uid": 0, "gid": 0}}  # omitempty: no groups, no key


def test_waiting_container_json_omits_empty_fields() -> None:
    cs = ContainerStatus("web", "nginx", Waiting("ContainerCreating"))
    assert container_status_json(cs) == {
        "name": "web",
        "state": {"waiting": {"reason": "ContainerCreating"}},
        "lastState": {},
        "ready": False,
        "restartCount": 0,
        "image": "nginx",
        "imageID": "",
        "started": False,
    }
    message = "back-off 10s restarting failed container=web pod=p_default(u)"
    with_message = ContainerStatus("web", "nginx", Waiting("CrashLoopBackOff", message))
    assert container_status_json(with_message)["state"] == {
        "waiting": {"reason": "CrashLoopBackOff", "message": message}
    }


def test_terminated_container_json_with_signal_and_message() -> None:
    state = Terminated(1, "Error", T0, T0 + 2, message="boom", signal=9, container_id="sandbox://x")
    assert container_status_json(ContainerStatus("c", "img", state))["state"] == {
        "terminated": {
            "exitCode": 1,
            "signal": 9,
            "reason": "Error",
            "message": "boom",
            "startedAt": "2026-11-22T16:24:42Z",
            "finishedAt": "2026-11-22T16:24:44Z",
            "containerID": "sandbox://x",
        }
    }


def test_unset_times_and_state_are_null_and_empty() -> None:
    cs = ContainerStatus("c", "img", Terminated(0, "Completed", 0.0, 0.0))
    assert container_status_json(cs)["state"] == {
        "terminated": {"exitCode": 0, "reason": "Completed", "startedAt": None, "finishedAt": None}
    }
    assert container_status_json(ContainerStatus("c", "img", None))["state"] == {}


def test_condition_json() -> None:
    ok = PodCondition("Ready", "True", last_transition_time=T0)
    assert condition_json(ok) == {
        "type": "Ready",
        "status": "True",
        "lastProbeTime": None,
        "lastTransitionTime": "2026-11-22T16:24:42Z",
    }
    bad = PodCondition("Ready", "False", "ContainersNotReady", "containers with unready status: [a]", T0)
    assert condition_json(bad) == {
        "type": "Ready",
        "status": "False",
        "lastProbeTime": None,
        "lastTransitionTime": "2026-11-22T16:24:42Z",
        "reason": "ContainersNotReady",
        "message": "containers with unready status: [a]",
    }


# --- init containers' ready, default waiting reason, QoS (issue 7) ----------------------------------


def test_default_waiting_reason_is_pod_initializing_in_a_pod_with_init_containers() -> None:
    # defaultWaitingState: every container of such a pod, init ones included.
    assert default_waiting_reason(True) == "PodInitializing"
    assert default_waiting_reason(False) == "ContainerCreating"


@pytest.mark.parametrize("cs, probe_ready, want", [
    (run("i", ready=False), True, False),             # a plain init container running: not ready
    (done("i", 0), True, True),                       # exited 0: ready
    (done("i", 1), True, False),                      # failed: not ready
    (wait("i", "PodInitializing"), True, False),
    (run("s", sidecar=True), True, True),             # a started sidecar without readiness probe
    (run("s", sidecar=True), False, False),           # its readiness probe has not succeeded
    (run("s", started=False, sidecar=True), True, False),  # startup probe still running
    (done("s", 0, sidecar=True), True, False),        # a sidecar that exited is not ready
])
def test_init_container_ready(cs: ContainerStatus, probe_ready: bool, want: bool) -> None:
    assert init_container_ready(cs, probe_ready=probe_ready) is want


def _containers(*resources: dict[str, Any], init: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": f"c{i}", "resources": r} for i, r in enumerate(resources)]}
    if init is not None:
        spec["initContainers"] = [{"name": "i", "resources": init}]
    return spec


GUARANTEED = {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}}


@pytest.mark.parametrize("spec, want", [
    ({"containers": [{"name": "c"}]}, "BestEffort"),
    (_containers(GUARANTEED), "Guaranteed"),
    (_containers(GUARANTEED, init=GUARANTEED), "Guaranteed"),
    (_containers(GUARANTEED, init={}), "Burstable"),  # init containers count as well
    (_containers({"limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}}), "Burstable"),
    (_containers({"requests": {"memory": "0"}}, {"limits": {"ephemeral-storage": "1Gi"}}), "BestEffort"),
    (_containers({"requests": {"cpu": "100m"}}), "Burstable"),
    # pod-level resources decide alone (KEP-2837); their requests default to their limits
    ({"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}, "containers": [{"name": "c"}]}, "Guaranteed"),
    ({**_containers(GUARANTEED, {}), "resources": {"requests": {"memory": "1Gi"}}}, "Burstable"),
])
def test_qos_class(spec: dict[str, Any], want: str) -> None:
    assert qos_class(spec) == want


# --- the statuses a pod ends with (status manager TerminatePod) ---------------------------------

UNKNOWN_END = Terminated(137, "ContainerStatusUnknown", 0.0, 0.0,
                         "The container could not be located when the pod was terminated")


def states(statuses: list[ContainerStatus]) -> list[object]:
    return [cs.state for cs in statuses]


# fmt: off
TERMINATE_CASES = [
    # no init containers: the pod is initialized, every app container not terminated is ended
    ("app never started", [], [done("a", 0), wait("b")], [], [done("a", 0).state, UNKNOWN_END]),
    ("app waiting on an image", [], [wait("a", "ImagePullBackOff")], [], [UNKNOWN_END]),
    ("a restarting app keeps its last exit", [], [crashloop("a")], [], [UNKNOWN_END]),
    ("unknown app", [], [unknown("a")], [], [UNKNOWN_END]),
    # not initialized: the apps stay waiting; the init containers up to the last one that ran
    ("init running when stopped", [done("i", 137), wait("j")], [INIT_WAIT],
     [done("i", 137).state, Waiting("ContainerCreating")], [INIT_WAIT.state]),
    ("first init never started", [wait("i", "ImagePullBackOff"), wait("j")], [INIT_WAIT],
     [UNKNOWN_END, Waiting("ContainerCreating")], [INIT_WAIT.state]),
    ("init retrying is ended", [crashloop("i"), wait("j")], [INIT_WAIT],
     [UNKNOWN_END, Waiting("ContainerCreating")], [INIT_WAIT.state]),
    ("gap before a started init", [wait("i"), done("j", 1)], [INIT_WAIT],
     [UNKNOWN_END, done("j", 1).state], [INIT_WAIT.state]),
    # initialized: the last init container exited 0 (or did before), or an app container ran
    ("last init done", [done("i", 0)], [wait("a")], [done("i", 0).state], [UNKNOWN_END]),
    ("last init done before", [wait("i", "PodInitializing", last=0)], [wait("a")],
     [UNKNOWN_END], [UNKNOWN_END]),
    ("an app ran", [done("i", 1)], [done("a", 0), wait("b")], [done("i", 1).state],
     [done("a", 0).state, UNKNOWN_END]),
    ("sidecar last, started", [done("i", 0), done("s", 0, sidecar=True)], [wait("a")],
     [done("i", 0).state, done("s", 0).state], [Waiting("ContainerCreating")]),
    ("sidecar last, running", [run("s", sidecar=True)], [wait("a")], [UNKNOWN_END], [UNKNOWN_END]),
]
# fmt: on


@pytest.mark.parametrize("init, app, want_init, want_app",
                         [c[1:] for c in TERMINATE_CASES], ids=[c[0] for c in TERMINATE_CASES])
def test_terminate_statuses(init: list[ContainerStatus], app: list[ContainerStatus],
                            want_init: list[object], want_app: list[object]) -> None:
    from sandbox.status import terminate_statuses

    got_init, got_app = terminate_statuses(init, app)
    assert states(got_init) == want_init
    assert states(got_app) == want_app
    # only the state changes: names, restart counts and last states stay
    for before, after in zip([*init, *app], [*got_init, *got_app]):
        assert (after.name, after.restart_count, after.last_state) == (before.name, before.restart_count,
                                                                        before.last_state)


def test_a_never_started_container_ends_with_null_times() -> None:
    from sandbox.status import terminate_statuses

    _, (ended,) = terminate_statuses([], [wait("a")])
    assert container_status_json(ended)["state"] == {"terminated": {
        "exitCode": 137, "reason": "ContainerStatusUnknown",
        "message": "The container could not be located when the pod was terminated",
        "startedAt": None, "finishedAt": None}}
