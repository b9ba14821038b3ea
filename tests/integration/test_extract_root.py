"""A real layer through sandbox.images.extract: a busybox tree with owners, setuid/setgid/sticky
modes, a device node, a FIFO, a file capability and whiteouts, archived by GNU tar and gzip,
unpacked, then checked from outside with stat and getfattr, and mounted as an overlay lowerdir
(in a private mount namespace of a child `unshare`) to see the whiteouts hide the base layer."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from sandbox.images.extract import open_layer, unpack

pytestmark = pytest.mark.root

BUSYBOX = shutil.which("busybox") or "/bin/busybox"
# vfs_cap_data revision 2, effective flag; permitted CAP_NET_RAW (13): `setcap cap_net_raw+ep`
NET_RAW_CAPS = bytes.fromhex("01000002") + (1 << 13).to_bytes(4, "little") + bytes(12)


def _file(path: Path, data: bytes, mode: int, uid: int = 0, gid: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chown(path, uid, gid)
    os.chmod(path, mode)  # after chown, which clears setuid/setgid


def build_tree(tree: Path) -> None:
    binary = Path(BUSYBOX).read_bytes()
    _file(tree / "bin/busybox", binary, 0o755)
    os.link(tree / "bin/busybox", tree / "bin/bb-hardlink")
    for applet in ("sh", "ls", "cat"):
        os.symlink("busybox", tree / "bin" / applet)
    _file(tree / "bin/ping", binary, 0o755)
    os.setxattr(tree / "bin/ping", "security.capability", NET_RAW_CAPS)
    _file(tree / "bin/su", binary, 0o4755)
    _file(tree / "usr/bin/crontab", b"#!/bin/sh\n", 0o2755, gid=102)
    (tree / "tmp").mkdir(mode=0o1777)
    os.chmod(tree / "tmp", 0o1777)
    _file(tree / "home/user/.profile", b"PS1=$\n", 0o600, uid=1000, gid=1000)
    os.chown(tree / "home/user", 1000, 1000)
    os.chmod(tree / "home/user", 0o700)
    (tree / "dev").mkdir()
    os.mknod(tree / "dev/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.chmod(tree / "dev/null", 0o666)  # past the umask
    os.mkfifo(tree / "dev/initctl", 0o600)
    _file(tree / "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644)
    os.setxattr(tree / "etc/passwd", "user.origin", b"layer-test")
    os.utime(tree / "etc/passwd", (1_234_567_890, 1_234_567_890))
    # OCI whiteouts as a layer carries them: empty files with reserved names
    _file(tree / "etc/.wh..wh..opq", b"", 0o644)
    _file(tree / ".wh.oldfile", b"", 0o644)
    _file(tree / "var/lib/.wh.gone", b"", 0o644)


def build_base(base: Path) -> None:
    _file(base / "oldfile", b"old", 0o644)
    _file(base / "etc/shadow-old", b"hidden by the opaque etc", 0o600)
    _file(base / "var/lib/gone", b"whited out", 0o644)
    _file(base / "var/lib/kept", b"kept", 0o644)


def outside_stat(path: Path) -> str:
    return subprocess.run(["stat", "-c", "%u:%g %a %F %t:%T", str(path)], capture_output=True, text=True,
                          check=True).stdout.strip()


def getfattr(path: Path, name: str) -> str:
    result = subprocess.run(["getfattr", "-h", "--absolute-names", "-e", "hex", "-n", name, str(path)],
                            capture_output=True, text=True)
    return result.stdout.strip().splitlines()[-1] if result.returncode == 0 else ""


@pytest.fixture
def layer(tmp_path: Path) -> Path:
    if shutil.which("getfattr") is None:
        pytest.skip("needs getfattr (Debian attr, in the Makefile's APT_PACKAGES)")
    tree = tmp_path / "tree"
    tree.mkdir()
    build_tree(tree)
    blob = tmp_path / "layer.tar.gz"
    subprocess.run(["tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "--format=posix", "-C", str(tree),
                    "-czf", str(blob), "."], check=True)
    dest = tmp_path / "layer"
    dest.mkdir()
    with open_layer(blob, "application/vnd.oci.image.layer.v1.tar+gzip") as stream:
        stats = unpack(stream, dest, allow_devices=True)
    assert stats.bytes > 3 * len(Path(BUSYBOX).read_bytes())
    return dest


def test_owners_modes_and_nodes(layer: Path) -> None:
    assert outside_stat(layer / "bin/su") == "0:0 4755 regular file 0:0"
    assert outside_stat(layer / "usr/bin/crontab") == "0:102 2755 regular file 0:0"
    assert outside_stat(layer / "tmp") == "0:0 1777 directory 0:0"
    assert outside_stat(layer / "home/user") == "1000:1000 700 directory 0:0"
    assert outside_stat(layer / "home/user/.profile") == "1000:1000 600 regular file 0:0"
    assert outside_stat(layer / "dev/null") == "0:0 666 character special file 1:3"
    assert outside_stat(layer / "dev/initctl") == "0:0 600 fifo 0:0"
    assert os.readlink(layer / "bin/sh") == "busybox"
    assert (layer / "bin/bb-hardlink").stat().st_ino == (layer / "bin/busybox").stat().st_ino
    assert (layer / "etc/passwd").stat().st_mtime == 1_234_567_890


def test_xattrs_and_file_capability(layer: Path) -> None:
    assert getfattr(layer / "bin/ping", "security.capability") == "security.capability=0x" + NET_RAW_CAPS.hex()
    assert getfattr(layer / "etc/passwd", "user.origin") == "user.origin=0x" + b"layer-test".hex()
    if shutil.which("getcap"):
        out = subprocess.run(["getcap", str(layer / "bin/ping")], capture_output=True, text=True).stdout
        assert "cap_net_raw" in out


def test_whiteouts_in_overlay_form(layer: Path) -> None:
    assert outside_stat(layer / "oldfile") == "0:0 0 character special file 0:0"
    assert outside_stat(layer / "var/lib/gone") == "0:0 0 character special file 0:0"
    assert getfattr(layer / "etc", "trusted.overlay.opaque") == "trusted.overlay.opaque=0x79"  # "y"
    names = {p.name for p in layer.rglob("*")}
    assert not any(name.startswith(".wh.") for name in names)


def test_mounts_as_overlay_lowerdir(layer: Path, tmp_path: Path) -> None:
    base = tmp_path / "base"
    build_base(base)
    merged = tmp_path / "merged"
    merged.mkdir()
    # A child in its own private mount namespace: the overlay goes away with it.
    script = (f"mount -t overlay overlay -o ro,lowerdir={layer}:{base} {merged} && "
              f"cd {merged} && find . | sort && chroot {merged} /bin/cat /etc/passwd")
    out = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    listed = set(out.stdout.splitlines())
    assert "./var/lib/kept" in listed
    assert "./bin/busybox" in listed
    assert "./oldfile" not in listed and "./var/lib/gone" not in listed  # whiteouts hide the base's
    assert "./etc/shadow-old" not in listed  # the opaque etc hides the base's etc
    assert "root:x:0:0:root:/root:/bin/sh" in listed  # busybox ran from the merged tree
    assert not os.path.ismount(merged)
