"""sandbox.images.extract: hostile layers built here with tarfile, each refused naming its entry
with nothing written outside the layer directory; the overlay form of whiteouts; metadata."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.images import untar
from sandbox.images.extract import LayerError, LayerStats, open_layer, unpack

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="needs root: chown, mknod or trusted.* xattrs")
UID, GID = os.getuid(), os.getgid()
OCI_TAR = "application/vnd.oci.image.layer.v1.tar"

Member = tuple[tarfile.TarInfo, bytes | None]


def member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes | None = None, *, mode: int = 0o644,
           link: str = "", mtime: float = 1_600_000_000, uid: int = UID, gid: int = GID,
           pax: dict[str, str] | None = None, dev: tuple[int, int] = (0, 0)) -> Member:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.linkname = link
    info.mtime = mtime
    info.uid, info.gid = uid, gid
    info.devmajor, info.devminor = dev
    info.pax_headers = dict(pax or {})
    if kind == tarfile.REGTYPE:
        data = data or b""
        info.size = len(data)
    return info, data


def directory(name: str, **kw: object) -> Member:
    return member(name, tarfile.DIRTYPE, mode=kw.pop("mode", 0o755), **kw)  # type: ignore[arg-type]


def symlink(name: str, target: str) -> Member:
    return member(name, tarfile.SYMTYPE, link=target, mode=0o777)


def hardlink(name: str, target: str) -> Member:
    return member(name, tarfile.LNKTYPE, link=target)


def archive(*members: Member) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


class Sandbox:
    """A tmp dir holding the layer's `dest` and a sentinel tree the layer must never touch."""

    def __init__(self, base: Path, engine: str = "python") -> None:
        self.base = base
        self.extract = untar.unpack if engine == "native" else unpack
        self.dest = base / "layer"
        self.dest.mkdir()
        self.sentinel = base / "sentinel"
        self.sentinel.mkdir()
        (self.sentinel / "passwd").write_bytes(b"root:x:0:0\n")
        self.before = self.outside()

    def outside(self) -> dict[str, tuple[int, bytes]]:
        seen = {}
        for path in sorted(self.base.rglob("*")):
            if path == self.dest or self.dest in path.parents:
                continue
            st = path.lstat()
            body = path.read_bytes() if stat.S_ISREG(st.st_mode) else b""
            seen[str(path.relative_to(self.base))] = (st.st_mode, body)
        return seen

    def unpack(self, data: bytes, **kw: bool) -> LayerStats:
        return self.extract(io.BytesIO(data), self.dest, **kw)

    def refused(self, data: bytes, *needles: str, **kw: bool) -> str:
        with pytest.raises(LayerError) as caught:
            self.unpack(data, **kw)
        message = str(caught.value)
        for needle in needles:
            assert needle in message
        assert self.outside() == self.before, "something was written outside the layer"
        return message


