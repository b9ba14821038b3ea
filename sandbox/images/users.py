"""Users and groups of an image: its /etc/passwd and /etc/group, read as the container would see
them.

An image is hostile input: `/etc/passwd` may be a symlink to `/etc/shadow` of the host, `../..`
may climb, a FIFO would block the runtime. Paths are resolved inside the image root as if it were
`/` (symlinks absolute or relative never leave it: openat2's RESOLVE_IN_ROOT rule, done lexically
on the image store's tree, which no container writes), the file is opened with O_NOFOLLOW |
O_NONBLOCK, and only a regular file of bounded size is read.
"""

from __future__ import annotations

import os
import stat

from sandbox.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

MAX_LINKS = 40  # the kernel's MAXSYMLINKS
MAX_BYTES = 1 << 20


class Entry(Record):
    name: str
    id: int
    gid: int = -1  # passwd: the user's primary group
    members: tuple[str, ...] = ()  # group: its member user names
    home: str = ""  # passwd: the user's home directory


def read_in_root(root: str | Sequence[Path], path: str, limit: int = MAX_BYTES) -> bytes | None:
    """The bytes of the regular file `path` inside `root` (a directory, or an image's layers bottom
    first, read as overlayfs merges them), None when it is missing or not one."""
    layers = [str(root)] if isinstance(root, str) else [str(p) for p in reversed(root)]
    real = _resolve(layers, path)
    if real is None:
        return None
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, limit)
    finally:
        os.close(fd)


def _resolve(layers: list[str], path: str) -> str | None:
    """`path` inside the union of `layers` (top first), as its real path in the layer that shows
    it. A component is taken from the topmost layer that has it; a whiteout (a 0:0 character
    device) hides it and every lower one; a directory merges with the same directory of lower
    layers until one of them is opaque (trusted.overlay.opaque=y) or not a directory. Symlinks are
    followed inside the union, never out of it."""
    done: list[str] = []
    todo = path.split("/")
    links = 0
    visible = layers  # the layers whose `done` directory is part of the merge
    while todo:
        name = todo.pop(0)
        if name in ("", "."):
            continue
        if name == "..":
            if done:
                done.pop()
            merged = _dir_layers(layers, done)
            if merged is None:
                return None
            visible = merged
            continue
        found = _lookup(visible, done, name)
        if found is None:
            return None
        here, mode, below = found
        if stat.S_ISLNK(mode):
            links += 1
            if links > MAX_LINKS:
                return None
            target = os.readlink(here)
            if target.startswith("/"):
                done = []
                visible = layers
            todo = target.split("/") + todo
        elif stat.S_ISDIR(mode):
            done.append(name)
            visible = below
        else:
            if todo and any(t not in ("", ".") for t in todo):
                return None  # a file in the middle of a path
            return here
    return os.path.join(visible[0], *done) if visible else None


def _lookup(visible: list[str], done: list[str], name: str) -> tuple[str, int, list[str]] | None:
    """The entry `name` of the merged directory `done` (`visible`: the roots of the layers that
    merge it, top first): (real path, mode, the roots of the layers that merge the entry when it
    is a directory), None when absent or whited out."""
    for i, layer in enumerate(visible):
        here = os.path.join(layer, *done, name)
        try:
            st = os.lstat(here)
        except OSError:
            continue
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            return None  # a whiteout
        if not stat.S_ISDIR(st.st_mode):
            return here, st.st_mode, []
        roots = [layer]
        if not _opaque(here):
            for lower in visible[i + 1:]:
                candidate = os.path.join(lower, *done, name)
                try:
                    lower_mode = os.lstat(candidate).st_mode
                except OSError:
                    continue
                if not stat.S_ISDIR(lower_mode):
                    break  # a file or a whiteout below ends the merge
                roots.append(lower)
                if _opaque(candidate):
                    break
        return here, st.st_mode, roots
    return None


def _dir_layers(layers: list[str], done: list[str]) -> list[str] | None:
    """The layers that merge the directory `done`, walking down from the root."""
    visible = layers
    for i in range(len(done)):
        found = _lookup(visible, done[:i], done[i])
        if found is None or not stat.S_ISDIR(found[1]):
            return None
        visible = found[2]
    return visible


def _opaque(path: str) -> bool:
    try:
        return os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


def parse(data: bytes | None, passwd: bool) -> list[Entry]:
    """Entries of a passwd (`name:x:uid:gid:...`) or group (`name:x:gid:a,b`) file; malformed
    lines are skipped, as libc's and runc's parsers do."""
    entries = []
    for line in (data or b"").decode(errors="replace").splitlines():
        fields = line.split(":")
        if len(fields) < 4 or not fields[0] or line.startswith(("#", "+", "-")):
            continue
        try:
            number = int(fields[2])
            gid = int(fields[3]) if passwd else -1
        except ValueError:
            continue
        members = () if passwd else tuple(m for m in fields[3].split(",") if m)
        home = fields[5] if passwd and len(fields) > 5 else ""
        entries.append(Entry(fields[0], number, gid, members, home))
    return entries


def passwd(root: str | Sequence[Path]) -> list[Entry]:
    return parse(read_in_root(root, "/etc/passwd"), passwd=True)


def groups(root: str | Sequence[Path]) -> list[Entry]:
    return parse(read_in_root(root, "/etc/group"), passwd=False)
