"""Layers unpacked while their blobs download (issue 12's pull speed, images/streamed.py and
ImageStore.pull_layer): the blob written as it passes, nothing renamed into the store before its
digest (and the layer's diff_id) matched, a corrupt download named as such even when its archive
also breaks, and a resumed answer that restarts from byte 0 skipped up to where the last one
stopped (registry._body)."""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from tarballs import tar_of

from sandbox.errors import ImageError
from sandbox.images.extract import LayerError, streamable
from sandbox.images.registry import RegistryError, _body, _Received
from sandbox.images.store import ImageStore
from sandbox.images.streamed import BlobTee, unpack_streamed

GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
TAR = "application/vnd.oci.image.layer.v1.tar"
ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def pieces(data: bytes, size: int = 100_000, *, fail: Exception | None = None) -> Iterator[bytes]:
    """`data` as a registry's iterator gives it; `fail` raised after the last piece, as the
    registry raises a digest mismatch instead of ending."""
    for i in range(0, len(data), size):
        yield data[i:i + size]
    if fail is not None:
        raise fail


class Response:
    """What _body reads of an http.client response: read(n) (here at most 70 000 bytes a call)
    and `length`, the bytes still expected."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.length: int | None = len(data)

    def read(self, n: int) -> bytes:
        start = len(self.data) - (self.length or 0)
        out = self.data[start:start + min(n, 70_000)]
        self.length = (self.length or 0) - len(out)
        return out


def test_the_tee_reads_in_any_sizes_and_its_file_holds_what_was_read(tmp_path: Path) -> None:
    data = os.urandom(250_000)
    fd = os.open(tmp_path / "blob", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        tee = BlobTee(pieces(data), fd)
        got = tee.read(10) + tee.read(150_000) + tee.read(0)
        assert got == data[:len(got)]
        written = (tmp_path / "blob").read_bytes()
        assert written == data[:200_000], "the file holds whole pieces as they are taken"
        tee.drain()
        assert tee.read(10) == b""
        tee.close()
    finally:
        os.close(fd)
    assert (tmp_path / "blob").read_bytes() == data


def test_closing_the_tee_early_closes_the_source(tmp_path: Path) -> None:
    closed: list[bool] = []

    def endless() -> Iterator[bytes]:
        try:
            while True:
                yield b"x" * 10_000
        finally:
            closed.append(True)

    fd = os.open(tmp_path / "blob", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        tee = BlobTee(endless(), fd)
        assert tee.read(5) == b"xxxxx"
        tee.close()
        assert closed == [True]
    finally:
        os.close(fd)


def test_the_sources_error_comes_out_of_the_reader(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "blob", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        tee = BlobTee(pieces(b"abc", 1, fail=RegistryError("digest mismatch")), fd)
        assert tee.read(10) == b"a"
        with pytest.raises(RegistryError, match="digest mismatch"):
            tee.drain()
        assert tee.read(1) == b""
        tee.close()
    finally:
        os.close(fd)


@pytest.mark.parametrize("media_type", [GZIP, TAR])
def test_a_streamed_layer_is_unpacked_and_its_blob_written_whole(tmp_path: Path, media_type: str) -> None:
    files = {f"dir/file{i}": os.urandom(30_000) + b"text " * 10_000 for i in range(12)}
    layer = tar_of(files)
    blob = gzip.compress(layer) if media_type == GZIP else layer
    (tmp_path / "tree").mkdir()
    diff_id = unpack_streamed(pieces(blob, 65_000), media_type, tmp_path / "partial", tmp_path / "tree")
    assert diff_id == sha(layer)
    assert (tmp_path / "partial").read_bytes() == blob
    assert {f"dir/{p.name}": p.read_bytes() for p in (tmp_path / "tree" / "dir").iterdir()} == files


def test_a_corrupt_download_is_named_as_such_though_its_archive_breaks_first(tmp_path: Path) -> None:
    blob = bytearray(gzip.compress(tar_of({"f": os.urandom(50_000)})))
    blob[0] ^= 1  # no gzip header any more: the archive fails at once
    mismatch = RegistryError("pull x: blob sha256:ab: digest mismatch")
    (tmp_path / "tree").mkdir()
    with pytest.raises(RegistryError, match="digest mismatch"):
        unpack_streamed(pieces(bytes(blob), fail=mismatch), GZIP, tmp_path / "partial", tmp_path / "tree")
    # an honest blob with a broken archive stays a layer error
    with pytest.raises(LayerError, match="cannot read the layer stream"):
        unpack_streamed(pieces(bytes(blob)), GZIP, tmp_path / "partial2", tmp_path / "tree")


def test_only_gzip_and_plain_tar_stream() -> None:
    assert streamable(GZIP) and streamable(TAR)
    assert not streamable(ZSTD) and not streamable("application/octet-stream")


# --- the store ---------------------------------------------------------------------------------

def layer_blob(files: dict[str, bytes]) -> tuple[dict[str, object], str, bytes]:
    layer = tar_of(files)
    blob = gzip.compress(layer)
    return {"mediaType": GZIP, "digest": sha(blob), "size": len(blob)}, sha(layer), blob


def no_fetch(desc: dict[str, object]) -> None:
    raise AssertionError("the layer streams: fetch is not called")


def test_pull_layer_streams_then_places_blob_and_layer(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    desc, diff_id, blob = layer_blob({"a/b": b"content" * 1000})
    store.pull_layer(desc, diff_id, no_fetch, lambda d: pieces(blob, 1000))
    assert store.blob_path(str(desc["digest"])).read_bytes() == blob
    assert oct(store.blob_path(str(desc["digest"])).stat().st_mode & 0o777) == "0o644"
    assert (store.layer_path(diff_id) / "a" / "b").read_bytes() == b"content" * 1000
    assert oct(store.layer_path(diff_id).stat().st_mode & 0o777) == "0o755"
    assert list((tmp_path / "images" / "ingest").iterdir()) == []
    assert [p.name for p in (tmp_path / "images" / "layers").iterdir()] == ["sha256"]


def test_pull_layer_keeps_nothing_of_a_blob_whose_digest_failed(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    desc, diff_id, blob = layer_blob({"f": b"x" * 5000})
    mismatch = RegistryError("digest mismatch")
    with pytest.raises(RegistryError, match="digest mismatch"):
        store.pull_layer(desc, diff_id, no_fetch, lambda d: pieces(blob, 1000, fail=mismatch))
    assert not store.blob_path(str(desc["digest"])).exists()
    assert not store.layer_path(diff_id).exists()
    assert list((tmp_path / "images" / "ingest").iterdir()) == []
    assert [p.name for p in (tmp_path / "images" / "layers").iterdir()] == []


def test_pull_layer_with_a_wrong_diff_id_stores_the_verified_blob_but_no_layer(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    desc, _, blob = layer_blob({"f": b"x" * 5000})
    with pytest.raises(ImageError, match="uncompressed content is sha256:"):
        store.pull_layer(desc, "sha256:" + "0" * 64, no_fetch, lambda d: pieces(blob))
    assert store.blob_path(str(desc["digest"])).read_bytes() == blob  # as a fetch-then-unpack leaves it
    assert [p.name for p in (tmp_path / "images" / "layers").iterdir()] == []


def test_pull_layer_fetches_only_the_blob_of_a_layer_unpacked_already(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    desc, diff_id, blob = layer_blob({"f": b"y" * 100})
    store.layer_path(diff_id).mkdir(parents=True)
    fetched: list[object] = []

    def fetch(d: dict[str, object]) -> None:
        fetched.append(d["digest"])
        store.ingest([blob], expected=str(d["digest"]))

    store.pull_layer(desc, diff_id, fetch, lambda d: pytest.fail("streamed a layer unpacked already"))
    assert fetched == [desc["digest"]]
    assert list(store.layer_path(diff_id).iterdir()) == []  # not unpacked again


# --- the registry's body reader ----------------------------------------------------------------

@pytest.mark.parametrize("skip", [0, 1, 69_999, 70_000, 70_001, 150_000])
def test_a_whole_answer_after_a_drop_is_skipped_up_to_what_was_given(skip: int) -> None:
    data = os.urandom(200_000)
    received = _Received(hashlib.sha256())
    received.count = skip
    received.hasher.update(data[:skip])
    body = _body(Response(data), received, skip, len(data), None, "pull x")  # type: ignore[arg-type]
    out = b"".join(body)
    assert data[:skip] + out == data
    assert received.count == len(data) and received.hasher.hexdigest() == hashlib.sha256(data).hexdigest()


def test_a_body_larger_than_its_descriptor_is_refused() -> None:
    body = _body(Response(b"x" * 1000), _Received(hashlib.sha256()), 0, 999, None, "pull x")  # type: ignore[arg-type]
    with pytest.raises(RegistryError, match="larger than the 999 bytes"):
        b"".join(body)


def test_the_pull_path_imports_no_tarfile_logging_or_tempfile() -> None:
    """With the native extractor a pull needs none of them (tarfile ~10 ms, logging ~8, tempfile
    with shutil, random, bz2 and lzma ~5): the modules a pull loads are checked in a fresh
    interpreter."""
    import subprocess
    import sys

    code = ("import sys; import sandbox.images.pull, sandbox.images.store, sandbox.images.registry, "
            "sandbox.images.streamed, sandbox.images.untar, sandbox.images.layerbase; "
            "print(sorted({'tarfile', 'logging', 'tempfile', 'isal'} & set(sys.modules)))")
    repo = str(Path(__file__).resolve().parents[2])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": repo}).stdout
    assert out.strip() == "[]"


# --- pull_layers: the layers start while the config downloads -----------------------------------

def stored_config(store: ImageStore, diff_ids: list[str]) -> dict[str, object]:
    digest = store.put_json({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}})
    return {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest, "size": 1}


def test_pull_layers_unpack_before_the_config_is_in_and_check_it_after(tmp_path: Path) -> None:
    """The layers stream at once; the one that first needs a diff_id waits for the config."""
    import threading

    store = ImageStore(tmp_path / "images")
    layers = [layer_blob({f"l{i}/f": os.urandom(20_000)}) for i in range(3)]
    config_in = threading.Event()
    streamed_before_config: list[bool] = []

    def stream(desc: dict[str, object]) -> Iterator[bytes]:
        streamed_before_config.append(not config_in.is_set())
        blob = next(b for d, _, b in layers if d["digest"] == desc["digest"])
        return pieces(blob, 5000)

    manifest: dict[str, object] = {"layers": [d for d, _, _ in layers]}

    def config_stored() -> None:
        manifest["config"] = stored_config(store, [diff_id for _, diff_id, _ in layers])
        config_in.set()

    store.pull_layers("t", "sha256:" + "1" * 64, manifest, config_stored, no_fetch, stream)
    assert len(streamed_before_config) == 3 and streamed_before_config[0], "the first layer did not wait"
    for desc, diff_id, blob in layers:
        assert store.blob_path(str(desc["digest"])).read_bytes() == blob
        assert store.layer_path(diff_id).is_dir()


def test_pull_layers_keep_nothing_when_the_config_fails(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    desc, _, blob = layer_blob({"f": b"x" * 1000})

    def config_stored() -> None:
        raise RegistryError("pull t: blob sha256:...: digest mismatch")

    with pytest.raises(RegistryError, match="digest mismatch"):
        store.pull_layers("t", "sha256:" + "1" * 64, {"layers": [desc]}, config_stored, no_fetch,
                          lambda d: pieces(blob))
    assert not store.blob_path(str(desc["digest"])).exists()
    assert [p.name for p in (tmp_path / "images" / "layers").iterdir()] == []
    assert list((tmp_path / "images" / "ingest").iterdir()) == []


def test_pull_layers_refuse_a_config_that_does_not_pair_with_the_layers(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    desc, diff_id, blob = layer_blob({"f": b"x" * 1000})
    manifest: dict[str, object] = {"layers": [desc], "config": stored_config(store, [diff_id, diff_id])}
    with pytest.raises(ImageError, match="its config lists 2 layers, its manifest 1"):
        store.pull_layers("t", "sha256:" + "1" * 64, manifest, lambda: None, no_fetch, lambda d: pieces(blob))
    assert not store.layer_path(diff_id).exists()


def test_a_plain_http_pull_loads_neither_http_client_nor_ssl_nor_socket_py() -> None:
    """The registry client's point (http1.py): a manifest fetched from a plain-HTTP loopback
    registry (a scripted one here) without http.client, email, ssl or socket.py."""
    import subprocess
    import sys

    code = r'''
import _socket, sys, threading, json
listener = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
listener.bind(("127.0.0.1", 0)); listener.listen(4)
port = listener.getsockname()[1]
body = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "c", "digest": "sha256:" + "a" * 64, "size": 1},
    "layers": [{"mediaType": "l", "digest": "sha256:" + "b" * 64, "size": 1}]}).encode()
def serve():
    for _ in range(2):  # the TLS probe, then the request
        fd, _ = listener._accept()
        sock = _socket.socket(fileno=fd)
        data = sock.recv(65536)
        if data.startswith(b"GET"):
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body) + body)
        else:
            sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        sock.close()
threading.Thread(target=serve, daemon=True).start()
from sandbox.images.auth import Credentials
from sandbox.images.registry import Platform, RegistryClient
resolved = RegistryClient(credentials=Credentials.anonymous()).resolve(f"127.0.0.1:{port}/a/b:1", Platform())
print(len(resolved.layers), sorted({"http.client", "email", "ssl", "socket", "encodings.idna"} & set(sys.modules)))
'''
    repo = str(Path(__file__).resolve().parents[2])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": repo}).stdout
    assert out.strip() == "1 []"


def test_the_pull_path_imports_neither_json_nor_re() -> None:
    """json.decoder imports re, and re enum, functools and collections: ~5 ms of every `image
    pull` when nothing else on its way needs them (manifests through fastjson, refs.json through
    store.refs_text; json only for a credentials file, a token answer, layouts and archives)."""

    code = ("import sandbox.images.pull, sandbox.images.registry, sandbox.images.auth, sandbox.images.store\n"
            "import sandbox.images.streamed, sandbox.images.untar, sandbox.images.mirrors, sandbox.images.http1\n")
    assert _imported_of(code, {"json", "re", "enum", "fnmatch"}) == []


def _imported_of(code: str, unwanted: set[str]) -> list[str]:
    """Which of `unwanted` a fresh interpreter (-S, pathlib's imports deferred as the CLI does)
    has imported after running `code`."""
    import subprocess
    import sys

    code = ("import sys\nfrom sandbox.deferred import defer_pathlib_imports\ndefer_pathlib_imports()  # as the CLI\n"
            f"{code}print(' '.join(sorted(set({sorted(unwanted)!r}) & set(sys.modules))))")
    repo = str(Path(__file__).resolve().parents[2])
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": repo}).stdout
    return out.split()


@pytest.mark.parametrize("refs", [{}, {"docker.io/library/busybox:1.36": "sha256:" + "a" * 64},
                                  {"b/é\"\\n\n": "x", "a": "sha256:1", "0": ""}])
def test_refs_text_is_what_json_writes(refs: dict[str, str]) -> None:
    import json

    from sandbox.images.store import refs_text

    assert refs_text(refs) == json.dumps(refs, indent=1, sort_keys=True)


# --- a pull of an image stored already (issue 12's warm pull) --------------------------------------

class ScriptedRegistry:
    """A plain-HTTP registry on loopback serving one image (its manifest by tag, its blobs by
    digest) and recording each request's path: what a pull asks for, seen from the server."""

    def __init__(self, blobs: dict[str, bytes], manifest: bytes) -> None:
        import http.server
        import threading

        self.paths: list[str] = []
        registry = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802  (http.server's name)
                registry.paths.append(self.path)
                tail = self.path.rsplit("/", 1)[1]
                body = manifest if "/manifests/" in self.path else blobs.get(tail)
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                if "/manifests/" in self.path:
                    self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.netloc = f"127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted_image() -> Iterator[tuple[ScriptedRegistry, list[tuple[dict[str, object], str, bytes]]]]:
    import json

    layers = [layer_blob({f"l{i}/f": os.urandom(30_000)}) for i in range(3)]
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [d for _, d, _ in layers]}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": sha(config), "size": len(config)},
                           "layers": [desc for desc, _, _ in layers]}).encode()
    blobs = {sha(config): config, **{str(desc["digest"]): blob for desc, _, blob in layers}}
    registry = ScriptedRegistry(blobs, manifest)
    try:
        yield registry, layers
    finally:
        registry.close()


