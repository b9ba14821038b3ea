"""Hostile and broken input: every case ends in a SpecError with a field path, quickly, never a traceback.

Tests assert behaviour, never a third-party library's wording: a refused input is refused with the
project's own error naming the line or the field path, whichever layer (libyaml or the pre-scan)
noticed it first.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.errors import SpecError
from sandbox.spec.load import MAX_BYTES, load_manifests_text, load_pod_file, load_pod_text


class _PlainLoader(yaml.SafeLoader):
    """Loads the test manifests as the runtime does: `=` and dates stay strings."""

    yaml_implicit_resolvers: ClassVar[dict[str, list[tuple[str, Any]]]] = {
        first: [(tag, rx) for tag, rx in resolvers if not tag.endswith((":value", ":timestamp"))]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


def _plain_yaml(path: Path) -> bool:
    try:
        yaml.load(path.read_text(), Loader=_PlainLoader)
    except yaml.YAMLError:
        return False  # go-yaml's `\'` escape (quote-escape.yaml): PyYAML's own reader refuses it
    return True


VALID = [p for p in sorted((Path(__file__).parents[2] / "data" / "manifests" / "valid").glob("*.yaml"))
         if _plain_yaml(p)]


def _refused(text: str | bytes, within: float = 2.0) -> list[str]:
    start = time.perf_counter()
    with pytest.raises(SpecError) as info:
        load_pod_text(text)
    assert time.perf_counter() - start < within
    errors = [str(e) for e in info.value.errors]
    _assert_well_formed(errors)
    return errors


def _assert_well_formed(errors: list[str]) -> None:
    assert errors
    for e in errors:
        assert "\n" not in e
        assert "Internal error" not in e, e
        path, sep, detail = e.partition(": ")
        assert path and sep and detail, e


def _located(error: str) -> bool:
    """The error begins with where: `line N, column M` or a field path (not the whole input)."""
    where = error.partition(": ")[0]
    return re.fullmatch(r"line \d+, column \d+", where) is not None or where not in ("", "<input>", "<file>")


def test_billion_laughs_is_refused_before_expansion() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
    (error,) = _refused("\n".join(lines))
    assert "too many YAML aliases" in error


def test_recursive_alias_is_refused() -> None:
    (error,) = _refused("a: &x [*x]\n")
    assert "recursive alias" in error


def test_a_few_aliases_are_fine() -> None:
    assert load_pod_text(VALID[0].read_text().replace("busybox", "busybox")).spec.containers


def test_oversized_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with open(big, "wb") as f:
        f.write(b"a: " + b"x" * (50 * 1024 * 1024))
    start = time.perf_counter()
    with pytest.raises(SpecError) as info:
        load_pod_file(str(big))
    assert time.perf_counter() - start < 2.0
    assert f"at most {MAX_BYTES} bytes" in str(info.value)


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, "{a: " * 5_000 + "1" + "}" * 5_000,
                                  "".join("  " * i + "- \n" for i in range(3_000))])
def test_deep_nesting_is_refused(text: str) -> None:
    # libyaml's own limit (1000 levels, met while it reads ahead in a flow collection) or the
    # pre-scan's (64): either may notice first; the error says where either way.
    (error,) = _refused(text)
    assert _located(error), error


def test_pre_scan_nesting_limit_names_the_path() -> None:
    (error,) = _refused("spec:\n" + "".join("  " * i + "- \n" for i in range(1, 100)))
    assert error.startswith("spec[0][0][0]") and "nested more than 64 levels deep (line 65, column " in error


def test_too_many_nodes_and_documents_are_refused() -> None:
    assert "YAML nodes" in _refused("- 1\n" * 600_000, within=5.0)[0]
    assert "YAML documents" in _refused("---\n" * 100_000)[0]


def test_duplicate_keys_are_refused_with_position() -> None:
    (error,) = _refused("apiVersion: v1\nkind: Pod\nkind: Pod\n")
    assert error == 'kind: Duplicate value: "kind": mapping key repeated (line 3, column 1)'


@pytest.mark.parametrize("seed", range(20))
def test_binary_garbage(seed: int) -> None:
    data = bytes((seed * 7919 + i * 104729) % 256 for i in range(4096)) + os.urandom(256)
    _refused(data)


@pytest.mark.parametrize("text", ["\x00", "a: \x07", "\ufeff\ufeff: 1", "%YAML 9.9\n---\na: 1", "!!python/object:os.system {}",
                                  "a: !!binary aGVsbG8=", "a: !!set {x}", "? [a]\n: 1", "- !!timestamp 2001-12-14",
                                  "''", "42", "null", "---\n...\n", "apiVersion: v1\nkind: Pod\nmetadata: []"])
def test_odd_documents(text: str) -> None:
    _refused(text)


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system", "!!python/object/new:os.system",
                                 "!!python/name:os.system", "!!python/object/apply:subprocess.call"])
def test_unsafe_tags_are_never_constructed(tag: str, tmp_path: Path) -> None:
    marker = tmp_path / "constructed"
    (error,) = _refused(f"apiVersion: v1\nkind: Pod\nmetadata: {tag} [touch {marker}]\n")
    assert error.startswith("metadata: Invalid value: YAML tag ") and "(line 3, column 11)" in error
    assert not marker.exists()


@pytest.mark.parametrize("tagged", ["!!binary aGVsbG8=", "!!set {x}", "!!omap [{a: 1}]", "!!timestamp 2001-12-14",
                                    "!custom x", "! x"])
def test_tags_beyond_core_yaml_are_refused_at_their_field(tagged: str) -> None:
    (error,) = _refused(f"apiVersion: v1\nkind: Pod\nmetadata:\n  annotations:\n    a: {tagged}\n")
    assert error.startswith("metadata.annotations.a: Invalid value: YAML tag ") and "(line 5, column 8)" in error


@pytest.mark.parametrize("text", ["a: !!int abc", "a: !!bool maybe", "a: !!float x", "a: 0b_", "a: 0x_",
                                  "a: " + "9" * 5000, "a: -" + "9" * 5000, "a: 0x" + "f" * 5000,
                                  "a: 1" + ":30" * 3000, "a: 18446744073709551616", "a: -9223372036854775809"])
def test_bad_and_huge_number_literals_are_refused_at_their_line(text: str) -> None:
    (error,) = _refused(text)
    assert error.startswith("line 1, column 4: Invalid value: "), error


def test_explicit_core_tags_still_read() -> None:
    pod = load_pod_text("apiVersion: !!str v1\nkind: Pod\nmetadata: !!map {name: !!str p}\nspec:\n"
                        "  terminationGracePeriodSeconds: !!int '5'\n"
                        "  containers: !!seq [{name: c, image: busybox, stdin: !!bool 'true'}]\n")
    assert pod.spec.termination_grace_period_seconds == 5 and pod.spec.containers[0].stdin is True


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path] if path else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*path, i))
    return out


def _replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    doc = json.loads(json.dumps(doc))
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


FULL = yaml.safe_load((Path(__file__).parents[2] / "data" / "manifests" / "valid" / "volumes-and-mounts.yaml").read_text())


@pytest.mark.parametrize("value", ["text", 7, -1, 2.5, True, None, [], {}, ["x"], {"k": "v"}])
def test_wrong_types_at_every_level(value: Any) -> None:
    for path in _paths(FULL):
        try:
            load_pod_text(json.dumps(_replace(FULL, path, value)))
        except SpecError as exc:
            _assert_well_formed([str(e) for e in exc.errors])


# --- property: mutate valid manifests; the result is a Pod or field-path errors, never an exception ----

_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
                     st.text(max_size=20), st.sampled_from(["", "100m", "128Mi", "1e3", "0.5", "Always", "$(X)",
                                                            "a" * 300, "..", "/abs", "TCP"]))
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8),
                                                                                           inner, max_size=3),
                       max_leaves=6)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    doc = yaml.load(draw(st.sampled_from(VALID)).read_text(), Loader=_PlainLoader)
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(doc)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if action == "replace":
            parent[path[-1]] = draw(_values)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=12))] = draw(_values)
        else:
            parent.append(draw(_values))
    if draw(st.booleans()):
        return json.dumps(doc, allow_nan=True)
    return yaml.safe_dump(doc)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_manifests_are_valid_or_field_path_errors(text: str) -> None:
    try:
        load_manifests_text(text)
    except SpecError as exc:
        _assert_well_formed([str(e) for e in exc.errors])
