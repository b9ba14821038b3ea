"""Runs inside the test systemd's namespaces (systemd_ns.NamespacedSystemd.inside): drives the
systemd cgroup driver as `sandbox run` would, one step per line read from stdin, and answers one
JSON line per step on stdout, so the test checks each step's effect from the host in between.

Steps: "pod" (slice with limits, a pause-like and a container scope, each with a sleeping
process), "stop" (kill, remove every scope and the slice), "time N" (N pod cycles of slice + 2
scopes), "private" (systemd's private socket), "quit". Not a test module (no test_ prefix)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from typing import Any

from sandbox.cgroups.detect import detect
from sandbox.cgroups.devices import DEFAULT_RULES
from sandbox.cgroups.resources import CgroupLimits
from sandbox.cgroups.systemd import SystemdDriver

MI = 1 << 20
POD = CgroupLimits(cpu_shares=512, cpu_weight=20, cpu_quota=50_000, memory_limit=64 * MI, pids_max=100)
CTR = CgroupLimits(cpu_shares=256, cpu_weight=10, cpu_quota=20_000, memory_limit=32 * MI, pids_max=10)


def say(**values: object) -> None:
    print(json.dumps(values), flush=True)


def main() -> None:
    try:
        steps()
    finally:
        for p in SLEEPERS:
            if p.poll() is None:
                p.kill()
                p.wait()


SLEEPERS: list[subprocess.Popen[bytes]] = []


def steps() -> None:
    parent = sys.argv[1]
    layout = detect()
    drv = SystemdDriver(layout, parent)
    sleepers: list[subprocess.Popen[bytes]] = []
    made: list[Any] = []
    for line in sys.stdin:
        step = line.split()
        if not step:
            continue
        if step[0] == "pod":
            uid = str(uuid.uuid4())
            pod = drv.create_pod(uid)
            drv.apply(pod, POD)
            pause = drv.create_container(pod, "pause")
            ctr = drv.create_container(pod, "c" + uuid.uuid4().hex)
            drv.apply(ctr, CTR)
            drv.restrict_devices(ctr, DEFAULT_RULES)
            planned = all(not os.path.exists(p) for p in ctr.paths.values())
            for cg in (pause, ctr):
                p = sleeper()
                sleepers.append(p)
                drv.add_process(cg, p.pid)
            made = [ctr, pause, pod]
            say(pod={k: str(v) for k, v in pod.paths.items()}, ctr={k: str(v) for k, v in ctr.paths.items()},
                units=[drv.unit(c) for c in made], planned_before_start=planned,
                procs=drv.procs(ctr), pids=[p.pid for p in sleepers])
        elif step[0] == "stop":
            for cg in made[:-1]:
                drv.kill(cg)
                drv.remove(cg)
            drv.remove(made[-1])
            for p in sleepers:
                p.wait()
            bus = drv.bus()
            say(states=[bus.unit_state(drv.unit(c)) for c in made],
                left=[str(p) for c in made for p in c.dirs() if p.exists()])
            sleepers, made = [], []
        elif step[0] == "time":
            say(systemd=cycle(drv, int(step[1])))
        elif step[0] == "private":  # systemd's own socket, peer to peer (no bus daemon in between)
            from sandbox.cgroups.systemd import SystemdBus

            bus = SystemdBus("unix:path=/run/systemd/private")
            say(private=bus.private, state=bus.unit_state("dbus.service"))
            bus.close()
        elif step[0] == "quit":
            break
    drv.close()


def sleeper() -> subprocess.Popen[bytes]:
    # no inherited stdout: an orphan holding the answer pipe would hang the test's readline
    p = subprocess.Popen(["sleep", "300"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    SLEEPERS.append(p)
    return p


def cycle(drv: Any, n: int) -> list[float]:
    """ms per pod: create slice/pod cgroup + 2 children with a process each, then remove all
    (the cgroupfs figure is taken by the test on the host: cgroupfs directories made beside a
    running systemd are not safe from it)."""
    out = []
    for _ in range(n):
        procs = [sleeper() for _ in range(2)]
        t0 = time.perf_counter()
        pod = drv.create_pod(str(uuid.uuid4()))
        kids = [drv.create_container(pod, name) for name in ("pause", "c1")]
        for cg, p in zip(kids, procs):
            drv.add_process(cg, p.pid)
        for cg in kids:
            drv.kill(cg)
            drv.remove(cg)
        drv.remove(pod)
        out.append((time.perf_counter() - t0) * 1000)
        for p in procs:
            p.wait()
    return out


if __name__ == "__main__":
    main()
