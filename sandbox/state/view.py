"""A pod's record as readers (`get`, `describe`, `delete`, `gc`) see it: one of three kinds.

    live    a runtime holds the pod's lock: the state is what it last wrote; also a node
            agent's pod whose agent is gone while the pod's shim runs it on (re-adoptable)
    ended   the pod ended and its runtime tore it down: the state says `"ended": true` (the
            runtime's last write, made while it still holds the lock); kept until `sandbox
            delete` or a new `sandbox run` of the same name
    lost    the lock is free but the state never says ended: the runtime was killed, crashed, or
            the machine rebooted; its processes died with it, and the record is shown as the API
            server shows a pod whose node is lost (supervisor/snapshot.py runtime_lost) until
            `sandbox gc`, `sandbox delete` or a new `sandbox run` finishes the tear-down
"""

from __future__ import annotations

from sandbox.state.store import PodDir

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from typing import Any

LIVE = "live"
ENDED = "ended"
LOST = "lost"

ENDED_KEY = "ended"


def is_ended(state: dict[str, Any]) -> bool:
    return state.get(ENDED_KEY) is True


def read_pod(pod_dir: PodDir) -> tuple[dict[str, Any], str]:
    """The pod's state as a reader shows it, and its kind (LIVE, ENDED or LOST).

    Raises what PodDir.read raises (NotFoundError, StateError)."""
    state = pod_dir.read()
    if is_ended(state):
        return state, ENDED
    if pod_dir.owner_alive():
        return state, LIVE
    # The runtime writes its ended record before it lets go of the lock: a runtime that ended
    # between the read above and the lock test has written it by now.
    state = pod_dir.read()
    if is_ended(state):
        return state, ENDED
    from sandbox.pod.cleanup import shim_runs_it

    if shim_runs_it(pod_dir, state):  # its agent is gone, its containers run on (re-adoptable)
        return state, LIVE
    from sandbox.supervisor.snapshot import runtime_lost

    try:
        since = pod_dir.state_file.stat().st_mtime
    except OSError:
        since = float(state.get("createdAt") or 0)
    return runtime_lost(state, since), LOST
