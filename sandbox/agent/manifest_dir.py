"""The manifest path (staticPodPath / --pod-manifest-path):
- a directory: every entry whose name does not start with "." (the kubelet's glob `[^.]*`; no
  extension filter), sorted; an entry is stat'ed through symlinks: a regular file is read as one
  Pod, a subdirectory is not recursed into and anything else is skipped, both reported. A single
  regular file may be given instead of a directory.
- the file's first YAML/JSON document is the pod (the kubelet's utilyaml.ToJSON reads no further;
  more documents are reported, not read); kind Pod, a name required; then the same defaults,
  validation and field table as `sandbox validate` (spec/load.py, spec/accept.py), plus the
  kubelet's rule that a static pod references no API object (PreventStaticPodAPIReferences, on by
  default since 1.34: service accounts, secrets, configmaps, resource claims, PVCs).
- inotify on the path (ctypes on libc: inotify_init1/inotify_add_watch; fsnotify's event mask)
  plus a re-list every fileCheckFrequency; a file whose identity (inode, size, mtime, ctime) moved
  since the last read is read again, so a change inotify missed is found by the next re-list.
- a file that fails to read, parse or validate is reported (the file and every field at fault,
  once per change of the message) and contributes no pod: its former pod is removed, which is
  where the kubelet settles at its next re-list; every other file's pod is untouched.
- a path that does not exist is checked for every second (the kubelet's watch retry period) and
  gives the empty set; once it appears it is watched and listed at once (the kubelet would wait for
  its next re-list), and if it disappears its pods go, as the kubelet's empty SET.
"""

from __future__ import annotations

import os

from sandbox import inotify
from sandbox.agent.staticpod import WATCH_RETRY, Reporter, StaticPod, file_pod
from sandbox.errors import SpecError

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from collections.abc import Callable



# --- inotify --------------------------------------------------------------------------------------

# fsnotify's Add mask, which the kubelet's watch uses.
_WATCH_MASK = (inotify.IN_MODIFY | inotify.IN_ATTRIB | inotify.IN_MOVED_FROM | inotify.IN_MOVED_TO
               | inotify.IN_CREATE | inotify.IN_DELETE | inotify.IN_DELETE_SELF | inotify.IN_MOVE_SELF)
_WATCH_GONE = inotify.IN_DELETE_SELF | inotify.IN_MOVE_SELF | inotify.IN_IGNORED | inotify.IN_Q_OVERFLOW


class _Inotify:
    """One inotify instance (sandbox/inotify.py) with at most one watch at a time."""

    def __init__(self) -> None:
        self._inotify = inotify.Inotify()
        self.fd = self._inotify.fd
        self.wd = -1

    def watch(self, path: str) -> None:
        self.unwatch()
        self.wd = self._inotify.add_watch(path, _WATCH_MASK)

    def unwatch(self) -> None:
        if self.wd >= 0:
            self._inotify.rm_watch(self.wd)
            self.wd = -1

    def read(self) -> list[tuple[int, str]]:
        """The pending events of the watch as (mask, name): name is "" for the watched path itself."""
        return [(mask, name) for wd, mask, name in self._inotify.read()
                if wd == self.wd or mask & inotify.IN_Q_OVERFLOW]

    def close(self) -> None:
        self._inotify.close()


# --- the manifest path ----------------------------------------------------------------------------


