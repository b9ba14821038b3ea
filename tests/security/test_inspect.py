"""`sandbox inspect pod`: checked against /proc read directly by the test."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from integration_conftest import Sandbox

from sandbox.process.capabilities import NUMBERS

pytestmark = pytest.mark.root

POD = """
apiVersion: v1
kind: Pod
metadata: {name: look}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: busybox
    command: [sleep, "1000"]
  - name: side
    image: busybox
    command: [sleep, "1000"]
    securityContext:
      capabilities: {drop: [ALL], add: [NET_ADMIN]}
"""


@pytest.fixture
def pod(sbx: Sandbox) -> Iterator[Sandbox]:
    proc = sbx.start(sbx.manifest(POD))
    sbx.wait_running("look", containers=2)
    yield sbx
    sbx.stop(proc)


def _status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return {k: v.strip() for k, _, v in (line.partition(":") for line in f)}


def _inspect(pod: Sandbox, *extra: str) -> dict[str, Any]:
    result = pod.run("inspect", "pod", "look", "-o", "json", *extra)
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def test_processes_pids_and_namespaces_match_proc(pod: Sandbox) -> None:
    report = _inspect(pod)
    assert report["running"] is True and report["pod"] == "look"
    by_name = {p["name"]: p for p in report["processes"]}
    assert set(by_name) == {"pause", "app", "side"}
    assert by_name["pause"]["pid"] == pod.pause_pid("look")
    for name in ("app", "side"):
        assert by_name[name]["pid"] == pod.pid_of("look", name)
    for entry in report["processes"]:
        pid = entry["pid"]
        status = _status(pid)
        assert entry["nspid"] == [int(p) for p in status["NSpid"].split()]
        assert entry["nspid"][-1] == 1  # PID 1 of its own PID namespace
        for ns, inode in entry["namespaces"].items():
            link = os.readlink(f"/proc/{pid}/ns/{ns}")
            assert link == f"{ns.removesuffix('_for_children')}:[{inode}]", (entry["name"], ns)
        with open(f"/proc/{pid}/uid_map") as f:
            assert entry["uidMap"] == [" ".join(line.split()) for line in f]
        assert entry["noNewPrivs"] == (status["NoNewPrivs"] == "1")
        assert entry["seccomp"]["filters"] == int(status.get("Seccomp_filters", "0"))


def test_pause_shares_net_ipc_uts_with_each_container(pod: Sandbox) -> None:
    report = _inspect(pod)
    pause = report["processes"][0]
    assert pause["kind"] == "pause"
    for entry in report["processes"][1:]:
        for ns in ("net", "ipc", "uts"):
            assert entry["namespaces"][ns] == pause["namespaces"][ns]
            assert entry["shared"][ns] == "pause"
        for ns in ("mnt", "pid"):  # its own root and its own PID namespace
            assert entry["namespaces"][ns] != pause["namespaces"][ns]
            assert entry["shared"][ns] == "own"
    for ns in ("net", "ipc", "uts", "mnt", "pid"):
        assert pause["shared"][ns] == "own"  # nothing of the pod is the host's


def test_capabilities_by_name_match_the_hex_sets(pod: Sandbox) -> None:
    report = _inspect(pod)
    sets = {"CapInh": "inheritable", "CapPrm": "permitted", "CapEff": "effective", "CapBnd": "bounding",
            "CapAmb": "ambient"}
    for entry in report["processes"]:
        status = _status(entry["pid"])
        for key, label in sets.items():
            mask = sum(1 << NUMBERS[name] for name in entry["capabilities"][label])
            assert mask == int(status[key], 16), (entry["name"], key)
    side = next(p for p in report["processes"] if p["name"] == "side")
    assert side["capabilities"]["effective"] == ["NET_ADMIN"]
    app = next(p for p in report["processes"] if p["name"] == "app")
    assert "CHOWN" in app["capabilities"]["effective"] and "SYS_ADMIN" not in app["capabilities"]["bounding"]


def test_mounts_and_default_paths_match_mountinfo(pod: Sandbox) -> None:
    report = _inspect(pod, "-c", "app")
    assert [p["name"] for p in report["processes"]] == ["pause", "app"]  # -c: pause and that one
    app = report["processes"][1]
    with open(f"/proc/{app['pid']}/mountinfo") as f:
        lines = [line.split() for line in f]
    assert [m["target"] for m in app["mounts"]] == [fields[4] for fields in lines]
    assert [m["options"] for m in app["mounts"]] == [fields[5] for fields in lines]
    targets = {m["target"]: m for m in app["mounts"]}
    assert "ro" in targets["/sys"]["options"].split(",")
    for entry in app["readonlyPaths"]:
        if entry["state"] != "absent":
            assert entry["state"] == "read-only", entry
    for entry in app["maskedPaths"]:
        if entry["path"] in targets:
            assert entry["state"] == "masked", entry
        else:
            assert entry["state"] == "absent", entry  # not on this kernel, nothing to hide
    assert app["seccomp"]["asked"] == "RuntimeDefault"


def test_human_output_and_unknown_container(pod: Sandbox) -> None:
    result = pod.run("inspect", "pod", "look")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith("Pod default/look: running")
    assert f"container app: pid {pod.pid_of('look', 'app')} (pid 1 inside)" in text
    assert "masked paths:" in text and "mounts:" in text
    bad = pod.run("inspect", "pod", "look", "-c", "nope")
    assert bad.returncode != 0 and 'container "nope" is not valid' in bad.stderr


def test_an_ended_pod_has_no_processes(sbx: Sandbox) -> None:
    done = POD.replace('command: [sleep, "1000"]', "command: [\"true\"]").replace(
        "terminationGracePeriodSeconds: 2", "terminationGracePeriodSeconds: 2\n  restartPolicy: Never")
    proc = sbx.start(sbx.manifest(done))
    code, _, err = sbx.finish(proc)
    assert code == 0, err
    result = sbx.run("inspect", "pod", "look")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Pod default/look: ended, no processes")
    assert json.loads(sbx.run("inspect", "pod", "look", "-o", "json").stdout)["running"] is False


GUARDED = """
apiVersion: v1
kind: Pod
metadata: {name: guard}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: strict
    image: busybox
    command: [sleep, "1000"]
  - name: loose
    image: busybox
    command: [sleep, "1000"]
    securityContext:
      allowPrivilegeEscalation: true
      seccompProfile: {type: Unconfined}
