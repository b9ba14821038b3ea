"""Probes and hooks of one container instance, as the kubelet runs them (reference 5.2, 8).

`checks_for()` turns a probe or lifecycle handler of the spec into a non-blocking `Check`:
exec inside the container, httpGet / tcpSocket / grpc through sockets made inside the pod's network
namespace (the default host is the pod's IP, as the kubelet's; 127.0.0.1 there for a pod without a
pod network), sleep as a
timer. `ContainerProbes` keeps one kubelet prober worker per probe type and runs its checks on the
supervisor's timers, reporting every verdict back.
"""

from __future__ import annotations

from sandbox.probing.checks import Check, SleepCheck
from sandbox.probing.outcome import ERROR, Outcome
from sandbox.probing.worker import LIVENESS, READINESS, STARTUP, ProbeWorker, probe_timing
from sandbox.record import Record, replace

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from collections.abc import Callable
    from typing import Any

    from sandbox.probing.worker import Verdict
    from sandbox.process.request import Identity
    from sandbox.process.spawner import Spawner
    from sandbox.spec.model import Container, Probe
    from sandbox.supervisor.checks import CheckRun, CheckRunner
    from sandbox.supervisor.timers import Timers

DEFAULT_HOST = "127.0.0.1"


class CheckContext(Record):
    """Where a container instance's checks run."""

    spawner: Spawner
    main_pidfd: int  # the container's main process: exec checks join its namespaces
    pod_pidfd: int  # pause: sockets are made in its network namespace
    env: tuple[str, ...]  # "NAME=value", the container's environment
    cwd: str
    ports: Any  # Mapping[str, int]: named container ports
    identity: Identity  # who the container's processes run as (user, groups, capabilities...)
    cgroup: Any = None  # dict: the SpawnRequest fields that start exec checks in the container's cgroup
    pod_ip: str = ""  # the default host of httpGet/tcpSocket handlers ("": 127.0.0.1, no pod network)


