"""`--trace` (issue 14): the lines of a real two-container pod checked against the kernel's state
seen from outside (the pod record's pause pid, /proc/PID/ns inodes, the cgroup files, the veth in
pause's namespace), pause's reaping line, the tear-down in reverse creation order, `exec --trace`,
and a run without --trace printing no trace line."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import Sandbox

pytestmark = pytest.mark.root

POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: traced
spec:
  shareProcessNamespace: true
  terminationGracePeriodSeconds: 1
  containers:
  - name: orphan
    image: busybox:1.36
    command: ["sh", "-c", "(sleep 0.2 &); exec sleep 3600"]
    resources:
      limits:
        memory: 64Mi
  - name: second
    image: busybox:1.36
    command: ["sleep", "3600"]
"""


def events_of(stderr: str) -> list[dict[str, Any]]:
    """The JSON trace events among the runtime's stderr lines."""
    found = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if "seq" in event and "step" in event:
                found.append(event)
    return found


def stage_events(events: list[dict[str, Any]], who: str, step: str) -> list[dict[str, Any]]:
    return [e for e in events if e["who"] == who and e["step"] == step]


def read_events_until(proc: subprocess.Popen[bytes], done: Any, timeout: float = 20) -> list[dict[str, Any]]:
    """Read the runtime's stderr line by line until `done(events)` holds."""
    import select
    import time

    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    events: list[dict[str, Any]] = []
    buffer = b""
    deadline = time.monotonic() + timeout
    while not done(events):
        left = deadline - time.monotonic()
        assert left > 0, f"trace incomplete after {timeout}s: {[e['line'] for e in events][-5:]}"
        if not select.select([fd], [], [], left)[0]:
            continue
        chunk = os.read(fd, 65536)
        assert chunk, "the runtime's stderr closed early"
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        events += events_of(b"\n".join(lines).decode())
    return events


