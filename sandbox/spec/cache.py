"""A cache of parsed, defaulted and validated Pod manifests, keyed by their exact content.

Loading a manifest means importing PyYAML (~10-15 ms, the largest single cost of `sandbox run`'s
start-up), a safety pre-scan, defaulting and validation. The same file run again (a CI loop, a
demo, a static pod re-read) skips all of that: the cache entry holds the manifest's bytes, checked
byte for byte, the Pod as `pod_to_dict` renders it, which converts back to an equal Pod (a unit
test checks that round trip over the documentation corpus), and the file's ConfigMaps and Secrets. An entry is valid only for the spec
code that wrote it: a fingerprint of every input of the parse other than the manifest (the modules
of sandbox/spec and the sandbox modules they import, the PyYAML package with its libyaml extension,
the interpreter's version). Invalid manifests are never cached.
"""

from __future__ import annotations

import os
import sys

from sandbox import fastjson
from sandbox.spec.source import MAX_BYTES, read_manifest, source_name  # bigger input goes to load's error

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from sandbox.spec.convert import Converter
    from sandbox.spec.model import ConfigMap, Pod, Secret

    Config = tuple[ConfigMap | Secret, ...]

MAX_ENTRIES = 64
_SANDBOX_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What sandbox/spec imports from the rest of the package (a unit test walks the imports with ast
# and fails when this list misses one): each is an input of the parse like spec's own modules.
PARSE_MODULES = ("errors.py", "names.py", "record.py", "lazyre.py", "fastjson.py", "images/reference.py")


def fingerprint(sandbox_dir: str | None = None, yaml_dir: str | None = None) -> str:
    """Changes whenever an input of the parse changes: a module of sandbox/spec or one of
    PARSE_MODULES, a file of the yaml package (libyaml is in its _yaml extension: PyPI's wheels
    link it in statically; a PyYAML built against a shared system libyaml would also need that
    library's stat), or the Python version. Files are compared by stat (size, mtime, inode),
    not read: a hit must stay far cheaper than the ~10 ms import it saves, and must not import
    yaml. The one exception is yaml/__init__.py (12 KB, holds `__version__`), read whole so a
    release that changes only the version string still changes the key. The defaults: this
    sandbox package, and the yaml package `import yaml` would find."""
    sandbox_dir = sandbox_dir or _SANDBOX_DIR
    parts = [f"py:{sys.hexversion:x}"]
    parts += _stat_dir(os.path.join(sandbox_dir, "spec"), "spec/", ".py")
    parts += _stat_files(sandbox_dir, PARSE_MODULES)
    yaml_dir = yaml_dir or _yaml_dir()
    parts += _stat_dir(yaml_dir, "yaml/", (".py", ".so"))
    try:
        with open(os.path.join(yaml_dir, "__init__.py"), "rb") as f:
            parts.append(f"yaml-init:{_digest(f.read())}")
    except OSError:
        parts.append("yaml-init:missing")
    return _digest(";".join(parts).encode())


def _digest(data: bytes) -> str:
    """A short digest for names and keys: BLAKE2b, whose module the seccomp cache loads anyway
    (zlib.crc32 was one more extension module to load: ~0.3 ms of a `sandbox run`)."""
    from _blake2 import blake2b  # hashlib's own; `import hashlib` costs ~3 ms (OpenSSL)

    return blake2b(data, digest_size=8).hexdigest()


def _yaml_dir() -> str:
    """The yaml package's directory as the import system would find it, without importing it
    (PathFinder honours sys.path and its hooks; importlib.util would cost ~4 ms to import)."""
    from _frozen_importlib_external import PathFinder  # importlib.machinery's, without importlib

    spec = PathFinder.find_spec("yaml")
    locations = spec.submodule_search_locations if spec is not None else None
    return locations[0] if locations else ""


def _stat_dir(directory: str, label: str, suffixes: str | tuple[str, ...]) -> list[str]:
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:
        return [f"{label}:missing"]
    parts = []
    for entry in entries:
        if entry.name.endswith(suffixes):
            st = entry.stat()
            parts.append(f"{label}{entry.name}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}")
    return parts


def _stat_files(directory: str, names: tuple[str, ...]) -> list[str]:
    parts = []
    for name in names:
        try:
            st = os.stat(os.path.join(directory, name))
        except OSError:
            parts.append(f"{name}:missing")
            continue
        parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}")
    return parts


