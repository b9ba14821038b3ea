"""Registry mirrors as containerd configures them (docs/hosts.md): a directory with one
`<namespace>/hosts.toml` per registry host. Pure parsing plus reading those files.

    <dir>/docker.io/hosts.toml:
        server = "https://registry-1.docker.io"   # the fallback; absent: the registry itself
        [host."http://127.0.0.1:5000"]              # tried first, in file order
          capabilities = ["pull", "resolve"]        # absent: all; "push" is accepted and unused
          ca = "mirror.crt"                         # relative to the hosts.toml; or a list

The namespace directory is looked up as containerd does on Unix: `host_port_` (for a host with a
port), then `host:port`, then `_default`. Without any file the registry itself is the only host
(Docker Hub's API host being registry-1.docker.io). A host lacking `resolve` only serves content by
digest: a tag is never resolved by it (a public mirror is not trusted to map names to digests).

Not supported, refused with the file named rather than ignored: `skip_verify = true` (give the
mirror's CA with `ca` instead: this runtime never pulls over an unverified TLS connection), client
certificates, proxies. `header` tables and `override_path` are honoured; `dial_timeout` is read.
"""

from __future__ import annotations

from sandbox.errors import ImageError
from sandbox.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
CAPABILITIES = frozenset({"pull", "resolve", "push"})
_KNOWN_KEYS = frozenset({"server", "capabilities", "ca", "skip_verify", "header", "override_path",
                         "dial_timeout", "host", "client", "proxy"})


class Host(Record):
    """One place to send requests for a registry namespace."""

    scheme: str  # "https", "http", or "" (https, with plain HTTP allowed as a fallback by the client's rules)
    netloc: str  # host[:port]
    path: str = "/v2"  # the API root: "/v2" unless override_path
    capabilities: frozenset[str] = CAPABILITIES
    ca_files: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    dial_timeout: float | None = None
    is_mirror: bool = False  # a host other than the registry itself (gets `?ns=<registry>`)

    @property
    def url(self) -> str:
        return f"{self.scheme or 'https'}://{self.netloc}{self.path}"


def origin(registry: str) -> Host:
    """The registry's own API host, used when no hosts.toml names a server."""
    return Host("", DOCKER_HUB_API if registry == DOCKER_HUB else registry)


class Mirrors:
    """The hosts.toml directory; files are read on each lookup (pulls are rare, and containerd
    too picks up edits without a restart)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def hosts_for(self, registry: str) -> list[Host]:
        """Hosts to try for `registry`, in order: the `[host]` entries, then the server."""
        for namespace in namespaces(registry):
            path = self.directory / namespace / "hosts.toml"
            try:
                data = path.read_bytes()
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as e:
                raise ImageError(f"read registry hosts {path}: {e.strerror}") from None
            return parse_hosts_toml(data, registry, path)
        return [origin(registry)]


def namespaces(registry: str) -> list[str]:
    """containerd's lookup order on Unix: `host_port_`, `host:port`, `_default`."""
    host, colon, port = registry.rpartition(":") if not registry.endswith("]") else (registry, "", "")
    names = [f"{host}_{port}_", registry] if colon and port.isdigit() else [registry]
    return [*names, "_default"]


def parse_hosts_toml(data: bytes, registry: str, path: Path) -> list[Host]:
    import tomllib

    try:
        doc = tomllib.loads(data.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ImageError(f"registry hosts {path}: {e}") from None
    unknown = sorted(set(doc) - _KNOWN_KEYS)
    if unknown:
        raise ImageError(f"registry hosts {path}: unknown key(s) {', '.join(unknown)}")
    table = doc.get("host", {})
    if not isinstance(table, dict):
        raise ImageError(f"registry hosts {path}: host must be a table of [host.\"URL\"] entries")
    hosts = []
    for url, settings in table.items():
        if not isinstance(settings, dict):
            raise ImageError(f"registry hosts {path}: host {url!r} must be a table")
        hosts.append(_host(url, settings, registry, path, f"host {url!r}"))
    server = doc.get("server")
    if server is None:
        hosts.append(_host("", doc, registry, path, "server"))
    elif isinstance(server, str):
        hosts.append(_host(server, doc, registry, path, "server"))
    else:
        raise ImageError(f"registry hosts {path}: server must be a string")
    return hosts


def _host(url: str, settings: dict[str, object], registry: str, path: Path, where: str) -> Host:
    """One `[host."URL"]` table, or the top level's settings for the server."""
    base = origin(registry) if not url else _parse_url(url, path, where)
    for key in ("client", "proxy"):
        if settings.get(key):
            raise ImageError(f"registry hosts {path}: {where}: {key} is not supported")
    if settings.get("skip_verify") is True:
        raise ImageError(f"registry hosts {path}: {where}: skip_verify is not supported "
                         f"(give the registry's CA certificate with ca = \"FILE\")")
    capabilities = _strings(settings.get("capabilities", sorted(CAPABILITIES)), path, f"{where}: capabilities")
    bad = sorted(set(capabilities) - CAPABILITIES)
    if bad:
        raise ImageError(f"registry hosts {path}: {where}: unknown capabilities {', '.join(bad)} "
                         f"(pull, resolve, push)")
    # A server given as the bare Docker Hub name means its API host, as containerd maps it.
    netloc = DOCKER_HUB_API if base.netloc == DOCKER_HUB else base.netloc
    api_path = base.path if settings.get("override_path") is True else base.path.rstrip("/") + "/v2"
    if not url:
        api_path = "/v2"
    ca = [c if c.startswith("/") else str(path.parent / c)
          for c in _strings(settings.get("ca", []), path, f"{where}: ca")]
    return Host(base.scheme, netloc, api_path, frozenset(capabilities), tuple(ca),
                _headers(settings.get("header", {}), path, where),
                _duration(settings.get("dial_timeout"), path, where),
                is_mirror=bool(url) and netloc != origin(registry).netloc)


def _parse_url(url: str, path: Path, where: str) -> Host:
    from urllib.parse import urlsplit

    parts = urlsplit(url if "://" in url else f"//{url}")
    if parts.scheme not in ("", "http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ImageError(f"registry hosts {path}: {where}: not an http(s) URL or host[:port]")
    return Host(parts.scheme, parts.netloc.lower(), parts.path.rstrip("/"))


def _strings(value: object, path: Path, where: str) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise ImageError(f"registry hosts {path}: {where} must be a string or a list of strings")
    return items


def _headers(value: object, path: Path, where: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise ImageError(f"registry hosts {path}: {where}: header must be a table")
    out = []
    for name, v in value.items():
        for item in _strings(v, path, f"{where}: header {name!r}"):
            if any(c in item or c in name for c in "\r\n"):
                raise ImageError(f"registry hosts {path}: {where}: header {name!r} holds a line break")
            out.append((name, item))
    return tuple(out)


def _duration(value: object, path: Path, where: str) -> float | None:
    """Go durations as hosts.toml writes them: "500ms", "1s", "1m"."""
    if value is None:
        return None
    units = (("ms", 0.001), ("s", 1.0), ("m", 60.0))
    if isinstance(value, str):
        for suffix, scale in units:
            number = value[: -len(suffix)]
            if value.endswith(suffix) and number.replace(".", "", 1).isdigit():
                return float(number) * scale
    raise ImageError(f"registry hosts {path}: {where}: dial_timeout {value!r} is not a duration like \"1s\"")
