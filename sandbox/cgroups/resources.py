"""Pure translation of Kubernetes requests/limits into cgroup values, with the kubelet's and runc's
rules. Quantities arrive already parsed (millicores, bytes): this layer never imports spec.

Sources (read 2026-11): kubelet pkg/kubelet/cm/helpers_linux.go (MilliCPUToShares, MilliCPUToQuota),
kuberuntime_container_linux.go (shares from the limit when no request; swap), pkg/kubelet/qos/policy.go
(oom_score_adj), pkg/apis/core/v1/helper/qos (QoS class), opencontainers/cgroups
ConvertCPUSharesToCgroupV2Value (shares -> weight).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

MIN_SHARES = 2
MAX_SHARES = 262144  # the kernel's MAX_SHARES, 1 << 18
SHARES_PER_CPU = 1024
MILLI_CPU_TO_CPU = 1000
QUOTA_PERIOD = 100000  # µs, the kubelet's default cpuCFSQuotaPeriod
MIN_QUOTA_PERIOD = 1000  # µs: the kernel refuses a smaller quota

GUARANTEED_OOM_SCORE_ADJ = -997
BEST_EFFORT_OOM_SCORE_ADJ = 1000
POD_INFRA_OOM_SCORE_ADJ = -998  # pause (dockershim's PodInfraOOMAdj; containerd's sandbox value)

QOSClass = Literal["Guaranteed", "Burstable", "BestEffort"]


def milli_cpu_to_shares(milli_cpu: int) -> int:
    """MilliCPUToShares: 0 (no request) -> the minimum 2; clamped to [2, 262144]."""
    if milli_cpu == 0:
        return MIN_SHARES
    shares = milli_cpu * SHARES_PER_CPU // MILLI_CPU_TO_CPU
    return max(MIN_SHARES, min(MAX_SHARES, shares))


def milli_cpu_to_quota(milli_cpu: int, period: int = QUOTA_PERIOD) -> int:
    """MilliCPUToQuota: 0 (no limit) -> 0 (the caller writes no quota); at least 1000 µs."""
    if milli_cpu == 0:
        return 0
    quota = milli_cpu * period // MILLI_CPU_TO_CPU
    return max(quota, MIN_QUOTA_PERIOD)


def shares_to_weight(shares: int) -> int:
    """cgroup v2 cpu.weight for v1 shares, as opencontainers/cgroups converts since 2025
    (runc PR 4785, kubernetes issue 131216): a quadratic in log2 that maps 2 -> 1, 1024 -> 100
    (both defaults agree) and 262144 -> 10000. 0 means unset."""
    if shares == 0:
        return 0
    if shares <= 2:
        return 1
    if shares >= MAX_SHARES:
        return 10000
    l = math.log2(shares)
    exponent = (l * l + 125 * l) / 612.0 - 7.0 / 34.0
    return int(math.ceil(10**exponent))


def shares_to_weight_linear(shares: int) -> int:
    """The older linear conversion (runc < 1.3.2, crun < 1.23): 1 + (shares-2)*9999/262142."""
    if shares == 0:
        return 0
    return 1 + (shares - 2) * 9999 // 262142


@dataclass(frozen=True)
class ContainerResources:
    """A container's requests and limits, parsed. None: not given. Requests were already defaulted
    from limits by the API defaults (a limit without a request sets the request)."""

    cpu_request_milli: int | None = None
    cpu_limit_milli: int | None = None
    memory_request: int | None = None
    memory_limit: int | None = None
    hugepages_limit: Mapping[str, int] = field(default_factory=dict)  # "2Mi" page size -> bytes
    restartable_init: bool = False  # a sidecar (initContainers[].restartPolicy: Always)


@dataclass(frozen=True)
class CgroupLimits:
    """What to write into one cgroup. None: leave the kernel's default (unlimited)."""

    cpu_shares: int | None = None  # v1 cpu.shares
    cpu_weight: int | None = None  # v2 cpu.weight
    cpu_quota: int | None = None  # µs per period; None: "max" / -1
    cpu_period: int = QUOTA_PERIOD
    memory_limit: int | None = None  # v1 memory.limit_in_bytes, v2 memory.max
    memsw_limit: int | None = None  # v1 memory.memsw.limit_in_bytes (memory + swap)
    swap_max: int | None = None  # v2 memory.swap.max
    pids_max: int | None = None
    hugetlb: Mapping[str, int] = field(default_factory=dict)  # page size ("2MB") -> bytes
    oom_group: bool = False  # v2 memory.oom.group: the OOM killer takes the whole container

    def items_v1(self) -> list[tuple[str, str, str]]:
        """(controller, file, value) in the order they must be written."""
        out: list[tuple[str, str, str]] = []
        if self.cpu_shares is not None:
            out.append(("cpu", "cpu.shares", str(self.cpu_shares)))
        if self.cpu_quota is not None:
            out.append(("cpu", "cpu.cfs_period_us", str(self.cpu_period)))
            out.append(("cpu", "cpu.cfs_quota_us", str(self.cpu_quota)))
        if self.memory_limit is not None:
            out.append(("memory", "memory.limit_in_bytes", str(self.memory_limit)))
        if self.memsw_limit is not None:
            out.append(("memory", "memory.memsw.limit_in_bytes", str(self.memsw_limit)))
        if self.pids_max is not None:
            out.append(("pids", "pids.max", str(self.pids_max)))
        for size, limit in sorted(self.hugetlb.items()):
            out.append(("hugetlb", f"hugetlb.{size}.limit_in_bytes", str(limit)))
        return out

    def items_v2(self) -> list[tuple[str, str, str]]:
        out: list[tuple[str, str, str]] = []
        if self.cpu_weight is not None:
            out.append(("cpu", "cpu.weight", str(self.cpu_weight)))
        if self.cpu_quota is not None:
            out.append(("cpu", "cpu.max", f"{self.cpu_quota} {self.cpu_period}"))
        if self.memory_limit is not None:
            out.append(("memory", "memory.max", str(self.memory_limit)))
        if self.swap_max is not None:
            out.append(("memory", "memory.swap.max", str(self.swap_max)))
        if self.pids_max is not None:
            out.append(("pids", "pids.max", str(self.pids_max)))
        for size, limit in sorted(self.hugetlb.items()):
            out.append(("hugetlb", f"hugetlb.{size}.max", str(limit)))
        if self.oom_group:
            out.append(("memory", "memory.oom.group", "1"))
        return out


