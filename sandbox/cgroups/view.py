"""Read-only view of one cgroup given as its paths dict (the pod record's `{key: path}`, where a
key is a v1 controller name or "unified" for the cgroup2 directory): usage for `sandbox top`,
limits for `sandbox inspect`.

Readers, not the driver: a pod that ended, a record written by an older runtime, or a controller
this host does not mount leaves a file or a directory missing; every reader then answers None (or
leaves the entry out) instead of raising. Each value is taken from where the kernel keeps it:
the v1 controller's own directory when the record has that key, else the cgroup2 directory when
it holds the file (on a hybrid host the cgroup2 side usually holds only hugetlb).
"""

from __future__ import annotations

import os
from pathlib import Path

from sandbox.cgroups import fs
from sandbox.cgroups.driver import UNIFIED, Stats, oom_kills
from sandbox.cgroups.fs import CgroupError

# v1 memory.limit_in_bytes when unlimited: PAGE_COUNTER_MAX pages, rounded down to a page
V1_UNLIMITED = 0x7FFFFFFFFFFFF000

# What `inspect` shows, in this order: (key of the paths dict, file name). Files absent from the
# directory (swap accounting off, no hugetlb, a controller not enabled there) are left out.
V1_LIMIT_FILES = (
    ("cpu", "cpu.cfs_quota_us"), ("cpu", "cpu.cfs_period_us"), ("cpu", "cpu.shares"),
    ("cpuset", "cpuset.cpus"), ("cpuset", "cpuset.mems"),
    ("memory", "memory.limit_in_bytes"), ("memory", "memory.memsw.limit_in_bytes"),
    ("memory", "memory.soft_limit_in_bytes"),
    ("pids", "pids.max"),
)
V2_LIMIT_FILES = (
    "cpu.max", "cpu.weight", "cpuset.cpus", "cpuset.mems",
    "memory.max", "memory.high", "memory.low", "memory.min", "memory.swap.max",
    "pids.max",
)


def _read(directory: str | None, name: str) -> str | None:
    if directory is None:
        return None
    try:
        return fs.read(Path(directory), name)
    except (CgroupError, ValueError):  # ValueError: not ASCII, so not a file the kernel wrote
        return None


def _int(directory: str | None, name: str) -> int | None:
    text = _read(directory, name)
    if text is None or text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _keyed(directory: str | None, name: str) -> dict[str, int]:
    """A flat-keyed file (`memory.stat`, `cpu.stat`, `memory.events`), or {} when unreadable."""
    if directory is None:
        return {}
    try:
        return fs.read_keyed(Path(directory), name)
    except (CgroupError, ValueError):
        return {}


def _v2_dir(paths: dict[str, str], probe: str) -> str | None:
    """The cgroup2 directory when it has `probe` (the controller is enabled there)."""
    unified = paths.get(UNIFIED)
    if unified is not None and os.path.exists(os.path.join(unified, probe)):
        return unified
    return None


def stats(paths: dict[str, str]) -> Stats:
    """Usage now. v1: memory from the memory directory, CPU from cpuacct, pids from pids; the
    cgroup2 directory stands in for each one the record lacks, when it holds the files."""
    memory = paths.get("memory")
    if memory is not None:
        raw_limit = _int(memory, "memory.limit_in_bytes")
        memory_usage = _int(memory, "memory.usage_in_bytes")
        memory_peak = _int(memory, "memory.max_usage_in_bytes")
        memory_limit = None if raw_limit is None or raw_limit >= V1_UNLIMITED else raw_limit
        limit_hits = _int(memory, "memory.failcnt") or 0
    else:
        v2 = _v2_dir(paths, "memory.current")
        events = _keyed(v2, "memory.events")
        memory_usage, memory_peak = _int(v2, "memory.current"), _int(v2, "memory.peak")
        memory_limit = _int(v2, "memory.max")
        limit_hits = events.get("max", 0)
    return Stats(memory_usage=memory_usage, memory_peak=memory_peak, memory_limit=memory_limit,
                 oom_kills=oom_kills(paths), limit_hits=limit_hits, cpu_usage_ns=cpu_usage_ns(paths),
                 pids=_int(paths.get("pids") or _v2_dir(paths, "pids.current"), "pids.current"))


def cpu_usage_ns(paths: dict[str, str]) -> int | None:
    """CPU time used by the cgroup and its children, in ns (v1 cpuacct.usage; v2 cpu.stat
    usage_usec, which the kernel keeps even without the cpu controller enabled)."""
    if "cpuacct" in paths:
        return _int(paths["cpuacct"], "cpuacct.usage")
    usec = _keyed(paths.get(UNIFIED), "cpu.stat").get("usage_usec")
    return usec * 1000 if usec is not None else None


def working_set(paths: dict[str, str]) -> int | None:
    """Memory as `kubectl top` reports it (cAdvisor's working set, metrics-server's figure): usage
    minus the inactive file cache, which the kernel can drop without the cgroup noticing; never
    below zero. v1 counts the hierarchy (`total_inactive_file`), v2's memory.stat is hierarchical."""
    memory = paths.get("memory")
    if memory is not None:
        usage, inactive_key = _int(memory, "memory.usage_in_bytes"), "total_inactive_file"
    else:
        memory = _v2_dir(paths, "memory.current")
        usage, inactive_key = _int(memory, "memory.current"), "inactive_file"
    if usage is None:
        return None
    inactive = _keyed(memory, "memory.stat").get(inactive_key, 0)
    return max(usage - inactive, 0)


def limits(paths: dict[str, str]) -> dict[str, str]:
    """File name -> content as the kernel has it ("max" and v1's 9223372036854771712 both mean
    unlimited), for every limit file the cgroup's directories hold. Multi-line files (v1
    `devices.list`) keep their newlines."""
    out: dict[str, str] = {}
    for key, name in V1_LIMIT_FILES:
        value = _read(paths.get(key), name)
        if value is not None:
            out[name] = value
    out.update(_hugetlb(paths.get("hugetlb"), ".limit_in_bytes"))
    devices = _read(paths.get("devices"), "devices.list")
    if devices is not None:
        out["devices.list"] = devices
    unified = paths.get(UNIFIED)
    for name in V2_LIMIT_FILES:
        if name not in out:  # a v1 reading of the same name (cpuset, pids) came first
            value = _read(unified, name)
            if value is not None:
                out[name] = value
    out.update(_hugetlb(unified, ".max"))
    return out


def _hugetlb(directory: str | None, suffix: str) -> dict[str, str]:
    """`hugetlb.<size>.limit_in_bytes` (v1) or `hugetlb.<size>.max` (v2), one per page size."""
    if directory is None:
        return {}
    try:
        names = sorted(n for n in os.listdir(directory) if n.startswith("hugetlb.") and n.endswith(suffix)
                       and not n.endswith(".rsvd" + suffix))
    except OSError:
        return {}
    found = {name: _read(directory, name) for name in names}
    return {name: value for name, value in found.items() if value is not None}
