"""The device allow-list on this machine's real hierarchies: the v1 devices controller and an eBPF
device program on the cgroup2 (`unified`) side. A probe process, moved into the cgroup before it
acts, makes a block node for the host's disk (the `m` rule allows it), opens the host's disk
through a node the test made beforehand (denied: EPERM) and /dev/null (allowed). Without rules the
same probe opens the disk, so the denial is the list's doing."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from sandbox.cgroups import fs
from sandbox.cgroups.detect import Layout, detect
from sandbox.cgroups.devices import DEFAULT_RULES, DeviceRule, apply_v1, attach_v2

pytestmark = pytest.mark.root

# Runs inside the cgroup: each step's errno (0: it worked), as JSON on stdout.
PROBE = r"""
import json, os, stat, sys
sys.stdin.readline()  # "go": the test has moved us into the cgroup
node_dir, major, minor = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def errno_of(step):
    try:
        step()
        return 0
    except OSError as e:
        return e.errno

def open_close(path, flags):
    os.close(os.open(path, flags | os.O_CLOEXEC))

print(json.dumps({
    "mknod": errno_of(lambda: os.mknod(os.path.join(node_dir, "made"), stat.S_IFBLK | 0o600,
                                       os.makedev(major, minor))),
    "open_disk": errno_of(lambda: open_close(os.path.join(node_dir, "disk"), os.O_RDONLY)),
    "open_null": errno_of(lambda: open_close("/dev/null", os.O_RDWR)),
    "read_null": errno_of(lambda: open_close("/dev/null", os.O_RDONLY)),
}))
"""


@pytest.fixture(scope="module")
def layout() -> Layout:
    return detect()


@pytest.fixture(scope="module")
def disk() -> tuple[int, int]:
    """major:minor of a block device this test process can open: the host's first real disk (one
    with a device behind it), else another block device. The control (no rules: the probe opens
    it) needs one; on this VM the host itself denies /dev/vda to every process (EPERM outside any
    cgroup of ours), so a loop device stands in for it there."""
    blocks = sorted(Path("/sys/block").iterdir(), key=lambda e: (not (e / "device").exists(), e.name))
    with tempfile.TemporaryDirectory() as tmp:
        for i, entry in enumerate(blocks):
            major, minor = map(int, (entry / "dev").read_text().split(":"))
            node = os.path.join(tmp, str(i))
            os.mknod(node, stat.S_IFBLK | 0o600, os.makedev(major, minor))
            try:
                os.close(os.open(node, os.O_RDONLY | os.O_CLOEXEC))
            except OSError:
                continue
            return major, minor
    pytest.skip("no block device this process may open")


@pytest.fixture
def nodes(tmp_path: Path, disk: tuple[int, int]) -> Path:
    """A directory (on a filesystem without nodev) holding `disk`, the host disk's block node."""
    os.mknod(tmp_path / "disk", stat.S_IFBLK | 0o600, os.makedev(*disk))
    return tmp_path


def _devices(layout: Layout) -> Path:
    path = layout.v1.get("devices")
    if path is None:
        pytest.skip(f"no v1 devices controller here: {layout.describe()}")
    return path


def _unified(layout: Layout) -> Path:
    if layout.unified is None:
        pytest.skip(f"no cgroup2 hierarchy here: {layout.describe()}")
    return layout.unified


def _hierarchy(side: str, layout: Layout) -> Path:
    return _devices(layout) if side == "v1" else _unified(layout)


def _restrict(side: str, cgroup: Path, rules: Sequence[DeviceRule]) -> None:
    (apply_v1 if side == "v1" else attach_v2)(cgroup, rules)


def _container(hierarchy: Path, parent: str, name: str = "ctr") -> Path:
    """A new <hierarchy>/<parent>/<name> (the fixture removes the parent and all below it)."""
    fs.make(fs.under(hierarchy, parent))
    path = fs.under(hierarchy, parent, name)
    assert fs.make(path), f"{path} existed already"
    return path


