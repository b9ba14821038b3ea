"""The (deadline, callback) entries of the supervisor's injected monotonic clock: back-off
restarts, grace deadlines, probe ticks and check timeouts all wait here, never in a sleep.

The entries are one list sorted latest first, so the next one due is at its end (`list.pop()`),
each added by a binary search and `list.insert`. A pod holds a few to a few hundred timers,
where the insert's memmove costs less than a heap's Python-level sifting would; and the C
accelerators of heapq or bisect are each one more shared library for `sandbox run` to load
(~0.3 ms for `_heapq`, -X importtime on this VM).

Cancelling is lazy (the entry stays in the list, marked dead, and is dropped when it comes due),
with compaction: once dead entries outnumber live ones (after a cancel, or after a fire leaves
fewer live ones) the list is rebuilt from the live ones, so a pod that schedules and cancels a
check timeout on every probe run holds at most about twice its live timers, never one entry
(and one callback closure) per run it ever made.
"""

from __future__ import annotations

import itertools

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    # (deadline, handle, callback): handles are unique, so two callbacks are never compared
    Entry = tuple[float, int, Callable[[], None]]

COMPACT_MIN = 64  # below this many entries a rebuild costs more than the dead entries do


def _insert(entries: list[Entry], entry: Entry) -> None:
    """Put `entry` into `entries` (sorted latest first), after every entry that is not later."""
    lo, hi = 0, len(entries)
    while lo < hi:
        mid = (lo + hi) // 2
        if entries[mid] > entry:
            lo = mid + 1
        else:
            hi = mid
    entries.insert(lo, entry)


class Timers:
    """The (deadline, callback) entries on the injected monotonic clock, the next due last."""

    def __init__(self) -> None:
        self._entries: list[Entry] = []  # sorted latest first
        self._seq = itertools.count()
        self._live: set[int] = set()  # handles held that are neither cancelled nor fired

    def __len__(self) -> int:
        """Timers that will still fire."""
        return len(self._live)

    @property
    def held(self) -> int:
        """Entries held, live or cancelled and not dropped yet."""
        return len(self._entries)

    def add(self, deadline: float, callback: Callable[[], None]) -> int:
        handle = next(self._seq)
        _insert(self._entries, (deadline, handle, callback))
        self._live.add(handle)
        return handle

    def cancel(self, handle: int | None) -> None:
        """Idempotent; a handle that already fired (or was never issued) is ignored."""
        if handle is None or handle not in self._live:
            return
        self._live.discard(handle)
        self._compact_if_mostly_dead()

    def next_deadline(self) -> float | None:
        entries = self._entries
        while entries and entries[-1][1] not in self._live:
            entries.pop()
        return entries[-1][0] if entries else None

    def fire_due(self, now: float) -> None:
        while (deadline := self.next_deadline()) is not None and deadline <= now:
            _, handle, callback = self._entries.pop()
            self._live.discard(handle)
            self._compact_if_mostly_dead()
            callback()

    def _compact_if_mostly_dead(self) -> None:
        """Rebuild from the live entries once the dead ones are more than half. Each rebuild
        costs O(n) and needs n/2 cancels since the last one: amortised O(1) per cancel."""
        held = len(self._entries)  # every entry held is live or cancelled: fired ones are popped
        if held - len(self._live) > held // 2 and held >= COMPACT_MIN:
            self._entries = [e for e in self._entries if e[1] in self._live]  # still sorted
