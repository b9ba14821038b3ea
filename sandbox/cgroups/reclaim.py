"""The tear-down registry's cgroup undo (`sandbox.pod.teardown.Cgroup`): given one
recorded cgroup directory of any hierarchy, kill what still runs in it and below, then remove it
leaf-first. Works from the path alone (after a runtime crash, `gc` has nothing else):
`cgroup.kill` where the directory has it (v2, and the cgroup2 side of a hybrid host), freeze-kill
in a v1 freezer hierarchy, a SIGKILL loop elsewhere."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

from sandbox.cgroups import fs, v1, v2
from sandbox.cgroups.detect import DEFAULT_ROOT
from sandbox.cgroups.fs import CgroupError


def kill_and_remove(path: Path, root: Path = DEFAULT_ROOT, timeout: float = 2.0) -> bool:
    """True if it removed something, False if `path` was already gone; OSError if it could not
    (the registry's contract). Refuses a path that is not under `root` or not at least two levels
    below its hierarchy's root (`<parent>/<pod>`): a hierarchy's root is never removed through
    this, and the pods' parent only once it is empty (remove_parent). The hierarchy's root is
    where the path's filesystem is mounted: `root` itself on a v2 host, `root/<controller>` on v1."""
    real = os.path.normpath(path)
    if os.path.islink(real) or not os.path.isdir(real):
        return False
    base = os.path.normpath(root)
    rel = os.path.relpath(real, base)
    if rel.startswith("..") or rel == "." or _depth_in_hierarchy(real, base) < 2:
        raise OSError(errno.EPERM, f"not a pod cgroup under {root}", str(path))
    top = Path(real)
    deadline = time.monotonic() + timeout
    try:
        if not fs.rmdir_tree_now(real):  # the usual end: nothing runs any more (0.43 -> 0.17 ms each)
            _kill_tree(top, deadline)
            fs.rmdir_tree(top, deadline)
        remove_parent(top)
    except CgroupError as e:
        raise OSError(e.errno or errno.EIO, str(e), str(path)) from e
    return True


def remove_parent(pod: Path) -> bool:
    """The pods' parent (`--cgroup-parent`, made on demand by the first pod) removed once its
    last pod is: the host keeps no cgroup of ours while no pod runs. A systemd slice is systemd's
    to remove. A pod starting meanwhile keeps it (EBUSY), or makes it again (create_pod)."""
    parent = pod.parent
    if parent.name.endswith(".slice"):
        return False
    return fs.remove_if_empty(parent)


def _kill_tree(top: Path, deadline: float) -> None:
    """Whatever still runs in `top` and below, killed: `cgroup.kill`, else freeze and kill in a
    v1 freezer hierarchy, else a SIGKILL loop."""
    if (top / "cgroup.kill").exists():
        v2.kill_tree(top, deadline)
    elif not v2.tree_procs(top):
        pass  # empty: the usual case, its processes were killed and reaped first
    elif (top / "freezer.state").exists():
        v1.freeze_kill(top, deadline)
        v1.kill_until_empty(top, deadline)
    else:
        v1.kill_until_empty(top, deadline)


def _depth_in_hierarchy(path: str, root: str) -> int:
    """Directories between `path` and the mount its filesystem starts at (each cgroup hierarchy is
    a mount of its own), counted no higher than `root`."""
    dev = os.stat(path).st_dev
    depth = 0
    while path != root:
        parent = os.path.dirname(path)
        if os.stat(parent).st_dev != dev:
            break
        depth += 1
        path = parent
    return depth
