"""The interface every cgroup driver offers, and the handles it returns.

Two cgroupfs drivers exist (v1.py, which also serves hybrid hosts, and v2.py), and the systemd
driver (systemd.py: a transient slice per pod, a scope per container through D-Bus).
Layout: `<hierarchy>/<parent>/<pod-uid>/<child>` with one child per container plus `pause`;
`parent` is "sandbox" for the runtime, a unique name in tests. The systemd driver's is
`<hierarchy>/<parent>.slice/<parent>-<uid>.slice/<parent>-<uid>-<child>.scope` ('-' in the uid
becomes '_'), and its `create_container` only plans the scope: systemd starts a scope with its first
process, so a driver whose `places_processes` attribute is true must get every process through
`add_process` (sandbox.pod.cgroups.PodCgroups.spawn_fields/joiner), not by cgroup.procs or
CLONE_INTO_CGROUP.
"""

from __future__ import annotations

import os
from pathlib import Path

from sandbox.cgroups.detect import Layout
from sandbox.record import Record, field

TYPE_CHECKING = False  # typing costs ~3 ms to import: `sandbox run` creates cgroups
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Protocol

    from sandbox.cgroups.devices import DeviceRule
    from sandbox.cgroups.resources import CgroupLimits
else:
    Protocol = object

PARENT = "sandbox"
# The pods' parent goes a grace after its last pod (reclaim.hand_over's remover), so a pod starting
# at that moment finds it gone (ENOENT) and makes it again: this many tries in all.
PARENT_ATTEMPTS = 3
PAUSE = "pause"
UNIFIED = "unified"  # the key of the cgroup2 directory in Cgroup.paths
# what a pod may use on a cgroup2 hierarchy, when the host has it enabled at the hierarchy's root
WANTED_V2 = ("cpu", "cpuset", "memory", "pids", "hugetlb", "io")


class Cgroup(Record):
    """One cgroup in every hierarchy it lives in: key (v1 controller name, or UNIFIED) -> directory.
    Co-mounted v1 controllers share a directory."""

    name: str
    paths: dict[str, Path] = field(default_factory=dict)

    def dirs(self) -> list[Path]:
        return sorted(set(self.paths.values()))

    def unified(self) -> Path | None:
        return self.paths.get(UNIFIED)

    def paths_json(self) -> dict[str, str]:
        """key -> directory as text, as the pod record holds it (sandbox/cgroups/view.py reads that)."""
        return {key: str(path) for key, path in self.paths.items()}


class Stats(Record):
    memory_usage: int | None = None  # bytes, now
    memory_peak: int | None = None  # bytes, high-water mark (v1 max_usage_in_bytes, v2 memory.peak)
    memory_limit: int | None = None  # None: unlimited
    oom_kills: int = 0  # processes the OOM killer took in this cgroup
    limit_hits: int = 0  # times usage reached the limit (v1 memory.failcnt, v2 memory.events max)
    cpu_usage_ns: int | None = None
    pids: int | None = None


class CgroupDriver(Protocol):
    layout: Layout
    parent: str

    def can_limit(self, controller: str) -> bool:
        """Whether limits of this controller ("memory", "hugetlb"...) can be written here."""
        ...

    def v1_hierarchies(self) -> dict[str, Path]:
        """v1 controller -> its hierarchy's directory (empty on v2)."""
        ...

    def plan_pod(self, pod_uid: str) -> Cgroup:
        """The pod cgroup's directories, not created (the tear-down registry records them first)."""
        ...

    def create_pod(self, pod_uid: str, planned: Cgroup | None = None) -> Cgroup:
        """`<parent>/<pod_uid>` everywhere; the parent is created when missing and kept.
        `planned`: plan_pod's answer for this pod, if the caller has it (not computed again)."""
        ...

    def create_container(self, pod: Cgroup, name: str) -> Cgroup:
        """A child of the pod cgroup; an existing one is an error (never adopt a leftover)."""
        ...

    def apply(self, cgroup: Cgroup, limits: CgroupLimits) -> None: ...

    def restrict_devices(self, cgroup: Cgroup, rules: Sequence[DeviceRule]) -> None:
        """Only these devices may be opened or created in the cgroup (runc's allow-list)."""
        ...

    def restrict_default_devices(self, cgroup: Cgroup) -> None:
        """restrict_devices with runc's default list (devices.DEFAULT_RULES): every container that
        is not privileged gets it, so a driver may write it without building the rules."""
        ...

    def add_process(self, cgroup: Cgroup, pid: int) -> None:
        """Move `pid` into the cgroup in every hierarchy."""
        ...

    def procs(self, cgroup: Cgroup) -> list[int]:
        """Every pid in the cgroup and its descendants."""
        ...

    def kill(self, cgroup: Cgroup, timeout: float = 2.0) -> None:
        """SIGKILL every process of the cgroup and its descendants, with no escape by fork, and wait
        until the cgroup is empty."""
        ...

    def remove(self, cgroup: Cgroup, timeout: float = 1.0) -> None:
        """Remove the cgroup and its children, leaf-first, retrying while they empty."""
        ...

    def stats(self, cgroup: Cgroup) -> Stats: ...


def oom_kills(paths: Mapping[str, str | Path]) -> int:
    """The OOM killer's kills so far in the cgroup whose directories are `paths` (Cgroup.paths,
    or the pod record's): v1 memory.oom_control's `oom_kill`, else the cgroup2 directory's
    memory.events; 0 when neither can be read (a systemd scope already gone, no memory
    controller). All an instance's end needs: one file read instead of view.stats' nine and its
    import (with v1.kill's lighter listing, an instance's release went 1.05 -> 0.44 ms: median of
    30 interleaved pod cycles, in-process phase timer)."""
    memory = paths.get("memory")
    path = os.path.join(memory, "memory.oom_control") if memory is not None else None
    if path is None and UNIFIED in paths:
        path = os.path.join(paths[UNIFIED], "memory.events")
    if path is None:
        return 0
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError:
        return 0
    for line in text.splitlines():
        key, _, value = line.partition(b" ")
        if key == b"oom_kill":
            return int(value)
    return 0


def driver_for(layout: Layout, parent: str = PARENT, every_hierarchy: bool = False) -> CgroupDriver:
    """The cgroupfs driver for the layout (v1 and hybrid: v1.V1Driver; v2: v2.V2Driver).
    `every_hierarchy` (v1): pause and containers get a child in every hierarchy, not only in
    v1.PER_INSTANCE's (the systemd driver's scopes)."""
    if layout.mode == "v2":
        from sandbox.cgroups.v2 import V2Driver

        return V2Driver(layout, parent)
    from sandbox.cgroups.v1 import PER_INSTANCE, V1Driver

    return V1Driver(layout, parent, per_instance=None if every_hierarchy else PER_INSTANCE)
