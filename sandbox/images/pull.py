"""Pulling an image into the store, and importing an OCI image layout directory: the manifest (for
this machine's platform), its config and its layers become blobs, each digest checked as it is
written, the layers are unpacked once, and only then does the name point at the manifest. A kill
at any moment leaves blobs without a name (for `sandbox image prune`), never a name without its
blobs.

Where a pull goes: the registry the reference names (Docker Hub for short names), through the
mirrors a containerd-style hosts directory gives (`--registry-config`, or $SANDBOX_REGISTRY_CONFIG,
default /etc/sandbox/certs.d), with the credentials of the runtime's config.json ($DOCKER_CONFIG or
~/.docker) and of the pod's imagePullSecrets; plain HTTP only to loopback or `--insecure-registry`.
"""

from __future__ import annotations

import os
from pathlib import Path

from sandbox import fastjson
from sandbox.errors import ImageError
from sandbox.images.options import PullOptions
from sandbox.images.threads import Lock, Worker
from sandbox.record import replace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from sandbox.images.auth import Credentials
    from sandbox.images.registry import Platform, RegistryClient
    from sandbox.images.store import Image, ImageStore, Lease

REF_NAME = "org.opencontainers.image.ref.name"
_NAMING = Lock()  # refs.json writers among one process's pull threads


def client(options: PullOptions, extra: Credentials | None = None) -> RegistryClient:
    """A registry client with the runtime's mirrors and credentials; `extra` (a pod's pull
    secrets) is tried first."""
    from sandbox.images.auth import Credentials
    from sandbox.images.mirrors import Mirrors
    from sandbox.images.registry import RegistryClient

    credentials = Credentials.from_docker_config(options.resolved_credentials_file())
    if extra is not None:
        credentials = extra.then(credentials)
    hosts = options.resolved_hosts_dir()
    return RegistryClient(credentials=credentials, mirrors=Mirrors(hosts) if hosts.is_dir() else None,
                          insecure=set(options.resolved_insecure()))


def pull(store: ImageStore, reference: str, registry: RegistryClient, platform: Platform | None = None,
         progress: Callable[[str, int, int], None] | None = None, lease: Lease | None = None) -> Image:
    """Pull `reference` into `store`; returns the stored image. `progress(digest, done, total)`.
    What the pull writes is under a lease of its own until it ends (images/lease.py: `image
    prune` keeps it); `lease`, the caller's, holds the image from then on."""
    from sandbox.images.store import Lease

    own = Lease(store.root, pulling=True)
    own.begin()
    try:
        image = _pull(store, reference, registry, platform, progress, own)
        if lease is not None:
            lease.hold(image.digest)
        return image
    finally:
        own.release()


def _pull(store: ImageStore, reference: str, registry: RegistryClient, platform: Platform | None,
          progress: Callable[[str, int, int], None] | None, own: Lease) -> Image:
    from sandbox.images.reference import parse_image_ref
    from sandbox.images.registry import Platform

    # The unpacking modules (the native core; tarfile and isal without it: 5-10 ms of imports)
    # and OpenSSL's hashes load on a helper thread while this one waits for the registry's
    # answers: the first layer starts sooner after the manifest. An import both threads want is
    # done once. Not for a reference the store holds already (an Always pull, a re-pull: most
    # often current): there the preload only holds the GIL while this thread has work, up to
    # the 5 ms switch interval at a time; a pull of a stored image 24.4 -> 19.5 ms median without
    # it (40 interleaved rounds, loopback registry), where a cold pull gains ~3 ms from it.
    if not _stored_already(store, reference):
        Worker(_load_unpacking)
    resolved = registry.resolve(reference, platform or Platform())
    own.note(resolved.digest)  # before it is stored: prune keeps what it reaches
    store.ingest([resolved.manifest], expected=resolved.digest)
    report = _serialized(progress) if progress is not None else None
    sizes = {desc.digest: desc.size for desc in (resolved.config, *resolved.layers)}

    def fetch(digest: str) -> None:
        size = sizes[digest]
        done = (lambda n: report(digest, n, size)) if report is not None else None
        store.fetch_into(digest, lambda path: registry.fetch_blob(resolved.name, digest, path, size=size,
                                                                  progress=done))

    def stream(desc: dict[str, object]) -> Iterator[bytes]:
        digest = str(desc["digest"])
        size = sizes[digest]
        done = (lambda n: report(digest, n, size)) if report is not None else None
        return registry.blob_chunks(resolved.name, digest, size=size, progress=done)

    # The config downloads on a thread of its own while the layers start: they need its diff_ids
    # only when they are placed, so its round trip is off the pull's critical path (loopback
    # registry, 6-layer 43 MB image: 292 ms median against 299 with the config first, 31
    # interleaved rounds on the shared 2-CPU VM).
    manifest = fastjson.loads(resolved.manifest)
    # An image stored already (an Always pull, a re-pull) starts no thread: the config's and the
    # layers' threads found everything stored, at ~1 ms of thread starts and GIL hand-overs.
    if not store.holds_layers(resolved.name, resolved.digest, manifest, resolved.config.digest):
        config = _Background(fetch, resolved.config.digest)
        # each layer on a thread, unpacked from the socket as it downloads (store.pull_layers)
        store.pull_layers(resolved.name, resolved.digest, manifest, config.wait,
                          fetch=lambda desc: fetch(str(desc["digest"])), stream=stream)
        config.wait()  # its error, if no layer asked for it
    ref = parse_image_ref(resolved.name)
    image = store.add_image("", resolved.digest)  # unpacked already: named below
    name = ref.name if ref.tag else ""
    if name:
        # refs.json is read, changed and replaced whole: one writer at a time among the pod's pull
        # threads, and no write at all when an Always pull finds the name already current.
        with _NAMING:
            if store.refs().get(name) != resolved.digest:
                store.tag(resolved.digest, name)
    return replace(image, name=name)


