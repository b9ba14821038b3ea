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
    this; the pods' parent stays for the next pod and is handed to a remover once no pod is in
    it (hand_over). The hierarchy's root is where the path's filesystem is mounted: `root`
    itself on a v2 host, `root/<controller>` on v1."""
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
    deadline = time.monotonic() + timeout
    try:
        _remove_pause(real)
        if not fs.rmdir_tree_now(real):  # the usual end: nothing runs any more (0.43 -> 0.17 ms each)
            top = Path(real)
            _kill_tree(top, deadline)
            fs.rmdir_tree(top, deadline)
    except CgroupError as e:
        raise OSError(e.errno or errno.EIO, str(e), str(path)) from e
    _hand_over(os.path.dirname(real), base)
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
    """The pods' parent of `pod` removed at once if no pod is in it (`sandbox gc`, where a
    remover is not worth waiting for). A systemd slice is systemd's to remove."""
    parent = pod.parent
    if parent.name.endswith(".slice"):
        return False
    return fs.remove_if_empty(parent)


# The pods' parent (`--cgroup-parent`) outlives its pods: making it with the first pod and removing
# it with the last cost each pod run alone ~0.6 ms (its mkdir in nine hierarchies, the failed
# first mkdir of the pod's directory, the cpuset copy) plus ~0.1 ms of rmdir. runc and the kubelet
# never remove theirs; ours goes GRACE_S after the last pod, by a remover of its own (the native
# shim, `shim --cgroup-remover`: it starts in ~0.4 ms of CPU, at SCHED_IDLE, and waits asleep).
# Pods run back to back keep it. Measured with bench/cgroup_cost.py (see the commit message).
GRACE_S = 1.0
# A remover's token: an abstract AF_UNIX name per cgroup root and parent, bound by the runtime
# that spawns the remover and inherited by it as fd 3; a runtime whose bind fails finds one
# pending (no file to leave behind, released by the kernel whatever ends the remover).
_TOKEN = "sandbox-cgroup-remover:{root}:{parent}"
_SUN_PATH_MAX = 107  # sun_path's 108 bytes less the abstract name's leading NUL
_pending: dict[tuple[str, str], float] = {}  # (root, parent) -> when this process last saw a remover pending


def hand_over(parent: str, root: str) -> None:
    """A pod cgroup below `parent` went: if no pod is left in it (st_nlink: a directory's two
    links plus one per subdirectory), make sure a remover is pending for it. One stat while
    other pods run; else one bind (and, the first time, a spawn). Called in each hierarchy of the
    pod: a remover spawned or found pending here within half a grace covers the others, as it
    cannot remove anything before a whole grace without change has passed (each of the pod's
    rmdirs is a change, and the pod's other directories keep it from removing meanwhile).
    That check comes first: the pod's other hierarchies then cost no stat (8 of the 9 calls of
    a pod's undo on this hybrid host)."""
    if parent.endswith(".slice"):
        return  # systemd's
    name = os.path.basename(parent)
    key = (root, name)
    now = time.monotonic()
    if now - _pending.get(key, -GRACE_S) < GRACE_S / 2:
        return  # pending or spawned here just now: whether another pod is there or not, it is covered
    try:
        if os.stat(parent).st_nlink > 2:
            return  # another pod is there: its own end hands over
    except OSError:
        return
    import _socket  # already loaded on the run path (the exit watcher's netlink socket)

    token_name = _TOKEN.format(root=root, parent=name).encode("utf-8", "surrogateescape")
    token = None
    if len(token_name) <= _SUN_PATH_MAX:
        token = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)
        try:
            token.bind(b"\0" + token_name)
        except OSError:  # EADDRINUSE: a remover is pending
            token.close()
            _pending[key] = now
            return
    try:
        if not _spawn(root, name, token.fileno() if token is not None else None):
            fs.remove_if_empty(parent)  # a tree without its native build: as before, at once
        _pending[key] = now
    except (OSError, CgroupError) as e:
        from sandbox.log import get_logger

        get_logger(__name__).warning("cannot start the remover of the pods' parent cgroup %s: %s (`sandbox gc` "
                                     "removes it)", parent, e)
    finally:
        if token is not None:
            token.close()  # the remover holds its own copy


def _spawn(root: str, parent: str, token: int | None) -> bool:
    """`shim --cgroup-remover` (native/shim.c), detached (process/detached.py: its own session,
    stdio on /dev/null, SCHED_IDLE, reaped by the agent), the token as its fd 3."""
    import sandbox
    from sandbox.process import detached

    shim = os.path.join(os.path.dirname(sandbox.__file__), "_bin", "shim")  # not process.shim: socket, select
    if not os.access(shim, os.X_OK):
        return False
    detached.spawn([shim, "--cgroup-remover", root, parent, str(round(GRACE_S * 1000))],
                   fds={3: token} if token is not None else None)
    return True


_hand_over = hand_over  # unit tests on plain directories replace it


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
