"""The result of one probe or hook attempt, shared by the checks (which produce it) and the probe
worker (which counts it). Pure: no I/O, nothing imported beyond `sandbox.record`.

The four statuses are the kubelet's `probe.Result` values plus its "probe errored" case
(`pkg/probe/probe.go`, `pkg/kubelet/prober/prober.go`):

- `success`: the check passed (`output` is what the kubelet keeps, e.g. the HTTP body);
- `warning`: passed with a remark, counts as success (an HTTP redirect to another host:
  event `ProbeWarning`);
- `failure`: the check ran and failed (connection refused, HTTP 503, NOT_SERVING, timeout);
- `error`: the check could not run at all (no socket in the pod's netns, bad address, a body
  read that broke off): the worker retries it up to 3 times in the same tick, then discards it.
"""

from __future__ import annotations

from sandbox.record import Record

SUCCESS = "success"
WARNING = "warning"
FAILURE = "failure"
ERROR = "error"


class Outcome(Record):
    status: str  # SUCCESS | WARNING | FAILURE | ERROR
    output: str = ""
    # A failed exec hook's output (stdout then stderr; undecodable bytes as surrogate escapes),
    # apart from `output`, its error: the handler runner quotes it after "message: ".
    message: str | None = None

    @property
    def ok(self) -> bool:
        """True when the attempt counts as success (for hooks: the hook did not fail)."""
        return self.status in (SUCCESS, WARNING)
