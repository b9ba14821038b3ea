"""/etc/passwd and /etc/group of a layered image, read as overlayfs merges its layers: the top
layer wins, whiteouts hide, opaque directories stop the merge, symlinks resolve inside the union.
Whiteouts are 0:0 character devices, which need root to make (mknod): those tests skip otherwise."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from sandbox.images.users import passwd, read_in_root


def layer(base: Path, name: str, files: dict[str, str]) -> Path:
    root = base / name
    root.mkdir()
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if text.startswith("->"):
            target.symlink_to(text[2:])
        else:
            target.write_text(text)
    return root


def whiteout(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(0, 0))


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="a whiteout is a device node: mknod needs root")


def test_the_top_layer_wins_and_lower_files_show_through(tmp_path: Path) -> None:
    base = layer(tmp_path, "base", {"etc/passwd": "root:x:0:0::/root:/bin/sh\n", "etc/group": "root:x:0:\n"})
    top = layer(tmp_path, "top", {"etc/passwd": "app:x:1000:1000::/home/app:/bin/sh\n"})
    assert [e.name for e in passwd([base, top])] == ["app"]
    assert read_in_root([base, top], "/etc/group") == b"root:x:0:\n"
    assert read_in_root([base, top], "/etc/missing") is None


@needs_root
def test_a_whiteout_hides_the_lower_file(tmp_path: Path) -> None:
    base = layer(tmp_path, "base", {"etc/passwd": "root:x:0:0::/root:/bin/sh\n"})
    top = layer(tmp_path, "top", {})
    whiteout(top / "etc" / "passwd")
    assert read_in_root([base, top], "/etc/passwd") is None
    assert passwd([base, top]) == []


def test_an_opaque_directory_stops_the_merge(tmp_path: Path) -> None:
    base = layer(tmp_path, "base", {"etc/passwd": "root:x:0:0::/root:/bin/sh\n", "etc/group": "root:x:0:\n"})
    top = layer(tmp_path, "top", {"etc/passwd": "app:x:1000:1000::/:/bin/sh\n"})
    try:
        os.setxattr(top / "etc", "trusted.overlay.opaque", b"y")
    except OSError:
        pytest.skip("trusted.* xattrs need CAP_SYS_ADMIN")
    assert read_in_root([base, top], "/etc/group") is None
    assert read_in_root([base, top], "/etc/passwd") == b"app:x:1000:1000::/:/bin/sh\n"


def test_a_file_above_a_directory_ends_the_lower_directory(tmp_path: Path) -> None:
    base = layer(tmp_path, "base", {"etc/passwd": "root:x:0:0::/root:/bin/sh\n"})
    top = layer(tmp_path, "top", {"etc": "not a directory"})
    assert read_in_root([base, top], "/etc/passwd") is None


def test_symlinks_resolve_across_layers_and_never_leave_the_union(tmp_path: Path) -> None:
    base = layer(tmp_path, "base", {"usr/share/passwd": "root:x:0:0::/root:/bin/sh\n"})
    top = layer(tmp_path, "top", {"etc/passwd": "->../usr/share/passwd", "etc/group": "->/../../../../etc/shadow"})
    assert read_in_root([base, top], "/etc/passwd") == b"root:x:0:0::/root:/bin/sh\n"
    assert read_in_root([base, top], "/etc/group") is None  # /etc/shadow of the union: absent
    loop = layer(tmp_path, "loop", {"etc/passwd": "->passwd"})
    assert read_in_root([loop], "/etc/passwd") is None


def test_a_directory_merges_files_from_several_layers(tmp_path: Path) -> None:
    one = layer(tmp_path, "one", {"etc/a": "a"})
    two = layer(tmp_path, "two", {"etc/b": "b"})
    three = layer(tmp_path, "three", {"etc/c": "c"})
    assert [read_in_root([one, two, three], f"/etc/{n}") for n in "abc"] == [b"a", b"b", b"c"]
    assert read_in_root([one, two, three], "/etc/../etc/./b") == b"b"


def test_a_plain_directory_is_one_layer(tmp_path: Path) -> None:
    root = layer(tmp_path, "root", {"etc/passwd": "root:x:0:0::/root:/bin/sh\n"})
    assert [e.name for e in passwd(str(root))] == ["root"]


def test_an_image_volume_of_several_layers_is_a_read_only_overlay(tmp_path: Path) -> None:
    from sandbox.images.store import Image, ImageConfig
    from sandbox.pod.volumes import image_volume_op
    from sandbox.rootfs.plan import MS_NODEV, MS_NOSUID, MS_RDONLY, OpKind
    from sandbox.spec.model import VolumeMount

    mount = VolumeMount(name="v", mount_path="/data")
    one = Image("x", "sha256:" + "1" * 64, (tmp_path / "a",), ImageConfig())
    op = image_volume_op(mount, one, {}, "c")
    assert (op.kind, op.target, op.source, op.flags) == (OpKind.BIND, "data", str(tmp_path / "a"),
                                                         MS_NOSUID | MS_NODEV | MS_RDONLY)
    two = Image("x", "sha256:" + "1" * 64, (tmp_path / "a", tmp_path / "b"), ImageConfig())
    op = image_volume_op(mount, two, {}, "c")
    assert (op.kind, op.fstype, op.data) == (OpKind.MOUNT, "overlay", f"lowerdir={tmp_path / 'b'}:{tmp_path / 'a'}")
    assert op.flags & MS_RDONLY
