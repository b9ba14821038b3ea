"""sandbox.cgroups.warm: which cgroup.procs the warmer writes (its own cgroup, first v1 hierarchy)."""

from __future__ import annotations

from pathlib import Path

from sandbox.cgroups.warm import own_procs_file


def _tree(tmp_path: Path, proc_cgroup: str, dirs: list[str]) -> tuple[str, str]:
    (tmp_path / "cgroup").write_text(proc_cgroup)
    for d in dirs:
        (tmp_path / "fs" / d).mkdir(parents=True)
        (tmp_path / "fs" / d / "cgroup.procs").write_text("")
    return str(tmp_path / "cgroup"), str(tmp_path / "fs")


def test_hybrid_host_uses_the_first_v1_controller_hierarchy(tmp_path: Path) -> None:
    proc, root = _tree(tmp_path, "13:name=systemd:/user.slice\n12:pids:/user.slice/x\n11:memory:/\n0::/user.slice\n",
                       ["pids/user.slice/x", "memory"])
    assert own_procs_file(proc, root) == f"{root}/pids/user.slice/x/cgroup.procs"


def test_root_cgroup_has_no_double_slash(tmp_path: Path) -> None:
    proc, root = _tree(tmp_path, "4:memory:/\n", ["memory"])
    assert own_procs_file(proc, root) == f"{root}/memory/cgroup.procs"


def test_co_mounted_controllers_are_found_by_either_name(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    proc, root = _tree(tmp_path / "one", "3:cpu,cpuacct:/a\n", ["cpu/a"])  # mounted as "cpu" alone
    assert own_procs_file(proc, root) == f"{root}/cpu/a/cgroup.procs"
    proc, root = _tree(tmp_path / "two", "3:cpu,cpuacct:/a\n", ["cpu,cpuacct/a"])  # the joint name
    assert own_procs_file(proc, root) == f"{root}/cpu,cpuacct/a/cgroup.procs"


def test_cgroup2_only_or_named_only_hosts_need_no_warmer(tmp_path: Path) -> None:
    proc, root = _tree(tmp_path, "0::/user.slice\n1:name=systemd:/\n", [])
    assert own_procs_file(proc, root) is None
    assert own_procs_file(str(tmp_path / "missing"), root) is None
