"""`sandbox cp` against a real container: a tree to the pod and back, a file into an existing
directory, and an archive the container forges (its own `tar` replaced) that must write nothing
outside the destination here."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import tarfile
from pathlib import Path

import pytest
from conftest import Sandbox

pytestmark = pytest.mark.root

POD = """
apiVersion: v1
kind: Pod
metadata: {name: box}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - {name: c, image: busybox, command: ["sleep", "600"]}
"""


def test_copy_to_and_from_a_container(sbx: Sandbox, tmp_path: Path) -> None:
    proc = sbx.start(sbx.manifest(POD))
    try:
        sbx.wait_running("box")
        src = tmp_path / "src"
        (src / "sub").mkdir(parents=True)
        (src / "f.txt").write_text("hello\n")
        (src / "sub" / "g").write_text("deep\n")
        (src / "run.sh").write_text("#!/bin/sh\n")
        (src / "run.sh").chmod(0o750)
        (src / "link").symlink_to("f.txt")

        to_pod = sbx.run("cp", str(src), "box:/tmp/in")
        assert to_pod.returncode == 0, to_pod.stderr
        assert to_pod.stderr == ""  # the `test -d` probe prints nothing
        listing = sbx.run("exec", "box", "--", "sh", "-c",
                          "cat /tmp/in/f.txt /tmp/in/sub/g; readlink /tmp/in/link; stat -c %a /tmp/in/run.sh")
        assert listing.stdout.splitlines() == ["hello", "deep", "f.txt", "750"]

        into_dir = sbx.run("cp", str(src / "f.txt"), "box:/tmp")  # an existing directory: the file goes in
        assert into_dir.returncode == 0, into_dir.stderr
        assert sbx.run("exec", "box", "--", "cat", "/tmp/f.txt").stdout == "hello\n"

        back = tmp_path / "back"
        from_pod = sbx.run("cp", "box:/tmp/in", str(back))
        assert from_pod.returncode == 0, from_pod.stderr
        assert (back / "f.txt").read_text() == "hello\n" and (back / "sub" / "g").read_text() == "deep\n"
        assert not (back / "link").exists() and not (back / "link").is_symlink()
        assert f'warning: skipping symlink: "{back}/link" -> "f.txt"' in from_pod.stderr

        one = sbx.run("cp", "default/box:/etc/hostname", str(tmp_path / "hostname"))
        assert one.returncode == 0 and (tmp_path / "hostname").read_text() == "box\n"
        missing = sbx.run("cp", "box:/nope", str(tmp_path / "nope"))
        assert missing.returncode == 1 and "Traceback" not in missing.stderr
        assert not (tmp_path / "nope").exists()
        both = sbx.run("cp", "box:/a", "box:/b")
        assert both.returncode == 2 and "one of src or dest must be a local file specification" in both.stderr
    finally:
        sbx.stop(proc)


def forged_archive(outside: Path) -> bytes:
    """What a hostile container's `tar cf - /tmp/in` could send: entries climbing out of the
    destination, an absolute-looking name, a link out and a write through it, a device."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        def add(name: str, data: bytes = b"", **attrs: object) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            for key, value in attrs.items():
                setattr(info, key, value)
            tar.addfile(info, io.BytesIO(data))

        add("tmp/in", type=tarfile.DIRTYPE, mode=0o755)
        add("tmp/in/ok.txt", b"fine\n")
        add("tmp/in/../../../../../../.." + str(outside / "escaped.txt"), b"pwned\n")
        add("tmp/in/up", type=tarfile.SYMTYPE, linkname=str(outside))
        add("tmp/in/up/through.txt", b"pwned\n")
        add("tmp/in/dev", type=tarfile.CHRTYPE, devmajor=1, devminor=3)
        add("tmp/in/hard", type=tarfile.LNKTYPE, linkname="etc/shadow")
        # names that would drive the user's terminal if printed as they are
        add("tmp/in/\x1b]0;owned\x07", type=tarfile.SYMTYPE, linkname="\x1b[2J")
    return buf.getvalue()


