"""JSON manifests are decoded as JSON, as kubectl decodes them (sandbox/spec/jsonload.py): numbers
and escapes YAML 1.1 reads differently, the same bounds as YAML, and YAML that only starts like
JSON still read as YAML."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from sandbox.errors import SpecError
from sandbox.spec.load import MAX_DEPTH, MAX_NODES, load_manifests_text, load_pod_text

POD: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "j", "annotations": {"note": "x"}},
                       "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def _text(**replace: str) -> str:
    """POD as JSON, with the JSON text of a placeholder value replaced by raw text."""
    doc = json.loads(json.dumps(POD))
    if "port" in replace:
        doc["spec"]["containers"][0]["ports"] = [{"containerPort": "@port@"}]
    if "note" in replace:
        doc["metadata"]["annotations"]["note"] = "@note@"
    text = json.dumps(doc)
    for key, raw in replace.items():
        text = text.replace(f'"@{key}@"', raw)
    return text


def _errors(text: str) -> list[str]:
    start = time.perf_counter()
    with pytest.raises(SpecError) as info:
        load_manifests_text(text)
    assert time.perf_counter() - start < 2.0
    return [str(e) for e in info.value.errors]


def test_an_exponent_is_a_number_as_kubectl_reads_it() -> None:
    # PyYAML's YAML 1.1 reads `1e3` as a string (no dot), kubectl's JSON decoder as 1000
    pod = load_pod_text(_text(port="1e3"))
    assert pod.spec.containers[0].ports[0].container_port == 1000


def test_surrogate_pair_escapes_are_one_character() -> None:
    # json.dumps writes an emoji as a surrogate pair; libyaml refuses that escape
    text = json.dumps(POD).replace('"x"', json.dumps("\U0001f600 ok"))
    assert "\\ud83d\\ude00" in text
    assert load_pod_text(text).metadata.annotations["note"] == "\U0001f600 ok"


def test_a_lone_surrogate_becomes_the_replacement_character() -> None:
    pod = load_pod_text(_text(note='"a\\ud800b"'))
    assert pod.metadata.annotations["note"] == "a\ufffdb"
    pod.metadata.annotations["note"].encode("utf-8")  # storable: state.json is UTF-8


def test_a_repeated_key_is_refused_at_its_path() -> None:
    text = _text().replace('"image": "busybox"', '"image": "busybox", "image": "nginx"')
    assert _errors(text) == ['spec.containers[0].image: Duplicate value: "image": object key repeated']


def test_keys_that_become_one_are_a_repeated_key() -> None:
    text = _text().replace('{"note": "x"}', '{"\\ud800": "1", "\\udc00": "2"}')
    (error,) = _errors(text)
    assert error.startswith("metadata.annotations.\ufffd: Duplicate value")


@pytest.mark.parametrize("raw", [str(2**64), str(-(2**63) - 1), "9" * 30, "9" * 5000])
def test_integers_beyond_64_bits_are_refused(raw: str) -> None:
    (error,) = _errors(_text(port=raw))
    assert error.endswith("integer out of range: numbers must fit in 64 bits"), error
    if len(raw) < 4300:  # past Python's int-to-string limit the decoder stops before any path
        assert error.startswith("spec.containers[0].ports[0].containerPort: Invalid value: ")


def test_an_infinite_number_is_refused_at_its_path() -> None:
    (error,) = _errors(_text(port="1e999"))
    assert error.startswith("spec.containers[0].ports[0].containerPort: Invalid value: ")
    assert "out of range" in error


def test_nesting_is_bounded_with_a_path() -> None:
    deep = '{"a": ' * (MAX_DEPTH + 5) + "1" + "}" * (MAX_DEPTH + 5)
    (error,) = _errors(_text(note=deep))
    assert error.startswith("metadata.annotations.note.a.a.") and f"nested more than {MAX_DEPTH}" in error
    (error,) = _errors('{"a": ' + "[" * 5000 + "]" * 5000 + "}")  # the C scanner's own limit first
    assert f"nested more than {MAX_DEPTH}" in error


def test_nodes_are_bounded_quickly() -> None:
    (error,) = _errors('{"a": [' + ",".join(["0"] * (MAX_NODES + 1)) + "]}")
    assert error == f"<input>: Too many: more than {MAX_NODES} JSON nodes"
    (error,) = _errors('{"a": [' + ",".join(["{}"] * (MAX_NODES + 1)) + "]}")
    assert error == f"<input>: Too many: more than {MAX_NODES} JSON nodes"


def test_a_stream_of_objects_is_many_documents() -> None:
    second = json.dumps(POD).replace('"j"', '"k"')
    for text in (json.dumps(POD) + second, " \n" + json.dumps(POD) + "\n\n" + second + "\n"):
        assert [p.metadata.name for p in load_manifests_text(text).pods] == ["j", "k"]


def test_a_syntax_error_after_the_first_object_names_its_line() -> None:
    text = json.dumps(POD) + "\n" + json.dumps(POD).replace('"kind": "Pod",', '"kind": "Pod",,')
    (error,) = _errors(text)
    assert error.startswith("line 2, column ") and ": Invalid value: JSON syntax error: " in error
    (error,) = _errors(json.dumps(POD) + "\n" + _text(port="NaN"))
    assert error.startswith("<document 2>: Invalid value: JSON syntax error: NaN ")


def test_yaml_that_starts_like_json_is_read_as_yaml() -> None:
    # kubectl falls back to YAML when the first object is no JSON (Kubernetes 1.33+)
    flow = "{apiVersion: v1, kind: Pod, metadata: {name: y}, spec: {containers: [{name: c, image: busybox}]}}"
    assert load_pod_text(flow).metadata.name == "y"
    assert load_pod_text(flow + "\n---\n").metadata.name == "y"
    # NaN is no JSON: as YAML a plain `NaN` is the string "NaN" (YAML's not-a-number is `.nan`)
    assert load_pod_text(_text(note="NaN")).metadata.annotations["note"] == "NaN"


def test_a_non_object_document_is_refused_by_position() -> None:
    (error,) = _errors(json.dumps(POD) + " 3")
    assert error.startswith("<document 2>") and "must be of type object" in error
