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
from typing import Any

import pytest

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
