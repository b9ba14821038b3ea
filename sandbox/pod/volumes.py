"""Pod volumes a node makes itself. For now: emptyDir on disk, one directory per volume under
`<lib>/pods/<uid>/volumes/empty-dir/<name>` (the kubelet's
/var/lib/kubelet/pods/<uid>/volumes/kubernetes.io~empty-dir/<name>), mode 0777, shared by every
container of the pod that mounts it, removed with the pod (by its tear-down registry,
sandbox/pod/teardown.py). Binds are nosuid,nodev (a device node a
container makes there cannot be opened). The same `<lib>/pods/<uid>` holds the pod files' bounded
tmpfs (`files/`, sandbox/pod/sandbox.py), unmounted before the directory is removed.
Other volume types come with the volumes issue; the field table (sandbox/spec/fields.py) refuses
a pod that uses one, and warns that `medium: Memory` is served from disk.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sandbox.paths import under
from sandbox.rootfs.plan import MS_NODEV, MS_NOSUID, MS_RDONLY, MountOp, OpKind

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sandbox.spec.model import Container, Pod

EMPTY_DIR_MODE = 0o777


def volumes_root(lib: Path, uid: str) -> Path:
    return under(lib / "pods", uid)


def create_volumes(pod: Pod, root: Path) -> dict[str, Path]:
    """Make each emptyDir's directory (owned by the pod's fsGroup when it has one); returns volume
    name -> host directory."""
    psc = pod.spec.security_context
    fs_group = psc.fs_group if psc is not None else None
    paths: dict[str, Path] = {}
    for volume in pod.spec.volumes:
        if volume.empty_dir is None:
            continue
        path = under(root / "volumes" / "empty-dir", volume.name)
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, EMPTY_DIR_MODE)  # not subject to the umask, as the kubelet's 0777
        if fs_group is not None:
            # The kubelet's SetVolumeOwnership on a fresh volume: group fsGroup, group rwx and the
            # setgid bit, so files the containers create there belong to fsGroup too. Always and
            # OnRootMismatch (fsGroupChangePolicy) do the same to a volume that was just made.
            os.chown(path, -1, fs_group)
            os.chmod(path, EMPTY_DIR_MODE | stat.S_ISGID)
        paths[volume.name] = path
    return paths


def mount_ops(container: Container, volumes: dict[str, Path]) -> list[MountOp]:
    """Bind each volumeMount at its mountPath (the kubelet prefixes "/" to a relative one)."""
    ops = []
    for mount in container.volume_mounts:
        source = volumes.get(mount.name)
        if source is None:
            continue
        flags = MS_NOSUID | MS_NODEV | (MS_RDONLY if mount.read_only else 0)
        ops.append(MountOp(OpKind.BIND, mount.mount_path.strip("/"), str(source), flags=flags))
    return ops
