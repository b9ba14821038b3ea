"""The registry client against real registries on loopback: Debian's docker-registry (plain,
htpasswd, TLS with a test CA) fed by skopeo, and small local HTTP servers for what docker-registry
cannot do (issue Bearer tokens, lie about a blob, drop a connection mid-blob). No root, no lock:
nothing here touches the kernel beyond loopback sockets."""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from registry_fixture import (
    OCI_CONFIG,
    OCI_LAYER,
    Blob,
    Image,
    Registry,
    free_port,
    make_image,
    make_index,
    require_tools,
    running_registry,
    tar_of,
    write_layout,
)

from sandbox.images.auth import Credentials
from sandbox.images.mirrors import Mirrors
from sandbox.images.registry import DOCKER_MANIFEST, OCI_MANIFEST, Platform, RegistryClient, RegistryError

AMD64 = Platform("linux", "amd64")
ANONYMOUS = Credentials.anonymous()


def creds(registry: str, user: str, password: str) -> Credentials:
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    return Credentials.from_json(json.dumps({"auths": {registry: {"auth": auth}}}).encode(), "test")


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Registry, dict[str, Image]]]:
    """One plain-HTTP registry with `test/hello:1`, `library/mirrored:1` and a multi-arch `test/multi:1`."""
    require_tools()
    base = tmp_path_factory.mktemp("registry")
    with running_registry(base / "registry") as registry:
        hello = make_image("hello\n")
        write_layout(base / "layout", "1", hello.manifest, [hello])
        registry.push(base / "layout", "1", "test/hello")
        registry.push(base / "layout", "1", "library/mirrored")
        per_arch = {("amd64", ""): make_image("amd64\n"), ("arm64", "v8"): make_image("arm64\n", "arm64", "v8")}
        index = make_index(per_arch)
        write_layout(base / "multi", "1", index, list(per_arch.values()))
        registry.push(base / "multi", "1", "test/multi", all_platforms=True)
        yield registry, {"hello": hello, **{arch: image for (arch, _), image in per_arch.items()}}


def test_anonymous_pull_of_manifest_and_blobs(plain: tuple[Registry, dict[str, Image]], tmp_path: Path) -> None:
    registry, images = plain
    client = RegistryClient(credentials=ANONYMOUS)
    resolved = client.resolve(f"{registry.netloc}/test/hello:1", AMD64)
    hello = images["hello"]
    assert resolved.name == f"{registry.netloc}/test/hello:1"
    assert resolved.digest == hello.manifest.digest and resolved.manifest == hello.manifest.data
    assert resolved.media_type == OCI_MANIFEST and resolved.index_digest == ""
    assert resolved.config.digest == hello.config.digest
    assert [(d.digest, d.size) for d in resolved.layers] == [(hello.layers[0].digest, len(hello.layers[0].data))]
    seen: list[int] = []
    client.fetch_blob(resolved.name, resolved.layers[0].digest, tmp_path / "layer", size=resolved.layers[0].size,
                      progress=seen.append)
    assert (tmp_path / "layer").read_bytes() == hello.layers[0].data
    assert seen[-1] == len(hello.layers[0].data)
    buffer = io.BytesIO()
    client.fetch_blob(resolved.name, resolved.config.digest, buffer, size=resolved.config.size)
    assert buffer.getvalue() == hello.config.data
    pinned = client.resolve(f"{registry.netloc}/test/hello@{hello.manifest.digest}", AMD64)
    assert pinned.digest == hello.manifest.digest


def test_missing_tag_names_reference_and_status(plain: tuple[Registry, dict[str, Image]]) -> None:
    registry, _ = plain
    with pytest.raises(RegistryError) as error:
        RegistryClient(credentials=ANONYMOUS).resolve(f"{registry.netloc}/test/hello:nosuch", AMD64)
    assert str(error.value) == f"pull {registry.netloc}/test/hello:nosuch: manifest unknown (404)"