def load_pod_cached(path: str, cache_dir: Path) -> Pod:
    """`load_pod_file(path)` (`-`: standard input), answered from the cache when this exact content
    was loaded before. The input is read once, by the one reader (sandbox.spec.source)."""
    return load_pod_and_config_cached(path, cache_dir)[0]


def load_pod_and_config_cached(path: str, cache_dir: Path | None) -> tuple[Pod, Config]:
    """The file's one Pod and the ConfigMaps and Secrets beside it (same-file objects a pod may
    read), from the cache when possible: an entry holds all three, each already validated.
    `cache_dir` None: no cache (the node agent, whose pods are mostly new manifests: writing an
    entry cost it ~0.8 ms and an inode per pod, for a `sandbox run` of the same file later)."""
    loaded = load_cached(path, cache_dir)
    loaded.save()
    return loaded.pod, loaded.config


class Loaded:
    """A manifest loaded through the cache (load_cached): the Pod and its file's ConfigMaps and
    Secrets, and `checks`, the field table's warnings for each `-n` value the pod was accepted
    with (spec/accept.py: its field checks are part of the entry, so a cached run imports neither
    spec/fields.py nor walks the table: ~0.45 ms). `save` writes the entry, on a miss or once new
    checks were remembered; a load without cache has nothing to save."""

    __slots__ = ("checks", "config", "pod", "_entry", "_entry_path", "_dirty")

    def __init__(self, pod: Pod, config: Config, entry: dict[str, Any] | None = None,
                 entry_path: Path | None = None, *, dirty: bool = False) -> None:
        self.pod, self.config = pod, config
        self._entry, self._entry_path, self._dirty = entry, entry_path, dirty  # both None: not cached
        checks = entry.get("checks") if entry is not None else None
        self.checks: dict[str, list[str]] = checks if isinstance(checks, dict) else {}

    def remember(self, key: str, warnings: tuple[str, ...]) -> None:
        if self._entry is not None and self.checks.get(key) != list(warnings):
            self.checks[key] = list(warnings)
            self._dirty = True

    def save(self) -> None:
        if self._dirty and self._entry is not None and self._entry_path is not None:
            self._dirty = False
            self._entry["checks"] = self.checks
            _write_entry(self._entry_path, self._entry)


def load_cached(path: str, cache_dir: Path | None) -> Loaded:
    """load_pod_and_config_cached's work, the entry not written yet (Loaded.save)."""
    raw = read_manifest(path)
    if not raw or len(raw) > MAX_BYTES or cache_dir is None:
        return Loaded(*_load_uncached(raw, source_name(path)))
    key = fingerprint()
    # The key in the name too: two installs of sandbox (a new version next to an old one, an A/B
    # of two trees) each keep their entry instead of re-parsing the other's away on every run.
    entry_path = cache_dir / f"{_digest(raw)}-{len(raw)}-{key}.json"
    cached = _read_entry(entry_path, raw, key)
    if cached is not None:
        return cached
    pod, config = _load_uncached(raw, source_name(path))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:  # the loader accepted it, so this does not happen; nothing cached then
        return Loaded(pod, config)
    from sandbox.spec.convert import to_dict

    entry = {"fingerprint": key, "text": text, "pod": to_dict(pod, "Pod"),
             "config": [_config_to_json(obj) for obj in config]}
    return Loaded(pod, config, entry, entry_path, dirty=True)