class _PathSource:
    """staticPodPath: a directory of manifests (or one manifest file), watched and re-listed."""

    def __init__(self, path: str, node: str, period: float, reporter: Reporter, seen: Callable[[str], str],
                 now: float) -> None:
        self.path = path.rstrip("/") or "/"
        self.node = node
        self.period = period
        self.reporter = reporter
        self.seen = seen
        self.pods: dict[str, StaticPod] = {}
        # Listed once (a missing path counts: file.go's listConfig sends an empty SET for it, so
        # the kubelet's sources are ready): `pods` is then the whole set, not a partial one.
        self.listed = False
        self._stamps: dict[str, tuple[int, ...]] = {}  # path -> identity when last read
        self._watched = False
        self._key = f"path:{self.path}"  # the reporter's key for problems of the path itself
        self.inotify: _Inotify | None = None
        try:
            self.inotify = _Inotify()
        except OSError as e:  # EMFILE: the user's inotify instances are used up
            self._no_watch(e)
        self.relist_at = now  # the first poll lists
        self.retry_at: float | None = None

    def next_deadline(self) -> float:
        return self.relist_at if self.retry_at is None else min(self.relist_at, self.retry_at)

    def tick(self, now: float) -> None:
        """Handle pending events, then a due re-list or look for a missing path."""
        if self._drain_events():
            self.relist(now)
        elif now >= self.relist_at or (self.retry_at is not None and now >= self.retry_at):
            self.relist(now)

    def relist(self, now: float) -> None:
        self.relist_at = now + self.period
        self.retry_at = None
        try:
            self._watch()
            names = self._entries()
        except FileNotFoundError:
            self._missing(now)
            return
        except OSError as e:
            self.reporter.set(self._key, f"{self.path}: cannot read the static pod path: {e.strerror or e}")
            self.retry_at = now + WATCH_RETRY
            return
        self.reporter.set(self._key, None)
        for gone in self._known() - set(names):
            self._forget(gone)
        for name in names:
            self.refresh(name, force=False)
        self.listed = True

    def _known(self) -> set[str]:
        """Every entry that has a pod, a read identity or a reported problem."""
        mine = {k for k in self.reporter.current if k == self.path or k.startswith(self.path + "/")}
        return set(self.pods) | set(self._stamps) | mine

    def _watch(self) -> None:
        """Watch the path before it is listed, so a change made meanwhile is an event. Without
        inotify (no instance, or ENOSPC: no watch left) the re-list alone finds changes."""
        if self.inotify is None or self._watched:
            return
        try:
            self.inotify.watch(self.path)
        except FileNotFoundError:
            raise
        except OSError as e:
            self._no_watch(e)
            return
        self._watched = True
        self.reporter.set(f"watch:{self.path}", None)

    def _no_watch(self, error: OSError) -> None:
        self.reporter.set(f"watch:{self.path}", f"{self.path}: cannot watch with inotify ({error.strerror or error}): "
                                                f"changes are found by the re-list every {self.period:g}s")

    def _entries(self) -> list[str]:
        import stat

        mode = os.stat(self.path).st_mode
        if stat.S_ISREG(mode):
            return [self.path]
        if not stat.S_ISDIR(mode):
            raise OSError(0, "not a directory or a regular file")
        return sorted(os.path.join(self.path, n) for n in os.listdir(self.path) if not n.startswith("."))

    def _missing(self, now: float) -> None:
        self._unwatch()
        for path in self._known():
            self._forget(path)
        self.reporter.set(self._key, f"{self.path}: the static pod path does not exist; looking for it every "
                                     f"{WATCH_RETRY:g}s")
        self.retry_at = now + WATCH_RETRY
        self.listed = True

    def _drain_events(self) -> bool:
        """Apply inotify's events, each named entry read once however many events it had; True
        when a re-list is needed: the watch is gone, events were lost, or the path is one file."""
        if self.inotify is None:
            return False
        lost = relist = False
        names: dict[str, None] = {}
        for mask, name in self.inotify.read():
            if mask & _WATCH_GONE:
                lost = True
            elif not name:
                relist = True  # the watched path itself changed (a single manifest file)
            elif not name.startswith("."):  # the kubelet ignores dotfiles' events too
                names[name] = None
        if lost:
            self._unwatch()
            return True
        for name in names:
            self.refresh(os.path.join(self.path, name), force=True)
        return relist

    def refresh(self, path: str, force: bool) -> None:
        """Read one entry again (`force`) or only when its identity moved since the last read."""
        import stat

        try:
            st = os.stat(path)
        except OSError:
            self._forget(path)
            return
        if stat.S_ISDIR(st.st_mode):
            self._fail(path, f"{path}: a directory in the static pod path is not recursed into")
        elif not stat.S_ISREG(st.st_mode):
            self._fail(path, f"{path}: not a regular file: skipped")
        else:
            stamp = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            if force or self._stamps.get(path) != stamp:
                self._stamps[path] = stamp
                self._read(path)

    def _read(self, path: str) -> None:
        from sandbox.spec.source import read_manifest

        try:
            pod, notes = file_pod(read_manifest(path), path, self.node, self.seen)
        except SpecError as e:
            self._fail(path, f"static pod {e}")
            return
        self.pods[path] = pod
        self.reporter.set(path, "\n".join(notes) if notes else None)

    def _fail(self, path: str, message: str) -> None:
        self.pods.pop(path, None)
        self.reporter.set(path, message)

    def _forget(self, path: str) -> None:
        self.pods.pop(path, None)
        self._stamps.pop(path, None)
        self.reporter.set(path, None)

    def _unwatch(self) -> None:
        if self.inotify is not None:
            self.inotify.unwatch()
        self._watched = False

    def close(self) -> None:
        if self.inotify is not None:
            self.inotify.close()


