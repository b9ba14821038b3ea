"""Mount plans as data: what stage 2 of the native spawn mounts, in order, before pivot_root.

Built in Python so the plan can be unit-tested and printed (the `--trace` issue shows it to
learners); native/mounts.c executes it in one loop. The op kinds and flags match native/sbx.h and
<sys/mount.h>; a unit test checks them against the compiled core.

Mount table as containerd's CRI spec has it (security-reliability.md 1.3): /proc, a /dev tmpfs with
the standard device nodes bound one by one, /dev/pts, the pod's /dev/shm, /dev/mqueue, /sys
read-only, plus the kubelet-managed /etc files. Then containerd's masked and read-only paths (1.8),
unless the container is privileged or asks for `procMount: Unmasked`.

Every mount a container can write is nosuid,nodev (1.4): the overlay root, the /dev tmpfs (its
device nodes are separate bind mounts of the host's nodes, so they still open), /dev/shm, volumes
and the pod files. A node the container makes with its CAP_MKNOD then opens with EACCES.
"""

from __future__ import annotations

from sandbox.record import Record, replace

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from collections.abc import Sequence
    from enum import IntEnum as _KindBase
else:
    _KindBase = object  # enum's import (and signal.py's, which needs it) is ~1.9 ms of a `sandbox run`


class OpKind(_KindBase):
    """What a MountOp does: plain ints at run time (they travel to C as `kind`), an IntEnum for
    type checkers."""

    ROOT = 1  # mount at a host path that becomes the new root
    MOUNT = 2  # mount a filesystem at a directory inside the new root
    BIND = 3  # bind a host path inside the new root
    SYMLINK = 4  # create a symlink inside the new root
    MKDIR = 5  # create a directory inside the new root (flags = mode)
    POD_MOUNT = 6  # attach the pod's shared mount (pause's /shm tmpfs)
    MASK = 7  # /dev/null over a file, an empty read-only tmpfs over a directory; skipped if missing
    READONLY = 8  # bind on itself read-only, keeping nosuid/nodev/noexec; skipped if missing
    BIND_BENEATH = 9  # bind `data` opened beneath the host directory `source` (a subPath); made if missing
    CHDIR = 10  # change to the host directory `target`: overlay resolves relative lowerdirs against it


MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
# A BIND's propagation (mountPropagation): none set is private.
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_STRICTATIME = 1 << 24

DEVICE_NODES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
             ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx"))
POD_SHM_PATH = "/shm"  # where pause's mount namespace holds the pod's /dev/shm tmpfs
SHM_OPTIONS = "mode=1777,size=65536k"

# Kubernetes pkg/securitycontext defaultMaskedPaths / readonlyPaths (= containerd's and Docker's
# defaults, without Docker's newer /proc/interrupts), inside the new root.
MASKED_PATHS = ("proc/asound", "proc/acpi", "proc/kcore", "proc/keys", "proc/latency_stats",
                "proc/timer_list", "proc/timer_stats", "proc/sched_debug", "proc/scsi",
                "sys/firmware", "sys/devices/virtual/powercap")
READONLY_PATHS = ("proc/bus", "proc/fs", "proc/irq", "proc/sys", "proc/sysrq-trigger")


