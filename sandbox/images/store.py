"""On-disk image store under `<lib>/images`, with OCI image layout semantics.

Layout:
    blobs/sha256/<hex>              content-addressed blobs: manifests, configs, layer archives
    layers/sha256/<diff-id hex>/    each layer unpacked once (an overlay lowerdir), shared by every
                                    image that has it; made in `layers/.tmp-*` and renamed into place,
                                    several layers at once (unpack_layers); layers/ is marked a top
                                    directory for ext4's inode allocator (topdir.py)
    l/<short id>                    a short link to each layer, `../layers/sha256/<hex>` (Docker's
                                    overlay2 `l/`): overlay's lowerdirs name these, relative to l/,
                                    so a mount's one page of options holds hundreds of layers
    ingest/                         partial blobs, renamed into blobs/ once their digest checked
    refs.json                       canonical name -> manifest digest ("sha256:<hex>")
An image is its manifest: a config blob (ImageConfig, rootfs.diff_ids) and layer blobs; a container
mounts the image's unpacked layers as overlay lowerdirs, top first. Images of the first store
format (`blobs/sha256/<hex>/rootfs/` beside a `config.json`) are still read, as one layer.

The store is keyed by digest, never by name (security-reliability.md 3); names only point at it.
No part of a name ever becomes a path: a name is a key of refs.json, and the only paths built from
input are `blobs/sha256/<hex>` and `layers/sha256/<hex>`, from digests checked to be 64 lowercase
hex digits. Every blob's digest is checked as it is written (and a manifest's layers against its
config's diff_ids as they are unpacked): a corrupt blob never gets a name.
"""

from __future__ import annotations

import _thread
import os
from pathlib import Path

from sandbox import fastjson
from sandbox.errors import ImageError
from sandbox.images import goarch
from sandbox.images.reference import parse_image_ref
from sandbox.record import Record
from sandbox.rootfs.plan import OVERLAY_MAX_LOWER

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from typing import Any, BinaryIO

    from sandbox.images.lease import Held

    LayerRef = tuple[dict[str, Any], str]  # a manifest's layer descriptor and the layer's diff_id

MANIFEST_OCI = "application/vnd.oci.image.manifest.v1+json"
MANIFEST_DOCKER = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_OCI = "application/vnd.oci.image.config.v1+json"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
MAX_JSON_BLOB = 4 << 20  # manifests and configs: far past any real one, read whole
LINK_NAME_LENGTHS = (6, 12, 26, 52)  # base32 of a sha256: 52 characters
# Layers unpacked at once: one more than the CPUs (at most 4, at least 2). A layer's own work is
# one stream, and a pull's layers are not even: with one per CPU the last big layer of the
# benchmark image (1 + 5 layers) ran alone for its last ~30 ms while the other CPU only served
# the registry; a third thread on 2 CPUs keeps both busy to the end. A pull of that image from
# the loopback registry, 2 -> 3 workers: 195.4 -> 184.6, 239.0 -> 231.2, 167.0 -> 160.6 ms
# median (20, 40, 40 interleaved rounds; 4 workers even with 3). More than the CPUs was slower
# with extract.py (2 CPUs: 1 worker 515 ms, 2: 430, 3: 465, 4: 515), whose layers held the GIL.
LEASES = "leases"  # <images>/leases/: one file per live lease (images/lease.py)
PULLING = "pull"  # a lease's first line when a pull or an import writes under it
LAYER_WORKERS = max(2, min(4, (os.cpu_count() or 1) + 1))


class ImageConfig(Record):
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


class Image(Record):
    name: str  # canonical reference the user's name resolved to
    digest: str  # "sha256:<hex>": the manifest's (a first-format image: its tree's)
    layers: tuple[Path, ...]  # unpacked layers, bottom first
    config: ImageConfig
    links: tuple[Path, ...] = ()  # the layers' short links in l/, bottom first (none: first format)

    @classmethod
    def pending(cls, reference: str) -> Image:
        """The stand-in for an image whose pull failed before the pod started: no layers (the
        container waits, ErrImagePull, until a retried pull replaces it)."""
        return cls(reference, "", (), ImageConfig())

    @property
    def rootfs(self) -> Path:
        """The top layer (the whole tree of a one-layer image)."""
        return self.layers[-1]

    @property
    def image_id(self) -> str:
        """containerStatuses[].imageID: `repository@digest`, as containerd reports it."""
        if not self.layers:
            return ""  # not pulled yet
        try:
            ref = parse_image_ref(self.name)
        except ValueError:
            return self.digest
        repository = f"{ref.registry}/{ref.repository}" if ref.registry else ref.repository
        return f"{repository}@{self.digest}"

    @property
    def lowerdirs(self) -> str:
        """overlayfs `lowerdir=`: the top layer first, through the layers' short links (which
        rootfs.plan.fit_overlays makes relative to their directory)."""
        return ":".join(str(p) for p in reversed(self.links or self.layers))


# (store root, reference) -> (refs.json's bytes when looked up, the image): lookup()
_looked_up: dict[tuple[str, str], tuple[bytes, Image]] = {}


class ImageStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def refs_file(self) -> Path:
        return self.root / "refs.json"

    def blob_path(self, digest: str) -> Path:
        return self.root / "blobs" / "sha256" / _hex(digest)

    def layer_path(self, diff_id: str) -> Path:
        return self.root / "layers" / "sha256" / _hex(diff_id)

    @property
    def links_dir(self) -> Path:
        return self.root / "l"

    def layer_link(self, diff_id: str) -> Path:
        """The short link to the unpacked layer `diff_id`, made if missing (when the layer is first
        used; a lost one is made again). Its name is the layer's digest in base32 cut to 6
        characters (7 bytes of mount options a layer); a name held by another link moves on to a
        longer cut. A link, once made, is never changed (only `prune` removes it): a name always
        means the layer it was made for, and a stale one simply stays taken until prune."""
        target = f"../layers/sha256/{_hex(diff_id)}"
        name = base32(bytes.fromhex(_hex(diff_id)))
        for length in LINK_NAME_LENGTHS:
            link = self.links_dir / name[:length]
            try:
                if os.readlink(link) == target:
                    return link
                continue  # another layer's name
            except FileNotFoundError:
                pass
            except OSError as e:
                raise ImageError(f"layer link {link}: {e.strerror}") from None
            try:
                self.links_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
                os.symlink(target, link)  # atomic: exactly one of two racing makers gets the name
                return link
            except FileExistsError:
                if os.readlink(link) == target:
                    return link
            except OSError as e:
                raise ImageError(f"layer link {link}: {e.strerror}") from None
        raise ImageError(f"layer {diff_id}: every short link name is taken in {self.links_dir}")

    def refs(self, raw: bytes | None = None) -> dict[str, str]:
        """Names -> manifest digests; `raw`: refs.json's bytes, read already."""
        try:
            data = fastjson.loads(self.refs_file.read_bytes() if raw is None else raw)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            raise ImageError(f"image store {self.refs_file}: {e}") from e
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def lookup(self, reference: str) -> Image:
        """Resolve a Pod's `image` to a stored image; raises ImageError if it is not there.

        Remembered per process while refs.json holds the same bytes (names -> digests; its
        stat would not do: a rewrite within one clock tick can reuse the inode with the same
        size): a node agent looks each container's image up twice per start (the pod's
        preparation, then the pull policy), 0.26 ms each from the files against ~0.02 ms for
        reading refs.json. An image's manifest and layers never change under its digest, and
        prune removes only what no reference names."""
        try:
            refs = self.refs_file.read_bytes()
        except OSError:
            return self._lookup(reference)
        key = (str(self.root), reference)
        known = _looked_up.get(key)
        if known is not None and known[0] == refs:
            return known[1]
        image = self._lookup(reference, refs)
        _looked_up[key] = (refs, image)
        return image

    def _lookup(self, reference: str, refs: bytes | None = None) -> Image:
        try:
            ref = parse_image_ref(reference)
        except ValueError as e:
            raise ImageError(str(e)) from None
        digest = ref.digest or self.refs(refs).get(ref.name, "")
        if not digest or (ref.digest and not is_stored_digest(ref.digest)):
            raise ImageError(f"image {reference!r} ({ref.name}) is not in the local store {self.root}")
        blob = self.blob_path(digest)
        if blob.is_dir():
            return self._first_format(reference, ref.name, digest, blob)
        try:
            manifest = self.read_json(digest)
        except ImageError as e:
            raise ImageError(f"image {reference!r}: {e}") from None
        return self._image(ref.name, digest, manifest)

    def _first_format(self, reference: str, name: str, digest: str, blob: Path) -> Image:
        try:
            config = ImageConfig.from_json(fastjson.loads((blob / "config.json").read_bytes()))
        except FileNotFoundError:
            raise ImageError(f"image {reference!r}: {digest} is missing from {self.root}") from None
        except (OSError, ValueError) as e:
            raise ImageError(f"image {reference!r}: unreadable config: {e}") from e
        return Image(name, digest, (blob / "rootfs",), config)

    def _image(self, name: str, digest: str, manifest: dict[str, Any]) -> Image:
        config_json, layers = self.layer_plan(name, digest, manifest)
        self.unpack_layers(layers)
        paths = tuple(self.layer_path(diff_id) for _, diff_id in layers)
        links = tuple(self.layer_link(diff_id) for _, diff_id in layers)
        return Image(name, digest, paths, ImageConfig.from_json(config_json), links)

    def layer_plan(self, name: str, digest: str, manifest: dict[str, Any]) -> tuple[Any, list[LayerRef]]:
        """The parsed config of manifest `digest` (stored already) and its layers bottom first,
        each a layer descriptor with the diff_id the config gives it; ImageError when they do not
        pair up or overlayfs could not stack them."""
        config_desc = manifest.get("config")
        layer_descs = manifest.get("layers")
        if not isinstance(config_desc, dict) or not isinstance(layer_descs, list):
            raise ImageError(f"image {name}: manifest {digest} has no config or layers")
        config_json = self.read_json(str(config_desc.get("digest", "")))
        diff_ids = (config_json.get("rootfs") or {}).get("diff_ids") if isinstance(config_json, dict) else None
        if not isinstance(diff_ids, list) or len(diff_ids) != len(layer_descs):
            raise ImageError(f"image {name}: its config lists {len(diff_ids or [])} layers, its manifest "
                             f"{len(layer_descs)}")
        if len(diff_ids) > OVERLAY_MAX_LOWER:
            raise ImageError(f"image {name}: {len(diff_ids)} layers, more than overlayfs stacks "
                             f"({OVERLAY_MAX_LOWER})")
        if not diff_ids:
            raise ImageError(f"image {name}: no layers")
        for desc in layer_descs:
            if not isinstance(desc, dict):
                raise ImageError(f"image {name}: manifest {digest} has a malformed layer descriptor")
        return config_json, [(desc, str(diff_id)) for desc, diff_id in zip(layer_descs, diff_ids)]

    def unpack_layers(self, layers: list[LayerRef], fetch: Callable[[dict[str, Any]], None] | None = None,
                      stream: Callable[[dict[str, Any]], Iterator[bytes]] | None = None) -> None:
        """Unpack each layer not unpacked yet, several at once (one layer a thread, up to
        LAYER_WORKERS): inflating, hashing and the kernel's file creation release the GIL, so
        layers use every CPU. `fetch(desc)`, when given, first stores the layer's blob: a pull's
        downloads then overlap the unpacking of the layers before them. With `stream(desc)` too
        (the blob's pieces as they arrive) a layer is unpacked while it downloads (pull_layer).
        The first error is raised once every running layer has ended (each removes its own
        partial directory)."""
        # keyed by blob and layer: two blobs of one layer (gzip and zstd) are both fetched
        wanted = {(str(desc.get("digest", "")), diff_id): (desc, diff_id) for desc, diff_id in layers
                  if fetch is not None or not self.layer_path(diff_id).is_dir()}
        if not wanted:
            return  # a container start from a stored image: nothing more is imported
        self._layers_top()

        def task(desc: dict[str, Any], diff_id: str) -> None:
            if fetch is not None and stream is not None:
                self.pull_layer(desc, diff_id, fetch, stream)
                return
            if fetch is not None:
                fetch(desc)
            self.unpacked(desc, diff_id)

        _run_in_threads([_bound(task, desc, diff_id) for desc, diff_id in wanted.values()], LAYER_WORKERS)

    def pull_layers(self, name: str, digest: str, manifest: dict[str, Any], config_stored: Callable[[], None],
                    fetch: Callable[[dict[str, Any]], None], stream: Callable[[dict[str, Any]], Iterator[bytes]]) -> None:
        """unpack_layers for a pull whose config is still downloading: each layer starts to
        download and unpack at once (the config's diff_ids are needed only to place it), and
        `config_stored()` (which waits for the config's blob, raising its error) is called by the
        first layer that needs them. Layers whose blob is stored already, or that do not stream,
        take unpack_layers's path once the config is in. Starting the layers with the manifest
        instead of after the config's round trip: see pull.pull."""
        layer_descs = manifest.get("layers")
        if not isinstance(layer_descs, list) or not all(isinstance(d, dict) for d in layer_descs):
            raise ImageError(f"image {name}: manifest {digest} has a malformed layers list")
        from sandbox.images.threads import Lock

        self._layers_top()
        planned: list[list[LayerRef]] = []
        planning = Lock()

        def diff_id(index: int) -> str:
            with planning:  # one thread waits for the config and reads it; the others then
                if not planned:
                    config_stored()
                    planned.append(self.layer_plan(name, digest, manifest)[1])
            return planned[0][index][1]

        def task(index: int, desc: dict[str, Any]) -> None:
            from sandbox.images.layerbase import streamable

            layer_digest = str(desc.get("digest", ""))
            media_type = str(desc.get("mediaType", LAYER_TAR))
            if self.blob_path(layer_digest).is_file() or not streamable(media_type):
                self.pull_layer(desc, diff_id(index), fetch, stream)
                return
            with _BlobLock(self.root / "ingest", layer_digest) as lock:
                if not self.blob_path(layer_digest).is_file():
                    partial_path = lock.partial.with_name(lock.partial.name + ".partial")
                    self._unpack_streamed(desc, lambda: diff_id(index), media_type, stream(desc), partial_path)
            self.unpacked(desc, diff_id(index))  # unpacked already, unless another pull only fetched the blob

        # one task per blob (a blob listed twice is unpacked once; add_image checks every layer)
        first = {str(desc.get("digest", "")): (i, desc) for i, desc in reversed(list(enumerate(layer_descs)))}
        _run_in_threads([_bound(task, i, desc) for i, desc in sorted(first.values(), key=lambda e: e[0])],
                        LAYER_WORKERS)

    def _layers_top(self) -> None:
        """<images>/layers made, and marked for the Orlov allocator (topdir.py) before layers
        are unpacked below it."""
        from sandbox.topdir import mark_top_directory

        parent = self.root / "layers"
        parent.mkdir(parents=True, exist_ok=True)
        mark_top_directory(parent)

    def holds_layers(self, name: str, digest: str, manifest: dict[str, Any], config: str) -> bool:
        """Whether the config blob `config` of manifest `digest` is stored and so is every layer, its
        blob and its unpacked tree: a pull of an image stored already (imagePullPolicy Always, a
        re-pull) then starts no thread (see pull.pull)."""
        if not self.blob_path(config).is_file():
            return False
        return all(self.blob_path(str(desc.get("digest", ""))).is_file() and self.layer_path(diff_id).is_dir()
                   for desc, diff_id in self.layer_plan(name, digest, manifest)[1])

    def read_json(self, digest: str) -> Any:
        """A stored manifest or config, parsed (its digest was checked when it was stored)."""
        try:
            with open(self.blob_path(digest), "rb") as f:
                data = f.read(MAX_JSON_BLOB + 1)
        except FileNotFoundError:
            raise ImageError(f"blob {digest} is missing from {self.root}") from None
        except OSError as e:
            raise ImageError(f"blob {digest}: {e}") from None
        if len(data) > MAX_JSON_BLOB:
            raise ImageError(f"blob {digest}: larger than {MAX_JSON_BLOB} bytes")
        try:
            return fastjson.loads(data)
        except ValueError as e:
            raise ImageError(f"blob {digest}: not JSON: {e}") from None

    # --- writing ---------------------------------------------------------------------------------

    def ingest(self, chunks: Iterable[bytes], expected: str | None = None) -> str:
        """Store a blob from `chunks`; returns its digest. With `expected`, a blob whose content has
        another digest is refused (ImageError) and nothing is kept. Written under ingest/ and
        renamed into blobs/: a kill mid-write leaves only a partial file in ingest/ (prune)."""
        if expected is not None:
            _hex(expected)
            if self.blob_path(expected).is_file():
                for _ in chunks:  # already stored: the source is drained, not kept
                    pass
                return expected
        from sandbox.images.hashes import new  # after the check: a pull of a stored image needs no OpenSSL

        ingest = self.root / "ingest"
        ingest.mkdir(parents=True, exist_ok=True)
        fd, tmp = _new_file(ingest, "tmp")
        h = new("sha256")
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in chunks:
                    h.update(chunk)
                    f.write(chunk)
            digest = "sha256:" + h.hexdigest()
            if expected is not None and digest != expected:
                raise ImageError(f"blob digest mismatch: expected {expected}, got {digest}")
            target = self.blob_path(digest)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        return digest

    def fetch_into(self, digest: str, fetch: Callable[[Path], None]) -> None:
        """Store blob `digest` through `fetch(path)`, which writes the verified blob at `path` (the
        registry client checks the digest as it streams). One download per blob across processes:
        a lock per digest, and a blob already stored is not fetched again."""
        target = self.blob_path(digest)
        if target.is_file():
            return
        with _BlobLock(self.root / "ingest", digest) as lock:
            if target.is_file():
                return  # another pull fetched it while we waited
            fetch(lock.partial)
            self._store_blob(lock.partial, digest)

    def _store_blob(self, partial: Path, digest: str) -> None:
        """A verified blob renamed into blobs/."""
        target = self.blob_path(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(partial, 0o644)
        os.replace(partial, target)

    def pull_layer(self, desc: dict[str, Any], diff_id: str, fetch: Callable[[dict[str, Any]], None],
                   stream: Callable[[dict[str, Any]], Iterator[bytes]]) -> None:
        """Layer `desc` stored and unpacked, from the registry's pieces as they arrive
        (streamed.py): the blob is written as it passes into the extractor, renamed into blobs/
        once its digest matched, the layer renamed into layers/ once its diff_id matched too.
        One download per blob across processes (the lock of fetch_into): a pull that waited finds
        the blob stored and the layer unpacked. `fetch(desc)` stores the blob alone where the
        layer is unpacked already (the store keeps every blob: export, prune) or its media type
        does not stream (zstd), and it is then unpacked from the stored blob."""
        from sandbox.images.layerbase import streamable

        digest = str(desc.get("digest", ""))
        media_type = str(desc.get("mediaType", LAYER_TAR))
        if self.blob_path(digest).is_file() or self.layer_path(diff_id).is_dir() or not streamable(media_type):
            fetch(desc)
            self.unpacked(desc, diff_id)
            return
        with _BlobLock(self.root / "ingest", digest) as lock:
            if not self.blob_path(digest).is_file():
                # named as the registry names a blob it writes to a file (RegistryClient.fetch_blob)
                partial = lock.partial.with_name(lock.partial.name + ".partial")
                self._unpack_streamed(desc, diff_id, media_type, stream(desc), partial)
        self.unpacked(desc, diff_id)  # unpacked already, unless another pull only fetched the blob

    def _unpack_streamed(self, desc: dict[str, Any], diff_id: str | Callable[[], str], media_type: str,
                         chunks: Iterator[bytes], partial: Path) -> None:
        """Unpack a layer from its blob's pieces into a `.tmp-` directory, store the blob once its
        digest matched, then the layer once its content is `diff_id` (a callable: asked only
        then, pull_layers's config may still be downloading)."""
        from sandbox.images.streamed import unpack_streamed

        digest = str(desc.get("digest", ""))
        parent = self.root / "layers"
        parent.mkdir(parents=True, exist_ok=True)
        tmp = _new_directory(parent, ".tmp-")
        try:
            got = unpack_streamed(chunks, media_type, partial, tmp)
            expected = diff_id if isinstance(diff_id, str) else diff_id()
            self._store_blob(partial, digest)  # its digest matched: the download ended
            self._place_layer(tmp, got, expected, digest)
        except BaseException:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
            partial.unlink(missing_ok=True)
            raise

    def remove(self, name: str) -> str:
        """Drop the name `name` (canonical, or as a user writes it); returns the digest it named.
        The blobs and layers stay until `prune`."""
        try:
            canonical = parse_image_ref(name).name
        except ValueError as e:
            raise ImageError(str(e)) from None
        refs = self.refs()
        digest = refs.pop(canonical, None)
        if digest is None:
            raise ImageError(f"image {name!r} ({canonical}) is not in the local store")
        self._write_refs(refs)
        return digest

    def prune(self, mounted: Iterable[str] = (), held: Held | None = None,
              trash: list[Path] | None = None) -> list[Path]:
        """Remove every blob, unpacked layer and ingest leftover no name reaches (a pull killed
        half-way, a removed image), but not the layers in `mounted` (hex of their diff_ids: the
        running containers' layers, rootfs/mounted.py) and their short links, nor what the live
        leases hold (`held`, images/lease.py: read under the leases' exclusive lock, which the
        caller holds through the removal). Returns what was removed. With `trash`, directories
        are only renamed out of the store, into a `.tmp-` directory appended to it for the caller
        to delete once it let the lock go: a runtime's lookup then waits for prune's decisions,
        not for the deletion of its layers' files."""
        import shutil

        def remove(entry: Path) -> None:
            if not entry.is_dir() or entry.is_symlink():
                entry.unlink()
            elif trash is None:
                shutil.rmtree(entry)
            else:
                if not trash:
                    trash.append(_new_directory(self.root / "layers", ".tmp-pruned-"))
                os.rename(entry, trash[0] / f"{entry.parent.parent.name}-{entry.name}")

        held = held if held is not None else _no_leases()
        keep_blobs: set[str] = set()
        keep_layers: set[str] = set(mounted)
        for digest in set(self.refs().values()) | held.digests:
            blobs, layers, _ = self._reach(digest)
            keep_blobs |= blobs
            keep_layers |= layers
        # A pull in flight writes its manifest, then its layers' blobs, its config and its layers:
        # what it has not stored yet cannot say what it will store, so all of that kind stays.
        every_blob = every_layer = False
        for manifests in held.pulls:
            missing = {self._reach(digest)[2] for digest in manifests} if manifests else {"manifest"}
            every_blob = every_blob or "manifest" in missing
            every_layer = every_layer or bool(missing - {""})
        removed = [] if every_layer else self._prune_links(keep_layers)  # first: a kill half-way leaves no dangling link
        for kind, keep, every in (("blobs", keep_blobs, every_blob), ("layers", keep_layers, every_layer)):
            directory = self.root / kind / "sha256"
            for entry in sorted(directory.iterdir()) if directory.is_dir() and not every else []:
                if entry.name not in keep:
                    remove(entry)
                    removed.append(entry)
        if held.writing:
            return removed  # ingest files and `.tmp-` layers are a live pull's work, not leftovers
        for leftover in sorted((self.root / "layers").glob(".tmp-*")) + sorted((self.root / "ingest").glob("*")):
            if trash and leftover == trash[0]:
                continue
            shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)
            removed.append(leftover)
        return removed

    def _reach(self, digest: str) -> tuple[set[str], set[str], str]:
        """The blobs and layers (hex) manifest `digest` reaches, and which of its documents is not
        stored ("manifest", "config"; "" when both are)."""
        blobs, layers = {_hex(digest)}, set[str]()
        if self.blob_path(digest).is_dir():
            return blobs, layers, ""  # a first-format image: one directory
        try:
            manifest = self.read_json(digest)
        except ImageError:
            return blobs, layers, "manifest"
        try:
            config_digest = str(manifest["config"]["digest"])
            blobs.add(_hex(config_digest))
            blobs.update(_hex(str(d["digest"])) for d in manifest["layers"])
        except (ImageError, KeyError, TypeError):
            return blobs, layers, ""  # malformed: nothing more can belong to it
        try:
            config = self.read_json(config_digest)
        except ImageError:
            return blobs, layers, "config"
        try:
            layers.update(_hex(str(d)) for d in config["rootfs"]["diff_ids"])
        except (ImageError, KeyError, TypeError):
            pass
        return blobs, layers, ""

    def _prune_links(self, keep_layers: set[str]) -> list[Path]:
        """Remove the short links to layers that go (or are gone)."""
        removed = []
        for link in sorted(self.links_dir.iterdir()) if self.links_dir.is_dir() else []:
            try:
                target = os.readlink(link)
            except OSError:
                continue  # not a link: nothing the store made
            if target.removeprefix("../layers/sha256/") not in keep_layers:
                link.unlink(missing_ok=True)
                removed.append(link)
        return removed

    def put_json(self, obj: object) -> str:
        import json  # sort_keys (fastjson has no key order); json's import is off `sandbox run`'s path

        return self.ingest([json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()])

    def unpacked(self, desc: dict[str, Any], diff_id: str) -> Path:
        """The layer `desc` (a manifest's layer descriptor) unpacked, once: the first image that
        needs it unpacks it from its blob, checking the uncompressed stream against `diff_id`."""
        target = self.layer_path(diff_id)
        if target.is_dir():
            return target
        digest = str(desc.get("digest", ""))
        blob = self.blob_path(digest)
        if not blob.is_file():
            raise ImageError(f"layer {digest} is missing from {self.root}")
        parent = self.root / "layers"
        parent.mkdir(parents=True, exist_ok=True)
        tmp = _new_directory(parent, ".tmp-")
        try:
            self._place_layer(tmp, _unpack_blob(blob, str(desc.get("mediaType", LAYER_TAR)), tmp), diff_id, digest)
        except BaseException:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return target

    def _place_layer(self, tmp: Path, got: str, diff_id: str, digest: str) -> None:
        """The unpacked directory `tmp` renamed into layers/ if its content is `diff_id`."""
        if got != diff_id:
            raise ImageError(f"layer {digest}: uncompressed content is {got}, its config says {diff_id}")
        os.chmod(tmp, 0o755)
        target = self.layer_path(diff_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():  # another pull unpacked it meanwhile: keep theirs
                raise
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)

    def add_image(self, name: str, manifest_digest: str) -> Image:
        """Name a stored manifest (its config and layers stored too), unpacking what is needed;
        `name` "" (a pull by digest) names nothing."""
        image = self._image(name, manifest_digest, self.read_json(manifest_digest))
        if name:
            self.tag(manifest_digest, name)
        return image

    def import_directory(self, source: Path, reference: str, config: ImageConfig) -> Image:
        """A root filesystem tree as a one-layer image: the tree is archived (an uncompressed tar,
        entries sorted, owners numeric) into a layer blob, and the layer unpacked from it as a
        pulled one is."""
        try:
            ref = parse_image_ref(reference)
        except ValueError as e:
            raise ImageError(str(e)) from None
        if ref.digest:
            raise ImageError(f"image name {reference!r}: a name to give an image takes a tag, not a digest")
        if not source.is_dir():
            raise ImageError(f"{source}: not a directory")
        try:
            layer = self.ingest(_tar_chunks(source))
        except OSError as e:
            raise ImageError(f"import {source}: {e}") from e
        size = self.blob_path(layer).stat().st_size
        config_json = {**config.to_json(), "architecture": goarch(), "os": "linux",
                       "rootfs": {"type": "layers", "diff_ids": [layer]}}
        config_digest = self.put_json(config_json)
        config_desc = {"mediaType": CONFIG_OCI, "digest": config_digest,
                       "size": self.blob_path(config_digest).stat().st_size}
        manifest = {"schemaVersion": 2, "mediaType": MANIFEST_OCI, "config": config_desc,
                    "layers": [{"mediaType": LAYER_TAR, "digest": layer, "size": size}]}
        return self.add_image(ref.name, self.put_json(manifest))

    def image_id(self, digest: str) -> str:
        """The ID of the image whose manifest is `digest`, as the CRI's Image.id and crictl show
        it: its config's digest (the OCI image ID, which containerd and Docker use too). A
        first-format image, which has no config blob, is its tree's digest; "" when the manifest
        is unreadable."""
        if self.blob_path(digest).is_dir():
            return digest
        try:
            config = str(self.read_json(digest)["config"]["digest"])
        except (ImageError, KeyError, TypeError):
            return ""
        return config if is_stored_digest(config) else ""

    def by_id(self, text: str) -> tuple[str, list[str]] | None:
        """The image `text` names by its ID: the config's digest as `image ls` shows it (whole or a
        unique prefix of at least 4 hex digits, with or without `sha256:`; crictl and podman
        take an image's ID where they take its name), or its manifest digest likewise (the
        CRI's image ref, what a pull prints). Returns its manifest digest and every name it has;
        None when `text` is no ID of a stored image; ImageError when the prefix fits several."""
        hexpart = text.removeprefix("sha256:")
        if not 4 <= len(hexpart) <= 64 or any(c not in "0123456789abcdef" for c in hexpart):
            return None
        refs = self.refs()
        digests = sorted({digest for digest in refs.values()
                          if _hex(digest).startswith(hexpart) or self.image_id(digest)[7:].startswith(hexpart)})
        if len(digests) > 1:
            ids = ", ".join(sorted({self.image_id(d) or d for d in digests}))
            raise ImageError(f"image ID {text!r} is ambiguous: it starts {ids}")
        if not digests:
            return None
        return digests[0], sorted(name for name, digest in refs.items() if digest == digests[0])

    def tag(self, digest: str, name: str) -> None:
        """Point the canonical `name` (as `ImageRef.name` writes it, without a digest) at `digest`."""
        self.blob_path(digest)
        try:
            ref = parse_image_ref(name)
        except ValueError as e:
            raise ImageError(str(e)) from None
        if ref.digest or ref.name != name:
            raise ImageError(f"image name {name!r} is not canonical (expected {ref.name!r}, no digest)")
        refs = self.refs()
        refs[name] = digest
        self._write_refs(refs)

    def _write_refs(self, refs: dict[str, str]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.refs_file.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(refs_text(refs))
        os.replace(tmp, self.refs_file)


def _no_leases() -> Held:
    from sandbox.images.lease import Held

    return Held()


def refs_text(refs: dict[str, str]) -> str:
    """json.dumps(refs, indent=1, sort_keys=True), byte for byte (refs.json is read by people
    too), through json's C string encoder: `import json` (re, enum, functools: ~5 ms) was the
    last import a cold pull made, after its layers."""
    try:
        from _json import encode_basestring_ascii as quoted
    except ImportError:  # an interpreter without json's C accelerator
        import json

        return json.dumps(refs, indent=1, sort_keys=True)
    if not refs:
        return "{}"
    return "{\n" + ",\n".join(f" {quoted(name)}: {quoted(refs[name])}" for name in sorted(refs)) + "\n}"


class Lease:
    """One user's hold on the images it resolves, kept from `image prune` (images/lease.py: the
    protocol, and prune's side): a pod's (every image its containers and volumes resolve, until
    the pod ends, as a containerd container holds its snapshot until it is removed: a restart
    mounts its image again) or one pull's. The file is made at the first digest recorded;
    release() (or the holder's death) drops it. Here, not in lease.py: every runtime has this
    module loaded, so a lease costs `sandbox run` a few system calls and no import."""

    def __init__(self, store_root: Path, *, pulling: bool = False) -> None:
        self.directory = os.path.join(str(store_root), LEASES)
        self.pulling = pulling
        self.fd = -1
        self.path = ""
        self.held: set[str] = set()
        self.closed = False  # released: a pull that ends after its pod hands nothing over
        self._lock = _thread.allocate_lock()  # the pod's loop and its pull workers record

    def keep(self, resolve: Callable[[], Image | None]) -> Image | None:
        """`resolve()` (a lookup) with the digest it found held from then on. Resolved again under
        the directory's lock unless what it found is held already (a restart's lookup)."""
        if self.held:
            image = resolve()
            if image is None or not image.digest or image.digest in self.held:
                return image
        guard = self._guard()
        try:
            image = resolve()
            if image is not None and image.digest:
                self._record(image.digest)
            return image
        finally:
            os.close(guard)

    def hold(self, digest: str) -> None:
        """Hold `digest`, which another live lease holds now (a pull handing its image over)."""
        if digest in self.held:
            return
        guard = self._guard()
        try:
            self._record(digest)
        finally:
            os.close(guard)

    def begin(self) -> None:
        """The file made now (a pull's, before it writes anything): prune keeps what it writes."""
        if self.fd < 0:
            guard = self._guard()
            try:
                self._open()
            finally:
                os.close(guard)

    def note(self, digest: str) -> None:
        """A pull's manifest, recorded before the manifest is stored (begin() first): prune reads
        a pull's lease without its lock, and one that names no stored manifest keeps everything."""
        os.write(self.fd, f"{digest}\n".encode())
        self.held.add(digest)

    def release(self) -> None:
        with self._lock:
            self.closed = True
            if self.fd < 0:
                return
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:
        # a pod prepared and dropped before it ran (an agent's apply of a running manifest, a
        # refused start) lets go of its images with its Puller, not with the agent's process
        try:
            self.release()
        except Exception:  # noqa: BLE001, S110 - the interpreter's exit: the kernel drops the flock
            pass

    def _guard(self) -> int:
        """The directory's shared lock (its fd: closing it unlocks)."""
        from sandbox.native import LOCK_SH, flock

        try:
            fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            flock(fd, LOCK_SH)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _record(self, digest: str) -> None:
        with self._lock:
            if digest in self.held or self.closed:
                return
            if self.fd < 0:
                self._open()
            os.write(self.fd, f"{digest}\n".encode())
            self.held.add(digest)

    def _open(self) -> None:
        while True:
            path = os.path.join(self.directory, f"{os.getpid()}-{os.urandom(4).hex()}")
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
                break
            except FileExistsError:
                continue
        from sandbox.native import LOCK_SH, flock

        try:
            flock(fd, LOCK_SH)
            if self.pulling:
                os.write(fd, f"{PULLING}\n".encode())
        except BaseException:
            os.unlink(path)
            os.close(fd)
            raise
        self.fd, self.path = fd, path


class _BlobLock:
    """One download per blob across processes: an flock on `ingest/<hex>.lock` held while the
    blob is fetched into `partial` (`ingest/<hex>`); whoever waited then finds it stored."""

    def __init__(self, ingest: Path, digest: str) -> None:
        self.ingest = ingest
        self.partial = ingest / _hex(digest)
        self.path = ingest / f"{_hex(digest)}.lock"
        self.fd = -1

    def __enter__(self) -> _BlobLock:
        import fcntl

        self.ingest.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(self.fd)
            raise
        return self

    def __exit__(self, *_: object) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self.fd)


