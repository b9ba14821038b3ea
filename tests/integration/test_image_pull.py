"""Images from a real registry (Debian's docker-registry on loopback, images pushed with skopeo):
the seed notes' redis-php pod runs unmodified, its docker.io images pulled through a mirror
configured as containerd's hosts.toml; `sandbox image pull/ls/inspect/rm/prune`; OCI layout
import; a missing tag; two pulls of one image at once. imagePullPolicy as the kubelet applies it:
Always resolves the tag at every start (a stored digest costs the manifest only, a moved tag runs
the new image, an unreachable registry is ErrImagePull even with the image stored), Never waits
for an imported image, and a slow pull runs beside the pod's loop (logs stream, Ctrl-C ends it)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, Sandbox
from registry_fixture import (
    Mirror,
    Registry,
    push_image,
    require_tools,
    running_registry,
    store_blobs,
    tar_of,
    write_hosts,
)

pytestmark = pytest.mark.root

IMAGES = {"redis": ("kubeguide/redis-master", "latest"),
          "php-frontend": ("kubeguide/guestbook-php-frontend", "localredis")}


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    require_tools()
    base = tmp_path_factory.mktemp("layouts")
    built = {}
    for target in IMAGES:
        layout = base / target
        subprocess.run([str(REPO / "rootfs" / "build-test-images.sh"), target, str(layout)], check=True,
                       capture_output=True, timeout=300)
        built[target] = layout
    return built


@pytest.fixture(scope="module")
def registry(layouts: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with running_registry(tmp_path_factory.mktemp("registry") / "r") as reg:
        for target, (repository, tag) in IMAGES.items():
            index = json.loads((layouts[target] / "index.json").read_text())
            ref_name = index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
            subprocess.run(["skopeo", "--insecure-policy", "copy", "--quiet", "--preserve-digests",
                            "--dest-tls-verify=false", f"oci:{layouts[target]}:{ref_name}",
                            f"docker://{reg.netloc}/{repository}:{tag}"], check=True, capture_output=True,
                           timeout=120)
        yield reg


@pytest.fixture
def mirror(registry: Registry, sbx: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """docker.io served by the local registry, for every `sandbox` the test runs; the test's own
    image store (not the session's shared busybox store)."""
    images = sbx.root / "lib" / "images"
    images.unlink()
    images.mkdir()
    hosts = tmp_path / "certs.d"
    (hosts / "docker.io").mkdir(parents=True)
    (hosts / "docker.io" / "hosts.toml").write_text(
        f'server = "https://registry-1.docker.io"\n[host."http://{registry.netloc}"]\n'
        'capabilities = ["pull", "resolve"]\n')
    monkeypatch.setenv("SANDBOX_REGISTRY_CONFIG", str(hosts))
    return hosts


def test_the_seed_redis_php_pod_runs_unmodified(sbx: Sandbox, mirror: Path) -> None:
    proc = sbx.start(REPO / "examples" / "redis-php.yaml")
    state = sbx.wait_running("redis-php", containers=2, timeout=120)
    statuses = {c["name"]: c for c in state["status"]["containerStatuses"]}
    assert statuses["redis"]["image"] == "kubeguide/redis-master"
    assert statuses["redis"]["imageID"].startswith("docker.io/kubeguide/redis-master@sha256:")
    reasons = [(e["reason"], e["message"]) for e in state["events"] if e["involvedObject"].get("fieldPath") ==
               "spec.containers{redis}"]
    assert reasons[0] == ("Pulling", 'Pulling image "kubeguide/redis-master"')
    assert reasons[1][0] == "Pulled" and reasons[1][1].startswith('Successfully pulled image "kubeguide/redis-master" in ')
    page = sbx.wait_for(lambda: _page(sbx), timeout=30, message="the front end's page from the redis container")
    assert "Redis round trip: ok (PONG" in page, page
    code, _, err = sbx.stop(proc)
    assert "frontend: terminated" in err and "redis: terminated" in err


def _page(sbx: Sandbox) -> str | None:
    done = sbx.run("exec", "redis-php", "-c", "redis", "--", "curl", "-s", "localhost")
    return done.stdout if done.returncode == 0 and "Guestbook" in done.stdout else None


def test_pull_ls_inspect_rm_prune(sbx: Sandbox, mirror: Path) -> None:
    pulled = sbx.run("image", "pull", "kubeguide/redis-master", timeout=120)
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stdout.startswith("docker.io/kubeguide/redis-master:latest sha256:")
    listed = sbx.run("image", "ls", check=True).stdout
    assert listed.split("\n")[0].split() == ["IMAGE", "TAG", "IMAGE", "ID", "SIZE"]
    assert any(line.split()[:2] == ["docker.io/kubeguide/redis-master", "latest"] for line in listed.splitlines())
    inspect = json.loads(sbx.run("image", "inspect", "kubeguide/redis-master", check=True).stdout)
    assert inspect["config"]["Cmd"][0] == "redis-server"
    assert all(Path(p, "usr").is_dir() for p in inspect["layers"])
    again = sbx.run("image", "pull", "kubeguide/redis-master", timeout=120, check=True)
    assert again.stdout.split()[1] == pulled.stdout.split()[1], "the same digest, nothing fetched twice"
    assert sbx.run("image", "rm", "kubeguide/redis-master", check=True).returncode == 0
    pruned = sbx.run("image", "prune", check=True).stdout
    assert inspect["layers"][0] in pruned
    assert not Path(inspect["layers"][0]).exists()


def test_a_missing_tag_waits_in_err_image_pull(sbx: Sandbox, mirror: Path) -> None:
    missing = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: nosuch}
