"""`image inspect | rm | tag` take an image's ID as `image ls` shows it (crictl and podman take an
image ID where they take a name): the config's digest (the CRI image id) or the manifest digest,
whole or a unique prefix, with or without `sha256:`; a prefix several images share is refused;
anything else stays a name."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.errors import ImageError
from sandbox.images.store import ImageStore

A = "sha256:" + "3d99f4c1a666" + "1" * 52
B = "sha256:" + "3d99f4c1a667" + "2" * 52
C = "sha256:" + "e85bca47df6f" + "3" * 52


def store_with_refs(tmp_path: Path) -> ImageStore:
    store = ImageStore(tmp_path / "images")
    store._write_refs({"docker.io/library/busybox:1.36": A, "docker.io/qa/app:v1": A,
                       "docker.io/qa/other:v1": B, "127.0.0.1:5000/bb:x": C})
    return store


def test_an_id_or_its_unique_prefix_names_the_image_and_every_name_it_has(tmp_path: Path) -> None:
    store = store_with_refs(tmp_path)
    names = ["docker.io/library/busybox:1.36", "docker.io/qa/app:v1"]
    assert store.by_id("3d99f4c1a6661") == (A, names)  # the 13 digits `image ls` shows
    assert store.by_id(A) == (A, names)
    assert store.by_id(A[7:]) == (A, names)
    assert store.by_id("e85b") == (C, ["127.0.0.1:5000/bb:x"])


def test_a_shared_prefix_is_refused_and_names_are_no_ids(tmp_path: Path) -> None:
    store = store_with_refs(tmp_path)
    with pytest.raises(ImageError, match="ambiguous"):
        store.by_id("3d99f4c1a66")
    assert store.by_id("busybox") is None
    assert store.by_id("3d9") is None  # too short to be taken for an ID
    assert store.by_id("ffff") is None


def test_the_id_is_the_config_digest_and_both_it_and_the_manifest_digest_name_the_image(tmp_path: Path) -> None:
    """crictl's IMAGE ID is the CRI image id, the config's digest (the OCI image ID): `image ls`
    shows its first 13 digits, and those, the whole of it, or the manifest digest (what a pull
    prints) name the image."""
    from sandbox.images.store import ImageConfig

    store = ImageStore(tmp_path / "images")
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "file").write_text("x\n")
    image = store.import_directory(tree, "qa/app:v1", ImageConfig(cmd=("sh",)))
    store.tag(image.digest, "docker.io/qa/app:v2")
    config = store.read_json(image.digest)["config"]["digest"]
    assert store.image_id(image.digest) == config != image.digest
    names = ["docker.io/qa/app:v1", "docker.io/qa/app:v2"]
    for text in (config[7:20], config, config[7:], image.digest, image.digest[7:20]):
        assert store.by_id(text) == (image.digest, names), text


def test_a_prefix_of_one_image_id_and_another_images_manifest_is_ambiguous(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    other = store.put_json({"schemaVersion": 2, "config": {"digest": "sha256:" + "1" * 64}, "layers": []})
    # an image whose config digest starts as the other image's manifest digest does
    filler = "0" if other[13] != "0" else "1"  # differs from the other's 7th digit
    image = store.put_json({"schemaVersion": 2, "config": {"digest": "sha256:" + other[7:13] + filler * 58},
                            "layers": []})
    store._write_refs({"docker.io/qa/a:1": image, "docker.io/qa/b:1": other})
    with pytest.raises(ImageError, match="ambiguous"):
        store.by_id(other[7:13])
    assert store.by_id(other[7:14]) == (other, ["docker.io/qa/b:1"])
    assert store.by_id(other[7:13] + filler) == (image, ["docker.io/qa/a:1"])
