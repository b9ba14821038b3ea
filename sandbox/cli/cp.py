"""`sandbox cp SRC DEST`: copy files and directories to and from a container, as `kubectl cp`.

kubectl cp runs `tar` in the container through exec and reads or writes the archive itself; so
does this (through `sandbox exec`), with kubectl's file specs (`[[namespace/]pod:]path`), its
argv for the container's tar and its rules for what it unpacks here:

- from a pod: `tar cf - SRC` in the container; each entry must start with SRC's cleaned path (else
  "tar contents corrupted"), SRC itself lands at DEST (a file or a directory tree); directories
  and regular files are written (files 0666 less the umask, directories 0755, as kubectl's
  os.Create/MkdirAll), symbolic links are skipped with kubectl's warning, and so is an entry whose
  path would leave DEST. The archive comes from a process the container controls (its `tar` is
  the image's): nothing in it can make a link, a device or a file outside DEST here. Hard links,
  devices and FIFOs are skipped with a warning (kubectl writes them as empty files).
- to a pod: `test -d DEST` in the container decides whether SRC goes into DEST or becomes it;
  then `tar -xmf - -C DIR` (`--no-preserve`: `--no-same-permissions --no-same-owner` too) reads
  the archive written here (symbolic links kept as links, owners and modes as they are).
Requires `tar` (and `test`) in the container's image, as kubectl cp does.
"""

from __future__ import annotations

import argparse
import os
import posixpath
import sys

from sandbox.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess
    import tarfile
    from typing import IO, Any

# the most read after the end of the archive from a pod (a tar record is 10 KiB)
DRAIN_LIMIT = 1 << 20
SPEC_FORMAT = "filespec must match the canonical format: [[namespace/]pod:]file/path"


def add_parser(verbs: Any) -> None:
    p = verbs.add_parser("cp", help="copy files and directories to and from containers (kubectl cp; needs tar "
                                    "in the container)")
    p.add_argument("src", metavar="SRC", help="a local path, or [namespace/]pod:path")
    p.add_argument("dest", metavar="DEST", help="a local path, or [namespace/]pod:path")
    p.add_argument("-c", "--container", help="container name (default: the pod's default container)")
    p.add_argument("--no-preserve", action="store_true",
                   help="to a pod: the files' owners and permissions are not kept in the container")
    p.set_defaults(handler=handle)


class FileSpec(Record):
    """One side of a copy: a pod's path, or a local one (pod "")."""

    path: str
    pod: str = ""
    namespace: str = ""  # "": the command's namespace


def parse_spec(text: str) -> FileSpec:
    """kubectl's extractFileSpec: no colon is a local path; `pod:path` or `namespace/pod:path`."""
    from sandbox.errors import UsageError

    colon = text.find(":")
    if colon == 0:
        raise UsageError(SPEC_FORMAT)
    if colon < 0:
        return FileSpec(text)
    pod, path = text[:colon], text[colon + 1:]
    pieces = pod.split("/")
    if len(pieces) == 1:
        return FileSpec(path, pod)
    if len(pieces) == 2:
        return FileSpec(path, pieces[1], pieces[0])
    raise UsageError(SPEC_FORMAT)


def handle(args: argparse.Namespace) -> int:
    from sandbox.errors import UsageError

    src, dest = parse_spec(args.src), parse_spec(args.dest)
    if src.pod and dest.pod:
        raise UsageError("one of src or dest must be a local file specification")
    if not src.path or not dest.path:
        raise UsageError("filepath can not be empty")
    if src.pod:
        return copy_from_pod(args, src, dest.path)
    if dest.pod:
        return copy_to_pod(args, src.path, dest)
    raise UsageError("one of src or dest must be a remote file specification")


def _exec(args: argparse.Namespace, spec: FileSpec, argv: list[str], *, stdin: bool = False,
          stdout: bool = False, quiet: bool = False) -> subprocess.Popen[bytes]:
    """`sandbox exec [-i] POD -c C -- argv` as a child: kubectl cp's exec, the container's stderr
    on ours (`quiet`: on nothing)."""
    import subprocess

    from sandbox.cli.common import check_pod_name

    command = [sys.executable, "-m", "sandbox"]
    if args.root:
        command += ["--root", args.root]
    command += ["-n", spec.namespace or args.namespace or "default", "exec"]
    if stdin:
        command.append("-i")
    command.append(check_pod_name(spec.pod))
    if args.container:
        command += ["-c", args.container]
    return subprocess.Popen([*command, "--", *argv], stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                            stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL if quiet else None)


def strip_shortcuts(path: str) -> str:
    """kubectl's stripPathShortcuts: leading `../` removed, `.`/`..` alone empty, no leading slash."""
    while path.startswith("../"):
        path = path[3:]
    if path in (".", ".."):
        return ""
    return path[1:] if path.startswith("/") else path


