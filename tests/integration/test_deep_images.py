"""Deep images: a real 120-layer image (four times what absolute lowerdirs fit in mount(2)'s one
page) built with the store's own import path, run as a container root and as an `image` volume;
the short layer links (images/l/) checked from outside and gone with `image rm` + `prune`; a
first-format image still runs."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import Sandbox
from registry_fixture import add_image, own_store, tar_of

from sandbox.images.store import ImageStore

pytestmark = pytest.mark.root

DEPTH = 120
DEEP = "example.com/deep:1"




@pytest.fixture
def store(sbx: Sandbox, image_store: Path) -> ImageStore:
    """The test's own store (not the session's shared one), holding the session's busybox layer
    (an uncompressed tar: its digest is its diff_id)."""
    store, layer = own_store(sbx.root, image_store)
    (store.root / "busybox-layer").write_text(layer)
    return store


def add_deep_image(store: ImageStore) -> list[str]:
    """busybox at the bottom, then DEPTH - 2 one-file layers (the middle one adds data/middle.txt),
    then a top layer that whites middle.txt out. Returns the diff_ids, bottom first."""
    layers = [(store.root / "busybox-layer").read_text()]
    for i in range(1, DEPTH - 1):
        files = {f"data/layer{i:03d}": f"{i}\n".encode()}
        if i == DEPTH // 2:
            files["data/middle.txt"] = b"middle\n"
        layers.append(store.ingest([tar_of(files)]))
    layers.append(store.ingest([tar_of({"data/.wh.middle.txt": b"", "data/top.txt": b"top\n"})]))
    add_image(store, DEEP, layers)
    return layers


def _links(store: ImageStore) -> dict[str, str]:
    return {p.name: os.readlink(p) for p in store.links_dir.iterdir()} if store.links_dir.is_dir() else {}


def _run_lines(sbx: Sandbox, manifest: str) -> list[str]:
    result = sbx.run("run", str(sbx.manifest(manifest)), timeout=120)
    assert result.returncode == 0, result.stderr
    return [line.removeprefix("[c] ") for line in result.stdout.splitlines()]


CHECK = "head -n1 /etc/passwd; cat {d}/data/top.txt; ls {d}/data | wc -l; " \
        "test -e {d}/data/middle.txt && echo middle-seen || echo middle-whited-out; cat {d}/data/layer001"


def test_a_120_layer_image_runs_and_its_links_go_with_it(sbx: Sandbox, store: ImageStore) -> None:
    layers = add_deep_image(store)
    image = store.lookup(DEEP)
    assert len(image.layers) == DEPTH
    links = _links(store)
    assert len(links) == DEPTH and max(len(name) for name in links) <= 12
    assert sorted(links.values()) == sorted(f"../layers/sha256/{d.removeprefix('sha256:')}" for d in layers)
    assert len(image.lowerdirs) > 4096  # absolute, they would not fit; relative to l/ they do
    lines = _run_lines(sbx, f"""
apiVersion: v1
kind: Pod
metadata: {{name: deep}}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: {DEEP}
    imagePullPolicy: Never
    command: ["sh", "-c", "{CHECK.format(d='')}; grep ' / / ' /proc/self/mountinfo"]
""")
    # busybox's /etc/passwd from the bottom layer, the top layer's file, 118 layer files + top.txt
    assert lines[:5] == ["root:x:0:0:root:/root:/bin/sh", "top", str(DEPTH - 1), "middle-whited-out", "1"], lines
    # the root overlay, seen from inside: 120 lowerdirs, each a short link name (relative to l/)
    lower = lines[5].partition("lowerdir=")[2].split(",")[0].split(":")
    assert lower == [p.name for p in reversed(image.links)], lines[5]

    assert "example.com/deep:1" in sbx.run("image", "rm", DEEP, check=True).stdout
    assert all((store.links_dir / target).is_dir() for target in _links(store).values())  # layers stay: none dangle
    pruned = sbx.run("image", "prune", check=True).stdout
    assert str(store.links_dir / next(iter(links))) in pruned
    assert _links(store) == {}  # no name reaches any layer now: every link went with its layer
    assert not list((store.root / "layers" / "sha256").iterdir())


def test_a_first_format_image_runs_with_a_deep_image_volume(sbx: Sandbox, store: ImageStore,
                                                            image_store: Path) -> None:
    """The root from a first-format image (one absolute lowerdir, blobs/sha256/<hex>/rootfs), a
    120-layer image volume beside it: its lowerdirs relative to l/, the root's kept absolute."""
    busybox_tree = ImageStore(image_store).lookup("busybox").layers[0]
    old_hex = "ab" * 32
    blob = store.root / "blobs" / "sha256" / old_hex
    shutil.copytree(busybox_tree, blob / "rootfs", symlinks=True)
    (blob / "config.json").write_text(json.dumps({"config": {"Cmd": ["sh"]}}))
    store.tag("sha256:" + old_hex, "example.com/old:1")
    assert store.lookup("example.com/old:1").links == ()
    add_deep_image(store)
    lines = _run_lines(sbx, f"""
apiVersion: v1
kind: Pod
metadata: {{name: oldroot}}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: example.com/old:1
    imagePullPolicy: Never
    command: ["sh", "-c", "{CHECK.format(d='/v')}; grep ' /v ' /proc/self/mountinfo | grep -c ' - overlay '"]
    volumeMounts: [{{name: v, mountPath: /v}}]
  volumes:
  - {{name: v, image: {{reference: "{DEEP}", pullPolicy: Never}}}}
""")
    # the volume's /etc/passwd is busybox's too (its bottom layer)
    assert lines[1:] == ["top", str(DEPTH - 1), "middle-whited-out", "1", "1"], lines
