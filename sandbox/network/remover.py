"""The last pod's network (bridge, hostPort table, directory), removed by a process of its own so
that no runtime waits for it.

Why not in the runtime: unregistering a bridge waits for RCU twice, 31-55 ms here (sampled in
/proc/PID/stack of a bridge's RTM_DELLINK: synchronize_rcu_expedited, then br_multicast_dev_del's
rcu_barrier under the RTNL lock, then netdev_run_todo's rcu_barrier), more than the rest of a
pod's network together. No creation parameter avoids it: br_multicast_dev_del's barrier is
unconditional.

Why spawned (posix_spawn: vfork + exec) rather than forked: a fork of the runtime copies its page
tables (~1 ms; a double fork with its wait 3.5 ms), and then every page the runtime writes while
the child lives takes a copy-on-write fault: CPython writes reference counts all over its heap,
and the child lived as long as the RCU waits, i.e. through the runtime's whole tear-down. A spawn
costs the runtime ~0.1 ms and nothing afterwards.

Why the waiting is native: what is spawned is the shim (`shim --network-remover`, native/shim.c),
which waits and looks as `remove_if_unused` does and execs this module's `main` only once the
network is to go. Its start costs 0.4 ms of CPU against 15-40 ms for an interpreter's (child's
rusage up to its first sleep, 20 spawns each, this 2-core VM loaded and not): the Python remover's
start ran beside the next pod at every hand-over of pods run back to back.

Protocol: the runtime drops the last lease and the keep marker under the network's lock and, unless
a remover is already pending (its pid in the network's `remover` file, still running this
module: the shim's command line names it too), spawns one with the network directory's mtime (a
lease is a file in it). It closes whatever descriptor the runtime let it inherit, waits
GRACE_S, then under the lock: a keep marker means a pod wants the bridge to stay (give up); a
lease means a pod came (wait again, for LINGER_S at most, then give up: its release hands over
again); a moved mtime means pods came and went (their releases found us pending: wait again);
else (the shim execs `main` here, which looks once more at once) remove the hostPort table, send
RTM_DELLINK from a thread and, once the link's sysfs entry is gone (the end of the RTNL-held
part, ~15 ms), remove the directory and unlock, so a runtime waiting for the lock goes on
(making a new bridge of the same name) instead of waiting out the whole unregistration
(netdev_run_todo's barrier, another ~20 ms). Pods run back to back thus keep one bridge and
spawn one remover. If this process dies half-way, the network is left without leases:
`sandbox gc` (bridge.remove_unused) removes it.
"""

from __future__ import annotations

import os

from sandbox.network.bridge import REMOVER_FILE, pending_remover

TYPE_CHECKING = False
if TYPE_CHECKING:
    from threading import Thread

    from sandbox.network.config import BridgeConfig
    from sandbox.network.ipam import Ipam

# A pod started within this after the last one ended keeps the bridge. 1 s, not the 0.1 s it
# was: a test suite's pods come with its own code between them (requests, assertions, a
# `kubectl`-like client), often more than 0.1 s, and each such gap cost a removal (two RCU waits,
# ~15 ms of them under the RTNL lock, on the other core while the next pod starts) and a new bridge
# for the next pod. Kept bridges cost nothing while unused, which is why CNI's bridge plugin never
# deletes its bridge and docker keeps docker0; the issue asks for the bridge to go with the last
# pod, so it goes, 1-2 s later (`sandbox gc` removes it at once, --keep-bridge keeps it).
# Measured with bench/network_cost.py --gap 0.3 (see the commit message).
GRACE_S = 1.0
# A remover that finds a pod's lease stays pending this long (one look per GRACE_S) instead of
# leaving at once: pods run back to back then spawn one remover per LINGER_S. Measured with
# in-process phase timers (30 runs each): leaving at once, 15 of 15 bridge runs in
# network_cost's rotation and 6 of 50 back to back spawned a remover, each costing the runtime
# ~0.5 ms in posix_spawn plus ~1.3 ms in the tear-down steps after it (the new interpreter's
# exec on the other core slows the runtime's umount) and ~15 ms of CPU beside the next pod;
# lingering, 0 of 50 back to back. (Those costs were the Python remover's, spawned directly; the
# shim's spawn costs the runtime ~0.1 ms and 0.4 ms of CPU.) A look while pods run costs the
# shim a flock, a few stats and one directory listing.
LINGER_S = 2.0
_MAIN = "import sys; sys.path.insert(0, sys.argv[1]); from sandbox.network.remover import main; main(sys.argv[2:])"


def hand_over(config: BridgeConfig, ipam: Ipam) -> None:
    """The last lease is gone: make sure a remover is pending (one per quiet spell, not one per
    pod: a spawn costs the runtime 0.5 ms and its interpreter ~15 ms of CPU beside the next
    pod). A pending one re-arms by itself when it sees that pods came meanwhile. Call under the
    network's lock."""
    if pending_remover(ipam) is not None:
        return
    # the file made before the stamp is read: its creation moves the stamp (the directory's mtime)
    fd = os.open(ipam.dir / REMOVER_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, b"%d" % spawn(config, _stamp(ipam)))
    finally:
        os.close(fd)