def _load_uncached(raw: bytes, source: str) -> tuple[Pod, Config]:
    from sandbox.spec.load import load_manifests_text, load_pod_text

    manifests = load_manifests_text(raw, source)
    if len(manifests.pods) != 1:
        load_pod_text(raw, source)  # raises the loader's own error: no Pod, or more than one
    return manifests.pods[0], (*manifests.config_maps, *manifests.secrets)


def _read_entry(entry_path: Path, raw: bytes, key: str) -> Loaded | None:
    from sandbox.spec.convert import Converter

    try:
        entry = fastjson.loads(entry_path.read_bytes())
        if entry["fingerprint"] != key or entry["text"] != raw.decode("utf-8"):
            return None
        conv = Converter()
        pod: Pod = conv.convert_object(entry["pod"], "Pod", "")
        config = tuple(_config_from_json(conv, item) for item in entry["config"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return None if conv.errors else Loaded(pod, config, entry, entry_path)


def _write_entry(entry_path: Path, entry: dict[str, Any]) -> None:
    """Best effort: a cache that cannot be written only costs the next run its speed-up. Secret
    values are in the entry as they are in its `text`: the directory is 0700, the file 0600."""
    cache_dir = entry_path.parent
    try:
        cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        data = fastjson.dumps(entry)
        tmp = entry_path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, data.encode())
        finally:
            os.close(fd)
        os.replace(tmp, entry_path)
        _evict(cache_dir)
    except (OSError, UnicodeEncodeError):
        return


def _config_to_json(obj: ConfigMap | Secret) -> dict[str, Any]:
    """A ConfigMap or Secret as validated (a Secret's data decoded and stringData merged: its
    values are stored base64 again, binaryData likewise)."""
    import base64

    from sandbox.spec.convert import to_dict
    from sandbox.spec.model import ConfigMap

    out: dict[str, Any] = {"kind": obj.kind, "metadata": to_dict(obj.metadata, "ObjectMeta"),
                           "immutable": obj.immutable}
    if isinstance(obj, ConfigMap):
        out["data"] = dict(obj.data)
        out["binaryData"] = {k: base64.b64encode(v).decode() for k, v in obj.binary_data.items()}
    else:
        out["data"] = {k: base64.b64encode(v).decode() for k, v in obj.data.items()}
        out["type"] = obj.type
    return out


def _config_from_json(conv: Converter, item: dict[str, Any]) -> ConfigMap | Secret:
    import base64
    from types import MappingProxyType

    from sandbox.spec.model import ConfigMap, Secret

    meta = conv.convert_object(item["metadata"], "ObjectMeta", "")
    immutable = item["immutable"]
    if item["kind"] == "ConfigMap":
        binary = {str(k): base64.b64decode(v, validate=True) for k, v in item["binaryData"].items()}
        return ConfigMap(metadata=meta, data=MappingProxyType({str(k): str(v) for k, v in item["data"].items()}),
                         binary_data=MappingProxyType(binary), immutable=immutable)
    if item["kind"] != "Secret":
        raise ValueError(f"kind {item['kind']!r}")
    data = {str(k): base64.b64decode(v, validate=True) for k, v in item["data"].items()}
    return Secret(metadata=meta, data=MappingProxyType(data), type=str(item["type"]), immutable=immutable)


def _evict(cache_dir: Path) -> None:
    """Past MAX_ENTRIES, the oldest quarter goes with the excess. Counted from the names first,
    and stat'ed only then (once per MAX_ENTRIES / 4 writes): a stat of every entry on each write
    cost the node agent ~0.5 ms per new pod once the cache was full."""
    names = [n for n in os.listdir(cache_dir) if n.endswith(".json")]
    if len(names) <= MAX_ENTRIES:
        return
    entries = sorted((cache_dir / n for n in names), key=_mtime)
    for old in entries[:len(entries) - MAX_ENTRIES * 3 // 4]:
        old.unlink(missing_ok=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:  # removed meanwhile by another run's eviction
        return 0.0
