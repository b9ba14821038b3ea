"""The redis-php test images (rootfs/build-test-images.sh): real OCI layouts, reproducible, and
programs that work from their own root filesystems.

The images are unpacked from their layouts (what a pull would get) and their config's entrypoint,
command, env and working directory run there with `unshare --root`, in a private network
namespace with only loopback, as the seed notes' `redis-php` pod: the front end on port 80 talks
to Redis on localhost:6379, and the redis container's curl/wget read the front end's page.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "rootfs" / "build-test-images.sh"
REFS = {"redis": "docker.io/kubeguide/redis-master:latest",
        "php-frontend": "docker.io/kubeguide/guestbook-php-frontend:localredis"}


@dataclass(frozen=True)
class BuiltImage:
    layout: Path
    digest: str  # the manifest's, as the build printed it
    seconds: float

    def blob(self, digest: str) -> Path:
        return self.layout / "blobs" / "sha256" / digest.removeprefix("sha256:")

    def manifest(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.blob(self.digest).read_bytes())
        return data

    def config(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.blob(self.manifest()["config"]["digest"]).read_bytes())
        return data

    def layer(self) -> Path:
        return self.blob(self.manifest()["layers"][0]["digest"])


def build(target: str, layout: Path) -> BuiltImage:
    started = time.monotonic()
    done = subprocess.run([str(BUILD), target, str(layout)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"building {target} failed: {done.stderr}"
    return BuiltImage(layout, done.stdout.strip(), time.monotonic() - started)


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, BuiltImage]]:
    base = tmp_path_factory.mktemp("test-images")
    try:
        yield {target: build(target, base / target) for target in REFS}
    finally:  # ~35 MB: not left for pytest's retention of old base directories
        shutil.rmtree(base, ignore_errors=True)


@dataclass(frozen=True)
class Unpacked:
    root: Path
    config: dict[str, Any]  # the config's "config" object: Entrypoint, Cmd, Env, WorkingDir...

    def server(self, port: int, log: Path) -> dict[str, Any]:
        """The image's own command, run as a runtime would: entrypoint + cmd, env, working dir."""
        argv = self.config.get("Entrypoint", []) + self.config.get("Cmd", [])
        env = dict(item.split("=", 1) for item in self.config.get("Env", []))
        # PID 1 of a PID namespace of its own, as in a container: the kernel then drops every
        # signal PID 1 has no handler for, SIGTERM included.
        pid1 = ["--pid", "--fork", "--kill-child"]
        return {"argv": self.chrooted(*argv, unshare=pid1), "env": env, "port": port, "log": str(log)}

    def chrooted(self, *argv: str, unshare: list[str] | None = None) -> list[str]:
        """The command run in the image's root and working directory."""
        return ["unshare", *(unshare or []), f"--root={self.root}",
                f"--wd={self.config.get('WorkingDir', '/')}", "--", *argv]


@pytest.fixture(scope="session")
def unpacked(images: dict[str, BuiltImage], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Unpacked]]:
    """Each image's layer extracted (owners kept) into a directory of its own."""
    base = tmp_path_factory.mktemp("unpacked")
    try:
        result = {}
        for target, image in images.items():
            root = base / target
            root.mkdir()
            subprocess.run(["tar", "-xzf", str(image.layer()), "-C", str(root), "--numeric-owner"], check=True)
            result[target] = Unpacked(root, image.config()["config"])
        yield result
    finally:
        shutil.rmtree(base, ignore_errors=True)


# Runs as PID 1 of a new PID namespace inside a new network namespace (the pytest process never
# enters one): brings loopback up, starts the servers, waits for each port, runs the probes, stops
# the servers and prints the results and exit codes as JSON. Its exit ends the PID namespace,
# which kills whatever is left. A server is `unshare --pid --fork`: its PID 1 is the child of the
# process started here, and `unshare` exits with that child's status.
IN_POD = r"""
import json, os, signal, socket, subprocess, sys, time
job = json.loads(sys.argv[1])
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
servers = []
try:
    for server in job["servers"]:
        with open(server["log"], "wb") as log:
            proc = subprocess.Popen(server["argv"], env=server["env"], stdout=log, stderr=subprocess.STDOUT)
        servers.append(proc)
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", server["port"]), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"{server['argv']} is not listening on port {server['port']}")
                time.sleep(0.02)
    results = []
    for argv in job["probes"]:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        results.append({"rc": done.returncode, "out": done.stdout, "err": done.stderr})
finally:
    exits = []
    for proc in servers:  # SIGTERM to each PID 1, as a runtime's stop; one that ignores it shows as -9
        try:
            with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as children:
                os.kill(int(children.read().split()[0]), signal.SIGTERM)
        except (OSError, IndexError):
            pass  # already gone: its exit code tells
        try:
            exits.append(proc.wait(10))
        except subprocess.TimeoutExpired:
            proc.kill()
            exits.append(proc.wait())
print(json.dumps({"probes": results, "exits": exits}))
"""


