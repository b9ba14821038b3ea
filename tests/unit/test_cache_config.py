"""The parsed-manifest cache carries a file's ConfigMaps and Secrets with its Pod: a hit gives
exactly what a fresh parse gives, and `accept_pod_file` hands them on in the pod's namespace."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.spec import cache
from sandbox.spec.accept import accept_pod_file

TEXT = """
apiVersion: v1
kind: ConfigMap
metadata: {name: cm, labels: {app: x}}
data: {text: "hello\\nworld"}
binaryData: {blob: AAH/}
immutable: true
---
apiVersion: v1
kind: Secret
metadata: {name: s, namespace: elsewhere}
type: kubernetes.io/basic-auth
data: {username: YQ==}
stringData: {password: pw}
---
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers: [{name: c, image: busybox}]
"""


def test_a_cache_hit_gives_the_same_objects_as_a_parse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(TEXT)
    first = cache.load_pod_and_config_cached(str(manifest), tmp_path / "cache")
    entries = list((tmp_path / "cache").glob("*.json"))
    assert len(entries) == 1
    parses: list[str] = []
    original = cache._load_uncached

    def counting(raw: bytes, source: str) -> object:
        parses.append(source)
        return original(raw, source)

    monkeypatch.setattr(cache, "_load_uncached", counting)
    second = cache.load_pod_and_config_cached(str(manifest), tmp_path / "cache")
    assert parses == []  # answered from the entry
    assert second == first
    config_map, secret = second[1]
    assert (dict(config_map.data), dict(config_map.binary_data), config_map.immutable) == (
        {"text": "hello\nworld"}, {"blob": b"\0\1\xff"}, True)
    assert (dict(secret.data), secret.type) == ({"username": b"a", "password": b"pw"}, "kubernetes.io/basic-auth")


def test_accepted_objects_take_the_pods_namespace_unless_they_name_one(tmp_path: Path) -> None:
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(TEXT)
    accepted = accept_pod_file(str(manifest), tmp_path / "cache", "team")
    assert accepted.pod.metadata.namespace == "team"
    assert [(o.kind, o.metadata.namespace) for o in accepted.config] == [("ConfigMap", "team"),
                                                                        ("Secret", "elsewhere")]
