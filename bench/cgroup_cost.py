#!/usr/bin/env python3
"""What the pod cgroups add to the pod cycle (issue 9: at most 3 ms of the median): bench/pod_cycle.py's
one-container /bin/true pod, `sandbox run -q --network none`, timed with this tree's `sandbox` and
with `--compare SANDBOX`, a build without cgroups (a worktree whose `sandbox run` passes
cgroups=None; never merged), interleaved: each round runs both, the order alternating, so the
drift of this VM (whole rounds move by 20-40 ms while other pods run) falls on both alike.

Printed: each executable's median, min, p10 and p90, the difference of the medians (the budget's
figure) and `paired`, the median of each round's difference (cancels the drift between rounds);
the same for the CPU time (user + system of the run and what it reaped), steadier under load.
`--strace DIR` also writes one `strace -f -T` of each executable's cycle there (the syscalls
on /sys/fs/cgroup and their kernel time, for the in-process split). Workspace, image, cgroup
parent and the leak check are bench/pod_cycle.py's.

    .venv/bin/python bench/cgroup_cost.py --compare /work/wt9-base/.venv/bin/sandbox [--rounds 80]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pod_cycle  # noqa: E402  (the workspace, image and clean-up helpers)

RESULTS = pod_cycle.REPO / "bench" / "results" / "cgroup_cost.json"


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"median": statistics.median(ordered), "min": ordered[0], "p10": ordered[len(ordered) // 10],
            "p90": ordered[(len(ordered) * 9) // 10]}


def run_timed(argv: list[str], env: dict[str, str], errors: Path) -> tuple[float, float]:
    """One `sandbox run`: (wall ms from spawn to reap, CPU ms of it and the children it reaped:
    user + system, from wait4's rusage; less swayed by the other work on this VM than the wall
    time, blind to the kernel's deferred work such as a removed cgroup's offlining)."""
    with open(errors, "wb") as err:
        start = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, env, file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
            (os.POSIX_SPAWN_DUP2, err.fileno(), 2)])
        _, status, usage = os.wait4(pid, 0)
        elapsed = (time.perf_counter() - start) * 1000
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {os.waitstatus_to_exitcode(status)}: "
                           f"{errors.read_text()[-2000:]}")
    return elapsed, (usage.ru_utime + usage.ru_stime) * 1000


def trace(argv: list[str], env: dict[str, str], out: Path) -> None:
    subprocess.run(["strace", "-f", "-T", "-o", str(out), *argv], env=env, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)


def remove_parents(parents: list[str]) -> None:
    """Each build's parent cgroup, removed at once where empty (as `sandbox gc` does; a pending
    remover then finds it gone); one with a pod left stays, and is reported."""
    for parent in parents:
        for path in sorted(Path("/sys/fs/cgroup").glob(f"*/{parent}")):
            try:
                path.rmdir()
            except OSError:
                pass


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=80)
    p.add_argument("--sandbox", type=Path, default=pod_cycle.REPO / ".venv" / "bin" / "sandbox")
    p.add_argument("--compare", type=Path, required=True, metavar="SANDBOX",
                   help="the build without cgroups, timed in the same rounds")
    p.add_argument("--also", type=Path, action="append", default=[], metavar="SANDBOX",
                   help="another build with cgroups (e.g. the one before a change), in the same rounds")
    p.add_argument("--json", type=Path, default=RESULTS)
    p.add_argument("--strace", type=Path, metavar="DIR", help="also write one strace of each executable's cycle")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("cgroup_cost: needs root")
    pod_cycle.install_stop_handlers()
    names: tuple[str, ...] = ("cgroups", "without", *(f"also{i + 1}" for i in range(len(args.also))))
    binaries = (args.sandbox, args.compare, *args.also)
    times: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    with ExitStack() as stack:
        ws = pod_cycle.prepare(args.sandbox, stack, pycache=True)
        cmds = {name: [str(binary), "--root", str(ws.sandbox_root), "run", "-q", "--network", "none",
                       str(ws.cycle_manifest)] for name, binary in zip(names, binaries)}
        # a parent cgroup per build: a build that keeps the pods' parent between pods (its remover
        # takes it a grace later) must not find it removed by the other build's last pod each round
        envs = {name: {**ws.env, "SANDBOX_CGROUP_PARENT": f"{pod_cycle.CGROUP_PARENT}-{name}"} for name in names}
        stack.callback(remove_parents, [env["SANDBOX_CGROUP_PARENT"] for env in envs.values()])
        for name in names:  # warm-up: byte-code caches, page cache
            run_timed(cmds[name], envs[name], ws.base / "stderr")
        for round_ in range(args.rounds):
            shift = round_ % len(names)  # each build in each position alike
            order = names[shift:] + names[:shift]
            for name in (order if round_ % 2 == 0 else order[::-1]):
                wall, cpu_ms = run_timed(cmds[name], envs[name], ws.base / "stderr")
                times[name].append(wall)
                cpu[name].append(cpu_ms)
        if args.strace is not None:
            args.strace.mkdir(parents=True, exist_ok=True)
            for name in names:
                trace(cmds[name], envs[name], args.strace / f"{name}.strace")
    left = pod_cycle.leftovers(ws)
    left["pod_cgroups"] = sorted(str(p) for name in names
                                 for p in Path("/sys/fs/cgroup").glob(f"*/{pod_cycle.CGROUP_PARENT}-{name}*"))
    stats = {name: summary(times[name]) for name in names}
    paired = statistics.median(a - b for a, b in zip(times["cgroups"], times["without"]))
    print(f"{args.rounds} interleaved rounds\n| build | median ms | min | p10 | p90 |\n|---|---:|---:|---:|---:|")
    for name in names:
        s = stats[name]
        print(f"| {name} | {s['median']:.1f} | {s['min']:.1f} | {s['p10']:.1f} | {s['p90']:.1f} |")
    cpu_stats = {name: summary(cpu[name]) for name in names}
    cpu_paired = statistics.median(a - b for a, b in zip(cpu["cgroups"], cpu["without"]))
    for name in names:
        s = cpu_stats[name]
        print(f"| {name}, CPU | {s['median']:.1f} | {s['min']:.1f} | {s['p10']:.1f} | {s['p90']:.1f} |")
    added = stats["cgroups"]["median"] - stats["without"]["median"]
    print(f"cgroups add {added:+.1f} ms to the median (paired {paired:+.1f}, min {stats['cgroups']['min'] - stats['without']['min']:+.1f}); "
          f"target <= 3 ms: {'met' if added <= 3 else 'missed'}")
    print(f"CPU time: {cpu_stats['cgroups']['median'] - cpu_stats['without']['median']:+.1f} ms (paired {cpu_paired:+.1f})")
    for name, binary in zip(names[2:], args.also):
        also = statistics.median(a - b for a, b in zip(times[name], times["without"]))
        mine = statistics.median(a - b for a, b in zip(times["cgroups"], times[name]))
        print(f"{name} ({binary}): adds {stats[name]['median'] - stats['without']['median']:+.1f} ms to the median "
              f"(paired {also:+.1f}, min {stats[name]['min'] - stats['without']['min']:+.1f}, CPU "
              f"{cpu_stats[name]['median'] - cpu_stats['without']['median']:+.1f}); cgroups against it: "
              f"{stats['cgroups']['median'] - stats[name]['median']:+.1f} (paired {mine:+.1f}, "
              f"min {stats['cgroups']['min'] - stats[name]['min']:+.1f})")
    result = {"rounds": args.rounds, "stats_ms": stats, "added_ms": added, "paired_ms": paired,
              "cpu_stats_ms": cpu_stats, "cpu_paired_ms": cpu_paired, "samples_ms": times, "cpu_samples_ms": cpu,
              "leftovers": left}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({"leftovers": left}))
    return 0 if not any(left.values()) else 1


if __name__ == "__main__":
    pod_cycle.run_main(main, "cgroup_cost")