spec:
  containers:
  - {name: c, image: kubeguide/redis-master:no-such-tag}
""", "missing.yaml")
    proc = sbx.start(missing)
    sbx.wait_for(lambda: "manifest unknown" in sbx.waiting("nosuch").get("message", ""), timeout=30,
                 message="ErrImagePull: manifest unknown")
    code, _, _ = sbx.stop(proc)
    assert code == 1


def test_an_oci_layout_imports_under_its_annotated_names(sbx: Sandbox, layouts: dict[str, Path],
                                                         mirror: Path) -> None:
    result = sbx.run("image", "import", str(layouts["php-frontend"]), check=True)
    assert result.stdout.startswith("docker.io/kubeguide/guestbook-php-frontend:localredis sha256:")
    index = json.loads((layouts["php-frontend"] / "index.json").read_text())
    assert index["manifests"][0]["digest"] in result.stdout


def test_two_pulls_of_one_image_at_once_share_the_store(sbx: Sandbox, mirror: Path) -> None:
    results: list[Any] = []

    def pull() -> None:
        results.append(sbx.run("image", "pull", "kubeguide/guestbook-php-frontend:localredis", timeout=180))

    threads = [threading.Thread(target=pull) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    assert results[0].stdout.split()[1] == results[1].stdout.split()[1]
    layers = sbx.root / "lib" / "images" / "layers" / "sha256"
    assert len([p for p in layers.iterdir()]) == 1  # one layer, unpacked once
    assert not list((sbx.root / "lib" / "images" / "layers").glob(".tmp-*"))
    shutil.rmtree(sbx.root / "lib" / "images" / "ingest", ignore_errors=True)


def test_images_move_between_machines_as_oci_layouts_and_docker_archives(
        sbx: Sandbox, layouts: dict[str, Path], mirror: Path, tmp_path: Path) -> None:
    sbx.run("image", "import", str(layouts["redis"]), check=True)
    exported = tmp_path / "exported"
    sbx.run("image", "export", str(exported), "kubeguide/redis-master", check=True)
    index = json.loads((exported / "index.json").read_text())
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == \
        "docker.io/kubeguide/redis-master:latest"
    original = json.loads((layouts["redis"] / "index.json").read_text())["manifests"][0]["digest"]
    assert index["manifests"][0]["digest"] == original, "an export keeps the manifest, byte for byte"
    # the exported layout is one skopeo reads, and a docker-save archive made from it imports
    archive = tmp_path / "redis.tar"
    subprocess.run(["skopeo", "--insecure-policy", "copy", "--quiet",
                    f"oci:{exported}:docker.io/kubeguide/redis-master:latest",
                    f"docker-archive:{archive}:example.com/copied/redis:1"], check=True, capture_output=True,
                   timeout=120)
    result = sbx.run("image", "import", str(archive), check=True)
    assert result.stdout.startswith("example.com/copied/redis:1 sha256:")
    inspect = json.loads(sbx.run("image", "inspect", "example.com/copied/redis:1", check=True).stdout)
    assert inspect["config"]["Cmd"][0] == "redis-server"
    assert Path(inspect["layers"][0], "usr", "bin", "redis-server").exists() or \
        Path(inspect["layers"][0], "usr", "local", "bin", "redis-server").exists() or \
        any(Path(inspect["layers"][0]).rglob("redis-server"))


class Relay:
    """A loopback HTTP relay to a registry that records every request's path, can send blob
    bodies slowly (`chunk` bytes every `pause` seconds) or hold them after their first piece until
    `gate` is set, and can play an unreachable registry (`down`: each connection is closed
    without an answer)."""

    def __init__(self, upstream: str, *, pause: float = 0.0, chunk: int = 65536,
                 gate: threading.Event | None = None) -> None:
        import http.server
        import urllib.error
        import urllib.request

        relay = self
        self.paths: list[str] = []
        self.down = False

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                if relay.down:
                    self.close_connection = True
                    return
                relay.paths.append(f"{self.command} {self.path}")
                request = urllib.request.Request(f"http://{upstream}{self.path}", headers=dict(self.headers),
                                                 method=self.command)
                try:
                    response = urllib.request.urlopen(request, timeout=30)
                except urllib.error.HTTPError as e:
                    response = e
                self.send_response(response.status)
                for key, value in response.headers.items():
                    if key.lower() not in ("connection", "transfer-encoding"):
                        self.send_header(key, value)
                self.end_headers()
                slow = "/blobs/" in self.path and pause > 0
                held = "/blobs/" in self.path and gate is not None
                while data := response.read(chunk):
                    self.wfile.write(data)
                    if slow:
                        time.sleep(pause)
                    if held:
                        self.wfile.flush()
                        gate.wait(60)  # type: ignore[union-attr]

            do_HEAD = do_GET

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.netloc = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_pull_killed_mid_layer_leaves_no_image_and_a_clean_re_pull(
        sbx: Sandbox, registry: Registry, mirror: Path) -> None:
    import signal

    proxy = Relay(registry.netloc, pause=0.02)
    try:
        slow_hosts = sbx.tmp / "slow.d"
        (slow_hosts / "docker.io").mkdir(parents=True)
        (slow_hosts / "docker.io" / "hosts.toml").write_text(
            f'[host."http://{proxy.netloc}"]\ncapabilities = ["pull", "resolve"]\n')
        pull = subprocess.Popen(sbx.cmd("image", "pull", "--registry-config", str(slow_hosts),
                                        "kubeguide/guestbook-php-frontend:localredis"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        images = sbx.root / "lib" / "images"
        deadline = time.monotonic() + 30
        while not any((images / "ingest").glob("*.partial")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any((images / "ingest").glob("*.partial")), "the pull never reached a layer"
        pull.send_signal(signal.SIGKILL)
        pull.communicate()
    finally:
        proxy.close()
    # layers unpack while others download: the kill may stop one half-way (prune's to remove)
    killed_mid_unpack = set((images / "layers").glob(".tmp-*"))
    listed = sbx.run("image", "ls", check=True).stdout
    assert "guestbook-php-frontend" not in listed, "a killed pull names nothing"
    again = sbx.run("image", "pull", "kubeguide/guestbook-php-frontend:localredis", timeout=120)
    assert again.returncode == 0, again.stderr
    assert not set((images / "layers").glob(".tmp-*")) - killed_mid_unpack, "the re-pull left a partial layer"
    pruned = sbx.run("image", "prune", check=True).stdout
    assert "ingest" in pruned or not list((images / "ingest").iterdir())
    assert not list((images / "ingest").iterdir())
    assert not list((images / "layers").glob(".tmp-*"))
    inspect = json.loads(sbx.run("image", "inspect", "kubeguide/guestbook-php-frontend:localredis",
                                 check=True).stdout)
    assert all(Path(p).is_dir() for p in inspect["layers"])


def test_prune_during_a_pull_keeps_what_the_pull_has_written(sbx: Sandbox, registry: Registry, mirror: Path) -> None:
    """A pull stores its manifest, then its blobs and layers as they arrive, and names the image
    last: a prune meanwhile must leave all of it, partial downloads included (the pull's lease,
    images/lease.py), and the pull then completes."""
    gate = threading.Event()
    proxy = Relay(registry.netloc, chunk=4096, gate=gate)
    try:
        held_hosts = sbx.tmp / "held.d"
        (held_hosts / "docker.io").mkdir(parents=True)
        (held_hosts / "docker.io" / "hosts.toml").write_text(
            f'[host."http://{proxy.netloc}"]\ncapabilities = ["pull", "resolve"]\n')
        pull = subprocess.Popen(sbx.cmd("image", "pull", "--registry-config", str(held_hosts),
                                        "kubeguide/redis-master"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        images = sbx.root / "lib" / "images"
        try:
            sbx.wait_for(lambda: any((images / "ingest").glob("*.partial")) or pull.poll() is not None,
                         timeout=30, message="the pull's first layer")
            assert pull.poll() is None, pull.communicate()
            partial = sorted(p.name for p in (images / "ingest").glob("*.partial"))
            pruned = sbx.run("image", "prune", check=True).stdout
            assert "ingest" not in pruned and "layers/.tmp-" not in pruned, pruned
            left = {p.name for p in (images / "ingest").glob("*.partial")}
            for name in partial:  # each download still going, or ended meanwhile (only the first layer is held)
                assert name in left or (images / "blobs" / "sha256" / name.removesuffix(".partial")).is_file(), name
        finally:
            gate.set()
            out, err = pull.communicate(timeout=120)
    finally:
        proxy.close()
    assert pull.returncode == 0, err
    inspect = json.loads(sbx.run("image", "inspect", "kubeguide/redis-master", check=True).stdout)
    assert all(Path(p).is_dir() for p in inspect["layers"])
    assert not list((images / "leases").iterdir())


def test_a_pull_marks_the_layers_directory_for_the_orlov_allocator(sbx: Sandbox, mirror: Path) -> None:
    """On ext2/3/4 the store's layers/ carries the T attribute (chattr +T, FS_TOPDIR_FL), seen with
    lsattr from outside; its layer directories do not (the flag is not inherited)."""
    if shutil.which("lsattr") is None:
        pytest.skip("lsattr (e2fsprogs) is not installed")
    sbx.run("image", "pull", "kubeguide/redis-master", check=True, timeout=120)
    layers = sbx.root / "lib" / "images" / "layers"
    fs_type = subprocess.run(["stat", "-f", "-c", "%T", str(layers)], capture_output=True, text=True,
                             check=True).stdout.strip()
    if fs_type != "ext2/ext3":  # stat's name for every ext* filesystem
        pytest.skip(f"the store is on {fs_type}: the flag is ext2/3/4's")
    attributes = subprocess.run(["lsattr", "-d", str(layers)], capture_output=True, text=True,
                                check=True).stdout.split()[0]
    assert "T" in attributes
    for layer in (layers / "sha256").iterdir():
        layer_attributes = subprocess.run(["lsattr", "-d", str(layer)], capture_output=True, text=True,
                                          check=True).stdout.split()[0]
        assert "T" not in layer_attributes


def test_an_image_volume_shows_the_images_files_read_only(sbx: Sandbox, mirror: Path) -> None:
    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: imgvol}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: kubeguide/redis-master
    command: ["sh", "-c", "ls /front/var/www/html; touch /front/x 2>&1 || echo read-only; ls /sub"]
    volumeMounts:
    - {name: front, mountPath: /front}
    - {name: front, mountPath: /sub, subPath: var/www/html}
  volumes:
  - name: front
    image: {reference: "kubeguide/guestbook-php-frontend:localredis", pullPolicy: IfNotPresent}
""")
    result = sbx.run("run", str(manifest), timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count("index.php") == 2, out  # the whole image and a subPath of it
    assert "Read-only file system" in out and "read-only" in out
    never = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: imgvol2}
