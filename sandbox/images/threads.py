"""The threads of a pull through `_thread`, not `threading`: `threading` imports functools,
collections, types, operator, reprlib, keyword and _weakrefset, ~1.5 ms of every `image pull`
(the warm pull's fixed cost, issue 12's pull-speed target), for three features a pull does not
use (names, the registry of live threads, joining at exit). A pull's threads are daemons that
catch their own errors; they hand them to the joining thread."""

from __future__ import annotations

import _thread

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

Lock = _thread.allocate_lock


class Worker:
    """`function(*args)` on a daemon thread; join() waits for its end (any number of times)."""

    __slots__ = ("_done",)

    def __init__(self, function: Callable[..., object], *args: object) -> None:
        done = _thread.allocate_lock()
        done.acquire()
        self._done = done

        def run() -> None:
            try:
                function(*args)
            finally:
                done.release()

        _thread.start_new_thread(run, ())

    def join(self) -> None:
        with self._done:
            pass
