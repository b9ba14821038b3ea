"""What both layer extractors share (extract.py's tarfile one, untar.py's native one): the
error, the stats, the media types and how archive names appear in messages. Kept apart so that
a pull through the native extractor never imports tarfile (~10 ms)."""

from __future__ import annotations

from sandbox.errors import ImageError
from sandbox.record import Record

MEDIA_TYPES = {
    "application/vnd.oci.image.layer.v1.tar": "tar",
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar": "tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "zstd",
    "application/vnd.docker.image.rootfs.diff.tar": "tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.diff.tar.zstd": "zstd",
    "application/vnd.docker.image.rootfs.foreign.diff.tar": "tar",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "gzip",
}


class LayerError(ImageError):
    """A layer that cannot be opened or unpacked; the message names the entry."""


class LayerStats(Record):
    files: int  # entries written: files, directories (implicit ones too), links, nodes, whiteouts
    bytes: int  # regular file content


def streamable(media_type: str) -> bool:
    """Whether a layer of this type unpacks from its blob as the blob arrives (open_stream):
    gzip and plain tar; zstd runs through its program, from the stored blob."""
    return MEDIA_TYPES.get(media_type) in ("gzip", "tar")


def show(name: str) -> str:
    """An archive name as a message shows it: control characters escaped, cut at 200."""
    shown = name if name.isprintable() else repr(name)[1:-1]
    return shown if len(shown) <= 200 else shown[:200] + "..."
