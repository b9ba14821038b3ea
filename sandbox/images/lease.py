"""Leases on the image store: what a runtime has resolved and not let go of, and what a pull or an
import is writing, is kept from `image prune` (containerd's leases, which its garbage collector
honours; the kernel's mountinfo alone, rootfs/mounted.py, misses a container that resolved its
image and has not mounted it yet: a later container of the pod, a restart in its back-off).

A lease is a file `<images>/leases/<pid>-<random>` its holder keeps a shared flock on for as long as
it holds it. Its lines are the manifest digests it holds (prune keeps what each reaches, as it
keeps what a name reaches), and `pull` first when it belongs to a pull or an import in flight,
whose blobs, layers and ingest files are still being written. A holder that dies drops its flock
with it: prune finds such a lease free and removes its file, so a dead holder blocks nothing.

Two locks order them. The holder resolves a name and records the digest under a shared flock on
the leases directory; prune takes it exclusively for its whole run. So prune never sees a name
resolved and not yet recorded, nor a lease file made and not yet locked; it waits at most for
one lookup, never for a pull or a container's start. A pull's lease records its manifest before
storing it, and prune keeps every unnamed blob and layer while a pull's lease cannot say yet
what they belong to (ImageStore.prune).

The holder's side (store.Lease) lives in store.py, which every runtime has loaded: a lease costs
`sandbox run` a few system calls and no module; this module is the collector's side."""

from __future__ import annotations

import os

from sandbox.images.store import LEASES, PULLING, is_stored_digest
from sandbox.native import LOCK_EX, LOCK_NB, flock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path


class Held:
    """What the live leases hold, read by prune under the directory's exclusive lock."""

    def __init__(self) -> None:
        self.digests: set[str] = set()  # manifests leased (by runtimes, or pulls that stored them)
        self.pulls: list[set[str]] = []  # each pull's manifests (empty: none recorded yet)

    @property
    def writing(self) -> bool:
        """A pull or import is in flight: its ingest and `.tmp-` files are not leftovers."""
        return bool(self.pulls)


class Collection:
    """prune's side: the leases directory locked exclusively (blocking: a holder keeps its shared
    lock only for one lookup) from enter to exit, the dead leases' files removed."""

    def __init__(self, store_root: Path) -> None:
        self.directory = os.path.join(str(store_root), LEASES)
        self.fd = -1

    def __enter__(self) -> Collection:
        # made if missing: a runtime making it meanwhile would otherwise lease unseen
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        self.fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            flock(self.fd, LOCK_EX)
        except BaseException:
            os.close(self.fd)
            self.fd = -1
            raise
        return self

    def __exit__(self, *_: object) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def held(self) -> Held:
        held = Held()
        for name in sorted(os.listdir(self.directory)):
            path = os.path.join(self.directory, name)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            except OSError:
                continue
            try:
                try:
                    flock(fd, LOCK_EX | LOCK_NB)
                except BlockingIOError:
                    lines = _read(fd).split("\n")
                else:  # free: its holder is gone (or released it just now, unlinking it itself)
                    try:
                        os.unlink(path)
                    except FileNotFoundError:
                        pass
                    continue
            finally:
                os.close(fd)
            pulling = lines[0] == PULLING
            digests = {line for line in lines[1 if pulling else 0:] if is_stored_digest(line)}
            if pulling:
                # a line cut short (being written) counts as nothing recorded: everything is kept
                complete = all(is_stored_digest(line) for line in lines[1:] if line)
                held.pulls.append(digests if complete else set())
            held.digests |= digests
        return held


def _read(fd: int) -> str:
    parts = []
    while chunk := os.read(fd, 65536):
        parts.append(chunk)
    return b"".join(parts).decode("ascii", "replace")
