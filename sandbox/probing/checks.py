"""Non-blocking probe and hook attempts (`Check`), and the reference way to drive them.

A `Check` is one attempt of a probe or hook: it owns at most a socket or two, never blocks and
never sleeps; the supervisor's single selector loop moves it forward. The contract:

    outcome = check.start(now)         # sets check.deadline = now + timeout; may finish at once
    check.interest()                   # [(fd, poller.EVENT_READ | EVENT_WRITE), ...] to wait on now
    check.on_ready(fd, mask, now)      # an fd from interest() is ready: Outcome when done, else None
    check.on_timeout(now)              # `now >= check.deadline`: always returns the Outcome
    check.close()                      # idempotent; closes every fd (the loop calls it when done)

Rules for the loop:
- After `start()` and after every `on_ready()` that returned None, re-read `interest()` and
  re-register: the set changes as the attempt moves on (connect, write, read) and fd numbers can
  be reused (an HTTP redirect closes one socket and opens the next). `rewatch()` does this safely.
- Keep a timer at `check.deadline`; when it passes, call `on_timeout(now)`. A `SleepCheck` has
  no fds at all and finishes there, with success.
- Once an Outcome is returned (from any of the three), call `unwatch()` and `close()`.
- The callbacks never raise: a bug inside a check comes back as an `error` Outcome.
- `start()` (and `on_ready()`, for each HTTP redirect) calls the socket factory, so the factory
  must return promptly (the native helper's setns + socket + SCM_RIGHTS round trip is fine).

A selector loop driving several checks (what `run_checks` below does):

    sel = poller.Selector()
    fds = {c: rewatch(sel, c, []) for c in checks if c.start(now) is None}   # (+ handle outcomes)
    while fds:
        for key, mask in sel.select(min(c.deadline for c in fds) - clock()):
            check = key.data
            if check in fds and (outcome := check.on_ready(key.fd, mask, clock())) is None:
                fds[check] = rewatch(sel, check, fds[check])
            elif check in fds: finish(check, outcome)      # unwatch + close + use outcome
        for check in [c for c in fds if c.deadline <= clock()]:
            finish(check, check.on_timeout(clock()))

Checks take a socket factory `open_socket(family, type) -> socket.socket` and never create sockets
themselves: the runtime's factory makes them inside the pod's network namespace.

Here: `Check` (the base), `SleepCheck` (`sleep` hook), `TcpCheck` (`tcpSocket`) and the drivers.
`HttpCheck` is in `sandbox.probing.http`, `GrpcCheck` in `sandbox.probing.grpc`.
"""

from __future__ import annotations

from sandbox.log import get_logger
from sandbox.probing.outcome import ERROR, FAILURE, SUCCESS, Outcome
from sandbox.probing.stream import Stream, StreamError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from sandbox import poller
    from sandbox.probing.stream import SocketFactory

log = get_logger(__name__)

KUBE_VERSION = "1.35"  # the <major>.<minor> in the kubelet's User-Agent strings
_NEVER = float("inf")


class Check:
    """One probe or hook attempt (see the module docstring for the contract).

    Subclasses implement `_begin`, `_ready` and `_expire`. The public methods wrap them so that
    a bug in a check becomes an `error` outcome instead of an exception in the supervisor's
    loop (the kubelet's prober recovers from panics the same way: worker.go HandleCrash)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.deadline = _NEVER  # absolute monotonic time, set by start()

    def start(self, now: float) -> Outcome | None:
        """Begin the attempt; returns the Outcome when it is over at once (e.g. refused)."""
        self.deadline = now + self.timeout
        return self._guard(self._begin, now)

    def interest(self) -> list[tuple[int, int]]:
        return []

    def on_ready(self, fd: int, mask: int, now: float) -> Outcome | None:
        return self._guard(self._ready, fd, mask, now)

    def on_timeout(self, now: float) -> Outcome:
        return self._guard(self._expire, now) or Outcome(ERROR, "no outcome at the deadline")

    def close(self) -> None:
        """Release every fd; safe to call any number of times."""

    def _begin(self, now: float) -> Outcome | None:
        return None

    def _ready(self, fd: int, mask: int, now: float) -> Outcome | None:
        return None

    def _expire(self, now: float) -> Outcome:
        raise NotImplementedError

    def _guard(self, step: Callable[..., Outcome | None], *args: float) -> Outcome | None:
        try:
            return step(*args)
        except Exception as exc:  # noqa: BLE001 (deliberate: the supervisor loop must survive)
            log.error("%s failed: %s: %s", type(self).__name__, type(exc).__name__, exc)
            self.close()
            return Outcome(ERROR, f"internal error in {type(self).__name__}: {type(exc).__name__}: {exc}")


class SleepCheck(Check):
    """The `sleep: {seconds: N}` hook: no fds, it just completes (with success) at its deadline."""

    def __init__(self, seconds: float) -> None:
        super().__init__(max(seconds, 0))

    def _begin(self, now: float) -> Outcome | None:
        return Outcome(SUCCESS) if self.timeout == 0 else None

    def _expire(self, now: float) -> Outcome:
        return Outcome(SUCCESS)


class StreamCheck(Check):
    """A check over one non-blocking connection made through the socket factory: waits on that
    connection's fd for what it needs next, and closes it when done."""

    def __init__(self, open_socket: SocketFactory, host: str, port: int, timeout: float) -> None:
        super().__init__(timeout)
        self._stream = Stream(open_socket, host, port)

    def interest(self) -> list[tuple[int, int]]:
        fd = self._stream.fd
        return [(fd, self._stream.events())] if fd >= 0 else []

    def close(self) -> None:
        self._stream.close()


