"""`sandbox exec`: run a command inside a running container: all its namespaces (net, ipc, uts,
pid, mount, so its root too), its environment and working directory.

The same native spawn as a container start, with nothing new: stage 1 joins the container's
namespaces through a pidfd of its main process, stage 2 lands in its PID namespace and execs. The
process is our child, keeps our terminal (no new session) so Ctrl-C reaches it, and dies with us.
"""

from __future__ import annotations

import signal

from sandbox.native import CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUTS, SpawnRequest
from sandbox.process import capabilities
from sandbox.process.spawner import DirectSpawner

ALL_NAMESPACES = CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWPID | CLONE_NEWNS


def exec_in_container(main_pidfd: int, argv: list[str], env: list[str], cwd: str,
                      caps: int = capabilities.DEFAULT_MASK) -> int:
    """Run argv in the container whose main process `main_pidfd` names; returns its exit code
    (128 + signal for a signal death, as a shell reports it)."""
    req = SpawnRequest(argv=argv, env=env, join_pidfd=main_pidfd, join_ns=ALL_NAMESPACES, cwd=cwd,
                       new_session=False, stage_name="exec", caps=caps)
    process = DirectSpawner().spawn(req)
    # Like system(3): while the command runs, terminal signals are its business, not ours.
    old = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGQUIT)}
    try:
        return process.wait().exit_code
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        process.close()