class MountOp(Record):
    """One step of a mount plan (bubblewrap's setup ops, as data)."""

    kind: OpKind
    target: str  # ROOT: a host path; otherwise a path inside the new root, without leading "/"
    source: str = ""
    fstype: str = ""
    flags: int = 0  # MS_* (MKDIR: the mode)
    data: str = ""

    def describe(self) -> str:
        """One line for traces and errors: `mount proc on /proc (proc, nosuid,nodev,noexec)`."""
        where = self.target if self.kind in (OpKind.ROOT, OpKind.CHDIR) else "/" + self.target
        if self.kind == OpKind.BIND:
            return f"bind {self.source} on {where}{_bind_notes(self.flags)}"
        if self.kind == OpKind.BIND_BENEATH:
            return f"bind {self.data} beneath {self.source} on {where}{_bind_notes(self.flags)}"
        if self.kind == OpKind.SYMLINK:
            return f"symlink {where} -> {self.source}"
        if self.kind == OpKind.MKDIR:
            return f"mkdir {where} (mode {self.flags:o})"
        if self.kind == OpKind.POD_MOUNT:
            return f"attach the pod's shared {POD_SHM_PATH} on {where}"
        if self.kind == OpKind.MASK:
            return f"mask {where}"
        if self.kind == OpKind.READONLY:
            return f"read-only {where}"
        if self.kind == OpKind.CHDIR:
            return f"chdir {where} (overlay lowerdirs are relative to it)"
        return f"mount {self.fstype} on {where} ({_flag_names(self.flags)}{', ' + self.data if self.data else ''})"


class ContainerFiles(Record):
    """Per-pod files the kubelet and containerd bind into every container."""

    hosts: str  # host path of the pod's /etc/hosts
    hostname: str  # host path of the pod's /etc/hostname
    resolv_conf: str  # host path of the pod's /etc/resolv.conf


MOUNT_DATA_MAX = 4095  # mount(2) copies at most one page of options, with its NUL
OVERLAY_MAX_LOWER = 500  # overlayfs stacks at most this many lower layers (fs/overlayfs OVL_MAX_STACK)


def overlay_options(lower: str, upper: str = "", work: str = "") -> str:
    """`lower`: one layer, or several joined by ':' (the top one first). Without `upper` and
    `work`, a read-only overlay (an `image` volume: then at least two lower layers, as overlayfs
    refuses a lone lowerdir). Its size against mount(2)'s page is checked by `fit_overlays`, once
    the lower paths are made short."""
    layers = lower.split(":")
    for path in (*layers, *((upper, work) if upper or work else ())):
        if not path or any(c in path for c in ",:\n"):
            raise ValueError(f"overlay layer path {path!r} is empty or contains ',' or ':'")
    if len(layers) > OVERLAY_MAX_LOWER:
        raise ValueError(f"{len(layers)} image layers: overlayfs stacks at most {OVERLAY_MAX_LOWER}")
    if not (upper or work):
        return f"lowerdir={lower}"
    # volatile (Linux 5.10): no sync of the upper filesystem, also none when the overlay goes.
    # A container's writable layer is fresh at every start and removed at its end, so nothing is
    # lost that anyone keeps; without it the last close of the container's mount namespace
    # syncs the whole upper filesystem (every dirty page of /var/lib/sandbox's filesystem, not
    # only ours): 1.3-37 ms per container end here, 300 ms while an image was being unpacked.
    return f"lowerdir={lower},upperdir={upper},workdir={work},volatile"


def fit_overlays(ops: Sequence[MountOp]) -> list[MountOp]:
    """mount(2) takes one page of options: with absolute paths to the image store's layers only
    about 30 fit. As Docker's overlay2 driver does, the store gives each layer a short link in one
    directory (images/l/); here every overlay's lowerdirs found in the directory most of them share
    become bare link names, and a CHDIR op into that directory goes first: the kernel resolves a
    relative lowerdir against the mounting task's cwd (the pivot moves it afterwards). A link name
    of 6 characters costs 7 bytes a layer, so overlayfs's own limit (500 layers) comes first unless
    the container's upper and work paths are very long; the page is checked here (ValueError)."""
    parents: dict[str, int] = {}
    for op in ops:
        for path in _lowers(op):
            parent = path.rpartition("/")[0]
            parents[parent] = parents.get(parent, 0) + 1
    base = max(parents, key=lambda p: parents[p], default="")  # the first one on a tie
    out = list(ops)
    if parents.get(base, 0) >= 2 and base.startswith("/"):  # one lower path: it fits as it is
        out = [MountOp(OpKind.CHDIR, base), *(_relative(op, base) for op in ops)]
    for op in out:
        if len(op.data) > MOUNT_DATA_MAX:
            raise ValueError(f"{len(_lowers(op))} image layers make overlay options of {len(op.data)} "
                             f"bytes, more than mount(2) takes ({MOUNT_DATA_MAX})")
    return out


