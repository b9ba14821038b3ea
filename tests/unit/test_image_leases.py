"""Leases on the image store (images/lease.py): what a pod resolved stays through `image rm` and
`image prune` until the pod lets go (or its process is gone); prune waits for a lookup under way
rather than collect what it resolves; a pull in flight keeps what it is writing."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from sandbox.images.lease import Collection
from sandbox.images.store import ImageConfig, ImageStore, Lease


def _store(tmp_path: Path, *names: str) -> ImageStore:
    store = ImageStore(tmp_path / "images")
    for i, name in enumerate(names):
        tree = tmp_path / f"tree{i}"
        (tree / "bin").mkdir(parents=True)
        (tree / "bin" / "file").write_text(f"{name}\n")
        store.import_directory(tree, name, ImageConfig(cmd=("sh",)))
    return store


def _prune(store: ImageStore) -> list[Path]:
    with Collection(store.root) as leases:
        return store.prune(held=leases.held())


def test_a_leased_image_stays_after_its_name_went_until_the_lease_is_released(tmp_path: Path) -> None:
    store = _store(tmp_path, "qa/leased:1", "qa/other:1")
    lease = Lease(store.root)
    image = lease.keep(lambda: store.lookup("qa/leased:1"))
    assert image is not None
    other = store.lookup("qa/other:1")
    store.remove("qa/leased:1")
    store.remove("qa/other:1")
    removed = _prune(store)
    assert other.rootfs in removed and store.blob_path(other.digest) in removed
    assert image.rootfs.is_dir() and store.blob_path(image.digest).is_file(), removed
    assert image.rootfs not in removed
    assert all(link.is_symlink() for link in image.links)
    lease.release()
    assert os.listdir(store.root / "leases") == []
    removed = _prune(store)
    assert image.rootfs in removed and not image.rootfs.exists()


def test_a_restart_looks_up_what_it_holds_without_the_lock(tmp_path: Path) -> None:
    store = _store(tmp_path, "qa/leased:1")
    lease = Lease(store.root)
    lease.keep(lambda: store.lookup("qa/leased:1"))
    with Collection(store.root):  # prune running: a held image is still looked up at once
        assert lease.keep(lambda: store.lookup("qa/leased:1")) is not None
    lease.release()


def test_the_lease_of_a_dead_holder_holds_nothing(tmp_path: Path) -> None:
    store = _store(tmp_path, "qa/leased:1")
    image = store.lookup("qa/leased:1")
    script = ("import os, sys; from pathlib import Path; from sandbox.images.store import ImageStore, Lease; "
              "store = ImageStore(Path(sys.argv[1])); "
              "lease = Lease(store.root); lease.keep(lambda: store.lookup('qa/leased:1')); os._exit(0)")
    subprocess.run([sys.executable, "-c", script, str(store.root)], check=True, timeout=60)
    assert len(os.listdir(store.root / "leases")) == 1  # left behind, its flock gone with its holder
    store.remove("qa/leased:1")
    removed = _prune(store)
    assert image.rootfs in removed
    assert os.listdir(store.root / "leases") == []


def test_prune_waits_for_a_lookup_under_way_and_keeps_what_it_found(tmp_path: Path) -> None:
    store = _store(tmp_path, "qa/leased:1")
    looking, go = threading.Event(), threading.Event()
    lease = Lease(store.root)

    def resolve() -> object:
        image = store.lookup("qa/leased:1")  # resolved: the name still there
        looking.set()
        go.wait(10)
        return image

    found: list[object] = []
    holder = threading.Thread(target=lambda: found.append(lease.keep(resolve)))  # type: ignore[arg-type]
    holder.start()
    assert looking.wait(10)
    store.remove("qa/leased:1")  # `image rm` while the runtime holds what it resolved
    pruned: list[list[Path]] = []
    pruner = threading.Thread(target=lambda: pruned.append(_prune(store)))
    pruner.start()
    pruner.join(0.3)
    assert pruner.is_alive()  # waiting for the lookup's record
    go.set()
    holder.join(10)
    pruner.join(10)
    image = found[0]
    assert image is not None and image.rootfs.is_dir()  # type: ignore[attr-defined]
    assert pruned == [[]]
    lease.release()


def test_a_pull_in_flight_keeps_what_it_writes(tmp_path: Path) -> None:
    store = _store(tmp_path)
    stray = store.ingest([b"a blob no pull or name wants"])
    pull = Lease(store.root, pulling=True)
    pull.begin()  # nothing recorded yet: the pull may be writing anything
    (store.root / "ingest").mkdir(exist_ok=True)
    partial = store.root / "ingest" / ("0" * 64 + ".partial")
    partial.write_bytes(b"half a layer")
    layer = store.ingest([b"the pull's layer blob"])
    assert _prune(store) == []
    # its manifest stored, its config not yet: the layer blobs are known, the layers are not
    manifest = store.put_json({"schemaVersion": 2, "config": {"digest": "sha256:" + "1" * 64, "size": 1},
                               "layers": [{"digest": layer, "size": 1}]})
    pull.note(manifest)
    unpacked = store.layer_path("sha256:" + "2" * 64)
    unpacked.mkdir(parents=True)
    removed = _prune(store)
    assert removed == [store.blob_path(stray)], removed
    assert partial.exists() and unpacked.is_dir() and store.blob_path(layer).is_file()
    pull.release()
    removed = _prune(store)
    assert {partial, unpacked, store.blob_path(layer), store.blob_path(manifest)} <= set(removed)


def test_a_lease_dropped_unreleased_lets_go(tmp_path: Path) -> None:
    """A pod prepared and then dropped (an agent refusing it) holds nothing once it is gone."""
    store = _store(tmp_path, "qa/leased:1")
    lease = Lease(store.root)
    lease.keep(lambda: store.lookup("qa/leased:1"))
    assert len(os.listdir(store.root / "leases")) == 1
    del lease
    assert os.listdir(store.root / "leases") == []


def test_prune_under_the_lock_only_moves_layers_out_for_deletion_after_it(tmp_path: Path) -> None:
    """Under the leases' lock prune renames what goes into one `.tmp-` directory (a runtime's
    lookup waits only for that); the caller deletes it after. One left behind (a killed prune)
    is a leftover for the next prune."""
    store = _store(tmp_path, "qa/gone:1")
    image = store.lookup("qa/gone:1")
    store.remove("qa/gone:1")
    trash: list[Path] = []
    with Collection(store.root) as leases:
        removed = store.prune(held=leases.held(), trash=trash)
    assert image.rootfs in removed and not image.rootfs.exists()
    assert len(trash) == 1 and trash[0].parent == store.root / "layers" and trash[0].name.startswith(".tmp-")
    assert (trash[0] / f"layers-{image.rootfs.name}" / "bin" / "file").is_file()
    assert _prune(store) == [trash[0]] and not trash[0].exists()
