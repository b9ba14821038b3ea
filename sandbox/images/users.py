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

from sandbox.record import record

MAX_LINKS = 40  # the kernel's MAXSYMLINKS
MAX_BYTES = 1 << 20


@record
class Entry:
    name: str
    id: int
    gid: int = -1  # passwd: the user's primary group
    members: tuple[str, ...] = ()  # group: its member user names


def read_in_root(root: str, path: str, limit: int = MAX_BYTES) -> bytes | None:
    """The bytes of the regular file `path` inside `root`, None when it is missing or not one."""
    real = _resolve(root, path)
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


def _resolve(root: str, path: str) -> str | None:
    done: list[str] = []
    todo = path.split("/")
    links = 0
    while todo:
        name = todo.pop(0)
        if name in ("", "."):
            continue
        if name == "..":
            if done:
                done.pop()
            continue
        here = os.path.join(root, *done, name)
        try:
            mode = os.lstat(here).st_mode
        except OSError:
            return None
        if stat.S_ISLNK(mode):
            links += 1
            if links > MAX_LINKS:
                return None
            target = os.readlink(here)
            if target.startswith("/"):
                done = []
            todo = target.split("/") + todo
        else:
            done.append(name)
    return os.path.join(root, *done)


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
        entries.append(Entry(fields[0], number, gid, members))
    return entries


def passwd(root: str) -> list[Entry]:
    return parse(read_in_root(root, "/etc/passwd"), passwd=True)


def groups(root: str) -> list[Entry]:
    return parse(read_in_root(root, "/etc/group"), passwd=False)