class HashingReader:
    """A read-only stream that hashes what passes through (the layer's diff_id)."""

    def __init__(self, stream: BinaryIO, hash_: Any) -> None:
        self.stream, self.hash = stream, hash_

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.hash.update(data)
        return data

    def drain(self) -> None:
        """tar stops reading at its end-of-archive blocks; the diff_id covers the padding after."""
        while self.read(1 << 20):
            pass


def _new_directory(parent: Path, prefix: str) -> Path:
    """A new private directory (0700) in `parent`, named `prefix` and 12 random hex digits, as
    tempfile.mkdtemp makes one: tempfile's import (random, shutil, bz2, lzma: ~5 ms) is paid by
    every pull otherwise, and a name taken already (a killed pull's) is simply drawn again."""
    while True:
        path = parent / f"{prefix}{os.urandom(6).hex()}"
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        return path


def _new_file(parent: Path, prefix: str) -> tuple[int, Path]:
    """A new file (0600, opened for writing) in `parent`, as tempfile.mkstemp makes one."""
    while True:
        path = parent / f"{prefix}{os.urandom(6).hex()}"
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), path
        except FileExistsError:
            continue


def _unpack_blob(blob: Path, media_type: str, dest: Path) -> str:
    """The stored layer blob unpacked into the empty directory `dest`; returns the digest of
    its uncompressed stream. gzip and plain tar through the native extractor where the core
    has it, else (and zstd always) through extract.py."""
    from sandbox.images import untar
    from sandbox.images.layerbase import MEDIA_TYPES

    compression = MEDIA_TYPES.get(media_type)
    if compression in ("gzip", "tar") and untar.available():
        try:
            with open(blob, "rb") as f:
                _, diff_id = untar.unpack_chunks(iter(lambda: f.read(untar.CHUNK), b""), dest,
                                                 gzip=compression == "gzip")
        except OSError as e:
            raise ImageError(f"layer {blob.name}: cannot read: {e.strerror}") from None
        return diff_id
    import hashlib

    from sandbox.images.extract import open_layer, unpack

    with open_layer(blob, media_type) as stream:
        hashing = HashingReader(stream, hashlib.sha256())
        unpack(hashing, dest)  # type: ignore[arg-type]  # read() is all unpack uses
        hashing.drain()
    digest: str = "sha256:" + hashing.hash.hexdigest()
    return digest


