"""The one reader of manifest input: a regular file by path, or standard input for `-`.

`kubectl apply -f -` reads standard input; so do `sandbox validate -` and `sandbox run -`. Anything
else that is not a regular file (a FIFO, a directory, a device, a socket) is refused at once: it
could block forever (a FIFO nobody writes, a terminal) or never end (/dev/zero). A file is opened
with O_NONBLOCK (opening a FIFO does not wait for a writer), O_NOCTTY (a terminal never becomes
the controlling one) and O_CLOEXEC, checked with fstat on that same descriptor, then read up to the
cap plus one byte, so an oversized input is told apart without reading it all.

This module imports nothing heavy (no yaml, no re): the parsed-manifest cache reads through it on
`sandbox run`'s hot path.
"""

from __future__ import annotations

import os
import stat

from sandbox.errors import FieldError, SpecError

MAX_BYTES = 10 * 1024 * 1024  # the kubelet's maxConfigLength
STDIN = "-"
STDIN_NAME = "<stdin>"  # how standard input is named in errors

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def source_name(path: str) -> str:
    """The name errors give the input: the path, or `<stdin>` for `-`."""
    return STDIN_NAME if path == STDIN else path


def read_manifest(path: str, limit: int = MAX_BYTES) -> bytes:
    """The bytes of the manifest at `path` (`-`: standard input), at most `limit` + 1 of them (the
    caller refuses more than `limit`). SpecError naming the input when it cannot be read or is not
    a regular file."""
    if path == STDIN:
        return _read_stdin(limit)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise _unreadable(path, _open_problem(path, exc)) from None
    except ValueError:  # an embedded NUL: no such file can exist
        raise _unreadable(path, "cannot read: the file name contains a NUL byte") from None
    try:
        kind = _not_regular(os.fstat(fd).st_mode)
        if kind is not None:
            raise _unreadable(path, f"Invalid value: {kind}: only regular files are read as manifests "
                                    "(or - for standard input)")
        return _read_fd(fd, limit)
    except OSError as exc:
        raise _unreadable(path, f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def _read_stdin(limit: int) -> bytes:
    import sys

    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:
        raise _unreadable(STDIN, "cannot read: standard input is closed")
    try:
        data: bytes = stream.read(limit + 1)
    except (OSError, ValueError) as exc:
        raise _unreadable(STDIN, f"cannot read standard input: {exc}") from None
    return data


def _read_fd(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    left = limit + 1
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _not_regular(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    for test, kind in _KINDS:
        if test(mode):
            return kind
    return "not a regular file"


def _open_problem(path: str, exc: OSError) -> str:
    # A socket cannot be opened at all (ENXIO): name what it is rather than "No such device".
    try:
        kind = _not_regular(os.stat(path).st_mode)
    except (OSError, ValueError):
        kind = None
    if kind is not None:
        return f"Invalid value: {kind}: only regular files are read as manifests (or - for standard input)"
    return f"cannot read: {exc.strerror or exc}"


def _unreadable(path: str, detail: str) -> SpecError:
    return SpecError([FieldError("<file>", detail)], source_name(path))
