"""Pod volumes a node makes itself, and their binds into containers.

- emptyDir: one directory per volume under `<lib>/pods/<uid>/volumes/empty-dir/<name>` (the
  kubelet's /var/lib/kubelet/pods/<uid>/volumes/kubernetes.io~empty-dir/<name>), mode 0777,
  shared by every container of the pod that mounts it, removed with the pod (by its tear-down
  registry, sandbox/pod/teardown.py). `medium: Memory` mounts a tmpfs of the runtime's own there
  (recorded in the registry before it exists); its pages are charged by the kernel to the memory
  cgroup of whoever writes them, so they count against the pod's memory.
- hostPath: the host's path itself, after the kubelet's type checks (pkg/volume/hostpath).
  A failed check is the kubelet's FailedMount ("MountVolume.SetUp failed for volume ..."): the
  kubelet keeps the pod ContainerCreating and retries; a one-shot runtime has nothing to retry
  for, so the pod does not start and `sandbox run` exits 1 with the kubelet's message.

Binds are nosuid,nodev (a device node a container makes there cannot be opened), read-only
recursively when readOnly (mount_setattr AT_RECURSIVE in native/mounts.c). A subPath is opened
beneath the volume by the native side and that fd is bound (OpKind.BIND_BENEATH), so a symlink the
container swaps in cannot redirect the bind (CVE-2017-1002101). The same `<lib>/pods/<uid>` holds
the pod files' bounded tmpfs (`files/`, sandbox/pod/sandbox.py), unmounted before the directory is
removed.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sandbox.errors import ContainerConfigError, SandboxError
from sandbox.paths import under
from sandbox.pod import teardown
from sandbox.rootfs.plan import (
    MS_NODEV,
    MS_NOSUID,
    MS_RDONLY,
    MS_SHARED,
    MS_SLAVE,
    MountOp,
    OpKind,
    overlay_options,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Mapping

    from sandbox.images.store import Image
    from sandbox.spec.model import Container, HostPathVolumeSource, Pod, VolumeMount

EMPTY_DIR_MODE = 0o777
MEMORY_MEDIUM = "Memory"
# The kubelet's MakeDir (DirectoryOrCreate, parents included) and MakeFile (FileOrCreate, which
# does not create the parent: the pod fails to start when it is missing).
HOST_DIR_MODE = 0o755
HOST_FILE_MODE = 0o644
PROPAGATION_FLAGS = {"HostToContainer": MS_SLAVE, "Bidirectional": MS_SHARED}


class VolumeSetupError(SandboxError):
    """A volume could not be set up (the kubelet's FailedMount event); the pod does not start."""

    def __init__(self, volume: str, detail: str) -> None:
        self.volume, self.detail = volume, detail
        super().__init__(f'MountVolume.SetUp failed for volume "{volume}" : {detail}')


def volumes_root(lib: Path, uid: str) -> Path:
    return under(lib / "pods", uid)


def create_volumes(pod: Pod, root: Path, *, record: Callable[[teardown.Mount], None] | None = None,
                   memory_limit: int | None = None, allow_host_path: bool = True) -> dict[str, Path]:
    """Make each emptyDir (a tmpfs for `medium: Memory`, recorded through `record` before it is
    mounted) and check each hostPath; returns volume name -> host directory (or file).

    `memory_limit`: the pod's memory limit in bytes (its cgroup's), which bounds a Memory
    emptyDir without a sizeLimit; `allow_host_path=False` (`sandbox run --no-host-path`) refuses
    a hostPath volume here too, should a caller not have refused the pod up front."""
    psc = pod.spec.security_context
    fs_group = psc.fs_group if psc is not None else None
    paths: dict[str, Path] = {}
    for volume in pod.spec.volumes:
        if volume.host_path is not None:
            if not allow_host_path:
                raise VolumeSetupError(volume.name, "hostPath volumes are forbidden on this node (--no-host-path)")
            problem = check_host_path(volume.host_path)
            if problem is not None:
                raise VolumeSetupError(volume.name, problem)
            paths[volume.name] = Path(volume.host_path.path)
            continue
        if volume.empty_dir is None:
            continue
        path = under(root / "volumes" / "empty-dir", volume.name)
        path.mkdir(parents=True, exist_ok=True)
        if volume.empty_dir.medium == MEMORY_MEDIUM:
            size_limit = volume.empty_dir.size_limit
            size = memory_medium_size(-(-size_limit.milli // 1000) if size_limit is not None else None,
                                      memory_limit, _node_memory())
            _mount_memory(path, size, record)
        os.chmod(path, EMPTY_DIR_MODE)  # not subject to the umask, as the kubelet's 0777
        if fs_group is not None:
            # The kubelet's SetVolumeOwnership on a fresh volume: group fsGroup, group rwx and the
            # setgid bit, so files the containers create there belong to fsGroup too. Always and
            # OnRootMismatch (fsGroupChangePolicy) do the same to a volume that was just made.
            os.chown(path, -1, fs_group)
            os.chmod(path, EMPTY_DIR_MODE | stat.S_ISGID)
        paths[volume.name] = path
    return paths


def memory_medium_size(size_limit: int | None, pod_memory_limit: int | None, node_memory: int) -> int:
    """The tmpfs size of a Memory emptyDir, as the kubelet's calculateEmptyDirMemorySize: the node's
    memory (MemTotal standing for its allocatable), lowered to the pod's memory limit when it has one,
    lowered to the volume's sizeLimit when set (0 or absent: not set)."""
    size = node_memory
    if pod_memory_limit is not None and 0 < pod_memory_limit < size:
        size = pod_memory_limit
    if size_limit is not None and 0 < size_limit < size:
        size = size_limit
    return size


def _node_memory() -> int:
    from sandbox.process.resources import memory_capacity

    return memory_capacity()


def _mount_memory(path: Path, size: int, record: Callable[[teardown.Mount], None] | None) -> None:
    from sandbox.native import mount_tmpfs

    if record is not None:
        record(teardown.Mount(path))  # before it exists: a crash right after leaves it recorded
    try:
        mount_tmpfs(str(path), MS_NOSUID | MS_NODEV, f"mode=0777,size={size}")
    except OSError as e:
        raise VolumeSetupError(path.name, f"mount tmpfs on {path}: {e.strerror}") from None


# --- hostPath types (pkg/volume/hostpath/host_path.go checkTypeInternal) --------------------------

_KIND_CHECKS: dict[str, tuple[Callable[[int], bool], str]] = {
    "Directory": (stat.S_ISDIR, "a directory"),
    "File": (stat.S_ISREG, "a file"),
    "Socket": (stat.S_ISSOCK, "a socket file"),
    "CharDevice": (stat.S_ISCHR, "a character device"),
    "BlockDevice": (stat.S_ISBLK, "a block device"),
}


def check_host_path(source: HostPathVolumeSource) -> str | None:
    """The kubelet's hostPath type check: None when it passes, else its message. DirectoryOrCreate
    and FileOrCreate create what is missing first (a directory with its parents, 0755; an empty
    file, 0644, in an existing parent); an unset type checks nothing. Symlinks are followed, as the
    kubelet's os.Stat does."""
    path, kind = source.path, source.type or ""
    if not kind:
        return None
    try:
        if kind == "DirectoryOrCreate" and not os.path.lexists(path):
            _make_dirs(path, HOST_DIR_MODE)
        elif kind == "FileOrCreate" and not os.path.lexists(path):
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW, HOST_FILE_MODE))
    except OSError as e:  # Go's wording: "mkdir /a/b: permission denied"
        op = "mkdir" if kind == "DirectoryOrCreate" else "open"
        reason = (e.strerror or str(e))
        return f"{op} {e.filename or path}: {reason[:1].lower()}{reason[1:]}"
    want = kind.removesuffix("OrCreate")
    check = _KIND_CHECKS.get(want)
    if check is None:
        return f"{kind} is an invalid volume type"
    is_kind, what = check
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = 0
    return None if is_kind(mode) else f"hostPath type check failed: {path} is not {what}"