class ImmediateCheck(Check):
    """A check whose outcome is known before it starts (e.g. an unknown named port)."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(0)
        self.outcome = outcome

    def _begin(self, now: float) -> Outcome | None:
        return self.outcome

    def on_timeout(self, now: float) -> Outcome:
        return self.outcome


def checks_for(handler: Any, ctx: CheckContext, timeout: float, *, hook: bool,
               command: list[str] | None = None) -> Check:
    """One attempt of a probe (`hook=False`) or lifecycle hook handler. `command` overrides the
    exec command (probe commands get `$(VAR)` expansion from the caller)."""
    if getattr(handler, "exec", None) is not None:
        from sandbox.process.exec_check import ExecCheck

        argv = command if command is not None else list(handler.exec.command)
        return ExecCheck(ctx.spawner, ctx.main_pidfd, argv, list(ctx.env), ctx.cwd, timeout, ctx.identity,
                         ctx.cgroup, hook=hook)
    if getattr(handler, "sleep", None) is not None:
        return SleepCheck(float(handler.sleep.seconds))
    if getattr(handler, "http_get", None) is not None:
        return _http_check(handler.http_get, ctx, timeout, hook)
    if getattr(handler, "tcp_socket", None) is not None:
        port = _port(handler.tcp_socket.port, ctx)
        if isinstance(port, Outcome):
            return ImmediateCheck(port)
        from sandbox.probing.checks import TcpCheck

        return TcpCheck(_socket_factory(ctx), handler.tcp_socket.host or ctx.pod_ip or DEFAULT_HOST, port, timeout)
    if getattr(handler, "grpc", None) is not None:
        from sandbox.probing.grpc import GrpcCheck

        return GrpcCheck(_socket_factory(ctx), port=int(handler.grpc.port), host=ctx.pod_ip or DEFAULT_HOST,
                         service=handler.grpc.service or "",
                         timeout=timeout)
    return ImmediateCheck(Outcome(ERROR, "no handler"))


def _http_check(action: Any, ctx: CheckContext, timeout: float, hook: bool) -> Check:
    from sandbox.probing.http import HttpCheck

    port = _port(action.port, ctx)
    if isinstance(port, Outcome):
        return ImmediateCheck(port)
    headers = [(h.name, h.value) for h in action.http_headers]
    return HttpCheck(_socket_factory(ctx), port=port, host=action.host or ctx.pod_ip or DEFAULT_HOST,
                     scheme=(action.scheme or "HTTP").lower(), path=action.path or "/", headers=headers,
                     timeout=timeout, hook=hook)


def _port(port: int | str, ctx: CheckContext) -> int | Outcome:
    if isinstance(port, int):
        return port
    if port.isdigit():
        return int(port)
    found = ctx.ports.get(port)
    # The kubelet's ResolveContainerPort tries strconv.Atoi on a name no port has: its error is
    # the "probe errored" text.
    return found if found is not None else Outcome(ERROR, f'strconv.Atoi: parsing "{port}": invalid syntax')


def _socket_factory(ctx: CheckContext) -> Callable[[int, int], socket.socket]:
    from sandbox.netns import socket_in_netns

    return lambda family, type_: socket_in_netns(ctx.pod_pidfd, family, type_)


def probe_command(container: Container, probe: Probe) -> list[str]:
    """Exec probe commands see `$(VAR)` of literal env values only (ExpandContainerCommandOnlyStatic)."""
    from sandbox.spec.expand import expand

    static = {e.name: e.value for e in container.env if e.value is not None and e.value_from is None}
    return [expand(arg, static) for arg in probe.exec.command] if probe.exec else []


class ContainerProbes:
    """The startup, liveness and readiness workers of one container instance."""

    def __init__(self, container: Container, ctx: CheckContext, runner: CheckRunner, timers: Timers,
                 on_verdict: Callable[[Verdict], None], *, started_at: float, now: float,
                 scale: float = 1.0) -> None:
        self.container, self.ctx, self.runner, self.timers = container, ctx, runner, timers
        self.on_verdict = on_verdict
        specs = {STARTUP: container.startup_probe, LIVENESS: container.liveness_probe,
                 READINESS: container.readiness_probe}
        self.probes = {kind: probe for kind, probe in specs.items() if probe is not None}
        started = STARTUP not in self.probes
        self.workers = {kind: ProbeWorker(kind, _timing(p, scale), started_at, now=now, started=started)
                        for kind, p in self.probes.items()}
        self.timer: dict[str, int | None] = {}
        self.runs: dict[str, CheckRun | None] = {}
        self.stopped = False

    @property
    def has_startup(self) -> bool:
        return STARTUP in self.workers

    @property
    def has_readiness(self) -> bool:
        return READINESS in self.workers

    def start(self) -> None:
        for kind in self.workers:
            self._schedule(kind)

    def mark_started(self, now: float) -> None:
        for kind, worker in self.workers.items():
            worker.mark_started(now)
            self._schedule(kind)

    def pod_deleting(self, now: float) -> None:
        for worker in self.workers.values():
            verdict = worker.pod_deleting(now)
            if verdict.changed:
                self.on_verdict(verdict)

    def stop(self) -> None:
        self.stopped = True
        for kind in self.workers:
            self.timers.cancel(self.timer.get(kind))
            self.runner.cancel(self.runs.get(kind))

    def _schedule(self, kind: str) -> None:
        if self.stopped:
            return
        self.timers.cancel(self.timer.get(kind))
        due = self.workers[kind].next_due()
        self.timer[kind] = self.timers.add(due, lambda: self._tick(kind)) if due != float("inf") else None

    def _tick(self, kind: str) -> None:
        self.timer[kind] = None
        if self.stopped or self.runs.get(kind) is not None:
            return
        worker, probe = self.workers[kind], self.probes[kind]
        worker.begin(self.runner.clock())
        command = probe_command(self.container, probe) if probe.exec else None
        check = checks_for(probe, self.ctx, worker.timing.timeout, hook=False, command=command)
        run = self.runner.start(check, lambda outcome: self._done(kind, outcome))
        if not run.finished:  # an immediate outcome has already been recorded by _done
            self.runs[kind] = run

    def _done(self, kind: str, outcome: Outcome) -> None:
        self.runs[kind] = None
        if self.stopped:
            return
        verdict = self.workers[kind].record(outcome, self.runner.clock())
        self.on_verdict(verdict)
        self._schedule(kind)


def _timing(probe: Probe, scale: float) -> Any:
    """`scale` (`sandbox run --probe-scale`, for tests and demos) compresses time only: delays,
    periods and timeouts; thresholds stay as written."""
    timing = probe_timing(probe.initial_delay_seconds, probe.period_seconds, probe.timeout_seconds,
                          probe.success_threshold, probe.failure_threshold)
    if scale == 1.0:
        return timing
    return replace(timing, initial_delay=timing.initial_delay * scale, period=timing.period * scale,
                   timeout=timing.timeout * scale)
