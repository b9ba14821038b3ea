"""Short-lived helper processes the runtime leaves behind on purpose: the bridge's remover
(network/remover.py), the pods' parent cgroup's remover (cgroups/reclaim.py) and hostports'
nf_tables socket holder. Each is spawned detached, so that neither a caller's pipe nor the
runtime's exit waits for it, and reaped here by a long-lived caller (the node agent, at each
pod's end); the CLI exits first and leaves them to init.

Spawned (posix_spawn: vfork + exec), not forked: network/remover.py says why."""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

children: list[int] = []  # spawned and not yet reaped


def spawn(argv: Sequence[str], *, fds: Mapping[int, int] | None = None, env: Mapping[str, str] | None = None,
          idle: bool = True) -> int:
    """Start `argv` in its own session with stdio on /dev/null and each `fds` item (target fd:
    the caller's fd) inherited; returns its pid. OSError if the spawn fails.

    `idle`: SCHED_IDLE, so that its start-up takes only idle time, never a core from the
    runtime's own tear-down or the next pod (measured with the Python bridge remover: a 2 ms
    stall of the runtime right after the spawn with the default policy, on this 2-core VM). Set
    from here, once the child has exec'd: glibc's posix_spawnattr_setschedpolicy refuses
    SCHED_IDLE (EINVAL)."""
    reap()
    actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDWR, 0), (os.POSIX_SPAWN_DUP2, 0, 1),
               (os.POSIX_SPAWN_DUP2, 0, 2)]
    actions += [(os.POSIX_SPAWN_DUP2, source, target) for target, source in (fds or {}).items()]
    pid = os.posix_spawn(argv[0], list(argv), os.environ if env is None else env, file_actions=actions,
                         setsid=True, setsigmask=())
    if idle:
        try:
            os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
        except OSError:
            pass  # gone already, or a kernel without SCHED_IDLE: it only runs sooner
    children.append(pid)
    return pid


def reap(block: bool = False) -> None:
    """Collect the helpers that have finished, or with `block` wait for all of them."""
    for pid in list(children):
        try:
            done, _status = os.waitpid(pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            children.remove(pid)
