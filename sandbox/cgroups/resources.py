"""Pure translation of Kubernetes requests/limits into cgroup values, with the kubelet's and runc's
rules. Quantities arrive already parsed (millicores, bytes): this layer never imports spec.

Sources (read 2026-11): kubelet pkg/kubelet/cm/helpers_linux.go (MilliCPUToShares, MilliCPUToQuota,
ResourceConfigForPod), kuberuntime_container_linux.go (shares from the limit when no request; a
container without a limit gets the pod-level one: getCPULimit/getMemoryLimit; swap),
pkg/kubelet/qos/policy.go (oom_score_adj, remainingPodMemReqPerContainer), pkg/apis/core/v1/helper/qos
(ComputePodQOS as of 1.37: resourceQOS per set of requirements), KEP-2837 (pod-level resources),
opencontainers/cgroups ConvertCPUSharesToCgroupV2Value (shares -> weight).
"""

from __future__ import annotations

from sandbox.record import Record, field

TYPE_CHECKING = False  # typing and dataclasses cost ~10 ms to import: `sandbox run` converts limits
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Literal

    QOSClass = Literal["Guaranteed", "Burstable", "BestEffort"]

MIN_SHARES = 2
MAX_SHARES = 262144  # the kernel's MAX_SHARES, 1 << 18
SHARES_PER_CPU = 1024
MILLI_CPU_TO_CPU = 1000
QUOTA_PERIOD = 100000  # µs, the kubelet's default cpuCFSQuotaPeriod
MIN_QUOTA_PERIOD = 1000  # µs: the kernel refuses a smaller quota
# The kernel refuses a larger quota (kernel/sched/core.c: max_cfs_runtime, MAX_BW = 2^44 - 1 µs). A
# limit past it (the API server accepts up to 2^63-1 CPUs) gets this, the largest limit there is.
MAX_QUOTA = (1 << 44) - 1

GUARANTEED_OOM_SCORE_ADJ = -997
BEST_EFFORT_OOM_SCORE_ADJ = 1000
POD_INFRA_OOM_SCORE_ADJ = -998  # pause (dockershim's PodInfraOOMAdj; containerd's sandbox value)

def milli_cpu_to_shares(milli_cpu: int) -> int:
    """MilliCPUToShares: 0 (no request) -> the minimum 2; clamped to [2, 262144]."""
    if milli_cpu == 0:
        return MIN_SHARES
    shares = milli_cpu * SHARES_PER_CPU // MILLI_CPU_TO_CPU
    return max(MIN_SHARES, min(MAX_SHARES, shares))


def milli_cpu_to_quota(milli_cpu: int, period: int = QUOTA_PERIOD) -> int:
    """MilliCPUToQuota: 0 (no limit) -> 0 (the caller writes no quota); at least 1000 µs, at most
    the kernel's MAX_QUOTA."""
    if milli_cpu == 0:
        return 0
    quota = milli_cpu * period // MILLI_CPU_TO_CPU
    return min(max(quota, MIN_QUOTA_PERIOD), MAX_QUOTA)


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
    import math  # here: one extension module less to load for the pods that set no CPU request on v2

    l = math.log2(shares)
    exponent = (l * l + 125 * l) / 612.0 - 7.0 / 34.0
    return int(math.ceil(10**exponent))


def shares_to_weight_linear(shares: int) -> int:
    """The older linear conversion (runc < 1.3.2, crun < 1.23): 1 + (shares-2)*9999/262142."""
    if shares == 0:
        return 0
    return 1 + (shares - 2) * 9999 // 262142


class ContainerResources(Record):
    """A container's requests and limits, parsed. None: not given. Requests were already defaulted
    from limits by the API defaults (a limit without a request sets the request)."""

    cpu_request_milli: int | None = None
    cpu_limit_milli: int | None = None
    memory_request: int | None = None
    memory_limit: int | None = None
    hugepages_limit: Mapping[str, int] = field(default_factory=dict)  # "2Mi" page size -> bytes
    restartable_init: bool = False  # a sidecar (initContainers[].restartPolicy: Always)


class CgroupLimits(Record):
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


