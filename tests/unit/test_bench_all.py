"""bench/all.py's pure logic: the ratios it takes from the scripts' reports, the 15% rule of
`make bench-check`, results.md, and the chart's input (no benchmark runs here)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def load(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench_all = load("all")
chart = load("chart")


def cycle_row(group: str, command: str, median: float, times: list[float] | None = None) -> dict[str, Any]:
    times = times or [median - 1, median, median + 1]
    return {"group": group, "command": command, "median_ms": median, "min_ms": min(times),
            "max_ms": max(times), "runs": len(times), "ratio": None, "peak_rss_kib": 1000, "times_ms": times}


def series(label: str, median: float, runs: int = 3) -> dict[str, Any]:
    times = [median] * runs
    return {"label": label, "runs": runs, "median_ms": median, "min_ms": median, "max_ms": median,
            "times_ms": times, "note": ""}


def sample_data(podman: bool = True, crun: bool = False) -> dict[str, Any]:
    rows = [cycle_row("cycle", "sandbox run", 60.0), cycle_row("cycle", "unshare+chroot", 3.0),
            cycle_row("cycle", "runc run", 30.0), cycle_row("exec", "sandbox exec", 40.0),
            cycle_row("exec", "nsenter -a", 2.0), cycle_row("exec", "runc exec", 20.0),
            cycle_row("running", "sandbox run, to Running", 50.0), cycle_row("running", "runc run, to Running", 25.0),
            cycle_row("startup", "python -c pass", 10.0)]
    if crun:
        rows += [cycle_row("cycle", "crun run", 15.0), cycle_row("exec", "crun exec", 10.0),
                 cycle_row("running", "crun run, to Running", 12.5)]
    agent: dict[str, Any] = {
        "series": [series("sandbox run -d (none)", 80.0), series("sandbox run -d (bridge), agent started", 250.0, 1)],
        "batches": [{"batch": "run -d, sequential", "pods": 100, "wall_ms": 9600.0}],
        "memory": [{"when": "sequential", "pods": 20, "total_pss_kib": 28000, "per_pod_kib": 1400.0},
                   {"when": "sequential", "pods": 100, "total_pss_kib": 33000, "per_pod_kib": 330.0},
                   {"when": "4 parallel", "pods": 100, "total_pss_kib": 34000, "per_pod_kib": 340.0}],
        "podman": "podman not installed", "notes": []}
    if podman:
        agent["series"].append(series("podman kube play (none)", 250.0))
        agent["podman"] = {"pods": 20, "conmon_count": 40, "conmon_pss_kib": 15000, "catatonit_count": 20,
                           "catatonit_pss_kib": 1000, "per_pod_kib": 800.0}
    return {
        "pod_cycle": {"rows": rows, "memory_kib": {"pause": {"VmRSS": 64}, "supervisor": {"VmRSS": 20000}},
                      "skipped": {} if crun else {"crun": "`crun run` exits 1: cgroups in hybrid mode not supported"}},
        "network_cost": {"medians_ms": {"none": 60.0, "bridge": 66.0},
                         "samples_ms": {"none": [59.0, 60.0, 61.0], "bridge": [65.0, 66.0, 67.0],
                                        "bridge, kept": [62.0, 63.0]}},
        "agent": agent,
        "net_throughput": {"rows": [
            {"case": "loopback", "runs": 3, "median_gbit_s": 20.0, "min_gbit_s": 19.0, "max_gbit_s": 21.0,
             "ratio_to_loopback": 1.0},
            {"case": "localhost", "runs": 3, "median_gbit_s": 19.0, "min_gbit_s": 18.0, "max_gbit_s": 20.0,
             "ratio_to_loopback": 0.95}]},
    }


def by_name(data: dict[str, Any]) -> dict[str, Any]:
    return {r.name: r for r in bench_all.ratios(data)}


def test_ratios_from_every_report() -> None:
    found = by_name(sample_data())
    assert found["sandbox run / runc run"].value == 2.0
    assert found["sandbox exec / runc exec"].value == 2.0
    assert found["sandbox run, to Running / runc run, to Running"].value == 2.0
    assert found["pod cycle, bridge / none"].value == 1.1
    assert found["run -d / podman kube play"].value == 0.32
    assert found["100 pods: run -d per pod / single run -d"].value == 1.2
    assert found["memory per pod at 20 pods / podman at 20"].value == 1.75
    assert found["memory per pod at 100 pods / podman at 20"].value == 0.412
    assert found["throughput localhost / loopback"].value == 0.95
    assert found["throughput localhost / loopback"].better == "higher"
    assert found["sandbox run / runc run"].better == "lower"


def test_a_peer_that_did_not_run_gives_no_ratio() -> None:
    found = by_name(sample_data(podman=False))
    assert not any("crun" in name for name in found)
    assert "run -d / podman kube play" not in found
    assert not any(name.startswith("memory") for name in found)
    assert "throughput pod-to-pod / loopback" not in found  # no pod-to-pod row
    with_crun = by_name(sample_data(crun=True))
    assert with_crun["sandbox run / crun run"].value == 4.0
    assert with_crun["sandbox exec / crun exec"].value == 4.0
    assert with_crun["sandbox run, to Running / crun run, to Running"].value == 4.0


def test_a_failed_step_leaves_the_others() -> None:
    data = sample_data()
    del data["agent"], data["pod_cycle"]
    assert set(by_name(data)) == {"pod cycle, bridge / none", "throughput localhost / loopback"}


def baseline(**values: tuple[float, str]) -> dict[str, Any]:
    return {"ratios": {name.replace("_", " "): {"value": v, "better": b} for name, (v, b) in values.items()}}


def ratio(name: str, value: float, better: str = "lower") -> Any:
    return bench_all.Ratio(name, value, better, "")


@pytest.mark.parametrize(("old", "new", "better", "worse"), [
    (2.0, 2.29, "lower", False),   # +14.5%: within the rule
    (2.0, 2.31, "lower", True),    # +15.5%
    (2.0, 1.0, "lower", False),    # better
    (1.0, 0.86, "higher", False),  # -14%
    (1.0, 0.84, "higher", True),   # -16%
    (1.0, 1.5, "higher", False),   # better
])
def test_fifteen_percent_rule(old: float, new: float, better: str, worse: bool) -> None:
    found, missing = bench_all.compare([ratio("r", new, better)], baseline(r=(old, better)))
    assert missing == []
    assert bool(found) is worse
    if worse:
        assert found[0].startswith("r: ") and f"{old:.3f}" in found[0]


def test_compare_names_each_worse_ratio_and_each_unmeasured_one() -> None:
    current = [ratio("a", 3.0), ratio("b", 1.0), ratio("new", 9.0)]
    found, missing = bench_all.compare(current, baseline(a=(2.0, "lower"), b=(1.0, "lower"), gone=(1.0, "lower")))
    assert [line.split(":")[0] for line in found] == ["a"]
    assert missing == ["gone"]


def test_an_unchecked_ratio_never_fails() -> None:
    current = [bench_all.Ratio("noisy", 9.0, "lower", "", checked=False)]
    assert bench_all.compare(current, baseline(noisy=(1.0, "lower"))) == ([], [])
    doc = bench_all.baseline_document(current, {}, "full")
    assert doc["ratios"]["noisy"]["checked"] is False
    assert bench_all.compare([ratio("noisy", 9.0)], doc) == ([], [])  # the baseline's word holds too
    assert not by_name(sample_data())["100 pods: run -d per pod / single run -d"].checked


def test_baseline_document_round_trips_through_compare() -> None:
    current = bench_all.ratios(sample_data())
    doc = bench_all.baseline_document(current, {"date": "d", "commit": "c"}, "full")
    assert doc["tolerance"] == 0.15
    assert bench_all.compare(current, doc) == ([], [])


def test_results_md() -> None:
    data = sample_data()
    current = bench_all.ratios(data)
    env = {"date": "2026-11-30T09:00:00Z", "commit": "abc1234", "cpus": "2 x CPU", "kernel": "6.18",
           "cgroups": "hybrid", "crun": "crun version 1.8.1", "podman": None}
    text = bench_all.render(data, {"net_throughput": "exit 1"}, env, current,
                            bench_all.baseline_document(current, {**env, "date": "earlier"}, "full"),
                            {"pod_cycle": ["--runs", "30"]},
                            None, "latency.png", 300.0)
    assert "| `sandbox run` | 60.0 | 59.0 | 61.0 | 3 |" in text
    assert "| sandbox run / runc run | 2.000 | 2.000 | +0% | lower |" in text
    assert "cgroups in hybrid mode not supported" in text  # the peer's reason, not a failure
    assert "| `crun run` |" in text and "| `crun exec` |" in text and "| `crun run, to Running` |" in text
    assert "| `sandbox run, to Running` | 50.0 | 49.0 | 51.0 | 3 |" in text
    assert "| podman | not installed |" in text
    assert "step `net_throughput` failed: exit 1" in text
    assert "![latency of every timed command, log scale](latency.png)" in text
    assert "pod_cycle `--runs 30`" in text
    assert "5.0 min" in text
    assert "| `bridge` | 66.0 | 65.0 | 67.0 | 3 | 1.10 |" in text
    assert "| run -d, sequential | 100 | 9.60 | 96.0 |" in text
    assert "| podman conmon (40) + catatonit (20) | 20 | 16000 | 800 | 1.00 |" in text
    assert "python -c pass" not in text  # start-up rows are pod_cycle.py's own business
    same_run = bench_all.render(data, {}, env, current, bench_all.baseline_document(current, env, "full"), {}, None,
                                "x.png", 1.0)
    assert "| sandbox run / runc run | 2.000 |  |  | lower |" in same_run  # no baseline from the run itself
    without_chart = bench_all.render(data, {}, env, current, None, {}, "gnuplot not installed", "x.png", 1.0)
    assert "Chart not drawn: gnuplot not installed" in without_chart
    assert "step `" not in without_chart


def test_chart_input() -> None:
    found = bench_all.latency_series(sample_data())
    labels = [label for label, _ in found]
    assert labels == ["sandbox run", "unshare+chroot", "runc run", "sandbox exec", "nsenter -a", "runc exec",
                      "sandbox run, to Running", "runc run, to Running",
                      "sandbox run, none net", "sandbox run, bridge net", "sandbox run -d (none)",
                      "podman kube play (none)"]  # no start-up rows, no single-run series
    assert found[0][1] == [59.0, 60.0, 61.0]


def test_chart_script(tmp_path: Path) -> None:
    found = [("a \"quoted\"", [1.0, 2.0]), ("b", [3.0])]
    assert chart.data_blocks(found) == "1.000\n2.000\n\n\n3.000\n"
    program = chart.script(found, tmp_path / "d.dat", tmp_path / "c.png", "title")
    assert 'set xtics ("a \\"quoted\\"" 1, "b" 2)' in program
    assert "for [i=0:1]" in program and "set logscale y" in program
    assert chart.render([("empty", [])], tmp_path / "c.png", "t") == "no latency series to draw"