spec:
  restartPolicy: Never
  containers:
  - {name: c, image: kubeguide/redis-master, command: ["true"]}
  volumes:
  - name: v
    image: {reference: "kubeguide/not-pulled:1", pullPolicy: Never}
""", "never.yaml")
    result = sbx.run("run", str(never), timeout=60)
    assert result.returncode != 0
    assert "spec.volumes[0].image.reference: ErrImageNeverPull" in result.stderr, result.stderr




def test_a_layered_image_volume_is_a_read_only_overlay_with_whiteouts(sbx: Sandbox, mirror: Path) -> None:
    """Two layers made here: the upper one replaces a.txt and whites out b.txt (`.wh.b.txt`)."""
    from sandbox.images.store import CONFIG_OCI, LAYER_TAR, MANIFEST_OCI, ImageStore

    store = ImageStore(sbx.root / "lib" / "images")
    lower = tar_of({"data/a.txt": b"one\n", "data/b.txt": b"lower\n"})
    upper = tar_of({"data/a.txt": b"two\n", "data/.wh.b.txt": b""})
    layers = [store.ingest([lower]), store.ingest([upper])]
    config = store.put_json({"architecture": "amd64", "os": "linux", "config": {},
                             "rootfs": {"type": "layers", "diff_ids": layers}})
    manifest = store.put_json({"schemaVersion": 2, "mediaType": MANIFEST_OCI,
                               "config": {"mediaType": CONFIG_OCI, "digest": config, "size": 1},
                               "layers": [{"mediaType": LAYER_TAR, "digest": d, "size": 1} for d in layers]})
    store.add_image("example.com/layered:1", manifest)
    result = sbx.run("image", "pull", "kubeguide/redis-master", timeout=120)
    assert result.returncode == 0, result.stderr
    pod = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: layered}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: kubeguide/redis-master
    command: ["sh", "-c", "cat /v/data/a.txt; ls /v/data; touch /v/data/c 2>&1 || true"]
    volumeMounts: [{name: v, mountPath: /v}]
  volumes:
  - {name: v, image: {reference: "example.com/layered:1", pullPolicy: Never}}
""")
    result = sbx.run("run", str(pod), timeout=120)
    assert result.returncode == 0, result.stderr
    lines = [line.removeprefix("[c] ") for line in result.stdout.splitlines()]
    assert lines[:2] == ["two", "a.txt"], lines
    assert any("Read-only file system" in line for line in lines)


