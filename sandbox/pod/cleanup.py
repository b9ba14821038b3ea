"""The end of a pod's record: the runtime's last write, and removing a record (and what it holds).

A runtime that ends its pod tears everything down itself and leaves only its record: the state
file, marked `"ended": true` as its last write (`end_record`), and the pod's logs, both kept until
the pod is deleted (`sandbox delete`, `sandbox run --rm`, or a new `sandbox run` of the same name,
which replaces it), as the kubelet keeps a terminated pod's status and logs until the pod object is
deleted.

A runtime that is killed (or crashes, or the machine reboots) leaves a record that never says
ended. Everything a runtime creates is recorded in its tear-down registry (pod/teardown.py, a
journal in its state directory) before it is created, so finishing its tear-down needs nothing
else: undo what the journal records, newest first, then remove the record. Every step tolerates
what is already gone. Every removal here runs under the pod's lock.
"""

from __future__ import annotations

from pathlib import Path

from sandbox.log import get_logger
from sandbox.rmtree import rmtree
from sandbox.state.store import LOCK_FILE, STATE_FILE, PodDir, PodLock

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from typing import Any

log = get_logger(__name__)


def _empty_pod_dir(pod_dir: PodDir, keep: tuple[str, ...]) -> None:
    # The state file goes first: a reader then sees no pod rather than a half-removed one.
    for child in sorted(pod_dir.path.iterdir(), key=lambda p: (p.name != STATE_FILE, p.name == LOCK_FILE)):
        if child.name in keep:
            continue
        if child.is_dir() and not child.is_symlink():
            rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def remove_pod_dir(pod_dir: PodDir) -> None:
    """Remove the pod's state directory; the lock file goes last, while the caller still holds
    it, so a reader sees either the whole state or no pod at all."""
    _empty_pod_dir(pod_dir, keep=())
    try:
        pod_dir.path.rmdir()
    except OSError:
        pass


def end_record(pod_dir: PodDir, state: dict[str, Any]) -> None:
    """The runtime's last step, after its tear-down and while it still holds the lock: drop the
    pod's files (hosts, termination-message files, pause's root) and write the record that says
    the pod ended. Readers tell an ended pod from one whose runtime is gone by this mark."""
    from sandbox.state.view import ENDED_KEY

    _empty_pod_dir(pod_dir, keep=(STATE_FILE, LOCK_FILE))
    pod_dir.write({**state, ENDED_KEY: True}, final=True)


def remove_logs(state: dict[str, Any], logs_root: Path) -> None:
    """The pod's log directory goes with its record, as the kubelet removes a deleted pod's logs.
    Only the directory this pod's name and UID make under `logs_root` is ever removed."""
    recorded = state.get("logDir")
    ns, name, uid = state.get("namespace"), state.get("name"), state.get("uid")
    if not (isinstance(recorded, str) and ns and name and uid):
        return
    path = Path(recorded)
    if path.parent != logs_root or path.name != f"{ns}_{name}_{uid}" or path.is_symlink():
        log.warning("not removing logs at %s: not the log directory of pod %s/%s", path, ns, name)
        return
    rmtree(path, ignore_errors=True)


def clear_record(pod_dir: PodDir, containers_root: Path, logs_root: Path | None,
                 state: dict[str, Any] | None = None) -> dict[str, Any]:
    """Remove a pod's record, keeping the lock file (the caller holds the lock): finish the
    tear-down first when its runtime is gone, and remove its logs (unless `logs_root` is None).
    `state`: the record as the caller already read it. Returns the state it removed ({} when it
    was unreadable)."""
    from sandbox.state.view import is_ended

    if state is None:
        state = read_or_empty(pod_dir)
    if is_ended(state):
        _empty_pod_dir(pod_dir, keep=(LOCK_FILE,))
    else:
        clean_stale(pod_dir, containers_root)
    if logs_root is not None:
        remove_logs(state, logs_root)
    return state


def finish_dead_runtime(pod_dir: PodDir, containers_root: Path, logs_root: Path | None, *,
                        keep_adoptable: bool = True) -> bool:
    """If the pod's runtime is gone (killed, crashed, a reboot) without ending it, finish its
    tear-down and remove its record and logs. False, touching nothing, when a live runtime holds
    the pod or the pod ended normally (an ended record stays until it is deleted), or, with
    `keep_adoptable`, when it is a node agent's pod whose shim still runs it (the next agent
    re-adopts it)."""
    from sandbox.state.view import is_ended

    if keep_adoptable:
        found = adoptable_shim(pod_dir)
        if found is not None:
            found[1].close()
            return False
    lock = PodLock(pod_dir)
    if not lock.acquire():
        return False
    try:
        state = read_or_empty(pod_dir)
        if is_ended(state):
            return False
        clear_record(pod_dir, containers_root, logs_root, state)
        remove_pod_dir(pod_dir)
    finally:
        lock.release()
    return True