class _Background:
    """`function(*args)` on a daemon thread; wait() joins it and raises its error (each time)."""

    def __init__(self, function: Callable[..., object], *args: object) -> None:
        self.error: BaseException | None = None

        def run() -> None:
            try:
                function(*args)
            except BaseException as e:  # handed to the waiting thread
                self.error = e

        self.thread = Worker(run)

    def wait(self) -> None:
        self.thread.join()
        if self.error is not None:
            raise self.error


def _stored_already(store: ImageStore, reference: str) -> bool:
    """Whether `reference` names a manifest the store has (by its digest, or by refs.json)."""
    from sandbox.images.reference import parse_image_ref

    try:
        ref = parse_image_ref(reference)
        digest = ref.digest or store.refs().get(ref.name, "")
        return bool(digest) and store.blob_path(digest).is_file()
    except (ValueError, ImageError):  # the pull reports a bad reference or store itself
        return False


def _load_unpacking() -> None:
    from sandbox.images import hashes

    hashes.load()  # the blobs' digests (OpenSSL, ~2-3 ms): off the main thread's way

    from sandbox import topdir  # noqa: F401
    from sandbox.images import streamed, untar  # noqa: F401

    if not untar.available():  # extract.py unpacks: tarfile and isal
        from sandbox.images.extract import inflate_module

        inflate_module()


def _serialized(progress: Callable[[str, int, int], None]) -> Callable[[str, int, int], None]:
    """`progress` called by one layer thread at a time (it writes lines to a terminal)."""
    lock = Lock()

    def report(digest: str, done: int, total: int) -> None:
        with lock:
            progress(digest, done, total)

    return report


def import_layout(store: ImageStore, layout: Path, name: str = "") -> list[Image]:
    """The images of an OCI image layout directory (`oci-layout`, `index.json`, `blobs/sha256/`),
    each named by its `org.opencontainers.image.ref.name` annotation (a full reference, or a tag
    of `name`) or by `name`; an index entry that is itself an index is followed to this machine's
    platform. Every blob is copied with its digest checked."""
    import json

    from sandbox.images.reference import parse_image_ref
    from sandbox.images.registry import INDEXES, Platform, select_platform

    try:
        if json.loads((layout / "oci-layout").read_text()).get("imageLayoutVersion") != "1.0.0":
            raise ImageError(f"{layout}: oci-layout is not version 1.0.0")
        index = json.loads((layout / "index.json").read_text())
    except (OSError, ValueError, AttributeError) as e:
        raise ImageError(f"{layout}: not an OCI image layout: {e}") from None
    entries = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ImageError(f"{layout}/index.json: no manifests")
    images = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ImageError(f"{layout}/index.json: manifests[{i}] is not an object")
        annotation = str((entry.get("annotations") or {}).get(REF_NAME, ""))
        target = _layout_name(annotation, name)
        if not target:
            raise ImageError(f"{layout}/index.json: manifests[{i}] has no {REF_NAME} and no name was given")
        try:
            canonical = parse_image_ref(target).name
        except ValueError as e:
            raise ImageError(f"{layout}/index.json: manifests[{i}]: {e}") from None
        digest = _copy_blob(store, layout, str(entry.get("digest", "")))
        document = store.read_json(digest)
        if entry.get("mediaType") in INDEXES or (isinstance(document, dict) and document.get("mediaType") in INDEXES):
            chosen = select_platform(document, Platform(), canonical)
            digest = _copy_blob(store, layout, chosen.digest)
            document = store.read_json(digest)
        for desc in [document.get("config"), *(document.get("layers") or [])]:
            if not isinstance(desc, dict):
                raise ImageError(f"{layout}: manifest {digest} has a malformed descriptor")
            _copy_blob(store, layout, str(desc.get("digest", "")))
        images.append(store.add_image(canonical, digest))
    return images


