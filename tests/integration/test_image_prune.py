"""Image store verbs as a crictl/podman user expects them. `sandbox image prune` never takes the layers a running container is made of: a container whose
image was removed (`image rm`) keeps its files, as containerd keeps what a container references
(`crictl rmi --prune` and `podman image prune` skip images containers use); once the pod ended,
prune removes them."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import Sandbox

pytestmark = pytest.mark.root

POD = """
apiVersion: v1
kind: Pod
metadata: {name: inuse}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 2
  containers:
  - {name: c, image: "qa/inuse:1", command: ["sleep", "300"]}
"""


def test_prune_keeps_the_layers_of_a_running_container(sbx: Sandbox, tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    sbx.run("image", "export", str(layout), "busybox:1.36", check=True)  # from the session's store
    images = sbx.root / "lib" / "images"
    images.unlink()  # a store of the test's own: prune must not touch the session's
    images.mkdir()
    sbx.run("image", "import", str(layout), check=True)
    sbx.run("image", "tag", "busybox:1.36", "qa/inuse:1", check=True)
    sbx.run("image", "rm", "busybox:1.36", check=True)
    layers = json.loads(sbx.run("image", "inspect", "qa/inuse:1", check=True).stdout)["layers"]
    proc = sbx.start(sbx.manifest(POD), "--network", "none")
    sbx.wait_running("inuse")
    sbx.run("image", "rm", "qa/inuse:1", check=True)
    pruned = sbx.run("image", "prune", check=True).stdout
    assert not any(layer in pruned for layer in layers), pruned
    assert all(Path(layer, "bin").is_dir() for layer in layers)
    listed = sbx.run("exec", "inuse", "-c", "c", "--", "ls", "/bin", check=True).stdout.split()
    assert "sh" in listed and "sleep" in listed
    sbx.stop(proc)
    pruned = sbx.run("image", "prune", check=True).stdout
    assert all(layer in pruned for layer in layers), pruned
    assert not any(Path(layer).exists() for layer in layers)


def test_prune_keeps_every_layer_of_a_running_multi_layer_container(sbx: Sandbox, image_store: Path) -> None:
    """A root of several layers mounts them by bare short-link names (relative to images/l/,
    rootfs/plan.fit_overlays): prune must see those too, not only an absolute lowerdir."""
    from registry_fixture import add_image, own_store, tar_of

    store, bottom = own_store(sbx.root, image_store)
    add_image(store, "docker.io/qa/inuse:1", [bottom, store.ingest([tar_of({"data/top.txt": b"top\n"})])])
    dirs = [str(d) for d in store.lookup("qa/inuse:1").layers]
    assert len(dirs) == 2
    proc = sbx.start(sbx.manifest(POD), "--network", "none")
    sbx.wait_running("inuse")
    sbx.run("image", "rm", "qa/inuse:1", check=True)
    pruned = sbx.run("image", "prune", check=True).stdout
    assert not any(layer in pruned for layer in dirs), pruned
    assert sbx.run("exec", "inuse", "-c", "c", "--", "cat", "/data/top.txt", check=True).stdout == "top\n"
    sbx.stop(proc)
    pruned = sbx.run("image", "prune", check=True).stdout
    assert all(layer in pruned for layer in dirs), pruned


def test_the_image_id_image_ls_shows_names_the_image(sbx: Sandbox, tmp_path: Path) -> None:
    """crictl inspecti/rmi and podman take the IMAGE ID their listing shows, the config's digest
    (the CRI image id); so do inspect, tag, rm, which take the manifest digest too."""
    layout = tmp_path / "layout"
    sbx.run("image", "export", str(layout), "busybox:1.36", check=True)
    images = sbx.root / "lib" / "images"
    images.unlink()
    images.mkdir()
    sbx.run("image", "import", str(layout), check=True)
    sbx.run("image", "tag", "busybox:1.36", "qa/two:1", check=True)
    row = next(line.split() for line in sbx.run("image", "ls", check=True).stdout.splitlines()[1:])
    image_id = row[2]
    inspected = json.loads(sbx.run("image", "inspect", image_id, check=True).stdout)
    config = json.loads((images / "blobs" / "sha256" / inspected["digest"][7:]).read_text())["config"]["digest"]
    assert inspected["id"] == config and config.startswith(f"sha256:{image_id}")
    assert json.loads(sbx.run("image", "inspect", inspected["digest"], check=True).stdout) == inspected
    sbx.run("image", "tag", f"sha256:{image_id}", "qa/three:1", check=True)
    removed = sbx.run("image", "rm", image_id, check=True).stdout
    assert "docker.io/library/busybox:1.36" in removed and "docker.io/qa/three:1" in removed, removed
    assert sbx.run("image", "ls", check=True).stdout.splitlines()[1:] == []


def test_an_untagged_docker_archive_takes_the_given_name_or_is_refused(sbx: Sandbox, tmp_path: Path) -> None:
    """`docker save IMAGE-ID` writes no RepoTags: the image takes import's name argument (as an OCI
    layout's image without a ref.name), and without one the import is refused instead of storing
    an image no name reaches."""
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo is not installed")
    layout, archive = tmp_path / "layout", tmp_path / "untagged.tar"
    sbx.run("image", "export", str(layout), "busybox:1.36", check=True)
    subprocess.run(["skopeo", "--insecure-policy", "copy", "--quiet", f"oci:{layout}:docker.io/library/busybox:1.36",
                    f"docker-archive:{archive}"], check=True, capture_output=True, timeout=60)
    images = sbx.root / "lib" / "images"
    images.unlink()
    images.mkdir()
    refused = sbx.run("image", "import", str(archive))
    assert refused.returncode == 1 and "no RepoTags and no name was given" in refused.stderr, refused
    assert sbx.run("image", "ls", check=True).stdout.splitlines()[1:] == []
    named = sbx.run("image", "import", str(archive), "qa/saved:1", check=True).stdout
    assert named.startswith("docker.io/qa/saved:1 sha256:"), named
    assert json.loads(sbx.run("image", "inspect", "qa/saved:1", check=True).stdout)["config"]["Cmd"] == ["sh"]


HELD = """
apiVersion: v1
kind: Pod
metadata: {name: held}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  volumes:
  - {name: gate, hostPath: {path: "GATE", type: Directory}}
  initContainers:
  - name: wait
    image: busybox:1.36
    command: ["sh", "-c", "touch /gate/started; until [ -e /gate/go ]; do sleep 0.05; done"]
    volumeMounts: [{name: gate, mountPath: /gate}]
  containers:
  - {name: app, image: "qa/app@DIGEST", command: ["cat", "/data/top.txt"]}
