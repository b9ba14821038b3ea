"""Finish the tear-down of a pod whose runtime is gone (killed, crashed, machine reboot).

Everything a runtime creates is recorded in its state file before it is created, so this needs
nothing else: kill the recorded processes (pid + start time, never by name), remove the recorded
writable layers, then the pod's state directory. Every step tolerates what is already gone.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

from sandbox.log import get_logger
from sandbox.state.proc import ProcessRef
from sandbox.state.store import LOCK_FILE, STATE_FILE, PodDir, PodLock

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from typing import Any

log = get_logger(__name__)


def recorded_processes(state: dict[str, Any]) -> list[ProcessRef]:
    refs = [ProcessRef.from_json(c.get("process")) for c in (state.get("containers") or {}).values()
            if isinstance(c, dict)]
    refs.append(ProcessRef.from_json(state.get("pause")))
    return [r for r in refs if r is not None]


def kill_recorded(state: dict[str, Any]) -> None:
    for ref in recorded_processes(state):
        fd = ref.open_pidfd()
        if fd is None:
            continue
        try:
            signal.pidfd_send_signal(fd, signal.SIGKILL)
        except ProcessLookupError:
            pass
        finally:
            os.close(fd)


def _empty_pod_dir(pod_dir: PodDir, keep_lock: bool) -> None:
    # The state file goes first: a reader then sees no pod rather than a half-removed one.
    for child in sorted(pod_dir.path.iterdir(), key=lambda p: (p.name != STATE_FILE, p.name == LOCK_FILE)):
        if child.name == LOCK_FILE and keep_lock:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def remove_pod_dir(pod_dir: PodDir) -> None:
    """Remove the pod's state directory; the lock file goes last, while the caller still holds
    it, so a reader sees either the whole state or no pod at all."""
    _empty_pod_dir(pod_dir, keep_lock=False)
    try:
        pod_dir.path.rmdir()
    except OSError:
        pass


def finish_dead_runtime(pod_dir: PodDir, containers_root: Path) -> bool:
    """If no runtime holds the pod (it was killed, crashed, or the machine rebooted), finish its
    tear-down and remove the pod's directory; False when a live runtime holds it."""
    lock = PodLock(pod_dir)
    if not lock.acquire():
        return False
    try:
        clean_stale(pod_dir, containers_root)
    finally:
        remove_pod_dir(pod_dir)
        lock.release()
    return True


def clean_stale(pod_dir: PodDir, containers_root: Path) -> None:
    """Tear down what a dead runtime left (its processes, files, layers and volumes), keeping the
    lock, which the caller holds."""
    try:
        state = pod_dir.read()
    except Exception:  # noqa: BLE001 - unreadable state still gets its directory removed
        state = {}
    log.warning("cleaning up after a runtime that did not finish: %s", pod_dir.path)
    kill_recorded(state)
    _empty_pod_dir(pod_dir, keep_lock=True)
    for record in (state.get("containers") or {}).values():
        layer = record.get("layer") if isinstance(record, dict) else None
        if layer and Path(layer).parent == containers_root:
            shutil.rmtree(layer, ignore_errors=True)
    volumes_dir = state.get("volumesDir")
    if isinstance(volumes_dir, str) and Path(volumes_dir).parent == containers_root.parent / "pods":
        shutil.rmtree(volumes_dir, ignore_errors=True)