def test_multi_arch_index_selects_the_platform(plain: tuple[Registry, dict[str, Image]]) -> None:
    registry, images = plain
    client = RegistryClient(credentials=ANONYMOUS)
    amd64 = client.resolve(f"{registry.netloc}/test/multi:1", AMD64)
    assert amd64.digest == images["amd64"].manifest.digest
    assert amd64.index_digest.startswith("sha256:") and amd64.index_digest != amd64.digest
    arm64 = client.resolve(f"{registry.netloc}/test/multi:1", Platform("linux", "arm64"))
    assert arm64.digest == images["arm64"].manifest.digest
    with pytest.raises(RegistryError, match=r"no manifest for platform linux/s390x .*offered: linux/amd64, "
                                             r"linux/arm64/v8"):
        client.resolve(f"{registry.netloc}/test/multi:1", Platform("linux", "s390x"))


def test_mirror_directory_serves_docker_hub_names(plain: tuple[Registry, dict[str, Image]], tmp_path: Path) -> None:
    registry, images = plain
    (tmp_path / "docker.io").mkdir()
    # No origin fallback: this VM may have no internet, and a fallback would hide a broken mirror.
    (tmp_path / "docker.io" / "hosts.toml").write_text(
        f'server = "http://{registry.netloc}"\n'
        f'[host."http://{registry.netloc}"]\n  capabilities = ["pull", "resolve"]\n')
    client = RegistryClient(credentials=ANONYMOUS, mirrors=Mirrors(tmp_path))
    resolved = client.resolve("mirrored:1", AMD64)
    assert resolved.name == "docker.io/library/mirrored:1"
    assert resolved.digest == images["hello"].manifest.digest
    out = io.BytesIO()
    client.fetch_blob(resolved.name, resolved.layers[0].digest, out, size=resolved.layers[0].size)
    assert out.getvalue() == images["hello"].layers[0].data
    with pytest.raises(RegistryError, match=r"^pull docker.io/library/absent:1: .*\(404 from mirror "):
        client.resolve("absent:1", AMD64)


def test_basic_auth_good_and_bad_password(tmp_path: Path) -> None:
    require_tools()
    with running_registry(tmp_path / "registry", user="alice", password="s3cret") as registry:
        image = make_image("private\n")
        write_layout(tmp_path / "layout", "1", image.manifest, [image])
        registry.push(tmp_path / "layout", "1", "team/private")
        ref = f"{registry.netloc}/team/private:1"
        good = RegistryClient(credentials=creds(registry.netloc, "alice", "s3cret"))
        resolved = good.resolve(ref, AMD64)
        out = io.BytesIO()
        good.fetch_blob(ref, resolved.layers[0].digest, out, size=resolved.layers[0].size)
        assert out.getvalue() == image.layers[0].data
        with pytest.raises(RegistryError, match=rf"^pull {ref}: unauthorized: authentication required \(401\)$"):
            RegistryClient(credentials=creds(registry.netloc, "alice", "wrong")).resolve(ref, AMD64)
        with pytest.raises(RegistryError, match=rf"^pull {ref}: unauthorized: {registry.netloc} needs credentials"):
            RegistryClient(credentials=ANONYMOUS).resolve(ref, AMD64)
        # A wrong secret first does not hide a right one after it (the kubelet tries each).
        both = creds(registry.netloc, "alice", "wrong").then(creds(registry.netloc, "alice", "s3cret"))
        assert RegistryClient(credentials=both).resolve(ref, AMD64).digest == image.manifest.digest


def test_tls_with_the_test_ca(tmp_path: Path) -> None:
    require_tools()
    with running_registry(tmp_path / "registry", tls=True) as registry:
        image = make_image("tls\n")
        write_layout(tmp_path / "layout", "1", image.manifest, [image])
        registry.push(tmp_path / "layout", "1", "test/tls")
        ref = f"{registry.netloc}/test/tls:1"
        assert registry.cert is not None
        client = RegistryClient(credentials=ANONYMOUS, ca_file=str(registry.cert))
        assert client.resolve(ref, AMD64).digest == image.manifest.digest
        # Without the CA the certificate fails, and that is never a reason to fall back to HTTP.
        with pytest.raises(RegistryError, match=rf"^pull {ref}: TLS certificate of {registry.netloc} not trusted"):
            RegistryClient(credentials=ANONYMOUS).resolve(ref, AMD64)