def _bound(function: Callable[..., None], *args: Any) -> Callable[[], None]:
    """functools.partial(function, *args) without functools' import (a pull imports no functools)."""
    return lambda: function(*args)


def _run_in_threads(tasks: list[Callable[[], None]], workers: int) -> None:
    """Run `tasks` on up to `workers` threads, the calling thread one of them. After a failure no
    task starts; the first error is raised once the running ones end. A KeyboardInterrupt in the
    calling thread leaves at once: the helpers are daemon threads, and what they leave half done
    is what a kill mid-pull leaves (a `.tmp-` directory for prune). Through images/threads.py:
    threading would cost ~1.5 ms of imports, concurrent.futures ~4 ms."""
    from sandbox.images.threads import Lock, Worker

    pending = iter(tasks)
    lock = Lock()
    errors: list[BaseException] = []

    def work(caught: type[BaseException]) -> None:
        while True:
            with lock:
                task = None if errors else next(pending, None)
            if task is None:
                return
            try:
                task()
            except caught as e:
                with lock:
                    errors.append(e)

    helpers = [Worker(work, BaseException) for _ in range(min(workers, len(tasks)) - 1)]
    work(Exception)
    for thread in helpers:
        thread.join()
    if errors:
        raise errors[0]


def _tar_chunks(source: Path) -> Iterable[bytes]:
    """An uncompressed tar of `source`, entries sorted, owners numeric, produced in pieces."""
    import tarfile

    class Sink:
        def __init__(self) -> None:
            self.parts: list[bytes] = []

        def write(self, data: bytes) -> int:
            self.parts.append(bytes(data))
            return len(data)

        def take(self) -> list[bytes]:
            parts, self.parts = self.parts, []
            return parts

    sink = Sink()
    archive = tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT)  # type: ignore[call-overload]
    for dirpath, dirnames, filenames in os.walk(source):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            info = archive.gettarinfo(path, os.path.relpath(path, source))
            if info is None:
                continue  # a socket: nothing an image can hold
            info.uname = info.gname = ""
            if info.isreg():
                with open(path, "rb") as f:
                    archive.addfile(info, f)
            else:
                archive.addfile(info)
            yield from sink.take()
    archive.close()
    yield from sink.take()


def _hex(digest: str) -> str:
    if not is_stored_digest(digest):
        raise ImageError(f"bad digest {digest!r}: the store holds sha256 digests only")
    return digest.partition(":")[2]


def is_stored_digest(digest: str) -> bool:
    """A digest the store can hold: `sha256:` and 64 lowercase hex digits."""
    algo, _, hexpart = digest.partition(":")
    return algo == "sha256" and len(hexpart) == 64 and all(c in "0123456789abcdef" for c in hexpart)


_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def base32(data: bytes) -> str:
    """RFC 4648 base32 without padding, as `base64.b32encode(data).decode().rstrip("=")`: the base64
    module (with struct and binascii) costs ~1.3 ms to import on every container start."""
    bits = len(data) * 8
    value = int.from_bytes(data, "big") << (-bits % 5)  # zero bits up to a whole last character
    count = (bits + 4) // 5
    return "".join(_BASE32[(value >> (5 * (count - 1 - i))) & 31] for i in range(count))