def test_a_failed_pull_waits_in_back_off_and_the_pod_starts_once_the_image_exists(
        sbx: Sandbox, registry: Registry, layouts: dict[str, Path], mirror: Path) -> None:
    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: late}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: "kubeguide/late-redis:1", command: ["sleep", "1000"]}
""")
    proc = sbx.start(manifest, "--backoff-initial", "1s", "--backoff-max", "2s")
    sbx.wait_for(lambda: sbx.waiting("late").get("reason") in ("ErrImagePull", "ImagePullBackOff"), timeout=30,
                 message="the container waiting for its image")
    assert (sbx.state("late") or {})["status"]["phase"] == "Pending"
    sbx.wait_for(lambda: sbx.waiting("late").get("reason") == "ImagePullBackOff", timeout=30,
                 message="ImagePullBackOff")
    state = sbx.state("late")
    assert state is not None
    reasons = {e["reason"] for e in state["events"]}
    assert {"Failed", "BackOff"} <= reasons, reasons
    failed = next(e for e in state["events"] if e["reason"] == "Failed")
    assert failed["message"].startswith('Failed to pull image "kubeguide/late-redis:1": ')
    ref_name = json.loads((layouts["redis"] / "index.json").read_text())["manifests"][0]["annotations"][
        "org.opencontainers.image.ref.name"]
    subprocess.run(["skopeo", "--insecure-policy", "copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false",
                    f"oci:{layouts['redis']}:{ref_name}", f"docker://{registry.netloc}/kubeguide/late-redis:1"],
                   check=True, capture_output=True, timeout=120)
    state = sbx.wait_running("late", timeout=30)
    status = state["status"]["containerStatuses"][0]
    assert status["imageID"].startswith("docker.io/kubeguide/late-redis@sha256:")
    assert any(e["reason"] == "Pulled" and e["message"].startswith("Successfully pulled") for e in state["events"])
    code, _, err = sbx.stop(proc)
    assert "c: terminated" in err


# -- imagePullPolicy at each start, against the session's busybox mirror and the tests' registries --


def own_store(sbx: Sandbox) -> Path:
    """The test's own, empty image store instead of the session's shared one."""
    images = sbx.root / "lib" / "images"
    images.unlink()
    images.mkdir()
    return images


def busybox_variant(image_store: Path, env: str) -> tuple[bytes, dict[str, bytes]]:
    """The session's busybox with `env` added to its config: the same layers under a new config,
    so a new manifest digest. Returns the manifest and its blobs."""
    refs = json.loads((image_store / "refs.json").read_text())
    digest = refs["docker.io/library/busybox:latest"].partition(":")[2]
    manifest = json.loads((image_store / "blobs" / "sha256" / digest).read_bytes())
    blobs = store_blobs(image_store, json.dumps(manifest).encode())
    config = json.loads(blobs.pop(manifest["config"]["digest"]))
    config["config"]["Env"] = [*(config["config"].get("Env") or []), env]
    config_bytes = json.dumps(config).encode()
    blobs[sha256(config_bytes)] = config_bytes
    manifest["config"] = {**manifest["config"], "digest": sha256(config_bytes), "size": len(config_bytes)}
    return json.dumps(manifest).encode(), blobs


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def events_of(sbx: Sandbox, pod: str, reason: str) -> list[str]:
    """The messages of the pod's events with `reason`, each as many times as it was counted."""
    state = sbx.state(pod) or {}
    return [e["message"] for e in state.get("events", []) if e["reason"] == reason for _ in range(e["count"])]