@pytest.fixture(params=["python", "native"])
def box(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    """Every test runs against both extractors: extract.py's and native/extract.c's."""
    if request.param == "native" and not untar.available():
        pytest.skip("sandbox._native is not built with native/extract.c")
    yield Sandbox(tmp_path, request.param)


# --- a normal layer ---------------------------------------------------------------------------

def test_tree_metadata_and_stats(box: Sandbox) -> None:
    stats = box.unpack(archive(
        directory("./"),
        directory("./etc", mode=0o750, mtime=1_500_000_000),
        member("./etc/motd", data=b"hello\n", mode=0o640, mtime=1_400_000_000.5),
        symlink("./etc/link", "motd"),
        hardlink("./etc/again", "./etc/motd"),
        member("./run.fifo", tarfile.FIFOTYPE, mode=0o620),
        member("deep/er/file", data=b"x"),  # parents the archive does not list
    ))
    etc = box.dest / "etc"
    assert stat.S_IMODE(etc.stat().st_mode) == 0o750
    assert etc.stat().st_mtime == 1_500_000_000  # set after its children were written
    motd = etc / "motd"
    assert motd.read_bytes() == b"hello\n"
    assert stat.S_IMODE(motd.stat().st_mode) == 0o640
    assert motd.stat().st_mtime_ns == 1_400_000_000_500_000_000
    assert os.readlink(etc / "link") == "motd"
    assert (etc / "again").stat().st_ino == motd.stat().st_ino
    assert stat.S_ISFIFO((box.dest / "run.fifo").lstat().st_mode)
    assert stat.S_IMODE((box.dest / "deep").stat().st_mode) == 0o755
    assert (box.dest / "deep/er/file").read_bytes() == b"x"
    # etc, motd, link, again, fifo, deep, er, file
    assert stats == LayerStats(files=8, bytes=7)


def test_read_only_directory_filled_before_its_mode(box: Sandbox) -> None:
    box.unpack(archive(directory("ro", mode=0o555), member("ro/f", data=b"1"), directory("ro/sub", mode=0o500),
                       member("ro/sub/g", data=b"2")))
    assert stat.S_IMODE((box.dest / "ro").stat().st_mode) == 0o555
    assert stat.S_IMODE((box.dest / "ro/sub").stat().st_mode) == 0o500
    assert (box.dest / "ro/sub/g").read_bytes() == b"2"
    os.chmod(box.dest / "ro", 0o755)  # lets tmp_path clean up as any user
    os.chmod(box.dest / "ro/sub", 0o755)


def test_user_xattr_from_pax(box: Sandbox) -> None:
    value = b"\xff\x00binary"
    box.unpack(archive(member("f", data=b"x", pax={"SCHILY.xattr.user.test": value.decode("utf-8", "surrogateescape")})))
    assert os.getxattr(box.dest / "f", "user.test") == value


def test_stream_is_read_without_seeking(box: Sandbox) -> None:
    class Pipe:  # only read(): what a decompressor or a socket offers
        def __init__(self, data: bytes) -> None:
            self.inner = io.BytesIO(data)

        def read(self, size: int = -1) -> bytes:
            return self.inner.read(size)

    data = archive(member("big", data=os.urandom(3 << 20)), member("small", data=b"s"))
    stats = box.extract(Pipe(data), box.dest)  # type: ignore[arg-type]
    assert stats.bytes == (3 << 20) + 1
    assert (box.dest / "small").read_bytes() == b"s"


def test_destination_must_be_empty(box: Sandbox) -> None:
    (box.dest / "old").write_bytes(b"")
    box.refused(archive(member("f")), "not empty")


# --- names that climb -------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "why"), [
    ("../sentinel/passwd", "'..' component"),
    ("a/../../sentinel/passwd", "'..' component"),
    ("a/../b", "'..' component"),
    ("/sentinel/passwd", "absolute"),
    ("a" * 256, "longer than 255 bytes"),
    ("a/" * 2100 + "f", "longer than 4096 bytes"),
    (".wh.d/f", "whiteouts"),
])
def test_name_refused(box: Sandbox, name: str, why: str) -> None:
    message = box.refused(archive(member(name, data=b"pwned")), why)
    assert message.startswith(f'layer entry "{name[:200]}')
    assert not any(box.dest.iterdir())


def test_nul_in_pax_path_refused(box: Sandbox) -> None:
    message = box.refused(archive(member("x", data=b"1", pax={"path": "safe\x00/../../sentinel/passwd"})),
                          "NUL byte")
    assert 'layer entry "safe\\x00/../../sentinel/passwd"' in message


def test_control_characters_are_escaped_in_messages(box: Sandbox) -> None:
    message = box.refused(archive(member("../evil\nline", data=b"1")), "'..'")
    assert "\n" not in message and "evil\\nline" in message


# --- symlinks: never written through ----------------------------------------------------------

@pytest.mark.parametrize("target", ["ABS", "../sentinel", "../../../../../../../.."])
def test_write_through_symlink_refused(box: Sandbox, target: str) -> None:
    target = str(box.sentinel) if target == "ABS" else target
    box.refused(archive(symlink("a", target), member("a/passwd", data=b"pwned")),
                'layer entry "a/passwd"', '"a" is not a directory')


def test_symlink_chain_refused(box: Sandbox) -> None:
    box.refused(archive(symlink("a", "b"), symlink("b", "c"), symlink("c", "../sentinel"),
                        member("a/passwd", data=b"pwned")), 'layer entry "a/passwd"', '"a" is not a directory')


def test_deep_symlink_component_refused(box: Sandbox) -> None:
    box.refused(archive(directory("usr"), symlink("usr/lib", str(box.sentinel)), member("usr/lib/passwd", data=b"p")),
                '"usr/lib" is not a directory')


def test_file_as_directory_refused(box: Sandbox) -> None:
    box.refused(archive(member("f", data=b"1"), member("f/g", data=b"2")), 'layer entry "f/g"', "not a directory")


def test_symlink_target_text_is_kept_not_followed(box: Sandbox) -> None:
    box.unpack(archive(symlink("etc", str(box.sentinel)), symlink("p", "../sentinel/passwd")))
    assert os.readlink(box.dest / "etc") == str(box.sentinel)
    assert box.outside() == box.before