# -- small local servers for what docker-registry does not do --

Handler = Callable[[BaseHTTPRequestHandler], None]


@contextmanager
def serve(handle: Handler) -> Iterator[str]:
    """A threaded HTTP/1.1 server on 127.0.0.1:<free port> calling `handle` for each GET/POST."""

    class Quiet(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            handle(self)

        do_POST = do_GET

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def reply(request: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
    request.send_response(status)
    for name, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
        request.send_header(name, value)
    request.end_headers()
    request.wfile.write(body)


def test_bearer_token_flow(tmp_path: Path) -> None:
    image = make_image("token\n")
    seen: list[tuple[str, str]] = []

    def handle(request: BaseHTTPRequestHandler) -> None:
        auth = request.headers.get("Authorization", "")
        seen.append((request.path, auth))
        if request.path.startswith("/token?"):
            wanted = "Basic " + base64.b64encode(b"bob:pw").decode()
            if auth and auth != wanted:
                reply(request, 401, b'{"details": "bad credentials"}')
                return
            assert "scope=repository%3Ateam%2Fapp%3Apull" in request.path and "service=fake" in request.path
            reply(request, 200, json.dumps({"token": "user-token" if auth else "anon-token"}).encode())
        elif auth in ("Bearer user-token", "Bearer anon-token"):
            reply(request, 200, image.manifest.data, {"Content-Type": OCI_MANIFEST})
        else:
            challenge = (f'Bearer realm="http://{request.headers["Host"]}/token",service="fake",'
                         f'scope="repository:team/app:pull"')
            reply(request, 401, b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}',
                  {"WWW-Authenticate": challenge})

    with serve(handle) as netloc:
        ref = f"{netloc}/team/app:1"
        assert RegistryClient(credentials=ANONYMOUS).resolve(ref, AMD64).digest == image.manifest.digest
        assert seen[-1] == ("/v2/team/app/manifests/1", "Bearer anon-token")
        client = RegistryClient(credentials=creds(netloc, "bob", "pw"))
        assert client.resolve(ref, AMD64).digest == image.manifest.digest
        assert seen[-1] == ("/v2/team/app/manifests/1", "Bearer user-token")
        with pytest.raises(RegistryError, match=rf"^pull {ref}: token from {netloc}: unauthorized \(401\)$"):
            RegistryClient(credentials=creds(netloc, "bob", "nope")).resolve(ref, AMD64)


@contextmanager
def blob_server(image: Image, serve_blob: Callable[[BaseHTTPRequestHandler, bytes], None]) -> Iterator[str]:
    def handle(request: BaseHTTPRequestHandler) -> None:
        if request.path.endswith("/manifests/1"):
            reply(request, 200, image.manifest.data, {"Content-Type": OCI_MANIFEST})
        else:
            serve_blob(request, image.layers[0].data)

    with serve(handle) as netloc:
        yield netloc


def test_corrupt_blob_rejected_and_nothing_kept(tmp_path: Path) -> None:
    image = make_image("honest\n")

    def lie(request: BaseHTTPRequestHandler, data: bytes) -> None:
        reply(request, 200, bytes([data[0] ^ 1]) + data[1:])  # same size, other content

    with blob_server(image, lie) as netloc:
        client = RegistryClient(credentials=ANONYMOUS)
        resolved = client.resolve(f"{netloc}/test/liar:1", AMD64)
        layer = resolved.layers[0]
        with pytest.raises(RegistryError, match=rf"blob {layer.digest}: digest mismatch"):
            client.fetch_blob(resolved.name, layer.digest, tmp_path / "layer", size=layer.size)
        assert sorted(tmp_path.iterdir()) == []
        out = io.BytesIO(b"kept")
        out.seek(4)
        with pytest.raises(RegistryError, match="digest mismatch"):
            client.fetch_blob(resolved.name, layer.digest, out, size=layer.size)
        assert out.getvalue() == b"kept"


def dropping_first(requests: list[str], ranges: bool, part: int) -> Callable[[BaseHTTPRequestHandler, bytes], None]:
    """A blob handler whose first answer stops after 1/`part` of the body (the connection drops);
    later ones answer a Range with 206 when `ranges`, else the whole blob again. Each request's
    Range header goes to `requests`."""

    def handle(request: BaseHTTPRequestHandler, data: bytes) -> None:
        wanted = request.headers.get("Range", "")
        requests.append(wanted)
        if len(requests) == 1:
            request.send_response(200)
            request.send_header("Content-Length", str(len(data)))
            request.end_headers()
            request.wfile.write(data[: len(data) // part])
            request.close_connection = True
            return
        if ranges and wanted.startswith("bytes="):
            start = int(wanted[6:].rstrip("-"))
            reply(request, 206, data[start:], {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"})
        else:
            reply(request, 200, data)

    return handle


@pytest.mark.parametrize("ranges", [True, False], ids=["resumed-with-range", "restarted"])
def test_dropped_connection_is_resumed(tmp_path: Path, ranges: bool) -> None:
    image = make_image("resumable\n" * 1000)
    requests: list[str] = []
    with blob_server(image, dropping_first(requests, ranges, 2)) as netloc:
        client = RegistryClient(credentials=ANONYMOUS)
        resolved = client.resolve(f"{netloc}/test/flaky:1", AMD64)
        layer = resolved.layers[0]
        client.fetch_blob(resolved.name, layer.digest, tmp_path / "layer", size=layer.size)
    assert (tmp_path / "layer").read_bytes() == image.layers[0].data
    assert requests == ["", f"bytes={len(image.layers[0].data) // 2}-"]



@pytest.mark.parametrize("ranges", [True, False], ids=["resumed-with-range", "restarted"])
def test_a_streamed_blob_goes_on_after_a_dropped_connection(ranges: bool) -> None:
    """blob_chunks (a layer unpacked as it downloads) cannot take back what it gave: after a drop
    it asks from there on, and a whole answer is skipped up to there; every byte comes once."""
    image = make_image("streamed\n" * 3000)
    requests: list[str] = []
    with blob_server(image, dropping_first(requests, ranges, 3)) as netloc:
        client = RegistryClient(credentials=ANONYMOUS)
        resolved = client.resolve(f"{netloc}/test/flaky:1", AMD64)
        layer = resolved.layers[0]
        seen: list[int] = []
        pieces = list(client.blob_chunks(resolved.name, layer.digest, size=layer.size, progress=seen.append))
    assert b"".join(pieces) == image.layers[0].data
    assert requests == ["", f"bytes={len(image.layers[0].data) // 3}-"]
    assert seen[-1] == layer.size and seen == sorted(seen)


def test_a_streamed_blob_with_a_wrong_digest_raises_at_its_end(tmp_path: Path) -> None:
    image = make_image("honest\n")

    def lie(request: BaseHTTPRequestHandler, data: bytes) -> None:
        reply(request, 200, bytes([data[0] ^ 1]) + data[1:])

    with blob_server(image, lie) as netloc:
        client = RegistryClient(credentials=ANONYMOUS)
        resolved = client.resolve(f"{netloc}/test/liar:1", AMD64)
        layer = resolved.layers[0]
        chunks = client.blob_chunks(resolved.name, layer.digest, size=layer.size)
        first = next(chunks)  # given out before the end: the caller must not keep it yet
        assert first
        with pytest.raises(RegistryError, match=rf"blob {layer.digest}: digest mismatch"):
            list(chunks)


def test_docker_schema2_media_types(plain: tuple[Registry, dict[str, Image]], tmp_path: Path) -> None:
    registry, images = plain
    layout = tmp_path / "layout"
    write_layout(layout, "1", images["hello"].manifest, [images["hello"]])
    registry.push(layout, "1", "test/docker", docker_format=True)
    resolved = RegistryClient(credentials=ANONYMOUS).resolve(f"{registry.netloc}/test/docker:1", AMD64)
    assert resolved.media_type == DOCKER_MANIFEST
    assert resolved.config.media_type == "application/vnd.docker.container.image.v1+json"
    assert resolved.layers[0].media_type == "application/vnd.docker.image.rootfs.diff.tar.gzip"


def test_mirror_order_capabilities_and_fallback(plain: tuple[Registry, dict[str, Image]], tmp_path: Path) -> None:
    registry, images = plain
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    digest = images["hello"].manifest.digest
    (tmp_path / "docker.io").mkdir()
    (tmp_path / "docker.io" / "hosts.toml").write_text(
        f'server = "http://{registry.netloc}"\n'
        f'[host."http://{dead}"]\n  capabilities = ["pull", "resolve"]\n')
    client = RegistryClient(credentials=ANONYMOUS, mirrors=Mirrors(tmp_path))
    assert client.resolve("mirrored:1", AMD64).digest == digest  # the dead mirror first, then the server
    with pytest.raises(RegistryError, match=rf"^pull docker.io/library/absent:1: manifest unknown "
                                             rf"\(404 from mirror {registry.netloc}\); "
                                             rf"tried first: cannot reach {dead}: connection refused$"):
        client.resolve("absent:1", AMD64)
    # A pull-only mirror is never asked to resolve a tag, only for content by digest.
    (tmp_path / "docker.io" / "hosts.toml").write_text(
        f'server = "http://{dead}"\n'
        f'[host."http://{registry.netloc}"]\n  capabilities = ["pull"]\n')
    with pytest.raises(RegistryError, match=rf"^pull docker.io/library/mirrored:1: cannot reach {dead}"):
        client.resolve("mirrored:1", AMD64)
    assert client.resolve(f"mirrored@{digest}", AMD64).digest == digest


def test_identity_token_uses_the_refresh_grant() -> None:
    image = make_image("oauth\n")
    forms: list[str] = []

    def handle(request: BaseHTTPRequestHandler) -> None:
        if request.command == "POST" and request.path == "/token":
            forms.append(request.rfile.read(int(request.headers["Content-Length"])).decode())
            reply(request, 200, b'{"access_token": "oauth-token"}')
        elif request.headers.get("Authorization") == "Bearer oauth-token":
            reply(request, 200, image.manifest.data, {"Content-Type": OCI_MANIFEST})
        else:
            reply(request, 401, b"", {"WWW-Authenticate": f'Bearer realm="http://{request.headers["Host"]}/token",'
                                                          f'service="fake"'})

    with serve(handle) as netloc:
        config = {"auths": {netloc: {"identitytoken": "refresh-me"}}}
        client = RegistryClient(credentials=Credentials.from_json(json.dumps(config).encode(), "test"))
        assert client.resolve(f"{netloc}/team/app:1", AMD64).digest == image.manifest.digest
    assert forms and "grant_type=refresh_token" in forms[0] and "refresh_token=refresh-me" in forms[0]
    assert "scope=repository%3Ateam%2Fapp%3Apull" in forms[0]


def test_redirect_to_blob_storage_drops_credentials(tmp_path: Path) -> None:
    image = make_image("redirected\n")
    storage_saw: list[str] = []

    def storage(request: BaseHTTPRequestHandler) -> None:
        storage_saw.append(request.headers.get("Authorization", ""))
        reply(request, 200, image.layers[0].data)

    with serve(storage) as storage_netloc:
        def registry(request: BaseHTTPRequestHandler) -> None:
            if request.headers.get("Authorization") != "Basic " + base64.b64encode(b"u:p").decode():
                reply(request, 401, b"", {"WWW-Authenticate": 'Basic realm="r"'})
            elif "/manifests/" in request.path:
                reply(request, 200, image.manifest.data, {"Content-Type": OCI_MANIFEST})
            else:
                reply(request, 307, b"", {"Location": f"http://{storage_netloc}/signed/blob?sig=1"})

        with serve(registry) as netloc:
            client = RegistryClient(credentials=creds(netloc, "u", "p"))
            resolved = client.resolve(f"{netloc}/team/app:1", AMD64)
            layer = resolved.layers[0]
            client.fetch_blob(resolved.name, layer.digest, tmp_path / "layer", size=layer.size)
    assert (tmp_path / "layer").read_bytes() == image.layers[0].data
    assert storage_saw == [""]


def test_bearer_wrong_secret_then_right_one() -> None:
    image = make_image("second\n")
    good = "Basic " + base64.b64encode(b"bob:right").decode()

    def handle(request: BaseHTTPRequestHandler) -> None:
        auth = request.headers.get("Authorization", "")
        if request.path.startswith("/token"):
            if auth == good:
                reply(request, 200, b'{"token": "t"}')
            else:
                reply(request, 401, b"")
        elif auth == "Bearer t":
            reply(request, 200, image.manifest.data, {"Content-Type": OCI_MANIFEST})
        else:
            reply(request, 401, b"", {"WWW-Authenticate": f'Bearer realm="http://{request.headers["Host"]}/token"'})

    with serve(handle) as netloc:
        both = creds(netloc, "bob", "wrong").then(creds(netloc, "bob", "right"))
        assert RegistryClient(credentials=both).resolve(f"{netloc}/team/app:1", AMD64).digest == image.manifest.digest


# -- a whole pull: layers fetched and unpacked on threads (issue 12's pull speed) --

def layered_image(count: int) -> tuple[Blob, dict[str, bytes]]:
    """A manifest of `count` gzip layers (one 200 kB file each) and its blobs by digest."""
    import gzip
    import hashlib
    import os

    layers, diff_ids = [], []
    for i in range(count):
        tar = tar_of({f"layer{i}/data": os.urandom(200_000)})
        diff_ids.append("sha256:" + hashlib.sha256(tar).hexdigest())
        layers.append(Blob(OCI_LAYER, gzip.compress(tar, mtime=0)))
    config = Blob(OCI_CONFIG, json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                                          "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode())
    manifest = Blob(OCI_MANIFEST, json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                                              "config": config.descriptor(),
                                              "layers": [b.descriptor() for b in layers]}).encode())
    return manifest, {b.digest: b.data for b in [config, *layers]}


@contextmanager
def layered_server(manifest: Blob, blobs: dict[str, bytes], liar: str = "") -> Iterator[str]:
    """Serves `manifest` as test/layers:1 and its blobs; the blob `liar` with one bit flipped."""
    def handle(request: BaseHTTPRequestHandler) -> None:
        if request.path.endswith("/manifests/1"):
            reply(request, 200, manifest.data, {"Content-Type": OCI_MANIFEST})
            return
        digest = request.path.rpartition("/")[2]
        data = blobs[digest]
        reply(request, 200, bytes([data[0] ^ 1]) + data[1:] if digest == liar else data)

    with serve(handle) as netloc:
        yield netloc


def test_a_corrupt_layer_fails_the_pull_while_the_others_unpack_and_nothing_is_named(tmp_path: Path) -> None:
    from sandbox.images.pull import pull
    from sandbox.images.store import ImageStore

    manifest, blobs = layered_image(5)
    liar = json.loads(manifest.data)["layers"][3]["digest"]
    store = ImageStore(tmp_path / "images")
    with layered_server(manifest, blobs, liar) as netloc:
        with pytest.raises(RegistryError, match=rf"blob {liar}: digest mismatch"):
            pull(store, f"{netloc}/test/layers:1", RegistryClient(credentials=ANONYMOUS), AMD64)
    assert store.refs() == {}, "a failed pull names nothing"
    assert not store.blob_path(liar).exists()
    layers = tmp_path / "images" / "layers"
    assert not list(layers.glob(".tmp-*")), "a layer's partial directory outlived the pull"
    assert not list((tmp_path / "images" / "ingest").glob("*.partial"))
    with layered_server(manifest, blobs) as netloc:  # the same store, an honest registry: a clean pull
        image = pull(store, f"{netloc}/test/layers:1", RegistryClient(credentials=ANONYMOUS), AMD64)
    assert [sorted(p.name for p in layer.iterdir()) for layer in image.layers] == [[f"layer{i}"] for i in range(5)]
    assert all((layer / f"layer{i}" / "data").stat().st_size == 200_000 for i, layer in enumerate(image.layers))
    assert store.refs() == {image.name: manifest.digest}
