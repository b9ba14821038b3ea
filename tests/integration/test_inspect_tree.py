"""`sandbox inspect pod NAME --tree` against /proc read by the test itself: parents found by
scanning every /proc/PID/stat (not through the children files the runtime reads), NSpid, the
namespace links and the container's root mount."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Sandbox

pytestmark = pytest.mark.root

# app: a child that stays its shell's (the shell execs sleep, which keeps the child);
# side: `( ... &)` forks from a subshell that exits at once, leaving an orphan for PID 1 to adopt.
POD = """
apiVersion: v1
kind: Pod
metadata: {name: tree}
spec:
  terminationGracePeriodSeconds: 1
  shareProcessNamespace: SHARE
  containers:
  - name: app
    image: busybox
    command: [sh, -c, "sleep 1001 & exec sleep 1000"]
  - name: side
    image: busybox
    command: [sh, -c, "(sleep 1003 &); exec sleep 1002"]
"""
NS_TYPES = ("pid", "net", "ipc", "uts", "mnt", "cgroup", "user")


def _start(sbx: Sandbox, share: bool) -> Iterator[Sandbox]:
    proc = sbx.start(sbx.manifest(POD.replace("SHARE", "true" if share else "false")))
    sbx.wait_running("tree", containers=2)
    adopter = sbx.pause_pid("tree") if share else sbx.pid_of("tree", "side")
    sbx.wait_for(lambda: _children(adopter), message="the orphan adopted")
    sbx.wait_for(lambda: _children(sbx.pid_of("tree", "app")), message="app's background child")
    yield sbx
    sbx.stop(proc)


@pytest.fixture
def shared(sbx: Sandbox) -> Iterator[Sandbox]:
    yield from _start(sbx, share=True)


@pytest.fixture
def separate(sbx: Sandbox) -> Iterator[Sandbox]:
    yield from _start(sbx, share=False)


def _children(pid: int) -> list[int]:
    """Every process whose parent is `pid`, from each /proc/PID/stat (field 4)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        if int(data[data.rfind(b")") + 2 :].split()[1]) == pid:
            found.append(int(entry))
    return sorted(found)


def _nspid(pid: int) -> list[int]:
    with open(f"/proc/{pid}/status") as f:
        line = next(line for line in f if line.startswith("NSpid:"))
    return [int(p) for p in line.split()[1:]]


def _ns(pid: int) -> dict[str, int]:
    return {t: int(os.readlink(f"/proc/{pid}/ns/{t}").split("[")[1][:-1]) for t in NS_TYPES}


def _tree(sbx: Sandbox, *extra: str) -> dict[str, Any]:
    result = sbx.run("inspect", "pod", "tree", "--tree", "-o", "json", *extra)
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def _check_node(node: dict[str, Any]) -> None:
    """The node and everything under it as /proc shows them now."""
    pid = node["pid"]
    assert node["nspid"] == _nspid(pid) and node["pidInside"] == _nspid(pid)[-1]
    assert node["namespaces"] == _ns(pid)
    assert sorted(c["pid"] for c in node["children"]) == _children(pid), pid
    for child in node["children"]:
        assert child["ppid"] == pid
        _check_node(child)


def _trees(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in report["trees"]}


def test_shared_pid_namespace_pause_is_pid_1_and_adopts_the_orphan(shared: Sandbox) -> None:
    report = _tree(shared)
    assert report["running"] is True and report["shareProcessNamespace"] is True
    trees = _trees(report)
    pause, app, side = trees["pause"]["process"], trees["app"]["process"], trees["side"]["process"]
    assert pause["pid"] == shared.pause_pid("tree") and pause["pidInside"] == 1
    assert app["pid"] == shared.pid_of("tree", "app") and side["pid"] == shared.pid_of("tree", "side")
    for node in (pause, app, side):
        _check_node(node)
    pause_pid_ns = _ns(pause["pid"])["pid"]
    for node in (app, side, *pause["children"], *app["children"]):
        assert node["namespaces"]["pid"] == pause_pid_ns and node["owners"]["pid"] == "pause"
        assert node["pidInside"] != 1  # pause is PID 1; the containers' processes are numbered after it
    [orphan] = pause["children"]
    assert orphan["command"] == "sleep 1003"
    assert orphan["namespaces"]["mnt"] == _ns(side["pid"])["mnt"]  # it came from side
    assert orphan["owners"] == {"pid": "pause", "net": "pause", "ipc": "pause", "uts": "pause",
                                "mnt": "side", "cgroup": "side", "user": "host"}
    assert [c["command"] for c in app["children"]] == ["sleep 1001"]
    # The host's: PID 1's, which root may not read here (this VM is itself in a container); ours
    # are the host's either way, as inspect's fallback takes.
    assert report["namespaces"]["host"] == _ns(os.getpid())
    assert pause["owners"]["cgroup"] == "host" and pause["owners"]["user"] == "host"  # pause has neither of its own
    for name in ("net", "ipc", "uts"):
        assert app["owners"][name] == "pause" and side["owners"][name] == "pause"
    assert app["owners"]["mnt"] == "app" and app["owners"]["cgroup"] == "app"


