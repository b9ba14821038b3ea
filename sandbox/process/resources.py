"""Spec to cgroup values: a Pod's requests and limits become what its pod cgroup and each container's
cgroup get, with the QoS class and the oom_score_adj the kubelet derives from them. The kubelet's
arithmetic itself is spec-free in sandbox/cgroups/resources.py; this module only reads the spec.

Rules (kubelet and API server 1.37, read 2026-11):
- quantities: cpu in millicores, memory and hugepages in bytes rounded up (Quantity.Value);
- requests arrive defaulted from limits (sandbox/spec/defaults.py, SetDefaults_ResourceList);
- pod-level `spec.resources` (KEP-2837, beta and on since 1.34) counts when it names cpu, memory or
  hugepages-<size> (component-helpers IsPodLevelResourcesSet). It is defaulted as the API server
  does (cgroups.resources.default_pod_level), then decides the QoS class (ComputePodQOS), replaces
  the containers' sums in the pod cgroup (ResourceConfigForPod via PodRequests/PodLimits), gives
  its limit to every container that sets none (kuberuntime getCPULimit/getMemoryLimit) and spreads
  its unclaimed memory request over the containers' oom_score_adj (remainingPodMemReqPerContainer);
- init containers and sidecars (`restartPolicy: Always`) count by resourcehelper's formula;
- huge pages: every page size the host has and the pod or container does not ask for is limited
  to 0 (kubelet cgroup_manager_linux toResources, kuberuntime GetHugepageLimitsFromResources);
- ephemeral-storage is not a cgroup resource: the eviction checks read it (supervisor/eviction.py);
- `spec.resources.limits.pids` (PerPodPIDLimit, alpha in 1.37) lowers the pod's pids.max below the
  runtime's podPidsLimit, never raises it (the kubelet then warns PIDLimitCapped).
The kubelet refuses pods with pod-level resources (or a pod pids limit) on cgroup v1 nodes (KEP-2837):
`PodResources.pod_level` tells the caller, which knows the host's layout.
"""

from __future__ import annotations

from sandbox.cgroups.resources import (
    ContainerResources,
    default_pod_level,
    oom_score_adj,
    pod_limits,
    qos_class,
    remaining_pod_memory_request,
)
from sandbox.cgroups.resources import container_limits as _container_limits
from sandbox.record import Record, replace

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from sandbox.cgroups.resources import CgroupLimits
    from sandbox.spec.model import Container, Pod, PodSpec, Quantity

HUGEPAGES_PREFIX = "hugepages-"
POD_LEVEL_RESOURCES = ("cpu", "memory")  # and hugepages-<size> (IsSupportedPodLevelResource)
MEMINFO = "/proc/meminfo"
HUGEPAGES_DIR = "/sys/kernel/mm/hugepages"
_BINARY_UNITS = ("Ki", "Mi", "Gi", "Ti", "Pi")
_KERNEL_UNITS = ("KB", "MB", "GB", "TB", "PB")


class PodResources(Record):
    """Everything the runtime enforces for one pod's requests and limits, computed once at start."""

    qos: str  # status.qosClass
    pod: CgroupLimits  # the pod cgroup
    containers: Mapping[str, CgroupLimits]  # every container by name: app, init and sidecars
    oom_score_adj: Mapping[str, int]  # every container by name (pause gets POD_INFRA_OOM_SCORE_ADJ)
    pod_level: bool  # spec.resources names cpu, memory, hugepages or pids: the kubelet admits it on cgroup v2 only
    pids_capped: bool = False  # spec.resources.limits.pids above podPidsLimit: the kubelet's PIDLimitCapped warning


def pod_resources(pod: Pod, *, pids_max: int | None, memory_capacity: int, swap: bool = False,
                  hugepage_sizes: Sequence[str] = ()) -> PodResources:
    """The pod's cgroup values, QoS class and oom_score_adj. `memory_capacity`: the node's memory
    (MemTotal, `memory_capacity()`); `pids_max`: the runtime's podPidsLimit; `swap`: whether
    containers may swap (the kubelet's NoSwap default: False); `hugepage_sizes`: the host's page
    sizes in the kernel's names (`host_hugepage_sizes()`), limited to 0 unless asked for."""
    spec = pod.spec
    app = [container_resources(c) for c in spec.containers]
    init = [container_resources(c, init=True) for c in spec.init_containers]
    raw_pod_level = pod_level_resources(spec)
    pod_level = default_pod_level(raw_pod_level, app, init) if raw_pod_level is not None else None
    qos = qos_class([*app, *init], pod_level)
    remaining = remaining_pod_memory_request(pod_level, app, init)
    min_app_request = min((c.memory_request or 0 for c in app), default=0)
    containers: dict[str, CgroupLimits] = {}
    scores: dict[str, int] = {}
    for c, res in zip([*spec.containers, *spec.init_containers], [*app, *init], strict=True):
        limits = _container_limits(res, swap=swap, pod_level=pod_level)
        containers[c.name] = _all_page_sizes(limits, hugepage_sizes)
        scores[c.name] = oom_score_adj(qos, res, memory_capacity, min_app_request,
                                       remaining_pod_request=remaining)
    pod_pids = _pod_pids(spec)
    capped = pod_pids is not None and pids_max is not None and pod_pids > pids_max
    if pod_pids is not None and not capped:
        pids_max = pod_pids  # PerPodPIDLimit: the smaller of the pod's and the node's limit
    cgroup = pod_limits(app, init, pids_max=pids_max, pod_level=pod_level, qos=qos)
    return PodResources(
        qos=qos, pod=_all_page_sizes(cgroup, hugepage_sizes), containers=containers, oom_score_adj=scores,
        pod_level=pod_level is not None or pod_pids is not None, pids_capped=capped)