def _relative(op: MountOp, base: str) -> MountOp:
    lowers = _lowers(op)
    if not lowers:
        return op
    relative = ":".join(p.removeprefix(base + "/") if p.rpartition("/")[0] == base else p for p in lowers)
    data = op.data.replace("lowerdir=" + ":".join(lowers), "lowerdir=" + relative, 1)
    return replace(op, data=data)


def _lowers(op: MountOp) -> list[str]:
    """An overlay op's lowerdir paths, top first; [] for any other op."""
    if op.fstype != "overlay" or op.kind not in (OpKind.ROOT, OpKind.MOUNT):
        return []
    for option in op.data.split(","):
        if option.startswith("lowerdir="):
            return option.removeprefix("lowerdir=").split(":")
    return []


def cgroup_mounts(hierarchies: Sequence[tuple[str, str, str]], *, writable: bool = False) -> list[MountOp]:
    """/sys/fs/cgroup as containerd's default spec asks for it (a `cgroup` mount, read-only unless
    privileged) and runc lays it out: on a v2 host (one `("", "cgroup2", "")` entry) the cgroup2
    filesystem itself; on v1 and hybrid hosts a tmpfs with one directory per hierarchy (`(name,
    fstype, controllers)`, e.g. `("memory", "cgroup", "memory")`, `("unified", "cgroup2", "")`),
    each a mount of that hierarchy, then the tmpfs remounted read-only. Mounted after the
    cgroup namespace is unshared, each shows the container's own cgroup as its root: programs that
    size themselves from their limits (a JVM, Go's GOMAXPROCS) find them there."""
    quiet = MS_NOSUID | MS_NODEV | MS_NOEXEC
    ro = 0 if writable else MS_RDONLY
    if len(hierarchies) == 1 and hierarchies[0][0] == "":
        _, fstype, data = hierarchies[0]
        return [MountOp(OpKind.MOUNT, "sys/fs/cgroup", "cgroup", fstype, quiet | ro, data)]
    ops = [MountOp(OpKind.MOUNT, "sys/fs/cgroup", "tmpfs", "tmpfs", quiet, "mode=755,size=64k")]
    for name, fstype, data in hierarchies:
        target = f"sys/fs/cgroup/{name}"
        ops.append(MountOp(OpKind.MKDIR, target, flags=0o755))
        ops.append(MountOp(OpKind.MOUNT, target, "cgroup", fstype, quiet | ro, data))
    if not writable:  # the tmpfs alone: its hierarchies are read-only mounts already
        ops.append(MountOp(OpKind.MOUNT, "sys/fs/cgroup", flags=MS_REMOUNT | MS_BIND | MS_RDONLY | quiet))
    return ops


