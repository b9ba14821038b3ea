"""Docker credential helpers (`credHelpers`, `credsStore`) against Debian's docker-registry with
htpasswd auth on loopback: real helper programs, written here into a directory put first in PATH,
run by the registry client as Docker runs them. Client-level cases need no root; the CLI pull
(`sandbox image pull` with DOCKER_CONFIG) is a root test."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Sandbox
from registry_fixture import Image, Registry, make_image, require_tools, running_registry, write_layout

from sandbox.errors import ImageError
from sandbox.images.auth import Credential, Credentials
from sandbox.images.registry import Platform, RegistryClient, RegistryError

AMD64 = Platform("linux", "amd64")
USER, PASSWORD = "alice", "s3cret"

# Each helper logs what it was asked (argv and stdin) to $HELPER_LOG, then behaves as its name says.
HELPERS = {
    "good": f'printf \'{{"ServerURL":"%s","Username":"{USER}","Secret":"{PASSWORD}"}}\' "$server"',
    "wrong": f'printf \'{{"ServerURL":"%s","Username":"{USER}","Secret":"nope"}}\' "$server"',
    "notfound": 'echo "credentials not found in native keychain"; exit 1',
    "garbage": 'echo "Username: alice"',
    "fails": 'echo "keychain locked" >&2; exit 3',
    "slow": "sleep 60 & wait",
    "token": 'printf \'{"ServerURL":"%s","Username":"<token>","Secret":"refresh-me"}\' "$server"',
}


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Registry, Image]]:
    require_tools()
    base = tmp_path_factory.mktemp("helpers")
    with running_registry(base / "registry", user=USER, password=PASSWORD) as registry:
        image = make_image("private\n")
        write_layout(base / "layout", "1", image.manifest, [image])
        registry.push(base / "layout", "1", "team/private")
        yield registry, image


@pytest.fixture
def helper_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory of helper scripts first in PATH; returns the log they write."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "helper.log"
    for name, body in HELPERS.items():
        script = bin_dir / f"docker-credential-{name}"
        script.write_text(f'#!/bin/sh\nserver=$(cat)\necho "$* $server" >> "{log}"\n{body}\n')
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return log


def config_file(tmp_path: Path, doc: dict[str, object]) -> Path:
    path = tmp_path / "docker" / "config.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def resolve(registry: Registry, credentials: Credentials) -> str:
    return RegistryClient(credentials=credentials).resolve(f"{registry.netloc}/team/private:1", AMD64).digest


def test_cred_helpers_and_creds_store_pull_through_a_real_helper(
        private: tuple[Registry, Image], helper_path: Path, tmp_path: Path) -> None:
    registry, image = private
    by_host = Credentials.from_docker_config(config_file(tmp_path, {"credHelpers": {registry.netloc: "good"}}))
    assert resolve(registry, by_host) == image.manifest.digest
    assert helper_path.read_text().splitlines()[0] == f"get {registry.netloc}"  # the host on stdin
    store = Credentials.from_docker_config(config_file(tmp_path, {"credsStore": "good"}))
    assert resolve(registry, store) == image.manifest.digest
    # credHelpers wins over credsStore for its host, and the helper's answer over `auths`
    both = {"credsStore": "wrong", "credHelpers": {registry.netloc: "good"},
            "auths": {registry.netloc: {"username": USER, "password": "stale"}}}
    assert resolve(registry, Credentials.from_docker_config(config_file(tmp_path, both))) == image.manifest.digest


def test_a_helper_without_credentials_leaves_the_pull_anonymous(
        private: tuple[Registry, Image], helper_path: Path, tmp_path: Path) -> None:
    registry, _ = private
    creds = Credentials.from_docker_config(config_file(tmp_path, {"credsStore": "notfound"}))
    assert creds.for_registry(registry.netloc) == []
    with pytest.raises(RegistryError, match=f"{registry.netloc} needs credentials"):
        resolve(registry, creds)


@pytest.mark.parametrize(("helper", "message"), [
    ("missing", r"credential helper docker-credential-missing is not in PATH"),
    ("garbage", r"credential helper docker-credential-garbage get .*: the answer is not the JSON"),
    ("fails", r"credential helper docker-credential-fails get .*: exit status 3: keychain locked"),
])
def test_a_broken_helper_is_an_error_naming_it(private: tuple[Registry, Image], helper_path: Path,
                                               tmp_path: Path, helper: str, message: str) -> None:
    registry, _ = private
    creds = Credentials.from_docker_config(config_file(tmp_path, {"credHelpers": {registry.netloc: helper}}))
    with pytest.raises(ImageError, match=message):
        resolve(registry, creds)


def test_a_hanging_helper_is_killed_at_its_time_bound(private: tuple[Registry, Image], helper_path: Path,
                                                      tmp_path: Path) -> None:
    registry, _ = private
    creds = Credentials.from_docker_config(config_file(tmp_path, {"credsStore": "slow"}), helper_timeout=1)
    started = time.monotonic()
    with pytest.raises(ImageError, match=r"docker-credential-slow get .*: no answer within 1 s"):
        creds.for_registry(registry.netloc)
    assert time.monotonic() - started < 10  # its `sleep 60` child, holding the pipe, went too


def test_token_username_is_an_identity_token_and_docker_hub_is_asked_by_its_login_key(
        helper_path: Path, tmp_path: Path) -> None:
    creds = Credentials.from_docker_config(config_file(tmp_path, {"credsStore": "token"}))
    assert creds.for_registry("registry-1.docker.io") == [Credential("", "", identity_token="refresh-me")]
    assert helper_path.read_text().splitlines() == ["get https://index.docker.io/v1/"]


def test_pull_secrets_come_first_and_name_no_helper(helper_path: Path, tmp_path: Path) -> None:
    secret = {".dockerconfigjson": json.dumps({"auths": {"r.example": {"username": "pod", "password": "pw"}},
                                               "credsStore": "good"}).encode()}
    runtime = Credentials.from_docker_config(config_file(tmp_path, {"credsStore": "good"}))
    found = Credentials.from_pull_secret(secret, "secret/default/s").then(runtime).for_registry("r.example")
    assert found == [Credential("pod", "pw"), Credential(USER, PASSWORD)]
    assert len(helper_path.read_text().splitlines()) == 1  # the runtime's helper only


@pytest.mark.root
def test_image_pull_cli_uses_the_runtime_files_helper(private: tuple[Registry, Image], helper_path: Path,
                                                      tmp_path: Path, sbx: Sandbox,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    registry, image = private
    images = sbx.root / "lib" / "images"
    images.unlink()  # the test's own store, not the session's shared one
    images.mkdir()
    config = config_file(tmp_path, {"credHelpers": {registry.netloc: "good"}})
    monkeypatch.setenv("DOCKER_CONFIG", str(config.parent))
    result = sbx.run("image", "pull", f"{registry.netloc}/team/private:1", timeout=60)
    assert result.returncode == 0, result.stderr
    monkeypatch.setenv("DOCKER_CONFIG", str(config_file(tmp_path / "docker", {"credsStore": "fails"}).parent))
    sbx.run("image", "rm", f"{registry.netloc}/team/private:1", check=True)
    result = sbx.run("image", "pull", f"{registry.netloc}/team/private:1", timeout=60)
    assert result.returncode != 0
    assert "credential helper docker-credential-fails get" in result.stderr, result.stderr
    assert image.manifest.digest  # pulled the first time only
