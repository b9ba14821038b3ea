"""`image inspect | rm | tag` take an image's ID as `image ls` shows it (crictl and podman take an
image ID where they take a name): the whole manifest digest or a unique prefix, with or without
`sha256:`; a prefix several images share is refused; anything else stays a name."""

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
