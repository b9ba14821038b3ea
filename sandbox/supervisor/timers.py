"""A heap of (deadline, callback) on the supervisor's injected monotonic clock: back-off restarts,
grace deadlines, probe ticks and check timeouts all wait here, never in a sleep."""

from __future__ import annotations

import heapq
import itertools

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


class Timers:
    """A heap of (deadline, callback) on the injected monotonic clock."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cancelled: set[int] = set()

    def add(self, deadline: float, callback: Callable[[], None]) -> int:
        handle = next(self._seq)
        heapq.heappush(self._heap, (deadline, handle, callback))
        return handle

    def cancel(self, handle: int | None) -> None:
        if handle is not None:
            self._cancelled.add(handle)

    def next_deadline(self) -> float | None:
        while self._heap and self._heap[0][1] in self._cancelled:
            self._cancelled.discard(heapq.heappop(self._heap)[1])
        return self._heap[0][0] if self._heap else None

    def fire_due(self, now: float) -> None:
        while (deadline := self.next_deadline()) is not None and deadline <= now:
            _, handle, callback = heapq.heappop(self._heap)
            callback()
