"""A client for registries speaking the OCI distribution API (Docker Registry HTTP API v2): resolve
a reference to one platform's manifest, and stream blobs to disk, or to a caller as they arrive
(blob_chunks: a layer unpacked while it downloads), while checking their digest.

The HTTP client is our own small HTTP/1.1 client (http1.py): a pull makes a handful of GETs per
image (manifest, maybe an index, the config, the layers) that are each a plain request and a
streamed body. It replaced the standard library's http.client, whose import (email.*, and ssl
even for a plain-HTTP registry) cost 15-20 ms of every pull; urllib3/requests would add ~25 ms of
imports and a dependency; the OCI libraries for Python are either unmaintained or wrap a Go
binary. Connections are kept alive and shared by the layer threads (one TLS handshake per
connection instead of one per blob). What a registry needs beyond HTTP lives here: the 401
challenge and token exchange (auth.py holds the pure parts), redirects to blob storage
(Authorization dropped when the host changes), Range requests to resume a dropped download.

Transport rules: HTTPS verified against the system CAs (plus `ca_file` and hosts.toml `ca`
files); plain HTTP only to a loopback address (127.0.0.0/8, ::1, localhost) or a host in
`insecure`, and then only after HTTPS failed at the TLS layer (as Docker treats insecure
registries; a certificate that fails verification is an error, never a reason to go plain).
Mirrors (mirrors.py) are tried first in their order, then the origin.

Manifests: OCI image manifests and indexes, Docker schema 2 manifests and manifest lists; an
index is followed to the entry for the wanted platform. Docker schema 1 is refused by name. Every
manifest and blob is checked against its digest (sha256 or sha512) before it is used or kept.
"""

from __future__ import annotations

import os

from sandbox import fastjson
from sandbox.errors import ImageError
from sandbox.images import goarch
from sandbox.images.auth import Credentials, basic_header, parse_challenges, token_from_response, token_url
from sandbox.images.mirrors import Host, origin
from sandbox.images.reference import DIGEST_HEX_LENGTHS, ImageRef, parse_image_ref
from sandbox.log import get_logger
from sandbox.record import Record

log = get_logger(__name__)  # sandbox.log: `import logging` (~8 ms) only when a message is emitted

TYPE_CHECKING = False
if TYPE_CHECKING:
    import hashlib
    import ssl
    from collections.abc import Callable, Generator, Iterator, Mapping
    from pathlib import Path
    from typing import BinaryIO, TypeVar

    from sandbox.images.auth import Challenge, Credential
    from sandbox.images.http1 import Pool, Response
    from sandbox.images.mirrors import Mirrors

    T = TypeVar("T")

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
SCHEMA1 = frozenset({"application/vnd.docker.distribution.manifest.v1+json",
                     "application/vnd.docker.distribution.manifest.v1+prettyjws"})
MANIFESTS = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEXES = frozenset({OCI_INDEX, DOCKER_LIST})
ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))
MANIFEST_LIMIT = 4 << 20  # containerd's limit: a manifest is metadata, a bigger answer is an attack
ERROR_BODY_LIMIT = 64 << 10
CHUNK = 1 << 20
BLOB_ATTEMPTS = 4  # the first GET and three resumptions after a dropped connection
REDIRECTS = 5
_DEFAULT_VARIANTS = {"arm64": "v8", "arm": "v7"}


class Platform(Record):
    os: str = "linux"
    architecture: str = goarch()
    variant: str = ""  # "" matches the architecture's default variant (arm64: v8, arm: v7) or none

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


class Descriptor(Record):
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None  # index entries only


class Resolved(Record):
    name: str  # canonical: docker.io/library/busybox:latest
    digest: str  # of the platform's manifest
    manifest: bytes
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    index_digest: str = ""  # the index (manifest list) the reference pointed at, if any


class RegistryError(ImageError):
    """A pull that failed: the message names the reference and the registry's status or code."""


