"""Real registries for the pull tests: Debian's `docker-registry` (distribution 2.8) on
127.0.0.1:<free port> with its config, storage, htpasswd and certificate in a temporary directory,
and images built by the test as OCI layouts and pushed with `skopeo copy`. No root needed.

Everything started here is stopped by the fixture that started it, on failure too: the registry by
its Popen handle (terminate, then kill), then its directory (config, storage, htpasswd, key) removed.
"""

from __future__ import annotations

import ctypes
import gzip
import hashlib
import io
import json
import shutil
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from sandbox.images.store import ImageStore

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def require_tools() -> None:
    for tool in ("docker-registry", "skopeo", "openssl"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (make deps installs docker-registry and skopeo)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def bcrypt_hash(password: str) -> str:
    """distribution's htpasswd reads only bcrypt. glibc's libcrypt (libxcrypt, Essential in
    Debian) makes it: no Python dependency, no apache2-utils."""
    lib = ctypes.CDLL("libcrypt.so.1")
    lib.crypt_gensalt.restype = ctypes.c_char_p
    lib.crypt.restype = ctypes.c_char_p
    salt = lib.crypt_gensalt(b"$2b$", 10, None, 0)
    hashed = lib.crypt(password.encode(), salt)
    if not hashed or not hashed.startswith(b"$2b$"):
        pytest.skip("libcrypt cannot make bcrypt hashes here")
    return str(hashed.decode())


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost; the test trusts it as its own CA."""
    cert, key = directory / "registry.crt", directory / "registry.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


@dataclass
class Registry:
    netloc: str  # 127.0.0.1:PORT
    process: subprocess.Popen[bytes]
    directory: Path
    user: str = ""
    password: str = ""
    cert: Path | None = None

    def push(self, layout: Path, tag: str, repository: str, *, all_platforms: bool = False,
             docker_format: bool = False) -> None:
        """`skopeo copy oci:<layout>:<tag> docker://<registry>/<repository>:<tag>`; `docker_format`
        converts to Docker schema 2 media types on the way."""
        command = ["skopeo", "--insecure-policy", "copy", "--quiet"]
        command += ["--format", "v2s2"] if docker_format else ["--preserve-digests"]
        if all_platforms:
            command.append("--all")
        if self.cert is not None:
            certs = self.directory / "skopeo-certs"
            certs.mkdir(exist_ok=True)
            shutil.copy(self.cert, certs / "ca.crt")
            command += ["--dest-cert-dir", str(certs)]
        else:
            command.append("--dest-tls-verify=false")  # skopeo's side only: plain HTTP to loopback
        if self.user:
            command += ["--dest-creds", f"{self.user}:{self.password}"]
        command += [f"oci:{layout}:{tag}", f"docker://{self.netloc}/{repository}:{tag}"]
        subprocess.run(command, check=True, capture_output=True, timeout=60)


@contextmanager
def running_registry(directory: Path, *, user: str = "", password: str = "", tls: bool = False) -> Iterator[Registry]:
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config: dict[str, object] = {
        "version": 0.1,
        "log": {"level": "error", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(directory / "storage")}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }
    cert = None
    if user:
        (directory / "htpasswd").write_text(f"{user}:{bcrypt_hash(password)}\n")
        config["auth"] = {"htpasswd": {"realm": "sandbox-test", "path": str(directory / "htpasswd")}}
    if tls:
        cert, key = self_signed_cert(directory)
        config["http"] = {"addr": f"127.0.0.1:{port}", "tls": {"certificate": str(cert), "key": str(key)}}
    (directory / "config.yml").write_text(json.dumps(config))  # JSON is YAML
    log = open(directory / "registry.log", "wb")
    process = subprocess.Popen(["docker-registry", "serve", str(directory / "config.yml")],
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_listening(port, process, directory / "registry.log")
        yield Registry(f"127.0.0.1:{port}", process, directory, user, password, cert)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(directory, ignore_errors=True)  # storage, htpasswd, key: nothing outlives the test


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited {process.returncode}: {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"docker-registry did not listen on {port}: {log.read_text()[-2000:]}")


# -- images as OCI layouts --


@dataclass
class Blob:
    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.data).hexdigest()

    def descriptor(self, **extra: object) -> dict[str, object]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data), **extra}


@dataclass
class Image:
    manifest: Blob
    config: Blob
    layers: list[Blob]


def make_image(text: str, architecture: str = "amd64", variant: str = "") -> Image:
    """One gzip layer holding /hello.txt with `text`, its config and its manifest."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        body = text.encode()
        info = tarfile.TarInfo("hello.txt")
        info.size, info.mode, info.mtime = len(body), 0o644, 0
        tar.addfile(info, io.BytesIO(body))
    layer = Blob(OCI_LAYER, gzip.compress(raw.getvalue(), mtime=0))
    platform = {"architecture": architecture, "os": "linux", **({"variant": variant} if variant else {})}
    config = Blob(OCI_CONFIG, json.dumps({
        **platform, "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()]},
    }, sort_keys=True).encode())
    manifest = Blob(OCI_MANIFEST, json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.descriptor(),
        "layers": [layer.descriptor()],
    }, sort_keys=True).encode())
    return Image(manifest, config, [layer])