def container_status(sbx: Sandbox, pod: str, index: int = 0) -> dict[str, Any]:
    statuses = (sbx.state(pod) or {}).get("status", {}).get("containerStatuses", [])
    return dict(statuses[index]) if len(statuses) > index else {}


def test_always_with_the_stored_digest_fetches_only_the_manifest(
        sbx: Sandbox, store_mirror: Mirror, monkeypatch: pytest.MonkeyPatch) -> None:
    relay = Relay(store_mirror.netloc)
    try:
        monkeypatch.setenv("SANDBOX_REGISTRY_CONFIG", str(write_hosts(sbx.tmp / "relay.d",
                                                                      {"docker.io": relay.netloc})))
        manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: always}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: busybox, command: ["sh", "-c", "echo started; sleep 0.2"]}
""")
        proc = sbx.start(manifest, "--backoff-initial", "1s", "--backoff-max", "1s")
        sbx.wait_for(lambda: len(events_of(sbx, "always", "Started")) >= 3, timeout=30,
                     message="three starts of the container")
        sbx.stop(proc)
    finally:
        relay.close()
    pulling, pulled = events_of(sbx, "always", "Pulling"), events_of(sbx, "always", "Pulled")
    assert set(pulling) == {'Pulling image "busybox"'} and len(pulling) >= 3, pulling  # one per start
    assert len(pulled) >= 3 and all(m.startswith('Successfully pulled image "busybox" in ') for m in pulled), pulled
    assert len([p for p in relay.paths if "/manifests/latest" in p]) >= 3, relay.paths  # one per start
    assert not [p for p in relay.paths if "/blobs/" in p], relay.paths  # the stored digest: no blob fetched


def test_always_runs_the_new_image_once_the_tag_moved(
        sbx: Sandbox, store_mirror: Mirror, image_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    own_store(sbx)
    first, first_blobs = busybox_variant(image_store, "VERSION=1")
    second, second_blobs = busybox_variant(image_store, "VERSION=2")
    with running_registry(sbx.tmp / "registry") as registry:
        monkeypatch.setenv("SANDBOX_REGISTRY_CONFIG", str(write_hosts(sbx.tmp / "hosts.d",
                                                                      {"example.test": registry.netloc})))
        push_image(registry.netloc, "moving", "latest", first, first_blobs)
        manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: moving}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: example.test/moving, command: ["sh", "-c", "echo version=$VERSION; sleep 0.3"]}
""")
        proc = sbx.start(manifest, "--backoff-initial", "1s", "--backoff-max", "1s")
        sbx.wait_for(lambda: events_of(sbx, "moving", "Started"), timeout=30, message="the first start")
        assert container_status(sbx, "moving")["imageID"] == f"example.test/moving@{sha256(first)}"
        push_image(registry.netloc, "moving", "latest", second, second_blobs)
        sbx.wait_for(lambda: container_status(sbx, "moving").get("imageID") == f"example.test/moving@{sha256(second)}",
                     timeout=30, message="a start with the moved tag's image")
        sbx.wait_for(lambda: len(events_of(sbx, "moving", "Started")) >= 3, timeout=30, message="that start")
        _, out, _ = sbx.stop(proc)
    assert "version=1" in out and "version=2" in out, out
    inspect = json.loads(sbx.run("image", "inspect", "example.test/moving", check=True).stdout)
    assert sha256(second) in json.dumps(inspect), inspect


