#!/usr/bin/env python3
"""Turn a root filesystem directory and a JSON spec into an OCI image layout directory.

Usage: build-image-from-dir.py ROOTFS SPEC.json LAYOUT [--ref REF]

The layout holds `oci-layout`, `index.json` (one manifest, named by the
`org.opencontainers.image.ref.name` annotation) and `blobs/sha256/`: one gzip layer, the config
and the manifest. The build is reproducible: entries sorted by name, one fixed mtime
(SOURCE_DATE_EPOCH, else 0), numeric owners without names, no gzip file name or time, canonical
JSON. Two builds of the same tree give the same manifest digest, which is printed on stdout.

The spec (every key optional except "ref"):
  {"ref": "docker.io/kubeguide/redis-master:latest", "entrypoint": ["..."], "cmd": ["..."],
   "env": ["PATH=/usr/bin:/bin"], "workingDir": "/data", "exposedPorts": ["6379/tcp"],
   "user": "0:0", "labels": {"k": "v"}}

Standard library only: it runs before the project's venv exists. Extended attributes (file
capabilities) are not carried: the trees built by rootfs/ have none.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import platform
import shutil
import stat
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"
# GOARCH names, which the config's "architecture" uses (image-spec config.md).
GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le",
          "s390x": "s390x", "riscv64": "riscv64"}
SPEC_KEYS = {"ref", "entrypoint", "cmd", "env", "workingDir", "exposedPorts", "user", "labels"}


class SpecError(Exception):
    """A spec or tree the layout cannot be built from; the message names the key or path."""


@dataclass(frozen=True, slots=True)
class ImageSpec:
    ref: str
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    working_dir: str = ""
    exposed_ports: list[str] = field(default_factory=list)
    user: str = ""
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Blob:
    digest: str  # "sha256:<hex>"
    size: int


def load_spec(raw: object) -> ImageSpec:
    """Check the spec's shape (unknown keys refused, so a typo is not silently ignored)."""
    if not isinstance(raw, dict):
        raise SpecError("spec: must be a JSON object")
    unknown = sorted(set(raw) - SPEC_KEYS)
    if unknown:
        raise SpecError(f"spec: unknown keys {unknown}, expected some of {sorted(SPEC_KEYS)}")
    ref = raw.get("ref")
    if not isinstance(ref, str) or not ref:
        raise SpecError("spec.ref: must be a non-empty string")
    lists = {key: _string_list(raw, key) for key in ("entrypoint", "cmd", "env", "exposedPorts")}
    for i, item in enumerate(lists["env"]):
        if "=" not in item:
            raise SpecError(f"spec.env[{i}]: must be NAME=VALUE, got {item!r}")
    for i, port in enumerate(lists["exposedPorts"]):
        number, _, proto = port.partition("/")
        if not number.isdigit() or not 1 <= int(number) <= 65535 or proto not in ("tcp", "udp", "sctp"):
            raise SpecError(f"spec.exposedPorts[{i}]: must be PORT/tcp|udp|sctp, got {port!r}")
    labels = raw.get("labels", {})
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        raise SpecError("spec.labels: must be an object of strings")
    return ImageSpec(ref=ref, entrypoint=lists["entrypoint"], cmd=lists["cmd"], env=lists["env"],
                     working_dir=_string(raw, "workingDir"), exposed_ports=lists["exposedPorts"],
                     user=_string(raw, "user"), labels=labels)


def _string(raw: dict[str, object], key: str) -> str:
    value = raw.get(key, "")
    if not isinstance(value, str):
        raise SpecError(f"spec.{key}: must be a string")
    return value


def _string_list(raw: dict[str, object], key: str) -> list[str]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SpecError(f"spec.{key}: must be a list of strings")
    return list(value)


class _Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...
    def flush(self) -> None: ...


class _HashingWriter:
    """A write-only file object that hashes and counts what passes through it."""

    def __init__(self, out: _Sink) -> None:
        self.out = out
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.out.write(data)

    def flush(self) -> None:
        self.out.flush()


def walk_sorted(root: Path) -> list[Path]:
    """Every path below root (root excluded), parents before children, siblings by byte order."""
    found: list[Path] = []
    with os.scandir(root) as entries:
        names = sorted((e.name for e in entries), key=os.fsencode)
    for name in names:
        path = root / name
        found.append(path)
        if path.is_dir() and not path.is_symlink():
            found.extend(walk_sorted(path))
    return found