def test_a_pull_of_a_stored_image_asks_only_for_its_manifest(tmp_path: Path, scripted_image: tuple[
        ScriptedRegistry, list[tuple[dict[str, object], str, bytes]]]) -> None:
    """The first pull fetches every blob; the second (imagePullPolicy Always on a current image)
    asks for the manifest alone and stores nothing new; a layer tree removed since is unpacked
    again from its stored blob, without a download."""
    from sandbox.images.auth import Credentials
    from sandbox.images.pull import pull
    from sandbox.images.registry import RegistryClient

    registry, layers = scripted_image
    store = ImageStore(tmp_path / "images")
    reference = f"{registry.netloc}/a/b:1"
    first = pull(store, reference, RegistryClient(credentials=Credentials.anonymous()))
    assert sum("/blobs/" in p for p in registry.paths) == 4  # the config and three layers
    assert all(store.layer_path(diff_id).is_dir() for _, diff_id, _ in layers)

    registry.paths.clear()
    again = pull(store, reference, RegistryClient(credentials=Credentials.anonymous()))
    assert registry.paths == ["/v2/a/b/manifests/1"]
    assert again.digest == first.digest and again.layers == first.layers

    import shutil

    shutil.rmtree(store.layer_path(layers[1][1]))
    registry.paths.clear()
    pull(store, reference, RegistryClient(credentials=Credentials.anonymous()))
    assert registry.paths == ["/v2/a/b/manifests/1"]
    assert (store.layer_path(layers[1][1]) / "l1" / "f").is_file()


