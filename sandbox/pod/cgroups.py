"""The pod's cgroups: `<parent>/<pod uid>` in every hierarchy, with one child for pause and one per
container instance (named by its container ID, as the kubelet's cgroupfs layout names them).

Everything is created before the process that goes in it is released: the spawner moves stage 2
(still the runtime's code, waiting for "go"; SpawnRequest.cgroups) into the cgroup,
so the container's first instruction already runs inside it; stage 2 then unshares its cgroup
namespace, rooted there (runc places its init the same way while it waits on its sync pipe).

Only the pod cgroup goes into the tear-down registry (one line per hierarchy, before mkdir):
undoing it kills through the cgroup (`cgroup.kill`, or freeze and kill on v1) and removes the
whole subtree leaf first, so a runtime killed at any moment leaves nothing `sandbox gc` cannot
remove. A container's own cgroup is removed when its instance ends (its counters, such as the
OOM kills, belong to that instance).
"""

from __future__ import annotations

import os
from pathlib import Path

from sandbox.errors import SandboxError
from sandbox.log import get_logger
from sandbox.record import Record, replace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from sandbox.cgroups.detect import Layout
    from sandbox.cgroups.driver import Cgroup, CgroupDriver, Stats
    from sandbox.cgroups.resources import CgroupLimits
    from sandbox.pod.teardown import TornDown
    from sandbox.spec.model import Pod

log = get_logger(__name__)

DRIVERS = ("auto", "cgroupfs", "systemd")
# Kubernetes' podPidsLimit is unlimited by default; a runtime for tests and teaching should not
# let one fork bomb take the machine. 4096 is OpenShift's default podPidsLimit and far above what
# a pod on one machine needs; `--pod-pids-limit -1` lifts it.
DEFAULT_POD_PIDS_LIMIT = 4096
PARENT_ENV = "SANDBOX_CGROUP_PARENT"
# Where the cgroup hierarchies are mounted. Tests point it at a cgroup2 mount (this VM's
# `unified` one) to run whole pods on the v2 driver on a hybrid host.
ROOT_ENV = "SANDBOX_CGROUP_ROOT"
PAUSE_CGROUP = "pause"  # container cgroups are named by 64-hex container IDs: never this
# containerd's sandbox container gets the minimum cpu shares (DefaultSandboxCPUshares = 2; cpu.weight
# 1 through runc's conversion on v2), not the kernel's 1024: `pause_limits` below.
PAUSE_CPU_SHARES = 2
# `PodCgroups.child(devices=DEFAULT_DEVICES)`: runc's default allow-list (devices.DEFAULT_RULES).
# A marker rather than the list itself: the v1 driver writes the list's lines from constants
# (V1Driver.restrict_default_devices), so a v1/hybrid `sandbox run` never imports the devices
# module (its DeviceRule records and their checks: ~0.2 ms of each run, -X importtime).
DEFAULT_DEVICES = "default"


class CgroupConfig(Record):
    """The runtime's cgroup options (`sandbox run --cgroup-driver/--cgroup-parent/--pod-pids-limit`)."""

    driver: str = "auto"
    parent: str = ""  # "": $SANDBOX_CGROUP_PARENT, else "sandbox"
    pod_pids_limit: int | None = DEFAULT_POD_PIDS_LIMIT  # None: unlimited
    root: Path | None = None  # None: $SANDBOX_CGROUP_ROOT, else /sys/fs/cgroup
    systemd_bus: str = ""  # a D-Bus address; "": $SANDBOX_SYSTEMD_BUS, the system bus, systemd's socket

    def parent_name(self) -> str:
        return self.parent or os.environ.get(PARENT_ENV) or "sandbox"

    def root_dir(self) -> Path:
        return self.root or Path(os.environ.get(ROOT_ENV) or "/sys/fs/cgroup")


def open_driver(config: CgroupConfig) -> CgroupDriver:
    """The driver the options ask for, on the layout this host has. `auto`: the systemd driver
    where systemd runs as init (/run/systemd/system, as the kubelet and runc detect it) and answers
    on D-Bus, else cgroupfs; `systemd` is refused when no systemd answers (nothing would manage the
    pod's units); `cgroupfs` writes directories below the hierarchy roots even under systemd, as
    Docker's cgroupfs driver does."""
    from sandbox.cgroups.detect import detect
    from sandbox.cgroups.driver import driver_for

    if config.driver not in DRIVERS:
        raise SandboxError(f"--cgroup-driver: must be one of {', '.join(DRIVERS)}, got {config.driver!r}")
    layout = detect(config.root_dir())
    if config.driver == "systemd" or (config.driver == "auto" and layout.systemd):
        driver = _systemd_driver(layout, config)
        if driver is not None:
            return driver
    return driver_for(layout, config.parent_name())