class RegistryClient:
    def __init__(self, *, credentials: Credentials, mirrors: Mirrors | None = None,
                 insecure: set[str] | frozenset[str] = frozenset(), ca_file: str | None = None,
                 timeout: float = 30) -> None:
        self.credentials = credentials
        self.mirrors = mirrors
        self.insecure = frozenset(h.lower() for h in insecure)
        self.ca_file = ca_file
        self.timeout = timeout
        self._plain: set[str] = set()  # hosts seen speaking plain HTTP (allowed ones only)
        self._tls: set[str] = set()  # hosts that may speak plain HTTP, seen answering TLS
        self._auth: dict[tuple[str, str], str] = {}  # (host, repository) -> Authorization value
        self._contexts: dict[tuple[str, ...], ssl.SSLContext] = {}
        self._pool: Pool | None = None  # kept-alive connections, made with the first request

    # -- public API --

    def resolve(self, ref: str, platform: Platform) -> Resolved:
        """The manifest `ref` names for `platform`, following an index; RegistryError otherwise."""
        image = _parse(ref)
        need = "pull" if image.digest else "resolve"  # a tag is resolved only by trusted hosts
        data, content_type = self._manifest(image, image.digest or image.tag, need, image.digest)
        digest = _digest_of(data, image.digest or "sha256:")
        media_type, doc = parse_manifest(data, content_type, image.name)
        index_digest = ""
        if media_type in INDEXES:
            index_digest = digest
            entry = select_platform(doc, platform, image.name)
            data, content_type = self._manifest(image, entry.digest, "pull", entry.digest)
            digest = entry.digest
            media_type, doc = parse_manifest(data, content_type, image.name)
            if media_type in INDEXES:
                raise RegistryError(f"pull {image.name}: the index entry for {platform} is itself an index")
        config, layers = manifest_descriptors(doc, image.name)
        return Resolved(image.name, digest, data, media_type, config, layers, index_digest)

    def fetch_blob(self, name: str, digest: str, dest: BinaryIO | Path, *, size: int | None,
                   progress: Callable[[int], None] | None = None) -> None:
        """Stream blob `digest` of repository `name` into `dest` (a file opened for writing, or a
        path written through `<path>.partial` and renamed). A wrong digest or size leaves nothing:
        the path is not created, the file is truncated back. `progress` gets the bytes so far."""
        image = _parse(name)
        _check_digest(digest, image.name)
        if isinstance(dest, os.PathLike):
            self._fetch_to_path(image, digest, dest, size, progress)
            return
        start = dest.tell()
        try:
            self._fetch_blob(image, digest, dest, size, progress)
        except BaseException:
            _rewind(dest, start)
            raise

    def blob_chunks(self, name: str, digest: str, *, size: int | None,
                    progress: Callable[[int], None] | None = None) -> Iterator[bytes]:
        """Blob `digest` of repository `name` in pieces as they arrive, for a caller that uses it
        while it downloads (a layer unpacked from the socket). The size and digest are checked
        after the last piece: the iterator raises RegistryError instead of ending, so nothing
        taken from it may be kept before it has ended. A dropped connection is resumed with
        `Range`, or the whole blob is asked again with the bytes given out already skipped; a
        host that fails goes on to the next host the same way: the digest covers exactly the
        bytes given out, whichever host sent them. A digest mismatch ends the pull (the pieces
        are used already), where fetch_blob tries the next host from the start."""
        image = _parse(name)
        _check_digest(digest, image.name)
        return self._streamed(image, digest, size, progress)

    # -- manifests and blobs --

    def _fetch_to_path(self, image: ImageRef, digest: str, dest: Path, size: int | None,
                       progress: Callable[[int], None] | None) -> None:
        partial = dest.with_name(dest.name + ".partial")
        try:
            with open(partial, "wb") as out:
                self._fetch_blob(image, digest, out, size, progress)
            os.replace(partial, dest)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise

    def _fetch_blob(self, image: ImageRef, digest: str, out: BinaryIO, size: int | None,
                    progress: Callable[[int], None] | None) -> None:
        start = out.tell()
        what = f"pull {image.name}: blob {digest}"

        def from_host(host: Host) -> None:
            received = _Received(_blob_hash(digest))
            for chunk in self._host_chunks(host, image, digest, received, size, progress, what):
                try:
                    out.write(chunk)
                except OSError as e:
                    raise ImageError(f"{what}: write {getattr(out, 'name', 'the destination')}: "
                                     f"{_reason(e)}") from None
            _verify(received, digest, size, host, what)

        self._first_host(image, "pull", from_host, lambda: _rewind(out, start))

    def _streamed(self, image: ImageRef, digest: str, size: int | None,
                  progress: Callable[[int], None] | None) -> Iterator[bytes]:
        what = f"pull {image.name}: blob {digest}"
        received = _Received(_blob_hash(digest))
        failures: list[str] = []
        hosts = self._hosts(image, "pull")
        for i, host in enumerate(hosts):
            try:
                yield from self._host_chunks(host, image, digest, received, size, progress, what)
            except RegistryError as e:
                if i == len(hosts) - 1:
                    raise RegistryError(_with_tried(str(e), failures)) from None
                failures.append(_strip(str(e), image.name, host))
                continue
            _verify(received, digest, size, host, what)
            return

    def _manifest(self, image: ImageRef, reference: str, need: str, pinned: str) -> tuple[bytes, str]:
        """The manifest bytes and Content-Type from the first host that has them."""
        return self._first_host(image, need, lambda host: self._manifest_from(host, image, reference, pinned))

    def _first_host(self, image: ImageRef, need: str, attempt: Callable[[Host], T],
                    undo: Callable[[], None] | None = None) -> T:
        """`attempt` on each host in turn; the last host's error, naming what failed before it."""
        failures: list[str] = []
        hosts = self._hosts(image, need)
        for host in hosts[:-1]:
            try:
                return attempt(host)
            except RegistryError as e:
                failures.append(_strip(str(e), image.name, host))
                if undo is not None:
                    undo()
        try:
            return attempt(hosts[-1])
        except RegistryError as e:
            raise RegistryError(_with_tried(str(e), failures)) from None

    def _manifest_from(self, host: Host, image: ImageRef, reference: str, pinned: str) -> tuple[bytes, str]:
        from sandbox.images.http1 import HTTPError, IncompleteRead

        what = f"pull {image.name}"
        response = self._get(host, image, f"manifests/{reference}", {"Accept": ACCEPT}, what)
        try:
            data = response.read_up_to(MANIFEST_LIMIT + 1)
            if response.length:
                raise IncompleteRead(len(data), response.length)
        except (OSError, HTTPError) as e:
            raise RegistryError(f"{what}: connection to {host.netloc} lost during the manifest: {_reason(e)}") from None
        finally:
            response.close()
        if len(data) > MANIFEST_LIMIT:
            raise RegistryError(f"{what}: manifest larger than {MANIFEST_LIMIT} bytes")
        if pinned and _digest_of(data, pinned) != pinned:
            raise RegistryError(f"{what}: digest mismatch: manifest {pinned} from {host.netloc} "
                                f"hashes to {_digest_of(data, pinned)}")
        return data, response.getheader("Content-Type", "")

    def _host_chunks(self, host: Host, image: ImageRef, digest: str, received: _Received, size: int | None,
                     progress: Callable[[int], None] | None, what: str) -> Iterator[bytes]:
        """One host's copy from `received.count` on, resumed with `Range` after a dropped
        connection where it answers 206 (docker-registry and the big blob stores do), else sent
        whole again with the bytes given out already skipped."""
        for attempt in range(BLOB_ATTEMPTS):
            extra = {"Range": f"bytes={received.count}-"} if received.count else {}
            response = self._get(host, image, f"blobs/{digest}", extra, what)
            try:
                skip = received.count if received.count and not _resumes_at(response, received.count) else 0
                dropped = yield from _body(response, received, skip, size, progress, what)
            finally:
                response.close()
            if dropped is None:
                return
            if attempt == BLOB_ATTEMPTS - 1:
                raise RegistryError(f"{what}: connection to {host.netloc} lost after {received.count} bytes, "
                                    f"{BLOB_ATTEMPTS} attempts: {_reason(dropped)}")
            log.info("%s: connection to %s lost after %d bytes, resuming", what, host.netloc, received.count)

    def _hosts(self, image: ImageRef, need: str) -> list[Host]:
        hosts = self.mirrors.hosts_for(image.registry) if self.mirrors else [origin(image.registry)]
        usable = [h for h in hosts if need in h.capabilities]
        if not usable:
            raise RegistryError(f"pull {image.name}: no configured host may {need} it (hosts.toml capabilities)")
        return usable

    # -- HTTP --

    def _get(self, host: Host, image: ImageRef, tail: str, extra: dict[str, str], what: str) -> Response:
        """GET `<host>/v2/<repository>/<tail>` with the registry's auth; a 2xx response or RegistryError."""
        path = request_path(host, image.repository, tail, image.registry)
        headers = dict(host.headers) | extra
        key = (host.netloc, image.repository)
        if key in self._auth:
            headers["Authorization"] = self._auth[key]
        response = self._follow(host, path, headers, what)
        if response.status == 401:
            challenges = parse_challenges(response.getheader("WWW-Authenticate", ""))
            _drain(response)
            response = self._authorized(host, image, path, headers, challenges, what)
        if response.status >= 300:
            raise RegistryError(_status_error(what, response, host))
        return response

    def _authorized(self, host: Host, image: ImageRef, path: str, headers: dict[str, str],
                    challenges: list[Challenge], what: str) -> Response:
        """Answer a 401: each matching credential in turn (anonymous for a token when none)."""
        challenge = next((c for c in challenges if c.scheme == "bearer"), None) or \
            next((c for c in challenges if c.scheme == "basic"), None)
        if challenge is None:
            raise RegistryError(f"{what}: unauthorized (401 from {host.netloc} without a Basic or Bearer challenge)")
        candidates: list[Credential | None] = [*self.credentials.for_registry(host.netloc, image.repository)]
        if not candidates:
            if challenge.scheme == "basic":
                raise RegistryError(f"{what}: unauthorized: {host.netloc} needs credentials (401)")
            candidates = [None]
        for credential in candidates[:-1]:
            try:
                response = self._with_credential(host, image, path, headers, challenge, credential, what)
            except RegistryError as e:  # a token endpoint refusing this one: the next may do
                log.info("%s", e)
                continue
            if response.status != 401:
                return response
            _drain(response)
        # The last one's 401 is reported by _get with the registry's own message.
        return self._with_credential(host, image, path, headers, challenge, candidates[-1], what)

    def _with_credential(self, host: Host, image: ImageRef, path: str, headers: dict[str, str],
                         challenge: Challenge, credential: Credential | None, what: str) -> Response:
        if credential is None:  # anonymous: only for a token (checked by _authorized)
            authorization = "Bearer " + self._token(challenge, None, image, what)
        elif challenge.scheme == "basic":
            authorization = basic_header(credential)
        else:
            authorization = "Bearer " + self._token(challenge, credential, image, what)
        response = self._follow(host, path, headers | {"Authorization": authorization}, what)
        if response.status != 401:
            self._auth[(host.netloc, image.repository)] = authorization
        return response

    def _token(self, challenge: Challenge, credential: Credential | None, image: ImageRef, what: str) -> str:
        from urllib.parse import urlencode, urlsplit

        scope = f"repository:{image.repository}:pull"
        url = token_url(challenge, [scope])
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        realm = Host(parts.scheme, parts.netloc)
        headers = {}
        method, body = "GET", None
        if credential is not None and credential.identity_token:
            # OAuth2 refresh-token grant, as `docker login` leaves an identity token for it
            method, path = "POST", parts.path
            form = [("grant_type", "refresh_token"), ("refresh_token", credential.identity_token),
                    ("client_id", "sandbox"), ("service", challenge.params.get("service", "")),
                    ("scope", scope)]
            body = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif credential is not None:
            headers["Authorization"] = basic_header(credential)
        response = self._follow(realm, path, headers, what, method=method, body=body)
        try:
            if response.status >= 300:
                raise RegistryError(_status_error(f"{what}: token from {parts.netloc}", response, realm))
            return token_from_response(response.read_up_to(MANIFEST_LIMIT), challenge.params.get("realm", ""))
        finally:
            response.close()

    def _follow(self, host: Host, path: str, headers: dict[str, str], what: str, *,
                method: str = "GET", body: bytes | None = None) -> Response:
        """One request, following redirects (blob stores): Authorization goes only to its host."""
        scheme, netloc = host.scheme, host.netloc
        for _ in range(REDIRECTS + 1):
            response = self._request(scheme, netloc, method, path, headers, body, host.ca_files, what)
            if response.status not in (301, 302, 303, 307, 308):
                return response
            from urllib.parse import urljoin, urlsplit  # ~3 ms: only when a registry redirects

            location = response.getheader("Location", "")
            _drain(response)
            target = urlsplit(urljoin(f"{scheme or 'https'}://{netloc}{path}", location))
            if target.scheme not in ("http", "https") or not target.netloc:
                raise RegistryError(f"{what}: {netloc} redirects to an unusable location {location!r}")
            if target.netloc.lower() != netloc:
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            scheme, netloc = target.scheme, target.netloc.lower()
            path = target.path + (f"?{target.query}" if target.query else "")
            if response.status == 303:
                method, body = "GET", None
        raise RegistryError(f"{what}: more than {REDIRECTS} redirects")

    def _request(self, scheme: str, netloc: str, method: str, path: str, headers: dict[str, str],
                 body: bytes | None, ca_files: tuple[str, ...], what: str) -> Response:
        from sandbox.images.http1 import HTTPError

        may_be_plain = self._plain_allowed(netloc)
        if scheme == "http" and not may_be_plain:
            raise RegistryError(f"{what}: plain HTTP to {netloc} refused: only loopback registries and "
                                f"--insecure-registry hosts may be reached without TLS")
        use_plain = scheme == "http" or (scheme == "" and netloc in self._plain)
        try:
            if not use_plain and scheme == "" and may_be_plain and netloc not in self._tls:
                use_plain = self._speaks_plain(netloc)
                (self._plain if use_plain else self._tls).add(netloc)
            if use_plain:  # ssl is not even imported (~6 ms) for a plain-HTTP registry
                return self._send(True, netloc, method, path, headers, body, ca_files)
            return self._send_tls(scheme, netloc, method, path, headers, body, ca_files, may_be_plain, what)
        except (OSError, HTTPError) as e:
            raise RegistryError(f"{what}: cannot reach {netloc}: {_reason(e)}") from None

    def _send_tls(self, scheme: str, netloc: str, method: str, path: str, headers: dict[str, str],
                  body: bytes | None, ca_files: tuple[str, ...], may_be_plain: bool, what: str) -> Response:
        import ssl

        try:
            return self._send(False, netloc, method, path, headers, body, ca_files)
        except ssl.SSLCertVerificationError as e:
            raise RegistryError(f"{what}: TLS certificate of {netloc} not trusted: {e.verify_message}") from None
        except ssl.SSLError:
            # TLS failed below certificate checks: a plain-HTTP registry answering a ClientHello.
            if scheme != "" or not may_be_plain:
                raise
            self._plain.add(netloc)
            return self._send(True, netloc, method, path, headers, body, ca_files)

    def _speaks_plain(self, netloc: str) -> bool:
        """Whether a host allowed plain HTTP answers a TLS ClientHello as a plain HTTP server does
        (an HTTP error, or nothing), not with a TLS record (a ServerHello or an alert). The probe
        is a fixed hello sent on a bare socket and no handshake ever completes on it, so no
        request travels on it; neither an SSL context (~5 ms to create the first) nor the
        system CAs (20-30 ms to load) are needed until a host proved to speak TLS, which the
        caller then reaches verified."""
        from sandbox.images.http1 import connect

        host, port = _host_port(netloc)
        probe = connect(host, port, self.timeout)
        try:
            probe.sendall(_CLIENT_HELLO)
            first = probe.recv(1)
        except ConnectionResetError:
            return True  # dropped, as a plain server may drop bytes it cannot parse
        finally:
            probe.close()
        return first not in _TLS_RECORDS

    def _send(self, plain: bool, netloc: str, method: str, path: str, headers: dict[str, str],
              body: bytes | None, ca_files: tuple[str, ...]) -> Response:
        if self._pool is None:
            from sandbox.images.http1 import Pool

            self._pool = Pool(self.timeout)
        return self._pool.request("http" if plain else "https", netloc, method, path,
                                  {"User-Agent": "sandbox", **headers}, body, lambda: self._context(ca_files))

    def _context(self, ca_files: tuple[str, ...]) -> ssl.SSLContext:
        import ssl

        files = (self.ca_file, *ca_files) if self.ca_file else ca_files
        context = self._contexts.get(files)
        if context is None:
            context = ssl.create_default_context()  # system CAs, hostname checks, TLS 1.2+
            for path in files:
                try:
                    context.load_verify_locations(cafile=path)
                except (OSError, ssl.SSLError) as e:
                    raise RegistryError(f"registry CA file {path}: {_reason(e)}") from None
            self._contexts[files] = context
        return context

    def _plain_allowed(self, netloc: str) -> bool:
        return netloc in self.insecure or _host_only(netloc) in self.insecure or is_loopback(netloc)


