"""Registry credentials and the pure half of registry authentication. No I/O but reading a file.

Credentials come from two sources, kept in the order the kubelet tries them: the pod's
`imagePullSecrets` (kubernetes.io/dockerconfigjson payloads) first, then the runtime's own file in
the `~/.docker/config.json` format. Both are the same JSON: `{"auths": {KEY: ENTRY}}` where ENTRY
has `auth` (base64 of `user:password`) or `username`/`password`, and KEY is a registry host, a
host:port, an URL (`https://index.docker.io/v1/`) or, as the kubelet's credential keyring allows,
a glob over host labels (`*.example.com`). The runtime's file may also name Docker credential
helpers, as Docker reads them: `credHelpers` ({host: name}) for one registry, `credsStore` (name)
for every other; a registry served by a helper takes its credential from the helper alone
(credential_helpers.py runs `docker-credential-<name> get`, only when a registry asks for
credentials), its `auths` entry being `docker login`'s placeholder. A pull secret's helpers are
ignored: the kubelet runs no program a Secret names.

A registry answers an unauthenticated request with 401 and a `WWW-Authenticate` challenge:
`Basic realm=...` (send the credentials on every request) or `Bearer realm=URL,service=...,
scope=...` (get a token from the realm, with the credentials if there are any, anonymously if
not; Docker's token protocol). `parse_challenges` reads the header (RFC 7235 auth-params), and
`token_url`/`token_from_response` are the two pure ends of the exchange done by registry.py.
"""

from __future__ import annotations

from sandbox.errors import ImageError
from sandbox.images.credential_helpers import HELPER_TIMEOUT
from sandbox.record import Record, field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from pathlib import Path

# Every spelling of Docker Hub a config file may use; the API host is registry-1.docker.io.
DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})


class Credential:
    """A user and password (or docker login's identity token). A plain class, not a record: the
    record's generic repr would print the password into a traceback or a debug log."""

    __slots__ = ("identity_token", "password", "username")

    def __init__(self, username: str, password: str, identity_token: str = "") -> None:
        self.username = username
        self.password = password
        self.identity_token = identity_token

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Credential) and (self.username, self.password, self.identity_token) == (
            other.username, other.password, other.identity_token)

    def __hash__(self) -> int:
        return hash((self.username, self.password, self.identity_token))

    def __repr__(self) -> str:
        return f"Credential(username={self.username!r}, password=<hidden>)"


class Challenge(Record):
    scheme: str  # lower case: "basic" or "bearer"
    params: dict[str, str] = field(default_factory=dict)  # keys lower case