def in_private_net(servers: list[dict[str, Any]], probes: list[list[str]]) -> list[dict[str, Any]]:
    """Run the servers and the probes in a fresh network and PID namespace (with its own /proc, so
    the pids it reads are its own), then stop the servers
    with SIGTERM and check they exit 0; --kill-child takes the namespace down even if this test is
    interrupted."""
    job = json.dumps({"servers": servers, "probes": probes})
    done = subprocess.run(["unshare", "--net", "--pid", "--fork", "--kill-child", "--mount-proc",
                           sys.executable, "-c", IN_POD, job], capture_output=True, text=True, timeout=120)
    logs = "".join(Path(s["log"]).read_text(errors="replace") for s in servers if Path(s["log"]).exists())
    assert done.returncode == 0, f"pod run failed: {done.stderr}\nserver logs:\n{logs}"
    report = json.loads(done.stdout)
    assert report["exits"] == [0] * len(servers), f"servers did not stop cleanly on SIGTERM:\n{logs}"
    results: list[dict[str, Any]] = report["probes"]
    return results


def processes_rooted_in(*roots: Path) -> list[str]:
    """Processes whose root directory is one of ours: a server that outlived its namespace."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{pid}/root") in {str(r) for r in roots}:
                found.append(pid)
        except OSError:
            continue
    return found


@pytest.fixture
def pod(unpacked: dict[str, Unpacked]) -> Iterator[dict[str, Unpacked]]:
    yield unpacked
    left = processes_rooted_in(*(u.root for u in unpacked.values()))
    assert not left, f"processes left running in the images' roots: {left}"


# --- the layouts -------------------------------------------------------------------------------

def sha256_of(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("target", sorted(REFS))
def test_layout_is_an_oci_image(images: dict[str, BuiltImage], target: str) -> None:
    image = images[target]
    assert json.loads((image.layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((image.layout / "index.json").read_text())
    assert index["schemaVersion"] == 2
    [entry] = index["manifests"]
    assert entry["annotations"] == {"org.opencontainers.image.ref.name": REFS[target]}
    assert entry["digest"] == image.digest == sha256_of(image.blob(image.digest))
    assert entry["size"] == image.blob(image.digest).stat().st_size
    manifest = image.manifest()
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    [layer] = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    for descriptor in (manifest["config"], layer):  # every blob is named by its content
        assert sha256_of(image.blob(descriptor["digest"])) == descriptor["digest"]
        assert image.blob(descriptor["digest"]).stat().st_size == descriptor["size"]
    config = image.config()
    assert config["os"] == "linux" and config["architecture"]
    diff_id = "sha256:" + hashlib.sha256(gzip.decompress(image.layer().read_bytes())).hexdigest()
    assert config["rootfs"] == {"type": "layers", "diff_ids": [diff_id]}
    assert sorted(os.listdir(image.layout / "blobs" / "sha256")) == sorted(
        d.removeprefix("sha256:") for d in (image.digest, manifest["config"]["digest"], layer["digest"]))


def test_image_configs_match_the_seed_pod(images: dict[str, BuiltImage]) -> None:
    redis = images["redis"].config()["config"]
    assert redis["Cmd"][0] == "redis-server" and redis["ExposedPorts"] == {"6379/tcp": {}}
    frontend = images["php-frontend"].config()["config"]
    assert frontend["Entrypoint"][0] == "tini" and frontend["Cmd"][:2] == ["php", "-n"]
    assert frontend["ExposedPorts"] == {"80/tcp": {}}
    assert "REDIS_HOST=localhost" in frontend["Env"]


@pytest.mark.parametrize("target", sorted(REFS))
def test_layer_is_normalised(images: dict[str, BuiltImage], target: str) -> None:
    with tarfile.open(images[target].layer()) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names, key=lambda n: n.split("/")), "entries are not in sorted order"
    assert {(m.mtime, m.uname, m.gname) for m in members} == {(0, "", "")}
    assert all(not m.name.startswith(("/", "./")) and ".." not in m.name.split("/") for m in members)
    programs = {"redis": ["usr/bin/redis-server", "usr/bin/redis-cli", "usr/bin/curl", "usr/bin/wget"],
                "php-frontend": ["usr/bin/php", "usr/bin/tini", "var/www/html/index.php", "var/www/html/guestbook.php"]}
    assert set(programs[target]) <= set(names)


def test_builds_are_reproducible_fast_and_small(images: dict[str, BuiltImage], tmp_path: Path) -> None:
    for target, first in images.items():
        second = build(target, tmp_path / target)
        assert second.digest == first.digest, f"{target}: two builds gave different manifests"
        assert (second.layout / "index.json").read_bytes() == (first.layout / "index.json").read_bytes()
        size = first.layer().stat().st_size
        print(f"{target}: {first.seconds:.1f} s, {second.seconds:.1f} s; layer {size / 2**20:.1f} MiB")
        assert max(first.seconds, second.seconds) < 60, f"{target}: the build takes over a minute"
        assert size < 40 * 2**20, f"{target}: the layer is {size} bytes"


def test_bad_spec_is_refused_with_its_key(tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"ref": "x:1", "exposedPorts": ["80/http"]}))
    (tmp_path / "tree").mkdir()
    done = subprocess.run([sys.executable, str(REPO / "rootfs" / "build-image-from-dir.py"), str(tmp_path / "tree"),
                           str(spec), str(tmp_path / "layout")], capture_output=True, text=True)
    assert done.returncode == 2 and "spec.exposedPorts[0]" in done.stderr
    assert sorted(os.listdir(tmp_path)) == ["spec.json", "tree"], "a refused build left files behind"


# --- the programs, run from their images -------------------------------------------------------

@pytest.mark.root
def test_redis_answers_ping_from_its_image(pod: dict[str, Unpacked], tmp_path: Path) -> None:
    redis = pod["redis"]
    [ping, roundtrip] = in_private_net(
        [redis.server(6379, tmp_path / "redis.log")],
        [redis.chrooted("redis-cli", "ping"), redis.chrooted("redis-cli", "eval", "return 6*7", "0")])
    assert (ping["rc"], ping["out"].strip()) == (0, "PONG"), ping
    assert roundtrip["out"].strip() == "42", roundtrip  # a Lua script ran in the server


@pytest.mark.root
def test_seed_pod_frontend_reaches_redis_on_localhost(pod: dict[str, Unpacked], tmp_path: Path) -> None:
    """The seed notes' redis-php pod: from the redis container, `curl localhost` (and busybox
    wget) get the front end's page, and the front end's Redis round trips really reach Redis."""
    redis, frontend = pod["redis"], pod["php-frontend"]
    api = "http://localhost/guestbook.php?cmd="
    results = in_private_net(
        [redis.server(6379, tmp_path / "redis.log"), frontend.server(80, tmp_path / "php.log")],
        [redis.chrooted("curl", "-s", "localhost"),
         redis.chrooted("wget", "-qO-", "http://localhost/"),
         redis.chrooted("curl", "-s", api + "set&key=messages&value=hello,world"),
         redis.chrooted("redis-cli", "get", "messages"),
         redis.chrooted("curl", "-s", api + "get&key=messages"),
         redis.chrooted("curl", "-s", "localhost")])
    first, second, stored, direct, read_back, last = results
    assert "Redis round trip: ok (PONG, visits: 1)" in first["out"], first
    assert "Redis round trip: ok (PONG, visits: 2)" in second["out"], second
    assert json.loads(stored["out"]) == {"message": "Updated"}
    assert direct["out"].strip() == "hello,world", "the front end's write did not reach Redis"
    assert json.loads(read_back["out"]) == {"data": "hello,world"}
    assert "<li>hello</li>" in last["out"] and "<li>world</li>" in last["out"], last


@pytest.mark.root
def test_frontend_reports_a_missing_redis(pod: dict[str, Unpacked], tmp_path: Path) -> None:
    frontend, redis = pod["php-frontend"], pod["redis"]
    [page] = in_private_net([frontend.server(80, tmp_path / "php.log")],
                            [redis.chrooted("curl", "-s", "-w", "\n%{http_code}", "localhost")])
    assert "Redis round trip: failed: cannot reach Redis at localhost:6379" in page["out"], page
    assert page["out"].rstrip().endswith("503")
