"""Quantity arithmetic, and multi-document files with ConfigMaps and Secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.errors import SpecError
from sandbox.spec.load import load_manifests, load_manifests_text, load_pod_file, load_pod_text
from sandbox.spec.quantity import parse_quantity, quantity_from_number


@pytest.mark.parametrize(
    ("text", "milli"),
    [
        ("100m", 100), ("0.5", 500), ("1", 1000), ("1e3", 1_000_000), ("1E-3", 1), ("0.1m", 1),
        ("128Mi", 128 * 2**20 * 1000), ("1Gi", 2**30 * 1000), ("1G", 10**9 * 1000), ("2k", 2_000_000),
        ("500u", 1), ("-1", -1000), ("+2", 2000), (".5", 500), ("5.", 5000), ("1Ei", 2**60 * 1000),
    ],
)
def test_parse_quantity(text: str, milli: int) -> None:
    q = parse_quantity(text)
    assert q is not None and q.milli == milli and q.text == text


@pytest.mark.parametrize("text", ["128mi", "1gb", "1 Gi", "", "m", "1.2.3", "Gi", "1e", "1e2147483648", "0x10", "1Kb",
                                  "--1", "1e" + "9" * 20])
def test_invalid_quantities(text: str) -> None:
    assert parse_quantity(text) is None


MAX_MILLI = (2**63 - 1) * 1000


@pytest.mark.parametrize(("text", "milli"), [
    ("1e40", MAX_MILLI), ("1e999", MAX_MILLI), ("9Ei", MAX_MILLI), ("-1e40", -MAX_MILLI),
    ("9223372036854775807", MAX_MILLI), ("9223372036854775808", MAX_MILLI), ("7Ei", 7 * 2**60 * 1000), ("8Ei", MAX_MILLI),
    ("1e-40", 1), ("1e-2147483648", 1), ("0e999", 0), ("0.0e-999", 0), ("1e2147483647", MAX_MILLI),
])
def test_quantities_saturate_as_the_api_server_caps_them(text: str, milli: int) -> None:
    # quantity.go: a magnitude over 2^63-1 base units is capped, a non-zero one rounds up
    q = parse_quantity(text)
    assert q is not None and q.milli == milli


def test_quantity_value_rounds_up() -> None:
    q = parse_quantity("100m")
    assert q is not None and q.value == 1
    assert quantity_from_number(0.5) == parse_quantity("0.5")
    assert quantity_from_number(1e-05) is not None


MULTI = """
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {key.name: value}
binaryData: {blob: aGVsbG8=}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
data: {password: czNjcjN0}
stringData: {user: admin}
---
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers: [{name: app, image: busybox}]
"""


def test_multi_document_file(tmp_path: Path) -> None:
    path = tmp_path / "all.yaml"
    path.write_text(MULTI)
    m = load_manifests(str(path))
    assert [p.metadata.name for p in m.pods] == ["web"]
    (cm,) = m.config_maps
    assert dict(cm.data) == {"key.name": "value"} and dict(cm.binary_data) == {"blob": b"hello"}
    (secret,) = m.secrets
    assert dict(secret.data) == {"password": b"s3cr3t", "user": b"admin"} and secret.type == "Opaque"
    assert load_pod_file(str(path)).metadata.name == "web"


def test_other_kinds_are_refused_not_skipped() -> None:
    """A file that also holds a ResourceClaim (or a Deployment...) is refused, the kind named: running
    its Pod with the rest ignored would not be what the file describes."""
    claim = "---\napiVersion: resource.k8s.io/v1\nkind: ResourceClaim\nmetadata: {name: claim}\n"
    with pytest.raises(SpecError) as info:
        load_manifests_text(MULTI + claim, "all.yaml")
    assert [str(e) for e in info.value.errors] == [
        '<document 4> kind: Invalid value: "ResourceClaim": sandbox runs Pods; supported kinds: Pod, ConfigMap, '
        "Secret, List"]
    with pytest.raises(SpecError) as info:
        load_manifests_text("apiVersion: v1\nkind: List\nitems:\n- {apiVersion: apps/v1, kind: Deployment}\n")
    assert str(info.value.errors[0]).startswith('items[0].kind: Invalid value: "Deployment": sandbox runs Pods')


@pytest.mark.parametrize("text", ["", "---\n", "---\n---\n...\n", "# only a comment\n", "\n\n  \n",
                                  "apiVersion: v1\nkind: List\nitems: []\n"])
def test_input_without_objects_is_refused(text: str) -> None:
    with pytest.raises(SpecError) as info:
        load_manifests_text(text)
    (error,) = info.value.errors
    assert str(error).startswith("kind: Required value: the input holds ")
    assert str(error).endswith("supported kinds: Pod, ConfigMap, Secret, List")


def test_config_maps_alone_are_no_pod() -> None:
    with pytest.raises(SpecError) as info:
        load_pod_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
    assert str(info.value.errors[0]) == "kind: Required value: no Pod document (found: ConfigMap/c)"


def test_errors_in_several_documents_are_all_reported() -> None:
    text = MULTI.replace("image: busybox", "image: ''").replace("czNjcjN0", "not-base64!")
    with pytest.raises(SpecError) as info:
        load_manifests_text(text, "all.yaml")
    assert [str(e) for e in info.value.errors] == [
        '<document 2> data[password]: Invalid value: "not-base64!": illegal base64 data',
        "<document 3> spec.containers[0].image: Required value",
    ]
    assert str(info.value).startswith("all.yaml: <document 2> data[password]")
