"""The node's ConfigMaps and Secrets: one JSON file per object under
`<lib>/config/<namespace>/{configmaps,secrets}/<name>.json`, filled by `sandbox apply -f` and
`sandbox create configmap|secret` and read through `Sources` (sources.py) by the pods that use them.

Secret values sit here in the clear, as they do in an API server's etcd without encryption at
rest: the directories are 0700 and the files 0600, root's, and every file is written whole to a
temporary name and renamed over the old one, so a pod (or a volume's resync) reading at any moment
sees the old object or the new one, never half of one. Each change takes a `version` larger than
any the object had before (also across a delete and re-create), the resourceVersion a volume's
resync compares.
"""

from __future__ import annotations

import os

from sandbox import fastjson
from sandbox.config.sources import CONFIG_MAP, SECRET, ConfigObject
from sandbox.errors import StateError
from sandbox.names import is_dns_label, is_dns_subdomain
from sandbox.record import replace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path
    from typing import Any

    from sandbox.spec.model import ConfigMap, Secret

_DIRS = {CONFIG_MAP: "configmaps", SECRET: "secrets"}
_TMP_PREFIX = ".tmp-"  # names the API server never gives (a leading dot is not a DNS subdomain)


class ImmutableError(StateError):
    """An update of an object marked `immutable`, refused as the API server refuses it."""

    exit_code = 1


class AlreadyExistsError(StateError):
    """`create` of a name the store already holds (kubectl create never overwrites)."""


