"""cgroups/view.py over fake cgroup directories: v1, v2 and hybrid records, and records whose
files or directories are gone (readers answer None or leave the entry out, never raise)."""

from __future__ import annotations

from pathlib import Path

from sandbox.cgroups import view
from sandbox.cgroups.driver import Stats

MiB = 1024 * 1024


def write(directory: Path, **files: str) -> str:
    """Files named with their first `.` as `_` (memory_stat -> memory.stat) unless the name has a
    dot already; returns the directory as text."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / (name if "." in name else name.replace("_", ".", 1))).write_text(text + "\n")
    return str(directory)


def v1_pod(root: Path) -> dict[str, str]:
    cpu = root / "cpu,cpuacct" / "sandbox" / "u1" / "app"
    paths = {"cpu": str(cpu), "cpuacct": str(cpu)}
    write(cpu, cpuacct_usage="2500000000", cpu_cfs_quota_us="50000", cpu_cfs_period_us="100000",
          cpu_shares="512")
    paths["memory"] = write(root / "memory" / "sandbox" / "u1" / "app", **{
        "memory_usage_in_bytes": str(40 * MiB), "memory_max_usage_in_bytes": str(48 * MiB),
        "memory_limit_in_bytes": str(64 * MiB), "memory.memsw.limit_in_bytes": str(64 * MiB),
        "memory_failcnt": "3", "memory_oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2",
        "memory_stat": "inactive_file 4096\ntotal_inactive_file 10485760\ntotal_rss 1234"})
    paths["pids"] = write(root / "pids" / "sandbox" / "u1" / "app", pids_current="3", pids_max="max")
    paths["devices"] = write(root / "devices" / "sandbox" / "u1" / "app", devices_list="c 1:3 rwm\nc 1:5 rwm")
    hugetlb = root / "hugetlb" / "sandbox" / "u1" / "app"
    paths["hugetlb"] = write(hugetlb)
    (hugetlb / "hugetlb.2MB.limit_in_bytes").write_text("0\n")
    (hugetlb / "hugetlb.2MB.rsvd.limit_in_bytes").write_text("0\n")
    (hugetlb / "hugetlb.2MB.usage_in_bytes").write_text("0\n")
    return paths


def v2_cgroup(root: Path) -> dict[str, str]:
    unified = root / "sandbox" / "u2" / "app"
    write(unified, memory_current=str(30 * MiB), memory_peak=str(31 * MiB), memory_max="max",
          memory_events="low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\noom_group_kill 0",
          memory_stat="anon 1000\nfile 2000\ninactive_file 5242880\nactive_file 100",
          cpu_stat="usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000",
          cpu_max="max 100000", cpu_weight="100", pids_current="2", pids_max="64")
    (unified / "memory.swap.max").write_text("0\n")
    (unified / "hugetlb.1GB.max").write_text("max\n")
    (unified / "hugetlb.1GB.rsvd.max").write_text("max\n")
    return {"unified": str(unified)}


def test_v1_stats_read_each_controller_directory(tmp_path: Path) -> None:
    assert view.stats(v1_pod(tmp_path)) == Stats(
        memory_usage=40 * MiB, memory_peak=48 * MiB, memory_limit=64 * MiB, oom_kills=2, limit_hits=3,
        cpu_usage_ns=2_500_000_000, pids=3)


def test_v1_unlimited_memory_is_none(tmp_path: Path) -> None:
    paths = v1_pod(tmp_path)
    (Path(paths["memory"]) / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert view.stats(paths).memory_limit is None


def test_v2_stats_from_the_unified_directory(tmp_path: Path) -> None:
    assert view.stats(v2_cgroup(tmp_path)) == Stats(
        memory_usage=30 * MiB, memory_peak=31 * MiB, memory_limit=None, oom_kills=1, limit_hits=5,
        cpu_usage_ns=1_500_000_000, pids=2)


def test_working_set_subtracts_inactive_file_v1_hierarchical_v2_flat(tmp_path: Path) -> None:
    assert view.working_set(v1_pod(tmp_path / "a")) == 30 * MiB  # total_inactive_file, not inactive_file
    assert view.working_set(v2_cgroup(tmp_path / "b")) == 25 * MiB


def test_working_set_never_below_zero_and_without_memory_stat(tmp_path: Path) -> None:
    paths = v2_cgroup(tmp_path)
    (Path(paths["unified"]) / "memory.stat").write_text(f"inactive_file {40 * MiB}\n")
    assert view.working_set(paths) == 0
    (Path(paths["unified"]) / "memory.stat").unlink()
    assert view.working_set(paths) == 30 * MiB  # no figure to subtract: usage as it is


def test_hybrid_takes_v1_controllers_and_cgroup2_hugetlb(tmp_path: Path) -> None:
    """On a hybrid host the cgroup2 side holds no memory or cpu files: the v1 figures stand, and
    its hugetlb limits join the v1 ones."""
    paths = v1_pod(tmp_path / "v1")
    unified = write(tmp_path / "unified" / "sandbox" / "u1" / "app", cgroup_procs="")
    (Path(unified) / "hugetlb.2MB.max").write_text("max\n")
    paths["unified"] = unified
    assert view.stats(paths).memory_usage == 40 * MiB
    assert view.limits(paths)["hugetlb.2MB.max"] == "max"


def test_limits_v1_as_the_kernel_has_them(tmp_path: Path) -> None:
    assert view.limits(v1_pod(tmp_path)) == {
        "cpu.cfs_quota_us": "50000", "cpu.cfs_period_us": "100000", "cpu.shares": "512",
        "memory.limit_in_bytes": str(64 * MiB), "memory.memsw.limit_in_bytes": str(64 * MiB),
        "pids.max": "max", "hugetlb.2MB.limit_in_bytes": "0", "devices.list": "c 1:3 rwm\nc 1:5 rwm",
    }


def test_limits_v2_leave_out_files_the_directory_lacks(tmp_path: Path) -> None:
    assert view.limits(v2_cgroup(tmp_path)) == {
        "cpu.max": "max 100000", "cpu.weight": "100", "memory.max": "max", "memory.swap.max": "0",
        "pids.max": "64", "hugetlb.1GB.max": "max",
    }


def test_missing_directories_give_none_and_nothing(tmp_path: Path) -> None:
    gone = {"memory": str(tmp_path / "gone"), "cpuacct": str(tmp_path / "gone"), "pids": str(tmp_path / "gone"),
            "devices": str(tmp_path / "gone"), "hugetlb": str(tmp_path / "gone"), "unified": str(tmp_path / "gone")}
    assert view.stats(gone) == Stats()
    assert view.working_set(gone) is None
    assert view.limits(gone) == {}
    assert view.stats({}) == Stats() and view.limits({}) == {} and view.cpu_usage_ns({}) is None


def test_missing_or_damaged_files_give_none_per_field(tmp_path: Path) -> None:
    paths = v1_pod(tmp_path)
    (Path(paths["memory"]) / "memory.max_usage_in_bytes").unlink()
    (Path(paths["memory"]) / "memory.failcnt").write_text("garbage\n")
    (Path(paths["cpuacct"]) / "cpuacct.usage").write_bytes(b"\xff\xfe\n")
    got = view.stats(paths)
    assert (got.memory_usage, got.memory_peak, got.limit_hits, got.cpu_usage_ns) == (40 * MiB, None, 0, None)


def test_a_cgroup2_directory_without_the_memory_controller_reads_as_none(tmp_path: Path) -> None:
    """cpu.stat's usage is there in every cgroup2 directory; memory files only with the controller."""
    unified = write(tmp_path / "u", cpu_stat="usage_usec 7")
    assert view.stats({"unified": unified}) == Stats(cpu_usage_ns=7000)
    assert view.working_set({"unified": unified}) is None
