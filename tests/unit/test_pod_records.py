"""Pod records without a running pod: how readers tell live, ended and lost records apart, and what
ending, deleting and garbage-collecting a record removes (sandbox/state/view.py, pod/cleanup.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sandbox.pod.cleanup import delete_record, end_record, finish_dead_runtime, remove_logs
from sandbox.state.store import PodDir, PodLock
from sandbox.state.view import ENDED, LIVE, LOST, read_pod


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for sub in ("run/pods", "lib/containers", "lib/pods", "log/pods"):
        (tmp_path / sub).mkdir(parents=True)
    return tmp_path


def record(root: Path, name: str = "p", uid: str = "u1", **extra: Any) -> PodDir:
    pod_dir = PodDir(root / "run" / "pods" / f"default_{name}")
    pod_dir.path.mkdir()
    log_dir = root / "log" / "pods" / f"default_{name}_{uid}"
    (log_dir / "c").mkdir(parents=True)
    (log_dir / "c" / "0.log").write_text("x\n")
    state = {"name": name, "namespace": "default", "uid": uid, "logDir": str(log_dir), "createdAt": 1.0,
             "runtime": {"pid": 999999, "startTime": 1}, "containers": {"c": {"process": None, "layer": None}},
             "status": {"phase": "Running", "conditions": [], "containerStatuses": []},
             "summary": {"ready": "1/1", "status": "Running", "restarts": 0}, **extra}
    pod_dir.write(state)
    (pod_dir.path / "lock").touch()
    return pod_dir


def test_a_record_held_by_a_runtime_is_live(root: Path) -> None:
    pod_dir = record(root)
    lock = PodLock(pod_dir)
    assert lock.acquire()
    try:
        state, kind = read_pod(pod_dir)
        assert kind == LIVE and state["status"]["phase"] == "Running"
    finally:
        lock.release()


def test_the_pod_lock_is_an_flock_other_processes_see(root: Path) -> None:
    """PodLock takes flock(2) through the native module: another process's fcntl.flock on the
    same file is refused while it is held, and a lock another process holds refuses it."""
    import subprocess
    import sys

    pod_dir = record(root)
    probe = ("import fcntl, os, sys\n"
             "fd = os.open(sys.argv[1], os.O_RDONLY)\n"
             "try:\n    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)\nexcept BlockingIOError:\n    sys.exit(3)\n")
    lock = PodLock(pod_dir)
    assert lock.acquire()
    try:
        assert subprocess.run([sys.executable, "-c", probe, str(pod_dir.lock_file)]).returncode == 3
        assert not PodLock(pod_dir).acquire()  # a second open file description: flock refuses it too
    finally:
        lock.release()
    assert subprocess.run([sys.executable, "-c", probe, str(pod_dir.lock_file)]).returncode == 0
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); "
                               "fcntl.flock(fd, fcntl.LOCK_SH); print(flush=True); sys.stdin.read()",
                               str(pod_dir.lock_file)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"\n"
        assert not PodLock(pod_dir).acquire()
    finally:
        holder.communicate(b"")
    other = PodLock(pod_dir)
    assert other.acquire()
    other.release()


def test_a_record_marked_ended_is_ended_whoever_holds_the_lock(root: Path) -> None:
    pod_dir = record(root, ended=True)
    assert read_pod(pod_dir)[1] == ENDED


def test_a_free_lock_and_no_end_mark_is_a_lost_runtime(root: Path) -> None:
    state, kind = read_pod(record(root))
    assert kind == LOST
    assert state["status"]["phase"] == "Unknown" and state["summary"]["status"] == "Unknown"


def test_end_record_keeps_only_the_state_and_the_lock(root: Path) -> None:
    pod_dir = record(root)
    (pod_dir.path / "etc-hosts").write_text("127.0.0.1 localhost\n")
    (pod_dir.path / "containers" / "c").mkdir(parents=True)
    lock = PodLock(pod_dir)
    assert lock.acquire()
    end_record(pod_dir, {**pod_dir.read(), "status": {"phase": "Succeeded"}})
    lock.release()
    assert sorted(p.name for p in pod_dir.path.iterdir()) == ["lock", "state.json"]
    state = json.loads(pod_dir.state_file.read_text())
    assert state["ended"] is True and state["status"]["phase"] == "Succeeded"


def test_gc_leaves_an_ended_record_alone_but_finishes_a_lost_one(root: Path) -> None:
    ended = record(root, "done", ended=True)
    lost = record(root, "lost", uid="u2")
    containers, logs = root / "lib" / "containers", root / "log" / "pods"
    assert not finish_dead_runtime(ended, containers, logs)
    assert ended.state_file.exists() and (logs / "default_done_u1").exists()
    assert finish_dead_runtime(lost, containers, logs)
    assert not lost.path.exists() and not (logs / "default_lost_u2").exists()


def test_gc_leaves_a_live_record_alone(root: Path) -> None:
    pod_dir = record(root)
    lock = PodLock(pod_dir)
    assert lock.acquire()
    try:
        assert not finish_dead_runtime(pod_dir, root / "lib" / "containers", root / "log" / "pods")
        assert pod_dir.state_file.exists()
    finally:
        lock.release()


def test_delete_removes_an_ended_record_and_its_logs(root: Path) -> None:
    pod_dir = record(root, ended=True)
    logs = root / "log" / "pods"
    (logs / "default_p_other-uid").mkdir()  # another pod's logs (same name, another run) stay
    assert delete_record(pod_dir, root / "lib" / "containers", logs, uid="u1")
    assert not pod_dir.path.exists()
    assert sorted(p.name for p in logs.iterdir()) == ["default_p_other-uid"]


def test_delete_leaves_a_record_that_a_newer_pod_has_replaced(root: Path) -> None:
    pod_dir = record(root, uid="new", ended=True)
    assert not delete_record(pod_dir, root / "lib" / "containers", root / "log" / "pods", uid="old")
    assert pod_dir.state_file.exists()


def test_delete_of_a_record_removed_meanwhile_leaves_nothing_behind(root: Path) -> None:
    pod_dir = PodDir(root / "run" / "pods" / "default_gone")
    pod_dir.path.mkdir()
    assert delete_record(pod_dir, root / "lib" / "containers", root / "log" / "pods")
    assert not pod_dir.path.exists()


@pytest.mark.parametrize("log_dir", ["{logs}/default_p_other", "{root}/elsewhere/default_p_u1", "{logs}/../default_p_u1"])
def test_only_the_pods_own_log_directory_is_ever_removed(root: Path, log_dir: str) -> None:
    logs = root / "log" / "pods"
    target = Path(log_dir.format(logs=logs, root=root))
    target.mkdir(parents=True, exist_ok=True)
    remove_logs({"name": "p", "namespace": "default", "uid": "u1", "logDir": str(target)}, logs)
    assert target.exists()
