"""sandbox/images/untar.py over native/extract.c: what only the native extractor does (gzip and
the diff_id inside, buffers cut anywhere, deep trees removed without recursion), and a fuzz
test: mutated archives never crash it and never write outside the layer. The rules both
extractors share are tested against both in test_extract.py."""

from __future__ import annotations

import ctypes
import gzip
import hashlib
import io
import os
import random
import shutil
import stat
import tarfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from sandbox.images import untar
from sandbox.images.layerbase import LayerError, LayerStats

pytestmark = pytest.mark.skipif(not untar.available(), reason="sandbox._native is not built with native/extract.c")
ROOT = os.geteuid() == 0


def tar(*entries: tuple[str, bytes | str | None], fmt: int = tarfile.PAX_FORMAT,
        pax: dict[str, str] | None = None) -> bytes:
    """name -> bytes (a file), None (a directory), or "->target" (a symlink), "=>target" (a hard link)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt, pax_headers=pax or {}) as archive:
        for name, body in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_600_000_000
            if body is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                archive.addfile(info)
            elif isinstance(body, str):
                info.type = tarfile.SYMTYPE if body.startswith("->") else tarfile.LNKTYPE
                info.linkname = body[2:]
                archive.addfile(info)
            else:
                info.size, info.mode = len(body), 0o644
                archive.addfile(info, io.BytesIO(body))
    return out.getvalue()


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    path = tmp_path / "layer"
    path.mkdir()
    return path


def pieces(data: bytes, size: int) -> Iterator[bytes]:
    return (data[i:i + size] for i in range(0, len(data), size))


@pytest.fixture(params=["isal", "zlib"])
def inflater(request: pytest.FixtureRequest) -> str:
    """Each gzip test runs through both inflaters of extract.c: isa-l's (where the core has it;
    test_isal_is_built_where_installed keeps a build from losing it quietly) and zlib's."""
    from sandbox.native import layer_inflaters

    if request.param not in layer_inflaters():
        pytest.skip(f"this core inflates without {request.param}")
    return str(request.param)


def ungzip(chunks: Iterable[bytes], dest: Path, inflater: str) -> tuple[LayerStats, str]:
    return untar.unpack_chunks(chunks, dest, gzip=True, zlib=inflater == "zlib")


def test_isal_is_built_where_installed() -> None:
    """libisal-dev's header at build time and libisal.so.2 at run time: then gzip goes through
    isa-l (a build that silently lost it would fall back to zlib, ~2x slower on real layers)."""
    from sandbox.native import layer_inflaters

    if not Path("/usr/include/isa-l/igzip_lib.h").exists():
        pytest.skip("libisal-dev is not installed (make deps installs it)")
    ctypes.CDLL("libisal.so.2")  # raises if the library is missing: a broken install, not a skip
    assert layer_inflaters() == ["isal", "zlib"]


# --- gzip and the diff_id -----------------------------------------------------------------------

def test_gzip_diff_id_is_the_uncompressed_digest(dest: Path, inflater: str) -> None:
    raw = tar(("d", None), ("d/f", os.urandom(70_000)), ("t", b"text " * 9000))
    stats, diff_id = ungzip([gzip.compress(raw)], dest, inflater)
    assert diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert stats == LayerStats(files=3, bytes=70_000 + 45_000)
    assert (dest / "t").read_bytes() == b"text " * 9000


def test_plain_tar_diff_id_covers_the_padding_after_the_end(dest: Path) -> None:
    raw = tar(("f", b"x")) + bytes(4096)
    _, diff_id = untar.unpack_chunks([raw], dest, gzip=False)
    assert diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()


@pytest.mark.parametrize("size", [1, 7, 511, 512, 513, 4096])
def test_buffers_cut_anywhere_give_the_same_tree(tmp_path: Path, size: int, inflater: str) -> None:
    raw = tar(("a/" + "n" * 150 + "/long", b"1" * 1000), ("a/l", "->../x"), ("a/h", "=>a/" + "n" * 150 + "/long"),
              ("b", b""), pax={"comment": "global"})
    packed = gzip.compress(raw)
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    whole.mkdir()
    cut.mkdir()
    expected = untar.unpack_chunks([packed], whole, gzip=True, zlib=True)
    assert ungzip(pieces(packed, size), cut, inflater) == expected
    assert (cut / "a" / ("n" * 150) / "long").read_bytes() == b"1" * 1000
    assert os.readlink(cut / "a/l") == "../x"
    assert (cut / "a/h").stat().st_nlink == 2


