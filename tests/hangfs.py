"""A filesystem that hangs on demand: a minimal FUSE server (the kernel's protocol over
/dev/fuse, no libfuse) whose root holds one directory, `dir`. A lookup of `dir` by a caller whose
fsuid is in `hold_uids` is never answered: the caller sleeps in the kernel (request_wait_answer)
as on a hung network filesystem, at a known point, until it is signalled (the kernel then sends
FUSE_INTERRUPT and the held lookup is answered EINTR) or the filesystem goes. Everything else is
answered, so the runtime's own stat of a hostPath on it works.

Tests use it to hold a container's stage 2 where it enters its workingDir (spawn.c: as root in
sbx_enter_cwd, or as the container's user in the chdir after the credentials changed).
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import threading
from collections.abc import Iterable
from pathlib import Path

FUSE_LOOKUP, FUSE_FORGET, FUSE_GETATTR, FUSE_INIT, FUSE_INTERRUPT, FUSE_BATCH_FORGET = 1, 2, 3, 26, 36, 42
NO_REPLY = (FUSE_FORGET, FUSE_BATCH_FORGET)
IN_HEADER = struct.Struct("<IIQQIIIHH")  # len, opcode, unique, nodeid, uid, gid, pid, total_extlen, padding
OUT_HEADER = struct.Struct("<IiQ")  # len, error, unique
INIT_OUT = struct.Struct("<IIIIHHIIHHII24x")  # major, minor, readahead, flags, background, congestion,
#                                              max_write, time_gran, max_pages, map_alignment, flags2, stack
ATTR = struct.Struct("<QQQQQQIIIIIIIIII")  # ino, size, blocks, a/m/ctime, their nsec, mode, nlink, uid, gid, rdev, blksize, flags
ROOT, DIR = 1, 2
MS_NOSUID, MS_NODEV, MNT_DETACH = 2, 4, 2


def _attr(node: int) -> bytes:
    return ATTR.pack(node, 0, 0, 0, 0, 0, 0, 0, 0, 0o40755, 2, 0, 0, 0, 4096, 0)


class HangFS:
    def __init__(self, mountpoint: Path, hold_uids: Iterable[int]) -> None:
        self.mountpoint = mountpoint
        self.hold_uids = set(hold_uids)
        self.held: dict[int, int] = {}  # unique -> caller's pid (as the host sees it)
        self.holding = threading.Condition()
        self._libc = ctypes.CDLL(None, use_errno=True)
        self.fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
        options = f"fd={self.fd},rootmode=40000,user_id=0,group_id=0,allow_other".encode()
        if self._libc.mount(b"hangfs", str(mountpoint).encode(), b"fuse", MS_NOSUID | MS_NODEV, options) != 0:
            err = ctypes.get_errno()
            os.close(self.fd)
            raise OSError(err, os.strerror(err), str(mountpoint))
        self._thread = threading.Thread(target=self._serve, name="hangfs", daemon=True)
        self._thread.start()

    def wait_held(self, timeout: float = 20) -> int:
        """The pid of the first caller held, once one is."""
        with self.holding:
            if not self.holding.wait_for(lambda: self.held, timeout):
                raise AssertionError(f"nothing looked up {self.mountpoint}/dir within {timeout}s")
            return next(iter(self.held.values()))

    def release(self) -> None:
        """Nothing held from now on: every later lookup is answered (a held one stays held until
        its caller is signalled)."""
        with self.holding:
            self.hold_uids.clear()

    def close(self) -> None:
        """Every held caller answered (EIO), nothing held any more, unmounted: the last user of
        the mount gone, the kernel ends the connection and the serving thread's read fails."""
        self.release()
        with self.holding:
            held, self.held = self.held, {}
        for unique in held:
            self._reply(unique, errno.EIO)
        self._libc.umount2(str(self.mountpoint).encode(), MNT_DETACH)
        self._thread.join(timeout=10)
        os.close(self.fd)
        self.fd = -1

    def _reply(self, unique: int, error: int = 0, body: bytes = b"") -> None:
        try:
            os.write(self.fd, OUT_HEADER.pack(OUT_HEADER.size + len(body), -error, unique) + body)
        except OSError as e:
            if e.errno != errno.ENOENT:  # ENOENT: the request was interrupted and is gone
                raise

    def _serve(self) -> None:
        while True:
            try:
                request = os.read(self.fd, 1 << 20 | 4096)
            except OSError:  # ENODEV once unmounted and aborted, EBADF once closed
                return
            _, opcode, unique, node, uid, _, pid, _, _ = IN_HEADER.unpack_from(request)
            body = request[IN_HEADER.size:]
            if opcode == FUSE_INIT:
                self._reply(unique, body=INIT_OUT.pack(7, 31, 0, 0, 16, 12, 1 << 16, 1, 16, 0, 0, 0))
            elif opcode == FUSE_GETATTR:
                self._reply(unique, body=struct.pack("<QII", 0, 0, 0) + _attr(node))
            elif opcode == FUSE_LOOKUP:
                name = body.split(b"\0", 1)[0]
                if node != ROOT or name != b"dir":
                    self._reply(unique, errno.ENOENT)
                elif uid in self.hold_uids:
                    with self.holding:
                        self.held[unique] = pid
                        self.holding.notify_all()
                else:  # entry and attributes valid for 0 s: the next walk looks it up again
                    self._reply(unique, body=struct.pack("<QQQIIII", DIR, 0, 0, 0, 0, 0, 0) + _attr(DIR))
            elif opcode == FUSE_INTERRUPT:
                (target,) = struct.unpack_from("<Q", body)
                with self.holding:
                    held = self.held.pop(target, None)
                if held is not None:
                    self._reply(target, errno.EINTR)
            elif opcode not in NO_REPLY:
                self._reply(unique, errno.ENOSYS)
