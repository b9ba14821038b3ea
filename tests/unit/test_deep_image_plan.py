"""Deep images: the overlay's lowerdirs through the store's short layer links (plan.fit_overlays,
ImageStore.layer_link). Pure: plans are data, and the links live in a temporary directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandbox.errors import ImageError
from sandbox.images.store import ImageStore
from sandbox.rootfs.plan import (
    MOUNT_DATA_MAX,
    OVERLAY_MAX_LOWER,
    ContainerFiles,
    MountOp,
    OpKind,
    container_plan,
    fit_overlays,
    overlay_options,
)

FILES = ContainerFiles("/pod/hosts", "/pod/hostname", "/pod/resolv.conf")
LINKS = "/var/lib/sandbox/images/l"
UPPER = "/var/lib/sandbox/containers/" + "c" * 64 + "/upper"
WORK = "/var/lib/sandbox/containers/" + "c" * 64 + "/work"


def links(n: int) -> str:
    """`n` short links, the top first, as Image.lowerdirs gives them."""
    return ":".join(f"{LINKS}/L{i:05d}" for i in reversed(range(n)))


def test_a_deep_image_mounts_from_its_links_directory() -> None:
    plan = container_plan("/merged", links(120), UPPER, WORK, FILES)
    assert plan[0] == MountOp(OpKind.CHDIR, LINKS)
    assert plan[1].kind == OpKind.ROOT
    lower = plan[1].data.split(",")[0].removeprefix("lowerdir=").split(":")
    assert lower[0] == "L00119" and lower[-1] == "L00000" and len(lower) == 120
    assert plan[1].data.endswith(f",upperdir={UPPER},workdir={WORK},volatile")
    assert [op for op in plan if op.kind == OpKind.CHDIR] == [plan[0]]


def test_overlayfs_limit_fits_the_page_with_six_character_links() -> None:
    names = ":".join("ABCDEF" for _ in range(OVERLAY_MAX_LOWER))
    assert len(overlay_options(names, UPPER, WORK)) <= MOUNT_DATA_MAX
    with pytest.raises(ValueError, match="overlayfs stacks at most 500"):
        overlay_options(":".join([f"{LINKS}/A"] * (OVERLAY_MAX_LOWER + 1)), UPPER, WORK)


def test_the_page_is_still_checked_after_the_links_are_made_relative() -> None:
    long_upper = "/" + "u" * 1500
    with pytest.raises(ValueError, match="more than mount\\(2\\) takes"):
        container_plan("/merged", links(400), long_upper, "/" + "w" * 1500, FILES)


def test_absolute_layer_paths_alone_would_not_fit() -> None:
    """What the links buy: the same 120 layers named by their store paths overflow the page."""
    absolute = ":".join(f"/var/lib/sandbox/images/layers/sha256/{i:064x}" for i in range(120))
    ops = [MountOp(OpKind.ROOT, "/m", "overlay", "overlay", 0, overlay_options(absolute, UPPER, WORK))]
    # their parents are all one directory, so they become relative too: 64 hex digits each still overflow
    with pytest.raises(ValueError, match="120 image layers"):
        fit_overlays(ops)


def test_one_lower_layer_is_left_as_it_is() -> None:
    plan = container_plan("/merged", "/store/blobs/sha256/ab/rootfs", "/up", "/work", FILES)
    assert plan[0].kind == OpKind.ROOT
    assert plan[0].data == "lowerdir=/store/blobs/sha256/ab/rootfs,upperdir=/up,workdir=/work,volatile"
    assert all(op.kind != OpKind.CHDIR for op in plan)


def test_an_image_volume_overlay_shares_the_links_directory() -> None:
    volume = MountOp(OpKind.MOUNT, "v", "overlay", "overlay", 0, overlay_options(links(3)))
    plan = container_plan("/merged", "/store/blobs/sha256/ab/rootfs", "/up", "/work", FILES, extra=[volume])
    assert plan[0] == MountOp(OpKind.CHDIR, LINKS)
    mounted = next(op for op in plan if op.target == "v")
    assert mounted.data == "lowerdir=L00002:L00001:L00000"
    root = next(op for op in plan if op.kind == OpKind.ROOT)
    assert root.data.startswith("lowerdir=/store/blobs/sha256/ab/rootfs,")  # elsewhere: kept absolute


def test_chdir_describes_itself() -> None:
    assert MountOp(OpKind.CHDIR, LINKS).describe() == f"chdir {LINKS} (overlay lowerdirs are relative to it)"


def _digest(hexpart: str) -> str:
    return "sha256:" + hexpart


def test_layer_links_are_short_stable_and_never_shared(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    # the same first 30 bits: one base32 name of 6 characters for both
    a, b = _digest("0" * 63 + "1"), _digest("0" * 63 + "2")
    for d in (a, b):
        store.layer_path(d).mkdir(parents=True)
    link_a = store.layer_link(a)
    link_b = store.layer_link(b)
    assert link_a.name == "AAAAAA" and len(link_b.name) == 12
    assert link_a.resolve() == store.layer_path(a) and link_b.resolve() == store.layer_path(b)
    assert store.layer_link(a) == link_a and store.layer_link(b) == link_b  # found again, not remade
    link_a.unlink()
    assert store.layer_link(a) == link_a  # a lost link is made again, under its own name
    assert os.readlink(link_a) == "../layers/sha256/" + "0" * 63 + "1"


def test_a_stale_link_keeps_its_name(tmp_path: Path) -> None:
    """A link whose layer is gone is left for prune: its name is never given to another layer."""
    store = ImageStore(tmp_path)
    b = _digest("0" * 63 + "2")
    store.links_dir.mkdir()
    os.symlink("../layers/sha256/" + "0" * 63 + "1", store.links_dir / "AAAAAA")
    store.layer_path(b).mkdir(parents=True)
    assert len(store.layer_link(b).name) == 12


def test_a_bad_digest_makes_no_link(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="bad digest"):
        ImageStore(tmp_path).layer_link("sha256:../../etc")


def test_an_image_deeper_than_overlayfs_stacks_is_refused_by_name(tmp_path: Path) -> None:
    """Checked before any layer is unpacked: the blobs of the layers need not even exist."""
    from sandbox.images.store import CONFIG_OCI, LAYER_TAR, MANIFEST_OCI

    store = ImageStore(tmp_path)
    diff_ids = [_digest(f"{i:064x}") for i in range(OVERLAY_MAX_LOWER + 1)]
    config = store.put_json({"rootfs": {"type": "layers", "diff_ids": diff_ids}})
    manifest = store.put_json({"schemaVersion": 2, "mediaType": MANIFEST_OCI,
                               "config": {"mediaType": CONFIG_OCI, "digest": config, "size": 1},
                               "layers": [{"mediaType": LAYER_TAR, "digest": d, "size": 1} for d in diff_ids]})
    with pytest.raises(ImageError, match="image example.com/deep:1: 501 layers, more than overlayfs stacks"):
        store.add_image("example.com/deep:1", manifest)