class Credentials(Record):
    """Ordered (pattern, credential) pairs; `for_registry` returns every match in order, so a
    wrong secret does not hide a right one further down (the kubelet tries each in turn)."""

    entries: tuple[tuple[str, Credential], ...] = ()
    helpers: tuple[tuple[str, str], ...] = ()  # credHelpers: (registry host, helper name)
    store: str = ""  # credsStore: the helper of every registry credHelpers does not name
    helper_timeout: float = HELPER_TIMEOUT  # seconds a helper may take to answer

    @staticmethod
    def anonymous() -> Credentials:
        return Credentials()

    @staticmethod
    def from_docker_config(path: Path, helper_timeout: float = HELPER_TIMEOUT) -> Credentials:
        """The runtime's credentials file, its credential helpers included; a missing file means
        no credentials."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return Credentials()
        except OSError as e:
            raise ImageError(f"read registry credentials {path}: {e.strerror}") from None
        plain = Credentials.from_json(data, str(path))
        import json  # here: a pull without a credentials file never imports json (and re, ~5 ms)

        helpers, store = _helpers(json.loads(data), str(path))
        if not helpers and not store:
            return plain
        served = {host for host, _ in helpers}
        # A registry a helper serves takes nothing from `auths` (with credsStore: none does)
        entries = () if store else tuple((key, cred) for key, cred in plain.entries
                                         if key.partition("/")[0] not in served)
        return Credentials(entries, helpers, store, helper_timeout)

    @staticmethod
    def from_json(data: bytes, source: str) -> Credentials:
        """A config.json or a `.dockerconfigjson` Secret value; `source` names it in errors."""
        import json

        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise ImageError(f"registry credentials {source}: not JSON: {e}") from None
        if not isinstance(doc, dict):
            raise ImageError(f"registry credentials {source}: not a JSON object")
        auths = doc.get("auths", {})
        if not isinstance(auths, dict):
            raise ImageError(f"registry credentials {source}: auths is not an object")
        entries = []
        for key, entry in auths.items():
            credential = _entry_credential(entry, f"{source}: auths[{key!r}]")
            if credential is not None:
                entries.append((entry_key(key), credential))
        return Credentials(tuple(entries))

    @staticmethod
    def from_pull_secret(data: Mapping[str, bytes], source: str) -> Credentials:
        """An imagePullSecret's decoded data. The kubelet goes by key, not by type:
        `.dockerconfigjson` (kubernetes.io/dockerconfigjson), else the legacy `.dockercfg`
        (kubernetes.io/dockercfg: the `auths` map alone), else nothing."""
        if data.get(".dockerconfigjson"):
            return Credentials.from_json(data[".dockerconfigjson"], f"{source}: .dockerconfigjson")
        if data.get(".dockercfg"):
            legacy = data[".dockercfg"]
            return Credentials.from_json(b'{"auths": ' + legacy + b"}", f"{source}: .dockercfg")
        return Credentials()

    def then(self, other: Credentials) -> Credentials:
        """These credentials tried first, then `other`'s (pull secrets, then the runtime file)."""
        return Credentials(self.entries + other.entries, self.helpers + other.helpers, self.store or other.store,
                           min(self.helper_timeout, other.helper_timeout))

    def for_registry(self, registry: str, repository: str = "") -> list[Credential]:
        """Every credential for `repository` on `registry`, in order: the matching entries (a key
        with a path only for the repositories it prefixes, as the kubelet's keyring matches
        `registry.example/team` to `registry.example/team/app` and not to `registry.example/other`),
        then what its helper gives (the helper runs now: ImageError if it fails)."""
        host = normalize_key(registry)
        found = [cred for pattern, cred in self.entries if _entry_matches(pattern, host, repository)]
        helper = next((name for key, name in self.helpers if key == host), self.store)
        if helper:
            from sandbox.images import credential_helpers

            credential = credential_helpers.get(helper, host, self.helper_timeout)
            found += [credential] if credential is not None else []
        return found


def _entry_credential(entry: object, where: str) -> Credential | None:
    if not isinstance(entry, dict):
        raise ImageError(f"registry credentials {where}: not an object")
    username, password = entry.get("username") or "", entry.get("password") or ""
    encoded = entry.get("auth") or ""
    if encoded:
        import base64  # only with a stored credential: ~1 ms of every pull otherwise

        try:
            username, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            sep = ""
        if not sep:
            raise ImageError(f"registry credentials {where}: auth is not base64 of user:password")
    token = entry.get("identitytoken") or ""
    if not all(isinstance(v, str) for v in (username, password, token)):
        raise ImageError(f"registry credentials {where}: username, password and auth must be strings")
    if not (username or password or token):
        return None  # a credential-helper placeholder (`{}`): nothing to send
    return Credential(username, password, token)


def _helpers(doc: object, source: str) -> tuple[tuple[tuple[str, str], ...], str]:
    """`credHelpers` and `credsStore` of a config file (already read as JSON by from_json)."""
    if not isinstance(doc, dict):
        return (), ""
    store = doc.get("credsStore", "")
    by_host = doc.get("credHelpers", {})
    if not isinstance(store, str) or not isinstance(by_host, dict) or \
            not all(isinstance(v, str) for v in by_host.values()):
        raise ImageError(f"registry credentials {source}: credsStore must be a string and credHelpers "
                         "an object of strings")
    return tuple((normalize_key(str(k)), v) for k, v in by_host.items() if v), store


def normalize_key(key: str) -> str:
    """`https://index.docker.io/v1/` -> `docker.io`; `Registry.Example:5000/` -> `registry.example:5000`."""
    host = key.strip()
    if "://" in host:
        host = host.split("://", 1)[1]
    host = host.split("/", 1)[0].lower()
    return "docker.io" if host in DOCKER_HUB_ALIASES else host


