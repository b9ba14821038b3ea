"""Local ephemeral storage: what a pod uses on the node's disk, and the kubelet's eviction for it.

The kubelet's eviction manager (pkg/kubelet/eviction/eviction_manager.go, localStorageEviction)
checks every active pod once per monitoring period (10 s) in this order, and evicts on the first
limit crossed:
  1. an emptyDir whose usage is over its `sizeLimit` (a positive one, any medium);
  2. the pod's total (each running container's writable layer and logs, the disk-medium
     emptyDirs and the pod's etc-hosts file) over the pod's limit: the sum of its containers' ephemeral-storage
     limits, init containers and sidecars by the scheduler's formula (PodLimits). It applies as
     soon as ONE container sets a limit: the containers without one still count in the total;
  3. one app container's writable layer + logs over its own (non-zero) limit (init containers
     are not checked one by one).
An eviction is immediate (immediateEvictionGracePeriodSeconds: 1 s, which killContainer then
raises to its 2 s minimum), never followed by a restart, and leaves the pod Failed with
status.reason `Evicted`, the message below in status.message and a Warning `Evicted` event.

Usage is what `du` reports (allocated blocks, st_blocks * 512), measured by walking the tree:
symlinks are not followed, other filesystems mounted inside are not entered, a file with several
hard links is counted once. The walk runs inside the supervisor's loop, so a pod that makes
millions of files slows its own supervisor's other work by that walk (the kubelet runs du in a
goroutine); pods without any limit are never walked.
"""

from __future__ import annotations

import os
import stat

from sandbox.record import Record

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from pathlib import Path

    from sandbox.spec.model import Container, Pod, Quantity
    from sandbox.supervisor.container import Slot

RESOURCE = "ephemeral-storage"
REASON = "Evicted"  # status.reason and the event's reason (eviction/helpers.go Reason)
GRACE_SECONDS = 1.0  # immediateEvictionGracePeriodSeconds

