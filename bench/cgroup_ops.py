#!/usr/bin/env python3
"""The pod cycle's cgroup work alone, in-process (issue 9's 3 ms budget, its explicit share): for
bench/pod_cycle.py's one-container pod, the steps `sandbox run` takes with the host's driver, each
timed with perf_counter, repeated and summarised by medians:

  plan       (first cycle only) the cgroup modules' imports, the layout's detection, the driver,
             the pod's values (`--cold`: as `sandbox run` pays it, from the byte-code bundle)
  create     the pod cgroup (and the pods' parent, gone since the last pod) with its limits
  pause      pause's child cgroup
  container  the container's child with its limits and device allow-list
  release    the instance's end: its OOM count read, kill check, its child removed
  undo       the tear-down registry's undo of the pod cgroup (every hierarchy), then the hand-over
             of the pods' parent to its remover (which removes it a grace after the last pod)

One parent for the whole run (pods back to back find it there, as `sandbox run`s within the
remover's grace do); `--fresh-parent` removes it before each cycle (an isolated pod: made anew).

The kernel's mkdir/rmdir are inside these figures; no process is placed in the cgroups (the
placement is stage 2's, timed by the pod cycle). Before/after a change: run it on each tree.

    .venv/bin/python -OO bench/cgroup_ops.py [--cycles 200 | --cold 60]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.pod_cycle import CYCLE_MANIFEST as MANIFEST  # noqa: E402  # the pod cycle's own pod

STEPS = ("plan", "create", "pause", "container", "release", "undo")


def cycles(n: int, warmup: int, parent: str, keep_parent: bool = False,
           fresh_parent: bool = False) -> dict[str, list[float]]:
    """`n` timed pod cycles' cgroup steps (ms) after `warmup` untimed ones; `plan` (the imports,
    the layout's detection, the driver, the pod's values) is timed once, first."""
    clock = time.perf_counter
    import _socket  # noqa: F401  (loaded early in `sandbox run`; the parent's hand-over binds one)

    from sandbox import native  # noqa: F401  (loaded before any cgroup work in `sandbox run`: the spawner's)
    from sandbox.spec.load import load_pod_text

    pod = load_pod_text(MANIFEST)
    t0 = clock()
    from sandbox.pod.cgroups import CgroupConfig, PodCgroups, plan

    checked = plan(pod, CgroupConfig(parent=parent))
    plan_ms = (clock() - t0) * 1000
    from sandbox.pod.cgroups import DEFAULT_DEVICES  # as the runtime passes it (service._create_cgroup)
    from sandbox.pod.teardown import kill_and_remove_cgroup

    driver, resources = checked.driver, checked.resources
    keeper = None
    if keep_parent:  # another pod's cgroup in the parent all along: the parent is neither made nor removed
        keeper = PodCgroups(driver, "keeper", lambda _: None)
        keeper.create(resources.pod)
    times: dict[str, list[float]] = {step: [] for step in STEPS}
    times["plan"].append(plan_ms)
    for i in range(n + warmup):
        if fresh_parent:
            remove_parent(driver, parent)
        records: list[Any] = []  # teardown records: here only Cgroup ones
        cgroups = PodCgroups(driver, f"pod-{i}", records.append)
        t0 = clock()
        cgroups.create(resources.pod)
        t1 = clock()
        cgroups.child("pause")
        t2 = clock()
        container = cgroups.child("c" * 64, resources.containers.get("main"), devices=DEFAULT_DEVICES)
        t3 = clock()
        cgroups.release(container)
        t4 = clock()
        for record in reversed(records):
            kill_and_remove_cgroup(record.path)
        t5 = clock()
        if i >= warmup:
            for step, value in zip(STEPS[1:], (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                times[step].append(value * 1000)
    if keeper is not None and keeper.pod is not None:
        for path in keeper.pod.dirs():
            kill_and_remove_cgroup(path)
    return times


def remove_parent(driver: Any, parent: str) -> list[str]:
    """The pods' parent removed at once where it is empty (as `sandbox gc` does); what is left."""
    from sandbox.cgroups import fs

    roots = [*driver.layout.hierarchies(), *([driver.layout.unified] if driver.layout.unified else [])]
    for root in roots:
        fs.remove_if_empty(root / parent)
    return [str(root / parent) for root in roots if (root / parent).exists()]


def check_left(parent: str) -> None:
    from sandbox.pod.cgroups import CgroupConfig, open_driver

    left = remove_parent(open_driver(CgroupConfig(parent=parent)), parent)
    if left:
        raise SystemExit(f"left behind: {left}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="the pod cycle's cgroup work, in-process")
    p.add_argument("--cycles", type=int, default=200, help="warm cycles in this process")
    p.add_argument("--cold", type=int, default=0, metavar="N",
                   help="instead: N fresh processes, one cycle each (what a `sandbox run` pays)")
    p.add_argument("--keep-parent", action="store_true",
                   help="another pod holds the pods' parent: what a pod costs while others run")
    p.add_argument("--fresh-parent", action="store_true",
                   help="remove the pods' parent before each cycle: an isolated pod makes it anew")
    p.add_argument("--child", metavar="PARENT", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("cgroup_ops: needs root")
    if args.child:
        from sandbox.codebundle import install

        install()  # as the `sandbox` launcher does: modules from the byte-code bundle
        print(json.dumps(cycles(1, 0, args.child, args.keep_parent, args.fresh_parent)))
        return 0
    parent = f"sandbox-ops-{os.getpid()}"
    if args.cold:
        times: dict[str, list[float]] = {step: [] for step in STEPS}
        child = [sys.executable, "-SOO", __file__, "--child", parent, *(["--keep-parent"] if args.keep_parent else []),
                 *(["--fresh-parent"] if args.fresh_parent else [])]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path[1:])}
        for _ in range(args.cold):
            done = subprocess.run(child, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                sys.exit(f"cgroup_ops: a cycle failed:\n{done.stderr[-2000:]}")
            out = json.loads(done.stdout)
            for step in STEPS:
                times[step] += out[step]
        label = f"{args.cold} fresh processes, one cycle each" + (", parent kept" if args.keep_parent else "")
    else:
        times = cycles(args.cycles, 5, parent, args.keep_parent, args.fresh_parent)
        times["plan"] = times["plan"] * args.cycles  # once per process: shown, not in the warm total
        label = f"{args.cycles} warm cycles"
    check_left(parent)
    if args.fresh_parent:
        label += ", the parent made anew each cycle"
    total = [sum(values) for values in zip(*(times[step] for step in STEPS if args.cold or step != "plan"))]
    print(label)
    print("| step | median ms | min |\n|---|---:|---:|")
    for step in STEPS:
        print(f"| {step} | {statistics.median(times[step]):.3f} | {min(times[step]):.3f} |")
    print(f"| total | {statistics.median(total):.3f} | {min(total):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
