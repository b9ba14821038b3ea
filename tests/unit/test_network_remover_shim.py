"""The waiting half of the bridge's remover, `shim --network-remover` (native/shim.c), on a network
directory in a temporary directory: no root, no bridge. What it execs once the network is to go
is replaced by a script that writes down its arguments (the real one is the Python remover,
whose removal tests/integration/test_pod_network.py checks)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from sandbox.process.shim import shim_binary

GRACE_MS = 30

pytestmark = pytest.mark.skipif(not os.access(shim_binary(), os.X_OK), reason="native build missing")


def network(tmp_path: Path) -> Path:
    directory = tmp_path / "sbunit0"
    directory.mkdir()
    # "lock" and "remover" made now, as the runtime makes them before it reads the stamp: the pid,
    # written later, does not move the directory's mtime
    for name, text in (("subnet", "10.1.0.0/24\n"), ("indexed", ""), ("last_reserved_ip", "10.1.0.2"), ("remover", ""),
                       ("lock", "")):
        (directory / name).write_text(text)
    return directory


def stamp(directory: Path) -> int:
    return os.stat(directory).st_mtime_ns


def start(directory: Path, tmp_path: Path, at: int, linger_ms: int = 0) -> subprocess.Popen[bytes]:
    """The waiter over `directory` from stamp `at`; its exec writes its argv to tmp_path/exec."""
    record = tmp_path / "exec"
    script = f'printf "%s\\n" "$@" > {record}'
    argv = [shim_binary(), "--network-remover", str(directory), str(at), str(GRACE_MS), str(linger_ms),
            "/bin/sh", "-c", script, "sh", "the-remover-args"]
    proc = subprocess.Popen(argv)
    (directory / "remover").write_text(str(proc.pid))  # in place: the mtime stays
    return proc


def exec_args(tmp_path: Path) -> list[str] | None:
    path = tmp_path / "exec"
    return path.read_text().split("\n")[:-1] if path.exists() else None


def test_no_pod_for_a_grace_execs_the_remover_with_the_stamp_and_now(tmp_path: Path) -> None:
    directory = network(tmp_path)
    at = stamp(directory)
    began = time.monotonic()
    proc = start(directory, tmp_path, at)
    assert proc.wait(timeout=10) == 0
    assert time.monotonic() - began >= GRACE_MS / 1000
    assert exec_args(tmp_path) == ["the-remover-args", str(at), "now"]


def test_the_stamp_of_the_last_look_is_passed_on(tmp_path: Path) -> None:
    directory = network(tmp_path)
    at = stamp(directory)
    began = time.monotonic()
    proc = start(directory, tmp_path, at)
    (directory / "10.1.0.3").write_text("a pod\n")  # a pod came and went within the grace
    (directory / "10.1.0.3").unlink()
    assert stamp(directory) != at
    assert proc.wait(timeout=10) == 0
    assert time.monotonic() - began >= 2 * GRACE_MS / 1000  # it waited again
    assert exec_args(tmp_path) == ["the-remover-args", str(stamp(directory)), "now"]


@pytest.mark.parametrize("marker", ["keep", "10.1.0.7"])
def test_a_keep_marker_or_a_lease_after_the_linger_ends_it_and_its_pid_file(tmp_path: Path, marker: str) -> None:
    directory = network(tmp_path)
    (directory / marker).write_text("")
    proc = start(directory, tmp_path, stamp(directory))
    assert proc.wait(timeout=10) == 0
    assert exec_args(tmp_path) is None
    assert not (directory / "remover").exists()
    assert (directory / marker).exists() and (directory / "subnet").exists()


def test_a_pid_file_naming_another_remover_is_left(tmp_path: Path) -> None:
    directory = network(tmp_path)
    (directory / "keep").write_text("")
    proc = start(directory, tmp_path, stamp(directory))
    (directory / "remover").write_text("1")
    assert proc.wait(timeout=10) == 0
    assert (directory / "remover").read_text() == "1"


def test_a_lease_within_the_linger_keeps_it_pending_until_the_lease_goes(tmp_path: Path) -> None:
    directory = network(tmp_path)
    (directory / "10.1.0.9").write_text("a pod\n")
    proc = start(directory, tmp_path, stamp(directory), linger_ms=60_000)
    time.sleep(5 * GRACE_MS / 1000)
    assert proc.poll() is None and exec_args(tmp_path) is None
    (directory / "10.1.0.9").unlink()
    assert proc.wait(timeout=10) == 0
    assert exec_args(tmp_path) == ["the-remover-args", str(stamp(directory)), "now"]


def test_it_holds_the_network_lock_to_look(tmp_path: Path) -> None:
    """A runtime holding the lock (allocating a lease) is waited for: the look comes after it."""
    import fcntl

    directory = network(tmp_path)
    with open(directory / "lock", "w") as lock:
        at = stamp(directory)
        fcntl.flock(lock, fcntl.LOCK_EX)
        proc = start(directory, tmp_path, at)  # without the lock it would exec after one grace
        time.sleep(4 * GRACE_MS / 1000)
        assert proc.poll() is None and exec_args(tmp_path) is None
        (directory / "10.1.0.4").write_text("a pod\n")  # leased under the lock
    assert proc.wait(timeout=10) == 0
    assert exec_args(tmp_path) is None  # it saw the lease (no linger) and left


def test_a_directory_gone_ends_it(tmp_path: Path) -> None:
    directory = network(tmp_path)
    proc = start(directory, tmp_path, stamp(directory))
    time.sleep(GRACE_MS / 1000 / 3)  # it has opened the directory
    for name in os.listdir(directory):
        os.unlink(directory / name)
    directory.rmdir()  # `sandbox gc` removed the network in the grace
    directory.mkdir()  # and a runtime made it again: not the waiter's any more
    (directory / "subnet").write_text("10.1.0.0/24\n")
    assert proc.wait(timeout=10) == 0
    assert exec_args(tmp_path) is None
    assert sorted(os.listdir(directory)) == ["subnet"]


def test_bad_usage_is_refused() -> None:
    result = subprocess.run([shim_binary(), "--network-remover", "/nonexistent"], capture_output=True, text=True)
    assert result.returncode == 2 and "usage" in result.stderr
