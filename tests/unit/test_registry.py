"""The pure parts of the registry client (sandbox/images/registry.py, auth.py, mirrors.py): request
URLs, platform selection, media types, auth challenges and credentials, hosts.toml, the plain-HTTP
rule. The live half is tests/integration/test_registry_live.py."""

from __future__ import annotations

import base64
import json
import socket
import threading
from pathlib import Path

import pytest

from sandbox.errors import ImageError
from sandbox.images.auth import Challenge, Credential, Credentials, normalize_key, parse_challenges, token_url
from sandbox.images.mirrors import Host, Mirrors, namespaces, origin
from sandbox.images.registry import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    Platform,
    RegistryClient,
    RegistryError,
    _host_port,
    is_loopback,
    manifest_descriptors,
    parse_manifest,
    request_path,
    select_platform,
)

D1, D2, D3 = ("sha256:" + c * 64 for c in "123")


def test_short_name_goes_to_docker_hub_api_host() -> None:
    host = origin("docker.io")
    assert host.netloc == "registry-1.docker.io" and host.url == "https://registry-1.docker.io/v2"
    assert request_path(host, "library/busybox", "manifests/latest", "docker.io") == \
        "/v2/library/busybox/manifests/latest"
    mirror = Host("http", "127.0.0.1:5000", is_mirror=True)
    assert request_path(mirror, "library/busybox", f"blobs/{D1}", "docker.io") == \
        f"/v2/library/busybox/blobs/{D1}?ns=docker.io"
    overridden = Host("https", "mirror.example", "/base", is_mirror=True)
    assert request_path(overridden, "x/y", "manifests/1", "registry.example:5000") == \
        "/base/x/y/manifests/1?ns=registry.example:5000"


def entry(digest: str, architecture: str, variant: str = "", os: str = "linux",
          media_type: str = OCI_MANIFEST) -> dict[str, object]:
    platform = {"os": os, "architecture": architecture, **({"variant": variant} if variant else {})}
    return {"mediaType": media_type, "digest": digest, "size": 10, "platform": platform}


@pytest.mark.parametrize(("entries", "platform", "chosen"), [
    ([entry(D1, "arm64", "v8"), entry(D2, "amd64")], Platform("linux", "amd64"), D2),
    ([entry(D1, "arm64"), entry(D2, "arm64", "v8")], Platform("linux", "arm64"), D2),  # default variant first
    ([entry(D1, "arm64")], Platform("linux", "arm64", "v8"), D1),  # no variant = the default one
    ([entry(D1, "arm", "v6"), entry(D2, "arm", "v7")], Platform("linux", "arm"), D2),
    ([entry(D1, "amd64", os="unknown"), entry(D2, "amd64")], Platform("linux", "amd64"), D2),  # attestations
    ([entry(D1, "amd64", "v3"), entry(D2, "amd64")], Platform("linux", "amd64"), D2),
])
def test_platform_selection(entries: list[dict[str, object]], platform: Platform, chosen: str) -> None:
    assert select_platform({"manifests": entries}, platform, "x").digest == chosen


def test_platform_missing_names_what_is_offered() -> None:
    index = {"manifests": [entry(D1, "arm", "v6"), entry(D2, "arm64", "v8")]}
    with pytest.raises(RegistryError, match=r"^pull x: no manifest for platform linux/arm/v7 in the index "
                                             r"\(offered: linux/arm/v6, linux/arm64/v8\)$"):
        select_platform(index, Platform("linux", "arm", "v7"), "x")


def test_default_platform_is_this_machine_in_goarch_names() -> None:
    import os

    expected = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    assert Platform().os == "linux" and Platform().architecture == expected


def manifest(media_type: str | None = OCI_MANIFEST) -> bytes:
    doc: dict[str, object] = {"schemaVersion": 2,
                              "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": D1,
                                         "size": 5},
                              "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                          "digest": D2, "size": 7}]}
    if media_type:
        doc["mediaType"] = media_type
    return json.dumps(doc).encode()


