"""The systemd cgroup driver's pure parts: unit names and cgroup paths, the properties made from
limits, the bus address, and how the pod's cgroups hand process placement to such a driver.
The driver against a real systemd: tests/cgroups/test_systemd_driver.py (root)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.cgroups.detect import Layout
from sandbox.cgroups.driver import Cgroup
from sandbox.cgroups.fs import CgroupError
from sandbox.cgroups.resources import CgroupLimits
from sandbox.cgroups.systemd import (
    BUS_ENV,
    SYSTEM_BUS,
    SystemdDriver,
    SystemdError,
    _socket_path,
    default_address,
    escape,
    limit_properties,
    slice_path,
)
from sandbox.pod.cgroups import PodCgroups

MI = 1 << 20


def test_unit_name_components() -> None:
    assert escape("0b1c-2d") == "0b1c_2d"  # '-' would start a new slice level
    assert escape("a/b c") == "a\\x2fb\\x20c"
    assert escape("x.y") == "x.y" and escape(".y") == "\\x2ey"
    with pytest.raises(CgroupError):
        escape("")


def test_slice_paths_follow_the_dashes() -> None:
    assert slice_path("sandbox.slice") == ["sandbox.slice"]
    assert slice_path("sandbox-abc.slice") == ["sandbox.slice", "sandbox-abc.slice"]
    assert slice_path("a-b-c.slice") == ["a.slice", "a-b.slice", "a-b-c.slice"]
    for bad in ("a--b.slice", "-a.slice", "a-.slice", "-.slice", "a.scope"):
        with pytest.raises(CgroupError):
            slice_path(bad)


def test_driver_names_pod_slices_and_scopes() -> None:
    layout = Layout("v1", Path("/sys/fs/cgroup"), v1={"memory": Path("/sys/fs/cgroup/memory")})
    drv = SystemdDriver(layout, "sandbox")
    pod = drv.pod_slice("4f1e-77")
    assert pod == "sandbox-4f1e_77.slice"
    assert drv.scope(pod, "pause") == "sandbox-4f1e_77-pause.scope"
    assert SystemdDriver(layout, "kubepods.slice").parent_slice() == "kubepods.slice"
    cgroup = Cgroup("x", {"memory": Path("/sys/fs/cgroup/memory/sandbox.slice/sandbox-4f1e_77.slice")})
    assert drv.unit(cgroup) == pod


def test_limit_properties_v1_and_v2() -> None:
    limits = CgroupLimits(cpu_shares=2, cpu_weight=1, cpu_quota=15_000, memory_limit=MI, pids_max=5)
    assert dict(limit_properties(limits, v2=False)) == {
        "CPUShares": ("t", 2), "CPUQuotaPerSecUSec": ("t", 150_000), "CPUQuotaPeriodUSec": ("t", 100_000),
        "MemoryLimit": ("t", MI), "TasksMax": ("t", 5)}
    assert dict(limit_properties(limits, v2=True)) == {
        "CPUWeight": ("t", 1), "CPUQuotaPerSecUSec": ("t", 150_000), "CPUQuotaPeriodUSec": ("t", 100_000),
        "MemoryMax": ("t", MI), "TasksMax": ("t", 5)}
    # systemd keeps the quota in 10 ms steps: rounded up, never below what was asked
    odd = dict(limit_properties(CgroupLimits(cpu_quota=1_234, cpu_period=100_000), v2=True))
    assert odd["CPUQuotaPerSecUSec"] == ("t", 20_000)
    assert limit_properties(CgroupLimits(), v2=True) == []


def test_bus_address(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _socket_path("unix:path=/run/x;tcp:host=h") == "/run/x"
    assert _socket_path("tcp:host=h;unix:abstract=sd") == "\0sd"
    with pytest.raises(SystemdError):
        _socket_path("tcp:host=localhost,port=1")
    monkeypatch.setenv(BUS_ENV, "unix:path=/tmp/bus")
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/tmp/other")
    assert default_address() == "unix:path=/tmp/bus"
    monkeypatch.delenv(BUS_ENV)
    assert default_address() == "unix:path=/tmp/other"
    monkeypatch.delenv("DBUS_SYSTEM_BUS_ADDRESS")
    assert default_address() in (SYSTEM_BUS, "unix:path=/run/systemd/private")


class _Placing:
    """A driver that places processes itself (as the systemd driver does)."""

    places_processes = True

    def __init__(self) -> None:
        self.added: list[tuple[str, int]] = []

    def add_process(self, cgroup: Cgroup, pid: int) -> None:
        self.added.append((cgroup.name, pid))


def test_pod_cgroups_hand_placement_to_a_placing_driver() -> None:
    cgroup = Cgroup("c1", {"unified": Path("/sys/fs/cgroup/unified/p/c1"), "memory": Path("/m/p/c1")})
    placing = _Placing()
    pods = PodCgroups(placing, "uid", lambda _: None)  # type: ignore[arg-type]
    assert pods.spawn_fields(cgroup) == {}
    seen: list[int] = []
    joiner = pods.joiner(cgroup, seen.append)
    assert joiner is not None
    joiner(42)
    assert placing.added == [("c1", 42)] and seen == [42]

    plain = PodCgroups(object(), "uid", lambda _: None)  # type: ignore[arg-type]
    assert plain.spawn_fields(cgroup) == {"cgroups": ("/m/p/c1",), "cgroup2": "/sys/fs/cgroup/unified/p/c1"}
    assert plain.joiner(cgroup, seen.append) == seen.append
    assert plain.joiner(None) is None