# -- pure helpers (unit-tested) --


def is_loopback(netloc: str) -> bool:
    """127.0.0.0/8, ::1 or localhost. inet_pton rather than ipaddress (~2 ms to import): it reads
    the same strict forms (dotted quads without leading zeros, every IPv6 spelling)."""
    import _socket

    host = _host_only(netloc)
    if host == "localhost":
        return True
    try:
        return _socket.inet_pton(_socket.AF_INET, host)[0] == 127
    except OSError:
        pass
    try:
        return _socket.inet_pton(_socket.AF_INET6, host) == bytes(15) + b"\x01"
    except OSError:
        return False


def _host_port(netloc: str) -> tuple[str, int]:
    """A netloc's host and port, 443 when it names none (the probe speaks TLS)."""
    host, port = _host_only(netloc), "443"
    if netloc.startswith("["):
        port = netloc.partition("]")[2].removeprefix(":") or port
    elif netloc.count(":") == 1:
        port = netloc.rpartition(":")[2]
    if not port.isdigit():
        raise RegistryError(f"registry {netloc}: bad port {port!r}")
    return host, int(port)


def _client_hello() -> bytes:
    """A TLS 1.2/1.3 ClientHello record that any TLS server answers (ECDHE with AES-GCM, the
    common groups and signatures), with a fixed random: it only has to draw a TLS record."""
    def extension(kind: int, body: str) -> bytes:
        data = bytes.fromhex(body)
        return kind.to_bytes(2, "big") + len(data).to_bytes(2, "big") + data

    suites = bytes.fromhex("1301c02fc02bc030c02c009c")
    extensions = (extension(0x000A, "0006001d00170018")  # supported_groups: x25519, P-256, P-384
                  + extension(0x000B, "0100")  # ec_point_formats: uncompressed
                  + extension(0x000D, "00080403080404010503"))  # signature_algorithms
    body = (b"\x03\x03" + bytes(range(32)) + b"\x00" + len(suites).to_bytes(2, "big") + suites + b"\x01\x00"
            + len(extensions).to_bytes(2, "big") + extensions)
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + len(handshake).to_bytes(2, "big") + handshake


