"""configMap, secret, downwardAPI and projected volumes: files the node writes from API objects
and from the pod itself, refreshed while the pod runs, as the kubelet's volume plugins do.

Each volume is a directory `<lib>/pods/<uid>/volumes/kubernetes.io~<plugin>/<name>` (the
kubelet's layout) written by `AtomicWriter`, the kubelet's pkg/volume/util/atomic_writer.go:
the files live in a hidden timestamped directory `..2026_11_30_00_00_00.<random>`, `..data` is a
symlink to it, and each top-level name the user sees is a symlink `name -> ..data/name`. An
update writes a new timestamped directory and renames a fresh symlink over `..data`, so a
reader sees the old set of files or the new one, never a mix; a subPath mount binds one file of
one timestamped directory and is never updated (the kubelet's documented limit).

Like the kubelet's wrappers (an emptyDir on disk for configMap, one in memory for the others)
secret, downwardAPI and projected volumes get a tmpfs of their own, so secret bytes never reach
a disk; the mount is recorded in the pod's tear-down journal before it exists.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from sandbox.paths import under
from sandbox.record import Record
from sandbox.rmtree import rmtree

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any

    from sandbox.config.sources import ConfigObject, Sources
    from sandbox.pod.teardown import TornDown
    from sandbox.spec.model import Container, DownwardAPIVolumeFile, KeyToPath, Pod, Volume

DEFAULT_MODE = 0o644  # configMap, secret, downwardAPI and projected alike (v1 defaults)
RESYNC_PERIOD = 10.0  # seconds between resyncs; the kubelet's sync period is about a minute
DATA_DIR = "..data"
_DATA_TMP = "..data_tmp"
_MAX_PATH, _MAX_NAME = 4096, 255  # the AtomicWriter's own limits on a payload path
# The kubelet's wrapper for these volume types; configMap's is an emptyDir on disk.
PLUGINS = {"configMap": "kubernetes.io~configmap", "secret": "kubernetes.io~secret",
           "downwardAPI": "kubernetes.io~downward-api", "projected": "kubernetes.io~projected"}
_IN_MEMORY = ("secret", "downwardAPI", "projected")
# An object the API server stores is at most ~1 MiB; a swap holds the old and the new copy.
_OBJECT_MAX = 1 << 20


class ProjectionError(Exception):
    """A volume whose payload cannot be built now (a missing object or key): the kubelet's
    FailedMount, retried at every resync."""


class FileProjection(Record):
    data: bytes
    mode: int


if TYPE_CHECKING:
    Payload = dict[str, FileProjection]  # relative path -> contents and mode


# --- payloads: pure ---------------------------------------------------------------------------


def key_payload(kind: str, name: str, obj: ConfigObject | None, items: Iterable[KeyToPath],
                default_mode: int | None, optional: bool | None) -> Payload:
    """A configMap or secret volume (or projection): every key as a file named after it, or the
    listed `items` (key -> path, own mode). A missing object or key fails unless `optional`."""
    mode = DEFAULT_MODE if default_mode is None else default_mode
    label = "configmap" if kind == "ConfigMap" else "secret"
    if obj is None:
        if optional:
            return {}
        raise ProjectionError(f'{label} "{name}" not found')
    items = tuple(items)
    if not items:
        return {key: FileProjection(value, mode) for key, value in obj.data.items()}
    payload: Payload = {}
    for item in items:
        value = obj.data.get(item.key)
        if value is None:
            if optional:
                continue
            noun = "config" if kind == "ConfigMap" else "secret"
            raise ProjectionError(f"{label} references non-existent {noun} key: {item.key}")
        payload[item.path] = FileProjection(value, mode if item.mode is None else item.mode)
    return payload


def downward_payload(pod: Pod, files: Iterable[DownwardAPIVolumeFile], default_mode: int | None,
                     lib_dir: str | None = None) -> Payload:
    """downwardAPI files: pod fields (labels and annotations as `key="value"` lines) and
    container resources in units of the divisor (`lib_dir` as for downward.resource_value)."""
    from sandbox.process.downward import resource_value, volume_field_value

    mode = DEFAULT_MODE if default_mode is None else default_mode
    payload: Payload = {}
    for file in files:
        if file.field_ref is not None:
            text = volume_field_value(pod, file.field_ref.field_path)
        elif file.resource_field_ref is not None:
            ref = file.resource_field_ref
            text = resource_value(_container(pod, ref.container_name), ref.resource, ref.divisor, lib_dir)
        else:
            continue
        payload[file.path] = FileProjection(text.encode(), mode if file.mode is None else file.mode)
    return payload


def _container(pod: Pod, name: str | None) -> Container:
    for container in pod.spec.init_containers + pod.spec.containers:
        if container.name == name:
            return container
    raise ProjectionError(f"resourceFieldRef: no container named {name!r}")  # validation catches it first


def volume_payload(pod: Pod, volume: Volume, sources: Sources | None, lib_dir: str | None = None) -> Payload:
    """The files of one volume of a type this module writes; ProjectionError if not now (`lib_dir`
    as for downward.resource_value)."""
    namespace = pod.metadata.namespace or "default"

    def get(kind: str, name: str | None) -> ConfigObject | None:
        return sources.get(kind, namespace, name or "") if sources is not None else None

    if volume.config_map is not None:
        cm = volume.config_map
        return key_payload("ConfigMap", cm.name or "", get("ConfigMap", cm.name), cm.items, cm.default_mode,
                           cm.optional)
    if volume.secret is not None:
        s = volume.secret
        return key_payload("Secret", s.secret_name or "", get("Secret", s.secret_name), s.items, s.default_mode,
                           s.optional)
    if volume.downward_api is not None:
        return downward_payload(pod, volume.downward_api.items, volume.downward_api.default_mode, lib_dir)
    projected = volume.other_sources["projected"]
    return projected_payload(pod, projected, get, lib_dir)


def projected_payload(pod: Pod, projected: Mapping[str, Any],
                      get: Callable[[str, str | None], ConfigObject | None], lib_dir: str | None = None) -> Payload:
    """A projected volume: its sources' files in one directory, under the volume's defaultMode."""
    default_mode = projected.get("defaultMode")
    mode = default_mode if isinstance(default_mode, int) else DEFAULT_MODE
    payload: Payload = {}
    for source in projected.get("sources") or ():
        for key, kind in (("configMap", "ConfigMap"), ("secret", "Secret")):
            ref = source.get(key)
            if ref is not None:
                name = ref.get("name")
                payload.update(key_payload(kind, name or "", get(kind, name), ref.get("items") or (), mode,
                                           ref.get("optional")))
        if source.get("downwardAPI") is not None:
            payload.update(downward_payload(pod, source["downwardAPI"].get("items") or (), mode, lib_dir))
        for refused in ("serviceAccountToken", "clusterTrustBundle", "podCertificate"):
            if source.get(refused) is not None:  # validation refuses them first (fields.py)
                raise ProjectionError(f"{refused} projections need an API server")
    return payload


def projected_kind(volume: Volume) -> str | None:
    """The volume's key in PLUGINS, or None for a type this module does not write."""
    typed = (("configMap", volume.config_map), ("secret", volume.secret), ("downwardAPI", volume.downward_api))
    for key, source in typed:
        if source is not None:
            return key
    return "projected" if "projected" in volume.other_sources else None