def test_symlink_target_with_nul_refused(box: Sandbox) -> None:
    box.refused(archive(member("l", tarfile.SYMTYPE, pax={"linkpath": "a\x00b"})), 'layer entry "l"', "NUL")


# --- hard links -------------------------------------------------------------------------------

def test_hardlink_outside_refused(box: Sandbox) -> None:
    box.refused(archive(hardlink("h", "../sentinel/passwd")), 'layer entry "h"', "hard link target has a '..'")
    box.refused(archive(hardlink("h", str(box.sentinel / "passwd"))), 'layer entry "h"', "absolute")


def test_hardlink_to_symlink_refused(box: Sandbox) -> None:
    box.refused(archive(symlink("s", str(box.sentinel / "passwd")), hardlink("h", "s")),
                'layer entry "h"', "not a regular file")


def test_hardlink_through_symlinked_directory_refused(box: Sandbox) -> None:
    box.refused(archive(symlink("d", "../sentinel"), hardlink("h", "d/passwd")), 'layer entry "h"', "not a directory")


def test_hardlink_to_missing_refused(box: Sandbox) -> None:
    box.refused(archive(hardlink("h", "later"), member("later", data=b"1")), "not an earlier entry")


def test_hardlink_replaces_earlier_entry(box: Sandbox) -> None:
    box.unpack(archive(member("a", data=b"A"), member("h", data=b"old"), hardlink("h", "a"), hardlink("a", "a")))
    assert (box.dest / "h").stat().st_ino == (box.dest / "a").stat().st_ino
    assert (box.dest / "h").read_bytes() == b"A"


# --- duplicates -------------------------------------------------------------------------------

def test_later_file_replaces_symlink_without_following(box: Sandbox) -> None:
    box.unpack(archive(symlink("x", str(box.sentinel / "passwd")), member("x", data=b"mine")))
    assert (box.dest / "x").read_bytes() == b"mine"
    assert not (box.dest / "x").is_symlink()
    assert box.outside() == box.before


def test_later_symlink_then_file_through_it(box: Sandbox) -> None:
    box.refused(archive(directory("d"), symlink("d", str(box.sentinel)), member("d/passwd", data=b"p")),
                'layer entry "d/passwd"', "not a directory")


def test_duplicates_last_wins(box: Sandbox) -> None:
    box.unpack(archive(
        member("f", data=b"first"), member("f", data=b"second"),
        directory("d"), member("d/old", data=b"1"), member("d", data=b"now a file"),
        member("e", data=b"file"), directory("e"), member("e/new", data=b"2"),
        directory("m", mode=0o700), member("m/a", data=b"a"), directory("m", mode=0o751), member("m/b", data=b"b"),
    ))
    assert (box.dest / "f").read_bytes() == b"second"
    assert (box.dest / "d").read_bytes() == b"now a file"
    assert (box.dest / "e/new").read_bytes() == b"2"
    assert sorted(p.name for p in (box.dest / "m").iterdir()) == ["a", "b"]
    assert stat.S_IMODE((box.dest / "m").stat().st_mode) == 0o751


# --- devices ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "word"), [(tarfile.CHRTYPE, "character"), (tarfile.BLKTYPE, "block")])
def test_device_refused_by_default(box: Sandbox, kind: bytes, word: str) -> None:
    message = box.refused(archive(member("dev/sda", kind, dev=(8, 0))), 'layer entry "dev/sda"')
    assert f"{word} device 8:0 refused" in message
    assert not any(box.dest.iterdir())  # refused before its parent was made


@needs_root
def test_device_allowed(box: Sandbox) -> None:
    box.unpack(archive(member("null", tarfile.CHRTYPE, dev=(1, 3), mode=0o666)), allow_devices=True)
    st = (box.dest / "null").lstat()
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3
    assert stat.S_IMODE(st.st_mode) == 0o666


def test_negative_owner_refused(box: Sandbox) -> None:
    data = bytearray(archive(member("f", data=b"1")))
    data[108:116] = b"\xff" * 8  # uid in base-256: -1
    data[148:156] = b"%06o\0 " % (sum(data[:148]) + 8 * 32 + sum(data[156:512]))  # checksum again
    box.refused(bytes(data), 'layer entry "f"', "negative owner -1:")


def test_unknown_type_refused(box: Sandbox) -> None:
    box.refused(archive(member("weird", b"V")), 'layer entry "weird"', "unsupported entry type")