_CLIENT_HELLO = _client_hello()
_TLS_RECORDS = (b"\x15", b"\x16")  # alert, handshake


def _host_only(netloc: str) -> str:
    if netloc.startswith("["):
        return netloc[1:].partition("]")[0]
    return netloc.rpartition(":")[0] if netloc.count(":") == 1 else netloc


def request_path(host: Host, repository: str, tail: str, registry: str) -> str:
    """`/v2/<repository>/<tail>`, with `?ns=<registry>` for a mirror as containerd sends it."""
    path = f"{host.path}/{repository}/{tail}"
    if not host.is_mirror:
        return path
    from urllib.parse import quote

    return f"{path}?ns={quote(registry, safe=':')}"


def parse_manifest(data: bytes, content_type: str, name: str) -> tuple[str, dict[str, object]]:
    """The media type and JSON of a manifest or index; schema 1 and unknown types refused."""
    declared = content_type.partition(";")[0].strip().lower()
    if declared in SCHEMA1:
        raise RegistryError(f"pull {name}: {_SCHEMA1_REFUSAL}")
    try:
        doc = fastjson.loads(data)  # json's import (re, enum): warm pull 58.0 -> 51.5 ms median, 40 rounds
    except (ValueError, UnicodeDecodeError):
        raise RegistryError(f"pull {name}: the manifest is not JSON") from None
    if not isinstance(doc, dict):
        raise RegistryError(f"pull {name}: the manifest is not a JSON object")
    if doc.get("schemaVersion") == 1:
        raise RegistryError(f"pull {name}: {_SCHEMA1_REFUSAL}")
    inner = doc.get("mediaType")
    if inner is not None and not isinstance(inner, str):
        raise RegistryError(f"pull {name}: the manifest's mediaType is not a string")
    # The body's own mediaType wins; OCI made it optional, so fall back on the header, then shape.
    media_type = inner or (declared if declared in MANIFESTS | INDEXES else "")
    if not media_type:
        media_type = OCI_INDEX if "manifests" in doc else OCI_MANIFEST
    if inner and declared in MANIFESTS | INDEXES and declared != inner:
        raise RegistryError(f"pull {name}: served as {declared} but the manifest says {inner}")
    if media_type not in MANIFESTS | INDEXES:
        raise RegistryError(f"pull {name}: unsupported manifest type {media_type}")
    if doc.get("schemaVersion") != 2:
        raise RegistryError(f"pull {name}: manifest schemaVersion {doc.get('schemaVersion')!r}, expected 2")
    return media_type, doc