def container_limits(res: ContainerResources, *, swap: bool = False,
                     pod_level: ContainerResources | None = None) -> CgroupLimits:
    """One container's cgroup values, as kuberuntime builds LinuxContainerResources and runc writes
    them. With the kubelet's default swap behaviour (NoSwap) a container may not swap: v1 gets
    memsw = memory limit (when limited), v2 memory.swap.max 0. `pod_level`: the pod's
    `spec.resources`; a container without a cpu or memory limit gets the pod's (getCPULimit,
    getMemoryLimit: runtimes such as the JVM size themselves from their own cgroup)."""
    lim = res.cpu_limit_milli or (pod_level.cpu_limit_milli if pod_level is not None else None) or 0
    # kuberuntime: shares from the request; from the (possibly pod-level) limit only when the
    # container has no cpu request at all (an explicit 0 gives the minimum)
    req = res.cpu_request_milli
    shares = milli_cpu_to_shares(lim if req is None else req)
    quota = milli_cpu_to_quota(lim) if lim else None
    mem = res.memory_limit or (pod_level.memory_limit if pod_level is not None else None) or None
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


def effective(app: Sequence[ContainerResources], init: Sequence[ContainerResources],
              get: Callable[[ContainerResources], int | None]) -> int:
    """The pod's effective value (resourcehelper.PodRequests/PodLimits with sidecars, without the
    pod-level override): the sum over app containers and sidecars, or the largest init container
    plus the sidecars started before it."""
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


def default_pod_level(pod_level: ContainerResources, app: Sequence[ContainerResources],
                      init: Sequence[ContainerResources] = ()) -> ContainerResources:
    """The API server's defaults for `spec.resources` (pkg/apis/core/v1/defaults.go): a cpu or
    memory limit left out while every container sets one is their effective sum
    (PodLevelResourcesFixUpdateDefaulting, beta and on since 1.36); then a cpu or memory request
    left out is the pod-level limit (defaultPodRequests takes only hugepages from the containers;
    hugepages requests always equal their limits)."""
    everyone = [*app, *init]

    def limit(own: int | None, get: Callable[[ContainerResources], int | None]) -> int | None:
        if own or not everyone or not all(get(c) for c in everyone):
            return own
        return effective(app, init, get)

    cpu_limit = limit(pod_level.cpu_limit_milli, lambda c: c.cpu_limit_milli)
    memory_limit = limit(pod_level.memory_limit, lambda c: c.memory_limit)
    return ContainerResources(
        cpu_request_milli=pod_level.cpu_request_milli if pod_level.cpu_request_milli is not None else cpu_limit,
        cpu_limit_milli=cpu_limit,
        memory_request=pod_level.memory_request if pod_level.memory_request is not None else memory_limit,
        memory_limit=memory_limit,
        hugepages_limit=pod_level.hugepages_limit)


def pod_limits(app: Sequence[ContainerResources], init: Sequence[ContainerResources] = (),
               *, pids_max: int | None = None, pod_level: ContainerResources | None = None,
               qos: QOSClass | None = None) -> CgroupLimits:
    """The pod cgroup's values (kubelet cm ResourceConfigForPod): shares from the pod's effective
    cpu request; a quota and a memory limit only when every container sets that limit or the pod
    level does; a BestEffort pod gets the minimum shares and no limit; pids.max from the runtime's
    podPidsLimit. Pod-level values (`spec.resources`, defaulted: default_pod_level) replace the
    containers' effective ones resource by resource (PodRequests/PodLimits' pod-level override)."""
    everyone = [*app, *init]
    plv = pod_level if pod_level is not None else ContainerResources()
    if qos is None:
        qos = qos_class(everyone, pod_level)

    def pod_value(own: int | None, get: Callable[[ContainerResources], int | None]) -> int:
        return own if own else effective(app, init, get)

    def declared(own: int | None, get: Callable[[ContainerResources], int | None]) -> bool:
        return bool(own) or (bool(everyone) and all(get(c) for c in everyone))

    shares = MIN_SHARES
    quota = mem = None
    if qos != "BestEffort":
        shares = milli_cpu_to_shares(pod_value(plv.cpu_request_milli, lambda c: c.cpu_request_milli))
        if declared(plv.cpu_limit_milli, lambda c: c.cpu_limit_milli):
            quota = milli_cpu_to_quota(pod_value(plv.cpu_limit_milli, lambda c: c.cpu_limit_milli))
        if declared(plv.memory_limit, lambda c: c.memory_limit):
            mem = pod_value(plv.memory_limit, lambda c: c.memory_limit)
    huge: dict[str, int] = {}
    for size in sorted({k for c in [*everyone, plv] for k in c.hugepages_limit}):
        huge[hugepage_file_size(size)] = pod_value(
            plv.hugepages_limit.get(size), lambda c, s=size: c.hugepages_limit.get(s))  # type: ignore[misc]
    return CgroupLimits(cpu_shares=shares, cpu_weight=shares_to_weight(shares), cpu_quota=quota,
                        memory_limit=mem, pids_max=pids_max, hugetlb=huge)


