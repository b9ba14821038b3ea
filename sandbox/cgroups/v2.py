"""cgroup v2 (unified) cgroupfs driver: one tree, controllers enabled down it via
cgroup.subtree_control, `cgroup.kill` to kill, `cgroup.events` to see it empty.

The functions at the top also serve the cgroup2 hierarchy of a hybrid host (v1.py)."""

from __future__ import annotations

import errno
import os
import signal
import time
from pathlib import Path

from sandbox.cgroups import fs
from sandbox.cgroups.detect import Layout
from sandbox.cgroups.driver import PARENT, PARENT_ATTEMPTS, UNIFIED, WANTED_V2, Cgroup, Stats
from sandbox.cgroups.fs import CgroupError, enable, enabled_at_root, tree_procs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from sandbox.cgroups.devices import DeviceRule
    from sandbox.cgroups.resources import CgroupLimits

def populated(top: Path) -> bool:
    return fs.read_keyed(top, "cgroup.events").get("populated", 0) != 0


def kill_tree(top: Path, deadline: float) -> None:
    """`cgroup.kill` (5.14+): the kernel kills the subtree, forks included. Without it: freeze,
    SIGKILL each pid, thaw. Then wait for `populated 0`."""
    if not top.is_dir() or not populated(top):
        return  # gone, or empty: nothing in it can fork
    if (top / "cgroup.kill").exists():
        fs.write(top, "cgroup.kill", "1")
    else:
        fs.write(top, "cgroup.freeze", "1")
        try:
            for pid in tree_procs(top):
                sigkill(pid)
        finally:
            fs.write(top, "cgroup.freeze", "0")
    wait_empty(top, deadline, populated)


def sigkill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def wait_empty(top: Path, deadline: float, busy: Callable[[Path], bool]) -> None:
    delay = 0.0002
    while busy(top):
        if time.monotonic() >= deadline:
            raise CgroupError("kill", top, f"processes left: {tree_procs(top)}")
        time.sleep(delay)
        delay = min(delay * 2, 0.01)


class V2Driver:
    """cgroupfs on a pure v2 host (also usable on any cgroup2 hierarchy given as the layout)."""

    def __init__(self, layout: Layout, parent: str = PARENT) -> None:
        if layout.unified is None:
            raise CgroupError("detect", layout.root, "no cgroup2 hierarchy")
        self.layout = layout
        self.parent = fs.check_name(parent)
        self.root = layout.unified
        self.controllers = enabled_at_root(self.root) & frozenset(WANTED_V2)
        self._parent_ready = False  # its controllers delegated (by us, or checked once)

    def can_limit(self, controller: str) -> bool:
        return controller in self.controllers

    def v1_hierarchies(self) -> dict[str, Path]:
        return {}

    def plan_pod(self, pod_uid: str) -> Cgroup:
        return Cgroup(pod_uid, {UNIFIED: fs.under(self.root, self.parent, pod_uid)})

    def create_pod(self, pod_uid: str, planned: Cgroup | None = None) -> Cgroup:
        """The pod's directory straight away (the parent is there while other pods run, see
        v1's); ENOENT: the parent is made, with the controllers delegated, and the pod tried
        again."""
        pod = (planned or self.plan_pod(pod_uid)).paths[UNIFIED]
        attempts = PARENT_ATTEMPTS
        make_parent = False
        while True:
            try:
                if make_parent:  # the first pod, or the parent's remover took it (reclaim.hand_over)
                    parent = fs.under(self.root, self.parent)
                    fs.make(parent)
                    enable(parent, self.controllers)  # ENOENT too if the remover took it again meanwhile
                    self._parent_ready = True
                made = fs.make(pod)
                break
            except CgroupError as e:
                attempts -= 1
                if e.errno != errno.ENOENT or not attempts:
                    raise
                make_parent = True
        if not made:
            raise CgroupError("create", pod, "exists already")
        if not self._parent_ready:  # once per driver, for a parent some other process made
            enable(pod.parent, self.controllers)
            self._parent_ready = True
        enable(pod, self.controllers)
        return Cgroup(pod_uid, {UNIFIED: pod})

    def create_container(self, pod: Cgroup, name: str) -> Cgroup:
        path = fs.under(self.root, self.parent, pod.name, name)
        if not fs.make(path):
            raise CgroupError("create", path, "exists already")
        return Cgroup(name, {UNIFIED: path})

    def apply(self, cgroup: Cgroup, limits: CgroupLimits) -> None:
        path = cgroup.paths[UNIFIED]
        for controller, name, value in limits.items_v2():
            if controller not in self.controllers:
                raise CgroupError(f"set {name}", path, f"the {controller} controller is not delegated here")
            if name == "memory.swap.max" and not (path / name).exists():
                continue  # no swap accounting on this kernel: nothing can swap beyond memory.max
            fs.write(path, name, value)

    def restrict_devices(self, cgroup: Cgroup, rules: Sequence[DeviceRule]) -> None:
        """cgroup v2 has no devices controller: an eBPF device program attached to the cgroup."""
        from sandbox.cgroups import devices

        devices.attach_v2(cgroup.paths[UNIFIED], rules)

    def restrict_default_devices(self, cgroup: Cgroup) -> None:
        from sandbox.cgroups import devices  # the device program is built from the rules anyway

        devices.attach_v2(cgroup.paths[UNIFIED], devices.DEFAULT_RULES)

    def add_process(self, cgroup: Cgroup, pid: int) -> None:
        fs.write(cgroup.paths[UNIFIED], "cgroup.procs", str(pid))

    def procs(self, cgroup: Cgroup) -> list[int]:
        return tree_procs(cgroup.paths[UNIFIED])

    def kill(self, cgroup: Cgroup, timeout: float = 2.0) -> None:
        kill_tree(cgroup.paths[UNIFIED], time.monotonic() + timeout)

    def remove(self, cgroup: Cgroup, timeout: float = 1.0) -> None:
        fs.rmdir_tree(cgroup.paths[UNIFIED], time.monotonic() + timeout)

    def stats(self, cgroup: Cgroup) -> Stats:
        from sandbox.cgroups import view  # the one reader of usage files (also `sandbox top`'s)

        return view.stats(cgroup.paths_json())
