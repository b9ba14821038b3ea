"""One OCI layer blob turned into a directory, safely, in the form an overlayfs lowerdir needs.

These rules are implemented twice: here with tarfile, and in native/extract.c (untar.py), which
gzip and plain tar layers go through wherever the core is built with it (inflate, hash and
files without the GIL: the layers of a pull unpack in parallel). This one stays for zstd
layers and cores built without it; tests/unit/test_extract.py runs every rule against both.

A layer is hostile input: names may climb (`../x`, `/etc/x`), a symlink may come first and a
write through it next (`a -> /etc`, then `a/passwd`), a hard link may point out, a header may be
huge, the archive may be cut short. The rules:

- Names are relative, without `..` or NUL, each component at most NAME_MAX bytes and the whole
  name at most PATH_MAX; empty and `.` components are dropped; the root entry (`./`) is skipped,
  as containerd skips entries that resolve to the root.
- Every path is reached from `dest` by fd, one component at a time with O_NOFOLLOW | O_DIRECTORY:
  a symlink or a file where a directory is expected is refused, so nothing is ever written
  through a link. Python's os has no openat2 and the native core does not export one; the store
  unpacks into a private directory nobody else writes, so this walk gives what
  RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS would. Final components are created with O_EXCL /
  mkdirat / mknodat / symlinkat and changed with the *at calls that do not follow a symlink.
- A later entry replaces an earlier one of the same name (tar semantics; two directories merge):
  the old one is unlinked (a directory removed by shutil.rmtree's fd walk), never followed.
- Whiteouts (OCI image-spec layer.md) become overlayfs's own form: `.wh.<name>` a 0:0 character
  device at <name>, `.wh..wh..opq` the xattr trusted.overlay.opaque=y on its directory; other
  `.wh..wh.` names are reserved by the spec and ignored (containerd does the same). A whiteout
  applies to lower layers only: a same-named entry of this layer stays (a directory turns opaque).
- Extended headers (PAX, GNU long names) are bounded to 1 MiB, Go archive/tar's limit: tarfile
  reads one whole into memory. A missing end-of-archive block is an error: TarFile.next() takes
  it, or a bad header after the first member, for a normal end.
- Metadata order per entry: owner, xattrs (a chown drops security.capability), mode (a chown
  clears setuid/setgid), times. The chown is left out where the new inode has the owner already
  (our ids, under a directory of our group). Directories get their mode and times at the end, deepest first,
  once their children no longer change them.

An error leaves `dest` half written: the caller removes it.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import tarfile

from sandbox.fdio import write_all
from sandbox.images.layerbase import MEDIA_TYPES as MEDIA_TYPES  # re-exported, as the rest
from sandbox.images.layerbase import LayerError as LayerError
from sandbox.images.layerbase import LayerStats as LayerStats
from sandbox.images.layerbase import show as _show
from sandbox.images.layerbase import streamable as streamable

TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess
    from pathlib import Path
    from typing import Any, BinaryIO, Self

CHUNK = 1 << 20
# Compressed bytes handed to inflate at a time, and the most it may give back from one call
# (_Gunzip). Input left over at the output cap is copied into a new unconsumed_tail on every
# call, so the cap is a few times the input (layers inflate 2-4x); outputs past ~1 MiB cost more
# than they save (fresh memory a call: 14 ms a 16 MiB layer against 6). Measured over the pull
# benchmark's 6 layers, 64 KiB reads as tarfile makes them: isal 42 ms of CPU, zlib 60 (32/64 KiB
# pieces, the earlier sizes, 52 ms with isal).
INFLATE_INPUT = 64 << 10
INFLATE_OUTPUT = 128 << 10
MAX_WBITS = 15  # zlib.MAX_WBITS, without importing zlib where isal does the work
MAX_NAME = 4096  # PATH_MAX, counting bytes
MAX_COMPONENT = 255  # NAME_MAX
MAX_LINK_TARGET = 4095  # symlink(2) fails with ENAMETOOLONG beyond PATH_MAX - 1
MAX_EXTENDED_HEADER = 1 << 20
MAX_DIGIT_RUN = 64
WHITEOUT = ".wh."
WHITEOUT_META = ".wh..wh."
OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
XATTR_PAX = "SCHILY.xattr."
# overlayfs reads these from a lowerdir (redirect, metacopy, opaque, ...): only unpack sets them.
OVERLAY_XATTRS = ("trusted.overlay.", "user.overlay.")

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_EXTENDED_TYPES = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE,
                   tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)
_EOF_HEADER: type[Exception] = tarfile.EOFHeaderError  # type: ignore[attr-defined]  # not in typeshed


def open_layer(path: Path, media_type: str) -> BinaryIO:
    """The decompressed tar stream of a layer blob; close it when done."""
    compression = MEDIA_TYPES.get(media_type)
    if compression is None:
        raise LayerError(f"layer {path.name}: unknown media type {media_type!r}")
    stream: Any
    try:
        if compression == "gzip":
            stream = _Gunzip(open(path, "rb"))  # noqa: SIM115  # closed with it
        elif compression == "zstd":
            stream = _zstd(path)
        else:
            stream = open(path, "rb")  # noqa: SIM115  # the caller closes it
    except OSError as e:
        raise LayerError(f"layer {path}: cannot open: {e.strerror}") from None
    binary: BinaryIO = stream  # GzipFile is a binary stream that typeshed does not call BinaryIO
    return binary


def open_stream(blob: Any, media_type: str) -> BinaryIO:
    """The decompressed tar stream of a gzip or plain tar layer read from `blob` (anything with
    read(n) and close()); closing it closes `blob`."""
    stream: Any = _Gunzip(blob) if MEDIA_TYPES.get(media_type) == "gzip" else blob
    binary: BinaryIO = stream
    return binary


class _Gunzip(io.RawIOBase):
    """gzip by one inflate stream object per member (isal's when installed, else zlib's: the same
    API), which checks each member's CRC-32 and length itself (window bits 16 + 15), where
    GzipFile runs a second pass of zlib.crc32 over every byte. Input goes in pieces of
    INFLATE_INPUT, output comes in pieces of up to INFLATE_OUTPUT, served to the reader (tarfile
    asks for 64 KiB) from the last piece; the cap bounds the memory a hostile high-ratio stream
    can take. As gzip(1) and GzipFile: members follow one another, zero bytes between or after
    them are padding; a stream cut before a member's end is an error."""

    def __init__(self, blob: BinaryIO) -> None:
        super().__init__()
        self.blob = blob
        self.inflater = inflate_module()
        self.inflate = self.inflater.decompressobj(16 + MAX_WBITS)
        self.head = b""  # input read past a member's end: the next member's first bytes
        self.out = memoryview(b"")  # inflated, not yet read

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        if not self.out:
            whole = self._inflate() if size else b""
            if len(whole) <= size:
                return whole  # no copy
            self.out = memoryview(whole)
        piece, self.out = self.out[:size], self.out[size:]
        return piece.tobytes()

    def _inflate(self) -> bytes:
        """The next non-empty piece of output; b"" at the end of the last member."""
        while True:
            if self.inflate.eof and not self._next_member():
                return b""
            data, self.head = self.head or self.inflate.unconsumed_tail or self.blob.read(INFLATE_INPUT), b""
            if not data:
                raise EOFError("the gzip stream ends inside a member")
            out: bytes = self.inflate.decompress(data, INFLATE_OUTPUT)
            if out:
                return out

    def readinto(self, buf: Any) -> int:
        out = self.read(len(buf))
        buf[:len(out)] = out
        return len(out)

    def _next_member(self) -> bool:
        """After a member's end: True with a fresh stream object if another member follows."""
        data = self.inflate.unused_data
        while not (data := data.lstrip(b"\0")):
            data = self.blob.read(INFLATE_INPUT)
            if not data:
                return False
        self.inflate = self.inflater.decompressobj(16 + MAX_WBITS)
        self.head = data
        return True

    def close(self) -> None:
        self.blob.close()
        super().close()


