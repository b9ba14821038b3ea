"""The pods' parent cgroup's remover, `shim --cgroup-remover` (native/shim.c), and the runtime's
hand-over to it (sandbox/cgroups/reclaim.py), on plain directories in a temporary directory: no
root, no cgroup hierarchy (a directory's st_nlink counts its subdirectories and mkdir/rmdir move
its mtime there too). tests/cgroups/test_cgroupfs.py runs it on this host's hierarchies."""

from __future__ import annotations

import _socket
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.cgroups import reclaim
from sandbox.process import detached
from sandbox.process.shim import shim_binary

GRACE_MS = 40

pytestmark = pytest.mark.skipif(not os.access(shim_binary(), os.X_OK), reason="native build missing")


def token_name(root: Path, parent: str) -> bytes:
    return b"\0" + reclaim._TOKEN.format(root=root, parent=parent).encode()


def can_bind(name: bytes) -> bool:
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM)
    try:
        sock.bind(name)
        return True
    except OSError:
        return False
    finally:
        sock.close()


class Remover:
    """A remover spawned as the runtime spawns it (reclaim._spawn: posix_spawn, the token as fd 3)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.status: int | None = None

    def poll(self) -> int | None:
        if self.status is None:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.status = os.waitstatus_to_exitcode(status)
        return self.status

    def wait(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while self.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        return self.status


@pytest.fixture
def procs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Remover]]:
    monkeypatch.setattr(reclaim, "GRACE_S", GRACE_MS / 1000)
    started: list[Remover] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            os.kill(proc.pid, 9)
            os.waitpid(proc.pid, 0)
    detached.children.clear()


def start(root: Path, parent: str, procs: list[Remover], token: bool = True) -> Remover:
    sock = None
    if token:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)
        sock.bind(token_name(root, parent))
    try:
        assert reclaim._spawn(str(root), parent, sock.fileno() if sock is not None else None)
    finally:
        if sock is not None:
            sock.close()
    proc = Remover(detached.children[-1])
    procs.append(proc)
    return proc


def test_no_pod_for_a_grace_removes_the_parent_and_ends(tmp_path: Path, procs: list[Remover]) -> None:
    (tmp_path / "par").mkdir()
    began = time.monotonic()
    proc = start(tmp_path, "par", procs)
    assert not can_bind(token_name(tmp_path, "par"))  # pending: a runtime's bind fails
    assert proc.wait(timeout=10) == 0
    assert time.monotonic() - began >= GRACE_MS / 1000
    assert not (tmp_path / "par").exists()
    assert can_bind(token_name(tmp_path, "par"))  # released with it


def test_it_never_removes_a_parent_with_a_pod_and_stays_pending(tmp_path: Path,
                                                               procs: list[Remover]) -> None:
    pod = tmp_path / "par" / "pod"
    pod.mkdir(parents=True)
    proc = start(tmp_path, "par", procs, token=False)  # without one it works alike, unseen
    assert can_bind(token_name(tmp_path, "par"))
    proc = start(tmp_path, "par", procs)
    time.sleep(6 * GRACE_MS / 1000)
    assert proc.poll() is None and pod.is_dir()  # waits as long as the pod is there
    assert not can_bind(token_name(tmp_path, "par"))
    pod.rmdir()
    assert proc.wait(timeout=10) == 0
    assert not (tmp_path / "par").exists()


def test_pods_that_come_and_go_within_a_grace_keep_it(tmp_path: Path, procs: list[Remover]) -> None:
    parent = tmp_path / "par"
    parent.mkdir()
    proc = start(tmp_path, "par", procs)
    deadline = time.monotonic() + 8 * GRACE_MS / 1000
    while time.monotonic() < deadline:  # a pod every half grace, never there when it looks
        (parent / "pod").mkdir()
        (parent / "pod").rmdir()
        time.sleep(GRACE_MS / 2000)
    assert proc.poll() is None and parent.is_dir()
    assert proc.wait(timeout=10) == 0 and not parent.exists()  # then a grace without one


def test_a_parent_made_again_is_removed_too(tmp_path: Path, procs: list[Remover]) -> None:
    parent = tmp_path / "par"
    parent.mkdir()
    proc = start(tmp_path, "par", procs)
    parent.rmdir()  # `sandbox gc` took it, a pod's runtime made it again (a new directory)
    parent.mkdir()
    assert proc.wait(timeout=10) == 0 and not parent.exists()


def test_a_usage_error_is_status_2(tmp_path: Path) -> None:
    for args in ([str(tmp_path)], [str(tmp_path), "a/b", "10"], [str(tmp_path), "..", "10"]):
        done = subprocess.run([shim_binary(), "--cgroup-remover", *args], capture_output=True)
        assert done.returncode == 2 and b"usage" in done.stderr


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(reclaim, "GRACE_S", GRACE_MS / 1000)
    monkeypatch.setattr(reclaim, "_pending", {})
    yield
    detached.reap()
    for pid in list(detached.children):
        os.waitpid(pid, 0)
        detached.children.remove(pid)


@pytest.mark.usefixtures("quick")
def test_the_hand_over_spawns_one_remover_only_for_an_empty_parent(tmp_path: Path) -> None:
    parent = tmp_path / "par"
    (parent / "other").mkdir(parents=True)
    reclaim.hand_over(str(parent), str(tmp_path))
    assert detached.children == []  # another pod is there: its end hands over
    (parent / "other").rmdir()
    reclaim.hand_over(str(parent), str(tmp_path))
    assert len(detached.children) == 1
    assert not can_bind(token_name(tmp_path, "par"))
    reclaim._pending.clear()  # another runtime: its bind fails, no second remover
    reclaim.hand_over(str(parent), str(tmp_path))
    assert len(detached.children) == 1
    pid = detached.children[0]
    _, status = os.waitpid(pid, 0)
    detached.children.remove(pid)
    assert os.waitstatus_to_exitcode(status) == 0 and not parent.exists()


@pytest.mark.usefixtures("quick")
def test_the_hand_over_looks_once_per_half_grace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pod's other hierarchies: a remover spawned or found pending a moment ago covers them."""
    parent = tmp_path / "par"
    parent.mkdir()
    spawned: list[str] = []
    monkeypatch.setattr(reclaim, "_spawn", lambda root, name, token: spawned.append(name) or True)
    stats: list[str] = []
    real_stat = os.stat
    monkeypatch.setattr(os, "stat", lambda path, *a, **k: stats.append(str(path)) or real_stat(path, *a, **k))
    reclaim.hand_over(str(parent), str(tmp_path))
    reclaim.hand_over(str(parent), str(tmp_path))
    assert spawned == ["par"]
    assert stats.count(str(parent)) == 1  # the second hierarchy's call: not even a stat
    time.sleep(GRACE_MS / 1000)
    reclaim.hand_over(str(parent), str(tmp_path))
    assert spawned == ["par", "par"]
