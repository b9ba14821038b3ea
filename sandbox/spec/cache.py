"""A cache of parsed, defaulted and validated Pod manifests, keyed by their exact content.

Loading a manifest means importing PyYAML (~10-15 ms, the largest single cost of `sandbox run`'s
start-up), a safety pre-scan, defaulting and validation. The same file run again (a CI loop, a
demo, a static pod re-read) skips all of that: the cache entry holds the manifest's bytes, checked
byte for byte, and the Pod as `pod_to_dict` renders it, which converts back to an equal Pod (a unit
test checks that round trip over the documentation corpus). An entry is valid only for the spec
code that wrote it (a fingerprint of sandbox/spec). Invalid manifests are never cached.
"""

from __future__ import annotations

import json
import os
import zlib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

    from sandbox.spec.model import Pod

MAX_ENTRIES = 64
MAX_BYTES = 10 * 1024 * 1024  # as sandbox.spec.load (kubelet maxConfigLength); bigger goes there
_SPEC_DIR = os.path.dirname(os.path.abspath(__file__))


def fingerprint() -> str:
    """Changes whenever a module of sandbox/spec changes."""
    parts = []
    for entry in sorted(os.scandir(_SPEC_DIR), key=lambda e: e.name):
        if entry.name.endswith(".py"):
            st = entry.stat()
            parts.append(f"{entry.name}:{st.st_size}:{st.st_mtime_ns}")
    return f"{zlib.crc32(';'.join(parts).encode()):08x}"


def load_pod_cached(path: str, cache_dir: Path) -> Pod:
    """`load_pod_file(path)`, answered from the cache when this exact content was loaded before."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError:
        raw = b""
    if not raw or len(raw) > MAX_BYTES:
        return _load_uncached(path)
    entry_path = cache_dir / f"{zlib.crc32(raw):08x}-{len(raw)}.json"
    cached = _read_entry(entry_path, raw)
    if cached is not None:
        return cached
    pod = _load_uncached(path)
    _write_entry(cache_dir, entry_path, raw, pod)
    return pod


def _load_uncached(path: str) -> Pod:
    from sandbox.spec.load import load_pod_file

    return load_pod_file(path)


def _read_entry(entry_path: Path, raw: bytes) -> Pod | None:
    from sandbox.spec.convert import Converter

    try:
        entry = json.loads(entry_path.read_bytes())
        if entry["fingerprint"] != fingerprint() or entry["text"] != raw.decode("utf-8"):
            return None
        conv = Converter()
        pod: Pod = conv.convert_object(entry["pod"], "Pod", "")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return None if conv.errors else pod


def _write_entry(cache_dir: Path, entry_path: Path, raw: bytes, pod: Pod) -> None:
    """Best effort: a cache that cannot be written only costs the next run its speed-up."""
    from sandbox.spec.convert import to_dict

    try:
        cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        data = json.dumps({"fingerprint": fingerprint(), "text": raw.decode("utf-8"), "pod": to_dict(pod, "Pod")})
        tmp = entry_path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, data.encode())
        finally:
            os.close(fd)
        os.replace(tmp, entry_path)
        _evict(cache_dir)
    except (OSError, UnicodeDecodeError):
        return


def _evict(cache_dir: Path) -> None:
    entries = sorted(cache_dir.glob("*.json"), key=lambda p: p.stat().st_mtime)
    for old in entries[:-MAX_ENTRIES]:
        old.unlink(missing_ok=True)