def inflate_module() -> Any:
    """isal's zlib-compatible module (python-isal: ISA-L's inflate, ~30% less CPU than zlib on
    the benchmark's layers, see INFLATE_INPUT) when installed, else zlib: a venv without it
    still pulls, only slower."""
    try:
        from isal import isal_zlib
    except ImportError:
        import zlib

        return zlib
    return isal_zlib


def inflate_errors() -> tuple[type[Exception], ...]:
    """What a corrupt deflate stream raises: zlib.error, and isal's own IsalError (not a subclass)."""
    import zlib

    module = inflate_module()
    return (zlib.error,) if module is zlib else (zlib.error, module.error)


def _zstd(path: Path) -> BinaryIO:
    """zstd through Debian's `zstd` program: the stdlib has no zstd before Python 3.14, and the
    program streams with its default 128 MB window limit (a hostile frame cannot ask for more)."""
    import subprocess

    with open(path, "rb") as blob:
        try:
            proc = subprocess.Popen(["zstd", "-d", "-c", "-q"], stdin=blob, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, bufsize=0)
        except FileNotFoundError:
            raise LayerError(f"layer {path.name}: zstd layers need the zstd program (Debian package zstd)") from None
    return io.BufferedReader(_ZstdPipe(proc, proc.stdout, proc.stderr), CHUNK)


