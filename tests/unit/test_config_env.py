"""Env from ConfigMaps and Secrets as the kubelet's makeEnvironmentVariables builds it: envFrom
first (prefix, optional, invalid names skipped with the kubelet's message), then env with
configMapKeyRef/secretKeyRef (optional, missing object or key), `$(VAR)` over both, and the
errors that keep a container in CreateContainerConfigError."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.config.sources import CONFIG_MAP, SECRET, ConfigObject, MissingSourceError, Sources
from sandbox.images.store import Image, ImageConfig
from sandbox.process import launch
from sandbox.spec.load import load_pod_text
from sandbox.spec.model import Pod

OBJECTS = [
    ConfigObject(CONFIG_MAP, "ns", "cm", {"mode": b"fast", "level": b"9", "blob": b"\xff"},
                 binary_keys=frozenset({"blob"})),
    ConfigObject(SECRET, "ns", "sec", {"password": b"hunter2", "raw": b"\xffy"}, type="Opaque"),
    ConfigObject(CONFIG_MAP, "other", "cm", {"mode": b"wrong namespace"}),
]


def pod(container: str) -> Pod:
    text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: ns}\nspec:\n  containers:\n"
    text += "  - name: c\n    image: busybox\n" + "".join(f"    {line}\n" for line in container.strip().splitlines())
    return load_pod_text(text)


def env(container: str, objects: list[ConfigObject] = OBJECTS, skipped: list[str] | None = None) -> dict[str, str]:
    p = pod(container)
    image = Image("busybox", "sha256:" + "0" * 64, (Path("/nonexistent"),), ImageConfig(env=("FROM_IMAGE=1",)))
    entries = launch.container_env(p.spec.containers[0], image, "p", p, Sources(objects), skipped)
    return dict(e.partition("=")[::2] for e in entries)


def test_key_refs_read_the_pods_namespace() -> None:
    got = env("""
env:
- {name: MODE, valueFrom: {configMapKeyRef: {name: cm, key: mode}}}
- {name: PASS, valueFrom: {secretKeyRef: {name: sec, key: password}}}
- {name: BOTH, value: "$(MODE)/$(PASS)"}
""")
    assert (got["MODE"], got["PASS"], got["BOTH"], got["FROM_IMAGE"]) == ("fast", "hunter2", "fast/hunter2", "1")


def test_optional_refs_that_are_missing_are_left_out() -> None:
    got = env("""
env:
- {name: A, valueFrom: {configMapKeyRef: {name: nowhere, key: k, optional: true}}}
- {name: B, valueFrom: {secretKeyRef: {name: sec, key: nokey, optional: true}}}
- {name: C, value: "$(A)"}
envFrom:
- configMapRef: {name: nowhere, optional: true}
""")
    assert "A" not in got and "B" not in got
    assert got["C"] == "$(A)"


@pytest.mark.parametrize(("container", "message"), [
    ("env: [{name: A, valueFrom: {configMapKeyRef: {name: nowhere, key: k}}}]", 'configmap "nowhere" not found'),
    ("env: [{name: A, valueFrom: {secretKeyRef: {name: nowhere, key: k}}}]", 'secret "nowhere" not found'),
    ("env: [{name: A, valueFrom: {configMapKeyRef: {name: cm, key: k}}}]", "couldn't find key k in ConfigMap ns/cm"),
    ("env: [{name: A, valueFrom: {secretKeyRef: {name: sec, key: k}}}]", "couldn't find key k in Secret ns/sec"),
    # the kubelet reads only a ConfigMap's `data`
    ("env: [{name: A, valueFrom: {configMapKeyRef: {name: cm, key: blob}}}]",
     "couldn't find key blob in ConfigMap ns/cm"),
    ("envFrom: [{secretRef: {name: nowhere}}]", 'secret "nowhere" not found'),
])
def test_what_is_missing_and_not_optional_is_a_create_container_config_error(container: str, message: str) -> None:
    with pytest.raises(MissingSourceError) as e:
        env(container)
    assert (e.value.reason, str(e.value)) == ("CreateContainerConfigError", message)


def test_env_from_with_prefix_then_env_overrides() -> None:
    got = env("""
envFrom:
- {prefix: CFG_, configMapRef: {name: cm}}
- secretRef: {name: sec}
env:
- {name: CFG_mode, value: "overridden, was $(CFG_mode)"}
""")
    assert got["CFG_level"] == "9"
    assert "CFG_blob" not in got  # binaryData is not env
    assert got["CFG_mode"] == "overridden, was fast"
    assert got["password"] == "hunter2"


def test_invalid_names_are_skipped_with_the_kubelets_message() -> None:
    # Unreachable through validated objects (every config key is a relaxed env name); a store file
    # edited by hand is the case this guards.
    objects = [ConfigObject(CONFIG_MAP, "ns", "cm", {"good": b"1", "bad=key": b"2", "tab\tkey": b"3"})]
    skipped: list[str] = []
    got = env("envFrom: [{configMapRef: {name: cm}}]", objects, skipped)
    assert got["good"] == "1" and "bad=key" not in got
    assert skipped == ["Keys [bad=key, tab\tkey] from the EnvFrom configMap ns/cm were skipped since they are "
                       "considered invalid environment variable names."]


def test_bytes_that_are_not_utf8_reach_the_process_unchanged() -> None:
    import os

    got = env("env: [{name: RAW, valueFrom: {secretKeyRef: {name: sec, key: raw}}}]")
    assert os.fsencode(got["RAW"]) == b"\xffy"


def test_without_sources_references_are_left_out() -> None:
    p = pod("env: [{name: A, valueFrom: {configMapKeyRef: {name: cm, key: mode}}}]\n"
            "envFrom: [{configMapRef: {name: cm}}]")
    image = Image("busybox", "sha256:" + "0" * 64, (Path("/nonexistent"),), ImageConfig())
    entries = launch.container_env(p.spec.containers[0], image, "p", p)
    assert not any(e.startswith(("A=", "mode=")) for e in entries)
