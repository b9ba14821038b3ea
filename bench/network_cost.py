#!/usr/bin/env python3
"""What the pod network adds to the pod cycle: `sandbox run -q` of bench/pod_cycle.py's one-container
/bin/true pod with `--network none`, with the built-in bridge (lease, bridge made and removed, veth,
address, route, tear-down), and with the bridge plus one hostPort (nftables table and elements).

The variants run interleaved, their order rotating every round, so the drift of this VM's medians
(20-30 ms over minutes) falls on all of them alike; the figure that matters is each variant's median
minus the `none` median (the issue's budget: at most 5 ms for the bridge). Next to it, `paired`:
the median of each run minus the `none` run of the same round and position, which cancels the
drift between rounds (a loaded 2-core VM moves whole rounds by 20-40 ms); both are printed, the
budget is judged on the first. Workspace, image, cgroup parent and clean-up are
bench/pod_cycle.py's.

`--compare SANDBOX` times a second `sandbox` executable (e.g. a launcher over a copy of the tree
before a change) in the same rounds: every variant runs once per round with each executable, old
and new alternating, so an A/B comparison sees the same drift. The second one's pods use a bridge
of their own (COMPARE_BRIDGE): on one bridge, a remover one executable spawned would serve the
other's pods too (a release finds it pending and spawns none).

`bridge made` counts the timed runs that found no bridge at their start (or another one at their
end): the runs that made the bridge, which the remover's grace is meant to spare.

    .venv/bin/python bench/network_cost.py [--rounds 40] [--gap SECONDS] [--cgroup-root DIR]
        [--compare SANDBOX] [--block N] [--only VARIANT ...]
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

RESULTS = pod_cycle.REPO / "bench" / "results" / "network_cost.json"
BRIDGE = "sandbox0"
COMPARE_BRIDGE = ("sbcompare0", "10.90.0.0/16")  # --compare's pods: a bridge and subnet of their own
HOST_PORT_MANIFEST = """
apiVersion: v1
kind: Pod
metadata: {name: bench-hostport}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox:1.36
    command: ["/bin/true"]
    ports: [{containerPort: 80, hostPort: 18999}]
"""


def run_timed(argv: list[str], env: dict[str, str], errors: Path) -> float:
    """One `sandbox run`, wall time in ms (spawn to reap); its stderr kept for a failure's report."""
    with open(errors, "wb") as err:
        start = time.perf_counter()
        code = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=err).returncode
        elapsed = (time.perf_counter() - start) * 1000
    if code != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {code}: {errors.read_text()[-2000:]}")
    return elapsed


def remove_kept_bridge(sandboxes: list[Path], ws: pod_cycle.Workspace) -> None:
    """The `bridge, kept` variant's bridges: one last pod of each executable without --keep-bridge
    takes its bridge along (a --compare launcher may use a bridge of its own); then the removers'
    work is waited for (the leak check reads the links)."""
    networks = Path("/run/sandbox/networks")
    before = set(os.listdir(networks)) if networks.is_dir() else set()
    for sandbox, bridge in zip(sandboxes, ([], ["--bridge", COMPARE_BRIDGE[0], "--pod-cidr", COMPARE_BRIDGE[1]])):
        run_timed([str(sandbox), "--root", str(ws.sandbox_root), "run", "-q", *bridge, str(ws.cycle_manifest)],
                  ws.env, ws.base / "stderr")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(Path("/sys/class/net", name).exists() or (networks / name).exists()
                                              for name in before | {BRIDGE, COMPARE_BRIDGE[0]}):
        time.sleep(0.01)


def bridge_index(name: str) -> int:
    """The bridge's link index, 0 without one (a diagnostic: which runs had to make the bridge)."""
    import socket

    try:
        return socket.if_nametoindex(name)
    except OSError:
        return 0


def added(medians: dict[str, float], name: str) -> float:
    """A variant's median minus the `none` median of the same executable (nan without one)."""
    none = "none (old)" if name.endswith(" (old)") else "none"
    return medians[name] - medians[none] if none in medians else float("nan")