def _stamp(ipam: Ipam) -> int:
    """What moves whenever a lease is taken or dropped: the network directory's mtime (a lease
    is a file in it). Unchanged over a grace with no lease at its end: no pod used the network
    during it. The cursor's mtime, used before, moved only when a lease was taken: pods run back
    to back whose cycle exceeded GRACE_S (~100-130 ms here) had the bridge removed under them
    now and then, and the next pod waited for the network's lock (7-19 ms) and made the bridge
    again (measured: 3 of 40 bridge runs of bench/network_cost.py --block 3)."""
    try:
        return os.stat(ipam.dir).st_mtime_ns
    except FileNotFoundError:
        return 0


def spawn(config: BridgeConfig, stamp: int) -> int:
    """Start the remover of `config`'s network, detached (its own session, stdio on /dev/null:
    a caller's pipe must not wait for it); returns its pid. `stamp`: `_stamp` at the last release.

    The waiting is the native shim's (`shim --network-remover`, native/shim.c): it sleeps the
    grace and looks under the lock as `remove_if_unused` does, and execs this module's `main`
    only to remove the network. The Python remover's interpreter start (~15 ms of CPU) landed
    beside the next pod at every hand-over of pods run back to back; the shim starts in ~0.5 ms.
    """
    import sys

    from sandbox.process import detached

    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    # -B: it outlives its runtime, which may have pointed PYTHONPYCACHEPREFIX into a directory
    # removed meanwhile (the benchmarks' workspaces): writing byte code would make it again
    python = [sys.executable, "-S", "-B", "-c", _MAIN, package_root, config.bridge, config.subnet, str(config.base)]
    shim = os.path.join(package_root, "sandbox", "_bin", "shim")
    if os.access(shim, os.X_OK):
        argv = [shim, "--network-remover", str(config.directory), str(stamp), str(round(GRACE_S * 1000)),
                str(round(LINGER_S * 1000)), *python]
    else:  # a tree without its native build: the Python remover waits too
        argv = [*python, str(stamp)]
    return detached.spawn(argv)  # SCHED_IDLE, reaped by the agent (process/detached.py)


def main(argv: list[str]) -> None:
    """The remover process: `bridge subnet base stamp [now]`; `now`: the shim has waited the
    grace and seen no pod (look at once, and no lingering: a pod that came meanwhile hands over
    again at its release)."""
    import time
    from pathlib import Path

    from sandbox.network.config import BridgeConfig, check_bridge_name

    os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # nothing of the runtime's (its pod lock, pipes)
    bridge, subnet, base, stamp, *now = argv
    check_bridge_name(bridge)
    config = BridgeConfig(bridge, subnet, base=Path(base))
    last: int | None = int(stamp)
    linger_until = time.monotonic() + (0 if now else LINGER_S)
    while last is not None:
        if now:
            now = []
        else:
            time.sleep(GRACE_S)
        # back to the normal policy before taking the network's lock: a runtime may wait for it
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        thread, last = remove_if_unused(config, last, linger=time.monotonic() < linger_until)
        if thread is not None:
            thread.join()  # the unregistration's RCU waits, with the lock already free
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def remove_if_unused(config: BridgeConfig, stamp: int, linger: bool = False) -> tuple[Thread | None, int | None]:
    """Under the network's lock, one look: (None, None) when a keep marker is there, or a lease
    and not `linger` (a pod came: its release will hand over again), or the network is gone;
    (None, new stamp) when pods came and went since `stamp`, or a lease is there and `linger`
    (their releases find us pending: wait again); else the network removed, (the thread
    running the bridge's RTM_DELLINK, None). Looking for leases alone is not enough: pods
    shorter than the grace run back to back leave moments without one, and the bridge would be
    removed just before the next pod."""
    from sandbox.network import bridge
    from sandbox.network.ipam import SUBNET_FILE

    ipam = config.ipam()
    if not ipam.dir.is_dir():
        return None, None  # removed already (`sandbox gc`)
    deleting: list[Thread] = []
    with ipam.locked():
        if not (ipam.dir / SUBNET_FILE).exists():  # removed before we locked: the lock made it anew
            ipam.remove_if_empty()
            return None, None
        leased = ipam.any_lease()
        if linger and leased and not (ipam.dir / bridge.KEEP_MARKER).exists():
            return None, _stamp(ipam)  # still pending: the pod's release will not spawn another
        if leased or (ipam.dir / bridge.KEEP_MARKER).exists():
            if pending_remover(ipam) == os.getpid():
                os.unlink(ipam.dir / REMOVER_FILE)
            return None, None
        now = _stamp(ipam)
        if now != stamp:
            return None, now
        bridge.remove_network(config, ipam, lambda name: deleting.append(_delete_until_unlisted(name)))
    return (deleting[0] if deleting else None), None


def _delete_until_unlisted(name: str) -> Thread:
    """RTM_DELLINK `name` in a thread; return once the link's sysfs directory is gone (the end of
    the part the kernel runs under the RTNL lock, ~15 ms: no runtime could have made a new bridge
    before it anyway; whoever finds the network's directory gone finds the bridge gone too) or
    the request ended."""
    import threading
    import time

    from sandbox.network.rtnl import Rtnl

    def delete() -> None:
        with Rtnl() as rtnl:
            rtnl.delete_link(name)

    thread = threading.Thread(target=delete, name=f"delete {name}")
    thread.start()
    while thread.is_alive() and os.path.lexists(f"/sys/class/net/{name}"):
        time.sleep(0.0005)
    return thread
