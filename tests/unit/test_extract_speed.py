"""The pull-speed parts of extraction (issue 12): gzip inflated by isal, or zlib without it,
directly (members, padding, truncation, both inflaters), file data read in place (and sparse files through tarfile's map), layers
unpacked on threads with the first error raised and nothing half-made left, the store's layers/
marked as a top directory for ext4's Orlov allocator, chown skipped only where the owner is known."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import struct
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest
from tarballs import tar_of

from sandbox.errors import ImageError
from sandbox.images.extract import LayerError, inflate_module, open_layer, unpack
from sandbox.images.store import ImageStore, _run_in_threads
from sandbox.topdir import FS_TOPDIR_FL, mark_top_directory

FS_IOC_GETFLAGS = 0x80086601  # <linux/fs.h>: _IOR('f', 1, long); the kernel reads an int

GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def inflated(tmp_path: Path, blob: bytes) -> bytes:
    path = tmp_path / "blob"
    path.write_bytes(blob)
    with open_layer(path, GZIP) as stream:
        return stream.read()


# --- gzip -------------------------------------------------------------------------------------

@pytest.fixture(params=["isal", "zlib"])
def inflater(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each gzip test with isal's inflate and with zlib's (the fallback where isal is missing)."""
    if request.param == "isal":
        pytest.importorskip("isal")
    else:
        monkeypatch.setitem(sys.modules, "isal", None)  # `import isal` raises ImportError
    assert inflate_module().__name__ == ("isal.isal_zlib" if request.param == "isal" else "zlib")
    return str(request.param)


@pytest.mark.usefixtures("inflater")
def test_gzip_members_and_zero_padding_are_read_as_gzip_reads_them(tmp_path: Path) -> None:
    big = os.urandom(1 << 20) + b"text " * 200_000  # past one input read, and a high ratio part
    assert inflated(tmp_path, gzip.compress(big)) == big
    assert inflated(tmp_path, gzip.compress(b"ab") + gzip.compress(b"") + gzip.compress(b"cd")) == b"abcd"
    assert inflated(tmp_path, gzip.compress(b"ab") + b"\0" * 70_000) == b"ab"