def tar_entry(root: Path, path: Path, mtime: int, seen: dict[tuple[int, int], str]) -> tarfile.TarInfo:
    """One normalised header: numeric owner, fixed mtime, hard links to the first name seen."""
    st = path.lstat()
    info = tarfile.TarInfo(path.relative_to(root).as_posix())
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid, info.uname, info.gname = st.st_uid, st.st_gid, "", ""
    info.mtime = mtime
    key = (st.st_dev, st.st_ino)
    if stat.S_ISREG(st.st_mode) and st.st_nlink > 1 and key in seen:
        info.type, info.linkname = tarfile.LNKTYPE, seen[key]
    elif stat.S_ISREG(st.st_mode):
        info.type, info.size = tarfile.REGTYPE, st.st_size
        seen.setdefault(key, info.name)
    elif stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(st.st_mode):
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif stat.S_ISFIFO(st.st_mode):
        info.type = tarfile.FIFOTYPE
    else:
        raise SpecError(f"{path}: a socket or unknown file type cannot go into a layer")
    return info


def write_layer(root: Path, blobs: Path, mtime: int) -> tuple[Blob, str]:
    """Write the gzip layer blob; return it and the diff_id (digest of the uncompressed tar)."""
    fd, tmp_name = tempfile.mkstemp(dir=blobs, prefix=".layer-")
    with os.fdopen(fd, "wb") as raw:
        compressed = _HashingWriter(raw)
        # filename="" and mtime=0 keep the gzip header free of anything that changes per build.
        with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0, compresslevel=6) as gz:
            plain = _HashingWriter(gz)
            with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
                seen: dict[tuple[int, int], str] = {}
                for path in walk_sorted(root):
                    info = tar_entry(root, path, mtime, seen)
                    if info.type == tarfile.REGTYPE:
                        with path.open("rb") as content:
                            tar.addfile(info, content)
                    else:
                        tar.addfile(info)
    blob = Blob("sha256:" + compressed.sha256.hexdigest(), compressed.size)
    os.rename(tmp_name, blobs / blob.digest.removeprefix("sha256:"))
    return blob, "sha256:" + plain.sha256.hexdigest()


def write_json_blob(blobs: Path, document: dict[str, object]) -> Blob:
    data = canonical_json(document)
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return Blob("sha256:" + digest, len(data))


def canonical_json(document: dict[str, object]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def image_config(spec: ImageSpec, diff_id: str, created: str) -> dict[str, object]:
    """The OCI image config (image-spec config.md); empty fields left out as docker does."""
    run: dict[str, object] = {}
    for key, value in (("Entrypoint", spec.entrypoint), ("Cmd", spec.cmd), ("Env", spec.env),
                       ("WorkingDir", spec.working_dir), ("User", spec.user), ("Labels", spec.labels)):
        if value:
            run[key] = value
    if spec.exposed_ports:
        run["ExposedPorts"] = {port: {} for port in spec.exposed_ports}
    machine = platform.machine()
    return {
        "created": created,
        "architecture": GOARCH.get(machine, machine),
        "os": "linux",
        "config": run,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": created, "created_by": "rootfs/build-image-from-dir.py"}],
    }


def build_layout(root: Path, spec: ImageSpec, layout: Path, epoch: int) -> str:
    """Build the layout at `layout` (which must not exist); return the manifest digest."""
    if layout.exists():
        raise SpecError(f"{layout}: already exists; remove it first")
    if not root.is_dir():
        raise SpecError(f"{root}: not a directory")
    # Built beside the target and renamed, so a failed build never leaves a half layout there.
    work = Path(tempfile.mkdtemp(dir=layout.parent, prefix=f".{layout.name}-"))
    try:
        blobs = work / "blobs" / "sha256"
        blobs.mkdir(parents=True)
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
        layer, diff_id = write_layer(root, blobs, epoch)
        config = write_json_blob(blobs, image_config(spec, diff_id, created))
        manifest = write_json_blob(blobs, {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": {"mediaType": MEDIA_CONFIG, "digest": config.digest, "size": config.size},
            "layers": [{"mediaType": MEDIA_LAYER, "digest": layer.digest, "size": layer.size}],
        })
        index = {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": [{
            "mediaType": MEDIA_MANIFEST, "digest": manifest.digest, "size": manifest.size,
            "annotations": {REF_NAME: spec.ref}}]}
        (work / "index.json").write_bytes(canonical_json(index))
        (work / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
        for path in [work, *walk_sorted(work)]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        os.rename(work, layout)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return manifest.digest


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rootfs", type=Path)
    parser.add_argument("spec", type=Path, help="JSON spec (see the module's docstring)")
    parser.add_argument("layout", type=Path, help="the OCI layout directory to create")
    parser.add_argument("--ref", help="reference name, overriding the spec's")
    args = parser.parse_args(argv)
    try:
        raw = json.loads(args.spec.read_text())
        if args.ref and isinstance(raw, dict):
            raw["ref"] = args.ref
        epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
        digest = build_layout(args.rootfs, load_spec(raw), args.layout.absolute(), epoch)
    except (SpecError, OSError, ValueError) as err:
        print(f"build-image-from-dir: {err}", file=sys.stderr)
        return 2
    print(digest)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
