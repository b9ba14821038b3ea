"""Which of the image store's layers container roots have mounted, read from the kernel: what
`image prune` must keep (containerd never collects what a container references; `crictl rmi
--prune` and `podman image prune` skip the images containers use).

It lives beside the code that builds those mounts (plan.py's overlays, whose lowerdirs name the
store's short layer links, images/l/NAME; an `image` volume of one layer, a bind whose root is the
layer's directory), so what is mounted and how it is found change together."""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sandbox.images.store import ImageStore


def mounted_layers(store: ImageStore) -> set[str]:
    """The store's layers (hex of their diff_ids) some mount namespace has mounted, read from the
    mountinfo of one process per mount namespace."""
    links = _links(store)
    found: set[str] = set()
    seen: set[tuple[int, int]] = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            ns = os.stat(f"/proc/{entry.name}/ns/mnt")
            if (ns.st_dev, ns.st_ino) in seen:
                continue
            seen.add((ns.st_dev, ns.st_ino))
            with open(f"/proc/{entry.name}/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
                text = f.read()
        except OSError:
            continue  # exited meanwhile
        found |= layers_in(text, links, f"{store.links_dir}/")
    return found


def layers_in(mountinfo: str, links: dict[str, str], links_prefix: str) -> set[str]:
    """The layers one mountinfo's mounts hold: overlays' lowerdirs through the short links
    (`links`: link name -> layer hex, `links_prefix` their directory with a trailing slash),
    binds of a layer's directory by its path. A bare name is taken as ours whichever directory
    another runtime's overlay meant it in: a false match only keeps a layer."""
    import re

    # absolute; relative to images/l/ (plan.fit_overlays: a root of several layers), a bare link
    # name; or relative to <images>, l/NAME
    lower_pattern = re.compile(r"lowerdir=([^,\s]+)")
    layer_pattern = re.compile(r"/layers/sha256/([0-9a-f]{64})(?![0-9a-f])")
    found: set[str] = set()
    for lower in lower_pattern.findall(mountinfo):
        for path in lower.split(":"):
            name = path.removeprefix(links_prefix).removeprefix("l/")
            if name in links and (path.startswith(links_prefix) or path.startswith("l/") or "/" not in path):
                found.add(links[name])
    found.update(layer_pattern.findall(mountinfo))
    return found


def _links(store: ImageStore) -> dict[str, str]:
    """The store's short links: name -> the hex of the layer each points at."""
    links: dict[str, str] = {}
    try:
        for link in store.links_dir.iterdir():
            try:
                links[link.name] = os.readlink(link).rpartition("/")[2]
            except OSError:
                continue
    except OSError:
        pass
    return links
