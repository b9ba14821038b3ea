"""Keep the kernel's cgroup attach lock warm while a pod starts, on hosts with v1 controllers.

Every write of a pid to a `cgroup.procs` takes the global `cgroup_threadgroup_rwsem` for writing.
While nobody has written for a while, taking it first waits out one RCU grace period (rcu_sync):
7-16 ms on this 2-core VM, once per pod start and per `exec` (runc pays it too). Within about one
grace period of the previous writer it costs ~0.05 ms. cgroup2 with CLONE_INTO_CGROUP never
writes `cgroup.procs` for a new process, so only v1 hierarchies need this.

The warmer is a thread that writes the runtime's own pid into the cgroup it already is in (a move
that moves nothing, so no process changes cgroup) every few milliseconds from the start of a
command until its processes are placed. The first write waits out the grace period in the
background, while the command imports its modules and plans the pod; the writes that follow keep
the lock's fast path open. Measured on the one-container pod cycle: the pause placement went from
10-15 ms to ~0.1 ms (see NOTES.md, issue 15).

Where it does not pay, it is not used: the writer holds cgroup_mutex while it waits, so any
cgroup mkdir behind it waits too. `sandbox exec` has ~5 ms of Python before its join, and the node
agent makes the pod's cgroups ~2 ms after a RunPod arrives: started there, the wait only moved
(A/B with bench/agent.py, 3 x 20 runs each: no gain measurable against the noise).

Nothing here is needed for correctness: without the permission to write, on a v2-only host, or
when the thread cannot start, placement simply pays the grace period as before.
"""

from __future__ import annotations

import os

# Writes every 3 ms: well inside one grace period (the fast path stays open for about one more
# grace period after a writer leaves), and a few dozen writes of ~50 us over a pod start.
INTERVAL = 0.003
# A warmer nobody stops (an error path) ends by itself: a pod start never takes this long.
LIFETIME = 2.0

_state = {"running": False, "stop": False}


def own_procs_file(proc_cgroup: str = "/proc/self/cgroup", root: str = "/sys/fs/cgroup") -> str | None:
    """The `cgroup.procs` of this process's cgroup in its first v1 controller hierarchy (named
    hierarchies such as name=systemd are their manager's), or None on a cgroup2-only host."""
    try:
        with open(proc_cgroup) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if not controllers or controllers.startswith("name="):
            continue
        for mount in (controllers, controllers.split(",")[0]):  # co-mounted: "cpu,cpuacct"
            candidate = f"{root}/{mount}{path.rstrip('/')}/cgroup.procs"
            if os.path.exists(candidate):
                return candidate
    return None


def start() -> bool:
    """Start warming; while a warmer runs, keep it running (a stop asked for is called off).
    True when a warmer runs."""
    if _state["running"]:
        _state["stop"] = False
        return True
    if os.geteuid() != 0 or os.environ.get("SANDBOX_CGROUP_ROOT"):
        return False  # SANDBOX_CGROUP_ROOT: a cgroup2 root of its own (CLONE_INTO_CGROUP)
    path = own_procs_file()
    if path is None:
        return False
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return False
    import _thread  # the C module: `threading` costs ~1 ms to import on the start path

    _state["running"], _state["stop"] = True, False
    try:
        _thread.start_new_thread(_warm, (fd, str(os.getpid()).encode()))
    except RuntimeError:
        _state["running"] = False
        os.close(fd)
    return _state["running"]


def stop() -> None:
    """Let the warmer end (it does within INTERVAL)."""
    _state["stop"] = True


def _warm(fd: int, pid: bytes) -> None:
    import time

    until = time.monotonic() + LIFETIME
    try:
        while not _state["stop"] and time.monotonic() < until:
            try:
                os.write(fd, pid)
            except OSError:
                return
            time.sleep(INTERVAL)
    finally:
        os.close(fd)
        _state["running"] = False