def test_gzip_members_and_zero_padding(dest: Path, inflater: str) -> None:
    raw = tar(("f", b"one" * 1000), ("g", b"two"))
    half = len(raw) // 2
    packed = gzip.compress(raw[:half]) + bytes(100) + gzip.compress(raw[half:]) + bytes(3)
    _, diff_id = ungzip(pieces(packed, 100), dest, inflater)
    assert diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert (dest / "g").read_bytes() == b"two"


def _member(data: bytes, rng: random.Random) -> bytes:
    """One gzip member of `data`: any level (0: stored blocks only), any header fields."""
    level = rng.choice([0, 1, 6, 9])
    packer = zlib.compressobj(level, zlib.DEFLATED, -15)
    body = packer.compress(data) + packer.flush()
    flags, extra = 0, b""
    if rng.random() < 0.5:  # FEXTRA, FNAME, FCOMMENT: fields before the deflate data
        flags = 4 | 8 | 16
        extra = (3).to_bytes(2, "little") + b"xyz" + b"name.tar\0" + b"a comment\0"
    if rng.random() < 0.5:  # FHCRC: the header's CRC-16 after its fields
        flags |= 2
    header = b"\x1f\x8b\x08" + bytes([flags]) + bytes(4) + b"\x00\x03" + extra
    if flags & 2:
        header += (zlib.crc32(header) & 0xFFFF).to_bytes(2, "little")
    return header + body + zlib.crc32(data).to_bytes(4, "little") + (len(data) & 0xFFFFFFFF).to_bytes(4, "little")


def test_member_boundaries_cut_anywhere(tmp_path: Path, inflater: str) -> None:
    """Members of every kind back to back (empty ones, stored blocks, extra header fields, zero
    padding between), the stream cut at random places, one byte at a time around each boundary:
    every cut gives the stream's own bytes. isa-l reads ahead into a 64-bit buffer; what it read
    past a member's end must be the next member's start."""
    rng = random.Random(7)
    raw = tar(("r", rng.randbytes(100_000)), ("t", b"some text " * 20_000), ("e", b""), ("s", b"x"))
    for round_ in range(12):
        cuts = sorted(rng.sample(range(1, len(raw)), rng.randint(1, 5)))
        parts = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)])]
        parts.insert(rng.randrange(len(parts) + 1), b"")  # an empty member
        members = [_member(part, rng) for part in parts]
        packed = b"".join(m + bytes(rng.choice([0, 0, 1, 9])) for m in members)
        edges = {sum(map(len, members[:i])) for i in range(len(members) + 1)}
        splits = sorted({rng.randrange(len(packed)) for _ in range(20)} |
                        {e + d for e in edges for d in (-9, -8, -4, -1, 0, 1, 2) if 0 < e + d < len(packed)})
        dest = tmp_path / f"r{round_}"
        dest.mkdir()
        chunks = [packed[a:b] for a, b in zip([0, *splits], [*splits, len(packed)])]
        _, diff_id = ungzip(chunks, dest, inflater)
        assert diff_id == "sha256:" + hashlib.sha256(raw).hexdigest(), f"round {round_}"
        shutil.rmtree(dest)


def test_junk_after_a_member_refused(dest: Path, inflater: str) -> None:
    packed = gzip.compress(tar(("f", b"abc"))) + b"\x00\x00junk"
    with pytest.raises(LayerError, match="cannot read the layer stream: incorrect header check"):
        ungzip([packed], dest, inflater)


@pytest.mark.parametrize("cut", [0, 5, 30, -9])
def test_gzip_cut_inside_a_member_refused(dest: Path, cut: int, inflater: str) -> None:
    packed = gzip.compress(tar(("f", os.urandom(5000))))
    with pytest.raises(LayerError, match="gzip stream ends inside a member|truncated"):
        ungzip([packed[:cut]], dest, inflater)


def test_corrupt_deflate_refused(dest: Path, inflater: str) -> None:
    packed = bytearray(gzip.compress(tar(("f", b"abc" * 10000))))
    packed[20:40] = bytes(20)
    with pytest.raises(LayerError, match="cannot read the layer stream"):
        ungzip([bytes(packed)], dest, inflater)