def test_always_with_the_registry_unreachable_waits_though_the_image_is_stored(
        sbx: Sandbox, store_mirror: Mirror, image_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    own_store(sbx)
    image, blobs = busybox_variant(image_store, "APP=1")
    with running_registry(sbx.tmp / "registry") as registry:
        relay = Relay(registry.netloc)
        try:
            monkeypatch.setenv("SANDBOX_REGISTRY_CONFIG", str(write_hosts(sbx.tmp / "hosts.d",
                                                                          {"example.test": relay.netloc})))
            push_image(registry.netloc, "app", "1", image, blobs)
            pulled = sbx.run("image", "pull", "example.test/app:1", timeout=60)
            assert pulled.returncode == 0, pulled.stderr
            relay.down = True
            manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: offline}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: "example.test/app:1", imagePullPolicy: Always, command: ["sleep", "1000"]}
""")
            proc = sbx.start(manifest, "--backoff-initial", "1s", "--backoff-max", "2s")
            sbx.wait_for(lambda: sbx.waiting("offline").get("reason") == "ErrImagePull", timeout=30,
                         message="ErrImagePull with the image in the store")
            assert (sbx.state("offline") or {})["status"]["phase"] == "Pending"
            sbx.wait_for(lambda: sbx.waiting("offline").get("reason") == "ImagePullBackOff", timeout=30,
                         message="ImagePullBackOff")
            failed = events_of(sbx, "offline", "Failed")
            assert failed[0].startswith('Failed to pull image "example.test/app:1": '), failed
            assert "Error: ImagePullBackOff" in failed, failed
            relay.down = False
            sbx.wait_running("offline", timeout=30)
            assert container_status(sbx, "offline")["imageID"] == f"example.test/app@{sha256(image)}"
            sbx.stop(proc)
        finally:
            relay.close()


def test_never_waits_for_a_missing_image_until_it_is_imported(
        sbx: Sandbox, store_mirror: Mirror, image_store: Path) -> None:
    from sandbox.images.pull import export_layout
    from sandbox.images.store import ImageStore

    own_store(sbx)
    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: never}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: "busybox:1.36", imagePullPolicy: Never, command: ["sleep", "1000"]}
""")
    proc = sbx.start(manifest, "--backoff-initial", "1s", "--backoff-max", "1s")
    sbx.wait_for(lambda: sbx.waiting("never").get("reason") == "ErrImageNeverPull", timeout=30,
                 message="ErrImageNeverPull")
    message = 'Container image "busybox:1.36" is not present with pull policy of Never'
    assert sbx.waiting("never")["message"] == message
    state = sbx.state("never") or {}
    assert state["status"]["phase"] == "Pending"
    warnings = [e for e in state["events"] if e["reason"] == "ErrImageNeverPull"]
    assert warnings and warnings[0]["type"] == "Warning" and warnings[0]["message"] == message, state["events"]
    layout = sbx.tmp / "layout"
    export_layout(ImageStore(image_store), ["busybox:1.36"], layout)
    sbx.run("image", "import", str(layout), check=True)
    sbx.wait_running("never", timeout=30)
    assert events_of(sbx, "never", "Pulled") == ['Container image "busybox:1.36" already present on machine']
    code, _, err = sbx.stop(proc)
    assert "c: terminated" in err


