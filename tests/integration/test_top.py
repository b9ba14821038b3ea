"""`sandbox top pod` and the cgroup view of `inspect`/`describe` on a real pod: a container that
spins and one that holds 8 MiB and sleeps, checked against the cgroup files read from outside."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Sandbox

pytestmark = pytest.mark.root

# `idle` keeps an 8 MiB shell variable alive; its last command is a loop so the shell cannot
# exec `sleep` over itself (and drop the variable).
POD = """
apiVersion: v1
kind: Pod
metadata: {name: busy}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: spin
    image: busybox
    command: [sh, -c, "while :; do :; done"]
  - name: idle
    image: busybox
    command: [sh, -c, "x=$(head -c 8388608 /dev/zero | tr '\\\\0' a); while sleep 1000; do :; done"]
"""


@pytest.fixture
def pod(sbx: Sandbox) -> Iterator[Sandbox]:
    proc = sbx.start(sbx.manifest(POD))
    sbx.wait_running("busy", containers=2)
    yield sbx
    sbx.stop(proc)


def top(sbx: Sandbox, *args: str) -> dict[str, list[str]]:
    """Rows of `sandbox top pod busy --containers` by container name."""
    result = sbx.run("top", "pod", "busy", "--containers", *args)
    assert result.returncode == 0, result.stderr
    header, *rows = [line.split() for line in result.stdout.splitlines()]
    assert header == ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    return {row[1]: row for row in rows}


def settled(sbx: Sandbox) -> dict[str, list[str]] | None:
    """A reading once `idle` holds its 8 MiB and is done building it (it spins for a moment first)."""
    rows = top(sbx)
    if int(rows["idle"][3].removesuffix("Mi")) >= 8 and int(rows["idle"][2].removesuffix("m")) < 50:
        return rows
    return None


def test_top_shows_the_spinner_busy_and_the_sleeper_idle(pod: Sandbox) -> None:
    rows: dict[str, list[str]] = pod.wait_for(lambda: settled(pod), timeout=20, message="idle settled")
    assert set(rows) == {"spin", "idle"} and rows["spin"][0] == "busy"
    assert int(rows["spin"][2].removesuffix("m")) > 300
    assert int(rows["idle"][3].removesuffix("Mi")) >= 8
    result = pod.run("top", "pod", "busy")
    assert result.returncode == 0, result.stderr
    header, line = [row.split() for row in result.stdout.splitlines()]
    assert header == ["NAME", "CPU(cores)", "MEMORY(bytes)"] and line[0] == "busy"
    assert int(line[1].removesuffix("m")) > 300 and int(line[2].removesuffix("Mi")) >= 8
    listed = pod.run("top", "pods")
    assert listed.returncode == 0 and listed.stdout.splitlines()[1].split()[0] == "busy", listed.stderr


def test_inspect_names_existing_cgroups_that_hold_the_processes(pod: Sandbox) -> None:
    result = pod.run("inspect", "pod", "busy", "-o", "json")
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    assert report["cgroup"] is not None, "the pod record has no cgroup"
    pod_paths = report["cgroup"]["paths"]
    assert pod_paths and all(os.path.isdir(p) for p in pod_paths.values())
    for entry in report["processes"]:
        cgroup = entry["cgroup"]
        assert cgroup is not None and cgroup["missing"] == [], entry["name"]
        for key, path in cgroup["paths"].items():
            # its own child, or the pod cgroup where nothing is set per instance (cgroups/v1.py)
            assert os.path.isdir(path) and pod_paths[key] in (path, os.path.dirname(path))
            with open(os.path.join(path, "cgroup.procs")) as f:
                assert entry["pid"] in {int(p) for p in f.read().split()}, (entry["name"], path)
        if "memory" in cgroup["paths"]:
            assert "memory.limit_in_bytes" in cgroup["limits"]
    text = pod.run("inspect", "pod", "busy", "-c", "spin").stdout
    assert "pod cgroup (" in text and "  cgroup:\n" in text and "in cgroup: " in text
    assert "Cgroup:" in pod.run("describe", "pod", "busy").stdout


def test_top_of_a_pod_that_ended_is_an_error_naming_it(sbx: Sandbox) -> None:
    proc = sbx.start(sbx.manifest(POD))
    sbx.wait_running("busy", containers=2)
    sbx.stop(proc)
    result = sbx.run("top", "pod", "busy")
    assert result.returncode == 1 and '"busy"' in result.stderr and "not running" in result.stderr
    listed = sbx.run("top", "pods")
    assert listed.returncode == 1 and "no pod is running" in listed.stderr
    missing = sbx.run("top", "pod", "nope")
    assert missing.returncode == 1 and '"nope" not found' in missing.stderr


OOM = """
apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  restartPolicy: Never
  containers:
  - name: hog
    image: busybox
    command: [sh, -c, "x=$(head -c 67108864 /dev/zero | tr '\\\\0' a); echo survived"]
    resources: {limits: {memory: 32Mi}}
"""


def test_describe_counts_the_oom_kill_of_a_container_over_its_limit(sbx: Sandbox) -> None:
    code, _, err = sbx.finish(sbx.start(sbx.manifest(OOM)), timeout=60)
    state = sbx.state("hog")
    assert state is not None, err
    assert state["containers"]["hog"].get("oomKills", 0) >= 1, (code, err)
    text = sbx.run("describe", "pod", "hog").stdout
    assert "OOMKilled" in text and "Exit Code:    137" in text
    oom_line = next(line for line in text.splitlines() if "OOM Kills:" in line)
    assert int(oom_line.split()[-1]) >= 1