def entry_key(key: str) -> str:
    """An `auths` key as the kubelet's keyring indexes it: its host (normalize_key) and the path
    after it, if any, without a leading `/v1/` or `/v2/` (Docker's API paths name the whole
    registry) or a trailing `/`: `https://index.docker.io/v1/` -> `docker.io`,
    `registry.example:5000/team/` -> `registry.example:5000/team`."""
    host = normalize_key(key)
    rest = key.strip()
    if "://" in rest:
        rest = rest.split("://", 1)[1]
    path = rest.partition("/")[2]
    if path.startswith(("v1/", "v2/")) or path in ("v1", "v2"):
        path = path[3:]
    path = path.strip("/")
    return f"{host}/{path}" if path else host


def _entry_matches(pattern: str, host: str, repository: str) -> bool:
    """The kubelet's URLsMatch: the host part by _key_matches, then a path part must prefix the
    repository's path (as a string, as the kubelet compares them)."""
    pattern_host, _, pattern_path = pattern.partition("/")
    if not _key_matches(pattern_host, host):
        return False
    return not pattern_path or repository.startswith(pattern_path)


def _key_matches(pattern: str, host: str) -> bool:
    """The kubelet keyring's rule: same number of labels, each label a glob, ports equal."""
    if pattern == host:
        return True
    if "*" not in pattern and "?" not in pattern and "[" not in pattern:
        return False
    p_host, _, p_port = pattern.partition(":")
    h_host, _, h_port = host.partition(":")
    p_labels, h_labels = p_host.split("."), h_host.split(".")
    if p_port != h_port or len(p_labels) != len(h_labels):
        return False
    import fnmatch  # imports re: only where a credentials key has a wildcard to match

    return all(fnmatch.fnmatchcase(h, p) for p, h in zip(p_labels, h_labels, strict=True))


def basic_header(credential: Credential) -> str:
    pair = f"{credential.username}:{credential.password}".encode()
    import base64

    return "Basic " + base64.b64encode(pair).decode()


def parse_challenges(header: str) -> list[Challenge]:
    """`WWW-Authenticate` (RFC 7235): `Scheme k=v, k="quoted, \\"x\\"", Scheme2 ...`."""
    challenges: list[Challenge] = []
    pos, n = 0, len(header)
    while pos < n:
        pos = _skip(header, pos, " \t,")
        start = pos
        while pos < n and header[pos] not in " \t,=":
            pos += 1
        word = header[start:pos]
        if not word:
            break
        after = _skip(header, pos, " \t")
        if after < n and header[after] == "=" and challenges:
            value, pos = _param_value(header, _skip(header, after + 1, " \t"))
            challenges[-1].params[word.lower()] = value
        else:
            challenges.append(Challenge(word.lower(), {}))
    return challenges


def _skip(text: str, pos: int, chars: str) -> int:
    while pos < len(text) and text[pos] in chars:
        pos += 1
    return pos


def _param_value(text: str, pos: int) -> tuple[str, int]:
    if pos < len(text) and text[pos] == '"':
        out, pos = [], pos + 1
        while pos < len(text) and text[pos] != '"':
            if text[pos] == "\\" and pos + 1 < len(text):
                pos += 1
            out.append(text[pos])
            pos += 1
        return "".join(out), pos + 1
    start = pos
    while pos < len(text) and text[pos] not in " \t,":
        pos += 1
    return text[start:pos], pos


def token_url(challenge: Challenge, scopes: Iterable[str]) -> str:
    """The GET that Docker's token protocol asks for: realm?service=...&scope=... (one scope
    parameter per scope; the challenge's own scope is included)."""
    from urllib.parse import urlencode

    realm = challenge.params.get("realm", "")
    if not realm.startswith(("https://", "http://")):
        raise ImageError(f"registry token challenge has no usable realm: {realm!r}")
    query: list[tuple[str, str]] = []
    if challenge.params.get("service"):
        query.append(("service", challenge.params["service"]))
    wanted = [challenge.params["scope"]] if challenge.params.get("scope") else []
    wanted += [s for s in scopes if s not in wanted]
    query += [("scope", s) for s in wanted]
    sep = "&" if "?" in realm else "?"
    return realm + (sep + urlencode(query) if query else "")


def token_from_response(body: bytes, realm: str) -> str:
    """`token` (Docker) or `access_token` (OAuth2) from the token endpoint's JSON."""
    import json

    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        doc = None
    token = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
    if not isinstance(token, str) or not token:
        raise ImageError(f"registry token from {realm}: the answer holds no token")
    return token