def make_index(images: dict[tuple[str, str], Image]) -> Blob:
    """An OCI index over per-platform images, keyed by (architecture, variant)."""
    entries = []
    for (architecture, variant), image in images.items():
        platform = {"architecture": architecture, "os": "linux", **({"variant": variant} if variant else {})}
        entries.append(image.manifest.descriptor(platform=platform))
    return Blob(OCI_INDEX, json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries},
                                      sort_keys=True).encode())


def write_layout(layout: Path, tag: str, top: Blob, images: list[Image]) -> None:
    """An OCI image layout whose index.json names `top` (a manifest or an index) as `tag`."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    for blob in [top, *(b for i in images for b in (i.manifest, i.config, *i.layers))]:
        (blobs / blob.digest.partition(":")[2]).write_bytes(blob.data)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    index_path = layout / "index.json"
    index: dict[str, Any] = {"schemaVersion": 2, "manifests": []}
    if index_path.exists():
        index = json.loads(index_path.read_text())
    index["manifests"].append(top.descriptor(annotations={"org.opencontainers.image.ref.name": tag}))
    index_path.write_text(json.dumps(index))


# -- the session's mirror: the local store's images served as their registries' --


def _request(netloc: str, method: str, path: str, body: bytes = b"",
             headers: dict[str, str] | None = None) -> tuple[int, str]:
    """One plain-HTTP request to the loopback registry: (status, Location)."""
    import http.client

    connection = http.client.HTTPConnection(netloc, timeout=30)
    try:
        connection.request(method, path, body=body or None, headers=headers or {})
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("Location", "")
    finally:
        connection.close()


def push_blob(netloc: str, repository: str, digest: str, data: bytes) -> None:
    """The distribution API's two-step upload (POST a session, PUT the content with its digest)."""
    from urllib.parse import quote, urlsplit

    status, _ = _request(netloc, "HEAD", f"/v2/{repository}/blobs/{digest}")
    if status == 200:
        return
    status, location = _request(netloc, "POST", f"/v2/{repository}/blobs/uploads/")
    assert status == 202, f"upload session for {repository}: {status}"
    parts = urlsplit(location)
    query = f"{parts.query}&" if parts.query else ""
    status, _ = _request(netloc, "PUT", f"{parts.path}?{query}digest={quote(digest)}", data,
                         {"Content-Type": "application/octet-stream"})
    assert status == 201, f"upload {digest} to {repository}: {status}"


def push_image(netloc: str, repository: str, tag: str, manifest: bytes, blobs: dict[str, bytes]) -> None:
    """A manifest and the blobs it names (by digest), pushed as `repository:tag`."""
    document = json.loads(manifest)
    for descriptor in [document["config"], *document["layers"]]:
        push_blob(netloc, repository, descriptor["digest"], blobs[descriptor["digest"]])
    media_type = document.get("mediaType", OCI_MANIFEST)
    status, _ = _request(netloc, "PUT", f"/v2/{repository}/manifests/{tag}", manifest, {"Content-Type": media_type})
    assert status == 201, f"manifest {repository}:{tag}: {status}"


