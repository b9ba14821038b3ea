"""The kubectl-shaped verbs over pod records and log files made by the test (no root, no pod):
get (-o wide|yaml|name, -w), logs' options, events, wait, completion, and the pieces under them
(Go durations, HumanDuration, the tabwriter, the record watcher)."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.cli.duration import human, parse_duration, parse_rfc3339
from sandbox.cli.get import restarts_cell, tab_lines
from sandbox.cli.wait import Condition
from sandbox.cli.watch import PodWatch
from sandbox.errors import UsageError
from sandbox.logs.reader import fixed_nano

SANDBOX = str(Path(sys.executable).parent / "sandbox")
NOW = time.time()


def stamp(seconds_ago: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - seconds_ago))


def pod_state(name: str, ns: str = "default", *, status: str = "Running", ready: str = "1/1", restarts: int = 0,
              ended: bool = True, containers: tuple[str, ...] = ("app",), events: list[Any] | None = None,
              ready_condition: str = "True") -> dict[str, Any]:
    return {
        "version": 1, "namespace": ns, "name": name, "uid": f"uid-{name}", "createdAt": NOW - 300, "ended": ended,
        "manifest": {"metadata": {"name": name}, "spec": {"containers": [{"name": c} for c in containers]}},
        "status": {"phase": "Running", "podIP": "10.89.0.7",
                   "conditions": [{"type": "Ready", "status": ready_condition}],
                   "containerStatuses": [{"name": c, "restartCount": 0, "state": {"running": {}}} for c in containers]},
        "summary": {"ready": ready, "status": status, "restarts": restarts},
        "events": events or [],
    }


class Root:
    """A --root with pod records and logs written the way the runtime writes them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.locks: list[int] = []

    def write(self, state: dict[str, Any]) -> None:
        d = self.path / "run" / "pods" / f"{state['namespace']}_{state['name']}"
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / ".state.json.tmp"
        tmp.write_text(json.dumps(state))
        os.rename(tmp, d / "state.json")

    def hold(self, name: str, ns: str = "default") -> int:
        """Hold the pod's lock as its runtime does (the record then reads as live)."""
        d = self.path / "run" / "pods" / f"{ns}_{name}"
        d.mkdir(parents=True, exist_ok=True)
        fd = os.open(d / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self.locks.append(fd)
        return fd

    def log(self, pod: str, container: str, instance: int, records: list[str], ns: str = "default") -> None:
        d = self.path / "log" / "pods" / f"{ns}_{pod}_uid-{pod}" / container
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{instance}.log").write_text("".join(r + "\n" for r in records))

    def run(self, *args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        return subprocess.run([SANDBOX, "--root", str(self.path), *args], capture_output=True, text=True,
                              timeout=timeout)

    def start(self, *args: str) -> Running:
        # SIGINT back to its default: a child of a non-interactive shell may inherit it ignored.
        return Running(subprocess.Popen([SANDBOX, "--root", str(self.path), *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)))


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Root]:
    r = Root(tmp_path / "root")
    yield r
    for fd in r.locks:
        os.close(fd)


class Running:
    """A `sandbox` verb that keeps running (-w, -f): its stdout lines as they come."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.pump = threading.Thread(target=self._pump, daemon=True)
        self.pump.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def until(self, want: int, timeout: float = 10, line: str | None = None) -> list[str]:
        """The lines once there are `want` of them, or (`line`) once that line came; what there
        is after `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (line in self.lines) if line is not None else len(self.lines) >= want:
                break
            time.sleep(0.02)
        return list(self.lines)

    def interrupt(self) -> tuple[int, str]:
        """Ctrl-C: its exit code and stderr."""
        self.proc.send_signal(signal.SIGINT)
        return self.finish()

    def finish(self) -> tuple[int, str]:
        try:
            code = self.proc.wait(timeout=10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.pump.join(10)
            assert self.proc.stdout is not None and self.proc.stderr is not None
            err = self.proc.stderr.read()
            self.proc.stdout.close()
            self.proc.stderr.close()
        return code, err


# --- pieces -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text,seconds", [("5s", 5), ("300ms", 0.3), ("1h30m", 5400), ("1.5h", 5400), ("0", 0),
                                          ("-1s", -1), ("2m3.5s", 123.5), ("10us", 1e-5)])
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text, "--since") == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "5x", "m", "1h 2m", "s5"])
def test_bad_go_durations_name_the_flag(text: str) -> None:
    with pytest.raises(UsageError, match='for "--timeout" flag'):
        parse_duration(text, "--timeout")


@pytest.mark.parametrize("seconds,text", [(-5, "<invalid>"), (-1, "0s"), (0, "0s"), (119, "119s"), (125, "2m5s"),
                                          (600, "10m"), (3 * 3600 + 1800, "3h30m"), (4 * 3600, "4h"),
                                          (20 * 3600, "20h"), (3 * 86400 + 4 * 3600, "3d4h"), (30 * 86400, "30d"),
                                          (800 * 86400, "2y70d")])
def test_human_duration_is_apimachinerys(seconds: float, text: str) -> None:
    assert human(seconds) == text


def test_rfc3339_times() -> None:
    assert parse_rfc3339("2026-11-30T05:00:00Z", "--since-time") == 1796014800.0
    assert parse_rfc3339("2026-11-30T06:00:00.123456789+01:00", "x") == pytest.approx(1796014800.123456)
    with pytest.raises(UsageError, match="RFC 3339"):
        parse_rfc3339("2026-11-30 05:00:00", "--since-time")


def test_fixed_nano_pads_the_fraction_as_the_kubelet_prints_it() -> None:
    assert fixed_nano("2026-11-30T05:00:01.5Z") == "2026-11-30T05:00:01.500000000Z"
    assert fixed_nano("2026-11-30T05:00:01+01:00") == "2026-11-30T05:00:01.000000000+01:00"
    assert fixed_nano("2026-11-30T05:00:01.123456789-07:00") == "2026-11-30T05:00:01.123456789-07:00"


def test_tabwriter_widths() -> None:
    assert tab_lines([["NAME", "READY", "AGE"], ["a", "1/1", "5s"]]) == ["NAME   READY   AGE", "a      1/1     5s"]
    assert tab_lines([["A", "B"], ["x", "y"]]) == ["A     B", "x     y"]  # cells at least 6 wide


def test_restarts_show_when_the_last_one_was() -> None:
    status = {"containerStatuses": [{"lastState": {"terminated": {"finishedAt": stamp(120)}}}]}
    assert restarts_cell({"restarts": 3}, status, time.time()) == "3 (2m ago)"  # a record without lastRestart
    assert restarts_cell({"restarts": 0}, {}, time.time()) == "0"
    # The runtime's lastRestart is the newest counted restart, whatever other containers say.
    assert restarts_cell({"restarts": 1, "lastRestart": stamp(300)}, status, time.time()) == "1 (5m ago)"
    assert restarts_cell({"restarts": 2, "lastRestart": None}, status, time.time()) == "2"


def test_conditions() -> None:
    pod = {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
    assert Condition("condition=Ready").met(pod) and Condition("condition=ready=TRUE").met(pod) is False
    assert Condition("condition=Ready=true").met(pod) and not Condition("condition=Ready=False").met(pod)
    assert Condition("jsonpath={.status.phase}=Running").met(pod)
    assert not Condition("jsonpath={.status.phase}=Pending").met(pod)
    assert Condition("jsonpath={.status.conditions[?(@.type==\"Ready\")].status}=True").met(pod)
    assert Condition("jsonpath={.status.conditions[0].type}").met(pod)
    assert not Condition("jsonpath={.status.podIP}").met(pod)
    assert Condition("delete").met(None) and not Condition("delete").met(pod)
    with pytest.raises(UsageError):
        Condition("ready")
    # client-go's JSONPath (cli/jsonpath.py), as kubectl wait: relaxed paths, every filter operator,
    # numbers and booleans as fmt prints them, a path reaching several values never met
    pod["status"]["containerStatuses"] = [{"name": "a", "restartCount": 2, "ready": True},
                                          {"name": "b", "restartCount": 0, "ready": False}]
    assert Condition("jsonpath=.status.phase=Running").met(pod)
    assert Condition("jsonpath={.status.containerStatuses[?(@.restartCount>1)].name}=a").met(pod)
    assert Condition("jsonpath={.status.containerStatuses[?(@.name!=\"a\")].ready}=false").met(pod)
    assert not Condition("jsonpath={.status.containerStatuses[*].name}=a").met(pod)
    with pytest.raises(UsageError):
        Condition("jsonpath={.status[?(@.x==}=1")


def test_the_watch_reports_a_new_state_a_new_pod_and_a_removed_one(tmp_path: Path) -> None:
    pods = tmp_path / "run" / "pods"
    with PodWatch(pods) as watch:  # the directory does not exist yet
        assert watch.wait(0.05) == set()
        root = Root(tmp_path)
        root.write(pod_state("a"))
        assert watch.wait(2) in (None, {"default_a"})
        root.write(pod_state("a", status="Error"))
        assert watch.wait(2) == {"default_a"}
        (pods / "default_a" / "state.json").unlink()
        assert "default_a" in (watch.wait(2) or {"default_a"})


# --- get ---------------------------------------------------------------------------------------------


def test_get_outputs(root: Root) -> None:
    root.write(pod_state("web", restarts=0))
    root.write(pod_state("db", ns="other"))
    table = root.run("get", "pods").stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert table[1].split()[:4] == ["web", "1/1", "Running", "0"]
    wide = root.run("get", "pods", "-o", "wide").stdout.splitlines()
    assert wide[0].split()[5:] == ["IP", "NODE", "NOMINATED", "NODE", "READINESS", "GATES"]
    assert wide[1].split()[5:] == ["10.89.0.7", os.uname().nodename, "<none>", "<none>"]
    assert root.run("get", "pods", "-A", "-o", "name").stdout.splitlines() == ["pod/web", "pod/db"]
    assert root.run("-n", "other", "get", "pods").stdout.splitlines()[1].split()[0] == "db"
    yaml = root.run("get", "pod", "web", "-o", "yaml").stdout
    assert yaml.startswith("apiVersion: v1\nkind: Pod\nmetadata:\n") and "  name: web\n" in yaml
    listing = json.loads(root.run("get", "pods", "-A", "-o", "json").stdout)
    assert listing["kind"] == "List" and [i["metadata"]["name"] for i in listing["items"]] == ["web", "db"]
    none = root.run("-n", "empty", "get", "pods")
    assert none.returncode == 0 and none.stderr == "No resources found in empty namespace.\n"


def test_get_watch_prints_each_change_then_ends_on_ctrl_c(root: Root) -> None:
    root.hold("web")
    root.write(pod_state("web", status="ContainerCreating", ready="0/1", ended=False))
    proc = root.start("get", "pods", "-w")
    assert proc.until(2)[1].split()[:4] == ["web", "0/1", "ContainerCreating", "0"]
    root.write(pod_state("web", status="ContainerCreating", ready="0/1", ended=False))  # no visible change
    root.write(pod_state("web", status="Running", ready="1/1", ended=False))
    # A state read after two writes sees only the second (a loaded machine): one change at a time.
    proc.until(3)
    root.write(pod_state("web", status="CrashLoopBackOff", ready="0/1", restarts=1, ended=False))
    got = proc.until(4)
    code, err = proc.interrupt()
    assert code == 0 and "Traceback" not in err, err
    assert [line.split()[:4] for line in got[2:]] == [["web", "1/1", "Running", "0"],
                                                       ["web", "0/1", "CrashLoopBackOff", "1"]]
    assert len(proc.lines) == 4


def test_get_watch_sees_a_killed_runtime_and_a_deleted_pod(root: Root) -> None:
    """The runtime's lock is let go without an ended record (it was killed): the pod turns
    Unknown, though the lock's close event comes before the kernel releases the flock."""
    d = root.path / "run" / "pods" / "default_web"
    d.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time\n"
                               f"fd = os.open({str(d / 'lock')!r}, os.O_RDWR | os.O_CREAT)\n"
                               "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        root.write(pod_state("web", ended=False))
        proc = root.start("get", "pods", "--watch-only", "-o", "wide")
        time.sleep(0.5)  # the watcher is up (nothing to print: --watch-only)
        holder.kill()
        holder.wait()
        got = proc.until(2)
        assert got[0].split()[:2] == ["NAME", "READY"] and got[1].split()[:4] == ["web", "0/1", "Unknown", "0"], got
        subprocess.run(["rm", "-rf", str(d)], check=True)
        got = proc.until(3)
        assert got[2].split()[:3] == ["web", "0/1", "Unknown"]  # deleted: printed once more, as kubectl
        assert proc.interrupt()[0] == 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()


def test_get_watch_json_prints_objects(root: Root) -> None:
    root.hold("web")
    root.write(pod_state("web", ended=False))
    proc = root.start("get", "pod", "web", "-w", "-o", "json")
    proc.until(0, line="}")  # the end of the first object
    root.write(pod_state("web", status="Error", ended=False))
    time.sleep(0.5)
    code, _ = proc.interrupt()
    text = "\n".join(proc.lines)
    decoder, objects, pos = json.JSONDecoder(), [], 0
    while pos < len(text.strip()):
        obj, pos = decoder.raw_decode(text, pos)
        objects.append(obj)
        pos += 1
    assert code == 0 and [o["kind"] for o in objects] == ["Pod", "Pod"]


# --- logs --------------------------------------------------------------------------------------------


def test_logs_options(root: Root) -> None:
    root.write(pod_state("web", containers=("app", "side")))
    root.log("web", "app", 1, [f"{stamp(30)} stdout F one", f"{stamp(20)} stderr F two",
                               "2026-11-30T05:00:03.5+01:00 stdout P thr", "2026-11-30T05:00:03.6+01:00 stdout F ee"])
    root.log("web", "app", 0, [f"{stamp(100)} stdout F old"])
    root.log("web", "side", 0, [f"{stamp(25)} stdout F side"])
    assert root.run("logs", "web", "-c", "app").stdout == "one\ntwo\nthree\n"
    assert root.run("logs", "web", "-c", "app", "--tail", "2").stdout == "two\nthree\n"
    assert root.run("logs", "web", "-c", "app", "--tail", "0").stdout == ""
    assert root.run("logs", "web", "-c", "app", "--since", "25s").stdout == "two\n"
    assert root.run("logs", "web", "-c", "app", "--since", "25.4s").stdout == "two\n"  # rounded to 25
    assert root.run("logs", "web", "-c", "app", "--since", "0s").stdout == "one\ntwo\nthree\n"  # no sinceSeconds
    assert root.run("logs", "web", "-c", "app", "--since", "0", "--since-time", stamp(21)).stdout == "two\n"
    assert root.run("logs", "web", "-c", "app", "--since-time", stamp(21)).stdout == "two\n"
    shown = root.run("logs", "web", "-c", "app", "--timestamps", "--tail", "1").stdout
    assert shown == "2026-11-30T05:00:03.500000000+01:00 three\n"
    assert root.run("logs", "web", "-c", "app", "-p").stdout == "old\n"
    every = root.run("logs", "web", "--all-containers", "--prefix").stdout.splitlines()
    assert every == ["[pod/web/app] one", "[pod/web/app] two", "[pod/web/app] three", "[pod/web/side] side"]


def test_logs_errors_are_kubectls(root: Root) -> None:
    root.write(pod_state("web", containers=("app", "side")))
    root.log("web", "app", 0, [f"{stamp(30)} stdout F one"])
    root.log("web", "side", 0, [f"{stamp(30)} stdout F one"])
    several = root.run("logs", "web")  # kubectl >= 1.21 (KEP-2189): the first container, with a notice
    assert several.returncode == 0 and several.stdout == "one\n"
    assert several.stderr == 'Defaulted container "app" out of: app, side\n'
    previous = root.run("logs", "web", "-c", "app", "-p")
    assert 'previous terminated container "app" in pod "web" not found' in previous.stderr
    assert "container nope is not valid for pod web" in root.run("logs", "web", "-c", "nope").stderr
    both = root.run("logs", "web", "--since", "1m", "--since-time", stamp(1))
    assert "at most one of `sinceTime` or `sinceSeconds`" in both.stderr
    assert "--tail must be greater than or equal to -1" in root.run("logs", "web", "-c", "app", "--tail", "-2").stderr
    assert root.run("logs", "web", "-c", "app", "--all-containers").returncode != 0


def test_logs_follow_with_tail_then_new_lines(root: Root) -> None:
    root.hold("web")
    root.write(pod_state("web", ended=False))
    root.log("web", "app", 0, [f"{stamp(3)} stdout F {i}" for i in range(5)])
    proc = root.start("logs", "web", "-f", "--tail", "2")
    assert proc.until(2) == ["3", "4"]
    with open(root.path / "log" / "pods" / "default_web_uid-web" / "app" / "0.log", "a") as f:
        f.write(f"{stamp(0)} stdout F new\n")
    assert proc.until(3) == ["3", "4", "new"]
    proc.interrupt()


# --- events, wait, completion -------------------------------------------------------------------------


def event(reason: str, seconds_ago: float, count: int = 1, first_ago: float | None = None,
          type_: str = "Normal") -> dict[str, Any]:
    return {"type": type_, "reason": reason, "message": f"{reason} message ", "count": count,
            "firstTimestamp": stamp(first_ago if first_ago is not None else seconds_ago),
            "lastTimestamp": stamp(seconds_ago), "involvedObject": {"fieldPath": "spec.containers{app}"}}


def test_events_table_sorted_by_last_seen(root: Root) -> None:
    # Ages in whole minutes past 10: the same text however long the test takes.
    root.write(pod_state("web", events=[event("BackOff", 900, count=3, first_ago=3000, type_="Warning"),
                                        event("Started", 1200)]))
    root.write(pod_state("db", ns="other", events=[event("Pulled", 1000)]))
    lines = root.run("events").stdout.splitlines()
    assert lines[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert lines[1].split() == ["20m", "Normal", "Started", "Pod/web", "Started", "message"]
    assert lines[2].split() == ["15m", "(x3", "over", "50m)", "Warning", "BackOff", "Pod/web", "BackOff", "message"]
    every = root.run("events", "-A").stdout.splitlines()
    assert [line.split()[0] for line in every] == ["NAMESPACE", "default", "other", "default"]
    assert len(root.run("events", "-A", "--for", "pod/db").stdout.splitlines()) == 2
    objects = json.loads(root.run("events", "-o", "json").stdout)
    assert objects["kind"] == "EventList" and objects["items"][0]["involvedObject"]["name"] == "web"
    assert objects["items"][0]["involvedObject"]["fieldPath"] == "spec.containers{app}"
    none = root.run("-n", "empty", "events")
    assert none.stdout == "" and none.stderr == "No events found in empty namespace.\n"
    assert "resource/name form" in root.run("events", "--for", "web").stderr
    # kubectl events --types; kubectl get events: the same listing
    warnings = root.run("events", "--types", "warning").stdout.splitlines()
    assert [line.split()[5] for line in warnings[1:]] == ["BackOff"]
    assert root.run("events", "--types", "Error").stderr == "error: valid --types are Normal or Warning\n"
    assert root.run("get", "events").stdout == root.run("events").stdout
    assert root.run("get", "ev", "-A", "-o", "json").stdout == root.run("events", "-A", "-o", "json").stdout


def test_wait(root: Root) -> None:
    root.write(pod_state("web", ready_condition="False", ended=False))
    root.hold("web")
    timer = threading.Timer(0.5, lambda: root.write(pod_state("web", ended=False)))
    timer.start()
    met = root.run("wait", "--for=condition=Ready", "pod/web", "--timeout", "10s")
    assert met.returncode == 0 and met.stdout == "pod/web condition met\n"
    late = root.run("wait", "--for", "jsonpath={.status.phase}=Succeeded", "pod/web", "--timeout", "0.3s")
    assert late.returncode == 1 and late.stderr == "error: timed out waiting for the condition on pods/web\n"
    assert root.run("wait", "--for=condition=Ready", "pod/ghost").stderr == 'error: pods "ghost" not found\n'
    assert root.run("wait", "--for=delete", "pod/ghost").returncode == 0
    pod_dir = root.path / "run" / "pods" / "default_web"
    threading.Timer(0.5, lambda: subprocess.run(["rm", "-rf", str(pod_dir)], check=True)).start()
    gone = root.run("wait", "--for=delete", "pods", "web", "--timeout=10s")
    assert gone.returncode == 0 and gone.stdout == "pod/web deleted\n"


def test_bash_completion_in_a_real_bash(root: Root, tmp_path: Path) -> None:
    root.write(pod_state("web"))
    root.write(pod_state("db", ns="other"))
    script = tmp_path / "sandbox.bash"
    script.write_text(root.run("completion", "bash").stdout)
    probe = f"""
source {script}
t() {{ COMP_WORDS=("$@"); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); COMPREPLY=(); _sandbox; echo "${{COMPREPLY[*]}}"; }}
t sandbox lo
t sandbox --root {root.path} logs ""
t sandbox --root {root.path} -n other exec ""
t sandbox --root {root.path} get pods -o w
t sandbox --root {root.path} get cm ""
t sandbox --root {root.path} wait --for = condition = Ready pod/
t sandbox --root {root.path} logs --ta
"""
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PATH=f"{Path(SANDBOX).parent}:{os.environ['PATH']}"))
    assert out.stderr == "" and out.stdout.splitlines() == ["logs", "web", "db", "wide", "", "pod/web", "--tail"]
