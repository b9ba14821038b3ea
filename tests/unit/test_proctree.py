"""process/proctree.py against a fake /proc, and `inspect --tree`'s text from a fixed report."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sandbox.cli.inspect import owner_label, render_tree
from sandbox.process import inspect, proctree
from sandbox.state.proc import ProcessRef

LAYER = "7620c978ee6aa24609a1a2823de30d9942807269dc10fd42c5ce09a18924b336"
PAUSE_NS = {"pid": 21, "net": 22, "ipc": 23, "uts": 24, "mnt": 25, "cgroup": 6, "user": 7}
SIDE_NS = {**PAUSE_NS, "mnt": 31, "cgroup": 32}


def _stat_line(pid: int, comm: str, state: str, ppid: int, start: int) -> str:
    # fields 3..22 of proc(5): state, ppid, then 16 fields we skip, then starttime (field 22)
    return f"{pid} ({comm}) {state} {ppid} " + " ".join(["0"] * 17) + f" {start} 0 0\n"


def _process(proc: Path, pid: int, *, ppid: int, start: int, nspid: str, ns: dict[str, int],
             argv: bytes, comm: str = "sleep", state: str = "S", children: dict[int, str] | None = None) -> None:
    base = proc / str(pid)
    (base / "ns").mkdir(parents=True)
    for kind, inode in ns.items():
        os.symlink(f"{kind}:[{inode}]", base / "ns" / kind)
    (base / "stat").write_text(_stat_line(pid, comm, state, ppid, start))
    (base / "status").write_text(f"Name:\t{comm}\nNSpid:\t{nspid}\nPPid:\t{ppid}\n")
    (base / "cmdline").write_bytes(argv)
    for tid, kids in (children or {pid: ""}).items():
        (base / "task" / str(tid)).mkdir(parents=True)
        (base / "task" / str(tid) / "children").write_text(kids)


def _pod_proc(tmp_path: Path) -> str:
    """pause (100) with an adopted orphan (120, from side's mount namespace) and a zombie (121);
    a pid in its children file (130) whose stat names another parent: reused, not pause's."""
    proc = tmp_path / "proc"
    _process(proc, 100, ppid=90, start=5000, nspid="100\t1", ns=PAUSE_NS, argv=b"/pause\0", comm="pause",
             children={100: "120 ", 101: "121 130 "})
    _process(proc, 120, ppid=100, start=5100, nspid="120\t6", ns=SIDE_NS, argv=b"sleep\0" + b"1002\0")
    _process(proc, 121, ppid=100, start=5101, nspid="121\t7", ns=SIDE_NS, argv=b"", comm="sh) (x", state="Z")
    _process(proc, 130, ppid=1, start=5200, nspid="130", ns=PAUSE_NS, argv=b"other\0")
    return str(proc)


def test_parse_stat_takes_comm_up_to_the_last_parenthesis() -> None:
    data = _stat_line(42, "a) (b c", "Z", 7, 123456).encode()
    assert proctree.parse_stat(data) == ("a) (b c", "Z", 7, 123456)


def test_parse_children() -> None:
    assert proctree.parse_children("12 13 ") == [12, 13]
    assert proctree.parse_children("") == []


def test_read_tree_keeps_only_live_children_of_the_node(tmp_path: Path) -> None:
    proc = _pod_proc(tmp_path)
    tree = proctree.read_tree(ProcessRef(100, 5000), proc)
    assert tree is not None
    assert tree.nspid == (100, 1) and tree.pid_inside == 1 and tree.command == "/pause"
    assert tree.namespaces == PAUSE_NS
    assert [c.ref.pid for c in tree.children] == [120, 121]  # 130's stat names parent 1: not pause's
    orphan, zombie = tree.children
    assert orphan.ref == ProcessRef(120, 5100) and orphan.command == "sleep 1002" and orphan.nspid == (120, 6)
    assert zombie.state == "Z" and zombie.command == "[sh) (x]"  # a zombie's argv is empty


def test_read_tree_refuses_a_pid_with_another_start_time(tmp_path: Path) -> None:
    proc = _pod_proc(tmp_path)
    assert proctree.read_tree(ProcessRef(100, 4999), proc) is None  # the recorded pause is gone
    assert proctree.read_tree(ProcessRef(999, 1), proc) is None


def test_owners_prefers_host_then_pause_then_containers() -> None:
    host = {"pid": 1, "net": 2, "ipc": 3, "uts": 4, "mnt": 5, "cgroup": 6, "user": 7}
    known = [("host", host), ("pause", PAUSE_NS), ("side", SIDE_NS)]
    assert proctree.owners(SIDE_NS, known) == {"pid": "pause", "net": "pause", "ipc": "pause", "uts": "pause",
                                                "mnt": "side", "cgroup": "side", "user": "host"}
    assert proctree.owners({"mnt": 99}, known) == {"mnt": proctree.OTHER}


def test_overlay_options_split_layers_and_undo_escapes() -> None:
    options = proctree.overlay_options(r"rw,lowerdir=/l/A:/l/B\072c::/data,upperdir=/c/x\054y/upper,workdir=/c/w")
    assert options["lowerdir"] == ["/l/A", "/l/B:c", "/data"]
    assert options["upperdir"] == ["/c/x,y/upper"]
    added = proctree.overlay_options("rw,lowerdir+=/l/A,lowerdir+=/l/B,upperdir=/u")
    assert added["lowerdir"] == ["/l/A", "/l/B"]


def test_root_source_names_store_layers_through_their_short_links(tmp_path: Path) -> None:
    store = tmp_path / "images"
    (store / "layers" / "sha256" / LAYER).mkdir(parents=True)
    (store / "l").mkdir()
    os.symlink(f"../layers/sha256/{LAYER}", store / "l" / "OYQMS6")
    mountinfo = tmp_path / "proc" / "7" / "mountinfo"
    mountinfo.parent.mkdir(parents=True)
    mountinfo.write_text(
        "40 30 0:41 / / ro,relatime - tmpfs tmpfs ro\n"  # covered by the overlay mounted later
        f"72 45 0:43 / / rw,nosuid,nodev,relatime - overlay overlay rw,lowerdir={store}/l/OYQMS6:/elsewhere,"
        "upperdir=/c/1/upper,workdir=/c/1/work,uuid=on\n"
        "73 72 0:45 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw\n")
    root = proctree.root_source(inspect.mounts(7, str(tmp_path / "proc")))
    assert root == proctree.RootSource("overlay", "overlay", "rw,nosuid,nodev,relatime",
                                       (f"{store}/l/OYQMS6", "/elsewhere"), (f"sha256:{LAYER}", "/elsewhere"),
                                       "/c/1/upper")
    assert proctree.layer_id("OYQMS6") == "OYQMS6"  # relative: nothing to resolve it against


def test_owner_label_keeps_labels_unambiguous() -> None:
    assert owner_label("pause", "pause") == "pause"
    assert owner_label("container", "app") == "app"
    assert owner_label("container", "pause") == "container/pause"
    assert owner_label("container", "host") == "container/host"


def _report(tmp_path: Path) -> dict[str, Any]:
    proc = _pod_proc(tmp_path)
    host = {"pid": 1, "net": 2, "ipc": 3, "uts": 4, "mnt": 5, "cgroup": 6, "user": 7}
    known = [("host", host), ("pause", PAUSE_NS), ("side", SIDE_NS)]
    pause = proctree.read_tree(ProcessRef(100, 5000), proc)
    assert pause is not None
    overlay = proctree.RootSource("overlay", "overlay", "rw", ("/s/l/A", "/s/l/B"), (f"sha256:{LAYER}", "/s/l/B"),
                                  "/c/1/upper")
    return {"pod": "tree", "namespace": "default", "running": True, "shareProcessNamespace": True,
            "hostPID": False, "namespaces": dict(known),
            "trees": [{"kind": "pause", "name": "pause", "owner": "pause", "running": True,
                       "root": proctree.root_json(proctree.RootSource("tmpfs", "tmpfs", "ro"), ""),
                       "process": proctree.to_json(pause, known)},
                      {"kind": "container", "name": "side", "owner": "side", "running": False,
                       "image": "busybox:1.36", "root": proctree.root_json(overlay, "busybox:1.36"),
                       "process": None}]}


def test_render_tree_shows_both_pids_owners_and_orphans(tmp_path: Path) -> None:
    text = render_tree(_report(tmp_path))
    lines = text.splitlines()
    assert lines[0] == "Pod default/tree: running"
    assert "shareProcessNamespace: true" in lines[1]
    table = {line.split()[0]: line.split()[1:] for line in lines if line.startswith("  ") and "=" in line}
    assert table["pause"] == ["21", "22", "23", "24", "25", "=", "host", "=", "host"]
    assert table["side"] == ["=", "pause"] * 4 + ["31", "32", "=", "host"]
    pause_line = next(line for line in lines if "  100  /pause" in line)
    assert pause_line.split("|")[1].split() == ["1", "(pause)"]
    orphan = next(line for line in lines if "120  sleep 1002" in line)
    assert orphan.lstrip().startswith("├─ 120")
    assert orphan.split("|")[1].split()[:2] == ["6", "(pause)"]
    assert "orphan adopted by pause, from side; mnt,cgroup: side's" in orphan
    zombie = next(line for line in lines if "121  [sh) (x]" in line)
    assert zombie.lstrip().startswith("└─ 121") and "zombie: exited, not reaped yet" in zombie
    assert "container side (busybox:1.36): not running" in lines
    assert "  pause: tmpfs tmpfs (ro)" in lines
    layers = lines[lines.index("  side: overlay of image busybox:1.36 (rw), 2 layers, top first:") + 1:]
    assert layers[:3] == [f"      sha256:{LAYER[:12]}  via /s/l/A", "      /s/l/B",
                          "    upper (the container's writes): /c/1/upper"]


def test_render_tree_cuts_long_commands_to_the_host_column(tmp_path: Path) -> None:
    report = _report(tmp_path)
    report["trees"][0]["process"]["command"] = "x" * 200
    line = next(line for line in render_tree(report).splitlines() if "  100  x" in line)
    assert line.index("|") == 47 and "...|" in line.replace(" ", "")


def test_read_tree_marks_where_a_deep_chain_is_cut(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(proctree, "MAX_DEPTH", 1)
    tree = proctree.read_tree(ProcessRef(100, 5000), _pod_proc(tmp_path / "a"))
    assert tree is not None and not tree.cut and [c.cut for c in tree.children] == [False, False]
    monkeypatch.setattr(proctree, "MAX_DEPTH", 0)
    tree = proctree.read_tree(ProcessRef(100, 5000), _pod_proc(tmp_path / "b"))
    assert tree is not None and tree.cut and tree.children == ()
    report = _report(tmp_path / "c")  # read with MAX_DEPTH still 0: pause's children are cut
    assert "its children are not shown (too deep)" in render_tree(report)