def store_blobs(store: Path, manifest: bytes) -> dict[str, bytes]:
    """The config and layer blobs a manifest names, read from a sandbox image store."""
    document = json.loads(manifest)
    return {d["digest"]: (store / "blobs" / "sha256" / d["digest"].partition(":")[2]).read_bytes()
            for d in [document["config"], *document["layers"]]}


def push_from_store(netloc: str, store: Path, repository: str, tag: str, digest: str) -> None:
    """An image of a sandbox image store (blobs/sha256/<hex>), pushed as `repository:tag`."""
    manifest = (store / "blobs" / "sha256" / digest.partition(":")[2]).read_bytes()
    push_image(netloc, repository, tag, manifest, store_blobs(store, manifest))


def write_hosts(hosts: Path, registries: dict[str, str]) -> Path:
    """A containerd hosts directory whose only host for each registry is the loopback `netloc`
    it maps to (no fallback to the real registry: nothing leaves the machine)."""
    for name, netloc in registries.items():
        (hosts / name).mkdir(parents=True, exist_ok=True)
        (hosts / name / "hosts.toml").write_text(f'server = "http://{netloc}"\n')
    return hosts


@dataclass
class Mirror:
    hosts: Path  # the SANDBOX_REGISTRY_CONFIG directory
    netloc: str  # the loopback registry serving the store's images
    registries: tuple[str, ...]  # the registries it stands for (docker.io, registry.k8s.io)


def mirror_store(registry: Registry, store: Path, hosts: Path) -> Mirror:
    """Every named image of `store` pushed to `registry` under its repository and tag, and a
    hosts directory at `hosts` making `registry` the only host of each registry those names use."""
    from sandbox.images.reference import parse_image_ref

    refs: dict[str, str] = json.loads((store / "refs.json").read_text())
    owners: dict[str, str] = {}  # repository on the loopback registry -> the registry it stands for
    for name, digest in sorted(refs.items()):
        ref = parse_image_ref(name)
        if not ref.tag or not digest.startswith("sha256:"):
            continue
        owner = owners.setdefault(ref.repository, ref.registry)
        assert owner == ref.registry, f"{ref.repository} is named in both {owner} and {ref.registry}"
        push_from_store(registry.netloc, store, ref.repository, ref.tag, digest)
    registries = tuple(sorted(set(owners.values())))
    write_hosts(hosts, {name: registry.netloc for name in registries})
    return Mirror(hosts, registry.netloc, registries)


def tar_of(files: dict[str, bytes]) -> bytes:
    """An uncompressed layer tar of regular files (mode 0644), as the image tests build them."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def own_store(root: Path, image_store: Path) -> tuple[ImageStore, str]:
    """The test's own image store under the runtime root `root` in place of the session's shared
    one (which `image rm` and `prune` must not touch), holding the session's busybox layer (an
    uncompressed tar: its digest is its diff_id). Returns the store and that layer's digest."""
    from sandbox.images.store import ImageStore

    images = root / "lib" / "images"
    images.unlink()
    images.mkdir()
    shared = ImageStore(image_store)
    layer = shared.read_json(shared.lookup("busybox").digest)["layers"][0]["digest"]
    store = ImageStore(images)
    with open(shared.blob_path(layer), "rb") as f:
        store.ingest(iter(lambda: f.read(1 << 20), b""), layer)
    return store, layer


def add_image(store: ImageStore, name: str, diff_ids: list[str]) -> None:
    """`name` (canonical) in `store`: an OCI manifest and config over these ingested layers."""
    from sandbox.images.store import CONFIG_OCI, LAYER_TAR, MANIFEST_OCI

    config = store.put_json({"architecture": "amd64", "os": "linux", "config": {},
                             "rootfs": {"type": "layers", "diff_ids": diff_ids}})
    manifest = store.put_json({"schemaVersion": 2, "mediaType": MANIFEST_OCI,
                               "config": {"mediaType": CONFIG_OCI, "digest": config, "size": 1},
                               "layers": [{"mediaType": LAYER_TAR, "digest": d, "size": 1} for d in diff_ids]})
    store.add_image(name, manifest)