def container_plan(merged: str, lower: str, upper: str, work: str, files: ContainerFiles,
                   *, pod_shm: bool = True, masked: bool = True, sys_writable: bool = False,
                   read_only_root: bool = False, extra: Sequence[MountOp] = (),
                   cgroup: Sequence[MountOp] = ()) -> list[MountOp]:
    """The image read-only below, a fresh writable layer above, then the special filesystems.

    `masked=False` drops the masked and read-only paths (`privileged`, `procMount: Unmasked`);
    `sys_writable=True` mounts /sys read-write (`privileged`). A read-only root is not part of the
    plan: SpawnRequest.readonly_root (its remount keeps nosuid,nodev); `read_only_root` makes
    /etc/hostname and /etc/resolv.conf read-only with it, as containerd mounts them (read-write
    otherwise: an entrypoint may rewrite its resolv.conf); /etc/hosts is the kubelet's mount,
    read-write always. `extra` (volumes, the
    termination-message file) goes last with the pod's /etc files, all ordered by the depth of
    their target as containerd sorts mounts, so a volume at /etc is under /etc/hosts, not over it."""
    quiet = MS_NOSUID | MS_NODEV | MS_NOEXEC
    ops = [
        MountOp(OpKind.ROOT, merged, "overlay", "overlay", MS_NOSUID | MS_NODEV, overlay_options(lower, upper, work)),
        MountOp(OpKind.MOUNT, "proc", "proc", "proc", quiet),
        MountOp(OpKind.MOUNT, "dev", "tmpfs", "tmpfs", MS_NOSUID | MS_NODEV | MS_STRICTATIME, "mode=755,size=65536k"),
    ]
    ops += [MountOp(OpKind.BIND, f"dev/{node}", f"/dev/{node}") for node in DEVICE_NODES]
    ops.append(MountOp(OpKind.MOUNT, "dev/pts", "devpts", "devpts", MS_NOSUID | MS_NOEXEC,
                       "newinstance,ptmxmode=0666,mode=0620,gid=5"))
    if pod_shm:
        ops.append(MountOp(OpKind.POD_MOUNT, "dev/shm"))
    else:  # hostIPC: the host's /dev/shm, as with the host's IPC namespace
        ops.append(MountOp(OpKind.BIND, "dev/shm", "/dev/shm", flags=MS_NOSUID | MS_NODEV))
    ops.append(MountOp(OpKind.MOUNT, "dev/mqueue", "mqueue", "mqueue", quiet))
    ops += [MountOp(OpKind.SYMLINK, f"dev/{name}", target) for name, target in DEV_LINKS]
    ops.append(MountOp(OpKind.MOUNT, "sys", "sysfs", "sysfs", quiet | (0 if sys_writable else MS_RDONLY)))
    ops += cgroup  # cgroup_mounts(): /sys/fs/cgroup
    if masked:
        ops += [MountOp(OpKind.MASK, path) for path in MASKED_PATHS]
        ops += [MountOp(OpKind.READONLY, path) for path in READONLY_PATHS]
    pod_file = MS_NOSUID | MS_NODEV | (MS_RDONLY if read_only_root else 0)
    late = [
        MountOp(OpKind.BIND, "etc/hosts", files.hosts, flags=MS_NOSUID | MS_NODEV),
        MountOp(OpKind.BIND, "etc/hostname", files.hostname, flags=pod_file),
        MountOp(OpKind.BIND, "etc/resolv.conf", files.resolv_conf, flags=pod_file),
        *extra,
    ]
    return fit_overlays(ops + sorted(late, key=_depth))  # sorted is stable: equal depths keep their order


def _depth(op: MountOp) -> int:
    """Path components of the target (containerd's sortMounts key)."""
    return len([part for part in op.target.split("/") if part and part != "."])


def pause_plan(root_dir: str) -> list[MountOp]:
    """Pause runs from an empty read-only tmpfs root that also holds the pod's /dev/shm tmpfs."""
    quiet = MS_NOSUID | MS_NODEV | MS_NOEXEC
    return [
        MountOp(OpKind.ROOT, root_dir, "tmpfs", "tmpfs", quiet, "mode=755,size=16k"),
        MountOp(OpKind.MOUNT, POD_SHM_PATH.lstrip("/"), "shm", "tmpfs", quiet, SHM_OPTIONS),
    ]


def _bind_notes(flags: int) -> str:
    notes = [n for bit, n in ((MS_RDONLY, "ro"), (MS_SLAVE, "rslave"), (MS_SHARED, "rshared")) if flags & bit]
    return f" ({','.join(notes)})" if notes else ""


def _flag_names(flags: int) -> str:
    names = [n for bit, n in ((MS_RDONLY, "ro"), (MS_NOSUID, "nosuid"), (MS_NODEV, "nodev"),
                              (MS_NOEXEC, "noexec"), (MS_STRICTATIME, "strictatime")) if flags & bit]
    return ",".join(names) or "rw"