def test_an_archive_the_container_forges_writes_nothing_outside_the_destination(sbx: Sandbox, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    proc = sbx.start(sbx.manifest(POD))
    try:
        sbx.wait_running("box")
        put = subprocess.run(sbx.cmd("exec", "-i", "box", "--", "sh", "-c", "cat > /tmp/forged.tar"),
                             input=forged_archive(outside), capture_output=True, timeout=60, check=False)
        assert put.returncode == 0, put.stderr
        # the container's own tar now sends the forged archive, whatever it is asked
        swap = sbx.run("exec", "box", "--", "sh", "-c",
                       "rm /bin/tar && printf '#!/bin/sh\\ncat /tmp/forged.tar\\n' > /bin/tar && chmod +x /bin/tar")
        assert swap.returncode == 0, swap.stderr
        dest = tmp_path / "dest"
        copied = sbx.run("cp", "box:/tmp/in", str(dest))
        assert copied.returncode == 0, copied.stderr
        assert (dest / "ok.txt").read_text() == "fine\n"
        assert os.listdir(outside) == []  # nothing escaped, through `..` or through the link
        assert "is outside target destination, skipping" in copied.stderr
        assert "warning: skipping symlink" in copied.stderr
        assert not (dest / "up").is_symlink()  # the write "through" it made a plain directory here
        assert (dest / "up" / "through.txt").read_text() == "pwned\n"
        assert not (dest / "dev").exists() and not (dest / "hard").exists()
        assert f'warning: skipping "{dest}/dev": not a regular file or directory' in copied.stderr
        assert f'warning: skipping symlink: "{dest}/\\x1b]0;owned\\a" -> "\\x1b[2J"' in copied.stderr
        assert "\x1b" not in copied.stderr

        # an entry outside the asked path: the archive is refused as corrupted
        other = sbx.run("cp", "box:/etc", str(tmp_path / "etc"))
        assert other.returncode == 1 and "tar contents corrupted" in other.stderr
    finally:
        sbx.stop(proc)


def test_local_failures_are_reported_and_a_link_named_as_dest_is_written_through(sbx: Sandbox, tmp_path: Path) -> None:
    proc = sbx.start(sbx.manifest(POD))
    try:
        sbx.wait_running("box")
        made = sbx.run("exec", "box", "--", "sh", "-c", "mkdir /tmp/big && head -c 4194304 /dev/zero > /tmp/big/f")
        assert made.returncode == 0, made.stderr
        plain = tmp_path / "plain"
        plain.write_text("mine\n")

        # a write here that fails stops the read, which kills the container's tar (more than a
        # pipe's worth is still to come): the failure is ours to say, not a silent exit 1
        blocked = sbx.run("cp", "box:/tmp/big", str(plain / "sub"))
        assert blocked.returncode == 1
        assert f"error: {plain}/sub: Not a directory" in blocked.stderr, blocked.stderr

        # a directory over an existing file: a clear error, the file kept
        over = sbx.run("cp", "box:/tmp/big", str(plain))
        assert over.returncode == 1 and f"error: {plain}: File exists" in over.stderr, over.stderr
        assert "internal error" not in over.stderr and plain.read_text() == "mine\n"

        # to a pod: a local file that cannot be read is said (the archive stops there), and a
        # socket, which has no archive form, is skipped with a warning, the rest copied
        if os.path.exists("/sys/bus/pci/rescan"):  # sysfs refuses to open it for reading, even root
            unreadable = sbx.run("cp", "/sys/bus/pci/rescan", "box:/tmp/rescan")
            assert unreadable.returncode == 1, unreadable.stderr
            assert "error: /sys/bus/pci/rescan: Permission denied" in unreadable.stderr
            assert "internal error" not in unreadable.stderr
        tree = tmp_path / "tree"
        tree.mkdir()
        (tree / "kept").write_text("kept\n")
        listening = socket.socket(socket.AF_UNIX)
        try:
            listening.bind(str(tree / "sock"))
            with_socket = sbx.run("cp", str(tree), "box:/tmp/tree")
        finally:
            listening.close()
        assert with_socket.returncode == 0, with_socket.stderr
        assert f'warning: skipping "{tree}/sock": a socket cannot be copied' in with_socket.stderr
        assert sbx.run("exec", "box", "--", "cat", "/tmp/tree/kept").stdout == "kept\n"

        # DEST the user named is a link to a file: written through it, as kubectl's os.Create
        target = tmp_path / "target.txt"
        target.write_text("old\n")
        (tmp_path / "link").symlink_to(target)
        through = sbx.run("cp", "box:/etc/hostname", str(tmp_path / "link"))
        assert through.returncode == 0, through.stderr
        assert target.read_text() == "box\n" and (tmp_path / "link").is_symlink()
    finally:
        sbx.stop(proc)
