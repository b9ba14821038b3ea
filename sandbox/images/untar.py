"""The native extractor (native/extract.c through sandbox.native): a layer's blob bytes in, the
unpacked tree out, with no Python between the socket and the files.

extract.py's rules, in C: each call inflates (gzip), hashes (the diff_id) and writes one buffer
of the blob, and cffi releases the GIL for it, so the layer threads of a pull use every CPU
instead of taking turns in tarfile and _Gunzip (issue 12's pull speed). extract.py stays the
fallback: for zstd layers (through the zstd program), and for a core built without extract.c.
Its LayerError messages are reproduced here word for word, names shown by its show().
"""

from __future__ import annotations

import os

from sandbox.images.layerbase import LayerError, LayerStats, show

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path
    from typing import BinaryIO

    from sandbox.native import LayerFailure, NativeLayer

CHUNK = 1 << 20  # bytes read from a stream per call: the GIL is taken once a MiB
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def available() -> bool:
    """Whether the built core has the extractor."""
    try:
        from sandbox.native import has_layer_extractor
    except ImportError:  # no core built: tests/unit runs without one
        return False
    return has_layer_extractor()


class Layer:
    """One layer being unpacked below the empty directory `dest`: feed() the blob's bytes in
    order, then finish() for its stats and diff_id; close() always (a context manager). gzip
    goes through isa-l's inflate where the core has it (native.layer_inflaters), else zlib's, or
    zlib's always with `zlib`."""

    def __init__(self, dest: Path, *, gzip: bool, allow_devices: bool = False, zlib: bool = False) -> None:
        from sandbox.native import NativeLayer

        try:
            self.root = os.open(dest, _DIR_FLAGS)
        except OSError as e:
            raise LayerError(f"layer destination {dest}: {e.strerror}") from None
        try:
            if os.listdir(self.root):
                raise LayerError(f"layer destination {dest}: not empty")
            self.native: NativeLayer = NativeLayer(self.root, gzip=gzip, allow_devices=allow_devices,
                                                       zlib=zlib)
        except OSError as e:
            os.close(self.root)
            raise LayerError(f"layer: {e.strerror}") from None
        except BaseException:
            os.close(self.root)
            raise
        self.closed = False

    def feed(self, data: bytes) -> None:
        failure = self.native.feed(data)
        if failure is not None:
            raise _error(failure)

    def finish(self) -> tuple[LayerStats, str]:
        result = self.native.finish()
        if not isinstance(result, tuple):
            raise _error(result)
        files, size, diff_id = result
        return LayerStats(files, size), diff_id

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.native.close()  # a later feed() or finish() fails: the layer is closed
            os.close(self.root)

    def __enter__(self) -> Layer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _error(failure: LayerFailure) -> LayerError:
    """extract.py's wording: `layer entry "<name>": <detail>` or `layer: <detail>`."""
    detail = failure.detail
    if "\x01" in detail:
        detail = detail.replace("\x01", show(os.fsdecode(failure.subject)))
    if failure.entry is None:
        return LayerError(f"layer: {detail}")
    return LayerError(f'layer entry "{show(os.fsdecode(failure.entry))}": {detail}')


def unpack(stream: BinaryIO, dest: Path, *, allow_devices: bool = False) -> LayerStats:
    """extract.unpack's contract for an uncompressed tar stream, natively."""
    with Layer(dest, gzip=False, allow_devices=allow_devices) as layer:
        while chunk := stream.read(CHUNK):
            layer.feed(chunk)
        stats, _ = layer.finish()
    return stats


def unpack_chunks(chunks: Iterable[bytes], dest: Path, *, gzip: bool, zlib: bool = False) -> tuple[LayerStats, str]:
    """A layer blob (gzip or plain tar) given in pieces, unpacked into the empty directory
    `dest`; returns its stats and diff_id (the digest of the uncompressed stream). `zlib`: inflate
    with zlib even where isa-l is found (the tests run both)."""
    with Layer(dest, gzip=gzip, zlib=zlib) as layer:
        for chunk in chunks:
            layer.feed(chunk)
        return layer.finish()
