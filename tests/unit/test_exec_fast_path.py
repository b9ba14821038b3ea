"""`sandbox exec`'s start-up shortcuts (sandbox/cli/exec.py, sandbox/process/exec.py) against the
code they stand in for: the cgroup fields of a container record (absolute paths only),
the compiled seccomp filter read without the seccomp compiler, and the collector back on
whatever way the command ends."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.cli import exec as exec_verb
from sandbox.cli import main
from sandbox.process.request import membership

REPO = Path(__file__).resolve().parents[2]
V1 = {key: f"/sys/fs/cgroup/{key}/pod/ctr" for key in ("blkio", "cpu", "memory", "pids")}
UNIFIED = "/sys/fs/cgroup/unified/pod/ctr"


@pytest.mark.parametrize("paths", [
    {**V1, "unified": UNIFIED},
    V1,
    {"unified": UNIFIED},
    {"cpu": "/sys/fs/cgroup/cpu,cpuacct/pod/ctr", "cpuacct": "/sys/fs/cgroup/cpu,cpuacct/pod/ctr"},  # co-mounted
    {"memory": "relative/ctr", "pids": "/sys/fs/cgroup/pids/pod/ctr", "unified": 7},
    {"memory": "relative/ctr"},
    {},
])
def test_membership_takes_the_absolute_paths_only(paths: dict[str, object]) -> None:
    absolute = {k: p for k, p in paths.items() if isinstance(p, str) and p.startswith("/")}
    assert exec_verb._membership(paths) == membership(absolute)


@pytest.mark.parametrize("record", [None, [], "x", 3])
def test_a_record_without_cgroups_joins_none(record: object) -> None:
    assert exec_verb._membership(record) == {}


def test_the_exec_path_loads_neither_the_cgroup_nor_the_seccomp_module(tmp_path: Path) -> None:
    (tmp_path / "f.bpf").write_bytes(b"\0" * 8)
    code = ("import sys; from sandbox.cli import exec as e; from sandbox.process import exec as p; "
            "e._membership({'memory': '/sys/fs/cgroup/memory/x', 'unified': '/sys/fs/cgroup/unified/x'}); "
            "p.read_filter(sys.argv[1]); "
            "print(sorted({'sandbox.cgroups', 'sandbox.cgroups.fs', 'sandbox.security.seccomp'}"
            " & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "f.bpf")], capture_output=True, text=True,
                          cwd=REPO, check=True)
    assert done.stdout.strip() == "[]"


def _pod(root: Path, containers: dict[str, object]) -> None:
    pod = root / "run" / "pods" / "default_web"
    pod.mkdir(parents=True)
    (pod / "state.json").write_text(json.dumps({"containers": containers, "manifest": {}}))


@pytest.mark.parametrize("case", ["no pod", "no such container", "not running", "no command"])
def test_the_collector_is_back_on_whatever_ends_the_command(case: str, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """handle() turns the collector off while it loads and reads; an error on the way must not
    leave it off in a long-lived caller."""
    if case != "no pod":
        # our own pid with a start time it never had: a process that is gone (or a reused pid)
        _pod(tmp_path, {"app": {"process": {"pid": os.getpid(), "startTime": -1}}})
    command = [] if case == "no command" else ["--", "true"]
    container = "other" if case == "no such container" else "app"
    assert gc.isenabled()
    code = main(["--root", str(tmp_path), "exec", "web", "-c", container, *command])
    assert gc.isenabled()
    expected = {"no pod": 'pods "web" not found', "no such container": 'container "other" is not valid',
                "not running": "cannot exec in a container that is not running", "no command": "no command given"}
    assert code in (1, 2) and expected[case] in capsys.readouterr().err


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_exec_into_a_completed_pod_is_refused_in_kubectls_words(phase: str, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    pod = tmp_path / "run" / "pods" / "default_web"
    pod.mkdir(parents=True)
    (pod / "state.json").write_text(json.dumps({"containers": {"app": {"process": None}}, "manifest": {},
                                                "status": {"phase": phase}}))
    assert main(["--root", str(tmp_path), "exec", "web", "--", "true"]) == 1
    assert f"cannot exec into a container in a completed pod; current phase is {phase}" in capsys.readouterr().err


def test_a_terminal_gets_term_xterm_as_containerds_exec_gives_it() -> None:
    from sandbox.process.exec import exec_env

    env = ["PATH=/bin", "TERM=vt100", "HOME=/root"]
    assert exec_env(env, tty=False) == env  # pipes: the container's environment as it is
    assert exec_env(env, tty=True) == ["PATH=/bin", "HOME=/root", "TERM=xterm"]
    assert exec_env(["PATH=/bin"], tty=True) == ["PATH=/bin", "TERM=xterm"]