@pytest.mark.parametrize(("body", "content_type", "media_type"), [
    (manifest(), OCI_MANIFEST, OCI_MANIFEST),
    (manifest(DOCKER_MANIFEST), DOCKER_MANIFEST, DOCKER_MANIFEST),
    (manifest(None), "application/octet-stream", OCI_MANIFEST),  # OCI made mediaType optional
    (manifest(None), OCI_MANIFEST, OCI_MANIFEST),
    (json.dumps({"schemaVersion": 2, "manifests": []}).encode(), "", OCI_INDEX),
    (json.dumps({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": []}).encode(), DOCKER_LIST, DOCKER_LIST),
])
def test_media_types(body: bytes, content_type: str, media_type: str) -> None:
    assert parse_manifest(body, content_type, "x")[0] == media_type


@pytest.mark.parametrize(("body", "content_type", "message"), [
    (b'{"schemaVersion": 1, "fsLayers": []}', "application/json", "schema 1 is not supported"),
    (b"{}", "application/vnd.docker.distribution.manifest.v1+prettyjws", "schema 1 is not supported"),
    (manifest(OCI_MANIFEST), DOCKER_MANIFEST, f"served as {DOCKER_MANIFEST} but the manifest says {OCI_MANIFEST}"),
    (manifest("application/vnd.example+json"), "", "unsupported manifest type application/vnd.example+json"),
    (b"[1]", OCI_MANIFEST, "not a JSON object"),
    (b"\xff", OCI_MANIFEST, "not JSON"),
])
def test_media_types_refused(body: bytes, content_type: str, message: str) -> None:
    with pytest.raises(RegistryError, match="^pull x: .*" + message.replace("+", r"\+")):
        parse_manifest(body, content_type, "x")


def test_manifest_descriptors_checked() -> None:
    config, layers = manifest_descriptors(parse_manifest(manifest(), OCI_MANIFEST, "x")[1], "x")
    assert (config.digest, config.size) == (D1, 5) and [(d.digest, d.size) for d in layers] == [(D2, 7)]
    bad = json.loads(manifest())
    bad["layers"][0]["digest"] = "sha256:../../etc"
    with pytest.raises(RegistryError, match=r"layers\[0\] 'sha256:../../etc' is not sha256"):
        manifest_descriptors(bad, "x")
    bad["layers"][0] = {"mediaType": "m", "digest": D2, "size": -1}
    with pytest.raises(RegistryError, match=r"layers\[0\].size must be a non-negative integer"):
        manifest_descriptors(bad, "x")


@pytest.mark.parametrize(("header", "expected"), [
    ('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
     'scope="repository:library/busybox:pull"',
     [Challenge("bearer", {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                           "scope": "repository:library/busybox:pull"})]),
    ('Basic realm="basic-realm"', [Challenge("basic", {"realm": "basic-realm"})]),
    ('Basic realm="a, \\"b\\"", Bearer realm=https://t/x, service=s',
     [Challenge("basic", {"realm": 'a, "b"'}), Challenge("bearer", {"realm": "https://t/x", "service": "s"})]),
    ("", []),
])
def test_challenge_parsing(header: str, expected: list[Challenge]) -> None:
    assert parse_challenges(header) == expected


def test_token_url_carries_service_and_scopes() -> None:
    challenge = Challenge("bearer", {"realm": "https://auth.docker.io/token", "service": "registry.docker.io"})
    assert token_url(challenge, ["repository:library/busybox:pull"]) == \
        "https://auth.docker.io/token?service=registry.docker.io&scope=repository%3Alibrary%2Fbusybox%3Apull"
    with pytest.raises(ImageError, match="no usable realm"):
        token_url(Challenge("bearer", {"realm": "file:///etc/passwd"}), [])


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_docker_config_and_secret_payloads() -> None:
    config = {"auths": {"https://index.docker.io/v1/": {"auth": b64("hub:pw")},
                        "registry.example:5000": {"username": "u", "password": "p:with:colons"},
                        "*.corp.example": {"auth": b64("wild:card")},
                        "helper.example": {}}, "credsStore": "desktop"}
    creds = Credentials.from_json(json.dumps(config).encode(), "config.json")
    assert creds.for_registry("docker.io") == [Credential("hub", "pw")]
    assert creds.for_registry("registry-1.docker.io") == [Credential("hub", "pw")]
    assert creds.for_registry("registry.example:5000") == [Credential("u", "p:with:colons")]
    assert creds.for_registry("registry.example") == []
    assert creds.for_registry("a.corp.example") == [Credential("wild", "card")]
    assert creds.for_registry("a.b.corp.example") == []  # a glob matches one label, as the kubelet's
    assert creds.for_registry("helper.example") == []
    assert "pw" not in repr(creds.for_registry("docker.io"))
    secret = Credentials.from_json(json.dumps({"auths": {"docker.io": {"auth": b64("pod:secret")}}}).encode(), "s")
    assert secret.then(creds).for_registry("docker.io") == [Credential("pod", "secret"), Credential("hub", "pw")]


def test_a_key_with_a_path_serves_only_the_repositories_under_it() -> None:
    """The kubelet's keyring: `registry.example:5000/team` matches `team/app` and not `other/app`;
    Docker's `/v1/` and `/v2/` API paths name the whole registry."""
    config = {"auths": {"registry.example:5000/team": {"auth": b64("team:pw")},
                        "http://registry.example:5000/other/": {"auth": b64("other:pw")},
                        "https://registry.example:5000/v2/": {"auth": b64("all:pw")}}}
    creds = Credentials.from_json(json.dumps(config).encode(), "secret")
    assert creds.for_registry("registry.example:5000", "team/app") == [Credential("team", "pw"), Credential("all", "pw")]
    assert creds.for_registry("registry.example:5000", "other/app") == [Credential("other", "pw"), Credential("all", "pw")]
    assert creds.for_registry("registry.example:5000", "library/busybox") == [Credential("all", "pw")]
    assert creds.for_registry("registry.example", "team/app") == []


@pytest.mark.parametrize(("payload", "message"), [
    (b"not json", "not JSON"),
    (b'{"auths": []}', "auths is not an object"),
    (b'{"auths": {"x": {"auth": "bm9jb2xvbg=="}}}', "auth is not base64 of user:password"),
    (b'{"auths": {"x": 1}}', "not an object"),
])
def test_bad_credentials_named(payload: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=f"^registry credentials secret/regcred: .*{message}"):
        Credentials.from_json(payload, "secret/regcred")


def test_credentials_file_missing_means_anonymous(tmp_path: Path) -> None:
    assert Credentials.from_docker_config(tmp_path / "absent.json").for_registry("docker.io") == []


@pytest.mark.parametrize(("key", "normal"), [
    ("https://index.docker.io/v1/", "docker.io"), ("Registry.Example:5000/", "registry.example:5000"),
    ("http://localhost:5000", "localhost:5000"),
])
def test_key_normalization(key: str, normal: str) -> None:
    assert normalize_key(key) == normal


def test_hosts_toml_namespace_order() -> None:
    assert namespaces("myregistry.io:5000") == ["myregistry.io_5000_", "myregistry.io:5000", "_default"]
    assert namespaces("docker.io") == ["docker.io", "_default"]


def write_hosts(root: Path, namespace: str, text: str) -> None:
    (root / namespace).mkdir(parents=True, exist_ok=True)
    (root / namespace / "hosts.toml").write_text(text)


def test_hosts_toml_mirrors_then_server(tmp_path: Path) -> None:
    write_hosts(tmp_path, "docker.io", """
server = "https://registry-1.docker.io"
[host."https://public-mirror.example.com"]
  capabilities = ["pull"]
[host."http://127.0.0.1:5000"]
  capabilities = ["pull", "resolve"]
  ca = "mirror.crt"
  [host."http://127.0.0.1:5000".header]
    x-custom = ["a", "b"]
""")
    hosts = Mirrors(tmp_path).hosts_for("docker.io")
    assert [(h.scheme, h.netloc, h.capabilities, h.is_mirror) for h in hosts] == [
        ("https", "public-mirror.example.com", frozenset({"pull"}), True),
        ("http", "127.0.0.1:5000", frozenset({"pull", "resolve"}), True),
        ("https", "registry-1.docker.io", frozenset({"pull", "resolve", "push"}), False),
    ]
    assert hosts[1].ca_files == (str(tmp_path / "docker.io" / "mirror.crt"),)
    assert hosts[1].headers == (("x-custom", "a"), ("x-custom", "b"))


def test_hosts_toml_without_server_falls_back_to_origin_and_default(tmp_path: Path) -> None:
    write_hosts(tmp_path, "_default", '[host."https://registry.example.com/base"]\n  override_path = true\n')
    write_hosts(tmp_path, "quay.io_443_", 'server = "https://quay-mirror.example"\n')
    hosts = Mirrors(tmp_path).hosts_for("ghcr.io")
    assert [(h.url, h.is_mirror) for h in hosts] == [("https://registry.example.com/base", True),
                                                     ("https://ghcr.io/v2", False)]
    assert [h.netloc for h in Mirrors(tmp_path).hosts_for("quay.io:443")] == ["quay-mirror.example"]
    assert Mirrors(tmp_path / "none").hosts_for("docker.io") == [origin("docker.io")]


@pytest.mark.parametrize(("text", "message"), [
    ('[host."https://m"]\n  skip_verify = true\n', "skip_verify is not supported"),
    ('[host."https://m"]\n  capabilities = ["pull", "fly"]\n', "unknown capabilities fly"),
    ('[host."ftp://m"]\n', "not an http\\(s\\) URL"),
    ('sever = "https://typo"\n', "unknown key\\(s\\) sever"),
    ('server = [\n', "invalid value"),
    ('[host."https://m"]\n  dial_timeout = "soon"\n', "not a duration"),
])
def test_hosts_toml_refusals(tmp_path: Path, text: str, message: str) -> None:
    write_hosts(tmp_path, "docker.io", text)
    with pytest.raises(ImageError, match=f"(?i)^registry hosts {tmp_path}/docker.io/hosts.toml: .*{message}"):
        Mirrors(tmp_path).hosts_for("docker.io")


@pytest.mark.parametrize(("netloc", "loopback"), [
    ("127.0.0.1:5000", True), ("127.8.9.10", True), ("[::1]:5000", True), ("localhost:5000", True),
    ("::1", True), ("10.0.0.1:5000", False), ("registry.example", False), ("localhost.example", False),
])
def test_loopback_rule(netloc: str, loopback: bool) -> None:
    assert is_loopback(netloc) is loopback


@pytest.mark.parametrize(("netloc", "host", "port"), [
    ("127.0.0.1:5000", "127.0.0.1", 5000), ("[::1]:5000", "::1", 5000), ("[::1]", "::1", 443),
    ("localhost", "localhost", 443), ("::1", "::1", 443),
])
def test_probe_address(netloc: str, host: str, port: int) -> None:
    assert _host_port(netloc) == (host, port)


@pytest.mark.parametrize(("answer", "plain"), [
    (b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n", True),  # what docker-registry says
    (b"", True),  # a plain server that only hangs up
    (b"\x15\x03\x03\x00\x02\x02\x28", False),  # a TLS alert (handshake failure)
    (b"\x16\x03\x03\x00\x5a\x02", False),  # a ServerHello
])
def test_plain_http_told_from_tls_by_the_answer_to_a_client_hello(answer: bytes, plain: bool) -> None:
    """The probe of a loopback registry: a fixed ClientHello on a bare socket (no SSL context),
    the first byte of the answer deciding. A real TLS server's answers: test_registry_live."""
    listener = socket.create_server(("127.0.0.1", 0))
    heard: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            heard.append(conn.recv(4096))
            conn.sendall(answer)

    server = threading.Thread(target=serve)
    server.start()
    try:
        port = listener.getsockname()[1]
        assert RegistryClient(credentials=Credentials.anonymous())._speaks_plain(f"127.0.0.1:{port}") is plain
    finally:
        server.join(5)
        listener.close()
    hello = heard[0]
    assert hello[:3] == b"\x16\x03\x01" and hello[5] == 1  # a handshake record holding a ClientHello
    assert int.from_bytes(hello[3:5], "big") == len(hello) - 5


def test_plain_http_refused_off_loopback_before_any_connection(tmp_path: Path) -> None:
    write_hosts(tmp_path, "docker.io", 'server = "http://registry.example:5000"\n')
    client = RegistryClient(credentials=Credentials.anonymous(), mirrors=Mirrors(tmp_path))
    with pytest.raises(RegistryError, match=r"^pull docker.io/library/busybox:latest: plain HTTP to "
                                             r"registry.example:5000 refused: .*--insecure-registry"):
        client.resolve("busybox", Platform("linux", "amd64"))


def test_bad_reference_and_digest_refused() -> None:
    client = RegistryClient(credentials=Credentials.anonymous())
    with pytest.raises(RegistryError, match=r"^pull Bad\^Ref: invalid image reference"):
        client.resolve("Bad^Ref", Platform())
    with pytest.raises(RegistryError, match=r"digest 'md5:00' is not sha256"):
        client.fetch_blob("busybox", "md5:00", Path("/nonexistent/x"), size=None)


def test_pull_secret_payloads_by_key() -> None:
    config = json.dumps({"auths": {"r.example": {"auth": b64("a:b")}}}).encode()
    legacy = json.dumps({"r.example": {"auth": b64("c:d")}}).encode()
    assert Credentials.from_pull_secret({".dockerconfigjson": config}, "secret/x").for_registry("r.example") == \
        [Credential("a", "b")]
    assert Credentials.from_pull_secret({".dockercfg": legacy}, "secret/x").for_registry("r.example") == \
        [Credential("c", "d")]
    assert Credentials.from_pull_secret({"token": b"x"}, "secret/x").entries == ()
    with pytest.raises(ImageError, match=r"^registry credentials secret/x: .dockerconfigjson: not JSON"):
        Credentials.from_pull_secret({".dockerconfigjson": b"{"}, "secret/x")
