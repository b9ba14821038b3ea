"""`sandbox exec` loads the compiled seccomp filter its container's start stored (cached by
content under <lib>/cache/seccomp), read without the seccomp module on exec's path
(security/filterfile.read_filter); a filter file that is gone or broken fails the exec before
anything runs in the container: never a process without its container's filter."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Sandbox

pytestmark = pytest.mark.root

POD = """
apiVersion: v1
kind: Pod
metadata: {name: filtered}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox
    command: [sleep, "1000"]
"""


@pytest.mark.parametrize("damage", ["removed", "truncated"])
def test_exec_without_its_filter_runs_nothing(sbx: Sandbox, damage: str) -> None:
    proc = sbx.start(sbx.manifest(POD))
    state = sbx.wait_running("filtered")
    bpf = Path(state["containers"]["app"]["identity"]["seccomp"])
    assert bpf.is_relative_to(sbx.root), "the filter cache is the test's own"
    marker = Path(f"/proc/{sbx.pid_of('filtered', 'app')}/root/tmp/ran")
    program = bpf.read_bytes()
    try:
        if damage == "removed":
            bpf.unlink()
        else:
            bpf.write_bytes(program[:7])  # not a whole struct sock_filter
        refused = sbx.run("exec", "filtered", "--", "touch", "/tmp/ran")
        assert refused.returncode != 0, refused
        assert "compiled filter" in refused.stderr and str(bpf) in refused.stderr, refused.stderr
        assert not marker.exists(), "the command ran without its filter"
    finally:
        bpf.write_bytes(program)
    # the stored filter back: exec runs, filtered as the main process is
    status = sbx.run("exec", "filtered", "--", "sh", "-c", "touch /tmp/ran; grep ^Seccomp: /proc/self/status")
    assert status.returncode == 0, status
    assert status.stdout.split() == ["Seccomp:", "2"]
    assert marker.exists()
    sbx.stop(proc)