# cgroup hugetlb file names use the kernel's size names; Kubernetes uses quantities.
_HUGEPAGE_NAMES = {"64Ki": "64KB", "2Mi": "2MB", "32Mi": "32MB", "512Mi": "512MB", "1Gi": "1GB", "16Gi": "16GB"}


def hugepage_file_size(page_size: str) -> str:
    """`hugepages-2Mi` resource's page size -> the cgroup's `2MB`."""
    try:
        return _HUGEPAGE_NAMES[page_size]
    except KeyError:
        raise ValueError(f"unsupported huge page size {page_size!r}") from None


def container_limits(res: ContainerResources, *, swap: bool = False) -> CgroupLimits:
    """One container's cgroup values, as kuberuntime builds LinuxContainerResources and runc writes
    them. With the kubelet's default swap behaviour (NoSwap) a container may not swap: v1 gets
    memsw = memory limit (when limited), v2 memory.swap.max 0."""
    req = res.cpu_request_milli or 0
    lim = res.cpu_limit_milli or 0
    # kuberuntime: shares from the request, or from the limit when only a limit is set
    shares = milli_cpu_to_shares(lim if req == 0 and lim != 0 else req)
    quota = milli_cpu_to_quota(lim) if lim else None
    mem = res.memory_limit if res.memory_limit else None
    return CgroupLimits(
        cpu_shares=shares,
        cpu_weight=shares_to_weight(shares),
        cpu_quota=quota,
        memory_limit=mem,
        memsw_limit=mem if mem is not None and not swap else None,
        swap_max=None if swap else 0,
        hugetlb={hugepage_file_size(k): v for k, v in res.hugepages_limit.items()},
        # the kubelet on cgroup v2 sets memory.oom.group=1 unless singleProcessOOMKill (1.32+)
        oom_group=True,
    )