def big_image(size: int) -> tuple[bytes, dict[str, bytes]]:
    """One layer of `size` random (incompressible) bytes: an image whose pull takes a while."""
    import gzip
    import os

    raw = tar_of({"noise": os.urandom(size)})
    layer = gzip.compress(raw, compresslevel=1, mtime=0)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/noise"]},
                         "rootfs": {"type": "layers", "diff_ids": [sha256(raw)]}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(config),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha256(layer),
                    "size": len(layer)}]}).encode()
    return manifest, {sha256(config): config, sha256(layer): layer}


def with_noise(manifest_bytes: bytes, blobs: dict[str, bytes], size: int) -> tuple[bytes, dict[str, bytes]]:
    """The image with one more layer of `size` random bytes (a pull that takes a while)."""
    import gzip
    import os

    manifest = json.loads(manifest_bytes)
    raw = tar_of({"noise": os.urandom(size)})
    gzipped = "gzip" in manifest["layers"][-1]["mediaType"]  # as the image's other layers
    layer = gzip.compress(raw, compresslevel=1, mtime=0) if gzipped else raw
    config = json.loads(blobs.pop(manifest["config"]["digest"]))
    config["rootfs"]["diff_ids"].append(sha256(raw))
    config_bytes = json.dumps(config).encode()
    manifest["config"] = {**manifest["config"], "digest": sha256(config_bytes), "size": len(config_bytes)}
    manifest["layers"].append({**manifest["layers"][-1], "digest": sha256(layer), "size": len(layer)})
    return json.dumps(manifest).encode(), {**blobs, sha256(config_bytes): config_bytes, sha256(layer): layer}


