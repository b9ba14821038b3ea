"""--trace without a kernel: the option's parsing, the text and JSON lines, the wording of the
native stages' records from the request that was run, the tear-down lines, and "off" costing
nothing but the flag (no tracer, no trace line)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox import trace
from sandbox.cli import build_parser
from sandbox.process.request import CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID, SpawnRequest
from sandbox.rootfs.plan import MS_NODEV, MS_NOSUID, MS_RDONLY, MS_REMOUNT, MountOp, OpKind

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def events() -> Iterator[list[dict[str, Any]]]:
    got: list[dict[str, Any]] = []
    trace.start(got.append)
    try:
        yield got
    finally:
        trace.stop()


@pytest.mark.parametrize(("argv", "mode"), [
    (["run", "--trace", "pod.yaml"], "text"),
    (["run", "--trace=json", "pod.yaml"], "json"),
    (["run", "pod.yaml"], None),
    (["exec", "--trace", "web", "--", "true"], "text"),
    (["delete", "--trace=json", "web"], "json"),
])
def test_the_option_leaves_the_manifest_to_the_verb(argv: list[str], mode: str | None) -> None:
    args = build_parser(argv[0]).parse_args([a for a in argv if a != "--" and a != "true"])
    assert args.trace == mode
    if argv[0] == "run":
        assert args.file == "pod.yaml"


def test_text_and_json_lines(events: list[dict[str, Any]]) -> None:
    trace.emit("runtime", "cgroup", "cgroup memory.max = 67108864 (/sys/fs/cgroup/x)", value="67108864")
    trace.emit("pause", "sigchld", "SIGCHLD: pid 7 exited 0 (an orphan reaped by pause)")
    first, second = events
    assert (first["seq"], second["seq"]) == (1, 2)
    assert 0 <= first["ms"] <= second["ms"]
    text = trace.text_line(first)
    assert text.startswith("trace: ") and text.endswith("runtime cgroup memory.max = 67108864 (/sys/fs/cgroup/x)")
    assert json.loads(trace.json_line(first)) == first


def test_stream_sink_writes_one_line_per_event() -> None:
    read, write = os.pipe()
    try:
        sink = trace.stream_sink(write, "json")
        sink({"seq": 1, "ms": 0.5, "who": "runtime", "step": "x", "line": "a\nb"})
        sink({"seq": 2, "ms": 0.6, "who": "runtime", "step": "y", "line": "c"})
        os.close(write)
        lines = os.read(read, 65536).decode().splitlines()
    finally:
        os.close(read)
    assert [json.loads(line)["line"] for line in lines] == ["a\nb", "c"]


def test_off_emits_nothing() -> None:
    assert trace.active is None
    trace.emit("runtime", "x", "never seen")  # no tracer: nothing to call, nothing raised


def _spawn(events: list[dict[str, Any]], req: SpawnRequest) -> trace.SpawnTrace:
    assert trace.active is not None
    return trace.SpawnTrace(trace.active, req, trace.spawn_label(req))


def test_stage_records_are_worded_with_the_request(events: list[dict[str, Any]]) -> None:
    ops = (MountOp(OpKind.ROOT, "/x/merged", "overlay", "overlay", MS_NOSUID | MS_NODEV,
                   "lowerdir=l/a:l/b:l/c,upperdir=/x/upper,workdir=/x/work"),
           MountOp(OpKind.MOUNT, "proc", "proc", "proc", 0xE),
           MountOp(OpKind.MASK, "proc/kcore"),
           MountOp(OpKind.MOUNT, "sys/fs/cgroup", flags=MS_REMOUNT | MS_RDONLY))
    req = SpawnRequest(argv=["/bin/sh", "-c", "true"], env=[], new_ns=CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID,
                       sysctls=(("net/ipv4/ping_group_range", "0 2147483647"),), ops=ops, groups=(0, 10))
    spawn = _spawn(events, req)
    spawn.record(1, "UNSHARE", CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID, 0, "")
    spawn.record(1, "NS", CLONE_NEWNET, 4026532301, "")
    spawn.record(1, "SYSCTL", 0, 0, "net/ipv4/ping_group_range")
    spawn.record(2, "MOUNT", 0, 0, "/x/merged")
    spawn.record(2, "MOUNT", 1, 0, "proc")
    spawn.record(2, "MOUNT", 2, 1, "proc/kcore")
    spawn.record(2, "MOUNT", 3, 0, "sys/fs/cgroup")
    spawn.record(2, "IDS", 1000, 1000, "")
    spawn.record(2, "CAPSET", 0xA80425FB, 0, "")
    spawn.record(2, "SECCOMP", 345, 0, "")
    spawn.record(3, "EXEC", 0, 0, "/bin/sh")
    lines = [e["line"] for e in events]
    assert lines == [
        "unshare(NEWNS|NEWNET|NEWPID)",
        "  new net:[4026532301]",
        "write /proc/sys/net/ipv4/ping_group_range = 0 2147483647",
        "mount overlay on /x/merged (nosuid,nodev, lowerdir=<3 layers>,upperdir=/x/upper,workdir=/x/work)",
        "mount proc on /proc (nosuid,nodev,noexec)",
        "mask /proc/kcore (not in the root: skipped)",
        "remount /sys/fs/cgroup (ro)",
        "setgroups([0,10]), setresgid(1000), setresuid(1000)",
        "capset(kept: 14)",
        "seccomp(SET_MODE_FILTER, 345 BPF instructions)",
        "execve /bin/sh",
    ]
    assert [e["who"] for e in events][:1] == ["sh[stage1]"] and events[-1]["who"] == "sh[stage2]"
    assert events[1]["inode"] == 4026532301 and events[8]["kept"] == 14


def test_clone_and_setns_name_the_processes(events: list[dict[str, Any]]) -> None:
    pidfd = os.pidfd_open(os.getpid())
    try:
        req = SpawnRequest(argv=["/pause"], env=[], join_pidfd=pidfd, join_ns=CLONE_NEWIPC, stage_name="exec")
        spawn = _spawn(events, req)
        spawn.record(1, "SETNS", CLONE_NEWIPC, 4026532179, "")
        spawn.record(1, "CLONE", 0x00008000, os.getpid(), "")
    finally:
        os.close(pidfd)
    setns, clone = events
    assert setns["line"] == f"setns(pidfd of pid {os.getpid()}, NEWIPC) -> ipc:[4026532179]"
    assert setns["who"] == "exec:pause[stage1]"
    inode = os.stat(f"/proc/{os.getpid()}/ns/pid").st_ino
    assert clone["line"] == (f"clone(CLONE_PARENT) -> exec:pause pid {os.getpid()} "
                             f"(pid {clone['nsPid']} in pid:[{inode}])")


def test_undo_lines_come_from_the_journal_record() -> None:
    assert trace.undo_line({"kind": "process", "pid": 42, "startTime": 7}) == (
        "undo kill -9 pid 42, wait for its exit", {"kind": "process", "pid": 42, "startTime": 7})
    line, values = trace.undo_line({"kind": "network", "what": "veth", "spec": {"name": "sbx1"}})
    assert line == "undo remove network veth" and "spec" not in values


def test_the_run_path_does_not_load_the_trace_machinery() -> None:
    """Off costs a lookup: the modules that hold trace points never import sandbox.trace (only
    --trace does), and the module itself loads no other (threading, json: when a tracer needs them)."""
    code = ("import sys; import sandbox.cli.run, sandbox.native, sandbox.cgroups.fs, sandbox.network.rtnl, "
            "sandbox.pod.teardown, sandbox.pod.sandbox, sandbox.process.exec, sandbox.security.seccomp, "
            "sandbox.cli.delete; assert 'sandbox.trace' not in sys.modules; before = set(sys.modules); "
            "from sandbox import trace; assert set(sys.modules) - before == {'sandbox.trace'}; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "ok"


def test_the_seccomp_line_names_the_filter_stage_2_loads(events: list[dict[str, Any]], tmp_path: Path) -> None:
    from sandbox.process.capabilities import DEFAULT_MASK
    from sandbox.security.seccomp import RUNTIME_DEFAULT, filter_file_for

    first = filter_file_for(RUNTIME_DEFAULT, None, DEFAULT_MASK, tmp_path, tmp_path / "cache")
    again = filter_file_for(RUNTIME_DEFAULT, None, DEFAULT_MASK, tmp_path, tmp_path / "cache")
    compiled, cached = events
    assert first == again and compiled["filter"] == cached["filter"] == str(first)
    assert compiled["line"].endswith("(compiled now)") and cached["line"].endswith("(cached)")
    assert compiled["rules"] == cached["rules"] > 10 and compiled["syscalls"] > 300


def test_a_failing_sink_stops_the_trace_not_the_pod() -> None:
    calls: list[dict[str, Any]] = []

    def closed(event: dict[str, Any]) -> None:
        calls.append(event)
        raise BrokenPipeError(32, "Broken pipe")

    tracer = trace.Tracer(closed)
    tracer.emit("runtime", "cgroup", "first")
    tracer.emit("runtime", "cgroup", "second")
    assert [e["line"] for e in calls] == ["first"] and tracer.broken