def _systemd_driver(layout: Layout, config: CgroupConfig) -> CgroupDriver | None:
    """The systemd driver with its bus open (so a missing systemd is found before anything is
    made); None under `auto` when no systemd answers."""
    from sandbox.cgroups.systemd import SystemdDriver, SystemdError

    driver = SystemdDriver(layout, config.parent_name(), config.systemd_bus or None)
    try:
        driver.bus()
    except SystemdError as e:
        if config.driver == "systemd":
            raise SandboxError(f"--cgroup-driver systemd: no systemd answers on D-Bus: {e}") from None
        log.info("systemd runs here but does not answer on D-Bus (%s): using cgroupfs directories", e)
        return None
    return driver


class CgroupPlan(Record):
    """What `sandbox run` checked before anything exists: the driver for this host and every value
    the pod's cgroups get (process/resources.PodResources)."""

    driver: Any  # CgroupDriver
    resources: Any  # PodResources


def plan(pod: Pod, config: CgroupConfig) -> CgroupPlan:
    """The pod's cgroup values, refused with a reason when this host cannot enforce one of them
    (a pod that asks for a limit never runs without it)."""
    from sandbox.process.resources import host_hugepage_sizes, memory_capacity, pod_resources

    driver = open_driver(config)
    hugetlb = driver.can_limit("hugetlb")
    try:
        resources = pod_resources(pod, pids_max=config.pod_pids_limit, memory_capacity=memory_capacity(),
                                  hugepage_sizes=host_hugepage_sizes() if hugetlb else ())
    except ValueError as e:
        raise SandboxError(f"pod resources: {e}") from None
    mode = driver.layout.mode
    asked = _asked(pod, config)
    wanted = [("the pod", resources.pod), *((f'container "{n}"', lim) for n, lim in resources.containers.items())]
    missing: set[str] = set()
    for who, limits in wanted:
        items = limits.items_v2() if mode == "v2" else limits.items_v1()
        for controller, name, _ in items:
            if driver.can_limit(controller):
                continue
            if controller in asked:
                raise SandboxError(f"{who}: cannot enforce {name}: the {controller} cgroup controller is not "
                                   f"available to sandbox on this host ({driver.layout.describe()})")
            missing.add(controller)
    if missing:
        # values nobody asked for (a BestEffort pod's 2 cpu shares, the no-swap pin of a pod with
        # no memory limit) where their controller is absent: left to the kernel's defaults
        log.info("no %s cgroup controller here: the kubelet's defaults for it are not written",
                 ", ".join(sorted(missing)))
        resources = replace(resources, pod=_without(resources.pod, missing),
                            containers={n: _without(lim, missing) for n, lim in resources.containers.items()})
    return CgroupPlan(driver, resources)


# CgroupLimits fields by the controller that enforces them, with their "leave it" value
_FIELDS: dict[str, dict[str, Any]] = {
    "cpu": {"cpu_shares": None, "cpu_weight": None, "cpu_quota": None},
    "memory": {"memory_limit": None, "memsw_limit": None, "swap_max": None, "oom_group": False},
    "pids": {"pids_max": None},
    "hugetlb": {"hugetlb": {}},
}


def _without(limits: CgroupLimits, controllers: set[str]) -> CgroupLimits:
    unset: dict[str, Any] = {}
    for controller in controllers:
        unset.update(_FIELDS.get(controller, {}))
    return replace(limits, **unset)


def _asked(pod: Pod, config: CgroupConfig) -> set[str]:
    """The controllers the pod (or the runtime's pids limit) asks to be enforced."""
    asked = {"pids"} if config.pod_pids_limit is not None else set()
    sets = [c.resources for c in (*pod.spec.containers, *pod.spec.init_containers) if c.resources is not None]
    if pod.spec.resources is not None:
        sets.append(pod.spec.resources)
    for res in sets:
        for name in (*res.limits, *res.requests):
            if name in ("cpu", "memory"):
                asked.add(name)
            elif name.startswith("hugepages-"):
                asked.add("hugetlb")
            elif name == "pids":
                asked.add("pids")
    return asked


def pause_limits(driver: CgroupDriver) -> CgroupLimits | None:
    """What pause's cgroup gets (containerd's WithDefaultSandboxShares); None where no cpu
    controller can be written (left to the kernel's default)."""
    if not driver.can_limit("cpu"):
        return None
    from sandbox.cgroups.resources import CgroupLimits, shares_to_weight

    return CgroupLimits(cpu_shares=PAUSE_CPU_SHARES, cpu_weight=shares_to_weight(PAUSE_CPU_SHARES))


