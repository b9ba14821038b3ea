"""Crash-loop back-off, exactly as the kubelet computes it, plus Go-style durations for CLI flags.

Pure logic: no clock is read here. The supervisor passes times from its own monotonic clock, so
the whole back-off sequence is unit-tested without sleeping.
"""

from __future__ import annotations

from sandbox.lazyre import LazyPattern
from sandbox.record import Record

# Go's time.ParseDuration units, in seconds. "µs" appears in two Unicode spellings (micro sign
# U+00B5 and Greek mu U+03BC), both accepted by Go.
_UNITS: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,
    "\u03bcs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_TERM = LazyPattern(r"(\d+\.?\d*|\.\d+)([^\d.]*)")


def parse_duration(text: str) -> float:
    """Parse a Go duration (`100ms`, `1.5s`, `1m30s`, `10m`, `500us`) into seconds.

    Like Go's time.ParseDuration, a bare `0` is accepted; every other number needs a unit.
    Negative durations make no sense for our flags (grace periods, back-off), so they are refused.
    """
    value = text.strip()
    if not value:
        raise ValueError("invalid duration '': empty (use e.g. 10s, 100ms, 1m30s)")
    if value.startswith("-"):
        raise ValueError(f"invalid duration {text!r}: must not be negative")
    if value == "0":
        return 0.0
    if value[:-1].isdigit() and value[-1] == "s" and value.isascii():  # "10s", every run's defaults:
        return float(value[:-1])  # no pattern compiled (~0.2 ms)
    total, pos = 0.0, 0
    while pos < len(value):
        term = _TERM.match(value, pos)
        if term is None:
            raise ValueError(f"invalid duration {text!r}: expected a number at {value[pos:]!r}")
        number, unit = term.groups()
        if not unit:
            raise ValueError(
                f"invalid duration {text!r}: missing unit after {number!r} (ns, us, ms, s, m, h)"
            )
        if unit not in _UNITS:
            raise ValueError(f"invalid duration {text!r}: unknown unit {unit!r} (ns, us, ms, s, m, h)")
        total += float(number) * _UNITS[unit]
        pos = term.end()
    return total


def format_duration(seconds: float) -> str:
    """Format seconds as Go's Duration.String() does (`10s`, `2m40s`, `5m0s`, `1h0m0s`, `500ms`).

    The kubelet's CrashLoopBackOff message (`back-off 5m0s restarting failed container=...`)
    prints the back-off with this format.
    """
    ns = round(seconds * 1e9)
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    if ns == 0:
        return "0s"
    if ns < 1_000_000_000:  # below one second Go switches to the largest unit that fits
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return sign + _decimal(ns, size) + unit
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = _decimal(rest, 1_000_000_000) + "s"
    if hours or minutes:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return sign + text


def _decimal(value: int, unit: int) -> str:
    """`value / unit` written exactly, without trailing fraction zeros (Go's fmtFrac)."""
    whole, frac = divmod(value, unit)
    if not frac:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}.{frac:0{digits}d}".rstrip("0")


class BackoffConfig(Record):
    """Crash-loop back-off parameters (seconds); the defaults are the kubelet's constants.

    initial: `initialCrashLoopBackOff` (10 s); cap: `MaxCrashLoopBackOff` (300 s);
    reset_after: the fixed 600 s of the kubelet's `HasExpiredFunc` (not 2 x cap).
    """

    initial: float = 10.0
    cap: float = 300.0
    reset_after: float = 600.0

    def __post_init__(self) -> None:
        if not self.initial > 0:
            raise ValueError(f"back-off initial delay must be positive, got {self.initial}")
        if not self.cap > 0:
            raise ValueError(f"back-off cap must be positive, got {self.cap}")
        if not self.reset_after >= 0:
            raise ValueError(f"back-off reset_after must not be negative, got {self.reset_after}")


class _Entry:
    """One key's state (a plain class: a dataclass would cost start-up time for an internal record)."""

    __slots__ = ("backoff", "delay", "last_update")

    def __init__(self, backoff: float, last_update: float, delay: float) -> None:
        self.backoff = backoff  # the delay the *next* exit will wait (flowcontrol's entry.backoff)
        self.last_update = last_update  # when the last restart happened (flowcontrol's lastUpdate)
        self.delay = delay  # the delay applied by the most recent restart_at (for messages)


class CrashLoopBackOff:
    """Per-container crash-loop back-off (`kuberuntime_manager.go doBackOff`).

    The kubelet decides on every pod sync, for an exited container with `finishedAt = ts`:

        if backOff.IsInBackOffSince(key, ts):   # entry exists, not expired, now - ts < entry
            wait (waiting reason CrashLoopBackOff)
        else:
            backOff.Next(key, ts); restart       # entry := initial if none/expired, else min(2x, cap)
                                                 # entry.lastUpdate := now (the restart time)

    where "expired" means `ts - lastUpdate > 600 s`. That decision depends only on `ts` and the
    entry, so an event-driven supervisor can compute it once, when the container exits:
    `restart_at` returns the first instant at which IsInBackOffSince turns false
    (`finished_at` itself when there is no live entry), and records the state Next would leave
    behind at that instant. The delays after successive exits are 0, 10, 20, 40, 80, 160, 300,
    300 ... s; a container that ran longer than `reset_after` since its last restart starts the
    sequence again. An effective initial larger than the cap is lowered to the cap (what the
    kubelet does for `maxContainerRestartPeriod`).

    Keys are chosen by the caller; the kubelet uses pod name/namespace/uid + container name + spec
    hash, so a changed container spec starts with a fresh back-off.
    """

    def __init__(self, config: BackoffConfig | None = None) -> None:
        self.config = config if config is not None else BackoffConfig()
        self._entries: dict[str, _Entry] = {}

    def restart_at(self, key: str, finished_at: float) -> float:
        """When the container `key`, which exited at `finished_at`, may start again."""
        cfg = self.config
        entry = self._entries.get(key)
        if entry is None or finished_at - entry.last_update > cfg.reset_after:
            # No history, or the instance ran long enough: restart now, next exit waits `initial`.
            self._entries[key] = _Entry(min(cfg.initial, cfg.cap), finished_at, 0.0)
            return finished_at
        when = finished_at + entry.backoff
        self._entries[key] = _Entry(min(entry.backoff * 2, cfg.cap), when, entry.backoff)
        return when

    def delay(self, key: str) -> float:
        """The back-off applied by the last `restart_at(key, ...)`: 0.0 for an immediate restart.

        This is the `<d>` of the waiting message `back-off <d> restarting failed container=...`.
        """
        entry = self._entries.get(key)
        return entry.delay if entry is not None else 0.0

    def forget(self, key: str) -> None:
        """Drop the history of `key` (container removed, or its spec changed)."""
        self._entries.pop(key, None)