class _ZstdPipe(io.RawIOBase):
    """The raw side of a zstd child: its exit status is checked at the end of the stream."""

    def __init__(self, proc: subprocess.Popen[bytes], out: Any, err: Any) -> None:
        super().__init__()
        self.proc, self.out, self.err = proc, out, err

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        n: int = self.out.readinto(buf)
        if n == 0 and self.proc.wait() != 0:
            detail = self.err.read(4096).decode(errors="replace").strip()
            raise LayerError(f"layer: zstd failed (exit {self.proc.returncode}): {detail}")
        return n

    def close(self) -> None:
        if not self.closed:
            if self.proc.poll() is None:  # stopped early: our own child, killed by its handle
                self.proc.kill()
            self.proc.wait()
            self.out.close()
            self.err.close()
        super().close()


def unpack(stream: BinaryIO, dest: Path, *, allow_devices: bool = False) -> LayerStats:
    """Write the layer's tree into the empty directory `dest`; the stream is read to its end
    (so a wrapper can hash it: the diff_id) but never held in memory."""
    try:
        root = os.open(dest, _DIR_FLAGS)
    except OSError as e:
        raise LayerError(f"layer destination {dest}: {e.strerror}") from None
    writer = _Writer(root, allow_devices)
    try:
        if os.listdir(root):
            raise LayerError(f"layer destination {dest}: not empty")
        source = _Source(stream)
        _extract(source, writer)
        writer.finish()
        source.drain()
        return LayerStats(writer.files, writer.bytes)
    finally:
        writer.close()
        os.close(root)


def _extract(source: _Source, writer: _Writer) -> None:
    fileobj: Any = source
    try:
        tar = tarfile.open(fileobj=fileobj, mode="r|", bufsize=1 << 16, tarinfo=_BoundedInfo,
                           encoding="utf-8", errors="surrogateescape")
        info = tar.next()  # the constructor already read it, strictly (offset 0)
    except tarfile.TarError as e:
        raise LayerError(f"layer: not a tar archive: {e}") from None
    while info is not None:
        writer.write(info, tar)
        info = _next(tar)


def _next(tar: tarfile.TarFile) -> tarfile.TarInfo | None:
    """TarFile.next() without its leniency: only a zero block ends the archive."""
    stream: Any = tar.fileobj
    if tar.offset != stream.tell():  # skip the rest of the previous entry's data
        stream.seek(tar.offset - 1)
        if not stream.read(1):
            raise LayerError("layer: truncated archive: the last entry's data is cut short")
    try:
        return _BoundedInfo.fromtarfile(tar)
    except _EOF_HEADER:
        return None
    except tarfile.HeaderError as e:
        raise LayerError(f"layer: truncated or corrupt archive at byte {tar.offset}: {e}") from None


