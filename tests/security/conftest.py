"""The security tier reuses the root tier's fixtures (tests/integration/conftest.py): loaded here
under the module name `integration_conftest`, so tests can also `from integration_conftest import
Sandbox, ns_inode` for helpers and type annotations, and re-exported here."""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_name = "integration_conftest"
if _name not in sys.modules:
    _spec = importlib.util.spec_from_file_location(
        _name, Path(__file__).resolve().parents[1] / "integration" / "conftest.py")
    assert _spec is not None and _spec.loader is not None
    _module = importlib.util.module_from_spec(_spec)
    sys.modules[_name] = _module
    _spec.loader.exec_module(_module)

# Everything public, so this module can stand in for the integration one: with both directories
# collected in one session, `from conftest import Sandbox` in tests/integration may find this one.
from integration_conftest import *  # noqa: E402,F401,F403

# What an escape would change on the host: its name, its core_pattern, the files of /etc and the
# installed programs (name, size, mode, mtime; contents only change with one of those).
_WATCHED_TREES = ("/etc", "/usr/bin", "/usr/sbin", "/usr/lib/x86_64-linux-gnu/security")


def _tree_state(root: str) -> list[tuple[str, int, int, int]]:
    found = []
    for top, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(top, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            found.append((path, st.st_size, st.st_mode, st.st_mtime_ns))
    return found


def host_state() -> dict[str, object]:
    with open("/proc/sys/kernel/core_pattern") as f:
        core_pattern = f.read()
    return {"hostname": socket.gethostname(), "core_pattern": core_pattern,
            **{root: _tree_state(root) for root in _WATCHED_TREES}}


@pytest.fixture(autouse=True)
def host_unchanged() -> Iterator[None]:
    """Every security test leaves the host as it found it (the issue's check: hostname,
    core_pattern, /etc, the installed binaries)."""
    before = host_state()
    yield
    after = host_state()
    changed = [key for key in before if before[key] != after[key]]
    assert not changed, f"the host changed during the test: {changed}"