def copy_from_pod(args: argparse.Namespace, src: FileSpec, dest: str) -> int:
    import tarfile

    from sandbox.errors import SandboxError

    prefix = strip_shortcuts(posixpath.normpath(src.path.lstrip("/") or "."))
    if prefix == ".":
        prefix = ""
    child = _exec(args, src, ["tar", "cf", "-", src.path], stdout=True)
    assert child.stdout is not None
    failure: SandboxError | None = None  # ours: a refused archive or a local write that failed
    truncated = False
    try:
        untar(child.stdout, prefix, dest, src)
        # what the container's tar writes after the end of the archive (a record's padding) is
        # read, not left to kill it with SIGPIPE and turn a complete copy into a failure
        child.stdout.read(DRAIN_LIMIT)
    except tarfile.TarError:
        truncated = True
    except SandboxError as e:
        failure = e
    except OSError as e:
        failure = SandboxError(f"{e.filename}: {e.strerror}" if e.filename else str(e))
    finally:
        child.stdout.close()
        code = child.wait()
    if failure is not None:
        # said before the exit code: stopping the read ends the container's tar with SIGPIPE
        raise failure
    if code != 0:
        return 1  # the container's tar (or the exec) said why, on stderr
    if truncated:
        raise SandboxError("tar contents corrupted")
    return 0


def untar(stream: IO[bytes], prefix: str, dest: str, src: FileSpec) -> None:
    """Unpack kubectl cp's archive from a pod into `dest` (see the module's rules)."""
    import tarfile

    from sandbox.errors import SandboxError

    base = os.path.abspath(dest)
    link_warned = False
    with tarfile.open(fileobj=stream, mode="r|") as archive:
        for member in archive:
            if not member.name.startswith(prefix):
                raise SandboxError("tar contents corrupted")
            target = os.path.normpath(base + "/" + member.name[len(prefix):])
            shown = os.path.join(dest, os.path.relpath(target, base)) if target != base else dest
            if target != base and not target.startswith(base.rstrip("/") + "/"):
                print(f"warning: file {_q(shown)} is outside target destination, skipping", file=sys.stderr)
                continue
            if member.isdir():
                os.makedirs(target, 0o755, exist_ok=True)
                continue
            if member.issym():
                if not link_warned:
                    where = f"-n {src.namespace} " if src.namespace else ""
                    print(f"warning: skipping symlink: {_q(shown)} -> {_q(member.linkname)} (consider using "
                          f"\"sandbox exec {where}{src.pod} -- tar cf - {src.path} | tar xf -\")", file=sys.stderr)
                    link_warned = True
                else:
                    print(f"warning: skipping symlink: {_q(shown)} -> {_q(member.linkname)}", file=sys.stderr)
                continue
            if not member.isreg():
                print(f"warning: skipping {_q(shown)}: not a regular file or directory", file=sys.stderr)
                continue
            os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
            data = archive.extractfile(member)
            assert data is not None
            # O_NOFOLLOW inside DEST: a file name is written, never a link's target; DEST itself is
            # the user's own path, written through a link as kubectl's os.Create (and cp) do
            nofollow = os.O_NOFOLLOW if target != base else 0
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | nofollow | os.O_CLOEXEC, 0o666)
            with os.fdopen(fd, "wb") as out:
                while chunk := data.read(1 << 20):
                    out.write(chunk)


_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
            "\\": "\\\\", '"': '\\"'}


def _q(text: str) -> str:
    """Go's %q (strconv.Quote), as kubectl's warnings quote paths: the names come from the
    container's archive, so a control character (a terminal's escape sequence) is shown escaped,
    never sent to the user's terminal. An undecodable byte (surrogateescape) is \\xNN as Go's."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif 0xDC80 <= code <= 0xDCFF:  # a byte that was no UTF-8
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch.isprintable():
            out.append(ch)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def copy_to_pod(args: argparse.Namespace, src: str, dest: FileSpec) -> int:
    from sandbox.errors import SandboxError

    if not os.path.lexists(src):
        raise SandboxError(f"{src} doesn't exist in local filesystem")
    target = posixpath.normpath(dest.path)
    if _exec(args, dest, ["test", "-d", dest.path], quiet=True).wait() == 0:  # a directory: src goes into it
        target = posixpath.join(target, os.path.basename(os.path.normpath(src)))
    argv = ["tar", "--no-same-permissions", "--no-same-owner", "-xmf", "-"] if args.no_preserve else ["tar", "-xmf", "-"]
    directory = posixpath.dirname(target)
    if directory:
        argv += ["-C", directory]
    child = _exec(args, dest, argv, stdin=True)
    assert child.stdin is not None
    failure: SandboxError | None = None
    try:
        with _writer(child.stdin) as archive:
            archive.add(os.path.normpath(src), arcname=posixpath.basename(target) or ".", recursive=True)
    except BrokenPipeError:
        pass  # the container's tar ended early: its exit code and stderr say why
    except OSError as e:  # a local file that cannot be read: the archive stops there, unfinished
        failure = SandboxError(f"{e.filename}: {e.strerror}" if e.filename else str(e))
    finally:
        try:
            child.stdin.close()
        except BrokenPipeError:
            pass
    code = child.wait()
    if failure is not None:
        raise failure  # ours, whatever the container's tar made of the cut archive
    return 0 if code == 0 else 1


def _writer(stream: IO[bytes]) -> tarfile.TarFile:
    """tarfile's stream writer, saying what it leaves out: a socket has no archive form (tarfile
    skips it without a word; kubectl's os.Open of it fails the copy, this copies the rest)."""
    import tarfile

    class Writer(tarfile.TarFile):
        def gettarinfo(self, name: Any = None, arcname: Any = None, fileobj: Any = None) -> Any:
            info = super().gettarinfo(name, arcname, fileobj)
            if info is None:
                print(f"warning: skipping {_q(str(name))}: a socket cannot be copied", file=sys.stderr)
            return info

    return Writer.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT)