def _effective(app: Sequence[ContainerResources], init: Sequence[ContainerResources],
               get: Callable[[ContainerResources], int | None]) -> int:
    """The pod's effective value (resourcehelper.PodRequests/PodLimits with sidecars): the sum over
    app containers and sidecars, or the largest init container plus the sidecars started before it."""
    total = sum(get(c) or 0 for c in app)
    sidecars = 0
    init_max = 0
    for c in init:
        if c.restartable_init:
            sidecars += get(c) or 0
            init_max = max(init_max, sidecars)
        else:
            init_max = max(init_max, (get(c) or 0) + sidecars)
    return max(total + sidecars, init_max)


def pod_limits(app: Sequence[ContainerResources], init: Sequence[ContainerResources] = (),
               *, pids_max: int | None = None) -> CgroupLimits:
    """The pod cgroup's values (kubelet cm ResourceConfigForPod): shares from the summed requests;
    a quota and a memory limit only when every container sets that limit; pids.max from the
    runtime's podPidsLimit."""
    everyone = [*app, *init]
    cpu_req = _effective(app, init, lambda c: c.cpu_request_milli)
    shares = milli_cpu_to_shares(cpu_req)
    quota = None
    if everyone and all(c.cpu_limit_milli for c in everyone):
        quota = milli_cpu_to_quota(_effective(app, init, lambda c: c.cpu_limit_milli))
    mem = None
    if everyone and all(c.memory_limit for c in everyone):
        mem = _effective(app, init, lambda c: c.memory_limit)
    huge: dict[str, int] = {}
    sizes = {k for c in everyone for k in c.hugepages_limit}
    for size in sorted(sizes):
        huge[hugepage_file_size(size)] = _effective(app, init, lambda c, s=size: c.hugepages_limit.get(s))  # type: ignore[misc]
    return CgroupLimits(cpu_shares=shares, cpu_weight=shares_to_weight(shares), cpu_quota=quota,
                        memory_limit=mem, pids_max=pids_max, hugetlb=huge)


def qos_class(containers: Sequence[ContainerResources]) -> QOSClass:
    """GetPodQOS over every container, init ones included. Only cpu and memory count, and only
    values above zero; requests and limits are summed over the containers. Guaranteed: every
    container limits both, and the summed requests equal the summed limits. Requests arrive
    defaulted (a limit without a request has set the request)."""
    requests: dict[str, int] = {}
    limits: dict[str, int] = {}
    guaranteed = True
    for c in containers:
        for name, value in (("cpu", c.cpu_request_milli), ("memory", c.memory_request)):
            if value:
                requests[name] = requests.get(name, 0) + value
        found = set()
        for name, value in (("cpu", c.cpu_limit_milli), ("memory", c.memory_limit)):
            if value:
                limits[name] = limits.get(name, 0) + value
                found.add(name)
        if found != {"cpu", "memory"}:
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and all(limits.get(k) == v for k, v in requests.items()) and len(requests) == len(limits):
        return "Guaranteed"
    return "Burstable"


def oom_score_adj(qos: QOSClass, res: ContainerResources, memory_capacity: int,
                  min_app_memory_request: int | None = None) -> int:
    """GetContainerOOMScoreAdjust. Burstable: 1000 - 1000*request/capacity (integer division),
    within [3, 999] (1000 + -997 is the floor; the docs' table says 2, the code returns 3).
    A sidecar gets no more than the app container with the smallest memory request."""
    if qos == "Guaranteed":
        return GUARANTEED_OOM_SCORE_ADJ
    if qos == "BestEffort":
        return BEST_EFFORT_OOM_SCORE_ADJ
    adj = 1000 - (1000 * (res.memory_request or 0)) // memory_capacity
    if res.restartable_init and min_app_memory_request is not None:
        adj = min(adj, 1000 - (1000 * min_app_memory_request) // memory_capacity)
    if adj < 1000 + GUARANTEED_OOM_SCORE_ADJ:
        return 1000 + GUARANTEED_OOM_SCORE_ADJ
    if adj == BEST_EFFORT_OOM_SCORE_ADJ:
        return adj - 1
    return adj
