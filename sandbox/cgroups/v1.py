"""cgroup v1 cgroupfs driver, also for hybrid hosts.

v1: the pod cgroup is created in every controller hierarchy the host mounts (named hierarchies such
as name=systemd are left to their manager); killing freezes the freezer cgroup, SIGKILLs every pid
in it, thaws. Hybrid: the same, plus the cgroup2 hierarchy (`unified`) gets the pod's tree, so
`cgroup.kill` and `cgroup.events` work there and any controller bound to it (hugetlb on this VM)
can be used.

Decision (issue 9's 3 ms budget): pause and each container instance get a child cgroup of their
own only in the hierarchies where something is set or read per instance (PER_INSTANCE: cpu and
cpuacct for quota, shares and `top`'s CPU; memory for the limit, `top` and the OOM kills that make
OOMKilled; devices for the allow-list; freezer for the freeze-and-kill of one instance; a v1
hugetlb for per-container hugepage limits; the cgroup2 side of a hybrid host only when it
delegates a controller). In blkio, cpuset and pids (set for the whole pod: pids.max is the pod's
podPidsLimit) and on a cgroup2 side that delegates nothing, the process stays in the pod cgroup.
runc puts a container in all of them; nothing issue 9 asks for reads there per container. What
changes for readers: a container's Cgroup.paths (and so the pod record, `exec`'s placement and
`inspect`) name the pod cgroup's directory for those hierarchies, so `inspect` shows the pod's
pids.max and cpuset there, the limits the container actually runs under. 8 mkdir and 8 rmdir
less per one-container pod on this host (PER_INSTANCE has the figure).
"""

from __future__ import annotations

import errno
import time
from pathlib import Path

from sandbox.cgroups import fs
from sandbox.cgroups.detect import Layout
from sandbox.cgroups.driver import PARENT, PARENT_ATTEMPTS, UNIFIED, WANTED_V2, Cgroup, Stats
from sandbox.cgroups.fs import CgroupError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from sandbox.cgroups.devices import DeviceRule
    from sandbox.cgroups.resources import CgroupLimits

_FREEZE_WAIT = 1.0
# Where an instance (pause or a container) gets a cgroup of its own; see the module docstring.
# Each hierarchy left out saves a mkdir and an rmdir per instance (15-36 us each here, plus the
# kernel's offline work after the rmdir, done by kworkers on the same two CPUs). Measured with an
# in-process timer, medians of 15 interleaved one-container pod cycles: pause's and the
# container's children 0.97 -> 0.71 ms, the instance's release 0.39 -> 0.30, the pod's undo
# 1.42 -> 1.24 (~0.5 ms of the pod cycle).
PER_INSTANCE = frozenset({"cpu", "cpuacct", "memory", "devices", "freezer", "hugetlb"})
# devices.DEFAULT_RULES as the v1 writes devices.apply_v1 makes of them (file, lines in order):
# restrict_default_devices writes these without importing the devices module (its records and
# their checks). tests/unit/test_cgroup_devices.py checks they are devices.v1_lines(DEFAULT_RULES).
DEFAULT_DEVICE_WRITES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("devices.deny", ("a *:* rwm",)),
    ("devices.allow", ("c *:* m", "b *:* m", "c 1:3 rwm", "c 1:8 rwm", "c 1:7 rwm", "c 5:0 rwm", "c 1:5 rwm",
                       "c 1:9 rwm", "c 136:* rwm", "c 5:2 rwm", "c 10:200 rwm")),
)


def _cpuset_init(path: Path, made: bool = False) -> None:
    """A new v1 cpuset cgroup starts with empty cpus and mems, and no task can join it: copy the
    parent's (runc's ensureParent). `made`: this process just made it, so it is empty (or, under
    a parent with clone_children, holds the same values): written without reading it first."""
    for name in ("cpuset.cpus", "cpuset.mems"):
        if made or not fs.read(path, name):
            fs.write(path, name, fs.read(path.parent, name))


