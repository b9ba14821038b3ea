#!/usr/bin/env python3
"""Pod cycle benchmark: `sandbox run` and `sandbox exec` against runc and the bare-namespace floor.

What is timed (each command on the same busybox root filesystem, as root):

  cycle  sandbox run      `sandbox --root R run -q POD.yaml`, a one-container pod running /bin/true
                          (pause + container + tear-down), with the process tree's peak RSS
         unshare+chroot   `unshare --fork --pid --net --ipc --uts --mount --mount-proc chroot ROOTFS
                          /bin/true`, the floor: namespaces and nothing else
         runc run         `runc --root T run -b BUNDLE ID`, the same rootfs read-only
         crun run         `crun --root T run -b BUNDLE ID`, the same bundle, when crun is installed and
                          runs here (one probe run first: on a hybrid cgroup host crun 1.x refuses with
                          "cgroups in hybrid mode not supported"; its words go to the report instead)
  exec   sandbox exec     `sandbox --root R exec POD -- true` into a running `sleep 3600` pod
         nsenter          `nsenter -a -t PID true` into that pod's container (the floor)
         runc exec        `runc --root T exec ID true` into a detached runc `sleep 3600` container
         crun exec        `crun --root T exec ID true` likewise, when crun runs here
  running sandbox run, to Running   `sandbox run POD.yaml` in the foreground, one container running
                          `sh -c 'echo ready; exec sleep 3600'`, until "ready" is on its stdout (the
                          container runs); the pod is then deleted, untimed
         runc run, to Running       the same bundle in the foreground until "ready", then killed
                          (and crun likewise); the peers alternate run by run (`--no-running`: left out)

plus the resident memory of the pod's pause process and of the idle `sandbox run` supervisor, and a
start-up breakdown (`python -X importtime`) of `sandbox run`, its main cost.

Timing uses hyperfine (`-N`, no shell) when it is installed, else a stdlib loop (posix_spawn +
os.wait4 around time.perf_counter). Peak RSS is ru_maxrss from wait4, the largest of the process and
the descendants it reaped (runc's `runc init`, sandbox's pause and containers), taken by GNU time
when installed, else by this script as child subreaper of a `sh` that forks the command: a command
forked straight from this Python process would inherit its ~16 MiB high-water mark.

Python byte-code is cached in the workspace (PYTHONPYCACHEPREFIX, PYTHONDONTWRITEBYTECODE dropped),
so `sandbox` is timed as an installed copy runs; `--keep-env` times it under the caller's settings.

The pods name `busybox:1.36`, a pinned tag, so imagePullPolicy defaults to IfNotPresent and a
start uses the store's image without asking a registry (with `busybox`, i.e. :latest, the
default Always would time one manifest request per start too, as the kubelet makes it).

Everything lives in one temporary directory (sandbox root with its own busybox image, runc state,
bundles); whatever happens, the pod is deleted, runc containers are killed and deleted, stray
mounts under it are unmounted and the directory is removed. Results: a markdown table on stdout
and bench/results/pod_cycle.json.

    .venv/bin/python bench/pod_cycle.py [--runs N] [--quick] [--timer auto|hyperfine|stdlib]
        [--cgroup-root DIR] [--run-arg ARG ...]
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import json
import os
import platform
import select
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ParamSpec

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "pod_cycle.json"
P = ParamSpec("P")
IMAGE_REF = "docker.io/library/busybox:latest"
CYCLE_POD = "bench-cycle"
LONG_POD = "bench-sleeper"
LONG_CONTAINER = "sleeper"
TARGETS = {"sandbox run vs runc run": "ratio <= 1 (issue: runc ~37 ms here)",
           "sandbox exec vs runc exec": "ratio <= 1 (issue: runc exec ~23 ms here)",
           "pause VmRSS": "< 100 KiB"}

CYCLE_MANIFEST = f"""\
apiVersion: v1
kind: Pod
metadata:
  name: {CYCLE_POD}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: busybox:1.36
    command: ["/bin/true"]
"""

# Grace 0: `sleep` is PID 1 of its PID namespace and ignores SIGTERM, so any grace would be waited out.
LONG_MANIFEST = f"""\
apiVersion: v1
kind: Pod
metadata:
  name: {LONG_POD}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 0
  containers:
  - name: {LONG_CONTAINER}
    image: busybox:1.36
    command: ["sleep", "3600"]
