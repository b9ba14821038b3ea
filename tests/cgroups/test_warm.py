"""The attach-lock warmer on this machine's v1 hierarchies: it moves nothing (the runtime stays in
its cgroups), does not disturb placing a process in a pod cgroup, and ends when stopped."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from sandbox.cgroups import fs, warm
from sandbox.cgroups.detect import Layout, detect

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def layout() -> Layout:
    found = detect()
    if "pids" not in found.v1:
        pytest.skip(f"no v1 pids controller here: {found.describe()}")
    return found


def _wait_stopped(timeout: float = 1.0) -> bool:
    end = time.monotonic() + timeout
    while warm._state["running"] and time.monotonic() < end:
        time.sleep(0.005)
    return not warm._state["running"]


def test_warmer_moves_nothing_and_stops(layout: Layout, parent: str) -> None:
    before = Path("/proc/self/cgroup").read_text()
    assert warm.start()
    assert warm.start()  # a second start while it runs is the same warmer
    pids_dir = layout.v1["pids"] / parent
    pids_dir.mkdir()
    child = subprocess.Popen(["sleep", "5"])
    try:
        time.sleep(0.02)
        fs.join((str(pids_dir),), child.pid)  # placement while warm works as before
        assert fs.read_pids(pids_dir) == [child.pid]
    finally:
        warm.stop()
        child.kill()
        child.wait()
    assert _wait_stopped()
    assert Path("/proc/self/cgroup").read_text() == before
    own = warm.own_procs_file()
    assert own is not None and os.getpid() in [int(p) for p in Path(own).read_text().split()]