_SCHEMA1_REFUSAL = ("Docker image manifest schema 1 is not supported (deprecated since 2019; "
                    "push the image again with a current client)")


def select_platform(index: Mapping[str, object], platform: Platform, name: str) -> Descriptor:
    """The index entry for `platform`: an exact variant first, then the architecture's default."""
    entries = index.get("manifests")
    if not isinstance(entries, list):
        raise RegistryError(f"pull {name}: the index has no manifests list")
    descriptors = [_descriptor(e, f"manifests[{i}]", name, with_platform=True) for i, e in enumerate(entries)]
    default = _DEFAULT_VARIANTS.get(platform.architecture, "")
    wanted = platform.variant or default
    ranked = []
    for d in descriptors:
        p = d.platform
        if p is None or p.os != platform.os or p.architecture != platform.architecture:
            continue
        if d.media_type not in MANIFESTS | INDEXES:
            continue
        if p.variant == wanted:
            ranked.append((0, d))
        elif not p.variant and (wanted == default or not platform.variant):
            ranked.append((1, d))
        elif not platform.variant and not default:
            ranked.append((2, d))  # amd64 v2/v3 builds when no variant was asked for
    if not ranked:
        offered = ", ".join(sorted({str(d.platform) for d in descriptors if d.platform})) or "none"
        raise RegistryError(f"pull {name}: no manifest for platform {platform} in the index (offered: {offered})")
    return min(ranked, key=lambda r: r[0])[1]


