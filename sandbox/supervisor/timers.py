"""A heap of (deadline, callback) on the supervisor's injected monotonic clock: back-off restarts,
grace deadlines, probe ticks and check timeouts all wait here, never in a sleep.

Cancelling is lazy (the entry stays in the heap, marked dead, and is dropped when it reaches the
top), with compaction: once dead entries outnumber live ones (after a cancel, or after a fire
leaves fewer live ones) the heap is rebuilt from the live ones, so a pod that schedules and cancels a check timeout on every probe run holds at most about
twice its live timers, never one entry (and one callback closure) per run it ever made.
"""

from __future__ import annotations

# heapq.py only re-exports its C accelerator's functions: ~0.3 ms less of a `sandbox run` to
# import _heapq alone (a module every CPython builds).
import _heapq as heapq
import itertools

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

COMPACT_MIN = 64  # below this many entries a rebuild costs more than the dead entries do


class Timers:
    """A heap of (deadline, callback) on the injected monotonic clock."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._live: set[int] = set()  # handles in the heap that are neither cancelled nor fired

    def __len__(self) -> int:
        """Timers that will still fire."""
        return len(self._live)

    @property
    def held(self) -> int:
        """Entries in the heap, live or cancelled and not dropped yet."""
        return len(self._heap)

    def add(self, deadline: float, callback: Callable[[], None]) -> int:
        handle = next(self._seq)
        heapq.heappush(self._heap, (deadline, handle, callback))
        self._live.add(handle)
        return handle

    def cancel(self, handle: int | None) -> None:
        """Idempotent; a handle that already fired (or was never issued) is ignored."""
        if handle is None or handle not in self._live:
            return
        self._live.discard(handle)
        self._compact_if_mostly_dead()

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap and heap[0][1] not in self._live:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def fire_due(self, now: float) -> None:
        while (deadline := self.next_deadline()) is not None and deadline <= now:
            _, handle, callback = heapq.heappop(self._heap)
            self._live.discard(handle)
            self._compact_if_mostly_dead()
            callback()

    def _compact_if_mostly_dead(self) -> None:
        """Rebuild from the live entries once the dead ones are more than half. Each rebuild
        costs O(n) and needs n/2 cancels since the last one: amortised O(1) per cancel."""
        held = len(self._heap)  # every entry in the heap is live or cancelled: fired ones are popped
        if held - len(self._live) > held // 2 and held >= COMPACT_MIN:
            self._heap = [e for e in self._heap if e[1] in self._live]
            heapq.heapify(self._heap)
