"""The foreground rule with a PID namespace per container (the default): the kernel kills what a
main process left running as part of its exit, and the runtime still says so (taskstats records,
sandbox/process/exitwatch.py). Scripts that only ran commands in sequence are not warned about."""

from __future__ import annotations

import re
from typing import Any

import pytest
from conftest import Sandbox
from test_restart_policy import pod

pytestmark = pytest.mark.root

WARNING = "main process exited but left 1 process(es) running"


def _events(state: dict[str, Any] | None, reason: str) -> list[dict[str, Any]]:
    return [e for e in (state or {}).get("events", []) if e["reason"] == reason]


def test_the_seeds_nohup_example_is_reported_at_its_first_exit(sbx: Sandbox) -> None:
    manifest = sbx.manifest(pod("seed", "Always", "nohup sleep 1000 > /dev/null 2>&1 & echo started"))
    proc = sbx.start(manifest, "--backoff-initial", "50ms", "--backoff-max", "100ms")

    def reported() -> dict[str, Any] | None:
        state = sbx.state("seed")
        return state if _events(state, "BackgroundProcessKilled") else None

    state = sbx.wait_for(reported, message="the BackgroundProcessKilled event")
    assert state["status"]["containerStatuses"][0]["restartCount"] <= 1  # within the first restart
    event = _events(state, "BackgroundProcessKilled")[0]
    assert event["type"] == "Warning" and event["involvedObject"]["fieldPath"] == "spec.containers{main}"
    # The command is whatever the child was when the main process exited: often still the forked
    # shell (`sh`), not yet `nohup` or `sleep`; or `exe` while busybox runs the next applet by
    # exec'ing itself again (CONFIG_BUSYBOX_EXEC_PATH=/proc/self/exe).
    assert re.search(r"\((sh|nohup|sleep|exe)\)", event["message"]), event["message"]
    assert "restartPolicy Always restarts it" in event["message"]
    sbx.wait_for(lambda: (sbx.state("seed") or {})["status"]["containerStatuses"][0]["restartCount"] >= 1,
                 message="the restart")
    code, _, err = sbx.stop(proc)
    assert WARNING in err, err
    assert "Keep the main process in the foreground" in err
    assert "The kernel killed them with it" in err


@pytest.mark.parametrize("script", [
    "true; sleep 0.1; echo done",  # commands in sequence
    "sleep 0.1 & sleep 0.5; echo done",  # a background child that ended before the main process
    "sleep 100 & kill -9 $!; sleep 0.2; echo done",  # killed by the script itself, before its end
])
def test_children_that_ended_before_the_main_process_are_not_reported(sbx: Sandbox, script: str) -> None:
    result = sbx.run("run", str(sbx.manifest(pod("seq", "Never", script))), timeout=30)
    assert result.returncode == 0, result.stderr
    assert "left" not in result.stderr and "foreground" not in result.stderr, result.stderr
    assert not _events(sbx.state("seq"), "BackgroundProcessKilled")


def test_a_container_the_runtime_stops_is_not_reported(sbx: Sandbox) -> None:
    proc = sbx.start(sbx.manifest(pod("stopped", "Always", "sleep 1000 & exec sleep 1000")))
    sbx.wait_running("stopped")
    _, _, err = sbx.stop(proc)  # PID 1 `sleep` ignores SIGTERM: SIGKILL after the grace period
    assert "exit code 137" in err, err
    assert "foreground" not in err, err
    assert not _events(sbx.state("stopped"), "BackgroundProcessKilled")