def freeze_kill(freezer: Path, deadline: float) -> None:
    """Freeze the freezer cgroup (so nothing forks meanwhile), SIGKILL every pid below it, thaw.
    Waits while the kernel reports FREEZING (a task in an uninterruptible sleep delays it); if it
    never settles, kill anyway: SIGKILL still lands once thawed."""
    # a kill is off the usual path: v2 is not imported for a hybrid host's pod start and end
    # (its import: 0.22 ms of each pod cycle here)
    from sandbox.cgroups.v2 import sigkill

    fs.write(freezer, "freezer.state", "FROZEN")
    until = min(deadline, time.monotonic() + _FREEZE_WAIT)
    delay = 0.0002
    while fs.read(freezer, "freezer.state") != "FROZEN" and time.monotonic() < until:
        time.sleep(delay)
        delay = min(delay * 2, 0.01)
    try:
        for pid in fs.tree_procs(freezer):
            sigkill(pid)
    finally:
        fs.write(freezer, "freezer.state", "THAWED")


def kill_until_empty(top: Path, deadline: float) -> None:
    """Without a freezer: SIGKILL what is listed, again until nothing is (forks between passes)."""
    from sandbox.cgroups.v2 import sigkill

    delay = 0.0002
    while pids := fs.tree_procs(top):
        for pid in pids:
            sigkill(pid)
        if time.monotonic() >= deadline:
            raise CgroupError("kill", top, f"processes left: {pids}")
        time.sleep(delay)
        delay = min(delay * 2, 0.01)


