"""docs/guide.md run as a reader runs it: every ```console command of every section, in order, with
`sandbox` in a private --root (SANDBOX_ROOT), its output compared with what the guide shows, and
each section's claim checked from outside (/proc, the pod's state, cgroup files).

The comparison (tests/unit/test_examples.py `matches`): numbers, UUIDs and long hex strings match
any value, runs of spaces any width, a `...` line any lines; an exit code stays exact. A read-only command
(get, inspect, describe, events, exec ps ...) is run again until its output matches (the pod gets
there: a restart, an orphan reaped) or 20 s pass; a command with an effect (run, delete, kill, cp,
rm, tag) runs once. `sandbox run` output is compared line by line in any order (containers print
concurrently). A ```console terminal=N block runs its first command in the background until the
end of its section (SIGINT where the guide shows ^C, else it must end by itself), then its other
commands. The Chinese guide shows the same commands and output (a unit test compares them)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import REPO, SANDBOX, Sandbox
from tests.unit.test_examples import (
    GUIDES,
    Command,
    Scene,
    actual_lines,
    expected_lines,
    guide_scenes,
    matches,
)

pytestmark = pytest.mark.root

RETRY_FOR = 20.0  # seconds a read-only command is retried until its output matches
# Commands with an effect run once; every other command only reads and may be run again.
_ONCE = re.compile(r"\b(run|delete|kill|tag|rm|cp|mv|mkdir|agent|httpd)\b")

@dataclass
class Background:
    command: Command
    proc: subprocess.Popen[bytes]
    output: Path
    after: list[Command]


@dataclass
class GuideRun:
    """Runs a guide's scenes as a reader would, in the test's own --root."""

    sbx: Sandbox
    substitutions: dict[str, str]
    results: dict[str, tuple[int, str]] = field(default_factory=dict)  # command line -> (rc, output)

    def env(self) -> dict[str, str]:
        return dict(os.environ, SANDBOX_ROOT=str(self.sbx.root),
                    PATH=f"{Path(SANDBOX).parent}:{os.environ['PATH']}")

    def shell_line(self, line: str) -> str:
        for old, new in self.substitutions.items():
            line = line.replace(old, new)
        return line

    def run_scene(self, scene: Scene, checks: list[tuple[str, Callable[[], None]]] | None = None) -> None:
        """Every command of the scene. Each check (s, check) runs, in the list's order, after the
        next command whose line contains s."""
        pending = list(checks or [])
        background: list[Background] = []
        for block in scene.blocks:
            if block.terminal:
                background.append(self.start(block.commands[0], block.commands[1:]))
                continue
            for command in block.commands:
                self.run(command)
                self._check(command, pending)
        for job in reversed(background):
            self.stop(job)
            for command in job.after:
                self.run(command)
                self._check(command, pending)
        assert not pending, f"checks whose command never came in {scene.title!r}: {[k for k, _ in pending]}"

    def _check(self, command: Command, pending: list[tuple[str, Callable[[], None]]]) -> None:
        if pending and pending[0][0] in command.line:
            pending.pop(0)[1]()

    def run(self, command: Command) -> None:
        expected = expected_lines(command)
        deadline = time.monotonic() + (0 if _ONCE.search(command.line) else RETRY_FOR)
        while True:
            done = subprocess.run(["bash", "-c", self.shell_line(command.line)], cwd=REPO, env=self.env(),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60,
                                  stdin=subprocess.DEVNULL)
            output = done.stdout.decode(errors="replace")
            self.results[command.line] = (done.returncode, output)
            if matches(expected, actual_lines(output)) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert matches(expected, actual_lines(output)), _diff(command, output)

    def start(self, command: Command, after: list[Command]) -> Background:
        out = self.sbx.tmp / f"terminal-{len(self.sbx.procs)}.out"
        with open(out, "wb") as f:  # exec: the command itself gets the ^C, not a shell
            proc = subprocess.Popen(["bash", "-c", "exec " + self.shell_line(command.line)], cwd=REPO,
                                    env=self.env(), stdout=f, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        self.sbx.procs.append(proc)  # killed by the fixture if the test fails first
        return Background(command, proc, out, after)

    def stop(self, job: Background) -> None:
        if "^C" in job.command.expected:
            job.proc.send_signal(signal.SIGINT)
        try:
            job.proc.wait(timeout=30)
        finally:
            self.sbx.finished.add(job.proc.pid)
        output = job.output.read_text(errors="replace")
        self.results[job.command.line] = (job.proc.returncode, output)
        assert matches(expected_lines(job.command), actual_lines(output)), _diff(job.command, output)


def _diff(command: Command, output: str) -> str:
    return (f"$ {command.line}\n--- the guide shows:\n" + "\n".join(command.expected)
            + "\n--- it printed:\n" + output)


def scene(title: str) -> Scene:
    found = [s for s in guide_scenes(GUIDES[0]) if s.title.startswith(title)]
    assert len(found) == 1, f"no single section {title!r} in {GUIDES[0].name}"
    return found[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def guide(sbx: Sandbox) -> Iterator[GuideRun]:
    manifests = sbx.tmp / "manifests"
    run = GuideRun(sbx, {"/etc/sandbox/manifests": str(manifests), "127.0.0.1:8000": f"127.0.0.1:{free_port()}",
                         "/tmp/guestbook-mirror": str(sbx.tmp / "guestbook-mirror")})
    try:
        yield run
    finally:
        for proc in sbx.procs:  # a failed test's agents and runs: stopped gracefully first
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    pass


# --- what the sections claim, seen from outside ------------------------------------------------

def ns(pid: int, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def _state(sbx: Sandbox, pod: str) -> dict[str, Any]:
    state = sbx.state(pod)
    assert state is not None, f"no state for {pod}"
    return state


def _status(sbx: Sandbox, pod: str, container: str) -> dict[str, Any]:
    statuses = _state(sbx, pod)["status"]["containerStatuses"]
    found: dict[str, Any] = next(c for c in statuses if c["name"] == container)
    return found


def _proc_status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return {k: v.strip() for k, _, v in (line.partition(":") for line in f)}


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def test_1_pause_holds_the_namespaces_a_restart_keeps(guide: GuideRun) -> None:
    sbx = guide.sbx
    seen: dict[str, int] = {}

    def shared_with_pause() -> None:
        pause, app = sbx.pause_pid("pause-demo"), sbx.pid_of("pause-demo", "app")
        seen.update(pause=pause, app=app)
        assert [ns(app, k) for k in ("net", "ipc", "uts")] == [ns(pause, k) for k in ("net", "ipc", "uts")]
        assert ns(app, "mnt") != ns(pause, "mnt") and ns(app, "pid") != ns(pause, "pid")
        assert _proc_status(pause)["NSpid"].split()[-1] == "1"  # pid 1 of the pod

    def restarted_beside_the_same_pause() -> None:
        assert sbx.pause_pid("pause-demo") == seen["pause"]
        app = sbx.pid_of("pause-demo", "app")
        assert app != seen["app"] and ns(app, "net") == ns(seen["pause"], "net")
        assert _status(sbx, "pause-demo", "app")["restartCount"] == 1

    guide.run_scene(scene("1."), [("inspect pod pause-demo", shared_with_pause),
                                  ("inspect pod pause-demo", restarted_beside_the_same_pause)])


def test_2_two_containers_answer_on_one_localhost(guide: GuideRun) -> None:
    sbx = guide.sbx

    def one_network_namespace() -> None:
        pause = sbx.pause_pid("redis-php")
        for name in ("frontend", "redis"):
            assert ns(sbx.pid_of("redis-php", name), "net") == ns(pause, "net")
        statuses = {c["name"]: c for c in _state(sbx, "redis-php")["status"]["containerStatuses"]}
        assert statuses["redis"]["imageID"].startswith("docker.io/kubeguide/redis-master@sha256:")

    try:
        guide.run_scene(scene("2."), [("curl -s localhost", one_network_namespace)])
    finally:  # the mirror's registry, should the scene fail before its stop; the session's store as it was
        subprocess.run([str(REPO / "rootfs" / "guestbook-mirror.sh"), "stop", str(sbx.tmp / "guestbook-mirror")],
                       check=False, capture_output=True)
        sbx.run("image", "rm", "kubeguide/redis-master", "kubeguide/guestbook-php-frontend:localredis")
        sbx.run("image", "prune")
    assert not (sbx.tmp / "guestbook-mirror").exists()
    code, output = guide.results["sandbox run --rm examples/02-localhost.yaml"]
    assert code == 0, output
    assert guide.sbx.state("localhost-demo") is None, "--rm removes the record"


def test_3_1_pause_reaps_the_orphan_of_a_shared_pid_namespace(guide: GuideRun) -> None:
    sbx = guide.sbx

    def one_pid_namespace_without_zombies() -> None:
        pause = sbx.pause_pid("shared-pid")
        for name in ("orphan", "watcher"):
            assert ns(sbx.pid_of("shared-pid", name), "pid") == ns(pause, "pid")
        assert not [c for c in _children(pause) if _proc_status(c)["State"].startswith("Z")]

    guide.run_scene(scene("3.1"), [("-c orphan -- ps", one_pid_namespace_without_zombies)])


def test_3_2_a_container_pid_1_that_never_waits_keeps_a_zombie(guide: GuideRun) -> None:
    sbx = guide.sbx

    def zombie_under_the_containers_pid_1() -> None:
        main = sbx.pid_of("own-pid", "orphan")
        assert ns(main, "pid") != ns(sbx.pause_pid("own-pid"), "pid")
        assert [_proc_status(c)["State"][0] for c in _children(main)] == ["Z"]

    guide.run_scene(scene("3.2"), [("-c orphan -- ps", zombie_under_the_containers_pid_1)])
    assert "exit code 137" in guide.results["sandbox run examples/03-own-pid.yaml"][1]


def test_4_the_background_mistake_restarts_with_a_warning(guide: GuideRun) -> None:
    sbx = guide.sbx

    def restarted_and_reported() -> None:
        state = _state(sbx, "background-mistake")
        assert state["status"]["containerStatuses"][0]["restartCount"] >= 2
        assert any(e["reason"] == "BackgroundProcessKilled" and e["type"] == "Warning" for e in state["events"])

    guide.run_scene(scene("4."), [("describe pod background-mistake", restarted_and_reported)])
    output = guide.results["sandbox run --backoff-initial 1s --backoff-max 2s examples/04-foreground.yaml"][1]
    assert output.count("Keep the main process in the foreground") >= 2, output


def test_5_never_waits_for_the_image_and_starts_once_it_is_stored(guide: GuideRun) -> None:
    sbx = guide.sbx

    def waiting() -> None:
        assert _status(sbx, "pull-policy", "missing")["state"]["waiting"]["reason"] == "ErrImageNeverPull"
        assert _status(sbx, "pull-policy", "never")["state"]["terminated"]["exitCode"] == 0

    def started() -> None:
        assert _status(sbx, "pull-policy", "missing")["state"]["terminated"]["exitCode"] == 0

    try:
        guide.run_scene(scene("5."), [("events | grep ErrImageNeverPull", waiting), ("image rm", started)])
    finally:  # the tag the section adds is in the session's shared store
        guide.sbx.run("image", "rm", "busybox:1.99")
    listed = sbx.run("image", "ls").stdout
    assert " 1.99 " not in listed and " 1.36 " in listed, listed


@pytest.mark.slow
def test_6_liveness_restarts_with_a_growing_back_off(guide: GuideRun) -> None:
    sbx = guide.sbx

    def restarted_by_the_probe() -> None:
        state = _state(sbx, "probes")
        assert state["status"]["containerStatuses"][0]["restartCount"] >= 2
        reasons = [e["reason"] for e in state["events"]]
        assert {"Unhealthy", "Killing", "BackOff"} <= set(reasons), reasons

    guide.run_scene(scene("6."), [("sandbox events", restarted_by_the_probe)])


def _source(sbx: Sandbox, pod: str) -> str:
    return str(_state(sbx, pod)["manifest"]["metadata"]["annotations"]["kubernetes.io/config.source"])


def test_7_1_a_static_pod_from_a_directory(guide: GuideRun) -> None:
    sbx = guide.sbx
    uids: list[str] = []

    def from_the_file() -> None:
        assert _source(sbx, "static-web-node1") == "file"
        uids.append(_state(sbx, "static-web-node1")["uid"])

    def still_the_same_pod() -> None:
        assert _state(sbx, "static-web-node1")["uid"] == uids[0]

    def gone_with_its_file() -> None:
        assert sbx.state("static-web-node1") is None

    guide.run_scene(scene("7.1"), [("wget", from_the_file), ("delete pod", still_the_same_pod),
                                   ("get pods", still_the_same_pod), ("rm ", lambda: None),
                                   ("get pods", gone_with_its_file)])


def test_7_2_a_static_pod_from_a_url(guide: GuideRun) -> None:
    sbx = guide.sbx

    def from_the_url() -> None:
        assert _source(sbx, "static-web-node1") == "http"

    guide.run_scene(scene("7.2"), [("grep config.source", from_the_url)])
    assert sbx.state("static-web-node1") is None, "deleted after the agent stopped"


def test_8_the_boundary_seen_from_outside(guide: GuideRun) -> None:
    sbx = guide.sbx

    def confined() -> None:
        pid = sbx.pid_of("confined", "app")
        status = _proc_status(pid)
        assert (status["CapEff"], status["CapBnd"], status["Seccomp"], status["NoNewPrivs"]) == \
            ("0000000000000400", "0000000000000400", "2", "1")
        with open(f"/proc/{pid}/mountinfo") as f:
            targets = {line.split()[4] for line in f}
        assert {"/proc/keys", "/proc/sys", "/sys/firmware"} <= targets
        assert _memory_limit(pid) == 64 * 1024 * 1024

    guide.run_scene(scene("8."), [("grep -E 'Cap(Prm", confined)])


def _memory_limit(pid: int) -> int:
    """The container's memory limit from its own cgroup, v1 (memory controller) or v2."""
    with open(f"/proc/{pid}/cgroup") as f:
        paths = {ctl: path for _, ctl, path in (line.rstrip("\n").split(":", 2) for line in f)}
    if "memory" in paths:
        return int(Path(f"/sys/fs/cgroup/memory{paths['memory']}/memory.limit_in_bytes").read_text())
    return int(Path(f"/sys/fs/cgroup{paths['']}/memory.max").read_text())