"""


def _record(sbx: Sandbox, name: str) -> Path:
    return sbx.root / "run" / "pods" / f"default_{name}" / "state.json"


def test_the_asked_boundary_beside_the_kernels(sbx: Sandbox) -> None:
    """Both containers: what the manifest asks, what /proc shows, and no gap between them."""
    proc = sbx.start(sbx.manifest(GUARDED))
    try:
        sbx.wait_running("guard", containers=2)
        result = sbx.run("inspect", "pod", "guard", "-o", "json")
        assert result.returncode == 0, result.stderr
        by_name = {p["name"]: p for p in json.loads(result.stdout)["processes"]}
        for name, profile, nnp in (("strict", "RuntimeDefault", True), ("loose", "Unconfined", False)):
            entry, status = by_name[name], _status(sbx.pid_of("guard", name))
            assert (entry["asked"]["seccomp"], entry["asked"]["noNewPrivs"]) == (profile, nnp)
            assert entry["seccomp"]["mode"] == ("filter" if nnp else "disabled")
            assert entry["seccomp"]["filters"] == int(status["Seccomp_filters"])
            assert entry["noNewPrivs"] == (status["NoNewPrivs"] == "1") == nnp
            assert entry["asked"]["capabilities"] == entry["capabilities"]["bounding"]
            assert entry["notInForce"] == [], entry["notInForce"]
        text = sbx.run("inspect", "pod", "guard", "-c", "strict").stdout
        assert "asked:        seccomp RuntimeDefault, no_new_privs 1" in text
        assert "in force:     all of it" in text and "NOT IN FORCE" not in text
    finally:
        sbx.stop(proc)


def test_a_protection_asked_but_not_in_force_is_shown(sbx: Sandbox) -> None:
    """The record made to ask `loose` for more than its process got (RuntimeDefault, no_new_privs,
    no capabilities): inspect reads the kernel's state, not the asked one, and names each gap."""
    proc = sbx.start(sbx.manifest(GUARDED))
    try:
        sbx.wait_running("guard", containers=2)
        record = _record(sbx, "guard")
        original = record.read_text()
        state = json.loads(original)
        loose = next(c for c in state["manifest"]["spec"]["containers"] if c["name"] == "loose")
        loose["securityContext"] = {"capabilities": {"drop": ["ALL"]}}
        edited = record.with_name("state.json.edit")
        edited.write_text(json.dumps(state))
        os.rename(edited, record)
        try:
            result = sbx.run("inspect", "pod", "guard", "-o", "json")
            text = sbx.run("inspect", "pod", "guard", "-c", "loose").stdout
        finally:
            edited.write_text(original)
            os.rename(edited, record)
        assert result.returncode == 0, result.stderr
        entry = next(p for p in json.loads(result.stdout)["processes"] if p["name"] == "loose")
        assert entry["asked"]["seccomp"] == "RuntimeDefault" and entry["asked"]["capabilities"] == []
        assert entry["seccomp"]["mode"] == "disabled"  # the kernel's, not the asked profile
        gaps = entry["notInForce"]
        assert gaps[0] == "seccomp RuntimeDefault asked, the kernel shows disabled (0 filters)"
        assert gaps[1] == "no_new_privs asked, the kernel shows 0"
        assert any(g.startswith("bounding capabilities beyond the asked set: ") and "CHOWN" in g for g in gaps)
        assert "NOT IN FORCE: seccomp RuntimeDefault asked" in text
        assert "NOT IN FORCE: no_new_privs asked" in text
    finally:
        sbx.stop(proc)