# Quantity formats (apimachinery resource.Format): how a limit is printed in the messages.
BINARY_SI, DECIMAL_SI, DECIMAL_EXPONENT = "BinarySI", "DecimalSI", "DecimalExponent"
_BINARY_SUFFIXES = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")
_DECIMAL_SUFFIXES = {-3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E"}


class Limit(Record):
    """A limit in thousandths of a byte (as the API keeps quantities) and the format it was
    written in, which decides how the kubelet prints it (`1Mi`, `1M`, `1e6`)."""

    milli: int
    format: str = DECIMAL_SI

    @classmethod
    def of(cls, quantity: Quantity) -> Limit:
        return cls(quantity.milli, quantity_format(quantity.text))

    def exceeded_by(self, used: int) -> bool:
        """`used` bytes are over the limit (resource.Quantity Cmp > 0)."""
        return used * 1000 > self.milli

    def __str__(self) -> str:
        return canonical(self.milli, self.format)


class StorageLimits(Record):
    """What the eviction checks compare against, read once from the spec."""

    containers: dict[str, Limit]  # app containers with a non-zero ephemeral-storage limit
    pod: Limit | None  # None: no container sets one, no pod-level check
    empty_dirs: dict[str, Limit]  # emptyDir name -> its positive sizeLimit, in spec order
    pod_volumes: tuple[str, ...]  # emptyDirs counted in the pod's total: the disk-medium ones

    @property
    def any(self) -> bool:
        """Whether the pod needs measuring at all."""
        return bool(self.containers or self.pod is not None or self.empty_dirs)


class StorageUsage(Record):
    """Bytes in use, by what the checks look at."""

    containers: dict[str, int]  # running container name -> writable layer + logs
    empty_dirs: dict[str, int]  # emptyDir name -> usage
    pod: int  # the pod's total


class Eviction(Record):
    message: str  # the kubelet's text, trailing space included (it is appended to in the kubelet)
    signal: str  # which check fired, as the kubelet's metric labels name it
    reason: str = REASON


# --- limits ------------------------------------------------------------------------------------------


def storage_limits(pod: Pod) -> StorageLimits:
    """The limits the eviction manager checks in `pod`."""
    spec = pod.spec
    containers = {}
    for c in spec.containers:
        limit = container_limit(c)
        if limit is not None and limit.milli != 0:
            containers[c.name] = limit
    empty_dirs: dict[str, Limit] = {}
    pod_volumes: list[str] = []
    for volume in spec.volumes:
        source = volume.empty_dir
        if source is None:
            continue
        if source.size_limit is not None and source.size_limit.milli > 0:
            empty_dirs[volume.name] = Limit.of(source.size_limit)
        if not source.medium:  # the stats' isVolumeEphemeral: memory-backed ones are not disk
            pod_volumes.append(volume.name)
    return StorageLimits(containers, pod_limit(pod), empty_dirs, tuple(pod_volumes))


def container_limit(container: Container) -> Limit | None:
    resources = container.resources
    quantity = resources.limits.get(RESOURCE) if resources is not None else None
    return Limit.of(quantity) if quantity is not None else None


def pod_limit(pod: Pod) -> Limit | None:
    """PodLimits for ephemeral-storage: the app containers' limits and the sidecars' summed, each
    plain init container's limit plus the sidecars started before it taken as a floor (it runs
    alone with them), plus the pod's overhead when the result is non-zero. None when no
    container sets the resource: the kubelet's check then does not apply."""
    total: Limit | None = None
    for c in pod.spec.containers:
        total = _add(total, container_limit(c))
    sidecars: Limit | None = None
    init_floor: Limit | None = None
    for c in pod.spec.init_containers:
        limit = container_limit(c)
        if c.restart_policy == "Always":
            total = _add(total, limit)
            sidecars = _add(sidecars, limit)
            running = sidecars
        else:
            running = _add(limit, sidecars)
        init_floor = _max(init_floor, running)
    total = _max(total, init_floor)
    overhead = pod.spec.overhead.get(RESOURCE)
    if total is not None and total.milli != 0 and overhead is not None:
        total = _add(total, Limit.of(overhead))
    return total


def _add(a: Limit | None, b: Limit | None) -> Limit | None:
    """resource.Quantity Add: the sum keeps the first one's format, unless that one is zero."""
    if a is None or b is None:
        return a if b is None else b
    return Limit(a.milli + b.milli, a.format if a.milli != 0 else b.format)


def _max(a: Limit | None, b: Limit | None) -> Limit | None:
    """maxResourceList: the larger one replaces (with its format) only when strictly larger."""
    if a is None or b is None:
        return a if b is None else b
    return b if b.milli > a.milli else a


# --- the decision ------------------------------------------------------------------------------------


def verdict(usage: StorageUsage, limits: StorageLimits) -> Eviction | None:
    """The first limit `usage` crosses, in the eviction manager's order; None when within all."""
    for name, limit in limits.empty_dirs.items():
        used = usage.empty_dirs.get(name)
        if used is not None and limit.exceeded_by(used):
            return Eviction(f'Usage of EmptyDir volume "{name}" exceeds the limit "{limit}". ', "emptydirfs.limit")
    if limits.pod is not None and limits.pod.exceeded_by(usage.pod):
        return Eviction(f"Pod ephemeral local storage usage exceeds the total limit of containers {limits.pod}. ",
                        "ephemeralpodfs.limit")
    for name, used in usage.containers.items():
        own = limits.containers.get(name)
        if own is not None and own.exceeded_by(used):
            return Eviction(f'Container {name} exceeded its local ephemeral storage limit "{own}". ',
                            "ephemeralcontainerfs.limit")
    return None


# --- measuring ---------------------------------------------------------------------------------------


def measure(slots: Iterable[Slot], log_dir: Path, volume_paths: Mapping[str, Path], limits: StorageLimits,
            etc_hosts: Path | None = None) -> StorageUsage:
    """Usage now: each running container's writable layer (the overlay's upper directory) plus
    its log directory `<log_dir>/<name>/` (every file in it: the current instance's, the previous
    one's, rotated ones), each emptyDir's directory, and the pod's total over those and
    etc-hosts (the kubelet's calcEphemeralStorage). A container that is not running (exited, in
    back-off) is left out, as the kubelet's stats provider drops every container not RUNNING
    (removeTerminatedContainers)."""
    containers = {}
    for slot in slots:
        layer = slot.runtime.layer if slot.runtime is not None else None
        if slot.process is None or layer is None:
            continue
        containers[slot.name] = disk_usage(layer.upper) + disk_usage(log_dir / slot.name)
    # only the emptyDirs the checks read (never a hostPath, which may be the host's `/`)
    wanted = set(limits.empty_dirs) | set(limits.pod_volumes)
    empty_dirs = {name: disk_usage(path) for name, path in volume_paths.items() if name in wanted}
    pod = sum(containers.values()) + sum(empty_dirs.get(name, 0) for name in limits.pod_volumes)
    if etc_hosts is not None:
        pod += disk_usage(etc_hosts)
    return StorageUsage(containers, empty_dirs, pod)


def disk_usage(path: Path | str) -> int:
    """Bytes allocated to `path` and, for a directory, everything below it on the same
    filesystem: `du -sx -B1` without following symlinks, each hard-linked inode counted once.
    0 for a path that does not exist; entries that vanish during the walk are skipped (the
    container keeps writing while we count). Like the kubelet's walk it goes by full paths, so a
    tree nested deeper than PATH_MAX (4096 bytes of path) is counted down to that depth only."""
    try:
        top = os.lstat(path)
    except OSError:
        return 0
    total = top.st_blocks * 512
    if not stat.S_ISDIR(top.st_mode):
        return total
    device = top.st_dev
    seen: set[int] = set()  # inode numbers of multiply-linked files (one device: no st_dev needed)
    pending = [os.fspath(path)]  # a list, not recursion: a hostile tree may be deeper than the stack
    while pending:
        try:
            entries = os.scandir(pending.pop())
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if st.st_dev != device:
                    continue  # a mount point: its space belongs to another filesystem
                if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
                    if st.st_ino in seen:
                        continue
                    seen.add(st.st_ino)
                total += st.st_blocks * 512
                if stat.S_ISDIR(st.st_mode):
                    pending.append(entry.path)
    return total


# --- quantities as the kubelet prints them ----------------------------------------------------------


def quantity_format(text: str) -> str:
    """The format a quantity was written in: binary suffix, decimal exponent, or decimal SI."""
    body = text.lstrip("+-0123456789.")
    if body.endswith("i"):
        return BINARY_SI
    if body[:1] in ("e", "E") and body[1:].lstrip("+-").isdigit():
        return DECIMAL_EXPONENT
    return DECIMAL_SI


def canonical(milli: int, fmt: str) -> str:
    """resource.Quantity.String(): the canonical form in `fmt` (`1Mi`, `1536Ki`, `1500k`, `1e6`).
    Binary needs a whole number of at least 1024 bytes, else it falls back to decimal SI."""
    if fmt == BINARY_SI and milli % 1000 == 0 and abs(milli) >= 1024 * 1000:
        value, power = milli // 1000, 0
        while value % 1024 == 0 and power < len(_BINARY_SUFFIXES) - 1:
            value, power = value // 1024, power + 1
        return f"{value}{_BINARY_SUFFIXES[power]}"
    mantissa, exponent = milli, -3
    while mantissa != 0 and mantissa % 1000 == 0 and exponent < 18:
        mantissa, exponent = mantissa // 1000, exponent + 3
    if fmt == DECIMAL_EXPONENT:
        return f"{mantissa}e{exponent}" if exponent else str(mantissa)
    if mantissa == 0:
        return "0"
    return f"{mantissa}{_DECIMAL_SUFFIXES[exponent]}"
