"""The ConfigMap/Secret store: file layout and modes, atomic replacement, versions, the API
server's immutability rules, and the conversions from the spec model."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from sandbox.config.sources import CONFIG_MAP, SECRET, ConfigObject, Sources
from sandbox.config.store import AlreadyExistsError, ConfigStore, ImmutableError, from_spec
from sandbox.errors import StateError
from sandbox.spec.load import load_manifests_text


def cm(name: str = "app", data: dict[str, bytes] | None = None, **kw: object) -> ConfigObject:
    return ConfigObject(CONFIG_MAP, "default", name, data if data is not None else {"k": b"v"}, **kw)  # type: ignore[arg-type]


def test_files_and_directories_are_private_and_written_whole(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path / "lib" / "config")
    old_umask = os.umask(0)  # the modes must not depend on the caller's umask
    try:
        store.put(cm())
        store.put(ConfigObject(SECRET, "default", "s", {"p": b"x"}, type="Opaque"))
    finally:
        os.umask(old_umask)
    root = tmp_path / "lib" / "config"
    paths = [root, *root.rglob("*")]
    assert {p.relative_to(root).as_posix() for p in paths} == {
        ".", "default", "default/configmaps", "default/secrets", "default/configmaps/app.json",
        "default/secrets/s.json"}
    for path in paths:
        mode = stat.S_IMODE(os.lstat(path).st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), path


def test_a_replacement_is_a_rename_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path)
    store.put(cm())
    path = tmp_path / "default" / "configmaps" / "app.json"
    before = os.stat(path).st_ino
    store.put(cm(data={"k": b"w"}))
    assert os.stat(path).st_ino != before  # a new file renamed over the old one, never rewritten
    assert sorted(os.listdir(path.parent)) == ["app.json"]
    found = store.get(CONFIG_MAP, "default", "app")
    assert found is not None and found.data == {"k": b"w"}


def test_versions_grow_with_every_change_and_survive_a_delete(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path)
    first, action = store.put(cm(), now=1000.0)
    assert action == "created" and first.created == 1000.0
    same, action = store.put(cm(), now=2000.0)
    assert action == "unchanged" and same.version == first.version
    second, action = store.put(cm(data={"k": b"2"}), now=1000.0)  # even with a clock that went back
    assert action == "configured" and second.version > first.version and second.created == 1000.0
    assert store.delete(CONFIG_MAP, "default", "app")
    assert not store.delete(CONFIG_MAP, "default", "app")
    third, action = store.put(cm(), now=3000.0)
    assert action == "created" and third.version > second.version


def test_immutable_objects_refuse_changes_as_the_api_server_does(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path)
    store.put(cm(immutable=True))
    with pytest.raises(ImmutableError) as e:
        store.put(cm(data={"k": b"changed"}, immutable=True))
    assert str(e.value) == 'ConfigMap "app" is invalid: data: Forbidden: field is immutable when `immutable` is set'
    with pytest.raises(ImmutableError, match=r"\[immutable: Forbidden: .*, data: Forbidden: "):
        store.put(cm(data={"k": b"changed"}))
    store.put(cm(immutable=True, labels={"a": "b"}))  # metadata may change
    assert store.delete(CONFIG_MAP, "default", "app")  # and it may be deleted


def test_a_secret_type_never_changes(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path)
    store.put(ConfigObject(SECRET, "default", "s", {"p": b"x"}, type="Opaque"))
    with pytest.raises(ImmutableError, match='type: Invalid value: "kubernetes.io/basic-auth": field is immutable'):
        store.put(ConfigObject(SECRET, "default", "s", {"p": b"x"}, type="kubernetes.io/basic-auth"))


def test_create_never_overwrites(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path)
    store.put(cm(), replace_existing=False)
    with pytest.raises(AlreadyExistsError, match='configmaps "app" already exists'):
        store.put(cm(data={}), replace_existing=False)


def test_names_that_are_not_api_names_never_become_paths(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path)
    for name in ("../x", "a/b", ".hidden", "UPPER"):
        with pytest.raises(StateError):
            store.get(CONFIG_MAP, "default", name)
    with pytest.raises(StateError):
        store.get(CONFIG_MAP, "../etc", "x")


def test_list_by_namespace_and_everywhere(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path)
    store.put(cm("b"))
    store.put(cm("a"))
    store.put(ConfigObject(CONFIG_MAP, "other", "c", {}))
    assert [o.name for o in store.list(CONFIG_MAP, "default")] == ["a", "b"]
    assert [(o.namespace, o.name) for o in store.list(CONFIG_MAP)] == [("default", "a"), ("default", "b"),
                                                                     ("other", "c")]
    assert store.list(SECRET) == []


def test_conversions_from_the_spec_model() -> None:
    text = """
apiVersion: v1
kind: ConfigMap
metadata: {name: cm, labels: {app: x}}
data: {text: hello}
binaryData: {blob: AAE=}
immutable: true
---
apiVersion: v1
kind: Secret
metadata: {name: s, namespace: prod}
data: {a: YQ==}
stringData: {b: bee}
"""
    manifests = load_manifests_text(text)
    config = from_spec(manifests.config_maps[0], "ns1")
    assert (config.namespace, config.data, config.binary_keys, config.immutable, dict(config.labels)) == (
        "ns1", {"text": b"hello", "blob": b"\0\1"}, frozenset({"blob"}), True, {"app": "x"})
    secret = from_spec(manifests.secrets[0], "ns1")
    assert (secret.namespace, dict(secret.data), secret.type) == ("prod", {"a": b"a", "b": b"bee"}, "Opaque")


def test_same_file_objects_come_before_the_store(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path)
    store.put(cm(data={"k": b"store"}))
    store.put(cm("only-stored"))
    sources = Sources([cm(data={"k": b"file"})], store)
    found = sources.get(CONFIG_MAP, "default", "app")
    assert found is not None and found.data == {"k": b"file"}
    assert sources.get(CONFIG_MAP, "default", "only-stored") is not None
    assert sources.get(CONFIG_MAP, "other", "app") is None