"""


def test_prune_keeps_the_image_a_pod_resolved_before_it_is_mounted(sbx: Sandbox, image_store: Path,
                                                                    tmp_path: Path) -> None:
    """The pod resolves its app container's image before its init container runs and mounts it
    only afterwards: nothing of it is mounted meanwhile. `image rm` and `image prune` then must
    not take it (the pod's lease, images/lease.py), as containerd's leases and its containers'
    snapshots keep what a container is about to use; the app starts with its files. Once the
    pod ended, prune removes the image."""
    from registry_fixture import add_image, own_store, tar_of

    store, bottom = own_store(sbx.root, image_store)
    add_image(store, "docker.io/library/busybox:1.36", [bottom])
    add_image(store, "docker.io/qa/app:1", [bottom, store.ingest([tar_of({"data/top.txt": b"top\n"})])])
    app = store.lookup("qa/app:1")
    gate = tmp_path / "gate"
    gate.mkdir()
    manifest = sbx.manifest(HELD.replace("GATE", str(gate)).replace("DIGEST", app.digest))
    proc = sbx.start(manifest, "--network", "none")
    sbx.wait_for(lambda: (gate / "started").exists() or proc.poll() is not None, message="the init container")
    assert proc.poll() is None, sbx.finish(proc)
    sbx.run("image", "rm", "qa/app:1", check=True)
    pruned = sbx.run("image", "prune", check=True).stdout
    assert str(app.layers[-1]) not in pruned and app.digest[7:] not in pruned, pruned
    (gate / "go").touch()
    code, out, err = sbx.finish(proc)
    assert code == 0, err
    assert sbx.run("logs", "held", "-c", "app", check=True).stdout == "top\n"
    pruned = sbx.run("image", "prune", check=True).stdout
    assert str(app.layers[-1]) in pruned and app.digest[7:] in pruned, pruned
    assert not (sbx.root / "lib" / "images" / "leases").exists() or \
        not list((sbx.root / "lib" / "images" / "leases").iterdir())


def test_prune_keeps_what_an_import_under_way_has_stored(sbx: Sandbox, tmp_path: Path) -> None:
    """An import stores an image's blobs one by one and names it last: a prune in between must
    not take the blobs stored so far (the import's lease). The import is held at a known point:
    its layer blob is a FIFO, which it opens after copying the manifest and the config."""
    import os
    import threading

    layout = tmp_path / "layout"
    sbx.run("image", "export", str(layout), "busybox:1.36", check=True)
    images = sbx.root / "lib" / "images"
    images.unlink()
    images.mkdir()
    index = json.loads((layout / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"]
    manifest = json.loads((layout / "blobs" / "sha256" / manifest_digest[7:]).read_text())
    config = manifest["config"]["digest"][7:]
    layer = layout / "blobs" / "sha256" / manifest["layers"][0]["digest"][7:]
    content = layer.read_bytes()
    layer.unlink()
    os.mkfifo(layer)
    proc = subprocess.Popen(sbx.cmd("image", "import", str(layout)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        sbx.wait_for(lambda: (images / "blobs" / "sha256" / config).is_file() or proc.poll() is not None,
                     message="the import's config blob")
        assert proc.poll() is None, proc.communicate()
        pruned = sbx.run("image", "prune", check=True).stdout
        assert config not in pruned and manifest_digest[7:] not in pruned, pruned
    finally:
        writer = threading.Thread(target=lambda: layer.write_bytes(content), daemon=True)  # the import goes on
        writer.start()
        out, err = proc.communicate(timeout=60)
        writer.join(10)
    assert proc.returncode == 0, err
    assert sbx.run("image", "inspect", "busybox:1.36", check=True).stdout
    assert not list((images / "leases").iterdir())


LOOPING = """
apiVersion: v1
kind: Pod
metadata: {name: looping}
spec:
  restartPolicy: Always
  terminationGracePeriodSeconds: 1
  containers:
  - {name: app, image: "qa/app@DIGEST", command: ["sh", "-c", "cat /data/top.txt; exit 1"]}
"""


def test_prune_keeps_the_image_of_a_container_in_its_restart_back_off(sbx: Sandbox, image_store: Path) -> None:
    """Between two starts a crash-looping container has nothing mounted; its image, resolved
    by the pod, stays leased until the pod ends (a containerd container keeps its snapshot until
    it is removed): a prune in the back-off takes nothing, and the restart runs it again."""
    from registry_fixture import add_image, own_store, tar_of

    store, bottom = own_store(sbx.root, image_store)
    add_image(store, "docker.io/qa/app:1", [bottom, store.ingest([tar_of({"data/top.txt": b"top\n"})])])
    app = store.lookup("qa/app:1")
    proc = sbx.start(sbx.manifest(LOOPING.replace("DIGEST", app.digest)), "--network", "none",
                     "--backoff-initial", "1s", "--backoff-max", "1s")

    def restarts() -> int:
        statuses = (sbx.state("looping") or {}).get("status", {}).get("containerStatuses", [])
        return int(statuses[0].get("restartCount", 0)) if statuses else 0

    sbx.wait_for(lambda: sbx.waiting("looping").get("reason") == "CrashLoopBackOff" or proc.poll() is not None,
                 message="the first back-off")
    assert proc.poll() is None, sbx.finish(proc)
    before = restarts()
    sbx.run("image", "rm", "qa/app:1", check=True)
    pruned = sbx.run("image", "prune", check=True).stdout
    assert str(app.layers[-1]) not in pruned and app.digest[7:] not in pruned, pruned
    sbx.wait_for(lambda: restarts() > before, timeout=20, message="the restart")
    assert sbx.waiting("looping").get("reason") != "ErrImagePull"
    sbx.stop(proc)
    assert sbx.run("logs", "looping", "-c", "app", check=True).stdout == "top\n"
    pruned = sbx.run("image", "prune", check=True).stdout
    assert str(app.layers[-1]) in pruned, pruned