def qos_class(containers: Sequence[ContainerResources], pod_level: ContainerResources | None = None) -> QOSClass:
    """ComputePodQOS over every container, init ones included, or over the pod-level resources
    alone when the pod sets them (KEP-2837; `pod_level` only when spec.resources names cpu, memory
    or hugepages, as IsPodLevelResourcesSet decides since PodLevelResourcesFixKubeletQOSClass).
    Only cpu and memory count. Per set of requirements: a request that differs from its limit is
    Burstable, both unset (or zero) BestEffort, both equal Guaranteed; mixed classes make the pod
    Burstable. Requests arrive defaulted (a limit without a request has set the request)."""
    if pod_level is not None:
        return _requirements_qos(pod_level)
    pod: QOSClass | None = None
    for c in containers:
        qos = _requirements_qos(c)
        if qos == "Burstable" or (pod is not None and pod != qos):
            return "Burstable"
        pod = qos
    return pod or "BestEffort"


def _requirements_qos(res: ContainerResources) -> QOSClass:
    """resourceQOS: one container's (or the pod level's) class."""
    pairs = ((res.cpu_request_milli or 0, res.cpu_limit_milli or 0), (res.memory_request or 0, res.memory_limit or 0))
    if any(request != limit for request, limit in pairs):
        return "Burstable"
    unset = [request == 0 for request, _ in pairs]
    if all(unset):
        return "BestEffort"
    return "Burstable" if any(unset) else "Guaranteed"


def remaining_pod_memory_request(pod_level: ContainerResources | None, app: Sequence[ContainerResources],
                                 init: Sequence[ContainerResources] = ()) -> int:
    """remainingPodMemReqPerContainer: the pod-level memory request no container requested,
    shared equally by every container (app and init) for the oom_score_adj formula."""
    if pod_level is None or not pod_level.memory_request or not (app or init):
        return 0
    remaining = pod_level.memory_request - effective(app, init, lambda c: c.memory_request)
    share = abs(remaining) // (len(app) + len(init))
    return share if remaining >= 0 else -share  # Go's integer division truncates toward zero


def oom_score_adj(qos: QOSClass, res: ContainerResources, memory_capacity: int,
                  min_app_memory_request: int | None = None, *, remaining_pod_request: int = 0) -> int:
    """GetContainerOOMScoreAdjust. Burstable: 1000 - 1000*request/capacity (integer division),
    within [3, 999] (1000 + -997 is the floor; the docs' table says 2, the code returns 3).
    A sidecar gets no more than the app container with the smallest memory request. With a
    pod-level memory request every container's request counts `remaining_pod_request` more
    (remaining_pod_memory_request). The KubeletOOMScoreAdjTieBreak nudge (alpha) is not applied."""
    if qos == "Guaranteed":
        return GUARANTEED_OOM_SCORE_ADJ
    if qos == "BestEffort":
        return BEST_EFFORT_OOM_SCORE_ADJ
    adj = 1000 - (1000 * ((res.memory_request or 0) + remaining_pod_request)) // memory_capacity
    if res.restartable_init and min_app_memory_request is not None:
        adj = min(adj, 1000 - (1000 * (min_app_memory_request + remaining_pod_request)) // memory_capacity)
    if adj < 1000 + GUARANTEED_OOM_SCORE_ADJ:
        return 1000 + GUARANTEED_OOM_SCORE_ADJ
    if adj == BEST_EFFORT_OOM_SCORE_ADJ:
        return adj - 1
    return adj
