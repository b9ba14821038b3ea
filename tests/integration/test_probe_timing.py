"""Probes never block each other or the supervisor: 20 containers probed every second keep their
period within 100 ms (issue: lifecycle). Every container serves HTTP with busybox httpd, whose
`-v` log line for each probe request lands in the CRI log with the runtime's timestamp."""

from __future__ import annotations

import pytest
from conftest import Sandbox

pytestmark = [pytest.mark.root, pytest.mark.slow]

COUNT = 20


def _container(i: int) -> str:
    port = 8100 + i
    return f"""  - name: web{i}
    image: busybox
    command: ["httpd", "-f", "-v", "-p", "{port}", "-h", "/etc"]
    readinessProbe:
      httpGet: {{path: /hostname, port: {port}}}
      periodSeconds: 1
"""


def _times(sbx: Sandbox, name: str) -> list[float]:
    from sandbox.logs.cri import parse_record

    times = []
    for path in sbx.root.glob(f"log/pods/default_timing_*/{name}/0.log"):
        for raw in path.read_bytes().splitlines():
            ts, _, _, content = parse_record(raw)
            if b"response:200" in content:
                times.append(_seconds(ts))
    return times


def _seconds(ts: str) -> float:
    import calendar
    import time

    main, _, frac = ts.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(main, "%Y-%m-%dT%H:%M:%S")) + float("0." + (frac or "0"))


def test_twenty_containers_probed_every_second_keep_their_period(sbx: Sandbox) -> None:
    manifest = sbx.manifest("apiVersion: v1\nkind: Pod\nmetadata: {name: timing}\nspec:\n"
                            "  terminationGracePeriodSeconds: 2\n  containers:\n"
                            + "".join(_container(i) for i in range(COUNT)))
    proc = sbx.start(manifest)
    sbx.wait_for(lambda: all(len(_times(sbx, f"web{i}")) >= 8 for i in range(COUNT)), timeout=40,
                 message="8 probes of every container")
    state = sbx.state("timing")
    sbx.stop(proc)
    assert state and state["summary"]["ready"] == f"{COUNT}/{COUNT}"
    worst = 0.0
    for i in range(COUNT):
        times = _times(sbx, f"web{i}")[1:8]  # the first probe runs at once, the rest every period
        gaps = [b - a for a, b in zip(times, times[1:])]
        worst = max(worst, *(abs(g - 1.0) for g in gaps))
    print(f"worst probe period drift over {COUNT} containers: {worst * 1000:.1f} ms")
    assert worst <= 0.1, f"a probe period drifted by {worst * 1000:.0f} ms"
