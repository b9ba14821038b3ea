"""The tear-down registry's cgroup undo (`sandbox.pod.teardown.Cgroup`): given one
recorded cgroup directory of any hierarchy, kill what still runs in it and below, then remove it
leaf-first. Works from the path alone (after a runtime crash, `gc` has nothing else):
`cgroup.kill` where the directory has it (v2, and the cgroup2 side of a hybrid host), freeze-kill
in a v1 freezer hierarchy, a SIGKILL loop elsewhere."""

from __future__ import annotations

import errno
import os
import stat
import time
from pathlib import Path

from sandbox.cgroups import fs
from sandbox.cgroups.detect import DEFAULT_ROOT
from sandbox.cgroups.driver import PAUSE
from sandbox.cgroups.fs import CgroupError


def kill_and_remove(path: Path, root: Path = DEFAULT_ROOT, timeout: float = 2.0) -> bool:
    """True if it removed something, False if `path` was already gone; OSError if it could not
    (the registry's contract). Refuses a path that is not under `root` or not at least two levels
    below its hierarchy's root (`<parent>/<pod>`): a hierarchy's root is never removed through
    this, and the pods' parent only once it is empty (remove_parent). The hierarchy's root is
    where the path's filesystem is mounted: `root` itself on a v2 host, `root/<controller>` on v1."""
    real = os.path.normpath(path)
    try:
        st = os.lstat(real)  # a symlink is not a cgroup (and is never followed)
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode):
        return False
    base = os.path.normpath(root)
    if not real.startswith(base.rstrip("/") + "/") or not _two_below_its_mount(real, base, st.st_dev):
        raise OSError(errno.EPERM, f"not a pod cgroup under {root}", str(path))
    top = Path(real)
    deadline = time.monotonic() + timeout
    try:
        _remove_pause(real)
        if not fs.rmdir_tree_now(real):  # the usual end: nothing runs any more (0.43 -> 0.17 ms each)
            _kill_tree(top, deadline)
            fs.rmdir_tree(top, deadline)
        remove_parent(top)
    except CgroupError as e:
        raise OSError(e.errno or errno.EIO, str(e), str(path)) from e
    return True


def _remove_pause(pod: str) -> None:
    """pause's child first, by its name: at the pod's undo it is the one child left where it
    exists (each container's went with its instance), so the pod's own rmdir then needs no
    failed attempt (EBUSY) and no listing in the five hierarchies where pause has one: the
    pod's undo 0.99 -> 0.92 ms (medians of 8 x 150 pod cycles interleaved with main's code,
    bench/cgroup_ops.py). Anything else (no such child, a process still in it) is left to the
    generic removal that follows."""
    try:
        fs.rmdir_tree_now(os.path.join(pod, PAUSE))
    except CgroupError:
        pass


def remove_parent(pod: Path) -> bool:
    """The pods' parent (`--cgroup-parent`, made on demand by the first pod) removed once its
    last pod is: the host keeps no cgroup of ours while no pod runs. A systemd slice is systemd's
    to remove. A pod starting meanwhile keeps it (EBUSY), or makes it again (create_pod).
    Not handed to a detached remover after a grace, as the last bridge is: measured here, the
    spawn and the new interpreter's start beside the runtime's last steps cost an isolated pod
    cycle +8 ms (10 interleaved rounds, medians), against -0.9 ms for pods back to back that keep
    the parent (25 rounds): rmdir of an empty parent is ~0.03 ms per hierarchy."""
    parent = pod.parent
    if parent.name.endswith(".slice"):
        return False
    return fs.remove_if_empty(parent)


def _kill_tree(top: Path, deadline: float) -> None:
    """Whatever still runs in `top` and below, killed: `cgroup.kill`, else freeze and kill in a
    v1 freezer hierarchy, else a SIGKILL loop."""
    from sandbox.cgroups import v1, v2  # a kill: off the usual path (its processes were reaped first)

    if (top / "cgroup.kill").exists():
        v2.kill_tree(top, deadline)
    elif not fs.tree_procs(top):
        pass  # empty: the usual case, its processes were killed and reaped first
    elif (top / "freezer.state").exists():
        v1.freeze_kill(top, deadline)
        v1.kill_until_empty(top, deadline)
    else:
        v1.kill_until_empty(top, deadline)


def _two_below_its_mount(path: str, root: str, dev: int) -> bool:
    """Whether `path` (on device `dev`) lies at least two directories below the mount its
    filesystem starts at (each cgroup hierarchy is a mount of its own), counting no higher than
    `root`: two stat calls, where walking up to the mount took four, and isdir/islink two more
    (36 syscalls less per pod on this hybrid host; the pod's undo went 1.58 -> 1.47 ms, median
    of 30 interleaved pod cycles)."""
    parent = os.path.dirname(path)
    if parent == root or os.stat(parent).st_dev != dev:
        return False
    return os.stat(os.path.dirname(parent)).st_dev == dev
