"""Root tier for sandbox.cgroups: real hierarchies of this machine, a unique parent cgroup per
test (`sandbox-test-<hex>`), and a finaliser that kills and removes it in every hierarchy even when
the test failed. Nothing outside that parent is ever touched."""

from __future__ import annotations

import glob
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.cgroups import fs
from sandbox.cgroups.detect import DEFAULT_ROOT

PREFIX = "sandbox-test-"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root: creates cgroups")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


def leftovers(name: str = PREFIX + "*") -> list[str]:
    return sorted(p for p in glob.glob(str(DEFAULT_ROOT / "*" / name)) if os.path.isdir(p))


def _scrub(name: str) -> None:
    for top in leftovers(name):
        for d, _, _ in os.walk(top):
            try:
                pids = fs.read_pids(Path(d))
            except fs.CgroupError:
                continue
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        freezer = Path(top) / "freezer.state"
        if freezer.exists():
            freezer.write_text("THAWED")
        try:
            fs.rmdir_tree(Path(top), time.monotonic() + 2.0)
        except fs.CgroupError:
            pass


@pytest.fixture
def parent() -> Iterator[str]:
    """A parent cgroup name no one else uses; everything under it is removed afterwards."""
    name = PREFIX + uuid.uuid4().hex[:10]
    try:
        yield name
    finally:
        _scrub(name)
        assert leftovers(name) == [], "test cgroups left behind"
