"""On-disk image store under `<lib>/images`.

Layout:
    blobs/sha256/<hex>/rootfs/       the image's root filesystem (read-only overlay lower layer)
    blobs/sha256/<hex>/config.json   OCI image config subset: Entrypoint, Cmd, Env, WorkingDir, ...
    refs.json                        canonical name -> "sha256:<hex>"
The store is keyed by digest, never by name (security-reliability.md 3); names only point at it.
No part of a name ever becomes a path: a name is a key of refs.json, and the only path built from
input is `blobs/sha256/<hex>`, from a digest checked to be 64 lowercase hex digits. Names are parsed
with the one reference grammar (`reference.py`); one that is not in it is refused, never cleaned up.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from sandbox.errors import ImageError
from sandbox.images.reference import parse_image_ref
from sandbox.record import record


@record
class ImageConfig:
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()  # "NAME=value"
    working_dir: str = ""
    stop_signal: str = ""
    user: str = ""  # OCI config User: "", "uid", "name", "uid:gid", "name:group"

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ImageConfig:
        cfg = data.get("config") or {}
        if not isinstance(cfg, dict):
            raise ImageError("image config: 'config' is not an object")

        def strings(key: str) -> tuple[str, ...]:
            value = cfg.get(key) or []
            return tuple(str(v) for v in value) if isinstance(value, list) else ()

        return cls(
            entrypoint=strings("Entrypoint"),
            cmd=strings("Cmd"),
            env=strings("Env"),
            working_dir=str(cfg.get("WorkingDir") or ""),
            stop_signal=str(cfg.get("StopSignal") or ""),
            user=str(cfg.get("User") or ""),
        )

    def to_json(self) -> dict[str, object]:
        config: dict[str, object] = {
            "Entrypoint": list(self.entrypoint) or None,
            "Cmd": list(self.cmd) or None,
            "Env": list(self.env),
            "WorkingDir": self.working_dir,
            "StopSignal": self.stop_signal or None,
        }
        if self.user:  # only when set: the digests of images without a User stay as they were
            config["User"] = self.user
        return {"config": config}


@record
class Image:
    name: str  # canonical reference the user's name resolved to
    digest: str  # "sha256:<hex>"
    rootfs: Path
    config: ImageConfig


class ImageStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def refs_file(self) -> Path:
        return self.root / "refs.json"

    def _blob_dir(self, digest: str) -> Path:
        algo, _, hexpart = digest.partition(":")
        if not is_stored_digest(digest):
            raise ImageError(f"bad digest {digest!r}: the store holds sha256 digests only")
        return self.root / "blobs" / algo / hexpart

    def refs(self) -> dict[str, str]:
        try:
            data = json.loads(self.refs_file.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            raise ImageError(f"image store {self.refs_file}: {e}") from e
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def lookup(self, reference: str) -> Image:
        """Resolve a Pod's `image` to a stored image; raises ImageError if it is not there."""
        try:
            ref = parse_image_ref(reference)
        except ValueError as e:
            raise ImageError(str(e)) from None
        digest = ref.digest or self.refs().get(ref.name, "")
        if not digest or (ref.digest and not is_stored_digest(ref.digest)):
            raise ImageError(f"image {reference!r} ({ref.name}) is not in the local store {self.root}")
        blob = self._blob_dir(digest)
        try:
            config = ImageConfig.from_json(json.loads((blob / "config.json").read_text()))
        except FileNotFoundError:
            raise ImageError(f"image {reference!r}: {digest} is missing from {self.root}") from None
        except (OSError, ValueError) as e:
            raise ImageError(f"image {reference!r}: unreadable config: {e}") from e
        return Image(ref.name, digest, blob / "rootfs", config)

    def import_directory(self, source: Path, reference: str, config: ImageConfig) -> Image:
        """Copy a root filesystem tree into the store and point `reference` at it."""
        try:
            ref = parse_image_ref(reference)
        except ValueError as e:
            raise ImageError(str(e)) from None
        if ref.digest:
            raise ImageError(f"image name {reference!r}: a name to give an image takes a tag, not a digest")
        if not source.is_dir():
            raise ImageError(f"{source}: not a directory")
        import shutil
        import tempfile

        digest = "sha256:" + _tree_digest(source, config)
        blob = self._blob_dir(digest)
        if not (blob / "config.json").exists():
            blob.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".import-", dir=blob.parent))
            try:
                shutil.copytree(source, tmp / "rootfs", symlinks=True)
                (tmp / "config.json").write_text(json.dumps(config.to_json(), indent=1))
                os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; an image is readable like a file system
                shutil.rmtree(blob, ignore_errors=True)
                os.rename(tmp, blob)
            except OSError as e:
                shutil.rmtree(tmp, ignore_errors=True)
                raise ImageError(f"import {source}: {e}") from e
        self.tag(digest, ref.name)
        return self.lookup(ref.name)

    def tag(self, digest: str, name: str) -> None:
        """Point the canonical `name` (as `ImageRef.name` writes it, without a digest) at `digest`."""
        self._blob_dir(digest)
        try:
            ref = parse_image_ref(name)
        except ValueError as e:
            raise ImageError(str(e)) from None
        if ref.digest or ref.name != name:
            raise ImageError(f"image name {name!r} is not canonical (expected {ref.name!r}, no digest)")
        refs = self.refs()
        refs[name] = digest
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.refs_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(refs, indent=1, sort_keys=True))
        os.replace(tmp, self.refs_file)


def is_stored_digest(digest: str) -> bool:
    """A digest the store can hold: `sha256:` and 64 lowercase hex digits."""
    algo, _, hexpart = digest.partition(":")
    return algo == "sha256" and len(hexpart) == 64 and all(c in "0123456789abcdef" for c in hexpart)


def _tree_digest(source: Path, config: ImageConfig) -> str:
    """A content digest of the tree (names, modes, link targets, file bytes) and its config."""
    import hashlib

    h = hashlib.sha256(json.dumps(config.to_json(), sort_keys=True).encode())
    for dirpath, dirnames, filenames in os.walk(source):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            h.update(f"{os.path.relpath(path, source)}\0{st.st_mode:o}\0".encode())
            if os.path.islink(path):
                h.update(os.readlink(path).encode())
            elif os.path.isfile(path):
                with open(path, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
    return h.hexdigest()