def check_path(path: str) -> str:
    """The AtomicWriter's validatePath, then filepath.Clean: relative, no `..` element, not
    starting with `..` (the writer's own names), bounded lengths."""
    if not path:
        raise ValueError("invalid path: must not be empty")
    if path.startswith("/"):
        raise ValueError(f"invalid path: must be relative path: {path}")
    if len(path) > _MAX_PATH:
        raise ValueError(f"invalid path: must be less than or equal to {_MAX_PATH} characters")
    parts = path.split("/")
    if ".." in parts:
        raise ValueError(f"invalid path: must not contain '..': {path}")
    if any(len(part) > _MAX_NAME for part in parts):
        raise ValueError(f"invalid path: filenames must be less than or equal to {_MAX_NAME} characters")
    if parts[0].startswith(".."):
        raise ValueError(f"invalid path: must not start with '..': {path}")
    return os.path.normpath(path)


# --- the writer -------------------------------------------------------------------------------


class AtomicWriter:
    """Writes payloads into `target` with the `..data` swap. `group`: the pod's fsGroup, which
    owns every file and directory (the kubelet's SetVolumeOwnership on a read-only volume adds
    group read, and group search plus setgid on directories)."""

    def __init__(self, target: Path, group: int | None = None) -> None:
        self.target = target
        self.group = group

    def write(self, payload: Mapping[str, FileProjection]) -> bool:
        """Make the target show exactly `payload`; False (nothing touched) when it already does."""
        clean = {check_path(path): projection for path, projection in payload.items()}
        old = self._current()
        stale: set[str] = set()
        if old is not None:
            stale = self._paths(self.target / old) - _with_parents(clean)
            if not stale and not self._differs(clean, self.target / old):
                return False
        new = self._new_data_dir()
        try:
            self._write_files(clean, new)
            self._link_visible(clean)
            self._swap(new.name)
        except BaseException:
            rmtree(new, ignore_errors=True)
            raise
        for path in stale:
            if "/" not in path:  # only top-level names are symlinks in the target itself
                _remove(self.target / path)
        if old is not None:
            rmtree(self.target / old, ignore_errors=True)
        return True

    def _current(self) -> str | None:
        try:
            return os.readlink(self.target / DATA_DIR)
        except FileNotFoundError:
            return None

    @staticmethod
    def _paths(data_dir: Path) -> set[str]:
        found: set[str] = set()
        for dirpath, dirnames, filenames in os.walk(data_dir):
            rel = os.path.relpath(dirpath, data_dir)
            found.update(name if rel == "." else f"{rel}/{name}" for name in dirnames + filenames)
        return found

    def _differs(self, payload: Mapping[str, FileProjection], data_dir: Path) -> bool:
        """Whether any file's bytes or mode changed (the kubelet compares bytes only; a mode
        change alone is an update too here)."""
        for path, projection in payload.items():
            try:
                with open(data_dir / path, "rb") as f:
                    if f.read() != projection.data or stat.S_IMODE(os.fstat(f.fileno()).st_mode) != self._mode(
                            projection.mode):
                        return True
            except FileNotFoundError:
                return True
        return False

    def _mode(self, mode: int) -> int:
        return mode | 0o440 if self.group is not None else mode

    def _new_data_dir(self) -> Path:
        import tempfile  # only pods with such volumes pay for its import

        prefix = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime())
        new = Path(tempfile.mkdtemp(prefix=prefix, dir=self.target))
        os.chmod(new, 0o755)  # group and others must traverse it whatever the umask (mkdtemp: 0700)
        self._own(new, directory=True)
        return new

    def _write_files(self, payload: Mapping[str, FileProjection], data_dir: Path) -> None:
        for path, projection in payload.items():
            full = data_dir / path
            self._make_parents(data_dir, full.parent)
            fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                view = memoryview(projection.data)
                while view:
                    view = view[os.write(fd, view):]
                os.fchmod(fd, self._mode(projection.mode))  # exact mode, not masked by the umask
                if self.group is not None:
                    os.fchown(fd, -1, self.group)
            finally:
                os.close(fd)

    def _make_parents(self, data_dir: Path, parent: Path) -> None:
        missing = []
        while parent != data_dir and not parent.exists():
            missing.append(parent)
            parent = parent.parent
        for directory in reversed(missing):
            directory.mkdir(mode=0o755)
            os.chmod(directory, 0o755)
            self._own(directory, directory=True)

    def _own(self, path: Path, *, directory: bool) -> None:
        if self.group is None:
            return
        os.chown(path, -1, self.group, follow_symlinks=False)
        if directory:
            os.chmod(path, 0o755 | stat.S_ISGID)  # group search is in 0755 already

    def _link_visible(self, payload: Mapping[str, FileProjection]) -> None:
        for path in payload:
            top = path.split("/", 1)[0]
            if not os.path.lexists(self.target / top):
                os.symlink(f"{DATA_DIR}/{top}", self.target / top)

    def _swap(self, data_dir_name: str) -> None:
        """rename(2) of a symlink over `..data` replaces it atomically."""
        tmp = self.target / _DATA_TMP
        _remove(tmp)  # left by a writer that died between its two steps
        os.symlink(data_dir_name, tmp)
        os.rename(tmp, self.target / DATA_DIR)