def _probe(cgroup: Path, nodes: Path, disk: tuple[int, int]) -> dict[str, int]:
    """Start the probe, move it into `cgroup`, let it act; its errnos by step."""
    proc = subprocess.Popen([sys.executable, "-c", PROBE, str(nodes), *map(str, disk)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        fs.write(cgroup, "cgroup.procs", str(proc.pid))
        out, _ = proc.communicate(b"go\n", timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    result: dict[str, int] = json.loads(out)
    return result


DENIED_DISK = {"mknod": 0, "open_disk": errno.EPERM, "open_null": 0, "read_null": 0}
EVERYTHING = {"mknod": 0, "open_disk": 0, "open_null": 0, "read_null": 0}


def test_v1_default_rules_deny_the_host_disk(layout: Layout, parent: str, nodes: Path,
                                             disk: tuple[int, int]) -> None:
    cgroup = _container(_devices(layout), parent)
    apply_v1(cgroup, DEFAULT_RULES)
    listed = set((cgroup / "devices.list").read_text().splitlines())
    assert listed == {r.line for r in DEFAULT_RULES if r.allow}
    assert _probe(cgroup, nodes, disk) == DENIED_DISK
    assert (nodes / "made").exists()  # mknod itself is allowed ("b *:* m")


def test_v1_driver_default_list_is_the_same(layout: Layout, parent: str, nodes: Path,
                                            disk: tuple[int, int]) -> None:
    """What a container gets through `sandbox run` (PodCgroups.child(devices=DEFAULT_DEVICES):
    V1Driver.restrict_default_devices' constants): the list apply_v1 makes of DEFAULT_RULES."""
    from sandbox.cgroups.driver import Cgroup
    from sandbox.cgroups.v1 import V1Driver

    cgroup = _container(_devices(layout), parent)
    V1Driver(layout).restrict_default_devices(Cgroup("ctr", {"devices": cgroup}))
    listed = set((cgroup / "devices.list").read_text().splitlines())
    assert listed == {r.line for r in DEFAULT_RULES if r.allow}
    assert _probe(cgroup, nodes, disk) == DENIED_DISK


def test_v2_default_program_denies_the_host_disk(layout: Layout, parent: str, nodes: Path,
                                                 disk: tuple[int, int]) -> None:
    cgroup = _container(_unified(layout), parent)
    attach_v2(cgroup, DEFAULT_RULES)
    assert _probe(cgroup, nodes, disk) == DENIED_DISK
    assert (nodes / "made").exists()


@pytest.mark.parametrize("side", ["v1", "v2"])
def test_without_rules_the_same_probe_opens_the_disk(side: str, layout: Layout, parent: str, nodes: Path,
                                                     disk: tuple[int, int]) -> None:
    cgroup = _container(_hierarchy(side, layout), parent)
    _restrict(side, cgroup, ())  # privileged: nothing written, no program attached
    assert _probe(cgroup, nodes, disk) == EVERYTHING


@pytest.mark.parametrize("side", ["v1", "v2"])
def test_access_is_checked_per_mode_and_mknod_needs_m(side: str, layout: Layout, parent: str, nodes: Path,
                                                      disk: tuple[int, int]) -> None:
    """/dev/null readable but not writable; no `m` rule for block devices: mknod fails too."""
    rules: Sequence[DeviceRule] = (DeviceRule("a", -1, -1, "rwm", False), DeviceRule("c", 1, 3, "r", True),
                                   DeviceRule("b", disk[0], -1, "m", True))
    cgroup = _container(_hierarchy(side, layout), parent)
    _restrict(side, cgroup, rules)
    assert _probe(cgroup, nodes, disk) == {"mknod": 0, "open_disk": errno.EPERM, "open_null": errno.EPERM,
                                           "read_null": 0}
    no_mknod = (DeviceRule("a", -1, -1, "rwm", False), DeviceRule("c", 1, 3, "rwm", True))
    other = _container(_hierarchy(side, layout), parent, "no-mknod")
    _restrict(side, other, no_mknod)
    (nodes / "made").unlink()
    assert _probe(other, nodes, disk)["mknod"] == errno.EPERM
    assert not (nodes / "made").exists()