# --- whiteouts --------------------------------------------------------------------------------

@needs_root
def test_whiteout_becomes_overlay_char_device(box: Sandbox) -> None:
    stats = box.unpack(archive(directory("etc"), member("etc/.wh.passwd"), member(".wh..wh..plnk")))
    st = (box.dest / "etc/passwd").lstat()
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert not (box.dest / "etc/.wh.passwd").exists()
    assert not (box.dest / ".wh..wh..plnk").exists()  # reserved names are ignored
    assert stats.files == 2


@needs_root
def test_opaque_directory_xattr(box: Sandbox) -> None:
    box.unpack(archive(directory("var/cache"), member("var/cache/.wh..wh..opq"), member("var/cache/new", data=b"1")))
    assert os.getxattr(box.dest / "var/cache", "trusted.overlay.opaque") == b"y"
    assert sorted(p.name for p in (box.dest / "var/cache").iterdir()) == ["new"]


@needs_root
@pytest.mark.parametrize("order", ["whiteout first", "directory first"])
def test_whiteout_and_same_layer_directory_make_it_opaque(box: Sandbox, order: str) -> None:
    pair = [member(".wh.d"), directory("d"), member("d/f", data=b"1")]
    box.unpack(archive(*(pair if order == "whiteout first" else pair[1:] + pair[:1])))
    assert (box.dest / "d/f").read_bytes() == b"1"
    assert os.getxattr(box.dest / "d", "trusted.overlay.opaque") == b"y"


@pytest.mark.parametrize("name", [".wh.", "d/.wh..", "d/.wh..."])
def test_whiteout_of_own_or_parent_directory_refused(box: Sandbox, name: str) -> None:
    box.refused(archive(directory("d"), member(name)), f'layer entry "{name}"', "its own directory or of the parent")


def test_overlay_xattrs_from_the_archive_refused(box: Sandbox) -> None:
    box.refused(archive(directory("d", pax={"SCHILY.xattr.trusted.overlay.redirect": "/etc"})),
                'layer entry "d"', "overlayfs's own")


# --- ownership, modes, capabilities (root) ----------------------------------------------------

@needs_root
def test_owner_then_setuid_mode(box: Sandbox) -> None:
    box.unpack(archive(directory("bin", uid=1234, gid=5678, mode=0o1777),
                       member("bin/su", data=b"#!", uid=1234, gid=5678, mode=0o6755),
                       symlink("bin/sh", "su")))
    su = (box.dest / "bin/su").stat()
    assert (su.st_uid, su.st_gid, stat.S_IMODE(su.st_mode)) == (1234, 5678, 0o6755)
    d = (box.dest / "bin").stat()
    assert (d.st_uid, d.st_gid, stat.S_IMODE(d.st_mode)) == (1234, 5678, 0o1777)


@needs_root
def test_file_capability_survives_chown(box: Sandbox) -> None:
    # vfs_cap_data v2: magic 0x02000000 | effective, permitted CAP_NET_RAW (13), inheritable 0
    caps = bytes.fromhex("01000002") + (1 << 13).to_bytes(4, "little") + bytes(12)
    box.unpack(archive(member("ping", data=b"\x7fELF", uid=1, gid=1, mode=0o755,
                              pax={"SCHILY.xattr.security.capability": caps.decode("utf-8", "surrogateescape")})))
    assert os.getxattr(box.dest / "ping", "security.capability") == caps
    assert (box.dest / "ping").stat().st_uid == 1


@needs_root
def test_xattr_on_symlink_set_on_the_link_itself(box: Sandbox) -> None:
    link = member("l", tarfile.SYMTYPE, link=str(box.sentinel / "passwd"), pax={"SCHILY.xattr.trusted.t": "v"})
    box.unpack(archive(link, member("p", tarfile.FIFOTYPE, pax={"SCHILY.xattr.trusted.t": "w"})))
    assert os.getxattr(box.dest / "l", "trusted.t", follow_symlinks=False) == b"v"
    assert os.getxattr(box.dest / "p", "trusted.t") == b"w"
    assert "trusted.t" not in os.listxattr(box.sentinel / "passwd")


# --- broken and oversized archives ------------------------------------------------------------

def _two_files() -> bytes:
    return archive(member("one", data=b"1" * 1000), member("two", data=b"2" * 3000))


# one: header at 0, data 512..1511; two: header at 1536, data 2048..5047; end blocks from 5120
@pytest.mark.parametrize("cut", [100, 1012, 1536, 1636, 2100, 5047, 5120])
def test_truncated_archive_refused(box: Sandbox, cut: int) -> None:
    whole = _two_files()
    assert whole[1536:1539] == b"two"
    box.refused(whole[:cut], "truncated")


