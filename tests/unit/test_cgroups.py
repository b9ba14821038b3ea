"""sandbox.cgroups without root: layout detection from a mountinfo text and a temporary root, the
path guard, and the kubelet's / runc's translation with their own numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.cgroups import fs
from sandbox.cgroups.detect import Layout, detect, parse_mountinfo
from sandbox.cgroups.fs import CgroupError
from sandbox.cgroups.resources import (
    ContainerResources,
    container_limits,
    default_pod_level,
    milli_cpu_to_quota,
    milli_cpu_to_shares,
    oom_score_adj,
    pod_limits,
    qos_class,
    remaining_pod_memory_request,
    shares_to_weight,
    shares_to_weight_linear,
)

GI = 1 << 30
MI = 1 << 20

# this VM's /proc/self/mountinfo, cgroup lines, with <R> for the root
HYBRID = """\
31 23 0:28 / <R> rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / <R>/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / <R>/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / <R>/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / <R>/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / <R>/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / <R>/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / <R>/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / <R>/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / <R>/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / <R>/unified rw,relatime - cgroup2 cgroup2 rw
"""

# a systemd-era pure v1 host: co-mounted cpu,cpuacct and net_cls,net_prio, no cgroup2
PURE_V1 = """\
25 18 0:22 / <R> ro,nosuid,nodev,noexec shared:7 - tmpfs tmpfs ro,mode=755
26 25 0:23 / <R>/systemd rw,nosuid shared:8 - cgroup cgroup rw,xattr,name=systemd
29 25 0:26 / <R>/cpu,cpuacct rw,nosuid shared:10 - cgroup cgroup rw,cpu,cpuacct
30 25 0:27 / <R>/memory rw,nosuid shared:11 - cgroup cgroup rw,memory
31 25 0:28 / <R>/pids rw,nosuid shared:12 - cgroup cgroup rw,pids
32 25 0:29 / <R>/net_cls,net_prio rw,nosuid shared:13 - cgroup cgroup rw,net_cls,net_prio
33 25 0:30 / <R>/hugetlb rw,nosuid shared:14 - cgroup cgroup rw,hugetlb
"""

PURE_V2 = """\
22 1 0:21 / /sys rw - sysfs sysfs rw
26 22 0:23 / <R> rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
900 800 0:23 / /var/lib/x/rootfs<R> rw - cgroup2 cgroup2 rw
"""


def _host(tmp_path: Path, text: str, controllers: dict[str, str] | None = None) -> tuple[Path, Path]:
    root = tmp_path / "cg root"  # a space: mountinfo escapes it as \040
    root.mkdir()
    for rel, ctl in (controllers or {}).items():
        (root / rel).mkdir(parents=True, exist_ok=True)
        (root / rel / "cgroup.controllers").write_text(ctl + "\n")
    info = tmp_path / "mountinfo"
    info.write_text(text.replace("<R>", str(root).replace(" ", "\\040")))
    return root, info


def test_hybrid_like_this_machine(tmp_path: Path) -> None:
    root, info = _host(tmp_path, HYBRID, {"unified": "hugetlb"})
    layout = detect(root, info, systemd_marker=tmp_path / "no-systemd")
    assert layout.mode == "hybrid"
    assert sorted(layout.v1) == ["blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids"]
    assert layout.v1["memory"] == root / "memory"
    assert layout.named == {"systemd": root / "systemd"}  # joined by nobody: systemd's own
    assert layout.unified == root / "unified" and layout.unified_controllers == {"hugetlb"}
    assert layout.systemd is False
    assert "hybrid" in layout.describe() and "no systemd" in layout.describe()


def test_pure_v1_with_co_mounted_controllers(tmp_path: Path) -> None:
    (tmp_path / "systemd").mkdir()
    root, info = _host(tmp_path, PURE_V1)
    layout = detect(root, info, systemd_marker=tmp_path / "systemd")
    assert layout.mode == "v1" and layout.unified is None and layout.systemd is True
    assert layout.v1["cpu"] == layout.v1["cpuacct"] == root / "cpu,cpuacct"
    assert "net_cls" not in layout.v1  # not a controller a pod joins
    assert layout.hierarchies() == sorted({root / "cpu,cpuacct", root / "memory", root / "pids", root / "hugetlb"})


def test_pure_v2_ignores_a_bind_mount_elsewhere(tmp_path: Path) -> None:
    root, info = _host(tmp_path, PURE_V2, {".": "cpuset cpu io memory hugetlb pids"})
    layout = detect(root, info, systemd_marker=tmp_path / "x")
    assert layout.mode == "v2" and layout.unified == root and not layout.v1
    assert layout.unified_controllers == {"cpuset", "cpu", "io", "memory", "hugetlb", "pids"}


def test_no_cgroup_mount_is_an_error(tmp_path: Path) -> None:
    root, info = _host(tmp_path, "22 1 0:21 / /sys rw - sysfs sysfs rw\n")
    with pytest.raises(CgroupError, match="no cgroup"):
        detect(root, info)


def test_mountinfo_parsing_keeps_order_and_options() -> None:
    mounts = parse_mountinfo(HYBRID.replace("<R>", "/sys/fs/cgroup"))
    assert [m.fstype for m in mounts].count("cgroup2") == 1
    assert mounts[-1].mount_point == Path("/sys/fs/cgroup/unified")
    assert "name=systemd" in mounts[-2].options


@pytest.mark.parametrize("bad", ["..", ".", "", "a/b", "/abs", "x\0y", "a\nb"])
def test_paths_never_leave_the_root(tmp_path: Path, bad: str) -> None:
    with pytest.raises(CgroupError):
        fs.under(tmp_path, "sandbox", bad)


def test_paths_under_the_root(tmp_path: Path) -> None:
    assert fs.under(tmp_path, "sandbox", "uid", "pause") == tmp_path / "sandbox" / "uid" / "pause"


# kubelet pkg/kubelet/cm/helpers_linux_test.go: TestMilliCPUToQuota, and MilliCPUToShares' bounds
@pytest.mark.parametrize(
    ("milli", "quota"),
    [(0, 0), (5, 1000), (9, 1000), (10, 1000), (200, 20000), (500, 50000), (1000, 100000), (1500, 150000),
     (250, 25000),
     # past the kernel's largest quota (2^44-1 µs): that quota, not a write the kernel refuses
     (175921860444 * 1000, 2**44 - 1), ((2**63 - 1) * 1000, 2**44 - 1)],
)
def test_milli_cpu_to_quota(milli: int, quota: int) -> None:
    assert milli_cpu_to_quota(milli, 100000) == quota


@pytest.mark.parametrize(
    ("milli", "shares"),
    [(0, 2), (1, 2), (2, 2), (3, 3), (100, 102), (250, 256), (500, 512), (1000, 1024), (2000, 2048),
     (256000, 262144), (300000, 262144)],
)
def test_milli_cpu_to_shares(milli: int, shares: int) -> None:
    assert milli_cpu_to_shares(milli) == shares


@pytest.mark.parametrize(("shares", "weight"), [(0, 0), (2, 1), (1024, 100), (262144, 10000), (1, 1), (10**6, 10000)])
def test_shares_to_weight_keeps_the_defaults_aligned(shares: int, weight: int) -> None:
    assert shares_to_weight(shares) == weight


def test_the_old_linear_conversion_for_comparison() -> None:
    assert [shares_to_weight_linear(s) for s in (2, 1024, 262144)] == [1, 39, 10000]
    weights = [shares_to_weight(s) for s in range(2, 262145, 97)]
    assert weights == sorted(weights)  # monotonic


def test_container_limits_like_kuberuntime() -> None:
    lim = container_limits(ContainerResources(cpu_request_milli=100, cpu_limit_milli=250,
                                              memory_request=64 * MI, memory_limit=128 * MI))
    assert (lim.cpu_shares, lim.cpu_weight, lim.cpu_quota, lim.cpu_period) == (102, shares_to_weight(102), 25000, 100000)
    assert lim.memory_limit == lim.memsw_limit == 128 * MI and lim.swap_max == 0
    v1 = lim.items_v1()
    assert v1.index(("cpu", "cpu.cfs_period_us", "100000")) < v1.index(("cpu", "cpu.cfs_quota_us", "25000"))
    assert ("memory", "memory.max", str(128 * MI)) in lim.items_v2()
    assert ("cpu", "cpu.max", "25000 100000") in lim.items_v2()
    assert ("memory", "memory.oom.group", "1") in lim.items_v2()


def test_container_limits_without_request_take_shares_from_the_limit() -> None:
    lim = container_limits(ContainerResources(cpu_limit_milli=500))
    assert lim.cpu_shares == 512 and lim.cpu_quota == 50000
    none = container_limits(ContainerResources())
    assert none.cpu_shares == 2 and none.cpu_weight == 1 and none.cpu_quota is None
    assert none.memory_limit is None and none.memsw_limit is None and none.swap_max == 0


def test_hugepages_use_the_kernel_names() -> None:
    lim = container_limits(ContainerResources(hugepages_limit={"2Mi": 4 * MI}))
    assert ("hugetlb", "hugetlb.2MB.limit_in_bytes", str(4 * MI)) in lim.items_v1()
    assert ("hugetlb", "hugetlb.2MB.max", str(4 * MI)) in lim.items_v2()
    with pytest.raises(ValueError):
        container_limits(ContainerResources(hugepages_limit={"3Mi": MI}))


G = ContainerResources(cpu_request_milli=500, cpu_limit_milli=500, memory_request=GI, memory_limit=GI)
B = ContainerResources(cpu_request_milli=100, memory_request=GI)
E = ContainerResources()


@pytest.mark.parametrize(
    ("containers", "qos"),
    [([G], "Guaranteed"), ([G, G], "Guaranteed"), ([B], "Burstable"), ([E], "BestEffort"), ([E, E], "BestEffort"),
     ([G, E], "Burstable"), ([G, B], "Burstable"),
     ([ContainerResources(cpu_request_milli=500, cpu_limit_milli=500)], "Burstable"),  # no memory limit
     ([ContainerResources(cpu_request_milli=100, cpu_limit_milli=500, memory_request=GI, memory_limit=GI)], "Burstable"),
     ([ContainerResources(hugepages_limit={"2Mi": MI})], "BestEffort")],  # only cpu and memory count
)
def test_qos_class(containers: list[ContainerResources], qos: str) -> None:
    assert qos_class(containers) == qos


def test_oom_score_adj_from_policy_go() -> None:
    cap = 10 * GI
    assert oom_score_adj("Guaranteed", G, cap) == -997
    assert oom_score_adj("BestEffort", E, cap) == 1000
    # "A container requesting for 10% of a system's memory will have an OOM score adjust of 900"
    assert oom_score_adj("Burstable", ContainerResources(memory_request=GI), cap) == 900
    assert oom_score_adj("Burstable", ContainerResources(cpu_request_milli=1), cap) == 999  # 1000 -> 999
    assert oom_score_adj("Burstable", ContainerResources(memory_request=cap), cap) == 3  # 0 -> 1000 + -997
    assert oom_score_adj("Burstable", ContainerResources(memory_request=2 * cap), cap) == 3
    assert oom_score_adj("Burstable", ContainerResources(memory_request=cap * 996 // 1000), cap) == 5
    # a sidecar never scores above the app container with the smallest request
    sidecar = ContainerResources(memory_request=GI // 10, restartable_init=True)
    assert oom_score_adj("Burstable", sidecar, cap, min_app_memory_request=GI) == 900


def test_pod_limits_sum_app_containers_and_take_the_largest_init() -> None:
    app = [ContainerResources(cpu_request_milli=100, cpu_limit_milli=200, memory_limit=100 * MI),
           ContainerResources(cpu_request_milli=300, cpu_limit_milli=400, memory_limit=50 * MI)]
    init = [ContainerResources(cpu_request_milli=1000, cpu_limit_milli=1000, memory_limit=500 * MI)]
    lim = pod_limits(app, init, pids_max=1024)
    assert lim.cpu_shares == milli_cpu_to_shares(1000) and lim.cpu_quota == 100000
    assert lim.memory_limit == 500 * MI and lim.pids_max == 1024
    # one container without a memory limit: the pod has none
    assert pod_limits([*app, ContainerResources(cpu_limit_milli=100)]).memory_limit is None
    # a sidecar counts alongside the app containers
    side = ContainerResources(cpu_request_milli=50, cpu_limit_milli=50, memory_limit=10 * MI, restartable_init=True)
    assert pod_limits(app, [side]).memory_limit == 160 * MI


def test_pod_level_resources_replace_the_containers_for_qos_and_the_pod_cgroup() -> None:
    app = [B, E]
    # requests and limits equal at the pod level: Guaranteed whatever the containers say
    both = ContainerResources(cpu_request_milli=1000, cpu_limit_milli=1000, memory_request=GI, memory_limit=GI)
    assert qos_class(app, both) == "Guaranteed"
    assert qos_class([G], ContainerResources(cpu_request_milli=500)) == "Burstable"  # no pod-level limit
    lim = pod_limits(app, pod_level=both)
    assert (lim.cpu_shares, lim.cpu_quota, lim.memory_limit) == (1024, 100000, GI)
    # a container without a limit is capped by the pod's; shares from that limit when it has no request
    c = container_limits(E, pod_level=both)
    assert (c.cpu_quota, c.memory_limit, c.cpu_shares) == (100000, GI, 1024)
    assert container_limits(ContainerResources(cpu_request_milli=0), pod_level=both).cpu_shares == 2


def test_default_pod_level_takes_limits_from_containers_and_requests_from_limits() -> None:
    limited = ContainerResources(cpu_request_milli=200, cpu_limit_milli=300, memory_request=MI, memory_limit=2 * MI)
    got = default_pod_level(ContainerResources(memory_limit=GI), [limited, limited])
    assert (got.cpu_limit_milli, got.cpu_request_milli, got.memory_limit, got.memory_request) == (600, 600, GI, GI)
    unlimited = default_pod_level(ContainerResources(cpu_request_milli=100), [limited, E])
    assert (unlimited.cpu_limit_milli, unlimited.cpu_request_milli, unlimited.memory_request) == (None, 100, None)


def test_oom_score_adj_shares_the_unrequested_pod_memory() -> None:
    # KEP-2837's example: a 180 request over three containers with 50, 100 and nothing, capacity 1000
    app = [ContainerResources(memory_request=50), ContainerResources(memory_request=100), E]
    remaining = remaining_pod_memory_request(ContainerResources(memory_request=180), app)
    assert remaining == 10
    assert [oom_score_adj("Burstable", c, 1000, remaining_pod_request=remaining) for c in app] == [940, 890, 990]
    assert remaining_pod_memory_request(None, app) == 0


def test_the_teardown_hook_refuses_paths_that_are_not_pod_cgroups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sandbox.cgroups import reclaim
    from sandbox.cgroups.reclaim import kill_and_remove

    monkeypatch.setattr(reclaim, "_hand_over", lambda parent, root: None)  # no remover for plain directories

    # one filesystem, as a v2 host's /sys/fs/cgroup: <parent>/<pod> is the least that is removed
    # (v1's per-controller mounts are checked on the real hierarchies, tests/cgroups)
    root = tmp_path / "root"
    outside = tmp_path / "x" / "y" / "z"
    for d in (root / "sandbox", outside):
        d.mkdir(parents=True)
    for bad in (root, root / "sandbox", root / ".." / "x" / "y" / "z"):
        with pytest.raises(OSError, match="not a pod cgroup"):
            kill_and_remove(bad, root=root)
    assert outside.is_dir() and (root / "sandbox").is_dir()
    (root / "sandbox" / "pod").mkdir()
    assert kill_and_remove(root / "sandbox" / "pod", root=root) is True
    # what is not there is already undone, wherever the record said it was
    assert kill_and_remove(root / "sandbox" / "gone", root=root) is False
    assert kill_and_remove(tmp_path / "nowhere", root=root) is False


def test_remove_is_leaf_first_and_tolerates_missing(tmp_path: Path) -> None:
    import time

    pod = tmp_path / "sandbox" / "uid"
    for child in ("pause", "a/inner", "b"):
        (pod / child).mkdir(parents=True)
    fs.rmdir_tree(pod, time.monotonic() + 1)
    assert not pod.exists() and (tmp_path / "sandbox").exists()
    fs.rmdir_tree(pod, time.monotonic() + 1)  # already gone


def test_membership_joins_cgroup2_at_birth_and_v1_hierarchies_by_write() -> None:
    from sandbox.process.request import membership

    assert membership(None) == {} and membership({}) == {}
    hybrid = {"memory": "/sys/fs/cgroup/memory/p/c", "cpu": "/sys/fs/cgroup/cpu/p/c",
              "cpuacct": "/sys/fs/cgroup/cpu/p/c", "unified": "/sys/fs/cgroup/unified/p/c"}
    assert membership(hybrid) == {"cgroups": ("/sys/fs/cgroup/cpu/p/c", "/sys/fs/cgroup/memory/p/c"),
                                  "cgroup2": "/sys/fs/cgroup/unified/p/c"}
    assert membership({"unified": Path("/sys/fs/cgroup/p/c")}) == {"cgroups": (), "cgroup2": "/sys/fs/cgroup/p/c"}
    assert membership({"memory": "/m/p/c"}) == {"cgroups": ("/m/p/c",), "cgroup2": None}


def test_an_instances_oom_kills_are_read_from_its_memory_cgroup(tmp_path: Path) -> None:
    from sandbox.cgroups.driver import oom_kills

    v1, v2 = tmp_path / "memory", tmp_path / "unified"
    v1.mkdir()
    v2.mkdir()
    (v1 / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    (v2 / "memory.events").write_text("low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\n")
    assert oom_kills({"memory": v1, "unified": v2}) == 2  # the v1 controller's own count first
    assert oom_kills({"unified": str(v2)}) == 1
    assert oom_kills({"unified": tmp_path / "gone"}) == 0 and oom_kills({}) == 0  # a scope already gone


def _fake_hybrid(tmp_path: Path) -> Layout:
    v1 = {c: tmp_path / c for c in ("blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids")}
    for path in v1.values():
        path.mkdir()
        if path.name == "cpuset":
            for name in ("cpuset.cpus", "cpuset.mems"):
                (path / name).write_text("0\n")
    (tmp_path / "unified").mkdir()
    return Layout("hybrid", tmp_path, v1=v1, unified=tmp_path / "unified")


def test_an_instance_has_a_cgroup_of_its_own_only_where_its_values_are_set_or_read(tmp_path: Path) -> None:
    """v1: pause and containers get a child in cpu, cpuacct, memory, devices and freezer; in
    blkio, cpuset, pids and (delegating nothing) the cgroup2 side they live in the pod cgroup,
    which their kill and removal never touch (tests/cgroups checks it on real hierarchies)."""
    from sandbox.cgroups.driver import Cgroup, driver_for
    from sandbox.cgroups.resources import CgroupLimits

    drv = driver_for(_fake_hybrid(tmp_path), "sandbox")
    pod = drv.plan_pod("uid")
    for path in pod.dirs():
        path.mkdir(parents=True)
    app = drv.create_container(pod, "app")
    own = {key for key, path in app.paths.items() if path.name == "app"}
    assert own == {"cpu", "cpuacct", "memory", "devices", "freezer"}
    assert {key: app.paths[key] for key in ("blkio", "cpuset", "pids", "unified")} == \
        {key: pod.paths[key] for key in ("blkio", "cpuset", "pids", "unified")}
    assert all(app.paths[key].is_dir() for key in own)
    with pytest.raises(CgroupError, match="whole pod only"):  # never the pod's pids.max through a container
        drv.apply(app, CgroupLimits(pids_max=10))
    drv.remove(app)
    assert not any(app.paths[key].exists() for key in own) and all(p.is_dir() for p in pod.dirs())
    # a record from before: a child in every hierarchy, still removed whole, the pod left alone
    old = Cgroup("old", {key: path / "old" for key, path in pod.paths.items()})
    for path in old.dirs():
        path.mkdir()
    drv.remove(old)
    assert not any(p.exists() for p in old.dirs()) and all(p.is_dir() for p in pod.dirs())
    # the systemd driver's scopes live in every hierarchy
    (tmp_path / "b").mkdir()
    every = driver_for(_fake_hybrid(tmp_path / "b"), "sandbox", every_hierarchy=True)
    other = every.plan_pod("u")
    for path in other.dirs():
        path.mkdir(parents=True)
    assert all(p.name == "x" and p.is_dir() for p in every.create_container(other, "x").paths.values())