"""


@dataclass
class Row:
    """One timed command."""

    group: str  # "cycle", "exec", "running" or "startup": see REFERENCE
    label: str
    argv: list[str]
    times_ms: list[float]
    timer: str
    peak_rss_kib: int | None = None
    ratio: float | None = None  # median over the median of the group's reference row

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times_ms)

    def summary(self) -> dict[str, object]:
        return {"group": self.group, "command": self.label, "argv": self.argv, "timer": self.timer,
                "runs": len(self.times_ms), "median_ms": round(self.median_ms, 2),
                "min_ms": round(min(self.times_ms), 2), "max_ms": round(max(self.times_ms), 2),
                "mean_ms": round(statistics.fmean(self.times_ms), 2),
                "stdev_ms": round(statistics.stdev(self.times_ms), 2) if len(self.times_ms) > 1 else 0.0,
                "ratio": None if self.ratio is None else round(self.ratio, 2),
                "peak_rss_kib": self.peak_rss_kib, "times_ms": [round(t, 2) for t in self.times_ms]}


@dataclass
class Workspace:
    """The temporary directory and everything the benchmark made in it."""

    base: Path
    sandbox_root: Path
    runc_root: Path
    rootfs: Path
    cycle_manifest: Path
    long_manifest: Path
    cycle_bundle: Path
    long_bundle: Path
    env: dict[str, str]  # environment of every command run (Python byte-code cache settings)
    run_args: list[str] = field(default_factory=list)  # extra arguments of every `sandbox run`
    runc_ids: list[str] = field(default_factory=list)  # every id ever created, for clean-up
    crun_ids: list[str] = field(default_factory=list)  # the same for crun (state under base/crun)
    crun_refusal: str | None = "not probed"  # None once a probe `crun run` worked: crun rows are timed
    watched_pids: dict[str, int] = field(default_factory=dict)  # processes that must be gone after


# ---------------------------------------------------------------------------------------------
# Timing and peak memory


def run_once(argv: list[str], env: dict[str, str]) -> float:
    """Run argv once with stdio on /dev/null; return its wall time in ms."""
    actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
               (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
               (os.POSIX_SPAWN_DUP2, 1, 2)]
    start = time.perf_counter()
    pid = os.posix_spawnp(argv[0], argv, env, file_actions=actions)
    _, status, _ = os.wait4(pid, 0)
    elapsed = (time.perf_counter() - start) * 1000
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{shlex.join(argv)} exited {code}")
    return elapsed


def time_stdlib(argv: list[str], runs: int, warmup: int, env: dict[str, str]) -> list[float]:
    for _ in range(warmup):
        run_once(argv, env)
    return [run_once(argv, env) for _ in range(runs)]


def time_hyperfine(argv: list[str], runs: int, warmup: int, env: dict[str, str],
                   scratch: Path) -> list[float]:
    export = scratch / "hyperfine.json"
    subprocess.run(["hyperfine", "-N", "--style", "none", "--runs", str(runs), "--warmup", str(warmup),
                    "--export-json", str(export), shlex.join(argv)], env=env, check=True)
    return [t * 1000 for t in json.loads(export.read_text())["results"][0]["times"]]


# ru_maxrss is inherited through exec: a child forked or vforked from this (~16 MiB) Python process
# reports at least this process's RSS. So the measured command must be forked by a small process:
# GNU time when installed, else `sh` with this process as child subreaper, reaping the orphan itself.
PR_SET_CHILD_SUBREAPER = 36


def peak_rss_gnu_time(time_bin: str, argv: list[str], env: dict[str, str], scratch: Path) -> int:
    out = scratch / "time.out"
    run_once([time_bin, "-f", "%M", "-o", str(out), *argv], env)
    return int(out.read_text().split()[-1])


def peak_rss_subreaper(argv: list[str], env: dict[str, str]) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    try:
        shell = subprocess.run(["sh", "-c", '"$@" </dev/null >/dev/null 2>&1 & echo $!', "sh", *argv],
                               env=env, capture_output=True, text=True, check=True)
        _, status, usage = os.wait4(int(shell.stdout), 0)  # the orphan is ours once sh has exited
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{shlex.join(argv)} exited {os.waitstatus_to_exitcode(status)}")
    return usage.ru_maxrss  # KiB on Linux: the process and the descendants it reaped


def gnu_time() -> str | None:
    path = shutil.which("time")
    if path is None:
        return None
    version = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    return path if "GNU" in version.stdout + version.stderr else None


@dataclass
class Timer:
    kind: str  # "hyperfine" or "stdlib"
    runs: int
    warmup: int
    rss_runs: int
    env: dict[str, str]
    scratch: Path
    time_bin: str | None = field(default_factory=gnu_time)
    # --interleave: a group's commands take turns run by run (the order rotating) under the stdlib
    # timer, so this VM's drift over minutes falls on every command alike; hyperfine times one
    # command's whole series, then the next (`make bench-check`'s ratios moved 40% between runs so)
    interleave: bool = False

    @property
    def rss_method(self) -> str:
        return f"GNU time ({self.time_bin})" if self.time_bin else "os.wait4 as child subreaper via sh"

    def peak_rss(self, argv: list[str]) -> int:
        if self.time_bin:
            return max(peak_rss_gnu_time(self.time_bin, argv, self.env, self.scratch)
                       for _ in range(self.rss_runs))
        return max(peak_rss_subreaper(argv, self.env) for _ in range(self.rss_runs))

    def measure(self, group: str, label: str, argv: list[str], rss: bool = True) -> Row:
        print(f"  {label}: {shlex.join(argv)}", file=sys.stderr, flush=True)
        if self.kind == "hyperfine":
            times = time_hyperfine(argv, self.runs, self.warmup, self.env, self.scratch)
        else:
            times = time_stdlib(argv, self.runs, self.warmup, self.env)
        return Row(group, label, argv, times, self.kind, self.peak_rss(argv) if rss else None)

    def measure_group(self, group: str, commands: list[tuple[str, list[str]]], rss: bool = True) -> list[Row]:
        """Every command of a group: one after the other, or interleaved (see `interleave`)."""
        if not self.interleave:
            return [self.measure(group, label, argv, rss) for label, argv in commands]
        for label, argv in commands:
            print(f"  {label}: {shlex.join(argv)} (interleaved)", file=sys.stderr, flush=True)
        times: list[list[float]] = [[] for _ in commands]
        for i in range(self.warmup + self.runs):
            for k in [*range(i % len(commands), len(commands)), *range(i % len(commands))]:
                elapsed = run_once(commands[k][1], self.env)
                if i >= self.warmup:
                    times[k].append(elapsed)
        return [Row(group, label, argv, t, "stdlib, interleaved", self.peak_rss(argv) if rss else None)
                for (label, argv), t in zip(commands, times)]


# ---------------------------------------------------------------------------------------------
# Setting up


def child_env(base: Path, pycache: bool) -> dict[str, str]:
    """The environment for measured commands. With `pycache`, Python may cache byte-code, in the
    workspace (PYTHONPYCACHEPREFIX), as an installed sandbox would; without it the caller's
    environment is kept as is (PYTHONDONTWRITEBYTECODE=1 makes every run compile sandbox anew)."""
    env = dict(os.environ)
    env.pop("SANDBOX_ROOT", None)
    if pycache:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(base / "pycache")
    return env


def build_image(sandbox: Path, sandbox_root: Path, env: dict[str, str]) -> Path:
    """Import busybox into a private store; return the image's root filesystem."""
    env = {**env, "SANDBOX_ROOT": str(sandbox_root)}
    subprocess.run([str(REPO / "rootfs" / "build-busybox.sh"), str(sandbox)], cwd=REPO, env=env,
                   check=True, stdout=subprocess.DEVNULL)
    from sandbox.images.store import ImageStore

    rootfs = ImageStore(sandbox_root / "lib" / "images").lookup(IMAGE_REF).rootfs
    if not (rootfs / "bin" / "true").exists():
        raise RuntimeError(f"no /bin/true in the imported image at {rootfs}")
    return rootfs