def delete_record(pod_dir: PodDir, containers_root: Path, logs_root: Path, uid: str | None = None,
                  wait: float = 0.0) -> bool:
    """`sandbox delete` of a pod no runtime holds (ended, or its runtime gone): remove the record
    and the pod's logs, finishing a dead runtime's tear-down first. With `uid`, only that very pod:
    False, touching nothing, when a runtime holds the pod or a newer pod has taken the name.
    `wait`: seconds to wait out another delete holding the pod's lock (`sandbox delete`'s)."""
    lock = PodLock(pod_dir)
    if not _acquire_within(lock, wait):
        return False
    try:
        if not pod_dir.state_file.exists():  # removed meanwhile (`run --rm`, another delete)
            remove_pod_dir(pod_dir)
            return True
        state = read_or_empty(pod_dir)
        if uid is not None and state and state.get("uid") != uid:
            return False
        clear_record(pod_dir, containers_root, logs_root, state)
        remove_pod_dir(pod_dir)
    finally:
        lock.release()
    return True


DELETE_LOCK_WAIT = 2.0  # seconds: another delete of the same pod holds the lock this long at most


def _acquire_within(lock: PodLock, wait: float) -> bool:
    """The pod's lock, trying again for `wait` seconds: two deletes of one terminating pod both
    get here once its runtime exits, the first removes the record, the second must then find it
    gone rather than report the lock held; held longer, a runtime holds it (a new run)."""
    import time

    deadline = time.monotonic() + wait
    while not lock.acquire():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def read_or_empty(pod_dir: PodDir) -> dict[str, Any]:
    """The pod's record, or {} when it is unreadable or gone (its directory is still cleaned)."""
    try:
        return pod_dir.read()
    except Exception:  # noqa: BLE001 - any unreadable record: nothing of it to keep
        return {}


def clean_stale(pod_dir: PodDir, containers_root: Path) -> None:
    """Tear down what a dead runtime left, through the one tear-down (pod/teardown.py) over the
    objects its registry recorded (processes, mounts, layers, volumes, in reverse), then empty
    its state directory, keeping the lock, which the caller holds."""
    from sandbox.pod import teardown

    log.warning("cleaning up after a runtime that did not finish: %s", pod_dir.path)
    teardown.undo_all(teardown.Journal(pod_dir.path), teardown.pod_bases(containers_root.parent, pod_dir.path))
    _empty_pod_dir(pod_dir, keep=(LOCK_FILE,))


def adoptable_shim(pod_dir: PodDir) -> tuple[dict[str, Any], Any] | None:
    """(record, connected Shim) of a node agent's pod whose agent is gone (its lock free) and
    whose shim still answers: the pod runs on and a starting agent re-adopts it; `gc` and
    `delete` leave it alone. None otherwise (touching nothing)."""
    if not pod_dir.state_file.exists():
        return None
    lock = PodLock(pod_dir)
    if not lock.acquire():  # a live runtime holds it
        return None
    try:
        state = read_or_empty(pod_dir)
        shim = running_shim(pod_dir, state)
        return (state, shim) if shim is not None else None
    finally:
        lock.release()


def shim_runs_it(pod_dir: PodDir, state: dict[str, Any]) -> bool:
    """running_shim's answer as a yes or no, the connection closed: a node agent's pod whose
    agent is gone runs on under its shim (readers show it, `delete` and a new run refuse it).
    Needs no lock: asking the shim never keeps a starting agent from re-adopting the pod."""
    shim = running_shim(pod_dir, state)
    if shim is None:
        return False
    shim.close()
    return True


def running_shim(pod_dir: PodDir, state: dict[str, Any]) -> Any:
    """A connected Shim if `state` is a node agent's pod, not ended, whose shim answers; else
    None. A caller that goes on to act on the pod holds its lock."""
    if state.get("owner") != "agent":  # before the imports: `sandbox run` checks every start
        return None
    from sandbox.process.shim import Shim, ShimError
    from sandbox.state.view import is_ended

    if is_ended(state):
        return None
    try:
        return Shim.connect(str(pod_dir.path / "shim"))
    except ShimError:
        return None
