"""Image references as the distribution grammar and the kubelet read them.

`busybox` means `docker.io/library/busybox:latest`; a digest reference (`name@sha256:...`) is
looked up by digest. Pure logic: no I/O.
"""

from __future__ import annotations

import re

from sandbox.record import record

DEFAULT_REGISTRY = "docker.io"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME = re.compile(rf"^(?:(?P<host>[a-zA-Z0-9.-]+(?::[0-9]+)?)/)?(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")


@record
class ImageRef:
    registry: str
    repository: str
    tag: str  # "" when only a digest was given
    digest: str  # "" unless pinned

    @property
    def name(self) -> str:
        """The canonical name the store is keyed by (`docker.io/library/busybox:latest`)."""
        base = f"{self.registry}/{self.repository}"
        if self.digest:
            return f"{base}@{self.digest}"
        return f"{base}:{self.tag}"


def parse_image_ref(text: str) -> ImageRef:
    """Parse `[registry/]path[:tag][@digest]`; raises ValueError naming what is wrong."""
    rest, _, digest = text.partition("@")
    if digest and not _DIGEST.match(digest):
        raise ValueError(f"invalid image reference {text!r}: bad digest {digest!r}")
    tag = ""
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG.match(tag):
            raise ValueError(f"invalid image reference {text!r}: bad tag {tag!r}")
    match = _NAME.match(rest)
    if not match:
        raise ValueError(f"invalid image reference {text!r}")
    host, path = match.group("host"), match.group("path")
    # A first component is a registry only if it looks like a host (docker's rule).
    if host and not ("." in host or ":" in host or host == "localhost"):
        host, path = None, f"{host}/{path}"
    registry = host or DEFAULT_REGISTRY
    if registry == DEFAULT_REGISTRY and "/" not in path:
        path = f"library/{path}"
    if not tag and not digest:
        tag = "latest"
    return ImageRef(registry, path, tag, digest)
