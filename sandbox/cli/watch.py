"""Waking a reader when pod records change: `get -w`, `events -w` and `wait` block here.

Every pod's runtime (a foreground `sandbox run` or the node agent) writes `<run>/pods/<ns>_<name>/
state.json` by rename and holds `lock` for its life (state/store.py). inotify reports exactly those
acts: IN_MOVED_TO of `state.json` (a new state), IN_CREATE/IN_DELETE of a pod directory (a pod
appears or is deleted), and IN_CLOSE_WRITE of `lock` (a runtime let go of the pod, perhaps
killed). No poll of the records, no busy loop: the reader sleeps in poll(2) on the inotify fd.

One kernel detail: a file's close event is sent before its flock is released (__fput calls
fsnotify_close before locks_remove_file), so a reader woken by a killed runtime's lock close may
still find the lock held. Such a pod is reported again 50 ms, 250 ms and 1 s later, when the
reader's second look sees the lock free and shows the pod as lost (state/view.py).

inotify through sandbox/inotify.py (ctypes, no dependency).
"""

from __future__ import annotations

import os
import select
import time

from sandbox.inotify import (
    IN_CLOSE_WRITE,
    IN_CREATE,
    IN_DELETE,
    IN_DELETE_SELF,
    IN_IGNORED,
    IN_ISDIR,
    IN_MOVE_SELF,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    IN_ONLYDIR,
    IN_Q_OVERFLOW,
    Inotify,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

# What the pods directory (or, until it exists, the nearest existing ancestor) is watched for.
_ROOT_MASK = IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR
_POD_MASK = IN_MOVED_TO | IN_CLOSE_WRITE | IN_DELETE | IN_DELETE_SELF | IN_ONLYDIR
RECHECKS = (0.05, 0.25, 1.0)  # after a lock's close: the flock is released just after the event
ALL = None  # wait()'s answer after a queue overflow: anything may have changed


class PodWatch:
    """Changes below `pods_root` (a RootLayout's `pods`), by pod directory name (`<ns>_<name>`)."""

    def __init__(self, pods_root: Path) -> None:
        self.pods_root = os.fspath(pods_root)
        self._inotify = Inotify()
        self.fd = self._inotify.fd
        self._names: dict[int, str] = {}  # watch descriptor -> pod directory name ("" for the root)
        self._root_wd = -1
        self._root_is_pods = False
        self._next_name = ""
        self._rechecks: list[tuple[float, str]] = []
        self._arm_root()

    def close(self) -> None:
        self._inotify.close()
        self.fd = -1

    def __enter__(self) -> PodWatch:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _add(self, path: str, mask: int) -> int:
        try:
            return self._inotify.add_watch(path, mask)
        except OSError:
            return -1

    def _arm_root(self) -> None:
        """Watch the pods directory, or its nearest existing ancestor until it is made (no pod
        has run under this root yet), and every pod directory in it."""
        path = self.pods_root
        retries = 3  # a directory that exists but cannot be watched must not loop forever
        while True:
            wd = self._add(path, _ROOT_MASK)
            if wd >= 0 and path != self.pods_root and retries:
                # the next directory on the way may have been made between its failed watch and
                # this one: its IN_CREATE then came before we watched, and would never come
                if os.path.isdir(os.path.join(path, self._next_on_the_way(path))):
                    self._inotify.rm_watch(wd)
                    path, retries = self.pods_root, retries - 1
                    continue
            if wd >= 0 or path in ("/", ""):
                break
            path = os.path.dirname(path)
        self._root_wd = wd
        self._root_is_pods = path == self.pods_root
        self._names[wd] = ""
        # Below an ancestor only the next directory on the way to the pods directory matters.
        self._next_name = "" if self._root_is_pods else self._next_on_the_way(path)
        if self._root_is_pods:
            try:
                entries = os.listdir(self.pods_root)
            except OSError:
                entries = []
            for name in entries:
                self._watch_pod(name)

    def _next_on_the_way(self, ancestor: str) -> str:
        """The name of the directory below `ancestor` on the way to the pods directory."""
        return os.path.relpath(self.pods_root, ancestor).split(os.sep, 1)[0]

    def _watch_pod(self, name: str) -> None:
        if name.startswith("."):
            return
        wd = self._add(os.path.join(self.pods_root, name), _POD_MASK)
        if wd >= 0:
            self._names[wd] = name

    def wait(self, timeout: float | None = None) -> set[str] | None:
        """Block until something changed or `timeout` seconds passed (None: no limit); the pod
        directory names that changed (empty: timed out), or ALL when the kernel's queue
        overflowed or the pods directory itself came or went. Interrupted by Ctrl-C as any
        blocking call is (KeyboardInterrupt)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            now = time.monotonic()
            due = {name for at, name in self._rechecks if at <= now}
            if due:
                self._rechecks = [(at, n) for at, n in self._rechecks if at > now]
                return due
            wake = min([at for at, _ in self._rechecks] + ([deadline] if deadline is not None else []),
                       default=None)
            if wake is not None and wake <= now:
                return set()
            poller = select.poll()
            poller.register(self.fd, select.POLLIN)
            if poller.poll(None if wake is None else max(0, int((wake - now) * 1000) + 1)):
                changed = self._read()
                if changed is ALL or changed:
                    return changed

    def _read(self) -> set[str] | None:
        changed: set[str] | None = set()
        rearm = False
        for wd, mask, name in self._inotify.read():
            if mask & IN_Q_OVERFLOW:
                changed = ALL
                continue
            owner = self._names.get(wd)
            if owner is None:
                continue
            if mask & IN_IGNORED:
                del self._names[wd]
                continue
            if owner == "" and wd == self._root_wd:
                if mask & (IN_DELETE_SELF | IN_MOVE_SELF) or (not self._root_is_pods and name == self._next_name):
                    rearm = True  # the pods directory, or the way to it, may exist now (or be gone)
                elif self._root_is_pods and mask & (IN_CREATE | IN_MOVED_TO) and mask & IN_ISDIR:
                    self._watch_pod(name)
                if self._root_is_pods and name and not name.startswith(".") and changed is not ALL:
                    changed.add(name)
                continue
            if changed is not ALL:
                changed.add(owner)
            if mask & IN_CLOSE_WRITE and name == "lock":
                now = time.monotonic()
                self._rechecks.extend((now + delay, owner) for delay in RECHECKS)
        if rearm:  # the pods directory appeared or went: every pod may have come or gone
            self._inotify.rm_watch(self._root_wd)
            self._names.pop(self._root_wd, None)
            self._arm_root()
            return ALL
        return changed