def test_9_1_the_trace_of_a_pod(guide: GuideRun) -> None:
    guide.run_scene(scene("9.1"))
    code, output = guide.results[next(c for c in guide.results if "--trace" in c)]
    assert code == 0, output
    assert guide.sbx.state("localhost-demo") is None, "--rm removes the record"


def test_9_2_the_process_tree_from_both_sides(guide: GuideRun) -> None:
    sbx = guide.sbx

    def tree_matches_proc() -> None:
        pause = sbx.pause_pid("shared-pid")
        out = guide.results[next(c for c in guide.results if "--tree" in c)][1]
        assert f"  {pause}  /pause" in out
        for name in ("orphan", "watcher"):
            pid = sbx.pid_of("shared-pid", name)
            inside = _proc_status(pid)["NSpid"].split()[-1]
            assert re.search(rf"^  {pid}  sleep 3600 +\|\s+{inside}  \(pause\)$", out, re.M), out

    guide.run_scene(scene("9.2"), [("--tree", tree_matches_proc)])


def test_every_section_with_commands_is_run_here() -> None:
    run_here = {"1.", "2.", "3.1", "3.2", "4.", "5.", "6.", "7.1", "7.2", "8.", "9.1", "9.2"}
    with_commands = {s.title.split()[0] for s in guide_scenes(GUIDES[0]) if s.commands()}
    assert with_commands == run_here


def test_the_readmes_web_and_sidecar_pod(sbx: Sandbox) -> None:
    """examples/web-and-sidecar.yaml as README.md and `make demo` run it: the sidecar reads the web
    container's page over 127.0.0.1, and Ctrl-C stops both through their SIGTERM traps."""
    proc = sbx.start(REPO / "examples" / "web-and-sidecar.yaml")
    sbx.wait_running("web-and-sidecar", containers=2)
    sbx.wait_for(lambda: "sidecar: hello from web-and-sidecar" in sbx.run("logs", "web-and-sidecar", "-c", "sidecar").stdout,
                 message="the sidecar's page from localhost")
    code, out, err = sbx.stop(proc)
    assert "web: stopping" in out and "sidecar: stopping" in out, out
    assert "web: terminated (Completed, exit code 0)" in err and "sidecar: terminated (Completed, exit code 0)" in err, err