def _with_parents(paths: Iterable[str]) -> set[str]:
    result: set[str] = set()
    for path in paths:
        while path:
            result.add(path)
            path = path.rpartition("/")[0]
    return result


def _remove(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# --- the pod's volumes ------------------------------------------------------------------------


class SyncResult(Record):
    ready: dict[str, Path]  # volume name -> host directory, every volume set up so far
    failed: dict[str, str]  # volume name -> why it is not (the FailedMount message)
    updated: list[str]  # volumes whose files changed in this sync (first writes included)


class ProjectedVolumes:
    """A pod's configMap, secret, downwardAPI and projected volumes: `sync` makes each one it can
    and rewrites the changed ones; call it at start and at every resync."""

    def __init__(self, root: Path, sources: Sources | None, record: Callable[[TornDown], None],
                 fs_group: int | None = None, lib_dir: str | None = None) -> None:
        self.root = root  # <lib>/pods/<uid>
        self.sources = sources
        self.lib_dir = lib_dir  # the runtime's lib directory: the node's ephemeral storage
        self.record = record
        self.fs_group = fs_group
        self.ready: dict[str, Path] = {}
        self.failed: dict[str, str] = {}

    @property
    def waiting(self) -> list[str]:
        """Volumes never set up yet: the kubelet starts none of the pod's containers until every
        volume is mounted (a volume that fails only to update keeps its last files)."""
        return [name for name in self.failed if name not in self.ready]

    def sync(self, pod: Pod) -> SyncResult:
        updated = []
        for volume in pod.spec.volumes:
            kind = projected_kind(volume)
            if kind is None:
                continue
            try:
                payload = volume_payload(pod, volume, self.sources, self.lib_dir)
                target = self.ready.get(volume.name) or self._make(volume, kind)
                if AtomicWriter(target, self.fs_group).write(payload):
                    updated.append(volume.name)
            except (ProjectionError, OSError, ValueError) as e:
                self.failed[volume.name] = f'MountVolume.SetUp failed for volume "{volume.name}" : {e}'
                continue
            self.failed.pop(volume.name, None)
            self.ready[volume.name] = target
        return SyncResult(dict(self.ready), dict(self.failed), updated)

    def _make(self, volume: Volume, kind: str) -> Path:
        target = under(self.root / "volumes" / PLUGINS[kind], volume.name)
        target.mkdir(parents=True, exist_ok=True)
        if kind in _IN_MEMORY and not os.path.ismount(target):
            from sandbox.native import mount_tmpfs
            from sandbox.pod.teardown import Mount
            from sandbox.rootfs.plan import MS_NODEV, MS_NOSUID

            self.record(Mount(target))  # before it exists: a crash leaves it recorded
            mount_tmpfs(str(target), MS_NOSUID | MS_NODEV, f"mode=1777,size={tmpfs_size(volume)}")
        else:
            os.chmod(target, 0o777)  # the wrapping emptyDir's mode, whatever the umask
        if self.fs_group is not None:
            os.chown(target, -1, self.fs_group)
            os.chmod(target, stat.S_IMODE(os.stat(target).st_mode) | stat.S_ISGID)
        return target



def tmpfs_size(volume: Volume) -> int:
    """The volume's tmpfs: room for each object it projects twice over (a swap holds the old and
    the new copy), plus 1 MiB for downward API files. The kubelet's in-memory emptyDir is bounded
    by the pod's memory instead; a bound of our own keeps a runaway store object from filling RAM."""
    projected = volume.other_sources.get("projected")
    sources = len(projected.get("sources") or ()) if projected is not None else 1
    return 2 * _OBJECT_MAX * sources + _OBJECT_MAX


def create_projected_volumes(pod: Pod, root: Path, sources: Sources | None, record: Callable[[TornDown], None],
                             lib_dir: str | None = None) -> ProjectedVolumes | None:
    """Make the pod's configMap, secret, downwardAPI and projected volumes (None: it has none).
    The ones ready are in `.ready` (name -> host directory); `.waiting` names the others, which
    every resync retries (the supervisor's _resync_projections)."""
    if not read_only_volumes(pod):
        return None
    psc = pod.spec.security_context
    volumes = ProjectedVolumes(root, sources, record, psc.fs_group if psc is not None else None, lib_dir)
    volumes.sync(pod)
    return volumes


def read_only_volumes(pod: Pod) -> set[str]:
    """The kubelet mounts these volume types read-only whatever the volumeMount says."""
    return {volume.name for volume in pod.spec.volumes if projected_kind(volume) is not None}


def failed_mount(message: str) -> tuple[str, str, str]:
    """The kubelet's Warning event when a volume cannot be set up (retried at the next sync)."""
    return ("Warning", "FailedMount", message)