def test_crc_is_left_to_the_diff_id(dest: Path, inflater: str) -> None:
    """zlib's CRC-32 is not computed (inflateValidate), isa-l's mismatch is let through: a wrong
    trailer changes nothing, while any change of the uncompressed bytes changes the diff_id, which
    the store checks first."""
    raw = tar(("f", b"abc"))
    packed = bytearray(gzip.compress(raw))
    packed[-6] ^= 0xFF
    packed[-2] ^= 0xFF  # the length too
    _, diff_id = ungzip([bytes(packed)], dest, inflater)
    assert diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()


def test_high_ratio_stream_is_streamed(dest: Path, inflater: str) -> None:
    """64 MiB of zeros from 64 KiB of input: inflated through a fixed buffer, never whole."""
    info = tarfile.TarInfo("zeros")
    info.size = 64 << 20
    header = info.tobuf(tarfile.PAX_FORMAT)
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    packed = packer.compress(header)
    for _ in range(64):
        packed += packer.compress(bytes(1 << 20))
    packed += packer.compress(bytes(1024)) + packer.flush()
    stats, _ = ungzip([packed], dest, inflater)
    assert stats.bytes == 64 << 20


# --- what tarfile does, natively ----------------------------------------------------------------

def test_gnu_long_names_and_links(dest: Path) -> None:
    name = "d/" + "x" * 120
    untar.unpack_chunks([tar((name, b"1"), ("d/" + "y" * 130, "->" + "z" * 140), fmt=tarfile.GNU_FORMAT)],
                        dest, gzip=False)
    assert (dest / name).read_bytes() == b"1"
    assert os.readlink(dest / "d" / ("y" * 130)) == "z" * 140


def test_ustar_prefix_joins_the_name(dest: Path) -> None:
    name = "p" * 90 + "/" + "q" * 90
    untar.unpack_chunks([tar((name, b"u"), fmt=tarfile.USTAR_FORMAT)], dest, gzip=False)
    assert (dest / name).read_bytes() == b"u"


@pytest.mark.skipif(not ROOT, reason="needs root: trusted.* xattrs")
def test_global_pax_header_applies_to_later_entries(dest: Path) -> None:
    raw = tar(("f", b"1"), ("g", b"2"), pax={"SCHILY.xattr.trusted.sbx": "v"})
    untar.unpack_chunks([raw], dest, gzip=False)
    assert os.getxattr(dest / "f", "trusted.sbx", follow_symlinks=False) == b"v"
    assert os.getxattr(dest / "g", "trusted.sbx", follow_symlinks=False) == b"v"


def test_sparse_file_refused(dest: Path) -> None:
    info = tarfile.TarInfo("holes")
    info.type = tarfile.GNUTYPE_SPARSE
    data = info.tobuf(tarfile.GNU_FORMAT) + bytes(1024)
    with pytest.raises(LayerError, match='"holes": sparse files are not supported'):
        untar.unpack_chunks([data], dest, gzip=False)


def test_deep_directory_replaced_without_recursion(dest: Path) -> None:
    depth = 1500  # a recursive removal would take a C stack frame and an fd per level
    deep = "/".join(["d"] * depth)
    untar.unpack_chunks([tar((deep + "/f", b"x"), ("d", b"now a file"))], dest, gzip=False)
    assert (dest / "d").read_bytes() == b"now a file"


def test_extended_header_then_end_refused(dest: Path) -> None:
    info = tarfile.TarInfo("PaxHeader")
    info.type, info.size = tarfile.XHDTYPE, 12
    data = info.tobuf(tarfile.USTAR_FORMAT) + b"12 path=abc\n" + bytes(500) + bytes(1024)
    with pytest.raises(LayerError, match="corrupt"):
        untar.unpack_chunks([data], dest, gzip=False)


# --- fuzz ---------------------------------------------------------------------------------------

def _seeds() -> list[bytes]:
    return [
        tar(("a", None), ("a/f", b"hello"), ("a/l", "->/etc"), ("a/h", "=>a/f"), ("a/.wh.x", b""),
            ("a/.wh..wh..opq", b"")),
        tar(("d/" + "n" * 200 + "/f", b"1" * 700), ("x", "->" + "t" * 300), fmt=tarfile.GNU_FORMAT),
        tar(("p" * 90 + "/" + "q" * 90, b"u"), ("e", None), ("e/f", b"v" * 1500), fmt=tarfile.USTAR_FORMAT),
        tar(("f", b"1"), ("f", None), ("f/g", b"2"), ("f", "->up"), pax={"SCHILY.xattr.user.a": "b"}),
    ]