def test_holds_layers_needs_the_config_every_blob_and_every_tree(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    layers = [layer_blob({f"l{i}/f": b"x" * 100}) for i in range(2)]
    manifest: dict[str, object] = {"layers": [d for d, _, _ in layers]}
    assert not store.holds_layers("t", "sha256:" + "1" * 64, manifest, "sha256:" + "2" * 64)  # no config
    config = stored_config(store, [diff_id for _, diff_id, _ in layers])
    manifest["config"] = config
    config_digest = str(config["digest"])
    assert not store.holds_layers("t", "sha256:" + "1" * 64, manifest, config_digest)
    for desc, diff_id, blob in layers:
        store.pull_layer(desc, diff_id, no_fetch, lambda d, blob=blob: pieces(blob))
    assert store.holds_layers("t", "sha256:" + "1" * 64, manifest, config_digest)
    os.rename(store.layer_path(layers[0][1]), tmp_path / "aside")
    assert not store.holds_layers("t", "sha256:" + "1" * 64, manifest, config_digest)
    os.rename(tmp_path / "aside", store.layer_path(layers[0][1]))
    store.blob_path(str(layers[1][0]["digest"])).unlink()
    assert not store.holds_layers("t", "sha256:" + "1" * 64, manifest, config_digest)


def test_the_pull_path_imports_neither_threading_nor_hashlib() -> None:
    """images/threads.py and images/hashes.py: `threading` (functools, collections, ...) and
    hashlib.py (every constructor, _blake2) are ~2.5 ms of every `image pull`; the pull's modules,
    a layer hash and a thread joined, checked in a fresh interpreter."""
    code = ("import sandbox.images.pull, sandbox.images.registry, sandbox.images.store, sandbox.images.http1\n"
            "import sandbox.images.streamed, sandbox.images.untar\n"
            "from sandbox.images.hashes import new\nfrom sandbox.images.threads import Worker\n"
            "h = new('sha256'); h.update(b'abc'); out = []\nWorker(out.append, h.hexdigest()).join()\n"
            "assert out == ['ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'], out\n")
    assert _imported_of(code, {"threading", "hashlib", "functools", "collections", "_blake2"}) == []


def test_a_worker_joins_after_its_function_even_when_it_raises() -> None:
    import time

    from sandbox.images.pull import _Background
    from sandbox.images.threads import Worker

    done: list[int] = []
    worker = Worker(lambda: (time.sleep(0.05), done.append(1)))
    worker.join()
    worker.join()  # any number of times
    assert done == [1]

    def fail() -> None:
        raise RegistryError("pull t: blob: digest mismatch")

    background = _Background(fail)
    for _ in range(2):  # the error each time it is waited for
        with pytest.raises(RegistryError, match="digest mismatch"):
            background.wait()
