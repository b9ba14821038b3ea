"""An epoll selector: the part of `selectors.DefaultSelector` the runtime uses, on `select.epoll`.

`import selectors` costs ~1 ms on a `sandbox run`, and it is the last module on that path to
import the `collections` package (for one namedtuple; ~1.5 ms more with keyword, operator and
reprlib) and `math` (one more extension module to load). This module keeps the same interface
and behaviour for what the supervisor, the agent and the probes call: `register`, `unregister`
(a closed fd is tolerated), `modify`, `get_key`, `select` (its timeout rounded up to the
millisecond as selectors does, so a timer is never woken a little early and spun on), `close`,
and the context manager. Keys carry `fileobj`, `fd`, `events` and `data`.
"""

from __future__ import annotations

from select import EPOLLIN, EPOLLOUT, epoll

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

EVENT_READ = 1  # selectors' values
EVENT_WRITE = 2


class Key:
    """What `register` returns and `select` yields (selectors.SelectorKey's fields)."""

    __slots__ = ("data", "events", "fd", "fileobj")

    def __init__(self, fileobj: Any, fd: int, events: int, data: Any) -> None:
        self.fileobj = fileobj
        self.fd = fd
        self.events = events
        self.data = data

    def __repr__(self) -> str:
        return f"Key(fd={self.fd}, events={self.events}, data={self.data!r})"


class Selector:
    """One epoll instance and the keys registered with it, by fd."""

    def __init__(self) -> None:
        self._epoll = epoll()
        self._keys: dict[int, Key] = {}

    def register(self, fileobj: Any, events: int, data: Any = None) -> Key:
        if not events or events & ~(EVENT_READ | EVENT_WRITE):
            raise ValueError(f"invalid events: {events!r}")
        fd = self._fd(fileobj)
        if fd in self._keys:
            raise KeyError(f"{fileobj!r} (fd {fd}) is already registered")
        self._epoll.register(fd, _mask(events))
        key = self._keys[fd] = Key(fileobj, fd, events, data)
        return key

    def unregister(self, fileobj: Any) -> Key:
        key = self._keys.pop(self._fd(fileobj))
        try:
            self._epoll.unregister(key.fd)
        except OSError:  # closed already: the kernel dropped it from the epoll set with its last reference
            pass
        return key

    def modify(self, fileobj: Any, events: int, data: Any = None) -> Key:
        key = self.get_key(fileobj)
        if events != key.events:
            if not events or events & ~(EVENT_READ | EVENT_WRITE):
                raise ValueError(f"invalid events: {events!r}")
            self._epoll.modify(key.fd, _mask(events))
        key = self._keys[key.fd] = Key(key.fileobj, key.fd, events, data)
        return key

    def get_key(self, fileobj: Any) -> Key:
        fd = self._fd(fileobj)
        try:
            return self._keys[fd]
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None

    def select(self, timeout: float | None = None) -> list[tuple[Key, int]]:
        """Ready keys with their events; `timeout` None waits, <= 0 polls."""
        if timeout is None:
            wait = -1.0
        elif timeout <= 0:
            wait = 0.0
        else:
            wait = -(-timeout * 1000 // 1) / 1000  # up to the next millisecond: epoll's resolution
        ready = []
        for fd, happened in self._epoll.poll(wait, max(len(self._keys), 1)):
            key = self._keys.get(fd)
            if key is None:
                continue
            events = (EVENT_WRITE if happened & ~EPOLLIN else 0) | (EVENT_READ if happened & ~EPOLLOUT else 0)
            ready.append((key, events & key.events))
        return ready

    def close(self) -> None:
        self._epoll.close()
        self._keys.clear()

    def __enter__(self) -> Selector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fd(self, fileobj: Any) -> int:
        if isinstance(fileobj, int):
            fd = fileobj
        else:
            try:
                fd = int(fileobj.fileno())
            except (AttributeError, TypeError, ValueError):
                fd = -1
            if fd < 0:  # a closed file object (fileno() -1 or an error): found by identity
                for key in self._keys.values():
                    if key.fileobj is fileobj:
                        return key.fd
                raise ValueError(f"invalid file object: {fileobj!r}")
        if fd < 0:
            raise ValueError(f"invalid file descriptor: {fd}")
        return fd


def _mask(events: int) -> int:
    return (EPOLLIN if events & EVENT_READ else 0) | (EPOLLOUT if events & EVENT_WRITE else 0)
