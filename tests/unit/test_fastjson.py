"""sandbox.fastjson (json's C accelerator without `import json`) against json itself."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from sandbox import fastjson

VALUES = hs.recursive(
    hs.none() | hs.booleans() | hs.integers() | hs.floats() | hs.text(),
    lambda inner: hs.lists(inner, max_size=4) | hs.dictionaries(hs.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None)
@given(VALUES)
def test_dumps_writes_what_json_writes(value: object) -> None:
    assert fastjson.dumps(value) == json.dumps(value, separators=(",", ":"))


@settings(max_examples=500, deadline=None)
@given(VALUES)
def test_loads_reads_what_json_reads(value: object) -> None:
    if "NaN" in json.dumps(value):
        return  # NaN != NaN: the equality below cannot hold, whoever reads it
    for text in (json.dumps(value), json.dumps(value, indent=2), f"  {json.dumps(value)}\n"):
        assert fastjson.loads(text.encode()) == json.loads(text)


def test_other_types_go_through_json() -> None:
    assert fastjson.dumps({"a": 1.5, "b": (1, 2)}) == json.dumps({"a": 1.5, "b": (1, 2)}, separators=(",", ":"))
    assert fastjson.dumps([float("nan"), float("inf"), -float("inf"), -0.0, 1e300]) == "[NaN,Infinity,-Infinity,-0.0,1e+300]"
    with pytest.raises(TypeError):
        fastjson.dumps({"a": object()})


@pytest.mark.parametrize("text", [b"", b"{", b"{} x", b"[1,]", b"nul", b"{'a': 1}", b"\xff"])
def test_bad_json_is_a_value_error(text: bytes) -> None:
    with pytest.raises(ValueError):
        json.loads(text)
    with pytest.raises(ValueError):
        fastjson.loads(text)


def test_what_json_converts_or_refuses_is_converted_or_refused_alike() -> None:
    odd_keys = {1: "int", 2.5: "float", False: "bool", None: "none", "t": (1, [2, (3,)])}
    assert fastjson.dumps(odd_keys) == json.dumps(odd_keys, separators=(",", ":"))
    circular: list[object] = []
    circular.append(circular)
    with pytest.raises(ValueError):
        json.dumps(circular)
    with pytest.raises(ValueError):
        fastjson.dumps(circular)
    with pytest.raises(TypeError):
        fastjson.dumps({("tuple", "key"): 1})  # json refuses a tuple as a key
