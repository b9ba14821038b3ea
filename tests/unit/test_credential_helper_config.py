"""credHelpers / credsStore as read from the runtime's config.json (nothing is run here: the
helpers themselves are run against a real registry in tests/integration/test_credential_helpers.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandbox.errors import ImageError
from sandbox.images import credential_helpers
from sandbox.images.auth import Credential, Credentials


def config(tmp_path: Path, doc: dict[str, object]) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(doc))
    return path


def test_cred_helpers_take_their_hosts_out_of_auths(tmp_path: Path) -> None:
    creds = Credentials.from_docker_config(config(tmp_path, {
        "auths": {"a.example": {"username": "u", "password": "p"}, "b.example": {}},
        "credHelpers": {"https://B.example/": "pass"}}))
    assert creds.helpers == (("b.example", "pass"),)
    assert creds.store == ""
    assert creds.entries == (("a.example", Credential("u", "p")),)
    assert creds.for_registry("a.example") == [Credential("u", "p")]  # no helper: nothing run


def test_a_creds_store_replaces_every_auths_entry(tmp_path: Path) -> None:
    creds = Credentials.from_docker_config(config(tmp_path, {
        "auths": {"a.example": {"username": "u", "password": "p"}}, "credsStore": "desktop"}))
    assert (creds.entries, creds.store) == ((), "desktop")


def test_a_pull_secret_never_names_a_helper() -> None:
    secret = Credentials.from_pull_secret(
        {".dockerconfigjson": json.dumps({"auths": {}, "credsStore": "evil", "credHelpers": {"x": "evil"}}).encode()},
        "secret/default/s")
    assert (secret.helpers, secret.store) == ((), "")


@pytest.mark.parametrize("doc", [{"credsStore": 1}, {"credHelpers": []}, {"credHelpers": {"h": 2}}])
def test_malformed_helper_settings_are_refused(tmp_path: Path, doc: dict[str, object]) -> None:
    with pytest.raises(ImageError, match="credsStore must be a string and credHelpers an object of strings"):
        Credentials.from_docker_config(config(tmp_path, doc))


@pytest.mark.parametrize("name", ["", "../bin/sh", ".", "a/b"])
def test_a_helper_name_is_a_plain_name(name: str) -> None:
    with pytest.raises(ImageError, match="is not a plain name"):
        credential_helpers.program(name)


def test_answers() -> None:
    assert credential_helpers.parse_answer(b'{"ServerURL":"h","Username":"u","Secret":"s"}', "x", "h") == \
        Credential("u", "s")
    assert credential_helpers.parse_answer(b'{"Username":"<token>","Secret":"t"}', "x", "h") == \
        Credential("", "", identity_token="t")
    with pytest.raises(ImageError) as caught:
        credential_helpers.parse_answer(b'{"Username":"u","Secret":5}', "docker-credential-x", "h")
    assert "docker-credential-x" in str(caught.value) and "5" not in str(caught.value).replace("x get h", "")
    assert credential_helpers.server_address("docker.io") == "https://index.docker.io/v1/"
    assert credential_helpers.server_address("127.0.0.1:5000") == "127.0.0.1:5000"