def _make_dirs(path: str, mode: int) -> None:
    """Go's os.MkdirAll: every missing directory gets `mode` (os.makedirs gives parents 0777)."""
    parent = os.path.dirname(path.rstrip("/"))
    if parent and parent != path and not os.path.lexists(parent):
        _make_dirs(parent, mode)
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        pass


# --- binds into a container ---------------------------------------------------------------------


def mount_ops(container: Container, volumes: Mapping[str, Path], env: Mapping[str, str] | None = None,
              read_only: Collection[str] = (), images: Mapping[str, Image] | None = None) -> list[MountOp]:
    """Bind each volumeMount at its mountPath (the kubelet prefixes "/" to a relative one). `env`:
    the container's environment as the kubelet computes it (its `env` and `envFrom`), from which
    a subPathExpr is expanded. Raises ContainerConfigError (the kubelet's
    CreateContainerConfigError) for a subPathExpr that cannot be expanded or a propagation the
    volume's host mount cannot give."""
    ops = []
    for mount in container.volume_mounts:
        image = (images or {}).get(mount.name)
        if image is not None:
            ops.append(image_volume_op(mount, image, env or {}, container.name))
            continue
        source = volumes.get(mount.name)
        if source is None:
            continue
        # configMap, secret, downwardAPI and projected volumes are read-only whatever the mount says
        flags = MS_NOSUID | MS_NODEV | (MS_RDONLY if mount.read_only or mount.name in read_only else 0)
        propagation = PROPAGATION_FLAGS.get(mount.mount_propagation or "", 0)
        if propagation:
            check_propagation(str(source), propagation, container.name)
        flags |= propagation
        target = mount.mount_path.strip("/")
        sub_path = container_sub_path(mount, env or {}, container.name)
        if sub_path:
            ops.append(MountOp(OpKind.BIND_BENEATH, target, str(source), flags=flags, data=sub_path))
        else:
            ops.append(MountOp(OpKind.BIND, target, str(source), flags=flags))
    return ops