def manifest_descriptors(doc: Mapping[str, object], name: str) -> tuple[Descriptor, tuple[Descriptor, ...]]:
    config = _descriptor(doc.get("config"), "config", name)
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise RegistryError(f"pull {name}: the manifest has no layers list")
    return config, tuple(_descriptor(layer, f"layers[{i}]", name) for i, layer in enumerate(layers))


def _descriptor(value: object, where: str, name: str, *, with_platform: bool = False) -> Descriptor:
    if not isinstance(value, dict):
        raise RegistryError(f"pull {name}: manifest {where} is not an object")
    media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise RegistryError(f"pull {name}: manifest {where}.mediaType missing")
    if not isinstance(digest, str):
        raise RegistryError(f"pull {name}: manifest {where}.digest missing")
    _check_digest(digest, name, where)
    if type(size) is not int or size < 0:
        raise RegistryError(f"pull {name}: manifest {where}.size must be a non-negative integer")
    platform = None
    if with_platform and isinstance(value.get("platform"), dict):
        p = value["platform"]
        platform = Platform(str(p.get("os", "")), str(p.get("architecture", "")), str(p.get("variant", "")))
    return Descriptor(media_type, digest, size, platform)


def _check_digest(digest: str, name: str, where: str = "digest") -> None:
    algorithm, _, hexpart = digest.partition(":")
    size = DIGEST_HEX_LENGTHS.get(algorithm)
    if algorithm not in ("sha256", "sha512") or size is None or len(hexpart) != size or \
            hexpart.strip("0123456789abcdef"):
        raise RegistryError(f"pull {name}: {where} {digest!r} is not sha256:<64 hex> or sha512:<128 hex>")


