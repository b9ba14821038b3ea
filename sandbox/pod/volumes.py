"""Pod volumes a node makes itself. For now: emptyDir on disk, one directory per volume under
`<lib>/pods/<uid>/volumes/empty-dir/<name>` (the kubelet's
/var/lib/kubelet/pods/<uid>/volumes/kubernetes.io~empty-dir/<name>), mode 0777, shared by every
container of the pod that mounts it, removed with the pod. Other volume types come with the
volumes issue; a pod that uses one is refused before anything starts, naming the field.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from sandbox.errors import FieldError, SpecError
from sandbox.log import get_logger
from sandbox.paths import under
from sandbox.rootfs.plan import MS_NODEV, MS_RDONLY, MountOp, OpKind

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sandbox.spec.model import Container, Pod

log = get_logger(__name__)

EMPTY_DIR_MODE = 0o777


def check_supported(pod: Pod) -> None:
    """Refuse (with the field path) what this runtime cannot mount yet."""
    errors = []
    for i, volume in enumerate(pod.spec.volumes):
        if volume.empty_dir is None:
            kinds = [camel for attr, camel in (("host_path", "hostPath"), ("config_map", "configMap"), ("secret", "secret"),
                                               ("downward_api", "downwardAPI")) if getattr(volume, attr)]
            kinds += list(volume.other_sources)
            errors.append(FieldError(f"spec.volumes[{i}]", f"Unsupported value: volume type "
                                     f"{', '.join(kinds) or 'unknown'}: only emptyDir volumes are supported yet"))
    for group, containers in (("initContainers", pod.spec.init_containers), ("containers", pod.spec.containers)):
        for i, c in enumerate(containers):
            for j, m in enumerate(c.volume_mounts):
                if m.sub_path or m.sub_path_expr:
                    errors.append(FieldError(f"spec.{group}[{i}].volumeMounts[{j}].subPath",
                                             "Unsupported value: subPath is not supported yet"))
    if errors:
        raise SpecError(errors)


def volumes_root(lib: Path, uid: str) -> Path:
    return under(lib / "pods", uid)


def create_volumes(pod: Pod, root: Path) -> dict[str, Path]:
    """Make each emptyDir's directory; returns volume name -> host directory."""
    paths: dict[str, Path] = {}
    for volume in pod.spec.volumes:
        if volume.empty_dir is None:
            continue
        if volume.empty_dir.medium == "Memory":
            log.warning("emptyDir %r: medium Memory is served from disk for now (tmpfs volumes come "
                        "with the volumes issue)", volume.name)
        path = under(root / "volumes" / "empty-dir", volume.name)
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, EMPTY_DIR_MODE)  # not subject to the umask, as the kubelet's 0777
        paths[volume.name] = path
    return paths


def mount_ops(container: Container, volumes: dict[str, Path]) -> list[MountOp]:
    """Bind each volumeMount at its mountPath (the kubelet prefixes "/" to a relative one)."""
    ops = []
    for mount in container.volume_mounts:
        source = volumes.get(mount.name)
        if source is None:
            continue
        flags = MS_NODEV | (MS_RDONLY if mount.read_only else 0)
        ops.append(MountOp(OpKind.BIND, mount.mount_path.strip("/"), str(source), flags=flags))
    return ops


def remove_volumes(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)