def image_volume_op(mount: VolumeMount, image: Image, env: Mapping[str, str], container: str) -> MountOp:
    """An `image` volume, read-only whatever the mount says: its one layer bound (a subPath
    beneath it), or its layers as a read-only overlay (no upper layer; overlayfs needs two lower
    ones then, which a multi-layer image has)."""
    flags = MS_NOSUID | MS_NODEV | MS_RDONLY
    target = mount.mount_path.strip("/")
    sub_path = container_sub_path(mount, env, container)
    if len(image.layers) == 1:
        if sub_path:
            return MountOp(OpKind.BIND_BENEATH, target, str(image.layers[0]), flags=flags, data=sub_path)
        return MountOp(OpKind.BIND, target, str(image.layers[0]), flags=flags)
    if sub_path:
        raise ContainerConfigError(f"subPath {sub_path!r} of an image volume of {len(image.layers)} layers is not "
                                   "supported", container=container)
    try:  # the lowerdirs are the layers' short links: container_plan makes them relative (fit_overlays)
        options = overlay_options(image.lowerdirs)
    except ValueError as e:
        raise ContainerConfigError(f"image volume {mount.name!r} ({image.name}): {e}",
                                   container=container) from None
    return MountOp(OpKind.MOUNT, target, "overlay", "overlay", flags, options)


def container_sub_path(mount: VolumeMount, env: Mapping[str, str], container: str = "") -> str:
    """The mount's sub path: `subPath`, or `subPathExpr` expanded from `env` as the kubelet's
    ExpandContainerVolumeMounts does (only `$(VAR)`; an unknown or empty VAR is an error), then
    checked as makeMounts checks it (relative, no `..`)."""
    if mount.sub_path_expr:
        from sandbox.spec.expand import expand

        missing: set[str] = set()
        expanded = expand(mount.sub_path_expr, _Recording(env, missing))
        if missing:
            raise ContainerConfigError(f"missing value for {', '.join(sorted(missing))}", container=container)
        sub_path = expanded
    else:
        sub_path = mount.sub_path or ""
    if sub_path.startswith("/"):
        raise ContainerConfigError(f"error SubPath `{sub_path}` must not be an absolute path", container=container)
    if ".." in sub_path.split("/"):
        raise ContainerConfigError(f"unable to provision SubPath `{sub_path}`: must not contain '..'",
                                   container=container)
    return sub_path.strip("/")


class _Recording(dict[str, str]):
    """A lookup for `expand` that gives "" for an unknown or empty name and remembers it (the
    kubelet's mapping function: `$(MISSING)` is not kept literally in a sub path)."""

    def __init__(self, env: Mapping[str, str], missing: set[str]) -> None:
        super().__init__(env)
        self.missing = missing

    def get(self, key: str, default: object = None) -> str:
        value = super().get(key) or ""
        if not value:
            self.missing.add(key)
        return value


def check_propagation(source: str, propagation: int, container: str = "",
                      mountinfo: str = "/proc/self/mountinfo") -> None:
    """containerd's ensureShared / ensureSharedOrSlave: propagation needs the host mount holding
    `source` to be shared (Bidirectional) or shared or slave (HostToContainer); a private one would
    silently propagate nothing."""
    point, tags = mount_of(os.path.realpath(source), mountinfo)
    shared = any(t.startswith("shared:") for t in tags)
    slave = any(t.startswith("master:") for t in tags)
    if propagation == MS_SHARED and not shared:
        raise ContainerConfigError(f'path "{source}" is mounted on "{point}" but it is not a shared mount',
                                   reason="CreateContainerError", container=container)
    if propagation == MS_SLAVE and not (shared or slave):
        raise ContainerConfigError(f'path "{source}" is mounted on "{point}" but it is not a shared or slave '
                                   "mount", reason="CreateContainerError", container=container)


def mount_of(path: str, mountinfo: str = "/proc/self/mountinfo") -> tuple[str, list[str]]:
    """The mount point holding `path` (the longest prefix; the last mounted wins) and its optional
    fields (`shared:N`, `master:N`) from mountinfo."""
    best, best_tags = "/", []
    with open(mountinfo, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split()
            point = _unescape(fields[4])
            tags = fields[6:fields.index("-")]
            if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
                best, best_tags = point, tags
    return best, best_tags


def _unescape(text: str) -> str:
    """mountinfo's octal escapes (`\\040` for a space)."""
    if "\\" not in text:
        return text
    return text.encode("latin-1", "backslashreplace").decode("unicode_escape")