class PodCgroups:
    """One pod's cgroup tree through a driver; `record` is the tear-down registry's `add`."""

    def __init__(self, driver: CgroupDriver, pod_uid: str, record: Callable[[TornDown], None]) -> None:
        self.driver = driver
        self.pod_uid = pod_uid
        self._record = record
        self.pod: Cgroup | None = None
        self.pause: Cgroup | None = None

    def create(self, limits: CgroupLimits) -> None:
        from sandbox.pod.teardown import Cgroup as CgroupRecord

        planned = self.driver.plan_pod(self.pod_uid)
        for path in planned.dirs():  # recorded before they exist
            self._record(CgroupRecord(path))
        self.pod = self.driver.create_pod(self.pod_uid, planned)
        self.driver.apply(self.pod, limits)

    def child(self, name: str, limits: CgroupLimits | None = None, devices: Any = None) -> Cgroup:
        """A new child of the pod cgroup with its limits (and device rules, None: every device;
        DEFAULT_DEVICES: runc's default list)."""
        assert self.pod is not None
        cgroup = self.driver.create_container(self.pod, name)
        try:
            if limits is not None:
                self.driver.apply(cgroup, limits)
            if devices == DEFAULT_DEVICES:
                self.driver.restrict_default_devices(cgroup)
            elif devices is not None:
                self.driver.restrict_devices(cgroup, devices)
        except BaseException:
            self.driver.remove(cgroup, timeout=0.5)
            raise
        return cgroup

    def release(self, cgroup: Cgroup) -> Stats | None:
        """The instance ended: the counters that outlive it (`oom_kills`; the usage fields are left
        None, nothing reads them once it is gone), then whatever still runs in it is killed (a
        process that left the main process's tree, in a shared PID namespace) and the cgroup
        removed. Failures are logged: the pod cgroup's tear-down removes the rest at the end."""
        from sandbox.cgroups.driver import Stats, oom_kills

        stats = None
        try:
            stats = Stats(oom_kills=oom_kills(cgroup.paths))
        except ValueError as e:
            log.warning("cannot read the counters of cgroup %s: %s", cgroup.name, e)
        try:
            remove_now = getattr(self.driver, "remove_now", None)  # v1 (and hybrid): see V1Driver.remove_now
            if remove_now is None or not remove_now(cgroup):
                self.driver.kill(cgroup)
                self.driver.remove(cgroup)
        except SandboxError as e:
            log.warning("cannot remove cgroup %s yet: %s", cgroup.name, e)
        return stats

    @property
    def places_processes(self) -> bool:
        """The driver starts processes in their cgroups itself (systemd: a scope per process)."""
        return bool(getattr(self.driver, "places_processes", False))

    def spawn_fields(self, cgroup: Cgroup | None) -> dict[str, Any]:
        """The SpawnRequest fields that start a process in `cgroup`: none for a driver that places
        processes itself (systemd: the scope is started with the process, see `joiner`)."""
        from sandbox.process.request import membership

        if cgroup is None or self.places_processes:
            return {}
        return membership(cgroup.paths)

    def joiner(self, cgroup: Cgroup | None,
               then: Callable[[int], None] | None = None) -> Callable[[int], None] | None:
        """The spawner's `before_start` for `cgroup`: with a driver that places processes itself,
        stage 2 (waiting for "go") joins through `add_process` first, then `then` runs."""
        if cgroup is None or not self.places_processes:
            return then
        driver = self.driver

        def join(pid: int) -> None:
            driver.add_process(cgroup, pid)
            if then is not None:
                then(pid)

        return join

    def mount_hierarchies(self) -> list[tuple[str, str, str]]:
        """What a container's /sys/fs/cgroup shows (rootfs/plan.cgroup_mounts): every hierarchy
        a pod cgroup lives in, named as on the host."""
        layout = self.driver.layout
        if layout.mode == "v2":
            return [("", "cgroup2", "")]
        by_dir: dict[Path, list[str]] = {}
        for controller, path in self.driver.v1_hierarchies().items():
            by_dir.setdefault(path, []).append(controller)
        out = [(path.name, "cgroup", ",".join(sorted(ctl))) for path, ctl in sorted(by_dir.items())]
        if layout.unified is not None:
            out.append((layout.unified.name, "cgroup2", ""))
        return out

    def to_json(self) -> dict[str, Any]:
        layout = self.driver.layout
        driver = "systemd" if self.places_processes else "cgroupfs"
        return {"mode": layout.mode, "driver": driver,
                "paths": paths_json(self.pod) if self.pod is not None else {}}


def paths_json(cgroup: Cgroup | None) -> dict[str, str]:
    return cgroup.paths_json() if cgroup is not None else {}