class ConfigStore:
    def __init__(self, root: Path) -> None:
        self.root = root  # <lib>/config

    # --- reading -----------------------------------------------------------------------------------

    def get(self, kind: str, namespace: str, name: str) -> ConfigObject | None:
        path = self._path(kind, namespace, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise StateError(f"read {path}: {e.strerror}") from None
        try:
            with os.fdopen(fd, "rb") as f:
                return _from_json(fastjson.loads(f.read()))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise StateError(f"read {path}: not a stored {kind}: {e}") from None

    def list(self, kind: str, namespace: str | None = None) -> list[ConfigObject]:
        """Every stored object of `kind` (in `namespace`; None: all), by namespace and name."""
        found = []
        for ns in [namespace] if namespace is not None else _namespaces(self.root):
            for name in self._names(kind, ns):
                obj = self.get(kind, ns, name)
                if obj is not None:  # deleted since the directory was read
                    found.append(obj)
        return found

    def _names(self, kind: str, namespace: str) -> Iterator[str]:
        try:
            entries = sorted(e.name for e in os.scandir(self._kind_dir(kind, namespace)))
        except FileNotFoundError:
            return
        for entry in entries:
            if entry.endswith(".json") and not entry.startswith("."):
                yield entry[: -len(".json")]

    # --- writing -----------------------------------------------------------------------------------

    def put(self, obj: ConfigObject, now: float | None = None, *, replace_existing: bool = True
            ) -> tuple[ConfigObject, str]:
        """Create or replace `obj`; returns the stored object and what happened: "created",
        "configured" or "unchanged" (as `kubectl apply` prints it). ImmutableError when the stored
        object is immutable and `obj` changes its data, type or immutability; AlreadyExistsError
        when it exists and not `replace_existing` (`create`)."""
        import fcntl
        import time

        kind_dir = self._kind_dir(obj.kind, obj.namespace)
        _make_dirs(self.root, kind_dir)
        # One writer per namespace at a time: the read-compare-write below must not interleave.
        lock_fd = os.open(kind_dir.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            old = self.get(obj.kind, obj.namespace, obj.name)
            if old is not None and not replace_existing:
                raise AlreadyExistsError(f'{_DIRS[obj.kind]} "{obj.name}" already exists')
            if old is not None:
                _check_update(old, obj)
                if _same(old, obj):
                    return old, "unchanged"
            wall = time.time() if now is None else now
            # Larger than any earlier version of this name, even one deleted since (its number is
            # gone with its file): a volume resync comparing versions must see every change.
            version = max((old.version + 1) if old else 1, int(wall * 1_000_000))
            stored = replace(obj, version=version, created=old.created if old else wall)
            _write_atomic(kind_dir, f"{obj.name}.json", fastjson.dumps(_to_json(stored)).encode())
            return stored, "configured" if old else "created"
        finally:
            os.close(lock_fd)

    def delete(self, kind: str, namespace: str, name: str) -> bool:
        """False when there was no such object (deleting an immutable one is allowed)."""
        try:
            os.unlink(self._path(kind, namespace, name))
        except FileNotFoundError:
            return False
        return True

    # --- paths -------------------------------------------------------------------------------------

    def _kind_dir(self, kind: str, namespace: str) -> Path:
        if not is_dns_label(namespace):
            raise StateError(f"invalid namespace {namespace!r}")
        return self.root / namespace / _DIRS[kind]

    def _path(self, kind: str, namespace: str, name: str) -> Path:
        # Names become file names: the API server's own check is the guard (no '/', no '..').
        if not is_dns_subdomain(name):
            raise StateError(f"invalid {kind} name {name!r}")
        return self._kind_dir(kind, namespace) / f"{name}.json"


def _namespaces(root: Path) -> list[str]:
    try:
        return sorted(e.name for e in os.scandir(root) if e.is_dir(follow_symlinks=False))
    except FileNotFoundError:
        return []


def _make_dirs(root: Path, kind_dir: Path) -> None:
    root.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # <lib>, on a fresh machine
    for directory in (root, kind_dir.parent, kind_dir):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            continue
        os.chmod(directory, 0o700)  # mkdir's mode is masked by the umask


def _write_atomic(directory: Path, name: str, data: bytes) -> None:
    """Write to a fresh temporary file in the same directory, fsync, rename over `name`: readers
    see the old file or the new one (rename(2) is atomic within a filesystem)."""
    tmp = directory / f"{_TMP_PREFIX}{os.urandom(6).hex()}-{name}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # the umask may only remove bits; this is the mode, whatever it is
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, directory / name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _check_update(old: ConfigObject, new: ConfigObject) -> None:
    """ValidateConfigMapUpdate / ValidateSecretUpdate: a Secret's type never changes; an immutable
    object keeps its data and stays immutable (metadata may change)."""
    problems = []
    if old.kind == SECRET and old.type != new.type:
        problems.append(f'type: Invalid value: "{new.type}": field is immutable')
    if old.immutable:
        if not new.immutable:
            problems.append("immutable: Forbidden: field is immutable when `immutable` is set")
        if old.kind == CONFIG_MAP:
            if _part(old, binary=False) != _part(new, binary=False):
                problems.append("data: Forbidden: field is immutable when `immutable` is set")
            if _part(old, binary=True) != _part(new, binary=True):
                problems.append("binaryData: Forbidden: field is immutable when `immutable` is set")
        elif dict(old.data) != dict(new.data):
            problems.append("data: Forbidden: field is immutable when `immutable` is set")
    if problems:
        listed = problems[0] if len(problems) == 1 else f"[{', '.join(problems)}]"
        raise ImmutableError(f'{old.kind} "{old.name}" is invalid: {listed}')


def _part(obj: ConfigObject, *, binary: bool) -> dict[str, bytes]:
    return {k: v for k, v in obj.data.items() if (k in obj.binary_keys) == binary}


def _same(old: ConfigObject, new: ConfigObject) -> bool:
    return (dict(old.data) == dict(new.data) and old.binary_keys == new.binary_keys
            and old.immutable == new.immutable and old.type == new.type
            and dict(old.labels) == dict(new.labels) and dict(old.annotations) == dict(new.annotations))


# --- the file format ---------------------------------------------------------------------------------


def _to_json(obj: ConfigObject) -> dict[str, Any]:
    import base64  # only when a value is stored or read: `sandbox run` without references skips it

    return {"kind": obj.kind, "namespace": obj.namespace, "name": obj.name,
            "data": {k: base64.b64encode(v).decode() for k, v in obj.data.items()},
            "binaryKeys": sorted(obj.binary_keys), "immutable": obj.immutable, "type": obj.type,
            "version": obj.version, "created": obj.created,
            "labels": dict(obj.labels), "annotations": dict(obj.annotations)}


def _from_json(raw: dict[str, Any]) -> ConfigObject:
    import base64

    if raw["kind"] not in _DIRS:
        raise ValueError(f"kind {raw['kind']!r}")
    return ConfigObject(
        kind=raw["kind"], namespace=str(raw["namespace"]), name=str(raw["name"]),
        data={str(k): base64.b64decode(v, validate=True) for k, v in raw["data"].items()},
        immutable=bool(raw["immutable"]), type=str(raw["type"]), version=int(raw["version"]),
        binary_keys=frozenset(raw.get("binaryKeys") or ()), created=float(raw.get("created") or 0),
        labels={str(k): str(v) for k, v in (raw.get("labels") or {}).items()},
        annotations={str(k): str(v) for k, v in (raw.get("annotations") or {}).items()})


def write_objects(path: Path, objects: tuple[ConfigObject, ...]) -> None:
    """A pod's own ConfigMaps and Secrets (its manifest file's), kept beside its record (0600) so a
    node agent that re-adopts the pod resolves the same references."""
    data = fastjson.dumps([_to_json(obj) for obj in objects]).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def read_objects(path: Path) -> tuple[ConfigObject, ...]:
    """write_objects' file; () when there is none."""
    try:
        with open(path, "rb") as f:
            return tuple(_from_json(raw) for raw in fastjson.loads(f.read()))
    except FileNotFoundError:
        return ()


# --- from the spec model -----------------------------------------------------------------------------


def from_config_map(cm: ConfigMap, namespace: str) -> ConfigObject:
    """`data` UTF-8 encoded and `binaryData` as is, one map (validation keeps their keys apart)."""
    data = {k: v.encode() for k, v in cm.data.items()}
    data.update(cm.binary_data)
    return ConfigObject(CONFIG_MAP, namespace, cm.metadata.name or "", data, immutable=bool(cm.immutable),
                        binary_keys=frozenset(cm.binary_data), labels=dict(cm.metadata.labels),
                        annotations=dict(cm.metadata.annotations))


def from_secret(secret: Secret, namespace: str) -> ConfigObject:
    return ConfigObject(SECRET, namespace, secret.metadata.name or "", dict(secret.data),
                        immutable=bool(secret.immutable), type=secret.type or "Opaque",
                        labels=dict(secret.metadata.labels), annotations=dict(secret.metadata.annotations))


def from_spec(obj: ConfigMap | Secret, namespace: str | None = None) -> ConfigObject:
    """Either kind, in the object's own namespace (or `namespace` when it names none; "default")."""
    from sandbox.spec.model import ConfigMap

    ns = obj.metadata.namespace or namespace or "default"
    return from_config_map(obj, ns) if isinstance(obj, ConfigMap) else from_secret(obj, ns)