class _BoundedInfo(tarfile.TarInfo):
    """tarfile's header parsing with two guards for hostile headers."""

    @classmethod
    def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> Self:
        info = super().frombuf(buf, encoding, errors)
        if info.type in _EXTENDED_TYPES and info.size > MAX_EXTENDED_HEADER:
            raise LayerError(f"layer: extended header of {info.size} bytes (limit {MAX_EXTENDED_HEADER})")
        return info

    def _proc_pax(self, tar: tarfile.TarFile) -> tarfile.TarInfo:
        """CPython before 3.11.10 / 3.12.6 looks for `hdrcharset` with a regex that is quadratic in
        a run of digits (CVE-2024-6232): 1 MiB of them costs minutes. No real record has a long
        run (lengths, times and ids are short numbers), so such a header is refused first; the
        bytes read for the check are then replayed to tarfile's own parser."""
        import re

        stream: Any = tar.fileobj
        data = stream.read(-(-self.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE)
        if re.search(rb"\d{%d}" % (MAX_DIGIT_RUN + 1), data):
            raise LayerError(f"layer: PAX header with a run of over {MAX_DIGIT_RUN} digits")
        tar.fileobj = _Replay(data, stream)  # type: ignore[assignment]
        try:
            parse: Any = super()._proc_pax  # type: ignore[misc]
            processed: tarfile.TarInfo = parse(tar)
            return processed
        finally:
            tar.fileobj = stream


class _Replay:
    """tarfile's stream with bytes already taken from it put back in front."""

    def __init__(self, head: bytes, stream: Any) -> None:
        self.head = head
        self.stream = stream

    def read(self, size: int) -> bytes:
        if not self.head:
            data: bytes = self.stream.read(size)
            return data
        out, self.head = self.head[:size], self.head[size:]
        return out + self.stream.read(size - len(out)) if len(out) < size else out

    def tell(self) -> int:
        position: int = self.stream.tell() - len(self.head)
        return position


class _Source:
    """The layer stream as tarfile reads it: decompression and read failures become LayerError."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream

    def read(self, size: int = -1) -> bytes:
        try:
            return self.stream.read(size)
        except (OSError, EOFError) as e:
            raise LayerError(f"layer: cannot read the layer stream: {e}") from None
        except Exception as e:
            if isinstance(e, inflate_errors()):
                raise LayerError(f"layer: cannot read the layer stream: {e}") from None
            raise

    def drain(self) -> None:
        """Reads past the end-of-archive blocks to the stream's end: gzip checks its CRC there,
        zstd reports its exit status."""
        while self.read(CHUNK):
            pass


class _Writer:
    """Creates entries beneath the `root` fd; `op` names the step an OSError came from."""

    def __init__(self, root: int, allow_devices: bool) -> None:
        self.root = root
        self.allow_devices = allow_devices
        self.files = 0
        self.bytes = 0
        self.op = ""
        # entries come grouped by directory: its parts, fd and group (a directory is never
        # chowned while it is the cached parent: its own entry is written under its parent)
        self.cached: tuple[tuple[str, ...], int, int] | None = None
        self.ours = (os.geteuid(), os.getegid())
        self.directories: dict[tuple[str, ...], tarfile.TarInfo] = {}

    def close(self) -> None:
        if self.cached is not None:
            os.close(self.cached[1])
            self.cached = None

    def write(self, info: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
        name = info.name
        try:
            parts = _parts(name, name)
            if not parts:
                return
            whiteout = parts[-1].startswith(WHITEOUT)  # a marker of any entry type, as containerd
            if not whiteout:
                _check_kind(info, self.allow_devices)
            parent = self.parent(parts[:-1], name)
            if whiteout:
                self.whiteout(parent, parts[-1], name)
            else:
                self.entry(parent, parts, info, tar)
        except (OSError, OverflowError, ValueError) as e:  # ValueError: a NaN mtime
            raise _refused(name, f"{self.op}: {getattr(e, 'strerror', None) or e}") from None
        except tarfile.TarError as e:
            raise _refused(name, f"truncated or corrupt archive: {e}") from None

    def parent(self, parts: tuple[str, ...], name: str) -> int:
        if self.cached is not None and self.cached[0] == parts:
            return self.cached[1]
        fd = self.open_dir(parts, name, create=True)
        self.close()
        try:
            self.cached = (parts, fd, os.fstat(fd).st_gid)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def open_dir(self, parts: tuple[str, ...], name: str, create: bool) -> int:
        """A new fd of the directory `parts`, walked one component at a time without following."""
        self.op = "open"
        fd = os.open(".", _DIR_FLAGS, dir_fd=self.root)
        try:
            for i, part in enumerate(parts):
                step = self.step(fd, part, create)
                if step < 0:
                    where = "/".join(parts[:i + 1])
                    raise _refused(name, f'"{_show(where)}" is not a directory: nothing is written through a '
                                         "symlink or a file")
                os.close(fd)
                fd = step
        except BaseException:
            os.close(fd)
            raise
        return fd

    def step(self, fd: int, part: str, create: bool) -> int:
        try:
            return os.open(part, _DIR_FLAGS, dir_fd=fd)
        except FileNotFoundError:
            if not create:
                raise
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                return -1
            raise
        self.op = "mkdir"  # a parent the archive did not list: containerd creates it 0755 too
        os.mkdir(part, 0o755, dir_fd=fd)
        self.files += 1
        return os.open(part, _DIR_FLAGS, dir_fd=fd)

    def whiteout(self, parent: int, base: str, name: str) -> None:
        if base == OPAQUE:
            self.op = "mark opaque"
            os.setxattr(parent, OPAQUE_XATTR, b"y")
            return
        if base.startswith(WHITEOUT_META):
            return
        hidden = base[len(WHITEOUT):]
        if hidden in ("", ".", ".."):
            raise _refused(name, "a whiteout of its own directory or of the parent")
        existing = _lstat(parent, hidden)
        if existing is None:
            self.op = "mknod whiteout"
            os.mknod(hidden, stat.S_IFCHR, 0, dir_fd=parent)
            self.files += 1
        elif stat.S_ISDIR(existing.st_mode):
            self.mark_opaque(parent, hidden)

    def mark_opaque(self, parent: int, base: str) -> None:
        self.op = "mark opaque"
        fd = os.open(base, _DIR_FLAGS, dir_fd=parent)
        try:
            os.setxattr(fd, OPAQUE_XATTR, b"y")
        finally:
            os.close(fd)

    def entry(self, parent: int, parts: tuple[str, ...], info: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
        if info.islnk():
            self.hard_link(parent, parts, info)
            return
        self.files += 1
        try:  # most names are new: created at once, the name looked at only when it is taken
            self.make(parent, parts, info, tar, create=True, opaque=False)
            return
        except FileExistsError:
            existing = _lstat(parent, parts[-1])
        merge = existing is not None and info.isdir() and stat.S_ISDIR(existing.st_mode)
        opaque = False
        if existing is not None and not merge:
            # a whiteout of this layer then the same name as a directory: OCI hides the lower
            # layers' directory and keeps this one, which overlayfs spells as opaque
            opaque = info.isdir() and _is_whiteout(existing)
            self.remove(parent, parts, existing)
        self.make(parent, parts, info, tar, create=not merge, opaque=opaque)

    def make(self, parent: int, parts: tuple[str, ...], info: tarfile.TarInfo, tar: tarfile.TarFile, *,
             create: bool, opaque: bool) -> None:
        """The entry made at a free name (a directory also merged into an existing one); each
        kind's first call (mkdir, open O_EXCL, symlink, mknod) raises FileExistsError on a taken
        name before anything is written or read."""
        base = parts[-1]
        if info.isdir():
            self.directory(parent, parts, info, create=create, opaque=opaque)
        elif info.isreg():
            self.regular(parent, base, info, tar)
        elif info.issym():
            self.op = "symlink"
            os.symlink(info.linkname, base, dir_fd=parent)
            self.attributes(None, parent, base, info, info.name)
        else:
            self.node(parent, base, info, info.name)

    def remove(self, parent: int, parts: tuple[str, ...], existing: os.stat_result) -> None:
        self.op = "replace"
        if not stat.S_ISDIR(existing.st_mode):
            os.unlink(parts[-1], dir_fd=parent)
            return
        import shutil

        shutil.rmtree(parts[-1], dir_fd=parent)  # its fd walk never follows a symlink
        depth = len(parts)
        for gone in [d for d in self.directories if d[:depth] == parts]:
            del self.directories[gone]

    def directory(self, parent: int, parts: tuple[str, ...], info: tarfile.TarInfo, *, create: bool,
                  opaque: bool) -> None:
        self.op = "mkdir"
        if create:
            os.mkdir(parts[-1], 0o700, dir_fd=parent)  # its mode comes last (finish)
        fd = os.open(parts[-1], _DIR_FLAGS, dir_fd=parent)
        try:
            self.owner_and_xattrs(fd, parent, parts[-1], info, info.name, made=create)
            if opaque:
                os.setxattr(fd, OPAQUE_XATTR, b"y")
        finally:
            os.close(fd)
        self.directories[parts] = info

    def regular(self, parent: int, base: str, info: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
        self.op = "create"
        fd = os.open(base, _FILE_FLAGS, 0o600, dir_fd=parent)
        try:
            self.op = "write"
            source = _content(info, tar)
            remaining = info.size
            while remaining and source is not None:
                chunk = source.read(min(CHUNK, remaining))
                if not chunk:
                    raise LayerError(f'layer entry "{_show(info.name)}": truncated archive')
                write_all(fd, chunk)
                remaining -= len(chunk)
            self.bytes += info.size
            self.attributes(fd, parent, base, info, info.name)
        finally:
            os.close(fd)

    def node(self, parent: int, base: str, info: tarfile.TarInfo, name: str) -> None:
        self.op = "mknod"
        if info.isfifo():
            os.mkfifo(base, 0o600, dir_fd=parent)
        else:
            kind = stat.S_IFCHR if info.ischr() else stat.S_IFBLK
            os.mknod(base, kind | 0o600, os.makedev(info.devmajor, info.devminor), dir_fd=parent)
        self.attributes(None, parent, base, info, name)

    def hard_link(self, parent: int, parts: tuple[str, ...], info: tarfile.TarInfo) -> None:
        name = info.name
        target = _parts(info.linkname, name, "hard link target")
        if not target:
            raise _refused(name, "a hard link to the root")
        if target == parts:
            return  # a link to itself: the name already is that file
        shown = _show(info.linkname)
        try:
            source_dir = self.open_dir(target[:-1], name, create=False)
        except FileNotFoundError:
            raise _refused(name, f'hard link target "{shown}" is not an earlier entry of this layer') from None
        try:
            source = _lstat(source_dir, target[-1])
            if source is None:
                raise _refused(name, f'hard link target "{shown}" is not an earlier entry of this layer')
            if not stat.S_ISREG(source.st_mode):
                raise _refused(name, f'hard link target "{shown}" is not a regular file')
            existing = _lstat(parent, parts[-1])
            if existing is not None:
                if (existing.st_dev, existing.st_ino) == (source.st_dev, source.st_ino):
                    return
                self.remove(parent, parts, existing)
            self.op = "link"
            os.link(target[-1], parts[-1], src_dir_fd=source_dir, dst_dir_fd=parent, follow_symlinks=False)
            self.files += 1
        finally:
            os.close(source_dir)

    def owner_and_xattrs(self, fd: int | None, parent: int, base: str, info: tarfile.TarInfo, name: str,
                         made: bool = True) -> None:
        if not (made and self.owned(parent, info)):
            self.op = f"chown to {info.uid}:{info.gid}"
            if fd is not None:
                os.fchown(fd, info.uid, info.gid)
            else:
                os.chown(base, info.uid, info.gid, dir_fd=parent, follow_symlinks=False)
        for attr, value in _xattrs(info, name):
            self.op = f"set xattr {attr}"
            if fd is not None:
                os.setxattr(fd, attr, value)
            else:  # a symlink or node: its verified parent's fd, the last component not followed
                os.setxattr(f"/proc/self/fd/{parent}/{base}", attr, value, follow_symlinks=False)

    def owned(self, parent: int, info: tarfile.TarInfo) -> bool:
        """Whether an inode just made beneath `parent` has the owner `info` gives already (most
        layers' files are root's, and so is an unpack): the kernel gave it our fsuid and either our
        fsgid or, under a setgid parent or a grpid mount, the parent's group, so a parent of our
        group settles the group either way. A chown to the same ids would cost a syscall a file."""
        cached = self.cached
        return (info.uid, info.gid) == self.ours and cached is not None and cached[1] == parent and \
            cached[2] == self.ours[1]

    def attributes(self, fd: int | None, parent: int, base: str, info: tarfile.TarInfo, name: str) -> None:
        self.owner_and_xattrs(fd, parent, base, info, name)
        self.op = "chmod"
        if fd is not None:
            os.fchmod(fd, info.mode & 0o7777)
        elif not info.issym():  # Linux symlinks have no mode; this node was just made, not a link
            os.chmod(base, info.mode & 0o7777, dir_fd=parent)
        self.op = "set times"
        when = _ns(info.mtime)
        if fd is not None:
            os.utime(fd, ns=(when, when))
        else:
            os.utime(base, ns=(when, when), dir_fd=parent, follow_symlinks=False)

    def finish(self) -> None:
        """Directory modes and times, deepest first: writing a child changes its parent's mtime,
        and a mode without write or search permission would stop a non-root caller."""
        for parts in sorted(self.directories, key=len, reverse=True):
            info = self.directories[parts]
            try:
                fd = self.open_dir(parts, info.name, create=False)
                try:
                    self.op = "chmod"
                    os.fchmod(fd, info.mode & 0o7777)
                    self.op = "set times"
                    os.utime(fd, ns=(_ns(info.mtime), _ns(info.mtime)))
                finally:
                    os.close(fd)
            except (OSError, OverflowError, ValueError) as e:
                raise _refused(info.name, f"{self.op}: {getattr(e, 'strerror', None) or e}") from None


def _content(info: tarfile.TarInfo, tar: tarfile.TarFile) -> Any:
    """Where a regular entry's bytes are read. A plain file's data follows its header in the
    stream, where the reader stands now: read there directly, without extractfile's buffered
    reader over a file-in-file (two more copies of every byte). A sparse file's holes need
    extractfile's map."""
    stream: Any = tar.fileobj
    if info.issparse():
        return tar.extractfile(info)
    if stream.tell() != info.offset_data:
        raise LayerError(f'layer entry "{_show(info.name)}": its data is not where its header ends')
    return stream


def _check_kind(info: tarfile.TarInfo, allow_devices: bool) -> None:
    name = info.name
    if info.isdev() and not info.isfifo() and not allow_devices:
        kind = "character" if info.ischr() else "block"
        raise _refused(name, f"{kind} device {info.devmajor}:{info.devminor} refused (devices not allowed)")
    if not (info.isreg() or info.isdir() or info.issym() or info.islnk() or info.isdev()):
        raise _refused(name, f"unsupported entry type {info.type!r}")
    if info.uid < 0 or info.gid < 0:  # base-256 fields can say -1, which chown reads as "unchanged"
        raise _refused(name, f"negative owner {info.uid}:{info.gid}")
    if info.issym():
        if "\x00" in info.linkname:
            raise _refused(name, "symlink target contains a NUL byte")
        if not info.linkname or len(os.fsencode(info.linkname)) > MAX_LINK_TARGET:
            raise _refused(name, f"symlink target empty or longer than {MAX_LINK_TARGET} bytes")


def _parts(path: str, name: str, what: str = "name") -> tuple[str, ...]:
    """The components of an archive path, refused (naming the entry) unless it stays beneath."""
    if "\x00" in path:
        raise _refused(name, f"{what} contains a NUL byte")
    if len(os.fsencode(path)) > MAX_NAME:
        raise _refused(name, f"{what} longer than {MAX_NAME} bytes")
    if path.startswith("/"):
        raise _refused(name, f"{what} is absolute")
    parts = tuple(p for p in path.split("/") if p and p != ".")
    for i, part in enumerate(parts):
        if part == "..":
            raise _refused(name, f"{what} has a '..' component")
        if len(os.fsencode(part)) > MAX_COMPONENT:
            raise _refused(name, f"{what} has a component longer than {MAX_COMPONENT} bytes")
        if part.startswith(WHITEOUT) and i < len(parts) - 1:
            raise _refused(name, f"{what} has a directory named {WHITEOUT}*: the prefix marks whiteouts")
    return parts


def _xattrs(info: tarfile.TarInfo, name: str) -> list[tuple[str, bytes]]:
    found = []
    for key, value in info.pax_headers.items():
        if not key.startswith(XATTR_PAX):
            continue
        attr = key[len(XATTR_PAX):]
        if "\x00" in attr or not attr:
            raise _refused(name, "an xattr name empty or with a NUL byte")
        if attr.startswith(OVERLAY_XATTRS):
            raise _refused(name, f"xattr {attr} is overlayfs's own: a layer may not set it")
        # tarfile decoded the PAX value as UTF-8 with surrogateescape: this gives the bytes back
        found.append((attr, value.encode("utf-8", "surrogateescape")))
    return found


def _lstat(dir_fd: int, base: str) -> os.stat_result | None:
    try:
        return os.stat(base, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0



def _ns(mtime: float) -> int:
    """Nanoseconds of a header's mtime: an int (ustar, base-256) or a float (a PAX record)."""
    return mtime * 1_000_000_000 if isinstance(mtime, int) else round(mtime * 1e9)


def _refused(name: str, detail: str) -> LayerError:
    return LayerError(f'layer entry "{_show(name)}": {detail}')