class V1Driver:
    def __init__(self, layout: Layout, parent: str = PARENT, controllers: Iterable[str] | None = None,
                 per_instance: frozenset[str] | None = PER_INSTANCE) -> None:
        """`controllers`: the v1 controllers to use (default: every one mounted, as runc and the
        kubelet's cgroupfs driver do; each hierarchy costs ~0.3 ms per pod cycle here).
        `per_instance`: the keys where create_container makes a child (None: every hierarchy,
        as the systemd driver's scopes have)."""
        self.layout = layout
        self.parent = fs.check_name(parent)
        wanted = set(layout.v1) if controllers is None else set(controllers)
        self.v1 = {c: p for c, p in layout.v1.items() if c in wanted}
        # the cgroup2 hierarchy of a hybrid host, and what it delegates below its root
        self.unified = layout.unified if layout.mode == "hybrid" else None
        self.unified_controllers = fs.enabled_at_root(self.unified) if self.unified else frozenset()
        self._keys = sorted(self.v1)
        # key -> hierarchy directory, in _keys order with the cgroup2 side last
        self._roots = {c: self.v1[c] for c in self._keys}
        if self.unified is not None:
            self._roots[UNIFIED] = self.unified
        self._parent_ready = False
        # the keys whose directory an instance shares with its pod; co-mounted controllers share a
        # directory, which is an instance's own when any of them is
        own_dirs = {path for key, path in self._roots.items()
                    if per_instance is None or key in per_instance
                    or (key == UNIFIED and self.unified_controllers & frozenset(WANTED_V2))}
        self._shared = frozenset(key for key, path in self._roots.items() if path not in own_dirs)

    def _paths(self, *parts: str) -> dict[str, Path]:
        return fs.under_each(self._roots, *parts)

    def _make_all(self, paths: dict[str, Path], fresh: bool, inner: bool, made: list[Path] | None = None) -> None:
        """mkdir in each hierarchy once; `fresh`: the cgroup must not exist anywhere; `inner`: it
        will have children (on the cgroup2 side, delegate the controllers the host delegates);
        `made`: gets each directory this call created, for the caller to undo on failure."""
        done: set[Path] = set()
        for key, path in paths.items():
            if path in done:
                continue
            done.add(path)
            created = fs.make(path)
            if created and made is not None:
                made.append(path)
            if not created and fresh:
                raise CgroupError("create", path, "exists already")
            if key == "cpuset" and not fresh:
                # the parent: fill it from the root and let the kernel copy it into every cgroup
                # created below (cgroup.clone_children is inherited), saving reads and writes per pod
                _cpuset_init(path, made=created)
                fs.write(path, "cgroup.clone_children", "1")
            if key == UNIFIED and inner:
                fs.enable(path, self.unified_controllers & frozenset(WANTED_V2))

    def can_limit(self, controller: str) -> bool:
        """A v1 hierarchy of the controller, or (hybrid) the cgroup2 side delegating it."""
        return controller in self.v1 or controller in self.unified_controllers

    def v1_hierarchies(self) -> dict[str, Path]:
        """controller -> hierarchy directory, for the controllers this driver uses."""
        return dict(self.v1)

    def plan_pod(self, pod_uid: str) -> Cgroup:
        return Cgroup(pod_uid, self._paths(self.parent, pod_uid))

    def create_pod(self, pod_uid: str, planned: Cgroup | None = None) -> Cgroup:
        """The pod's directories straight away: while other pods run the parent is there, and
        making it first cost 9 mkdir calls answering EEXIST plus 4 cpuset reads and writes per
        runtime (create_pod with the parent there: 0.67-0.83 -> 0.43-0.45 ms, medians of 15).
        ENOENT says it is missing (the first pod): made then, with its cpuset, and the pod tried
        again (one failed mkdir; only what this call made is removed on a failure: was 9 rmdir
        of nothing per isolated pod)."""
        paths = dict((planned or self.plan_pod(pod_uid)).paths)
        attempts = PARENT_ATTEMPTS
        make_parent = False
        while True:
            made: list[Path] = []
            try:
                if make_parent:
                    # the first pod, or the parent's remover took it (reclaim.hand_over); inside the
                    # try: the remover may take it again between its mkdir and the cpuset writes
                    self._make_all(self._paths(self.parent), fresh=False, inner=True)
                    self._parent_ready = True
                self._make_all(paths, fresh=True, inner=True, made=made)
                break
            except CgroupError as e:
                if made:  # never one that was there before: a leftover is not ours to remove
                    fs.rmdir_trees(made, time.monotonic() + 0.1)
                attempts -= 1
                if e.errno != errno.ENOENT or not attempts:
                    raise
                make_parent = True
        if not self._parent_ready and "cpuset" in paths:
            self._check_cpuset(paths["cpuset"])
        return Cgroup(pod_uid, paths)

    def _check_cpuset(self, pod: Path) -> None:
        """Once per driver, for a parent some other process made: without cpus (its maker died
        half-way) or without clone_children (an older sandbox's) the pod's cpuset came empty,
        and no task could join it; fill the parent and the pod. One read when all is well."""
        if not fs.read(pod, "cpuset.cpus"):
            _cpuset_init(pod.parent)
            fs.write(pod.parent, "cgroup.clone_children", "1")
            _cpuset_init(pod)
            fs.write(pod, "cgroup.clone_children", "1")
        self._parent_ready = True

    def create_container(self, pod: Cgroup, name: str) -> Cgroup:
        """A child where the instance has values of its own; the pod cgroup elsewhere (module
        docstring). Its paths name both: every directory its processes join."""
        paths = self._paths(self.parent, pod.name, name)
        for key in self._shared:
            paths[key] = pod.paths[key]
        self._make_all(self._own(Cgroup(name, paths)), fresh=True, inner=False)
        return Cgroup(name, paths)

    def _own(self, cgroup: Cgroup) -> dict[str, Path]:
        """The directories `cgroup` made and may kill through and remove: not the pod cgroup's,
        where an instance only lives. By name too, so a record from before the decision, whose
        instance had a child everywhere, is still released whole."""
        shared = self._shared
        if not shared:
            return cgroup.paths
        return {key: path for key, path in cgroup.paths.items() if key not in shared or path.name == cgroup.name}

    def apply(self, cgroup: Cgroup, limits: CgroupLimits) -> None:
        for controller, name, value in limits.items_v1():
            if controller == "hugetlb" and controller not in self.v1:
                # hybrid with hugetlb on the cgroup2 side: v2 file names there
                unified = cgroup.unified()
                if unified is None or "hugetlb" not in self.unified_controllers:
                    raise CgroupError(f"set {name}", cgroup.name, "no hugetlb controller")
                fs.write(unified, name.replace(".limit_in_bytes", ".max"), value)
                continue
            path = cgroup.paths.get(controller)
            if path is None:
                raise CgroupError(f"set {name}", cgroup.name, f"the {controller} controller is not mounted")
            if controller in self._shared and path.name != cgroup.name:  # never the pod's value by mistake
                raise CgroupError(f"set {name}", cgroup.name, f"{controller} is set for the whole pod only")
            if name == "memory.memsw.limit_in_bytes" and not (path / name).exists():
                continue  # swap accounting off (swapaccount=0): the memory limit is all there is
            if name == "memory.limit_in_bytes":
                self._write_memory(path, value, limits.memsw_limit)
            else:
                fs.write(path, name, value)

    @staticmethod
    def _write_memory(path: Path, value: str, memsw: int | None) -> None:
        """memory <= memsw always: lowering memsw first would fail, raising memory first too
        (runc's setMemoryAndSwap order)."""
        try:
            fs.write(path, "memory.limit_in_bytes", value)
        except CgroupError as e:
            if e.errno != errno.EINVAL or memsw is None:
                raise
            fs.write(path, "memory.memsw.limit_in_bytes", str(memsw))
            fs.write(path, "memory.limit_in_bytes", value)

    def restrict_devices(self, cgroup: Cgroup, rules: Sequence[DeviceRule]) -> None:
        """The v1 devices controller's allow-list (on a hybrid host it alone decides: a device
        program on the cgroup2 side would be a second copy of the same list)."""
        from sandbox.cgroups import devices

        path = cgroup.paths.get("devices")
        if path is None:
            raise CgroupError("restrict devices", cgroup.name, "the devices controller is not mounted")
        devices.apply_v1(path, rules)

    def restrict_default_devices(self, cgroup: Cgroup) -> None:
        """restrict_devices(cgroup, devices.DEFAULT_RULES), from DEFAULT_DEVICE_WRITES."""
        path = cgroup.paths.get("devices")
        if path is None:
            raise CgroupError("restrict devices", cgroup.name, "the devices controller is not mounted")
        for name, lines in DEFAULT_DEVICE_WRITES:
            fs.write_each(path, name, lines)

    def add_process(self, cgroup: Cgroup, pid: int) -> None:
        for path in cgroup.dirs():
            fs.write(path, "cgroup.procs", str(pid))

    def _tracker(self, cgroup: Cgroup) -> Path:
        """The hierarchy whose cgroup.procs answers "who is in there": freezer, else any of its own."""
        own = self._own(cgroup)
        for key in ("freezer", "pids", "memory", *self._keys):
            if key in own:
                return own[key]
        raise CgroupError("procs", cgroup.name, "no v1 hierarchy")

    def procs(self, cgroup: Cgroup) -> list[int]:
        return sorted(set(fs.tree_procs(self._tracker(cgroup))))

    def kill(self, cgroup: Cgroup, timeout: float = 2.0) -> None:
        if not fs.tree_procs(self._tracker(cgroup)):
            return  # empty (the usual case at an instance's end): nothing in it can fork
        from sandbox.cgroups import v2  # cgroup.kill's helpers: only when something is left

        deadline = time.monotonic() + timeout
        own = self._own(cgroup)
        unified = own.get(UNIFIED)  # never the pod's: that kill would take the whole pod
        if unified is not None and (unified / "cgroup.kill").exists():
            v2.kill_tree(unified, deadline)  # atomic, forks included; then catch v1-only members
        freezer = own.get("freezer")
        if freezer is not None and freezer.is_dir():
            freeze_kill(freezer, deadline)
        else:  # no freezer: kill until none is left (a fork may slip through one pass)
            kill_until_empty(self._tracker(cgroup), deadline)
        v2.wait_empty(self._tracker(cgroup), deadline, lambda top: bool(fs.tree_procs(top)))

    def remove_now(self, cgroup: Cgroup) -> bool:
        """An instance's end, its processes reaped (the usual case): its cgroup removed without
        the emptiness check `kill` makes first. The rmdir of its tracking directory is that check
        (EBUSY while a process is left there or below: False, its other directories untouched,
        and kill and remove follow); every process of the instance is in that hierarchy below the instance's
        directory (placed there at its start, held there by its cgroup namespace), so once it
        is gone the other directories hold none either. One rmdir instead of a cgroup.procs
        read and a listing before the rmdir: the instance's release 0.25 -> 0.19 ms (medians of
        8 x 150 pod cycles interleaved with main's code, bench/cgroup_ops.py)."""
        if not fs.rmdir_tree_now(self._tracker(cgroup)):
            return False
        self.remove(cgroup)
        return True

    def remove(self, cgroup: Cgroup, timeout: float = 1.0) -> None:
        fs.rmdir_trees(sorted(set(self._own(cgroup).values())), time.monotonic() + timeout)

    def stats(self, cgroup: Cgroup) -> Stats:
        from sandbox.cgroups import view  # the one reader of usage files (also `sandbox top`'s)

        return view.stats(cgroup.paths_json())