def _digest_of(data: bytes, like: str) -> str:
    """A manifest's digest through CPython's own SHA-2 modules: `import hashlib` loads OpenSSL
    (~3-5 ms), which a manifest of a few KiB does not need; the pull's blobs hash with it
    (_blob_hash), imported meanwhile by pull.py's preload thread."""
    algorithm = like.partition(":")[0]
    try:
        if algorithm == "sha256":
            from _sha256 import sha256 as new  # type: ignore[import-not-found,unused-ignore]
        else:
            from _sha512 import sha512 as new  # type: ignore[import-not-found,unused-ignore]
    except ImportError:  # Python 3.12 merged them into _sha2
        import hashlib

        return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"
    return f"{algorithm}:{new(data).hexdigest()}"


def _blob_hash(digest: str) -> hashlib._Hash:
    from sandbox.images.hashes import new  # OpenSSL's SHA-2 without hashlib.py's import

    return new(digest.partition(":")[0])


def _parse(ref: str) -> ImageRef:
    try:
        image = parse_image_ref(ref)
    except ValueError as e:
        raise RegistryError(f"pull {ref}: {e}") from None
    if not image.registry:
        raise RegistryError(f"pull {ref}: no registry host in the reference")
    return image


class _Received:
    """A blob's bytes given out so far: their count and their hash."""

    __slots__ = ("count", "hasher")

    def __init__(self, hasher: hashlib._Hash) -> None:
        self.count = 0
        self.hasher = hasher