def test_own_pid_namespace_each_main_process_is_pid_1_and_adopts(separate: Sandbox) -> None:
    report = _tree(separate)
    assert report["shareProcessNamespace"] is False
    trees = _trees(report)
    pause, app, side = trees["pause"]["process"], trees["app"]["process"], trees["side"]["process"]
    for node in (pause, app, side):
        _check_node(node)
        assert node["pidInside"] == 1  # each is PID 1 of its own PID namespace
    assert pause["children"] == []  # pause sees no container's process, adopts none
    assert [c["command"] for c in side["children"]] == ["sleep 1003"]  # the orphan went to side's PID 1
    for name, node in (("app", app), ("side", side)):
        assert node["owners"]["pid"] == name and node["namespaces"]["pid"] != pause["namespaces"]["pid"]
        for child in node["children"]:
            assert child["owners"]["pid"] == name and child["pidInside"] > 1


def test_each_root_is_the_overlay_of_its_image_and_layer(separate: Sandbox) -> None:
    state = separate.state("tree")
    assert state is not None
    report = _tree(separate, "-c", "app")
    assert [t["name"] for t in report["trees"]] == ["pause", "app"]  # -c: pause and that one
    root = report["trees"][1]["root"]
    app = state["containers"]["app"]
    assert root["image"] == app["image"] == "docker.io/library/busybox:latest"
    with open(f"/proc/{app['process']['pid']}/mountinfo") as f:
        slash = [line.split(" - ")[1].split() for line in f if line.split()[4] == "/"][-1]
    assert slash[0] == root["fstype"] == "overlay"
    options = dict(o.partition("=")[::2] for o in slash[2].split(","))
    assert root["lower"] == options["lowerdir"].split(":")
    assert root["upper"] == options["upperdir"]
    # a writable layer that dies with its container is never synced (6.x shows it as fsync=volatile)
    assert "volatile" in options or options.get("fsync") == "volatile"
    assert root["upper"].startswith(f"{separate.root}/lib/containers/") and root["upper"].endswith("/upper")
    images = separate.root / "lib" / "images"
    assert root["layers"] == [f"sha256:{os.path.basename(os.path.realpath(p))}" for p in root["lower"]]
    assert all((images / "layers" / "sha256" / layer.removeprefix("sha256:")).is_dir() for layer in root["layers"])
    assert report["trees"][0]["root"]["fstype"] == "tmpfs"  # pause's empty read-only root


def test_text_puts_each_host_pid_beside_its_pid_inside(shared: Sandbox) -> None:
    result = shared.run("inspect", "pod", "tree", "--tree")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Pod default/tree: running"
    pause_pid = shared.pause_pid("tree")
    [orphan] = _children(pause_pid)
    for pid in (pause_pid, orphan, shared.pid_of("tree", "app"), shared.pid_of("tree", "side")):
        line = next(line for line in lines if f" {pid}  " in line.split("|")[0])
        assert line.split("|")[1].split()[:2] == [str(_nspid(pid)[-1]), "(pause)"]
    orphan_line = next(line for line in lines if f" {orphan}  sleep 1003" in line)
    assert "orphan adopted by pause, from side" in orphan_line
    assert f"  pause  {_ns(pause_pid)['pid']}" in result.stdout


ZOMBIE = """
apiVersion: v1
kind: Pod
metadata: {name: tree}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox
    command: [sh, -c, "(sleep 1 &); exec sleep 1000"]
"""


def test_an_orphan_its_own_pid_1_never_reaps_shows_as_a_zombie(sbx: Sandbox) -> None:
    """`sleep` as PID 1 of the container's own PID namespace adopts the orphan and never waits (the
    orphan outlives the shell's exec: an orphan that ended first would be the shell's to reap)."""
    proc = sbx.start(sbx.manifest(ZOMBIE))
    sbx.wait_running("tree")
    main = sbx.pid_of("tree", "app")
    # the orphaned `sleep 1`, once it exited: not the subshell, a zombie only until sh reaps it
    [zombie] = sbx.wait_for(lambda: [p for p in _children(main) if _state(p) == "Z" and _comm(p) == "sleep"],
                            message="the zombie")
    report = _tree(sbx)
    [child] = _trees(report)["app"]["process"]["children"]
    assert child["pid"] == zombie and child["state"] == "Z" and child["command"] == "[sleep]"
    text = sbx.run("inspect", "pod", "tree", "--tree").stdout
    assert f"└─ {zombie}  [sleep]" in text and "zombie: exited, not reaped yet" in text
    sbx.stop(proc)


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return ""
    return data[data.rfind(b")") + 2 :].split()[0].decode()


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""
