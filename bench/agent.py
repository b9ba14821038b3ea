#!/usr/bin/env python3
"""Node agent benchmark: `sandbox run -d` to Running, 100 pods through the agent, runtime memory per pod;
podman beside it (issue 13's bench/ check).

What is measured, in one temporary sandbox root (its own busybox image; every pod one `sleep` container
from `busybox:1.36`, already in the store, so no registry is asked):

  latency    `sandbox run -d POD.yaml` with an agent already running: the CLI's wall time (N runs,
             distinct pod names), and the agent's own share: a RunPod request sent by a minimal client
             of sandbox/agent/protocol.py until its answer (nothing is added to the agent). Once with
             `--network none` and once with the bridge network (the bridge is the benchmark's own:
             `--bridge`, `--pod-cidr`); the bridge agent is started on demand by the first `run -d`,
             whose time (agent start included) is reported as the cold start.
  100 pods   100 sequential `run -d` calls, then (after deleting them) 100 more from 4 parallel callers:
             the total wall time of each batch (`--network none`).
  memory     at 20 and at 100 running pods: the PSS (/proc/PID/smaps_rollup) of the agent plus every
             runtime process of the pods, over the pod count. Runtime processes are the agent's
             descendants that are not workloads: pause (`comm` "pause") and anything else found
             (named in the report); workloads are the containers' processes the pod records name,
             and their descendants. Also the agent alone (RSS, PSS, anonymous/file) and its PSS
             growth per added pod from 20 to 100, and the agent's PSS after the pods were deleted.
  podman     when installed: `podman kube play --network none` of the same pod to Running (N runs,
             after one untimed run that builds podman's pause image), and conmon + catatonit PSS per pod
             at 20 pods. podman runs on its own storage in the workspace (`--root`, `--runroot`,
             `--tmpdir`), cgroupfs, file events; its pods are removed by name.

Everything lives in one temporary directory; whatever happens (Ctrl-C, SIGTERM, an error) the pods are
deleted, the agents stopped (SIGTERM: it stops every pod), podman's pods removed by name (with the pod
cgroups podman leaves on a hybrid host), stray mounts unmounted, the directory and cgroup parent
removed; then the benchmark checks that no process, mount, cgroup, link or network directory of its own
is left (exit 1 if one is). Results: a markdown table on stdout and bench/results/agent.json.

    sudo flock /tmp/sandbox-integ.lock .venv/bin/python bench/agent.py [--runs 30] [--pods 100]
        [--memory-at 20] [--no-podman] [--install-podman]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pod_cycle  # noqa: E402  (the workspace, image, timing and clean-up helpers: one copy of each)

REPO = pod_cycle.REPO
RESULTS = REPO / "bench" / "results" / "agent.json"
IMAGE = "busybox:1.36"
TARGETS = {"runtime PSS per pod at 100 pods": "< 0.5 MiB (agent included)",
           "run -d to Running, median": "< 30 ms, a tenth of `podman kube play` (293 ms in the issue)"}
BRIDGE = f"sbxb{os.getpid() % 100000}"  # the benchmark's own bridge: no other run's pods share it
POD_CIDR = "10.213.0.0/16"
NETWORKS_DIR = Path("/run/sandbox/networks")  # the bridge network's leases (network/ipam.py)
DELETERS = 16  # parallel `sandbox delete` callers at clean-up (each waits for its pod's end)


def pod_manifest(name: str) -> str:
    """One `sleep` container; grace 0: `sleep` as PID 1 ignores SIGTERM, a grace is waited out."""
    return (f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  restartPolicy: Never\n"
            f"  terminationGracePeriodSeconds: 0\n  containers:\n  - name: main\n    image: {IMAGE}\n"
            f"    command: [\"sleep\", \"3600\"]\n")


@dataclass
class Bench:
    """The workspace and what the benchmark started in it, for the runs and the clean-up."""

    sandbox: Path
    root: Path  # sandbox --root
    base: Path  # the temporary directory
    rootfs: Path  # the busybox image's tree (podman imports it)
    env: dict[str, str]
    agent_pids: list[int] = field(default_factory=list)  # every agent started, for the leftover check
    agents: dict[int, int] = field(default_factory=dict)  # pid -> pidfd of each agent not yet seen gone
    runtime_pids: set[int] = field(default_factory=set)  # pause and other runtime processes seen
    links_before: set[str] = field(default_factory=set)
    podman: Podman | None = None

    def sandbox_argv(self, *args: str) -> list[str]:
        return [str(self.sandbox), "--root", str(self.root), *args]

    def manifest(self, name: str) -> Path:
        path = self.base / "pods" / f"{name}.yaml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(pod_manifest(name))
        return path

    @property
    def socket(self) -> str:
        return str(self.root / "run" / "agent.sock")


# ---------------------------------------------------------------------------------------------
# The agent: started, asked, stopped


def agent_client() -> Any:
    from sandbox.agent.protocol import Client

    return Client


def agent_pid(bench: Bench) -> int | None:
    from sandbox.agent.protocol import AgentUnavailable

    try:
        client = agent_client().connect(bench.socket)
    except AgentUnavailable:
        return None
    try:
        return int(client.call("Version")["pid"])
    finally:
        client.close()


def start_agent(bench: Bench, node_args: list[str]) -> int:
    """`sandbox agent NODE_ARGS` in its own session (its log in the workspace); its pid once it answers."""
    log = bench.base / f"agent-{len(bench.agent_pids)}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(bench.sandbox_argv("agent", *node_args), env=bench.env, stdin=subprocess.DEVNULL,
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    track_agent(bench, process.pid)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sandbox agent exited {process.returncode} (see {log})")
        pid = agent_pid(bench)
        if pid is not None:
            return pid
        time.sleep(0.02)
    raise RuntimeError(f"sandbox agent did not answer within 20 s (see {log})")


def track_agent(bench: Bench, pid: int) -> None:
    """Hold a pidfd on an agent we started (directly or through `run -d`): stopped through it, never
    by a pid that may have been reused."""
    bench.agent_pids.append(pid)
    bench.agents[pid] = os.pidfd_open(pid)


@pod_cycle.uninterruptible
def stop_agent(bench: Bench, pid: int, timeout: float = 120) -> None:
    """SIGTERM (the agent stops every pod, then exits); SIGKILL after `timeout` (pods die by PDEATHSIG)."""
    pidfd = bench.agents.pop(pid, None)
    if pidfd is None:
        return
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGTERM)
        if not select.select([pidfd], [], [], timeout)[0]:
            print(f"warning: agent {pid} still there {timeout:g} s after SIGTERM; SIGKILL", file=sys.stderr)
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            select.select([pidfd], [], [], 10)
    except ProcessLookupError:
        pass  # already gone
    finally:
        os.close(pidfd)
    try:
        os.waitpid(pid, os.WNOHANG)  # our child when start_agent started it
    except ChildProcessError:
        pass


def pod_names(bench: Bench) -> list[str]:
    out = subprocess.run(bench.sandbox_argv("get", "pods", "-o", "name"), env=bench.env, capture_output=True,
                         text=True, check=False).stdout.split()
    return [name.rsplit("/", 1)[-1] for name in out]


def delete_pods(bench: Bench, names: list[str]) -> float:
    """`sandbox delete NAME` for each, DELETERS at a time; the wall time in ms."""
    start = time.perf_counter()
    delete_each(bench, names)
    return (time.perf_counter() - start) * 1000


@pod_cycle.uninterruptible
def delete_each(bench: Bench, names: list[str]) -> None:
    def delete(name: str) -> None:
        subprocess.run(bench.sandbox_argv("delete", "--timeout", "60", name), env=bench.env,
                       capture_output=True, check=False, start_new_session=True)

    with ThreadPoolExecutor(DELETERS) as pool:
        list(pool.map(delete, names))


# ---------------------------------------------------------------------------------------------
# Memory: /proc/PID/smaps_rollup of the agent and of its pods' runtime processes


def smaps_kib(pid: int) -> dict[str, int]:
    wanted = ("Rss", "Pss", "Pss_Anon", "Pss_File")
    values = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in wanted:
                values[key] = int(rest.split()[0])
    return values


def smaps_breakdown(pid: int) -> dict[str, int]:
    """PSS by kind of mapping (/proc/PID/smaps): the brk heap, anonymous mappings (pymalloc's 1 MiB
    arenas, glibc's per-thread malloc arenas, large buffers), shared objects and other files, stacks."""
    found = {"heap": 0, "anon": 0, "anon_mappings": 0, "so": 0, "other_file": 0, "stack": 0}
    kind = ""
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            first = line.split(maxsplit=6)
            if "-" in first[0] and len(first) >= 5 and ":" in first[3]:  # a mapping's header line
                name = first[5].strip() if len(first) > 5 else ""
                kind = ("heap" if name == "[heap]" else "stack" if name.startswith("[stack") else
                        "anon" if not name or name.startswith("[anon") else
                        "so" if ".so" in name else "other_file" if name.startswith("/") else "")
                if kind == "anon":
                    found["anon_mappings"] += 1
            elif first[0] == "Pss:" and kind:
                found[kind] += int(first[1])
    return found


def mapped_extensions(pid: int) -> list[str]:
    """The shared objects a process has mapped (extension modules show which imports it made)."""
    names = set()
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            path = line.split(maxsplit=5)[-1].strip()
            if ".so" in path:
                names.add(os.path.basename(path))
    return sorted(names)


def process_table() -> dict[int, tuple[int, str]]:
    """pid -> (ppid, comm) of every process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        table[int(entry)] = (int(stat[stat.rindex(")") + 2:].split()[1]), comm)
    return table


def descendants(table: dict[int, tuple[int, str]], root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def workload_pids(root: Path) -> set[int]:
    """The containers' processes, as the pod records name them."""
    pids = set()
    for state_file in (root / "run" / "pods").glob("*/state.json"):
        try:
            state = json.loads(state_file.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        for container in (state.get("containers") or {}).values():
            pid = ((container or {}).get("process") or {}).get("pid")
            if pid:
                pids.add(int(pid))
    return pids


@dataclass
class MemorySnapshot:
    """Runtime memory with `pods` pods running (KiB)."""

    when: str  # which batch: "sequential", "after churn"
    pods: int
    agent: dict[str, int]  # Rss, Pss, Pss_Anon, Pss_File of the agent process
    pause_count: int
    pause_pss: int  # sum over every pause
    others: list[tuple[int, str, int]]  # (pid, comm, PSS) of any other runtime process found
    workloads: int  # processes counted out as workloads
    agent_maps: dict[str, int] = field(default_factory=dict)  # the agent's PSS by mapping kind

    @property
    def total_pss(self) -> int:
        return self.agent["Pss"] + self.pause_pss + sum(pss for _, _, pss in self.others)

    @property
    def per_pod_kib(self) -> float:
        return self.total_pss / self.pods if self.pods else float("nan")

    def summary(self) -> dict[str, object]:
        return {**asdict(self), "total_pss_kib": self.total_pss, "per_pod_kib": round(self.per_pod_kib, 1)}


def detached_shims(table: dict[int, tuple[int, str]], base: Path) -> list[int]:
    """Per-pod parents (native/shim.c names itself sbx-shim) started for pods of this workspace: they
    fork away from the agent, so they are not its descendants; their command line names the pod's
    directory, which is under `base`."""
    found = []
    for pid, (_, comm) in table.items():
        if comm != "sbx-shim":
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if str(base).encode() in cmdline:
            found.append(pid)
    return found


def runtime_memory(bench: Bench, agent: int, pods: int, when: str) -> MemorySnapshot:
    table = process_table()
    workloads = workload_pids(bench.root)
    counted_out: set[int] = set()
    for pid in workloads:  # a workload's own children are workloads too
        if pid in table:
            counted_out |= {pid, *descendants(table, pid)}
    pause_pss, pause_count, others = 0, 0, []
    shims = detached_shims(table, bench.base)
    runtime = dict.fromkeys([*descendants(table, agent), *shims, *(d for s in shims for d in descendants(table, s))])
    for pid in runtime:
        if pid in counted_out:
            continue
        try:
            pss = smaps_kib(pid).get("Pss", 0)
        except OSError:
            continue  # gone, or a zombie (no mappings)
        bench.runtime_pids.add(pid)
        if table[pid][1] == "pause":
            pause_pss += pss
            pause_count += 1
        else:
            others.append((pid, table[pid][1], pss))
    return MemorySnapshot(when, pods, smaps_kib(agent), pause_count, pause_pss, others, len(counted_out),
                          smaps_breakdown(agent))


# ---------------------------------------------------------------------------------------------
# Timing


@dataclass
class Series:
    """Times of one kind of call, ms."""

    label: str
    times_ms: list[float]
    note: str = ""

    def summary(self) -> dict[str, object]:
        t = self.times_ms
        return {"label": self.label, "runs": len(t), "median_ms": round(statistics.median(t), 2),
                "times_ms": [round(x, 2) for x in t],
                "min_ms": round(min(t), 2), "max_ms": round(max(t), 2), "note": self.note}


def run_detached(bench: Bench, name: str, node_args: tuple[str, ...] = ()) -> float:
    return pod_cycle.run_once(bench.sandbox_argv("run", "-d", *node_args, str(bench.manifest(name))), bench.env)


def run_pod_direct(client: Any, path: Path) -> float:
    """RunPod over an open connection until its answer (a failure raises)."""
    start = time.perf_counter()
    answer = client.call("RunPod", path=str(path), namespace=None)
    elapsed = (time.perf_counter() - start) * 1000
    bad = [c for c in answer.get("containers") or [] if c.get("state") != "running"]
    if bad:
        raise RuntimeError(f"RunPod {path.name}: not running: {bad}")
    return elapsed


def latency(bench: Bench, network: str, runs: int, warmup: int) -> list[Series]:
    """CLI `run -d` and direct RunPod to Running, each on pods of its own name, all deleted after."""
    for i in range(warmup):
        run_detached(bench, f"{network}-warm-{i}")
    before = len(pod_names(bench))
    cli = [run_detached(bench, f"{network}-cli-{i:03d}") for i in range(runs)]
    client = agent_client().connect(bench.socket)
    try:
        direct = [run_pod_direct(client, bench.manifest(f"{network}-rpc-{i:03d}")) for i in range(runs)]
    finally:
        client.close()
    return [Series(f"sandbox run -d ({network})", cli, f"agent running with {before}..{before + runs - 1} pods"),
            Series(f"RunPod request ({network})", direct, f"the agent's share, one connection; "
                                                          f"{before + runs}..{before + 2 * runs - 1} pods")]


def start_batch(bench: Bench, prefix: str, count: int, parallel: int,
                on_count: Callable[[int], None] | None = None) -> float:
    """`run -d` of `count` new pods, `parallel` callers at a time; the wall time in ms (without the
    time `on_count`, called after each sequential start, takes)."""
    paths = [bench.manifest(f"{prefix}-{i:03d}") for i in range(count)]
    argvs = [bench.sandbox_argv("run", "-d", str(p)) for p in paths]
    if parallel > 1:
        start = time.perf_counter()
        with ThreadPoolExecutor(parallel) as pool:
            list(pool.map(lambda argv: pod_cycle.run_once(argv, bench.env), argvs))
        return (time.perf_counter() - start) * 1000
    total = 0.0
    for i, argv in enumerate(argvs, 1):
        total += pod_cycle.run_once(argv, bench.env)
        if on_count is not None:
            on_count(i)
    return total


# ---------------------------------------------------------------------------------------------
# The phases


@dataclass
class Results:
    series: list[Series] = field(default_factory=list)
    batches: list[tuple[str, int, float]] = field(default_factory=list)  # (label, pods, wall ms)
    memory: list[MemorySnapshot] = field(default_factory=list)
    agent_idle: dict[str, int] = field(default_factory=dict)  # the agent before its first pod
    agent_after_delete: dict[str, int] = field(default_factory=dict)
    agent_libraries: list[str] = field(default_factory=list)  # shared objects the agent mapped, at the end
    podman: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what the runs showed besides the figures
    readoption: dict[str, Any] = field(default_factory=dict)  # SIGKILL of the agent, a new one re-adopts


def settle_snapshot(bench: Bench, agent: int, pods: int, when: str, results: Results) -> None:
    time.sleep(1.0)  # the pods' last records and log opens are done; the figures stop moving
    snap = runtime_memory(bench, agent, pods, when)
    if snap.pause_count != pods:
        print(f"warning: {snap.pause_count} pause processes for {pods} pods", file=sys.stderr)
    results.memory.append(snap)
    print(f"  {pods} pods ({when}): {snap.per_pod_kib:.0f} KiB PSS per pod (agent {snap.agent['Pss']} KiB)",
          file=sys.stderr, flush=True)


def network_none_phase(bench: Bench, args: argparse.Namespace, results: Results) -> None:
    agent = start_agent(bench, ["--network", "none"])
    try:
        results.agent_idle = {**smaps_kib(agent), **{f"maps_{k}": v for k, v in smaps_breakdown(agent).items()}}
        print(f"{args.pods} pods, sequential `run -d` (memory at {args.memory_at} and {args.pods})", file=sys.stderr)
        marks = {args.memory_at, args.pods}
        wall = start_batch(bench, "seq", args.pods, 1,
                           lambda n: settle_snapshot(bench, agent, n, "sequential", results) if n in marks else None)
        results.batches.append(("run -d, sequential", args.pods, wall))
        agent = readopt(bench, agent, ["--network", "none"], args.pods, results)
        results.batches.append((f"sandbox delete, {DELETERS} callers", args.pods, delete_pods(bench, pod_names(bench))))
        time.sleep(1.0)
        results.agent_after_delete = {**smaps_kib(agent),
                                      **{f"maps_{k}": v for k, v in smaps_breakdown(agent).items()}}
        print(f"latency, --network none: {args.runs} runs", file=sys.stderr, flush=True)
        results.series += latency(bench, "none", args.runs, args.warmup)
        delete_pods(bench, pod_names(bench))
        print(f"{args.pods} pods from 4 parallel `run -d` callers", file=sys.stderr, flush=True)
        results.batches.append(("run -d, 4 parallel", args.pods, start_batch(bench, "par", args.pods, 4)))
        settle_snapshot(bench, agent, args.pods, f"4 parallel, after 2 x {args.pods} deleted", results)
        results.agent_libraries = mapped_extensions(agent)
        delete_pods(bench, pod_names(bench))
    finally:
        stop_agent(bench, agent)


def readopt(bench: Bench, agent: int, node_args: list[str], pods: int, results: Results) -> int:
    """SIGKILL the agent with `pods` running (they run on under their shims), start a new one and
    time it until it answers ListPods naming every pod Running (re-adoption happens before it
    listens); the containers must be the same processes."""
    before = workload_pids(bench.root)
    pidfd = bench.agents.pop(agent)
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        select.select([pidfd], [], [], 10)
    finally:
        os.close(pidfd)
    try:
        os.waitpid(agent, os.WNOHANG)
    except ChildProcessError:
        pass
    started = time.perf_counter()
    new = start_agent(bench, node_args)
    client = agent_client().connect(bench.socket)
    try:
        listed = client.call("ListPods")["pods"]
    finally:
        client.close()
    elapsed = (time.perf_counter() - started) * 1000
    running = sum(1 for p in listed if p["phase"] == "Running")
    same = workload_pids(bench.root) == before
    results.readoption = {"pods": pods, "ms": round(elapsed, 1), "running": running, "same_processes": same}
    print(f"  re-adoption of {pods} pods after SIGKILL of the agent: {elapsed:.0f} ms ({running} Running, "
          f"containers {'unchanged' if same else 'CHANGED'})", file=sys.stderr, flush=True)
    return new


def bridge_phase(bench: Bench, args: argparse.Namespace, results: Results) -> None:
    """An agent started on demand by `run -d` with the bridge options (the cold start), then latency."""
    print(f"latency, bridge {BRIDGE} ({POD_CIDR}): {args.runs} runs", file=sys.stderr, flush=True)
    node = ("--bridge", BRIDGE, "--pod-cidr", POD_CIDR)
    try:
        cold = run_detached(bench, "bridge-cold", node)
        agent = agent_pid(bench)
        if agent is None:
            raise RuntimeError("no agent answers after `run -d` started one")
        track_agent(bench, agent)
        results.series.append(Series("sandbox run -d (bridge), agent started", [cold],
                                     "no agent running: the CLI starts one, then the pod"))
        # The same node options again: a running agent started with them should take the pod.
        again = subprocess.run(bench.sandbox_argv("run", "-d", *node, str(bench.manifest("bridge-again"))),
                               env=bench.env, capture_output=True, text=True, check=False)
        if again.returncode != 0:
            results.notes.append(f"`run -d {' '.join(node)}` to the agent those options started: exit "
                                 f"{again.returncode}: {again.stderr.strip()[:300]}")
        results.series += latency(bench, "bridge", args.runs, args.warmup)
        delete_pods(bench, pod_names(bench))
    finally:
        for pid in list(bench.agents):
            stop_agent(bench, pid)
        wait_bridge_gone()


def wait_bridge_gone(timeout: float = 20) -> None:
    """The last pod's bridge is removed by a detached process (network/bridge.py): wait for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/sys/class/net/{BRIDGE}").exists() and not (NETWORKS_DIR / BRIDGE).exists():
            return
        time.sleep(0.1)


# ---------------------------------------------------------------------------------------------
# podman beside it


@dataclass
class Podman:
    """podman on storage of its own in the workspace; the pods it made, for the clean-up."""

    base: Path
    env: dict[str, str]
    pods: list[str] = field(default_factory=list)  # names
    pod_ids: set[str] = field(default_factory=set)
    conmon_pids: set[int] = field(default_factory=set)
    had_libpod_parent: bool = False

    def argv(self, *args: str) -> list[str]:
        return ["podman", "--root", str(self.base / "storage"), "--runroot", str(self.base / "run"),
                "--tmpdir", str(self.base / "tmp"), "--cgroup-manager", "cgroupfs", "--events-backend", "file",
                *args]

    def run(self, *args: str, stdin: bytes | None = None) -> str:
        done = subprocess.run(self.argv(*args), env=self.env, input=stdin, capture_output=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args)}: {done.stderr.decode(errors='replace').strip()}")
        return done.stdout.decode()


def podman_status(args: argparse.Namespace) -> str | None:
    """None when podman can run pods here, else why not."""
    if args.no_podman:
        return "skipped (--no-podman)"
    if not shutil.which("podman") and args.install_podman:
        try:
            subprocess.run([str(REPO / "rootfs" / "apt-ensure.sh"), "podman", "catatonit"], check=False, timeout=600)
        except subprocess.TimeoutExpired:
            return "podman not installed (apt-ensure.sh took over 10 min)"
    if not shutil.which("podman"):
        return "podman not installed"
    if not (shutil.which("catatonit") or Path("/usr/libexec/podman/catatonit").exists()):
        return "catatonit not installed (podman's pause image needs it)"
    return None


def setup_podman(bench: Bench, stack: ExitStack) -> Podman:
    base = bench.base / "podman"
    base.mkdir()
    # This VM withholds CAP_SYS_RESOURCE even from root: podman's default rlimits for root (nofile
    # 1048576, nproc at its maximum) fail in runc ("error setting rlimits"); lower ones need no capability.
    # runc as podman's OCI runtime: podman prefers crun when both are installed (`make bench` installs
    # crun as a peer), and crun 1.x refuses a hybrid cgroup host ("cgroups in hybrid mode not supported").
    conf = base / "containers.conf"
    conf.write_text('[containers]\ndefault_ulimits = ["nofile=16384:16384", "nproc=4096:4096"]\n'
                    '[engine]\nruntime = "runc"\n')
    env = {**bench.env, "CONTAINERS_CONF": str(conf)}
    podman = Podman(base, env, had_libpod_parent=bool(libpod_cgroups("")))
    bench.podman = podman
    stack.callback(remove_podman_pods, podman)
    tree = subprocess.run(["tar", "-C", str(bench.rootfs), "-c", "."], capture_output=True, check=True).stdout
    podman.run("import", "--change", "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin", "-", f"localhost/{IMAGE}", stdin=tree)
    return podman


def libpod_cgroups(pod_id: str) -> list[Path]:
    """podman's cgroupfs parent (pod_id "") or a pod's cgroups below it, in every hierarchy."""
    return [p for p in Path("/sys/fs/cgroup").glob(f"*/libpod_parent/{pod_id}".rstrip("/")) if p.is_dir()]


def kube_play(podman: Podman, name: str, path: Path) -> float:
    podman.pods.append(name)
    argv = podman.argv("kube", "play", "--network", "none", str(path))
    start = time.perf_counter()
    done = subprocess.run(argv, env=podman.env, capture_output=True, text=True, check=False)
    elapsed = (time.perf_counter() - start) * 1000
    if done.returncode != 0:
        raise RuntimeError(f"podman kube play {path.name}: {done.stderr.strip()}")
    lines = done.stdout.split()
    if "Pod:" in lines:
        podman.pod_ids.add(lines[lines.index("Pod:") + 1])
    return elapsed


def podman_memory(podman: Podman, pods: int) -> dict[str, Any]:
    """conmon (one per container, the infra one included) and catatonit (the infra's process) PSS."""
    ids = set(podman.run("ps", "-a", "--no-trunc", "--format", "{{.ID}}").split())
    table = process_table()
    conmons, catatonits, others = [], [], []
    for pid, (_, comm) in table.items():
        if comm != "conmon":
            continue
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"-c" in argv and argv[argv.index(b"-c") + 1].decode() in ids:
            conmons.append(pid)
    podman.conmon_pids |= set(conmons)
    for pid in conmons:
        for child in descendants(table, pid):
            if table[child][1] == "catatonit":
                catatonits.append(child)
            elif table[child][1] not in ("sleep",):
                others.append((child, table[child][1]))

    def pss(pids: list[int]) -> int:
        return sum(smaps_kib(p).get("Pss", 0) for p in pids)

    conmon_pss, catatonit_pss = pss(conmons), pss(catatonits)
    return {"pods": pods, "conmon_count": len(conmons), "conmon_pss_kib": conmon_pss,
            "catatonit_count": len(catatonits), "catatonit_pss_kib": catatonit_pss,
            "per_pod_kib": round((conmon_pss + catatonit_pss) / pods, 1), "other_children": others}


def podman_phase(bench: Bench, args: argparse.Namespace, results: Results, stack: ExitStack) -> None:
    podman = setup_podman(bench, stack)
    print(f"podman kube play: {args.runs} runs, then {args.memory_at} pods", file=sys.stderr, flush=True)
    kube_play(podman, "pm-warm", bench.manifest("pm-warm"))  # builds podman's pause image once
    times = [kube_play(podman, f"pm-{i:03d}", bench.manifest(f"pm-{i:03d}")) for i in range(args.runs)]
    results.series.append(Series("podman kube play (none)", times, f"to Running; 0..{args.runs - 1} pods running"))
    remove_podman_pods(podman)
    for i in range(args.memory_at):
        kube_play(podman, f"pmm-{i:03d}", bench.manifest(f"pmm-{i:03d}"))
    time.sleep(1.0)
    results.podman = podman_memory(podman, args.memory_at)
    remove_podman_pods(podman)


@pod_cycle.uninterruptible
def remove_podman_pods(podman: Podman) -> None:
    """Our pods by name, then the pod cgroups podman leaves behind (on a hybrid host its cgroupfs
    manager removes the v1 ones but not those in the named and unified hierarchies)."""
    if podman.pods:
        subprocess.run(podman.argv("pod", "rm", "-f", "-t", "0", "--ignore", *podman.pods), env=podman.env,
                       capture_output=True, check=False)
        podman.pods.clear()
    for pod_id in podman.pod_ids:
        for cgroup in libpod_cgroups(pod_id):
            for sub in sorted((p for p in cgroup.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)) + [cgroup]:
                try:
                    sub.rmdir()
                except OSError as e:
                    print(f"warning: podman cgroup {sub}: {e.strerror}", file=sys.stderr)
    if not podman.had_libpod_parent:
        for parent in libpod_cgroups(""):
            try:
                parent.rmdir()
            except OSError:
                pass


# ---------------------------------------------------------------------------------------------
# Report


def verdicts(results: Results, pods: int) -> list[str]:
    found = []
    at_max = [m for m in results.memory if m.pods == pods and m.when == "sequential"]
    if at_max:
        kib = at_max[0].per_pod_kib
        found.append(f"runtime PSS per pod at {pods} pods: {kib / 1024:.2f} MiB: "
                     f"{'met' if kib < 512 else 'MISSED'} (< 0.5 MiB)")
    by_label = {s.label: s for s in results.series}
    cli = by_label.get("sandbox run -d (none)")
    if cli is not None:
        median = statistics.median(cli.times_ms)
        found.append(f"run -d to Running, median {median:.1f} ms: {'met' if median < 30 else 'MISSED'} (< 30 ms)")
        play = by_label.get("podman kube play (none)")
        if play is not None:
            ratio = median / statistics.median(play.times_ms)
            # reported, not judged: issue 13's target is the 30 ms above, which it gives as a tenth
            # of podman's 293 ms when it was filed (podman itself takes ~180-250 ms here since)
            found.append(f"run -d / podman kube play: {ratio:.2f} (reported; the target is < 30 ms, a tenth of "
                         f"podman's 293 ms when the issue was filed)")
    return found


def markdown(results: Results, podman_skipped: str | None, found: list[str]) -> str:
    lines = ["| call | median ms | min | max | runs | note |", "|---|---:|---:|---:|---:|---|"]
    for s in results.series:
        t = s.times_ms
        lines.append(f"| {s.label} | {statistics.median(t):.1f} | {min(t):.1f} | {max(t):.1f} | {len(t)} | {s.note} |")
    if podman_skipped:
        lines.append(f"| podman kube play | | | | | {podman_skipped} |")
    lines += ["", "| batch | pods | wall s | per pod ms |", "|---|---:|---:|---:|"]
    for label, count, ms in results.batches:
        lines.append(f"| {label} | {count} | {ms / 1000:.2f} | {ms / count:.1f} |")
    lines += ["", "| runtime memory | pods | agent RSS KiB | agent PSS KiB | pause PSS KiB (n) | other KiB | "
                  "total PSS KiB | per pod KiB |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for m in results.memory:
        other = sum(p for _, _, p in m.others)
        lines.append(f"| sandbox agent + pause ({m.when}) | {m.pods} | {m.agent['Rss']} | {m.agent['Pss']} | "
                     f"{m.pause_pss} ({m.pause_count}) | {other} | {m.total_pss} | {m.per_pod_kib:.0f} |")
    if results.podman:
        p = results.podman
        lines.append(f"| podman conmon + catatonit | {p['pods']} | | | conmon {p['conmon_pss_kib']} ({p['conmon_count']}), "
                     f"catatonit {p['catatonit_pss_kib']} ({p['catatonit_count']}) | | "
                     f"{p['conmon_pss_kib'] + p['catatonit_pss_kib']} | {p['per_pod_kib']:.0f} |")
    elif podman_skipped:
        lines.append(f"| podman conmon + catatonit | | | | {podman_skipped} | | | |")
    lines.append("")
    lines += agent_lines(results)
    if results.readoption:
        r = results.readoption
        lines.append(f"Re-adoption after SIGKILL of the agent with {r['pods']} pods: {r['ms']:.0f} ms from the new "
                     f"agent's start to its ListPods answer ({r['running']} Running; the containers' processes "
                     f"{'unchanged' if r['same_processes'] else 'CHANGED'}).")
    lines += [f"Note: {n}" for n in results.notes]
    lines.append("")
    lines += [f"- {v}" for v in found]
    return "\n".join(lines)


def agent_lines(results: Results) -> list[str]:
    lines = []
    idle, after = results.agent_idle, results.agent_after_delete
    if idle:
        lines.append(f"Agent before its first pod: RSS {idle['Rss']} KiB, PSS {idle['Pss']} KiB "
                     f"(anon {idle['Pss_Anon']}, file {idle['Pss_File']}; heap {idle['maps_heap']}, "
                     f"anonymous mappings {idle['maps_anon']} in {idle['maps_anon_mappings']}).")
    seq = [m for m in results.memory if m.when == "sequential"]
    if len(seq) == 2 and seq[1].pods > seq[0].pods:
        a, b = seq
        growth = (b.agent["Pss"] - a.agent["Pss"]) / (b.pods - a.pods)
        anon = (b.agent["Pss_Anon"] - a.agent["Pss_Anon"]) / (b.pods - a.pods)
        lines.append(f"Agent PSS growth per added pod ({a.pods} to {b.pods}): {growth:.0f} KiB "
                     f"(anonymous {anon:.0f} KiB); pause {b.pause_pss / max(b.pause_count, 1):.0f} KiB each.")
        kinds = ", ".join(f"{k} {(b.agent_maps[k] - a.agent_maps[k]) / (b.pods - a.pods):.0f}"
                          for k in ("heap", "anon", "so", "other_file", "stack"))
        lines.append(f"Agent PSS by mapping at {b.pods} pods (KiB): "
                     + ", ".join(f"{k} {v}" for k, v in b.agent_maps.items())
                     + f"; growth per pod by mapping (KiB): {kinds}.")
    if after:
        lines.append(f"Agent once those pods were deleted: RSS {after['Rss']} KiB, PSS {after['Pss']} KiB "
                     f"(what it keeps; heap {after['maps_heap']}, anonymous mappings {after['maps_anon']} "
                     f"in {after['maps_anon_mappings']}).")
    others = {comm for m in results.memory for _, comm, _ in m.others}
    lines.append("Other runtime processes under the agent: " + (", ".join(sorted(others)) if others else "none") + ".")
    return lines


# ---------------------------------------------------------------------------------------------
# Setting up, clean-up, checks


def prepare(sandbox: Path, stack: ExitStack) -> Bench:
    base = Path(tempfile.mkdtemp(prefix="agent-bench-"))
    stack.callback(pod_cycle.remove_workspace, base)
    env = pod_cycle.child_env(base, pycache=True)
    env["SANDBOX_CGROUP_PARENT"] = pod_cycle.CGROUP_PARENT
    stack.callback(pod_cycle.remove_cgroup_parent)
    root = base / "sandbox"
    print(f"building busybox into {root}", file=sys.stderr, flush=True)
    rootfs = pod_cycle.build_image(sandbox, root, env)
    bench = Bench(sandbox, root, base, rootfs, env, links_before=set(os.listdir("/sys/class/net")))
    stack.callback(clean_up, bench)  # runs before remove_workspace and the cgroup parent's removal
    return bench


@pod_cycle.uninterruptible
def clean_up(bench: Bench) -> None:
    """Pods deleted through a running agent, the agent stopped, then any record left finished by
    `sandbox delete` (an agent gone takes its pods with it), the bridge waited out."""
    if bench.agents:
        delete_pods(bench, pod_names(bench))
    for pid in list(bench.agents):
        stop_agent(bench, pid, timeout=60)
    delete_pods(bench, pod_names(bench))
    wait_bridge_gone()


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and not pod_cycle.is_zombie(pid)


def leftovers(bench: Bench) -> dict[str, object]:
    podman = bench.podman
    return {"processes": sorted(p for p in {*bench.agent_pids, *bench.runtime_pids} if alive(p)),
            "podman_conmons": sorted(p for p in (podman.conmon_pids if podman else ()) if alive(p)),
            "podman_cgroups": [str(c) for i in (podman.pod_ids if podman else ()) for c in libpod_cgroups(i)],
            "links": sorted(set(os.listdir("/sys/class/net")) - bench.links_before),
            "network_dir": (NETWORKS_DIR / BRIDGE).exists(), "mounts": pod_cycle.mounts_under(bench.base),
            "pod_cgroups": pod_cycle.pod_cgroups(), "workspace_exists": bench.base.exists()}


def environment(args: argparse.Namespace) -> dict[str, object]:
    def version(argv: list[str]) -> str | None:
        if not shutil.which(argv[0]):
            return None
        out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip()
        return out.splitlines()[0] if out else None

    return {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "host": platform.node(),
            "kernel": platform.release(), "cpus": os.cpu_count(), "python": sys.version.split()[0],
            "commit": version(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
            "podman": version(["podman", "--version"]), "conmon": version(["conmon", "--version"]),
            "runs": args.runs, "pods": args.pods, "memory_at": args.memory_at}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=30, help="timed runs per latency series (default 30)")
    p.add_argument("--warmup", type=int, default=2, help="untimed `run -d` before each latency series (default 2)")
    p.add_argument("--pods", type=int, default=100, help="pods per batch; memory is measured there too (default 100)")
    p.add_argument("--memory-at", type=int, default=20, help="the first memory measurement (default 20 pods)")
    p.add_argument("--no-podman", action="store_true", help="leave podman out")
    p.add_argument("--no-bridge", action="store_true", help="leave the bridge latency out")
    p.add_argument("--install-podman", action="store_true",
                   help="when podman is missing, install it (and catatonit) once with rootfs/apt-ensure.sh")
    p.add_argument("--sandbox", type=Path, default=REPO / ".venv" / "bin" / "sandbox")
    p.add_argument("--json", type=Path, default=RESULTS, help=f"where to write results (default {RESULTS})")
    args = p.parse_args(argv)
    if args.runs < 1 or not 1 <= args.memory_at < args.pods:
        p.error("--runs must be >= 1 and 1 <= --memory-at < --pods")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("agent bench: needs root (pods)")
    if not args.sandbox.exists():
        sys.exit(f"agent bench: missing {args.sandbox}")
    pod_cycle.install_stop_handlers()
    results = Results()
    podman_skipped = podman_status(args)
    with ExitStack() as stack:
        bench = prepare(args.sandbox.absolute(), stack)
        network_none_phase(bench, args, results)
        if not args.no_bridge:
            bridge_phase(bench, args, results)
        if podman_skipped is None:
            podman_phase(bench, args, results, stack)
    check = pod_cycle.settled(lambda: leftovers(bench))
    found = verdicts(results, args.pods)
    print(markdown(results, podman_skipped, found))
    report = {"environment": environment(args), "series": [s.summary() for s in results.series],
              "batches": [{"batch": label, "pods": n, "wall_ms": round(ms, 1)} for label, n, ms in results.batches],
              "memory": [m.summary() for m in results.memory], "agent_idle_kib": results.agent_idle,
              "agent_after_delete_kib": results.agent_after_delete, "agent_libraries": results.agent_libraries,
              "podman": results.podman or podman_skipped, "notes": results.notes, "targets": TARGETS,
              "readoption": results.readoption,
              "verdicts": found}
    return pod_cycle.finish(check, report, args.json)


if __name__ == "__main__":
    pod_cycle.run_main(main, "agent bench")