def _mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.random()
        if kind < 0.4 and out:  # flip bytes, anywhere
            for _ in range(rng.randint(1, 8)):
                out[rng.randrange(len(out))] = rng.randrange(256)
        elif kind < 0.7 and len(out) >= 512:  # rewrite a header field and fix its checksum
            block = rng.randrange(len(out) // 512) * 512
            offset, width = rng.choice([(0, 100), (100, 8), (124, 12), (156, 1), (157, 100), (345, 155)])
            for i in range(width if rng.random() < 0.3 else rng.randint(1, width)):
                out[block + offset + i] = rng.choice(b"0123457 /.\0\x80\xffa.wh")
            header = out[block:block + 512]
            header[148:156] = b" " * 8
            out[block + 148:block + 156] = b"%06o\0 " % sum(header)
        elif kind < 0.85:  # cut
            del out[rng.randrange(len(out) + 1):]
        else:  # insert junk
            at = rng.randrange(len(out) + 1)
            out[at:at] = rng.randbytes(rng.randint(1, 600))
    return bytes(out)


def _outside(base: Path, dest: Path) -> dict[str, tuple[int, bytes]]:
    """Everything below `base` but `dest`, by os.walk (which never follows a symlink)."""
    seen = {}
    for top, dirs, files in os.walk(base):
        dirs[:] = [d for d in dirs if os.path.join(top, d) != str(dest)]
        for name in dirs + files:
            path = os.path.join(top, name)
            st = os.lstat(path)
            seen[path] = (st.st_mode, Path(path).read_bytes() if stat.S_ISREG(st.st_mode) else b"")
    return seen


def _remove(dest: Path) -> None:
    """A fuzzed layer removed, its read-only directories (a mutated mode) opened first."""
    for top, dirs, _ in os.walk(dest):
        for name in dirs:
            path = os.path.join(top, name)
            if not os.path.islink(path):  # os.walk lists links to directories with them
                os.chmod(path, 0o700)
    shutil.rmtree(dest)


def test_mutated_archives_never_crash_or_escape(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_bytes(b"root\n")
    rng = random.Random(12)
    seeds = _seeds()
    for round_ in range(400):
        data = _mutate(rng, rng.choice(seeds))
        packed = gzip.compress(data, mtime=0) if round_ % 4 == 0 else data
        dest = tmp_path / f"layer{round_}"
        dest.mkdir()
        before = _outside(tmp_path, dest)
        try:
            untar.unpack_chunks(pieces(packed, rng.choice([1, 100, 512, 4096, 1 << 20])), dest,
                                gzip=round_ % 4 == 0)
        except LayerError:
            pass
        assert _outside(tmp_path, dest) == before, f"round {round_} wrote outside its layer"
        _remove(dest)


def test_mutated_gzip_streams_never_crash_or_escape(tmp_path: Path) -> None:
    """The compressed stream itself mutated (header fields, deflate blocks, trailers, member
    boundaries) and fed in pieces of any size to both inflaters: each refuses with a LayerError
    or gives a tree inside its layer, and where both accept a stream they read the same bytes."""
    from sandbox.native import layer_inflaters

    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_bytes(b"root\n")
    rng = random.Random(21)
    seeds = [gzip.compress(seed, compresslevel=level, mtime=0) for seed in _seeds() for level in (0, 1, 9)]
    seeds += [a + bytes(5) + b for a, b in zip(seeds, seeds[1:])]  # two members, padding between
    for round_ in range(300):
        packed = _mutate(rng, rng.choice(seeds))
        size = rng.choice([1, 3, 100, 512, 4096, 1 << 20])
        results = {}
        for inflater in layer_inflaters():
            dest = tmp_path / f"layer{round_}-{inflater}"
            dest.mkdir()
            before = _outside(tmp_path, dest)
            try:
                results[inflater] = ungzip(pieces(packed, size), dest, inflater)[1]
            except LayerError:
                pass
            assert _outside(tmp_path, dest) == before, f"round {round_} ({inflater}) wrote outside its layer"
            _remove(dest)
        if len(results) == 2:
            assert results["isal"] == results["zlib"], f"round {round_}: the inflaters read different bytes"
