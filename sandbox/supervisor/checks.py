"""Drives probe and hook `Check`s inside the supervisor's own selector loop (no threads): their
fds are registered with `("check", run)` as data, and a timer fires `on_timeout` at the deadline.
See sandbox/probing/checks.py for the contract."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from sandbox import poller
    from sandbox.probing.checks import Check
    from sandbox.probing.outcome import Outcome
    from sandbox.supervisor.timers import Timers


class CheckRun:
    """One running check and what to call with its Outcome."""

    __slots__ = ("check", "done", "fds", "finished", "timer")

    def __init__(self, check: Check, done: Callable[[Outcome], None]) -> None:
        self.check, self.done = check, done
        self.fds: list[int] = []
        self.timer: int | None = None
        self.finished = False


class CheckRunner:
    def __init__(self, selector: poller.Selector, timers: Timers, clock: Callable[[], float]) -> None:
        self.selector, self.timers, self.clock = selector, timers, clock
        self.running: set[CheckRun] = set()

    def start(self, check: Check, done: Callable[[Outcome], None]) -> CheckRun:
        run = CheckRun(check, done)
        self.running.add(run)
        self._settle(run, check.start(self.clock()))
        if not run.finished and check.deadline != float("inf"):  # exec hooks have no timeout
            run.timer = self.timers.add(check.deadline, lambda: self._timeout(run))
        return run

    def on_ready(self, run: CheckRun, fd: int, mask: int) -> None:
        if not run.finished:
            self._settle(run, run.check.on_ready(fd, mask, self.clock()))

    def cancel(self, run: CheckRun | None) -> None:
        """Stop a check without calling its callback (its container is gone)."""
        if run is not None and not run.finished:
            self._finish(run)

    def cancel_all(self) -> None:
        for run in list(self.running):
            self.cancel(run)

    def _timeout(self, run: CheckRun) -> None:
        if not run.finished:
            outcome = run.check.on_timeout(self.clock())
            self._finish(run)
            run.done(outcome)

    def _settle(self, run: CheckRun, outcome: Outcome | None) -> None:
        if outcome is None:
            from sandbox.probing.checks import rewatch  # with the first check: not on every start

            run.fds = rewatch(self.selector, run.check, run.fds)
            # rewatch registers the check itself as data; the loop needs to find the run.
            for fd in run.fds:
                self.selector.modify(fd, self.selector.get_key(fd).events, ("check", run))
            return
        self._finish(run)
        run.done(outcome)

    def _finish(self, run: CheckRun) -> None:
        run.finished = True
        from sandbox.probing.checks import unwatch

        unwatch(self.selector, run.fds)
        run.fds = []
        self.timers.cancel(run.timer)
        run.check.close()
        self.running.discard(run)