def make_bundle(bundle: Path, rootfs: Path, args: list[str]) -> None:
    """`runc spec`, then run `args` on the read-only rootfs without a terminal."""
    bundle.mkdir()
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    config_path = bundle / "config.json"
    config = json.loads(config_path.read_text())
    config["process"]["args"] = args
    config["process"]["terminal"] = False
    config["root"] = {"path": str(rootfs), "readonly": True}
    config_path.write_text(json.dumps(config, indent=2))


def prepare(sandbox: Path, stack: ExitStack, pycache: bool, cgroup_root: Path | None = None) -> Workspace:
    base = Path(tempfile.mkdtemp(prefix="pod-cycle-"))
    stack.callback(remove_workspace, base)
    env = child_env(base, pycache)
    # pod cgroups below a parent of the benchmark's own, checked empty and removed at the end;
    # `--cgroup-root` points sandbox at another hierarchy root (e.g. a cgroup2 mount: the v2 driver)
    env["SANDBOX_CGROUP_PARENT"] = CGROUP_PARENT
    if cgroup_root is not None:
        env["SANDBOX_CGROUP_ROOT"] = str(cgroup_root)
    stack.callback(remove_cgroup_parent)
    sandbox_root = base / "sandbox"
    runc_root = base / "runc"
    runc_root.mkdir()
    print(f"building busybox into {sandbox_root}", file=sys.stderr, flush=True)
    rootfs = build_image(sandbox, sandbox_root, env)
    ws = Workspace(base, sandbox_root, runc_root, rootfs, base / "cycle.yaml", base / "sleeper.yaml",
                   base / "bundle-true", base / "bundle-sleep", env)
    stack.callback(remove_runc_containers, ws)  # runs before remove_workspace
    ws.cycle_manifest.write_text(CYCLE_MANIFEST)
    ws.long_manifest.write_text(LONG_MANIFEST)
    make_bundle(ws.cycle_bundle, rootfs, ["/bin/true"])
    make_bundle(ws.long_bundle, rootfs, ["sleep", "3600"])
    return ws