def test_trace_lines_match_the_pod_seen_from_outside(sbx: Sandbox) -> None:
    proc = sbx.start(sbx.manifest(POD), "--trace=json")
    events = read_events_until(proc, lambda ev: sum(e["step"] == "exec" for e in ev) == 3
                               and any(e["step"] == "sigchld" for e in ev))
    state = sbx.wait_running("traced", containers=2)
    pause = sbx.pause_pid("traced")

    # pause: its pid as the pod record holds it, PID 1 of the pod's new PID namespace
    (clone,) = stage_events(events, "pause[stage1]", "clone")
    assert clone["pid"] == pause and clone["nsPid"] == 1
    assert clone["pidNs"] == os.stat(f"/proc/{pause}/ns/pid").st_ino
    new = {e["ns"]: e["inode"] for e in stage_events(events, "pause[stage1]", "ns")}
    for kind in ("net", "ipc", "uts", "mnt"):
        assert new[kind] == os.stat(f"/proc/{pause}/ns/{kind}").st_ino, kind
    # each container joined pause's namespaces: the inodes printed are the ones it holds now
    for name, command in (("orphan", "sh"), ("second", "sleep")):
        pid = sbx.pid_of("traced", name)
        joined = {e["ns"]: e["inode"] for e in stage_events(events, f"{command}[stage1]", "setns")}
        assert joined["net"] == os.stat(f"/proc/{pid}/ns/net").st_ino == new["net"]
        assert joined["ipc"] == os.stat(f"/proc/{pid}/ns/ipc").st_ino
        (spawned,) = stage_events(events, f"{command}[stage1]", "clone")
        assert spawned["pid"] == pid
        (execve,) = stage_events(events, f"{command}[stage2]", "exec")
        assert execve["path"].endswith(f"/{command}") and execve["argv"][0] == command
        (capset,) = stage_events(events, f"{command}[stage2]", "capset")
        status = Path(f"/proc/{pid}/status").read_text()
        assert int(re.search(r"CapBnd:\s+([0-9a-f]+)", status).group(1), 16) == int(capset["caps"], 16)  # type: ignore[union-attr]
        assert stage_events(events, f"{command}[stage2]", "seccomp")[0]["instructions"] > 0
        assert re.search(r"Seccomp:\s+2", status)
    # the overlay root and /proc, as mounted in the container's own mount namespace
    mounts = Path(f"/proc/{sbx.pid_of('traced', 'second')}/mountinfo").read_text()
    lines = [e["line"] for e in stage_events(events, "sleep[stage2]", "mount")]
    assert any(line.startswith("mount overlay on ") and "lowerdir=<1 layers>" in line for line in lines)
    assert "mount proc on /proc (nosuid,nodev,noexec)" in lines and " /proc rw,nosuid,nodev,noexec" in mounts
    # every cgroup value printed is the file's content now
    written = [e for e in events if e["step"] == "cgroup" and "value" in e
               and not e["path"].endswith(("cgroup.procs", "/tasks"))]
    limits = [e for e in written if e["path"].endswith(("memory.limit_in_bytes", "memory.max"))]
    assert limits and {e["value"] for e in limits} == {str(64 * 1024 * 1024)}
    for event in written:
        if not event["path"].endswith(("devices.allow", "devices.deny", "cgroup.clone_children",
                                       "cgroup.subtree_control")):
            assert Path(event["path"]).read_text().strip() == event["value"], event["line"]
    # each process moved itself into its v1 cgroups (spawn.c join_cgroups), and is in them now
    joined = [e for e in events if e["step"] == "cgroup" and e["path"].endswith("/tasks")]
    pause_joins = [e["path"] for e in joined if e["who"] == "pause[stage2]"]
    assert pause_joins and all(e["value"] == "0" for e in joined)
    for path in pause_joins:
        assert str(pause) in Path(path).read_text().split(), path
    # the veth: its peer created in pause's network namespace, with the address the pod record holds
    (veth,) = [e for e in events if e["step"] == "netlink" and "peer" in e]
    assert veth["peerNetns"] == new["net"] and veth["peer"] == "eth0"
    assert os.path.exists(f"/sys/class/net/{veth['link']}")
    (address,) = [e for e in events if e["step"] == "ioctl" and "address" in e and e["netns"] == "pod"]
    assert address["address"].split("/")[0] == state["status"]["podIP"]
    # pause reaped the orphan left by `(sleep 0.2 &)`
    (reaped,) = [e for e in events if e["step"] == "sigchld"]
    assert re.fullmatch(r"SIGCHLD: pid \d+ exited 0", reaped["report"])

    # the tear-down: newest first, the journal's own order reversed (the journal goes with the end)
    journal = [json.loads(line) for line in
               (sbx.root / "run" / "pods" / "default_traced" / "teardown.jsonl").read_text().splitlines()]
    code, _, stderr = sbx.stop(proc)
    undo = [e for e in events_of(stderr) if e["step"] == "undo"]
    kinds = [e["kind"] for e in undo]
    assert kinds[0] == "process" and undo[0]["pid"] == pause
    undone = [{k: v for k, v in e.items() if k not in ("seq", "ms", "who", "step", "line")} for e in undo]
    recorded = [{k: v for k, v in r.items() if k != "spec"} for r in reversed(journal)]
    assert all(u in recorded for u in undone)
    assert [recorded.index(u) for u in undone] == sorted(recorded.index(u) for u in undone)
    assert "cgroup" in kinds and "mount" in kinds
    sbx.run("delete", "traced", check=True)


def test_exec_traces_its_setns_and_a_run_without_trace_prints_none(sbx: Sandbox) -> None:
    proc = sbx.start(sbx.manifest(POD.replace("traced", "quiet")), "--network", "none")
    sbx.wait_running("quiet", containers=2)
    pid = sbx.pid_of("quiet", "second")
    out = sbx.run("exec", "--trace", "quiet", "-c", "second", "--", "true", check=True)
    lines = [line for line in out.stderr.splitlines() if line.startswith("trace: ")]
    assert any(f"exec:true[stage1] setns(pidfd of pid {pid}, NEWNET) -> "
               f"net:[{os.stat(f'/proc/{pid}/ns/net').st_ino}]" in line for line in lines)
    assert any(re.search(r"exec:true\[stage2\] execve /\S*/true$", line) for line in lines)
    assert re.search(r"runtime waitid\(P_PIDFD, pid \d+\) -> exit code 0$", lines[-1])
    plain = sbx.run("exec", "quiet", "-c", "second", "--", "true", check=True)
    assert "trace:" not in plain.stderr
    code, _, stderr = sbx.stop(proc)
    assert "trace:" not in stderr and not events_of(stderr)
    sbx.run("delete", "quiet", check=True)