class TcpCheck(StreamCheck):
    """`tcpSocket`: a TCP connect within the timeout is success, even if the peer then closes at
    once (`pkg/probe/tcp/tcp.go`); outputs carry Go's dial errors."""

    def _begin(self, now: float) -> Outcome | None:
        try:
            self._stream.open()
        except StreamError as exc:
            return self._finish(Outcome(FAILURE, str(exc)))
        except (OSError, ValueError) as exc:
            return self._finish(socket_error_outcome(self._stream.address, exc))
        return self._finish(Outcome(SUCCESS)) if self._stream.connected else None

    def _ready(self, fd: int, mask: int, now: float) -> Outcome | None:
        if fd != self._stream.fd:
            return None
        try:
            self._stream.on_ready(mask)
        except StreamError as exc:
            return self._finish(Outcome(FAILURE, str(exc)))
        return self._finish(Outcome(SUCCESS)) if self._stream.connected else None

    def _expire(self, now: float) -> Outcome:
        return self._finish(Outcome(FAILURE, f"dial tcp {self._stream.address}: i/o timeout"))

    def _finish(self, outcome: Outcome) -> Outcome:
        self.close()
        return outcome


def socket_error_outcome(address: str, exc: Exception) -> Outcome:
    """The probe could not run: a bad address, or no socket could be made in the pod's netns."""
    if isinstance(exc, ValueError):
        return Outcome(ERROR, str(exc))
    log.warning("probe socket for %s: %s", address, exc)
    return Outcome(ERROR, f"open socket for {address} in the pod network namespace: {exc}")


def rewatch(selector: poller.Selector, check: Check, fds: list[int]) -> list[int]:
    """Register exactly `check.interest()` in `selector` (data = check), replacing the fds
    registered for it before; returns the fds now registered. Unregistering everything first is
    what makes a reused fd number safe: epoll forgets a closed fd by itself, so "modify" on a
    new socket that got the old number would fail, and "unchanged" would leave it unwatched."""
    unwatch(selector, fds)
    wanted = check.interest()
    for fd, mask in wanted:
        selector.register(fd, mask, check)
    return [fd for fd, _ in wanted]


def unwatch(selector: poller.Selector, fds: list[int]) -> None:
    """Drop the given fds from `selector` (closed ones too: the poller tolerates them)."""
    for fd in fds:
        try:
            selector.unregister(fd)
        except KeyError:
            pass


def run_check(check: Check, clock: Callable[[], float] | None = None) -> Outcome:
    """Run one check to completion in its own selector loop (reference driver, used by tests)."""
    return run_checks([check], clock)[0]


def run_checks(checks: Sequence[Check], clock: Callable[[], float] | None = None) -> list[Outcome]:
    """Run several checks concurrently in ONE selector loop; outcomes in the order given.
    This is the reference for the supervisor: nothing here blocks except `select()` itself."""
    import time

    from sandbox import poller

    now = clock or time.monotonic
    outcomes: dict[Check, Outcome] = {}
    watched: dict[Check, list[int]] = {}
    with poller.Selector() as selector:
        try:
            for check in checks:
                _settle(selector, check, check.start(now()), watched, outcomes)
            while watched:
                _run_once(selector, watched, outcomes, now)
        finally:
            for check in checks:
                check.close()
    return [outcomes[check] for check in checks]


def _run_once(selector: poller.Selector, watched: dict[Check, list[int]],
              outcomes: dict[Check, Outcome], now: Callable[[], float]) -> None:
    """One select() and the callbacks it calls for: readiness first, then expired deadlines."""
    wait = max(0.0, min(check.deadline for check in watched) - now())
    for key, mask in selector.select(wait):
        check = key.data
        if check in watched:  # a check finished earlier in this batch has no more events
            _settle(selector, check, check.on_ready(key.fd, mask, now()), watched, outcomes)
    for check in [c for c in watched if c.deadline <= now()]:
        _settle(selector, check, check.on_timeout(now()), watched, outcomes)


def _settle(selector: poller.Selector, check: Check, outcome: Outcome | None,
            watched: dict[Check, list[int]], outcomes: dict[Check, Outcome]) -> None:
    """After a callback: finish the check if it returned an Outcome, else re-register its fds."""
    if outcome is None:
        watched[check] = rewatch(selector, check, watched.get(check, []))
        return
    unwatch(selector, watched.pop(check, []))
    check.close()
    outcomes[check] = outcome