def _body(response: Response, received: _Received, skip: int, size: int | None,
          progress: Callable[[int], None] | None, what: str) -> Generator[bytes, None, BaseException | None]:
    """The body's pieces through `received`, its first `skip` bytes left out (given out already
    from an earlier answer); returns the error if the connection dropped, None at its end."""
    from sandbox.images.http1 import HTTPError, IncompleteRead

    while True:
        try:
            chunk = response.read(CHUNK)
            if not chunk and response.length:  # an early EOF where read(n) does not raise itself
                raise IncompleteRead(received.count, response.length)
        except (OSError, HTTPError) as e:
            return e
        if not chunk:
            return None
        if skip:
            chunk, skip = chunk[skip:], max(0, skip - len(chunk))
            if not chunk:
                continue
        received.count += len(chunk)
        if size is not None and received.count > size:
            raise RegistryError(f"{what}: larger than the {size} bytes its descriptor gives")
        received.hasher.update(chunk)
        if progress is not None:
            progress(received.count)
        yield chunk


def _verify(received: _Received, digest: str, size: int | None, host: Host, what: str) -> None:
    if size is not None and received.count != size:
        raise RegistryError(f"{what}: got {received.count} bytes, its descriptor gives {size}")
    actual = f"{digest.partition(':')[0]}:{received.hasher.hexdigest()}"
    if actual != digest:
        raise RegistryError(f"{what}: digest mismatch: the content from {host.netloc} hashes to {actual}")


def _rewind(out: BinaryIO, start: int) -> None:
    out.seek(start)
    out.truncate()


def _resumes_at(response: Response, offset: int) -> bool:
    """True when a Range answer continues at `offset`; a 200 means the whole blob again."""
    if response.status != 206:
        return False
    content_range = response.getheader("Content-Range", "")
    return content_range.startswith(f"bytes {offset}-")


def _status_error(what: str, response: Response, host: Host) -> str:
    """`<what>: manifest unknown (404)` from the registry's JSON errors, or the HTTP reason."""
    from sandbox.images.http1 import HTTPError

    status = response.status
    try:
        body = response.read_up_to(ERROR_BODY_LIMIT)
    except (OSError, HTTPError):
        body = b""
    finally:
        response.close()
    text = ""
    try:
        errors = fastjson.loads(body).get("errors")
        first = errors[0] if isinstance(errors, list) and errors else {}
        text = str(first.get("message") or first.get("code", "")).strip().lower()
    except (ValueError, UnicodeDecodeError, AttributeError):
        pass
    text = text or (response.reason or "error").lower()
    if status == 401 and not text.startswith("unauthorized"):
        text = f"unauthorized: {text}"
    if status == 403 and not text.startswith("denied"):
        text = f"denied: {text}"
    via = f" from mirror {host.netloc}" if host.is_mirror else ""
    return f"{what}: {text} ({status}{via})"


def _drain(response: Response) -> None:
    """The rest of a small answer read, so that its connection can serve the next request."""
    from sandbox.images.http1 import HTTPError

    try:
        response.read_up_to(ERROR_BODY_LIMIT)
    except (OSError, HTTPError):
        pass
    response.close()


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return str(error) or type(error).__name__


def _strip(message: str, name: str, host: Host) -> str:
    prefix = f"pull {name}: "
    text = message[len(prefix):] if message.startswith(prefix) else message
    return text if host.netloc in text else f"{host.netloc}: {text}"


def _with_tried(message: str, failures: list[str]) -> str:
    return message if not failures else f"{message}; tried first: {'; '.join(failures)}"
