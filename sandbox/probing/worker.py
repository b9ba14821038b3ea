"""The kubelet's prober worker (`pkg/kubelet/prober/worker.go`) as a pure state machine.

One `ProbeWorker` per (container instance, probe type). It reads no clock and does no I/O: the
supervisor passes its monotonic `now` in, runs the `Check`s itself and feeds their outcomes back.
A new container instance (restart) gets new workers, as the kubelet resets its worker on a new
container ID.

Driving it (the supervisor's loop, one timer per worker at `next_due()`):

    worker = ProbeWorker(LIVENESS, probe_timing(...), started_at=t_start, now=now, started=True)
    ...
    if now >= worker.next_due():          # timer fired
        worker.begin(now)                  # next_due() is inf until record()
        check = make_check(...); check.start(now)  ... later, with the Outcome:
        verdict = worker.record(outcome, now)
        if verdict.retry:   start another check now (a probe error: up to 3 attempts per tick)
        if verdict.event:   record a Warning event (verdict.event_reason, verdict.event)
        if verdict.kill:    kill the container (liveness/startup Failure)
        if verdict.started: mark the container started; call mark_started() on its other workers
        if verdict.kind == READINESS and verdict.changed: set ready = (verdict.result == SUCCESS)

Kubelet rules kept here (reference section 8):
- ticks fall every `period` from the worker's creation, the first one at once; a tick is skipped
  while `now - started_at < initial_delay`, so the first real probe is the first tick after it;
- a probe that outlasts its period is followed at once by one more (Go's ticker buffers one tick);
- initial result: readiness Failure, liveness Success, startup Unknown;
- `failure_threshold` consecutive failures / `success_threshold` consecutive successes flip the
  result, in between it holds; `warning` counts as success;
- `error` (the probe could not run) is retried up to 3 times in the tick, then thrown away;
- until the container is started only the startup probe runs; after its Success it stops;
- after a liveness/startup Failure the worker holds (no more probes for this instance);
- pod being deleted: liveness and startup are forced to Success and stop probing.
"""

from __future__ import annotations

from sandbox.probing.outcome import ERROR, FAILURE, WARNING
from sandbox.probing.outcome import SUCCESS as OUTCOME_SUCCESS
from sandbox.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sandbox.probing.outcome import Outcome

LIVENESS = "liveness"
READINESS = "readiness"
STARTUP = "startup"

# The kubelet's results manager values (pkg/kubelet/prober/results).
RESULT_SUCCESS = "Success"
RESULT_FAILURE = "Failure"
RESULT_UNKNOWN = "Unknown"

INITIAL_RESULT = {LIVENESS: RESULT_SUCCESS, READINESS: RESULT_FAILURE, STARTUP: RESULT_UNKNOWN}
MAX_ATTEMPTS_ON_ERROR = 3  # prober.go maxProbeRetries
_NEVER = float("inf")
_EPSILON = 1e-9  # float slack when deciding whether a tick lies past the initial delay


class ProbeTiming(Record):
    """A probe's timing in seconds, defaults as `SetDefaults_Probe` (1 / 10 / 1 / 3)."""

    initial_delay: float = 0
    period: float = 10
    timeout: float = 1
    success_threshold: int = 1
    failure_threshold: int = 3


def probe_timing(initial_delay_seconds: float = 0, period_seconds: float = 0, timeout_seconds: float = 0,
                 success_threshold: int = 0, failure_threshold: int = 0) -> ProbeTiming:
    """Build a `ProbeTiming` from the API fields. The spec loader defaults them already; a 0 here
    still means "unset" (the API's zero value) and gets the kubelet default, so a spec that
    skipped defaulting can never make a zero period (a busy loop) or a zero threshold."""
    return ProbeTiming(
        initial_delay=max(initial_delay_seconds, 0),
        period=period_seconds if period_seconds > 0 else 10,
        timeout=timeout_seconds if timeout_seconds > 0 else 1,
        success_threshold=success_threshold if success_threshold > 0 else 1,
        failure_threshold=failure_threshold if failure_threshold > 0 else 3,
    )


class Verdict(Record):
    """What one recorded outcome did to a worker. The loop acts only on `changed` results
    (the kubelet's results manager publishes only changes); events come for every attempt."""

    kind: str  # LIVENESS | READINESS | STARTUP
    result: str  # RESULT_SUCCESS | RESULT_FAILURE | RESULT_UNKNOWN, after this outcome
    changed: bool  # result differs from before this outcome
    retry: bool = False  # a probe error with attempts left: run another check now
    event_reason: str = ""  # "Unhealthy" | "ProbeWarning" | "" (no event)
    event: str = ""  # e.g. "Liveness probe failed: HTTP probe failed with statuscode: 500"

    @property
    def kill(self) -> bool:
        """Liveness or startup just turned Failure: kill the container (preStop, grace)."""
        return self.changed and self.result == RESULT_FAILURE and self.kind in (LIVENESS, STARTUP)

    @property
    def started(self) -> bool:
        """The startup probe just succeeded: the container is started, the other probes begin."""
        return self.changed and self.result == RESULT_SUCCESS and self.kind == STARTUP


