"""Image references as the kubelet reads them: the grammar of github.com/distribution/reference
(`ParseNormalizedNamed`, then `Parse`), with go-digest's rules for the digest. The one parser:
manifest validation, the image store and the CLI all call it. Pure logic: no I/O.

    reference  := name [":" tag] ["@" digest]
    name       := [domain "/"] component ("/" component)*      path at most 255 characters
    domain     := host [":" port]        host: DNS-like labels (any case) or [IPv6]
    component  := [a-z0-9]+ (separator [a-z0-9]+)*            separator: "." "_" "__" or "-"+
    tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
    digest     := algorithm ":" hex      sha256 (64), sha384 (96) or sha512 (128) lowercase hex

`busybox` means `docker.io/library/busybox:latest`: a first component is a registry only if it is
`localhost`, holds a `.` or a `:`, or has upper case; Docker Hub names without a `/` get `library/`.
Nothing of a reference ever becomes a file name (the store keys images by digest), and a reference
that is not in the grammar is refused, never cleaned up.
"""

from __future__ import annotations

from sandbox.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    import re

DEFAULT_REGISTRY = "docker.io"
LEGACY_REGISTRY = "index.docker.io"
DEFAULT_TAG = "latest"
MAX_PATH_LENGTH = 255
MAX_LENGTH = 1024  # far past any valid reference; checked first, so no pattern sees a huge string
DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = (rf"(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
              rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?")
_IDENTIFIER = r"[a-f0-9]{64}"
_COMPILED: dict[str, re.Pattern[str]] = {}

TAG_RULE = "a tag is 1 to 128 of A-Z a-z 0-9 _ . -, not starting with . or -"
COMPONENT_RULE = ('a name component is lowercase letters and digits, separated by ".", "_", "__" or '
                  'dashes, and neither starts nor ends with a separator')


def _fullmatch(pattern: str, text: str) -> re.Match[str] | None:
    compiled = _COMPILED.get(pattern)
    if compiled is None:  # compiled on first use: most commands never parse a reference
        import re  # and `sandbox run` of a stored image never imports re (1.6 ms)

        compiled = _COMPILED[pattern] = re.compile(pattern)
    return compiled.fullmatch(text)


class ImageRef(Record):
    registry: str  # "" only for the odd name whose first component is no valid host
    repository: str
    tag: str  # "" when only a digest was given
    digest: str  # "" unless pinned

    @property
    def name(self) -> str:
        """The canonical name the store is keyed by (`docker.io/library/busybox:latest`); a digest
        wins over a tag, as the kubelet's `ParseDockerRef` does."""
        base = f"{self.registry}/{self.repository}" if self.registry else self.repository
        if self.digest:
            return f"{base}@{self.digest}"
        return f"{base}:{self.tag}"


def parse_image_ref(text: str) -> ImageRef:
    """Parse `[registry/]path[:tag][@digest]`; ValueError naming the reference and what is wrong."""
    parsed = _parse(text)
    if isinstance(parsed, str):
        shown = text if len(text) <= 200 else text[:197] + "..."
        raise ValueError(f"invalid image reference {shown!r}: {parsed}")
    return parsed


def reference_problem(text: str) -> str | None:
    """None for a valid reference, else what is wrong with it (for a field error)."""
    parsed = _parse(text)
    return parsed if isinstance(parsed, str) else None


def _parse(text: str) -> ImageRef | str:
    simple = _parse_simple(text)
    if simple is not None:
        return simple
    if not text:
        return "repository name must have at least one component"
    if len(text) > MAX_LENGTH:
        return f"invalid reference format: longer than {MAX_LENGTH} characters"
    if _fullmatch(_IDENTIFIER, text):
        return "cannot specify 64-byte hexadecimal strings"
    domain, remainder = _split_domain(text)
    remote = remainder.partition(":")[0]
    if remote.lower() != remote:
        return "repository name must be lowercase"
    m = _fullmatch(_REFERENCE, f"{domain}/{remainder}")
    if m is None:
        return "invalid reference format: " + _diagnose(text, domain, remainder)
    path = m.group("path")
    if len(path) > MAX_PATH_LENGTH:
        return f"repository name must not be more than {MAX_PATH_LENGTH} characters"
    digest = m.group("digest") or ""
    if digest:
        problem = _digest_problem(digest)
        if problem:
            return problem
    tag = m.group("tag") or ("" if digest else DEFAULT_TAG)
    return ImageRef(m.group("domain") or "", path, tag, digest)


# The common shape (`busybox:1.36`, `registry:5000/team/app:v2`, no digest) checked with string
# operations: compiling the grammar's patterns costs ~1 ms on the first reference a process reads
# (every `sandbox run`). Anything else, valid or not, goes to the patterns, which have the final
# word; tests/unit/test_image_reference.py checks that both agree on arbitrary text.
_LOWER_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_ALNUM = _LOWER_ALNUM | frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_TAG_FIRST = _ALNUM | {"_"}
_TAG_REST = _TAG_FIRST | {".", "-"}


def _parse_simple(text: str) -> ImageRef | None:
    """The reference `_parse` makes of `text` when it is a plain name[:tag] every part of which is
    plainly valid; None for anything else (left to the grammar's patterns)."""
    if not text or "@" in text or len(text) >= 64:  # 64: the hex-identifier rule, and long names
        return None
    domain, remainder = _split_domain(text)
    path, colon, tag = remainder.partition(":")
    if colon and not (len(tag) <= 128 and tag[:1] in _TAG_FIRST and set(tag) <= _TAG_REST):
        return None
    if not _host_port_ok(domain) or not all(_component_ok(c) for c in path.split("/")):
        return None
    return ImageRef(domain, path, tag or DEFAULT_TAG, "")


def _component_ok(component: str) -> bool:
    """[a-z0-9]+ ((. | _ | __ | -+) [a-z0-9]+)*"""
    n = len(component)
    if not n or component[0] not in _LOWER_ALNUM or component[-1] not in _LOWER_ALNUM:
        return False
    i = 0
    while i < n:
        ch = component[i]
        if ch in _LOWER_ALNUM:
            i += 1
            continue
        if ch == ".":
            i += 1
        elif ch == "_":
            i += 2 if component.startswith("__", i) else 1
        elif ch == "-":
            while i < n and component[i] == "-":
                i += 1
        else:
            return False
        if i >= n or component[i] not in _LOWER_ALNUM:
            return False
    return True


def _host_port_ok(domain: str) -> bool:
    """DNS-like labels (any case, inner dashes) with an optional numeric :port; no [IPv6]."""
    host, colon, port = domain.partition(":")
    if colon and not (port.isascii() and port.isdigit()):
        return False
    for label in host.split("."):
        if not label or label[0] not in _ALNUM or label[-1] not in _ALNUM or not set(label) <= _ALNUM | {"-"}:
            return False
    return True


def _split_domain(text: str) -> tuple[str, str]:
    """docker's `splitDockerDomain`: which part of a familiar name is the registry."""
    first, slash, rest = text.partition("/")
    if not slash:
        return DEFAULT_REGISTRY, f"library/{text}"
    if first == "localhost" or "." in first or ":" in first or first.lower() != first:
        domain = DEFAULT_REGISTRY if first == LEGACY_REGISTRY else first
    else:
        domain, rest = DEFAULT_REGISTRY, text
    if domain == DEFAULT_REGISTRY and "/" not in rest:
        rest = f"library/{rest}"
    return domain, rest


def _digest_problem(digest: str) -> str | None:
    algorithm, _, hexpart = digest.partition(":")
    size = DIGEST_HEX_LENGTHS.get(algorithm)
    if size is None:
        return f"unsupported digest algorithm {_q(algorithm)} (supported: {', '.join(DIGEST_HEX_LENGTHS)})"
    if len(hexpart) != size:
        return f"invalid checksum digest length: {algorithm} needs {size} hex digits, not {len(hexpart)}"
    if not _fullmatch(f"[a-f0-9]{{{size}}}", hexpart):
        return "invalid checksum digest format: lowercase hex digits only"
    return None


def _diagnose(text: str, domain: str, remainder: str) -> str:
    """Name the part the grammar refuses, left to right (the kubelet says only "invalid reference
    format")."""
    rest, at, digest = remainder.partition("@")
    name, tag = rest, None
    if ":" in rest.rpartition("/")[2]:
        name, _, tag = rest.rpartition(":")
    if not _fullmatch(_DOMAIN, domain):
        host, colon, port = domain.partition(":")
        if colon and not port.isdigit() and not host.startswith("["):
            # `busybox:../x`: the grammar reads `busybox:..` as a registry, the writer meant a tag.
            tag = text.partition(":")[2].partition("@")[0]
            return f"tag {_q(tag)}: {TAG_RULE}"
        return f"registry host {_q(domain)} is not a host name or [IPv6 address], with an optional :port"
    for component in name.split("/"):
        if not _fullmatch(_COMPONENT, component):
            return f"name component {_q(component)}: {COMPONENT_RULE}"
    if tag is not None and not _fullmatch(_TAG, tag):
        return f"tag {_q(tag)}: {TAG_RULE}"
    if at and not _fullmatch(_DIGEST, digest):
        return f"digest {_q(digest)}: must be algorithm:hex, e.g. sha256: and 64 hex digits"
    return "not [registry/]name[:tag][@digest]"


def _q(text: str) -> str:
    """Quoted as field errors quote values; repr for anything unprintable."""
    return f'"{text}"' if text.isprintable() and '"' not in text else repr(text)