def test_a_restart_waits_for_another_containers_pull(
        sbx: Sandbox, store_mirror: Mirror, image_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kubelet pulls inside startContainer (EnsureImageExists), so while one container's image
    is pulled the pod worker restarts nothing: a container that exited meanwhile waits for it."""
    image, blobs = with_noise(*busybox_variant(image_store, "BIG=1"), 1 << 20)
    own_store(sbx)  # the pulled image stays out of the session's store
    with running_registry(sbx.tmp / "registry") as registry:
        relay = Relay(registry.netloc, pause=0.05, chunk=8192)  # ~160 KB/s: about 6 s
        try:
            push_image(registry.netloc, "noisy", "1", image, blobs)
            monkeypatch.setenv("SANDBOX_REGISTRY_CONFIG", str(write_hosts(
                sbx.tmp / "hosts.d", {"docker.io": store_mirror.netloc, "example.test": relay.netloc})))
            manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: pulling}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: crasher
    image: busybox:1.36
    command: ["sh", "-c", "sleep 0.2; exit 1"]
  - {name: big, image: "example.test/noisy:1", command: ["sleep", "1000"]}
""")
            proc = sbx.start(manifest, "--backoff-initial", "100ms")
            sbx.wait_for(lambda: any("/blobs/" in p for p in relay.paths), timeout=30,
                         message="the slow layer's download")
            time.sleep(1.5)  # crasher exited 0.2 s after its start, before the pull began: its restart is due
            pulling = container_status(sbx, "pulling", 1)["state"] == {"waiting": {"reason": "ContainerCreating"}}
            crasher = container_status(sbx, "pulling")
            assert pulling, "the pull ended too soon for this test"
            assert crasher["restartCount"] == 0 and "terminated" in crasher["state"], crasher
            sbx.wait_for(lambda: container_status(sbx, "pulling")["restartCount"] >= 1, timeout=30,
                         message="crasher's restart once the pull ended")
            assert "running" in container_status(sbx, "pulling", 1)["state"]
            sbx.stop(proc)
        finally:
            relay.close()


def test_a_slow_pull_leaves_the_loop_free_and_ctrl_c_ends_the_pod_at_once(
        sbx: Sandbox, store_mirror: Mirror, monkeypatch: pytest.MonkeyPatch) -> None:
    image, blobs = big_image(4 << 20)
    with running_registry(sbx.tmp / "registry") as registry:
        relay = Relay(registry.netloc, pause=0.05, chunk=8192)  # ~160 KB/s: about half a minute
        try:
            push_image(registry.netloc, "big", "1", image, blobs)
            monkeypatch.setenv("SANDBOX_REGISTRY_CONFIG", str(write_hosts(
                sbx.tmp / "hosts.d", {"docker.io": store_mirror.netloc, "example.test": relay.netloc})))
            manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: slow}
spec:
  containers:
  - name: ticker
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do echo tick; sleep 0.1; done"]
  - {name: big, image: "example.test/big:1"}
""")
            proc = sbx.start(manifest)
            sbx.wait_running("slow", timeout=30)
            sbx.wait_for(lambda: any("/blobs/" in p for p in relay.paths), timeout=30,
                         message="the slow layer's download")
            logs = sbx.run("logs", "slow", "-c", "ticker", check=True).stdout.count("tick")
            sbx.wait_for(lambda: sbx.run("logs", "slow", "-c", "ticker").stdout.count("tick") >= logs + 5,
                         timeout=10, message="the ticker's output going on during the pull")
            assert container_status(sbx, "slow", 1)["state"] == {"waiting": {"reason": "ContainerCreating"}}
            assert events_of(sbx, "slow", "Pulling") == ['Pulling image "busybox"', 'Pulling image "example.test/big:1"']
            stopped = time.monotonic()
            code, out, err = sbx.stop(proc, timeout=30)
            took = time.monotonic() - stopped
        finally:
            relay.close()
    assert took < 2.0, f"Ctrl-C during a pull took {took:.1f}s"
    assert out.count("tick") >= 5 and "ticker: terminated" in err, err
