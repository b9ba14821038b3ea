"""inotify(7) through libc's inotify_init1/inotify_add_watch (ctypes): no dependency, and only the
code that watches (`get -w`, `wait`, the agent's manifest directory) pays for importing ctypes."""

from __future__ import annotations

import _struct as struct  # struct.py only re-exports _struct: one module less on every start
import os

IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_ISDIR = 0x40000000

_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then the name)


class Inotify:
    """One inotify instance, non-blocking and close-on-exec; `fd` for poll/select/epoll."""

    def __init__(self) -> None:
        import ctypes

        self._ctypes = ctypes
        self._libc = ctypes.CDLL(None, use_errno=True)
        fd = int(self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC))
        if fd < 0:
            raise self._error("inotify_init1", "")
        self.fd = fd

    def add_watch(self, path: str, mask: int) -> int:
        """The watch descriptor; OSError (with the errno: ENOENT, ENOSPC for max_user_watches...)."""
        wd = int(self._libc.inotify_add_watch(self.fd, os.fsencode(path), mask))
        if wd < 0:
            raise self._error("inotify_add_watch", path)
        return wd

    def rm_watch(self, wd: int) -> None:
        self._libc.inotify_rm_watch(self.fd, wd)  # fails harmlessly if the kernel dropped it already

    def read(self) -> list[tuple[int, int, str]]:
        """Every pending event as (wd, mask, name); name is "" for the watched path itself. An
        IN_Q_OVERFLOW event (wd -1) says events were lost."""
        events: list[tuple[int, int, str]] = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return events
            offset = 0
            while offset + _EVENT.size <= len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                raw = data[offset + _EVENT.size : offset + _EVENT.size + length]
                offset += _EVENT.size + length
                events.append((wd, mask, os.fsdecode(raw.split(b"\0", 1)[0])))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _error(self, op: str, path: str) -> OSError:
        code = self._ctypes.get_errno()
        return OSError(code, f"{op}: {os.strerror(code)}", path or None)
