"""The node agent's pure parts: framing, the `run -d` answer rule, the apply comparison, and the
shared selector's per-pod tagging."""

from __future__ import annotations

import os
import selectors
import struct

import pytest

from sandbox.agent import protocol
from sandbox.agent.server import OwnedSelector, pod_summary, same_manifest, settled


def test_frames_arrive_in_pieces_and_together() -> None:
    data = protocol.encode({"op": "Version"}) + protocol.encode({"op": "ListPods", "n": 2})
    decoder = protocol.Decoder()
    seen = []
    for i in range(len(data)):  # one byte at a time
        seen += decoder.feed(data[i : i + 1])
    assert seen == [{"op": "Version"}, {"op": "ListPods", "n": 2}]
    assert protocol.Decoder().feed(data) == seen


def test_oversized_and_non_object_messages_are_refused() -> None:
    with pytest.raises(ValueError, match="limit"):
        protocol.Decoder().feed(struct.pack(">I", protocol.MAX_MESSAGE + 1))
    body = b"[1, 2]"
    with pytest.raises(ValueError, match="object"):
        protocol.Decoder().feed(struct.pack(">I", len(body)) + body)


def status(*states: dict[str, object], init: tuple[dict[str, object], ...] = (), finished: bool = False) -> dict:
    return {"finished": finished, "status": {
        "containerStatuses": [{"name": f"c{i}", "state": s} for i, s in enumerate(states)],
        "initContainerStatuses": [{"name": f"i{i}", "state": s} for i, s in enumerate(init)]}}


RUNNING = {"running": {"startedAt": "now"}}
CREATING = {"waiting": {"reason": "ContainerCreating"}}
BACKOFF = {"waiting": {"reason": "ImagePullBackOff", "message": "pull failed"}}
DONE = {"terminated": {"reason": "Error", "exitCode": 3}}


@pytest.mark.parametrize(("snapshot", "answered"), [
    (status(RUNNING), True),
    (status(RUNNING, CREATING), False),
    (status(RUNNING, BACKOFF), True),
    (status(DONE), True),
    (status({"waiting": {"reason": "PodInitializing"}}, init=(RUNNING,)), False),
    (status({"waiting": {"reason": "PodInitializing"}}, init=({"waiting": {"reason": "CrashLoopBackOff"}},)), True),
    (status(CREATING, finished=True), True),
    (status(), False),
    # a volume's missing ConfigMap or Secret: nothing starts until it is applied, run -d answers
    ({**status(CREATING), "events": [{"reason": "FailedMount", "message": 'secret "s" not found'}]}, True),
    ({**status(CREATING), "events": [{"reason": "Pulled", "message": "present"}]}, False),
])
def test_run_detached_answers_once_every_container_runs_or_failed(snapshot: dict, answered: bool) -> None:
    assert settled(snapshot) is answered


def test_pod_summary_names_each_container_state() -> None:
    summary = pod_summary({"namespace": "default", "name": "p", "uid": "u", **status(RUNNING, DONE)})
    assert summary["containers"] == [
        {"name": "c0", "state": "running", "reason": "", "message": "", "exitCode": None},
        {"name": "c1", "state": "terminated", "reason": "Error", "message": "", "exitCode": 3}]
    assert summary["mountFailures"] == []
    waiting = pod_summary({"name": "p", **status(CREATING), "events": [
        {"reason": "FailedMount", "message": 'MountVolume.SetUp failed for volume "s" : secret "s" not found'}]})
    assert waiting["mountFailures"] == ['MountVolume.SetUp failed for volume "s" : secret "s" not found']


def test_apply_compares_manifests_without_the_uid() -> None:
    given = {"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}
    running = {"kind": "Pod", "metadata": {"name": "p", "uid": "1234"}, "spec": {"containers": [{"name": "c"}]}}
    assert same_manifest(running, given)
    assert not same_manifest(running, {**given, "spec": {"containers": [{"name": "d"}]}})


def test_each_pod_sees_its_own_keys_of_the_shared_selector() -> None:
    shared = selectors.DefaultSelector()
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    try:
        a, b = OwnedSelector(shared), OwnedSelector(shared)
        a.owner, b.owner = "pod-a", "pod-b"
        a.register(r1, selectors.EVENT_READ, ("log", None))
        b.register(r2, selectors.EVENT_READ, ("exit", "slot"))
        os.write(w1, b"x")
        os.write(w2, b"y")
        events = {key.data for key, _ in shared.select(0)}
        assert events == {("pod-a", ("log", None)), ("pod-b", ("exit", "slot"))}
        a.close()  # a pod's end unregisters only its own fds
        assert [key.data for key, _ in shared.select(0)] == [("pod-b", ("exit", "slot"))]
    finally:
        shared.close()
        for fd in (r1, w1, r2, w2):
            os.close(fd)
