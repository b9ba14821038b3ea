"""Mount plans as data: what stage 2 of the native spawn mounts, in order, before pivot_root.

Built in Python so the plan can be unit-tested and printed (the `--trace` issue shows it to
learners); native/mounts.c executes it in one loop. The op kinds and flags match native/sbx.h and
<sys/mount.h>; a unit test checks them against the compiled core.

Mount table as containerd's CRI spec has it (security-reliability.md 1.3): /proc, a /dev tmpfs with
the standard device nodes bound one by one, /dev/pts, the pod's /dev/shm, /dev/mqueue, /sys
read-only, plus the kubelet-managed /etc files.
"""

from __future__ import annotations

import enum

from sandbox.record import record


class OpKind(enum.IntEnum):
    ROOT = 1  # mount at a host path that becomes the new root
    MOUNT = 2  # mount a filesystem at a directory inside the new root
    BIND = 3  # bind a host path inside the new root
    SYMLINK = 4  # create a symlink inside the new root
    MKDIR = 5  # create a directory inside the new root (flags = mode)
    POD_MOUNT = 6  # attach the pod's shared mount (pause's /shm tmpfs)


MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_STRICTATIME = 1 << 24

DEVICE_NODES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
             ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx"))
POD_SHM_PATH = "/shm"  # where pause's mount namespace holds the pod's /dev/shm tmpfs
SHM_OPTIONS = "mode=1777,size=65536k"


@record
class MountOp:
    """One step of a mount plan (bubblewrap's setup ops, as data)."""

    kind: OpKind
    target: str  # ROOT: a host path; otherwise a path inside the new root, without leading "/"
    source: str = ""
    fstype: str = ""
    flags: int = 0  # MS_* (MKDIR: the mode)
    data: str = ""

    def describe(self) -> str:
        """One line for traces and errors: `mount proc on /proc (proc, nosuid,nodev,noexec)`."""
        where = self.target if self.kind == OpKind.ROOT else "/" + self.target
        if self.kind == OpKind.BIND:
            return f"bind {self.source} on {where}{' (ro)' if self.flags & MS_RDONLY else ''}"
        if self.kind == OpKind.SYMLINK:
            return f"symlink {where} -> {self.source}"
        if self.kind == OpKind.MKDIR:
            return f"mkdir {where} (mode {self.flags:o})"
        if self.kind == OpKind.POD_MOUNT:
            return f"attach the pod's shared {POD_SHM_PATH} on {where}"
        return f"mount {self.fstype} on {where} ({_flag_names(self.flags)}{', ' + self.data if self.data else ''})"


@record
class ContainerFiles:
    """Per-pod files the kubelet and containerd bind into every container."""

    hosts: str  # host path of the pod's /etc/hosts
    hostname: str  # host path of the pod's /etc/hostname
    resolv_conf: str  # host path of the pod's /etc/resolv.conf


def overlay_options(lower: str, upper: str, work: str) -> str:
    for path in (lower, upper, work):
        if any(c in path for c in ",:\n"):
            raise ValueError(f"overlay layer path {path!r} contains ',' or ':'")
    return f"lowerdir={lower},upperdir={upper},workdir={work}"


def container_plan(merged: str, lower: str, upper: str, work: str, files: ContainerFiles,
                   *, pod_shm: bool = True) -> list[MountOp]:
    """The image read-only below, a fresh writable layer above, then the special filesystems."""
    quiet = MS_NOSUID | MS_NODEV | MS_NOEXEC
    ops = [
        MountOp(OpKind.ROOT, merged, "overlay", "overlay", 0, overlay_options(lower, upper, work)),
        MountOp(OpKind.MOUNT, "proc", "proc", "proc", quiet),
        MountOp(OpKind.MOUNT, "dev", "tmpfs", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k"),
    ]
    ops += [MountOp(OpKind.BIND, f"dev/{node}", f"/dev/{node}") for node in DEVICE_NODES]
    ops.append(MountOp(OpKind.MOUNT, "dev/pts", "devpts", "devpts", MS_NOSUID | MS_NOEXEC,
                       "newinstance,ptmxmode=0666,mode=0620,gid=5"))
    if pod_shm:
        ops.append(MountOp(OpKind.POD_MOUNT, "dev/shm"))
    else:  # hostIPC: the host's /dev/shm, as with the host's IPC namespace
        ops.append(MountOp(OpKind.BIND, "dev/shm", "/dev/shm"))
    ops.append(MountOp(OpKind.MOUNT, "dev/mqueue", "mqueue", "mqueue", quiet))
    ops += [MountOp(OpKind.SYMLINK, f"dev/{name}", target) for name, target in DEV_LINKS]
    ops.append(MountOp(OpKind.MOUNT, "sys", "sysfs", "sysfs", quiet | MS_RDONLY))
    ops += [
        MountOp(OpKind.BIND, "etc/hosts", files.hosts),
        MountOp(OpKind.BIND, "etc/hostname", files.hostname),
        MountOp(OpKind.BIND, "etc/resolv.conf", files.resolv_conf, flags=MS_RDONLY | MS_NOSUID | MS_NODEV),
    ]
    return ops


def pause_plan(root_dir: str) -> list[MountOp]:
    """Pause runs from an empty read-only tmpfs root that also holds the pod's /dev/shm tmpfs."""
    quiet = MS_NOSUID | MS_NODEV | MS_NOEXEC
    return [
        MountOp(OpKind.ROOT, root_dir, "tmpfs", "tmpfs", quiet, "mode=755,size=16k"),
        MountOp(OpKind.MOUNT, POD_SHM_PATH.lstrip("/"), "shm", "tmpfs", quiet, SHM_OPTIONS),
    ]


def _flag_names(flags: int) -> str:
    names = [n for bit, n in ((MS_RDONLY, "ro"), (MS_NOSUID, "nosuid"), (MS_NODEV, "nodev"),
                              (MS_NOEXEC, "noexec"), (MS_STRICTATIME, "strictatime")) if flags & bit]
    return ",".join(names) or "rw"