def test_archive_without_end_blocks_refused(box: Sandbox) -> None:
    whole = archive(member("one", data=b"1" * 1000))
    box.refused(whole[:1536], "truncated")  # header + data, no zero blocks


def test_corrupt_second_header_refused(box: Sandbox) -> None:
    data = bytearray(archive(member("one", data=b"1" * 512), member("two", data=b"2")))
    data[1024 + 148] ^= 0x7  # checksum field of the second member
    box.refused(bytes(data), "corrupt")


@pytest.mark.parametrize("junk", [b"", b"not a tar at all" * 100])
def test_not_a_tar_refused(box: Sandbox, junk: bytes) -> None:
    box.refused(junk, "not a tar archive")


def test_huge_extended_header_refused(box: Sandbox) -> None:
    box.refused(archive(member("f", pax={"comment": "x" * (2 << 20)})), "extended header", "limit")


def test_pax_digit_run_refused_before_tarfile_parses_it(box: Sandbox) -> None:
    # CPython < 3.11.10 scans this for hdrcharset in quadratic time (CVE-2024-6232): minutes
    payload = b"9" * 500_000
    header = tarfile.TarInfo("PaxHeader")
    header.type, header.size = tarfile.XHDTYPE, len(payload)
    data = header.tobuf(tarfile.USTAR_FORMAT) + payload + bytes(-len(payload) % 512) + archive(member("f"))
    box.refused(data, "run of over 64 digits")


def test_long_digit_free_pax_values_still_read(box: Sandbox) -> None:
    long_name = "d/" + "n" * 200 + "/" + "1234567890" * 6
    box.unpack(archive(member(long_name, data=b"x", mtime=1_600_000_000.25)))
    assert (box.dest / long_name).read_bytes() == b"x"


# --- open_layer -------------------------------------------------------------------------------

@pytest.mark.parametrize("media_type", [
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
])
def test_gzip_layer(box: Sandbox, media_type: str) -> None:
    blob = box.base / "blob"
    blob.write_bytes(gzip.compress(archive(member("f", data=b"gz"))))
    with open_layer(blob, media_type) as stream:
        unpack(stream, box.dest)
    assert (box.dest / "f").read_bytes() == b"gz"


def test_plain_tar_layer(box: Sandbox) -> None:
    blob = box.base / "blob"
    blob.write_bytes(archive(member("f", data=b"t")))
    with open_layer(blob, OCI_TAR) as stream:
        unpack(stream, box.dest)
    assert (box.dest / "f").read_bytes() == b"t"


def test_corrupt_gzip_refused(box: Sandbox) -> None:
    blob = box.base / "blob"
    packed = bytearray(gzip.compress(archive(member("f", data=os.urandom(4096)))))
    packed[-6] ^= 0xFF  # the CRC: only a read to the end of the stream sees it
    blob.write_bytes(bytes(packed))
    before = box.outside()
    with pytest.raises(LayerError, match="cannot read the layer stream"), \
            open_layer(blob, "application/vnd.oci.image.layer.v1.tar+gzip") as stream:
        unpack(stream, box.dest)
    assert box.outside() == before


needs_zstd = pytest.mark.skipif(shutil.which("zstd") is None, reason="needs the zstd program (Debian zstd)")


@needs_zstd
def test_zstd_layer(box: Sandbox) -> None:
    import subprocess

    blob = box.base / "blob"
    packed = subprocess.run(["zstd", "-c", "-q"], input=archive(member("f", data=b"z" * 10000)),
                            capture_output=True, check=True).stdout
    blob.write_bytes(packed)
    with open_layer(blob, "application/vnd.oci.image.layer.v1.tar+zstd") as stream:
        stats = unpack(stream, box.dest)
    assert stats.bytes == 10000
    shutil.rmtree(box.dest)
    box.dest.mkdir()
    blob.write_bytes(packed[:-8])  # truncated frame: zstd exits non-zero
    with pytest.raises(LayerError), open_layer(blob, "application/vnd.oci.image.layer.v1.tar+zstd") as stream:
        unpack(stream, box.dest)


def test_unknown_media_type_refused(box: Sandbox) -> None:
    blob = box.base / "blob"
    blob.write_bytes(b"")
    with pytest.raises(LayerError, match="unknown media type"):
        open_layer(blob, "application/vnd.oci.image.layer.v1.tar+lz4")
