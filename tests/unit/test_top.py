"""`sandbox top pod`: kubectl's columns and units, the rate over the window (fake clock, cgroup
files that move while the fake sleep runs), and which containers of a record count."""

from __future__ import annotations

import os
from pathlib import Path

from sandbox.cli.top import PodUsage, Target, Usage, measure, mebibytes, millicores, render, targets_of
from sandbox.state.proc import ProcessRef

MiB = 1024 * 1024


def pods() -> list[PodUsage]:
    return [
        PodUsage("default", "web", {"nginx": Usage(250_000_001, 12 * MiB + 5), "sidecar": Usage(0, 3 * MiB)}),
        PodUsage("default", "db", {"pg": Usage(1_000_000, 100 * MiB)}),
    ]


def test_units_are_kubectls_millicores_up_and_mebibytes_down() -> None:
    assert [millicores(n) for n in (0, 1, 999_999, 1_000_000, 1_000_001, 2_000_000_000)] == \
        ["0m", "1m", "1m", "1m", "2m", "2000m"]
    assert [mebibytes(n) for n in (0, MiB - 1, MiB, 12 * MiB + 5)] == ["0Mi", "0Mi", "1Mi", "12Mi"]


def test_pod_lines_sum_the_containers_sorted_by_name() -> None:
    # every cell is tab-terminated in kubectl's printer: the last column is padded too
    assert render(pods(), containers=False, all_namespaces=False, sort_by=None) == (
        "NAME   CPU(cores)   MEMORY(bytes)   \n"
        "db     1m           100Mi           \n"
        "web    251m         15Mi            \n")


def test_container_lines_name_the_pod_first() -> None:
    assert render(pods(), containers=True, all_namespaces=False, sort_by=None) == (
        "POD   NAME      CPU(cores)   MEMORY(bytes)   \n"
        "db    pg        1m           100Mi           \n"
        "web   nginx     251m         12Mi            \n"
        "web   sidecar   0m           3Mi             \n")


def test_all_namespaces_and_sort_by_usage() -> None:
    other = PodUsage("kube-system", "dns", {"coredns": Usage(5_000_000, 20 * MiB)})
    assert render([*pods(), other], containers=False, all_namespaces=True, sort_by="memory") == (
        "NAMESPACE     NAME   CPU(cores)   MEMORY(bytes)   \n"
        "default       db     1m           100Mi           \n"
        "kube-system   dns    5m           20Mi            \n"
        "default       web    251m         15Mi            \n")
    first = render(pods(), containers=True, all_namespaces=False, sort_by="cpu").splitlines()[1]
    assert first.split() == ["web", "nginx", "251m", "12Mi"]


def cgroup(directory: Path, cpu_ns: int, usage: int, inactive: int) -> dict[str, str]:
    directory.mkdir(parents=True)
    (directory / "cpuacct.usage").write_text(f"{cpu_ns}\n")
    (directory / "memory.usage_in_bytes").write_text(f"{usage}\n")
    (directory / "memory.stat").write_text(f"total_inactive_file {inactive}\n")
    return {"cpuacct": str(directory), "memory": str(directory)}


def test_measure_rates_cpu_over_each_containers_own_window(tmp_path: Path) -> None:
    spin = Target("default", "p", "spin", cgroup(tmp_path / "spin", 10**9, 8 * MiB, MiB))
    idle = Target("default", "p", "idle", cgroup(tmp_path / "idle", 5 * 10**9, 2 * MiB, 0))
    now = [100.0]

    def clock() -> float:
        now[0] += 0.001  # each reading takes a millisecond
        return now[0]

    def sleep(seconds: float) -> None:
        now[0] += seconds
        (tmp_path / "spin" / "cpuacct.usage").write_text(f"{10**9 + 450_000_000}\n")  # 0.45 s of CPU

    [pod] = measure([spin, idle], 0.5, clock, sleep)
    # spin: read at 100.001 and 100.503 -> 0.45 s / 0.502 s; idle: at 100.002 and 100.504, no CPU
    assert pod.containers == {"spin": Usage(int(0.45e9 / 0.502), 7 * MiB), "idle": Usage(0, 2 * MiB)}
    assert millicores(pod.total().nanocores) == "897m"


def test_measure_leaves_out_a_container_that_vanished_or_restarted(tmp_path: Path) -> None:
    gone = Target("default", "p", "gone", cgroup(tmp_path / "gone", 10**9, MiB, 0))
    reset = Target("default", "p", "reset", cgroup(tmp_path / "reset", 10**9, MiB, 0))
    never = Target("default", "q", "never", {"cpuacct": str(tmp_path / "nothing")})
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds
        for name in ("cpuacct.usage", "memory.usage_in_bytes", "memory.stat"):
            (tmp_path / "gone" / name).unlink()
        (tmp_path / "reset" / "cpuacct.usage").write_text("5\n")  # a new instance's counter

    assert measure([gone, reset, never], 0.5, lambda: now[0], sleep) == []


def test_targets_are_running_containers_with_a_cgroup(tmp_path: Path) -> None:
    me = ProcessRef.of(os.getpid())
    assert me is not None
    dead = {"pid": me.pid, "startTime": me.start_time + 1}  # pid reused by someone else
    state = {"name": "p", "containers": {
        "app": {"process": me.to_json(), "cgroup": {"memory": "/m/app", "cpuacct": "/c/app"}},
        "old": {"process": me.to_json()},  # a record from before cgroups
        "empty": {"process": me.to_json(), "cgroup": {}},
        "done": {"process": dead, "cgroup": {"memory": "/m/done"}},
        "broken": "not a record",
    }}
    assert targets_of(state, "default") == [Target("default", "p", "app", {"memory": "/m/app", "cpuacct": "/c/app"})]
    assert targets_of({"name": "p"}, "default") == []