@pytest.mark.usefixtures("inflater")
@pytest.mark.parametrize("damage", ["cut-trailer", "cut-middle", "garbage-after", "crc", "header"])
def test_damaged_gzip_layer_is_refused(tmp_path: Path, damage: str) -> None:
    data = tar_of({"f": os.urandom(200_000)})
    packed = bytearray(gzip.compress(data))
    if damage == "cut-trailer":
        packed = packed[:-4]
    elif damage == "cut-middle":
        packed = packed[:len(packed) // 2]
    elif damage == "garbage-after":
        packed += b"not gzip"
    elif damage == "header":
        packed[0] ^= 1  # isal raises its own error type here, not zlib.error
    else:
        packed[-6] ^= 0xFF
    blob = tmp_path / "blob"
    blob.write_bytes(bytes(packed))
    (tmp_path / "dest").mkdir()
    with open_layer(blob, GZIP) as stream, pytest.raises(LayerError, match="cannot read the layer stream"):
        unpack(stream, tmp_path / "dest")  # reads to the stream's end, as the diff_id needs


def test_sparse_file_is_written_through_tarfiles_map(tmp_path: Path) -> None:
    """GNU tar's sparse entries keep going through extractfile (the holes come back as zeros)."""
    source = tmp_path / "src"
    source.mkdir()
    with open(source / "holes", "wb") as f:
        f.write(b"head")
        f.seek(1 << 20)
        f.write(b"tail")
    (source / "after").write_bytes(b"next entry")
    blob = tmp_path / "sparse.tar"
    subprocess.run(["tar", "--sparse", "--format=gnu", "-cf", str(blob), "-C", str(source), "holes", "after"],
                   check=True)
    with tarfile.open(blob) as tar:
        assert tar.getmember("holes").issparse()
    dest = tmp_path / "dest"
    dest.mkdir()
    with open(blob, "rb") as stream:
        unpack(stream, dest)
    assert (dest / "holes").read_bytes() == b"head" + b"\0" * ((1 << 20) - 4) + b"tail"
    assert (dest / "after").read_bytes() == b"next entry"


# --- layers on threads ------------------------------------------------------------------------

def stored_layer(store: ImageStore, files: dict[str, bytes], *, diff_id: str = "") -> tuple[dict[str, object], str]:
    data = tar_of(files)
    blob = gzip.compress(data)
    digest = store.ingest([blob])
    desc = {"mediaType": GZIP, "digest": digest, "size": len(blob)}
    return desc, diff_id or "sha256:" + hashlib.sha256(data).hexdigest()


def test_layers_unpack_on_threads_each_fetched_first(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    layers = [stored_layer(store, {f"layer{i}/f": os.urandom(100_000)}) for i in range(5)]
    fetched: list[tuple[str, str]] = []
    two_at_once = threading.Barrier(2, timeout=30)  # broken unless a second thread takes a layer

    calls = iter(range(len(layers)))

    def fetch(desc: dict[str, object]) -> None:
        if next(calls) < 2:  # the first two calls meet: one on each thread
            two_at_once.wait()
        fetched.append((str(desc["digest"]), threading.current_thread().name))

    store.unpack_layers(layers, fetch=fetch)  # type: ignore[arg-type]
    assert sorted(d for d, _ in fetched) == sorted(str(desc["digest"]) for desc, _ in layers)
    assert len({thread for _, thread in fetched}) > 1, "every layer ran on the calling thread"
    for i, (_, diff_id) in enumerate(layers):
        assert (store.layer_path(diff_id) / f"layer{i}" / "f").stat().st_size == 100_000
    assert [p.name for p in (tmp_path / "images" / "layers").iterdir()] == ["sha256"]


def test_a_failing_layer_fails_the_unpack_and_leaves_no_partial_directory(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    good = [stored_layer(store, {f"ok{i}": b"x" * 10_000}) for i in range(3)]
    bad = stored_layer(store, {"liar": b"content"}, diff_id="sha256:" + "0" * 64)
    with pytest.raises(ImageError, match="uncompressed content is sha256:"):
        store.unpack_layers([*good, bad])  # type: ignore[list-item]
    assert not store.layer_path(bad[1]).exists()
    leftovers = [p.name for p in (tmp_path / "images" / "layers").iterdir() if p.name.startswith(".tmp-")]
    assert leftovers == []


def test_after_an_error_no_new_task_starts_and_the_first_error_is_raised() -> None:
    ran: list[int] = []
    gate = threading.Event()

    def task(i: int) -> None:
        ran.append(i)
        if i == 0:
            raise ValueError("first")
        gate.wait(5)

    def first_fails() -> None:
        gate.set()  # the other thread's task may end once this one has failed
        task(0)

    tasks = [first_fails, *[(lambda i=i: task(i)) for i in range(1, 6)]]
    with pytest.raises(ValueError, match="first"):
        _run_in_threads(tasks, 2)
    assert len(ran) <= 2, f"tasks started after the failure: {ran}"


# --- the inode allocator hint ------------------------------------------------------------------------

def test_layers_directory_is_a_top_directory_where_the_filesystem_has_the_flag(tmp_path: Path) -> None:
    import fcntl

    layers = tmp_path / "layers"
    layers.mkdir()
    marked = mark_top_directory(layers)
    fd = os.open(layers, os.O_RDONLY | os.O_DIRECTORY)
    try:
        flags = struct.unpack("i", fcntl.ioctl(fd, FS_IOC_GETFLAGS, b"\0" * 4))[0]
    except OSError:
        flags = 0  # tmpfs and others: no inode flags, and mark_top_directory said so
    finally:
        os.close(fd)
    assert marked == bool(flags & FS_TOPDIR_FL)
    assert mark_top_directory(tmp_path / "missing") is False


# --- the writer's skipped syscalls ----------------------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: files of other owners")


def entry(name: str, kind: bytes, uid: int, gid: int, data: bytes = b"") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.uid, info.gid, info.mode = kind, uid, gid, 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data


def archive_of(*entries: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


@needs_root
def test_a_new_file_of_our_ids_under_a_parent_of_another_group_is_still_chowned(tmp_path: Path) -> None:
    """A setgid parent gives new files its group: the chown is skipped only when the parent's
    group is ours too."""
    dest = tmp_path / "dest"
    dest.mkdir()
    os.chown(dest, 0, 4321)
    os.chmod(dest, 0o2755)
    unpack(io.BytesIO(archive_of(entry("f", tarfile.REGTYPE, 0, 0, b"x"), entry("d", tarfile.DIRTYPE, 0, 0),
                                 entry("d/g", tarfile.REGTYPE, 0, 0, b"y"))), dest)
    for path in (dest / "f", dest / "d", dest / "d" / "g"):
        assert (path.stat().st_uid, path.stat().st_gid) == (0, 0), path


@needs_root
def test_a_directory_listed_again_with_our_ids_takes_them(tmp_path: Path) -> None:
    """The second entry of a directory merges into the first one's: its owner is changed though
    the ids are ours (only an inode just made is known to carry them)."""
    dest = tmp_path / "dest"
    dest.mkdir()
    unpack(io.BytesIO(archive_of(entry("d", tarfile.DIRTYPE, 1000, 1000), entry("d/f", tarfile.REGTYPE, 1000, 1000, b"x"),
                                 entry("d", tarfile.DIRTYPE, 0, 0), entry("s", tarfile.REGTYPE, 1000, 1000, b"1"),
                                 entry("s", tarfile.REGTYPE, 0, 0, b"2"))), dest)
    assert ((dest / "d").stat().st_uid, (dest / "d").stat().st_gid) == (0, 0)
    assert ((dest / "d" / "f").stat().st_uid, (dest / "d" / "f").stat().st_gid) == (1000, 1000)
    assert ((dest / "s").stat().st_uid, (dest / "s").read_bytes()) == (0, b"2")
