"""restartPolicy and the crash-loop back-off, with the back-off scaled down through the documented
`--backoff-initial/--backoff-max` options."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import Sandbox

pytestmark = pytest.mark.root

# /dev/shm belongs to the pod, not to one container start: a counter there survives restarts.
COUNTER = "n=$(cat /dev/shm/n 2>/dev/null || echo 0); echo $((n+1)) > /dev/shm/n; echo run $n"


def pod(name: str, policy: str, script: str, grace: int = 2) -> str:
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: {policy}
  terminationGracePeriodSeconds: {grace}
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", {json.dumps(script)}]
"""


def test_never_failing_container_fails_the_pod_without_restart(sbx: Sandbox) -> None:
    result = sbx.run("run", str(sbx.manifest(pod("never", "Never", f"{COUNTER}; exit 3"))))
    assert result.returncode == 1
    assert result.stdout.count("run ") == 1
    assert "pod default/never: Failed" in result.stderr
    assert "main: terminated (Error, exit code 3), restarts 0" in result.stderr


def test_never_succeeding_container_succeeds(sbx: Sandbox) -> None:
    result = sbx.run("run", str(sbx.manifest(pod("never-ok", "Never", "exit 0"))))
    assert result.returncode == 0, result.stderr
    assert "pod default/never-ok: Succeeded" in result.stderr
    assert "main: terminated (Completed, exit code 0), restarts 0" in result.stderr


def test_on_failure_restarts_until_success(sbx: Sandbox) -> None:
    script = f"{COUNTER}; [ $n -ge 2 ]"
    result = sbx.run("run", "--backoff-initial", "50ms", str(sbx.manifest(pod("onfail", "OnFailure", script))))
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stdout.splitlines() if "run" in line] == \
        ["[main] run 0", "[main] run 1", "[main] run 2"]
    assert "main: terminated (Completed, exit code 0), restarts 2" in result.stderr


def test_always_restarts_even_after_success_and_keeps_last_state(sbx: Sandbox) -> None:
    proc = sbx.start(sbx.manifest(pod("always", "Always", f"{COUNTER}; exit 0")),
                     "--backoff-initial", "50ms", "--backoff-max", "100ms")

    def restarted_twice() -> dict | None:
        s = sbx.state("always")
        if s is None:
            return None
        cs = s["status"]["containerStatuses"][0]
        return s if cs["restartCount"] >= 2 else None

    state = sbx.wait_for(restarted_twice, message="two restarts")
    assert state["status"]["phase"] == "Running"  # Always + exit 0 never makes the pod Succeeded
    cs = state["status"]["containerStatuses"][0]
    assert cs["lastState"]["terminated"]["exitCode"] == 0
    assert cs["lastState"]["terminated"]["reason"] == "Completed"
    code, out, err = sbx.stop(proc)
    logs = sorted(int(p.stem) for p in (sbx.root / "log" / "pods").glob("default_always_*/main/*.log"))
    assert len(logs) == 2 and logs[1] == logs[0] + 1 and logs[1] >= 2  # current and previous kept (issue 7)


def _collect_start_times(root: Path, name: str, into: dict[int, float]) -> None:
    """Each start writes `<restartCount>.log`; its first CRI record's time is when it ran. Only the
    current and the previous instance's logs are kept (issue 7): collect them while the pod runs."""
    from sandbox.logs.cri import parse_record

    for path in root.glob(f"log/pods/default_{name}_*/main/*.log"):
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue
        if int(path.stem) not in into and b"\n" in data:
            into[int(path.stem)] = _parse_ts(parse_record(data.split(b"\n", 1)[0])[0])


def _parse_ts(ts: str) -> float:
    from datetime import datetime

    main, _, frac = ts.rstrip("Z").partition(".")
    whole = datetime.fromisoformat(main + "+00:00").timestamp()
    return whole + float("0." + (frac or "0"))


def test_crash_loop_backoff_timing_scaled(sbx: Sandbox) -> None:
    """Delays between starts: 0, then initial doubling to the cap (kubelet: 0, 10, 20, 40 ... 300 s)."""
    initial, cap = 0.3, 1.2
    proc = sbx.start(sbx.manifest(pod("backoff", "Always", "echo start; exit 1")),
                     "--backoff-initial", "300ms", "--backoff-max", "1200ms")

    starts: dict[int, float] = {}

    def six_starts() -> dict | None:
        _collect_start_times(sbx.root, "backoff", starts)
        s = sbx.state("backoff")
        return s if s and s["status"]["containerStatuses"][0]["restartCount"] >= 5 else None

    state = sbx.wait_for(six_starts, timeout=20, message="five restarts")
    waiting = state["status"]["containerStatuses"][0]["state"]
    sbx.stop(proc)
    _collect_start_times(sbx.root, "backoff", starts)
    assert sorted(starts)[:6] == list(range(6)), sorted(starts)
    times = [starts[n] for n in sorted(starts)]
    gaps = [b - a for a, b in zip(times, times[1:])][:5]
    expected = [0, initial, 2 * initial, min(4 * initial, cap), cap]
    for gap, want in zip(gaps, expected):
        assert want <= gap + 0.02 and gap < want + 0.25, (gaps, expected)
    assert "waiting" in waiting or "running" in waiting


def test_crash_loop_shows_waiting_reason_and_message(sbx: Sandbox) -> None:
    proc = sbx.start(sbx.manifest(pod("crashloop", "Always", "exit 2")), "--backoff-initial", "5s")

    def in_backoff() -> dict | None:
        s = sbx.state("crashloop")
        cs = s["status"]["containerStatuses"][0] if s else None
        waiting = cs["state"].get("waiting", {}) if cs else {}
        return cs if waiting.get("reason") == "CrashLoopBackOff" else None

    cs = sbx.wait_for(in_backoff, message="CrashLoopBackOff")
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert cs["state"]["waiting"]["message"].startswith("back-off 5s restarting failed container=main pod=crashloop_default(")
    assert cs["lastState"]["terminated"]["exitCode"] == 2
    assert cs["restartCount"] == 1
    listing = sbx.run("get", "pods").stdout
    assert "CrashLoopBackOff" in listing
    started = time.monotonic()
    sbx.stop(proc)
    assert time.monotonic() - started < 3  # a pending restart is cancelled, not waited for


def test_a_crash_loop_keeps_one_termination_message_file(sbx: Sandbox) -> None:
    """Each instance's termination-message file is read into its status when it exits and then
    removed: the pod's bounded files tmpfs never fills up, however long the loop runs, and every
    instance still reports its own message."""
    script = f"{COUNTER}; echo \"message $n\" > /dev/termination-log; exit 3"
    proc = sbx.start(sbx.manifest(pod("messages", "Always", script)),
                     "--backoff-initial", "10ms", "--backoff-max", "20ms")

    def many_restarts() -> dict | None:
        s = sbx.state("messages")
        cs = s and s["status"]["containerStatuses"][0]
        return s if cs and cs["restartCount"] >= 20 else None

    state = sbx.wait_for(many_restarts, timeout=30, message="twenty restarts")
    (directory,) = (sbx.root / "lib" / "pods").glob("*/files/containers/main")
    files = list(directory.iterdir())
    assert len(files) <= 1, files  # the running instance's, if one runs right now
    last = state["status"]["containerStatuses"][0]["lastState"]["terminated"]
    assert last["exitCode"] == 3 and last["message"].startswith("message ")
    sbx.stop(proc)