def container_resources(c: Container, *, init: bool = False) -> ContainerResources:
    """One container's cpu, memory and hugepages requests and limits, parsed."""
    requests = c.resources.requests if c.resources is not None else {}
    limits = c.resources.limits if c.resources is not None else {}
    return ContainerResources(
        cpu_request_milli=_milli(requests.get("cpu")), cpu_limit_milli=_milli(limits.get("cpu")),
        memory_request=_bytes(requests.get("memory")), memory_limit=_bytes(limits.get("memory")),
        hugepages_limit=_hugepages(limits), restartable_init=init and c.restart_policy == "Always")


def pod_level_resources(spec: PodSpec) -> ContainerResources | None:
    """`spec.resources` as written (not defaulted), or None when it names no cpu, memory or
    hugepages: an empty or absent stanza leaves the pod to its containers."""
    r = spec.resources
    if r is None or not any(_pod_level_name(n) for n in (*r.requests, *r.limits)):
        return None
    huge = _hugepages(r.limits)
    for size, value in _hugepages(r.requests).items():
        huge.setdefault(size, value)  # a hugepages request without a limit defaults the limit
    return ContainerResources(
        cpu_request_milli=_milli(r.requests.get("cpu")), cpu_limit_milli=_milli(r.limits.get("cpu")),
        memory_request=_bytes(r.requests.get("memory")), memory_limit=_bytes(r.limits.get("memory")),
        hugepages_limit=huge)


def memory_capacity(meminfo: str = MEMINFO) -> int:
    """The node's memory in bytes: MemTotal, as cadvisor reports MachineInfo.MemoryCapacity (the
    denominator of the Burstable oom_score_adj). The host's own through sysconf: sysinfo's
    totalram, the very number MemTotal prints (totalram_pages x the page size), in one syscall
    instead of an open, reads and a parse of /proc/meminfo (every `sandbox run` plans it:
    0.08 -> 0.01 ms in a fresh process, 16.6 -> 0.9 us warm)."""
    if meminfo == MEMINFO:
        import os

        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    with open(meminfo, "rb") as f:  # bytes: a text file's ascii codec is one more import (0.24 ms)
        for line in f:
            if line.startswith(b"MemTotal:"):
                return int(line.split()[1]) * 1024
    raise OSError(f"{meminfo}: no MemTotal line")


def host_hugepage_sizes(root: str = HUGEPAGES_DIR) -> tuple[str, ...]:
    """The host's huge page sizes in the cgroup files' names (`hugepages-2048kB` -> `2MB`), as
    libcontainer's HugePageSizes lists them; none when the kernel has no huge pages."""
    import os

    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return ()
    sizes = []
    for name in sorted(names):
        if name.startswith(HUGEPAGES_PREFIX) and name.endswith("kB") and name[10:-2].isdigit():
            sizes.append(_kernel_size(int(name[10:-2])))
    return tuple(sizes)


def _kernel_size(kib: int) -> str:
    unit = 0
    while kib >= 1024 and kib % 1024 == 0 and unit < len(_KERNEL_UNITS) - 1:
        kib //= 1024
        unit += 1
    return f"{kib}{_KERNEL_UNITS[unit]}"


def _all_page_sizes(limits: CgroupLimits, sizes: Sequence[str]) -> CgroupLimits:
    if not sizes:
        return limits
    return replace(limits, hugetlb={**dict.fromkeys(sizes, 0), **limits.hugetlb})


def _pod_level_name(name: str) -> bool:
    return name in POD_LEVEL_RESOURCES or name.startswith(HUGEPAGES_PREFIX)


def _hugepages(values: Mapping[str, Quantity]) -> dict[str, int]:
    """`hugepages-<size>` entries by page size, the size written as the kernel table in
    cgroups.resources knows it (`hugepages-2048Ki` and `hugepages-2Mi` are one resource)."""
    out: dict[str, int] = {}
    for name, quantity in values.items():
        if name.startswith(HUGEPAGES_PREFIX):
            out[_page_size_text(name[len(HUGEPAGES_PREFIX):])] = quantity.value
    return out


def _page_size_text(text: str) -> str:
    from sandbox.spec.quantity import parse_quantity  # only pods that ask for huge pages pay for it

    q = parse_quantity(text)
    size = q.value if q is not None else 0
    unit = -1
    while size >= 1024 and size % 1024 == 0 and unit < len(_BINARY_UNITS) - 1:
        size //= 1024
        unit += 1
    return f"{size}{_BINARY_UNITS[unit]}" if unit >= 0 else text


def _pod_pids(spec: PodSpec) -> int | None:
    """`spec.resources.limits.pids` (PerPodPIDLimit, 1.37; cgroup v2 only in the kubelet)."""
    limit = spec.resources.limits.get("pids") if spec.resources is not None else None
    return limit.value if limit is not None else None


def _milli(q: Quantity | None) -> int | None:
    return q.milli if q is not None else None


def _bytes(q: Quantity | None) -> int | None:
    return q.value if q is not None else None
