"""Mark a directory that gets one subdirectory per layer, pod or container as the top of
directory hierarchies (chattr +T, FS_TOPDIR_FL): the image store's `layers/`, and the per-pod
parents (state, container layers, pod directories, logs: `mark_pod_parents`). ext2/3/4's Orlov
allocator then places each new subdirectory in a block group of its own choosing, as it does for
directories at the root of the filesystem, instead of beside its parent. Files then take inodes
in their directory's group.

Why it matters: ext4 without a journal (this VM's root filesystem, and others) will not reuse an
inode freed in the last 60 s (300 more while its inode-table block is dirty): find_inode_bit()
calls recently_deleted() on every free inode it meets, from the start of the group, for every
inode it allocates. A group where a few thousand files were just removed (a pruned store, a
removed container's upper directory, the benchmark's own clean-up between runs) costs each new
inode there ~0.4 ms of kernel CPU (perf: find_get_block_common under recently_deleted), against
~10-20 us in a quiet group. The flag is not inherited, and only the choice of group changes:
the files of one layer stay together. Other filesystems refuse the ioctl; that is no error.

The same holds for pods: a pod start makes ~20 inodes (its state and lock files, each state
write's temporary file, its container's layer directories, its log directory) and its end frees
them. Without the flag they all go to one group beside their parent, which therefore holds every
inode the last minute of pods freed; a node agent that just removed 100 pods paid ~0.35 ms per
new inode there (cProfile of the agent: mkdir 0.35 ms, a state write's create + rename 0.7 ms).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

FS_TOPDIR_FL = 0x00020000


_marked: set[str] = set()  # directories this process made or marked (once per process each)


def mark_pod_parents(*parents: tuple[Path, int]) -> None:
    """Make each directory (with its mode; parents as mkdir -p) and mark it, once per process:
    the state, layer, pod and log directories below which every pod makes its own."""
    for path, mode in parents:
        key = str(path)
        if key not in _marked:
            path.mkdir(mode=mode, parents=True, exist_ok=True)
            mark_top_directory(path)
            _marked.add(key)


def mark_top_directory(path: Path) -> bool:
    """Set FS_TOPDIR_FL on the directory `path` if the filesystem has it; True when it is set."""
    from sandbox.native import add_inode_flags  # loaded already where pods start or layers unpack

    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        add_inode_flags(fd, FS_TOPDIR_FL)
        return True
    except OSError:  # ENOTTY, EOPNOTSUPP: a filesystem without inode flags (tmpfs, overlay)
        return False
    finally:
        os.close(fd)