class ProbeWorker:
    """The prober worker of one probe type for one container instance (see module docstring)."""

    __slots__ = (
        "_errors",
        "_holding",
        "_in_flight",
        "_last",
        "_origin",
        "_retry_at",
        "_run",
        "_started",
        "_tick",
        "_tick_began",
        "kind",
        "result",
        "started_at",
        "timing",
    )

    def __init__(self, kind: str, timing: ProbeTiming, started_at: float, *, now: float,
                 started: bool = False) -> None:
        """`started_at`: when the container started (the initial delay counts from it).
        `now`: the worker's creation; its ticks fall at now, now + period, ...
        `started`: the container counts as started already (no startup probe and postStart has
        returned); otherwise only a startup worker probes until `mark_started()`."""
        if kind not in INITIAL_RESULT:
            raise ValueError(f"unknown probe type {kind!r}")
        self.kind = kind
        self.timing = timing
        self.started_at = started_at
        self.result = INITIAL_RESULT[kind]
        self._origin = now
        self._tick = now  # the earliest tick that may run the next probe
        self._tick_began = now  # when the current tick's first attempt began
        self._in_flight = False
        self._retry_at: float | None = None
        self._errors = 0
        self._last = RESULT_UNKNOWN  # worker.go lastResult / resultRun
        self._run = 0
        self._started = started
        self._holding = False  # after a liveness/startup Failure, or startup Success, or deletion

    def next_due(self) -> float:
        """Monotonic time at which the loop should run the next check; inf when nothing is due
        (a check in flight, waiting for the container to start, or done for this instance)."""
        if self._in_flight or self._holding:
            return _NEVER
        if self.kind != STARTUP and not self._started:
            return _NEVER
        if self._retry_at is not None:
            return self._retry_at
        return max(self._tick, self._tick_at_or_after(self.started_at + self.timing.initial_delay - _EPSILON))

    def begin(self, now: float) -> None:
        """A check for this worker starts now; next_due() stays inf until `record()`."""
        if self._retry_at is None:
            self._tick_began = now
        self._retry_at = None
        self._in_flight = True

    def record(self, outcome: Outcome, now: float) -> Verdict:
        """Count one finished check (worker.go doProbe after prober.probe returned)."""
        if not self._in_flight:
            self.begin(now)
        self._in_flight = False
        if self._holding:  # e.g. the pod began deleting while the check ran: its result is stale
            return Verdict(self.kind, self.result, False)
        if outcome.status == ERROR:
            return self._record_error(outcome, now)
        self._errors = 0
        self._schedule_next_tick()
        observed = RESULT_SUCCESS if outcome.status in (OUTCOME_SUCCESS, WARNING) else RESULT_FAILURE
        reason, event = self._event_for(outcome)
        return self._count(observed, reason, event)

    def mark_started(self, now: float) -> None:
        """The container counts as started (its startup probe succeeded, or it has none and
        postStart returned): non-startup probes run from the next tick on."""
        if not self._started:
            self._started = True
            self._tick = max(self._tick, self._tick_at_or_after(now))

    def trigger(self, now: float) -> None:
        """Probe at once instead of at the next tick (the kubelet's manualTriggerCh, used for
        readiness when a status update finds the container not ready yet)."""
        self._tick = min(self._tick, now)

    def pod_deleting(self, now: float) -> Verdict:
        """The pod is being deleted: liveness and startup are forced to Success and stop, so no
        probe kills a container that is already being stopped. Readiness carries on."""
        if self.kind == READINESS or self._holding:  # worker.go: onHold is checked before deletion
            return Verdict(self.kind, self.result, False)
        changed = self.result != RESULT_SUCCESS
        self.result = RESULT_SUCCESS
        self._holding = True
        return Verdict(self.kind, self.result, changed)

    def _record_error(self, outcome: Outcome, now: float) -> Verdict:
        """prober.go runProbeWithRetries: an error is retried at once, up to 3 attempts in all;
        then worker.go throws the result away (the state is unchanged) after one event."""
        self._errors += 1
        if self._errors < MAX_ATTEMPTS_ON_ERROR:
            self._retry_at = now
            return Verdict(self.kind, self.result, False, retry=True)
        self._errors = 0
        self._schedule_next_tick()
        return Verdict(self.kind, self.result, False, event_reason="Unhealthy",
                       event=f"{self.kind.capitalize()} probe errored: {outcome.output}")

    def _event_for(self, outcome: Outcome) -> tuple[str, str]:
        name = self.kind.capitalize()
        if outcome.status == FAILURE:
            return "Unhealthy", f"{name} probe failed: {outcome.output}"
        if outcome.status == WARNING:
            return "ProbeWarning", f"{name} probe warning: {outcome.output}"
        return "", ""

    def _count(self, observed: str, reason: str, event: str) -> Verdict:
        """worker.go: consecutive equal results build a run; below its threshold nothing changes."""
        if observed == self._last:
            self._run += 1
        else:
            self._last, self._run = observed, 1
        timing = self.timing
        threshold = timing.failure_threshold if observed == RESULT_FAILURE else timing.success_threshold
        if self._run < threshold:
            return Verdict(self.kind, self.result, False, event_reason=reason, event=event)
        changed = observed != self.result
        self.result = observed
        if observed == RESULT_FAILURE and self.kind in (LIVENESS, STARTUP):
            self._holding, self._run = True, 0  # worker.go onHold: wait for a new container
        elif observed == RESULT_SUCCESS and self.kind == STARTUP:
            self._holding = True  # the startup probe stops once the container has started
        return Verdict(self.kind, self.result, changed, event_reason=reason, event=event)

    def _schedule_next_tick(self) -> None:
        """The next tick after the one this probe ran in. If the probe outlasted a period that
        tick is already past, and next_due() says "now": Go's ticker keeps one pending tick."""
        self._tick = self._tick_at_or_after(self._tick_began + _EPSILON)

    def _tick_at_or_after(self, when: float) -> float:
        if when <= self._origin:
            return self._origin
        periods = -(-(when - self._origin) // self.timing.period)  # ceiling division
        return self._origin + periods * self.timing.period
