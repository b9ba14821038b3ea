"""pause reaps orphans; a main process that backgrounds its work gets the foreground-rule warning."""

from __future__ import annotations

import pytest
from conftest import Sandbox

pytestmark = pytest.mark.root


def _zombies_under(parent: int) -> list[int]:
    import os

    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) == parent:
            found.append(int(entry))
    return found


def test_pause_reaps_a_thousand_orphans(sbx: Sandbox) -> None:
    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: orphans}
spec:
  shareProcessNamespace: true
  terminationGracePeriodSeconds: 2
  containers:
  - name: forker
    image: busybox
    command:
    - sh
    - -c
    - |
      i=0
      while [ $i -lt 1000 ]; do (true &); i=$((i+1)); done
      echo made-orphans
      exec sleep 1000
""")
    proc = sbx.start(manifest)
    sbx.wait_running("orphans")
    log_glob = "log/pods/default_orphans_*/forker/0.log"
    sbx.wait_for(lambda: any(b"made-orphans" in p.read_bytes() for p in sbx.root.glob(log_glob)),
                 timeout=60, message="1000 orphans")
    pause = sbx.pause_pid("orphans")
    sbx.wait_for(lambda: not _zombies_under(pause), timeout=5, message="pause to reap every orphan")
    sbx.stop(proc)


def test_backgrounded_main_process_gets_the_foreground_warning(sbx: Sandbox) -> None:
    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: nohup}
spec:
  shareProcessNamespace: true
  restartPolicy: Never
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "sleep 1000 & echo started in background"]
""")
    result = sbx.run("run", str(manifest), timeout=30)
    assert result.returncode == 0, result.stderr
    assert "main process exited but left 1 process(es) running" in result.stderr
    assert "sleep 1000" in result.stderr
    assert "Keep the main process in the foreground" in result.stderr