def paired(times: dict[str, list[float]], name: str) -> float:
    """The median of a variant's runs minus the `none` run of the same round and position."""
    none = times.get("none (old)" if name.endswith(" (old)") else "none")
    if not none or not times[name]:
        return float("nan")
    return statistics.median(a - b for a, b in zip(times[name], none))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--sandbox", type=Path, default=pod_cycle.REPO / ".venv" / "bin" / "sandbox")
    p.add_argument("--cgroup-root", type=Path)
    p.add_argument("--json", type=Path, default=RESULTS)
    p.add_argument("--gap", type=float, default=0.0, metavar="SECONDS",
                   help="untimed pause between runs (0: back to back, where a run may wait for the lock the "
                        "previous pod's detached bridge removal holds)")
    p.add_argument("--compare", type=Path, metavar="SANDBOX",
                   help="a second sandbox executable, timed in the same rounds (its variants marked 'old')")
    p.add_argument("--block", type=int, default=1, metavar="N",
                   help="run each variant N times in a row per round, timing all but the first: what a pod "
                        "leaves behind (a bridge's removal, a namespace's clean-up in the kernel) then lands "
                        "on the same variant, not on whichever runs next")
    p.add_argument("--only", action="append", choices=("none", "bridge", "bridge+hostPort", "bridge, kept"),
                   help="time only these variants (repeatable)")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("network_cost: needs root")
    pod_cycle.install_stop_handlers()
    with ExitStack() as stack:
        ws = pod_cycle.prepare(args.sandbox, stack, pycache=True, cgroup_root=args.cgroup_root)
        host_port = ws.base / "hostport.yaml"
        host_port.write_text(HOST_PORT_MANIFEST)
        variants: dict[str, list[str]] = {}
        bridge_of: dict[str, str] = {}
        for binary, mark, bridge in ((args.sandbox, "", []), (args.compare, " (old)", ["--bridge", COMPARE_BRIDGE[0],
                                                                                     "--pod-cidr", COMPARE_BRIDGE[1]])):
            if binary is None:
                continue
            base = [str(binary), "--root", str(ws.sandbox_root), "run", "-q", *bridge]
            chosen = {
                "none": [*base, "--network", "none", str(ws.cycle_manifest)],
                "bridge": [*base, str(ws.cycle_manifest)],
                "bridge+hostPort": [*base, str(host_port)],
                # the steady state while other pods use the bridge: no bridge made or removed per pod
                "bridge, kept": [*base, "--keep-bridge", str(ws.cycle_manifest)],
            }
            variants.update({name + mark: cmd for name, cmd in chosen.items() if not args.only or name in args.only})
            bridge_of.update({name + mark: bridge[1] if bridge else BRIDGE for name in chosen})
        names = list(variants)
        times: dict[str, list[float]] = {name: [] for name in names}
        # timed runs that found no bridge at their start (they made it), or found another one at
        # their end than at their start (removed and made again meanwhile)
        made: dict[str, int] = dict.fromkeys(names, 0)
        uses_bridge = {name: not name.startswith("none") for name in names}
        for name in names:  # warm-up: byte-code caches, page cache
            run_timed(variants[name], ws.env, ws.base / "stderr")
        for round_ in range(args.rounds):
            order = names[round_ % len(names):] + names[:round_ % len(names)]
            for name in order:
                for run in range(args.block):
                    before = bridge_index(bridge_of[name])
                    elapsed = run_timed(variants[name], ws.env, ws.base / "stderr")
                    if run or args.block == 1:
                        times[name].append(elapsed)
                        made[name] += uses_bridge[name] and (not before or bridge_index(bridge_of[name]) not in (before, 0))
                    time.sleep(args.gap)
        remove_kept_bridge([b for b in (args.sandbox, args.compare) if b is not None], ws)
    left = pod_cycle.leftovers(ws)  # after the ExitStack's clean-up, as pod_cycle.py checks
    medians = {name: statistics.median(values) for name, values in times.items()}
    print("| variant | median ms | p10 | p90 | added vs none | paired | bridge made |\n"
          "|---|---:|---:|---:|---:|---:|---:|")
    for name in names:
        values = sorted(times[name])
        p10, p90 = values[len(values) // 10], values[(len(values) * 9) // 10]
        print(f"| {name} | {medians[name]:.1f} | {p10:.1f} | {p90:.1f} | {added(medians, name):+.1f} "
              f"| {paired(times, name):+.1f} | {f'{made[name]}/{len(times[name])}' if uses_bridge[name] else '-'} |")
    if "bridge" in medians and "none" in medians:
        cost = added(medians, "bridge")
        print(f"bridge network adds {cost:.1f} ms to the pod cycle median (target <= 5 ms): "
              f"{'met' if cost <= 5 else 'missed'}")
    result = {"rounds": args.rounds, "gap_s": args.gap, "block": args.block, "medians_ms": medians,
              "added_ms": {n: added(medians, n) for n in names}, "paired_ms": {n: paired(times, n) for n in names},
              "samples_ms": times, "bridge_made": made,
              "leftovers": left}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({"medians_ms": medians, "leftovers": left}))
    return 0 if not any(left.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