def _layout_name(annotation: str, name: str) -> str:
    """A ref.name annotation is a full reference (our builds, `skopeo copy oci:DIR:REF`) or only a
    tag (the OCI spec's examples): a tag is applied to `name`'s repository."""
    if not annotation:
        return name
    if ("/" in annotation or ":" not in annotation) and not name:
        return annotation
    if name and "/" not in annotation and ":" not in annotation and "@" not in annotation:
        repository = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
        return f"{repository}:{annotation}"
    return annotation


def _copy_blob(store: ImageStore, layout: Path, digest: str) -> str:
    from sandbox.images.store import is_stored_digest

    if not is_stored_digest(digest):
        raise ImageError(f"{layout}: unsupported digest {digest!r}")
    source = layout / "blobs" / "sha256" / digest.partition(":")[2]
    try:
        with open(source, "rb") as f:
            return store.ingest(iter(lambda: f.read(1 << 20), b""), expected=digest)
    except FileNotFoundError:
        raise ImageError(f"{layout}: blob {digest} is missing") from None


def export_layout(store: ImageStore, references: list[str], layout: Path) -> None:
    """An OCI image layout directory holding `references` (each manifest, config and layer blob,
    `index.json` naming them by full reference), for `sandbox image import` on another machine
    or `skopeo copy oci:DIR:REF`. `layout` must not exist; it is written beside and renamed."""
    import json
    import shutil
    import tempfile

    if layout.exists():
        raise ImageError(f"{layout}: already exists")
    tmp = Path(tempfile.mkdtemp(prefix=f".{layout.name}-", dir=layout.parent))
    try:
        (tmp / "blobs" / "sha256").mkdir(parents=True)
        (tmp / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        entries = []
        for reference in references:
            image = store.lookup(reference)
            if store.blob_path(image.digest).is_dir():
                raise ImageError(f"{reference}: an image of the store's first format: import it again to export it")
            manifest = store.read_json(image.digest)
            for digest in [image.digest, manifest["config"]["digest"], *(d["digest"] for d in manifest["layers"])]:
                target = tmp / "blobs" / "sha256" / digest.partition(":")[2]
                if not target.exists():
                    shutil.copyfile(store.blob_path(digest), target)
            entries.append({"mediaType": manifest.get("mediaType", "application/vnd.oci.image.manifest.v1+json"),
                            "digest": image.digest, "size": store.blob_path(image.digest).stat().st_size,
                            "annotations": {REF_NAME: image.name}})
        (tmp / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": entries}, indent=1))
        os.rename(tmp, layout)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def import_docker_archive(store: ImageStore, archive: Path, name: str = "") -> list[Image]:
    """A `docker save` archive (manifest.json naming each image's config, layer tars and
    RepoTags): every member is copied into the store as a blob, the manifest rebuilt in the OCI
    form, the images named by their RepoTags, an image without any by `name` (as an OCI layout's
    image without a ref.name annotation); an image left without a name is refused, as it could
    only be pruned."""
    import json
    import tarfile

    from sandbox.images.reference import parse_image_ref
    from sandbox.images.store import CONFIG_OCI, LAYER_TAR, MANIFEST_OCI

    images = []
    try:
        with tarfile.open(archive, "r:*") as tar:
            def member_blob(name: str) -> tuple[str, int]:
                info = tar.getmember(name)
                if not info.isfile():
                    raise ImageError(f"{archive}: {name} is not a regular file")
                stream = tar.extractfile(info)
                assert stream is not None
                digest = store.ingest(iter(lambda: stream.read(1 << 20), b""))
                return digest, info.size

            stream = tar.extractfile("manifest.json")
            if stream is None:
                raise ImageError(f"{archive}: no manifest.json")
            entries = json.loads(stream.read(MAX_MANIFEST))
            for i, entry in enumerate(entries):
                tags = [parse_image_ref(str(t)).name for t in entry.get("RepoTags") or []] or \
                    ([parse_image_ref(name).name] if name else [])
                if not tags:
                    raise ImageError(f"{archive}: image {i} of manifest.json has no RepoTags and no name was given")
                config_digest, config_size = member_blob(str(entry["Config"]))
                layers = []
                for name in entry["Layers"]:
                    digest, size = member_blob(str(name))
                    media = LAYER_TAR + ("+gzip" if _gzipped(store.blob_path(digest)) else "")
                    layers.append({"mediaType": media, "digest": digest, "size": size})
                manifest = {"schemaVersion": 2, "mediaType": MANIFEST_OCI,
                            "config": {"mediaType": CONFIG_OCI, "digest": config_digest, "size": config_size},
                            "layers": layers}
                manifest_digest = store.put_json(manifest)
                for tag in tags[1:]:
                    store.tag(manifest_digest, tag)
                images.append(store.add_image(tags[0], manifest_digest))
    except (OSError, KeyError, TypeError, ValueError, tarfile.TarError) as e:
        raise ImageError(f"{archive}: not a docker save archive: {e}") from None
    return images


MAX_MANIFEST = 4 << 20


def _gzipped(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"