# ---------------------------------------------------------------------------------------------
# Signals: any of these unwinds like Ctrl-C, but never in the middle of a clean-up

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def install_stop_handlers() -> None:
    def handler(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")
    for sig in STOP_SIGNALS:
        if signal.getsignal(sig) is not signal.SIG_IGN:  # a background job keeps SIGINT ignored
            signal.signal(sig, handler)


def finish(check: dict[str, Any], report: dict[str, Any], path: Path) -> int:
    """Every bench's end: say whether anything was left behind, write the JSON report; 0 only
    when the machine is as it was."""
    clean = not any(check.values())
    print(f"\nclean-up check: {'ok' if clean else check}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**report, "leftovers": check}, indent=2) + "\n")
    print(f"wrote {path}", file=sys.stderr)
    return 0 if clean else 1


def run_main(main: Callable[[], int], name: str) -> None:
    """`if __name__ == "__main__"` of every bench: a Ctrl-C or SIGTERM (turned into
    KeyboardInterrupt by install_stop_handlers) ends it with 130 after its clean-up ran."""
    try:
        sys.exit(main())
    except KeyboardInterrupt as stop:
        print(f"{name}: interrupted ({stop or 'Ctrl-C'}); cleaned up", file=sys.stderr)
        sys.exit(130)


def uninterruptible(cleanup: Callable[P, None]) -> Callable[P, None]:
    """Hold stop signals while `cleanup` runs, then deliver the first one."""
    @functools.wraps(cleanup)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        pending: list[signal.Signals] = []

        def hold(signum: int, _frame: object) -> None:
            pending.append(signal.Signals(signum))
        previous = {sig: signal.signal(sig, hold) for sig in STOP_SIGNALS}
        try:
            cleanup(*args, **kwargs)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if pending and previous[pending[0]] not in (signal.SIG_IGN, signal.SIG_DFL):
                signal.raise_signal(pending[0])
    return wrapper


# ---------------------------------------------------------------------------------------------
# Long-running pod and container


def wait_for_pod(state_file: Path, runtime: subprocess.Popen[bytes], timeout: float = 20) -> dict[str, Any]:
    """Poll the pod's state file until its container runs; return the state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if runtime.poll() is not None:
            raise RuntimeError(f"sandbox run exited {runtime.returncode} before the pod ran")
        try:
            state: dict[str, Any] = json.loads(state_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            state = {}
        process = (state.get("containers", {}).get(LONG_CONTAINER) or {}).get("process") or {}
        if process.get("pid") and state.get("status", {}).get("phase") == "Running":
            return state
        time.sleep(0.02)
    raise RuntimeError(f"pod {LONG_POD} not running after {timeout} s")


@contextmanager
def long_pod(sandbox: Path, ws: Workspace) -> Iterator[dict[str, Any]]:
    """Run the sleeper pod in the background for the duration; yield its state."""
    with open(ws.base / "sleeper.log", "wb") as log:
        runtime = subprocess.Popen([str(sandbox), "--root", str(ws.sandbox_root), "run", "-q",
                                    *ws.run_args, str(ws.long_manifest)], env=ws.env, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    ws.watched_pids["sandbox run (sleeper)"] = runtime.pid
    try:
        state = wait_for_pod(ws.sandbox_root / "run" / "pods" / f"default_{LONG_POD}" / "state.json", runtime)
        ws.watched_pids["pause"] = state["pause"]["pid"]
        ws.watched_pids["sleeper container"] = state["containers"][LONG_CONTAINER]["process"]["pid"]
        yield state
    finally:
        stop_long_pod(sandbox, ws, runtime)


@uninterruptible
def stop_long_pod(sandbox: Path, ws: Workspace, runtime: subprocess.Popen[bytes]) -> None:
    """`sandbox delete`; if the runtime is still there, SIGTERM it, then SIGKILL what it ran."""
    if runtime.poll() is None:
        subprocess.run([str(sandbox), "--root", str(ws.sandbox_root), "delete", "--timeout", "20", LONG_POD],
                       env=ws.env, stdout=subprocess.DEVNULL, check=False, start_new_session=True)
    try:
        runtime.wait(timeout=20)
        return
    except subprocess.TimeoutExpired:
        print("warning: sandbox run did not end after delete; sending SIGTERM", file=sys.stderr)
    runtime.terminate()
    try:
        runtime.wait(timeout=10)
    except subprocess.TimeoutExpired:
        runtime.kill()
        runtime.wait()
    for name in ("sleeper container", "pause"):
        kill_quietly(ws.watched_pids.get(name))


@contextmanager
def runc_container(ws: Workspace) -> Iterator[str]:
    """A detached runc `sleep 3600` container for the duration; yield its id."""
    cid = f"bench-sleep-{os.getpid()}"
    ws.runc_ids.append(cid)
    subprocess.run(["runc", "--root", str(ws.runc_root), "run", "-d", "-b", str(ws.long_bundle), cid],
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    try:
        yield cid
    finally:
        remove_runc_containers(ws)


@uninterruptible
def remove_runc_containers(ws: Workspace) -> None:
    listed = subprocess.run(["runc", "--root", str(ws.runc_root), "list", "-q"], capture_output=True,
                            text=True, check=False).stdout.split()
    for cid in dict.fromkeys([*ws.runc_ids, *listed]):
        for verb in (["kill", cid, "KILL"], ["delete", "-f", cid]):
            subprocess.run(["runc", "--root", str(ws.runc_root), *verb], capture_output=True, check=False,
                           start_new_session=True)
    crun_root = ws.base / "crun"
    if ws.crun_ids and shutil.which("crun"):
        listed = subprocess.run(["crun", "--root", str(crun_root), "list", "-q"], capture_output=True,
                                text=True, check=False).stdout.split()
        for cid in dict.fromkeys([*ws.crun_ids, *listed]):
            for verb in (["kill", cid, "KILL"], ["delete", "-f", cid]):
                subprocess.run(["crun", "--root", str(crun_root), *verb], capture_output=True, check=False,
                               start_new_session=True)


def crun_probe(ws: Workspace) -> str | None:
    """One `crun run` of the /bin/true bundle: None when crun runs here, else why not (crun's own
    words), so the report says it instead of failing."""
    if not shutil.which("crun"):
        return "crun not installed"
    cid = f"bench-crun-probe-{os.getpid()}"
    ws.crun_ids.append(cid)
    done = subprocess.run(["crun", "--root", str(ws.base / "crun"), "run", "-b", str(ws.cycle_bundle), cid],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    if done.returncode == 0:
        return None
    words = (done.stderr.strip() or done.stdout.strip()).splitlines()
    return f"`crun run` exits {done.returncode}: {words[-1] if words else 'no message'}"


@contextmanager
def crun_container(ws: Workspace) -> Iterator[str | None]:
    """A detached crun `sleep 3600` container when crun runs here (else None)."""
    if ws.crun_refusal is not None:
        yield None
        return
    cid = f"bench-crun-sleep-{os.getpid()}"
    ws.crun_ids.append(cid)
    subprocess.run(["crun", "--root", str(ws.base / "crun"), "run", "-d", "-b", str(ws.long_bundle), cid],
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    try:
        yield cid
    finally:
        remove_runc_containers(ws)


def kill_quietly(pid: int | None) -> None:
    if pid:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# ---------------------------------------------------------------------------------------------
# Clean-up and checks


def mounts_under(path: Path) -> list[str]:
    """Mount points in this mount namespace at or below path (octal escapes decoded)."""
    found = []
    prefix = str(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return found


@uninterruptible
def remove_workspace(base: Path) -> None:
    for point in reversed(mounts_under(base)):
        print(f"warning: unmounting leftover {point}", file=sys.stderr)
        subprocess.run(["umount", "-l", point], check=False)
    shutil.rmtree(base, ignore_errors=True)


CGROUP_PARENT = f"sandbox-bench-{os.getpid()}"


def pod_cgroups() -> list[str]:
    return sorted(str(p) for p in Path("/sys/fs/cgroup").glob(f"**/{CGROUP_PARENT}/*") if p.is_dir())


def remove_cgroup_parent() -> None:
    """The benchmark's parent cgroup in every hierarchy (empty once its pods ended)."""
    for parent in sorted(Path("/sys/fs/cgroup").glob(f"**/{CGROUP_PARENT}"), reverse=True):
        try:
            parent.rmdir()
        except OSError:
            pass


def leftovers(ws: Workspace) -> dict[str, object]:
    """What is still there after clean-up: processes we started, mounts, runc state, cgroups."""
    alive = {name: pid for name, pid in ws.watched_pids.items() if Path(f"/proc/{pid}").exists()
             and not is_zombie(pid)}
    cgroups = [str(p) for cid in ws.runc_ids for p in Path("/sys/fs/cgroup").glob(f"*/{cid}")]
    cgroups += [str(p) for cid in ws.runc_ids for p in Path("/sys/fs/cgroup").glob(cid)]
    cgroups += [str(p) for cid in ws.crun_ids for p in Path("/sys/fs/cgroup").glob(f"**/{cid}")]
    return {"processes": alive, "mounts": mounts_under(ws.base), "runc_cgroups": cgroups,
            "pod_cgroups": pod_cgroups(), "workspace_exists": ws.base.exists()}


def settled(look: Callable[[], dict[str, object]], timeout: float = 5.0) -> dict[str, object]:
    """`look()` once everything it lists is gone, or its last answer after `timeout` seconds: the
    last pod's bridge is removed by a detached process ~0.1-0.2 s after its runtime exits
    (sandbox/network/remover.py)."""
    deadline = time.monotonic() + timeout
    while True:
        found = look()
        if not any(found.values()) or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, IndexError):
        return True


# ---------------------------------------------------------------------------------------------
# Memory and start-up


def proc_status_kib(pid: int, *fields: str) -> dict[str, int]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in fields:
            values[key] = int(rest.split()[0])
    return values


@dataclass
class ImportProfile:
    """What `python -X importtime` says about one `sandbox run`."""

    total_ms: float  # sum of the top-level imports' cumulative times
    sandbox_self_ms: float  # module bodies of sandbox.* alone
    modules: int
    top_cumulative: list[tuple[str, float]]  # top-level imports, costliest first
    top_self: list[tuple[str, float]]  # any module, by its own body's time


def import_profile(python: Path, sandbox: Path, ws: Workspace, top: int = 12) -> ImportProfile:
    """`python -X importtime sandbox run` (the last of three, caches warm)."""
    argv = [str(python), "-X", "importtime", str(sandbox), "--root", str(ws.sandbox_root), "run", "-q",
            *ws.run_args, str(ws.cycle_manifest)]
    for _ in range(3):
        stderr = subprocess.run(argv, env=ws.env, capture_output=True, text=True, check=True).stderr
    modules: list[tuple[str, int, int]] = []  # (name indented by depth, self us, cumulative us)
    for line in stderr.splitlines():
        if line.startswith("import time:") and "self [us]" not in line:
            self_us, cumulative_us, name = line.removeprefix("import time:").split("|")
            modules.append((name.rstrip(), int(self_us), int(cumulative_us)))
    top_level = [m for m in modules if not m[0].startswith("  ")]
    return ImportProfile(
        total_ms=round(sum(m[2] for m in top_level) / 1000, 1),
        sandbox_self_ms=round(sum(m[1] for m in modules if m[0].strip().startswith("sandbox")) / 1000, 1),
        modules=len(modules),
        top_cumulative=[(n.strip(), round(c / 1000, 1))
                        for n, _, c in sorted(top_level, key=lambda m: -m[2])[:top]],
        top_self=[(n.strip(), round(us / 1000, 1))
                  for n, us, _ in sorted(modules, key=lambda m: -m[1])[:top]])


def startup_rows(timer: Timer, python: Path) -> list[Row]:
    """The interpreter alone, and importing what `sandbox run` imports before it does anything."""
    imports = ("import sandbox.cli; sandbox.cli.build_parser(); "
               "import sandbox.supervisor.run, sandbox.cli.common")
    return [timer.measure("startup", "python -c pass", [str(python), "-c", "pass"], rss=False),
            timer.measure("startup", "python -S -c pass", [str(python), "-S", "-c", "pass"], rss=False),
            timer.measure("startup", "python: import run path", [str(python), "-c", imports], rss=False)]


# ---------------------------------------------------------------------------------------------
# The benchmark


def cycle_rows(timer: Timer, sandbox: Path, ws: Workspace) -> list[Row]:
    runc_id = f"bench-true-{os.getpid()}"  # `runc run` in the foreground deletes it when it ends
    ws.runc_ids.append(runc_id)
    commands = [
        ("sandbox run", [str(sandbox), "--root", str(ws.sandbox_root), "run", "-q", *ws.run_args,
                         str(ws.cycle_manifest)]),
        ("unshare+chroot", ["unshare", "--fork", "--pid", "--net", "--ipc", "--uts", "--mount", "--mount-proc",
                            "chroot", str(ws.rootfs), "/bin/true"]),
        ("runc run", ["runc", "--root", str(ws.runc_root), "run", "-b", str(ws.cycle_bundle), runc_id]),
    ]
    if ws.crun_refusal is None:
        crun_id = f"bench-crun-true-{os.getpid()}"
        ws.crun_ids.append(crun_id)
        commands.append(("crun run", ["crun", "--root", str(ws.base / "crun"), "run", "-b", str(ws.cycle_bundle),
                                      crun_id]))
    return timer.measure_group("cycle", commands)


@dataclass
class Memory:
    """/proc/PID/status figures (KiB) while the sleeper pod runs."""

    pause: dict[str, int]
    supervisor: dict[str, int]  # the `sandbox run` process that keeps the pod


def exec_rows(timer: Timer, sandbox: Path, ws: Workspace) -> tuple[list[Row], Memory]:
    with long_pod(sandbox, ws) as state, runc_container(ws) as cid, crun_container(ws) as crun_cid:
        pause = proc_status_kib(state["pause"]["pid"], "VmRSS", "VmHWM", "RssAnon", "RssFile")
        supervisor = proc_status_kib(state["runtime"]["pid"], "VmRSS", "VmHWM")
        container_pid = state["containers"][LONG_CONTAINER]["process"]["pid"]
        commands = [
            ("sandbox exec", [str(sandbox), "--root", str(ws.sandbox_root), "exec", LONG_POD, "--", "true"]),
            ("nsenter -a", ["nsenter", "-a", "-t", str(container_pid), "true"]),
            ("runc exec", ["runc", "--root", str(ws.runc_root), "exec", cid, "true"]),
        ]
        if crun_cid is not None:
            commands.append(("crun exec", ["crun", "--root", str(ws.base / "crun"), "exec", crun_cid, "true"]))
        rows = timer.measure_group("exec", commands)
    return rows, Memory(pause, supervisor)


# Pod to Running in the foreground: a container that prints one line, then sleeps; timed from the
# spawn to that line on our pipe (the container runs: its first instruction is done), then stopped
# untimed. `sandbox run` streams the container's output through its supervisor; `runc run` hands
# the container our pipe. The two alternate run by run.
RUNNING_POD = "bench-running"
RUNNING_ARGS = ["sh", "-c", "echo ready; exec sleep 3600"]
RUNNING_MANIFEST = f"""\
apiVersion: v1
kind: Pod
metadata:
  name: {RUNNING_POD}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: busybox:1.36
    command: {json.dumps(RUNNING_ARGS)}
"""


def until_output(argv: list[str], env: dict[str, str], stop: list[str],
                 timeout: float = 30) -> tuple[float, subprocess.Popen[bytes]]:
    """Spawn argv; the ms until "ready" is on its stdout, and the still-running process (stopped with
    `stop` if "ready" does not come within `timeout`)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    assert proc.stdout is not None
    fd, seen = proc.stdout.fileno(), b""
    while b"ready" not in seen:
        left = timeout - (time.perf_counter() - start)
        chunk = os.read(fd, 4096) if left > 0 and select.select([fd], [], [], left)[0] else None
        if not chunk:  # end of output (the process ended) or no "ready" in time
            stop_foreground(proc, stop, env)
            raise RuntimeError(f"{shlex.join(argv)}: no \"ready\" within {timeout:.0f} s "
                               f"(exit {proc.returncode}; output {seen[-200:]!r})")
        seen += chunk
    return (time.perf_counter() - start) * 1000, proc


@uninterruptible
def stop_foreground(proc: subprocess.Popen[bytes], stop: list[str], env: dict[str, str]) -> None:
    """Stop a foreground pod or container with `stop` (delete, kill), then reap it."""
    if proc.poll() is None:
        subprocess.run(stop, env=env, capture_output=True, check=False, start_new_session=True)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout:
        proc.stdout.close()


def running_rows(timer: Timer, sandbox: Path, ws: Workspace) -> list[Row]:
    """`sandbox run` and `runc run` (and `crun run`) in the foreground until the container runs."""
    manifest = ws.base / "running.yaml"
    manifest.write_text(RUNNING_MANIFEST)
    bundle = ws.base / "bundle-ready"
    make_bundle(bundle, ws.rootfs, RUNNING_ARGS)
    root = ["--root", str(ws.sandbox_root)]
    peers = {"sandbox run, to Running": ([str(sandbox), *root, "run", *ws.run_args, str(manifest)],
                                         [str(sandbox), *root, "delete", "--timeout", "20", RUNNING_POD])}
    for runtime, state in (("runc", ws.runc_root), ("crun", ws.base / "crun")):
        if runtime == "crun" and ws.crun_refusal is not None:
            continue
        cid = f"bench-running-{runtime}-{os.getpid()}"
        (ws.runc_ids if runtime == "runc" else ws.crun_ids).append(cid)
        peers[f"{runtime} run, to Running"] = ([runtime, "--root", str(state), "run", "-b", str(bundle), cid],
                                               [runtime, "--root", str(state), "kill", cid, "KILL"])
    times: dict[str, list[float]] = {label: [] for label in peers}
    labels = list(peers)
    print(f"  to Running: {', '.join(labels)}", file=sys.stderr, flush=True)
    for i in range(timer.warmup + timer.runs):
        for label in labels[i % len(labels):] + labels[:i % len(labels)]:  # the order rotates
            start, stop = peers[label]
            elapsed, proc = until_output(start, ws.env, stop)
            stop_foreground(proc, stop, ws.env)
            if i >= timer.warmup:
                times[label].append(elapsed)
    return [Row("running", label, peers[label][0], times[label], "stdlib (to first output)") for label in labels]


REFERENCE = {"cycle": "runc run", "exec": "runc exec", "running": "runc run, to Running",
             "startup": "sandbox run"}


def add_ratios(rows: list[Row]) -> None:
    by_label = {row.label: row for row in rows}
    for row in rows:
        base = by_label.get(REFERENCE.get(row.group, ""))
        if base is not None:
            row.ratio = row.median_ms / base.median_ms


def target_verdicts(rows: list[Row], memory: Memory) -> list[str]:
    by_label = {row.label: row for row in rows}
    verdicts = []
    for mine, theirs in (("sandbox run", "runc run"), ("sandbox exec", "runc exec")):
        a, b = by_label[mine], by_label[theirs]
        ok = a.median_ms <= b.median_ms
        verdicts.append(f"{mine} {a.median_ms:.1f} ms vs {theirs} {b.median_ms:.1f} ms: "
                        f"{'met' if ok else 'MISSED'} ({a.median_ms / b.median_ms:.2f}x)")
    pause_rss = memory.pause["VmRSS"]
    verdicts.append(f"pause VmRSS {pause_rss} KiB: {'met' if pause_rss < 100 else 'MISSED'} (< 100 KiB)")
    return verdicts


def markdown(rows: list[Row], memory: Memory, profile: ImportProfile | None,
             verdicts: list[str]) -> str:
    lines = ["| command | median ms | min | max | runs | ratio | peak RSS KiB |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        ratio = "" if row.ratio is None else f"{row.ratio:.2f}x"
        rss = "" if row.peak_rss_kib is None else str(row.peak_rss_kib)
        lines.append(f"| {row.label} | {row.median_ms:.1f} | {min(row.times_ms):.1f} | "
                     f"{max(row.times_ms):.1f} | {len(row.times_ms)} | {ratio} | {rss} |")
    lines.append("")
    lines.append("Ratio: median over the median of `runc run` (cycle rows), `runc exec` (exec rows), "
                 "`runc run, to Running` (running rows), `sandbox run` (start-up rows).")
    pause, supervisor = memory.pause, memory.supervisor
    lines.append(f"pause: VmRSS {pause['VmRSS']} KiB, VmHWM {pause['VmHWM']} KiB "
                 f"(anon {pause['RssAnon']}, file {pause['RssFile']}); "
                 f"idle `sandbox run` supervisor: VmRSS {supervisor['VmRSS']} KiB")
    if profile:
        lines.append(f"`sandbox run` imports {profile.modules} modules in {profile.total_ms} ms "
                     f"(bodies of sandbox.* alone: {profile.sandbox_self_ms} ms). Costliest, cumulative ms: "
                     + ", ".join(f"{name} {ms}" for name, ms in profile.top_cumulative[:8])
                     + ". Own body ms: " + ", ".join(f"{name} {ms}" for name, ms in profile.top_self[:8]))
    lines.append("")
    lines.extend(f"- {v}" for v in verdicts)
    return "\n".join(lines)


def environment(timer: Timer) -> dict[str, object]:
    def version(argv: list[str]) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.splitlines()[0]
        except (OSError, IndexError):
            return "?"
    return {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "host": platform.node(),
            "kernel": platform.release(), "cpus": os.cpu_count(), "python": sys.version.split()[0],
            "timer": timer.kind, "runs": timer.runs, "warmup": timer.warmup, "peak_rss": timer.rss_method,
            "runc": version(["runc", "--version"]),
            "crun": version(["crun", "--version"]) if shutil.which("crun") else None,
            "hyperfine": version(["hyperfine", "--version"]) if shutil.which("hyperfine") else None,
            "commit": version(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=30, help="timed runs per command (default 30)")
    p.add_argument("--quick", action="store_true", help="10 runs, 1 warm-up, no import profile")
    p.add_argument("--timer", choices=("auto", "hyperfine", "stdlib"), default="auto")
    p.add_argument("--sandbox", type=Path, default=REPO / ".venv" / "bin" / "sandbox")
    p.add_argument("--python", type=Path, default=REPO / ".venv" / "bin" / "python",
                   help="interpreter for the start-up rows and the import profile")
    p.add_argument("--keep-env", action="store_true",
                   help="run Python as the environment says (by default byte-code is cached in the workspace "
                        "even under PYTHONDONTWRITEBYTECODE, as for an installed sandbox)")
    p.add_argument("--interleave", action="store_true",
                   help="time the run and exec commands in turns, run by run, with the stdlib timer "
                        "(ratios steadier on a drifting machine; bench/all.py uses it)")
    p.add_argument("--no-running", action="store_true",
                   help="leave out the foreground pod-to-Running rows (sandbox run / runc run until the container prints)")
    p.add_argument("--no-crun", action="store_true", help="leave crun out (timed when installed and it runs here)")
    p.add_argument("--json", type=Path, default=RESULTS, help=f"where to write results (default {RESULTS})")
    p.add_argument("--cgroup-root", type=Path,
                   help="where sandbox finds the cgroup hierarchies (SANDBOX_CGROUP_ROOT), e.g. "
                        "/sys/fs/cgroup/unified on a hybrid host to time the v2 driver")
    p.add_argument("--run-arg", action="append", default=[], metavar="ARG",
                   help="an extra argument for every `sandbox run` (repeatable), e.g. --run-arg=--pod-pids-limit=-1")
    return p.parse_args(argv)


def check_prerequisites(args: argparse.Namespace) -> None:
    if os.geteuid() != 0:
        sys.exit("pod_cycle: needs root (namespaces, mounts, runc)")
    missing = [tool for tool in ("runc", "unshare", "nsenter", "chroot") if not shutil.which(tool)]
    if not args.sandbox.exists():
        missing.append(str(args.sandbox))
    if missing:
        sys.exit(f"pod_cycle: missing {', '.join(missing)}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    check_prerequisites(args)
    install_stop_handlers()
    runs, warmup = (10, 1) if args.quick else (args.runs, max(2, args.runs // 10))
    kind = args.timer if args.timer != "auto" else ("hyperfine" if shutil.which("hyperfine") else "stdlib")
    sandbox = args.sandbox.absolute()
    with ExitStack() as stack:
        ws = prepare(sandbox, stack, pycache=not args.keep_env, cgroup_root=args.cgroup_root)
        ws.run_args = list(args.run_arg)
        ws.crun_refusal = "left out (--no-crun)" if args.no_crun else crun_probe(ws)
        timer = Timer(kind, runs, warmup, rss_runs=3, env=ws.env, scratch=ws.base, interleave=args.interleave)
        print(f"timing with {kind}: {runs} runs, {warmup} warm-up; peak RSS by {timer.rss_method}",
              file=sys.stderr, flush=True)
        rows = cycle_rows(timer, sandbox, ws)
        exec_part, memory = exec_rows(timer, sandbox, ws)
        if not args.no_running:
            exec_part += running_rows(timer, sandbox, ws)
        rows += exec_part
        rows += startup_rows(timer, args.python)
        profile = None if args.quick else import_profile(args.python, sandbox, ws)
    check = leftovers(ws)
    add_ratios(rows)
    verdicts = target_verdicts(rows, memory)
    print(markdown(rows, memory, profile, verdicts))
    if ws.crun_refusal is not None:
        print(f"crun: not timed: {ws.crun_refusal}")
    report = {"environment": {**environment(timer), "bytecode_cache": not args.keep_env},
              "rows": [row.summary() for row in rows], "memory_kib": asdict(memory),
              "import_profile": asdict(profile) if profile else None, "targets": TARGETS,
              "verdicts": verdicts, "skipped": {} if ws.crun_refusal is None else {"crun": ws.crun_refusal}}
    return finish(check, report, args.json)


if __name__ == "__main__":
    run_main(main, "pod_cycle")
