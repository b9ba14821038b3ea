"""Numbers and strings at the extremes, in every kind of field the schema has (string, integer,
boolean, int-or-string, quantity, free JSON, list, map, object), written as YAML and as JSON: the
answer is a Pod or one-line errors with a place (field path or line), quickly; never an internal
error. What is accepted holds no NUL character, no number beyond 64 bits and no infinity or NaN."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.errors import SpecError
from sandbox.spec.convert import child
from sandbox.spec.load import load_pod_text, pod_to_dict
from sandbox.spec.schema import TYPES

BASE: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
PLACEHOLDER = "@@VALUE@@"

# Raw YAML text of each value (it is pasted into the document, so `.inf` stays a YAML float).
HUGE = ["9" * 5000, "-" + "9" * 5000, "0x" + "f" * 5000, "0b" + "1" * 5000, "1" + ":30" * 3000,
        str(2**64), "-" + str(2**63 + 1), "!!int '" + "9" * 5000 + "'"]
INTS = [str(2**63), str(2**63 - 1), str(-(2**63)), "-1", "0", "1_000", "017", "0o17", "0b_", "0x_",
        "!!int abc", "!!bool maybe", "1e3"]
FLOATS = ["1.0e+400", "-1.0e+400", ".inf", "-.Inf", ".nan", ".NaN", "1.0e+300", "-0.0", "1.5", "0." + "1" * 5000,
          "1" * 5000 + ".5", "1:30.5", "!!float x"]
NON_FINITE = [".inf", "-.Inf", ".nan", ".NaN", "1.0e+400", "-1.0e+400"]
NUL = ['"a\\0b"', '"\\0"', '"\\x00"', '"\\u0000"', '["ok", "\\0"]', '{"k": "\\0"}', '{"\\0": "v"}']
STRINGS = [json.dumps("\u00e9" * 10, ensure_ascii=False), json.dumps("\U0001f600"), '"\\U0001F600"',
           '"\\ud83d\\ude00"', json.dumps("x" * 200_000), '""', "''", '"\\x85\\u2028\\e\\a"', "~", "null", "true",
           "[]", "{}", '"\\\'"', '"../../etc/passwd"', '"/"']
MUST_REFUSE = HUGE + NON_FINITE + NUL + ["0b_", "0x_", "!!int abc", "!!bool maybe", "!!float x"]
EXTREMES = HUGE + INTS + FLOATS + NUL + STRINGS


def _sites() -> list[tuple[tuple[Any, ...], str, str]]:
    """(where in the document, its field path, its kind) for every field of every type reachable
    from Pod, each type walked once; a list's first item and a map's entry are sites of their own."""
    sites: list[tuple[tuple[Any, ...], str, str]] = []
    seen = {"Pod"}

    def walk(type_name: str, at: tuple[Any, ...], path: str) -> None:
        for key, field in TYPES[type_name].fields.items():
            if not at and key in ("apiVersion", "kind"):
                continue
            kind, here, where = field.kind, (*at, key), child(path, key)
            sites.append((here, where, kind[0]))
            if kind[0] == "list":
                kind, here, where = kind[1], (*here, 0), f"{where}[0]"
                sites.append((here, where, kind[0]))
            elif kind[0] == "map":
                kind, here, where = kind[1], (*here, "k"), f"{where}[k]"
                sites.append((here, where, kind[0]))
            if kind[0] == "obj" and kind[1] not in seen:
                seen.add(kind[1])
                walk(kind[1], here, where)

    walk("Pod", (), "")
    return sites


SITES = _sites()


def _document(at: tuple[Any, ...], raw: str, as_json: bool) -> str:
    doc = json.loads(json.dumps(BASE))
    target: Any = doc
    for key, following in zip(at, (*at[1:], None)):
        fresh: Any = PLACEHOLDER if following is None else [{}] if isinstance(following, int) else {}
        if isinstance(key, int):
            if not (isinstance(target, list) and target):
                raise AssertionError(at)
            if following is None:
                target[0] = fresh
            elif not isinstance(target[0], (dict, list)):
                target[0] = fresh
            target = target[0]
            continue
        if following is None or not isinstance(target.get(key), (dict, list)):
            target[key] = fresh
        elif isinstance(following, int) and not isinstance(target[key], list):
            target[key] = fresh
        target = target[key]
    if as_json:
        return json.dumps(doc).replace(json.dumps(PLACEHOLDER), raw)
    return yaml.safe_dump(doc).replace(f"'{PLACEHOLDER}'", raw)


def _check(text: str, raw: str) -> None:
    start = time.perf_counter()
    try:
        pod = load_pod_text(text)
    except SpecError as exc:
        errors = [str(e) for e in exc.errors]
        assert errors
        for error in errors:
            where, sep, detail = error.partition(": ")
            assert sep and detail and where not in ("", "<input>"), error
            assert "\n" not in error and "Internal error" not in error, error
    else:
        assert raw not in MUST_REFUSE, f"accepted {raw[:40]!r}"
        _assert_clean(pod_to_dict(pod))
    assert time.perf_counter() - start < 2.0


def _assert_clean(value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            assert "\0" not in key
            _assert_clean(item)
    elif isinstance(value, list):
        for item in value:
            _assert_clean(item)
    elif isinstance(value, str):
        assert "\0" not in value
    elif isinstance(value, float):
        assert value - value == 0.0, value
    elif isinstance(value, int) and not isinstance(value, bool):
        assert -(2**63) <= value < 2**64, value


def _sample_sites() -> list[tuple[tuple[Any, ...], str, str]]:
    """Three sites of each kind (first, middle, last in the walk): every kind, every extreme."""
    by_kind: dict[str, list[tuple[tuple[Any, ...], str, str]]] = {}
    for site in SITES:
        by_kind.setdefault(site[2], []).append(site)
    return [s for group in by_kind.values() for s in {group[0][1]: group[0], group[len(group) // 2][1]:
                                                      group[len(group) // 2], group[-1][1]: group[-1]}.values()]


def test_the_walk_covers_every_kind() -> None:
    assert {kind for _, _, kind in SITES} == {"str", "int", "bool", "intstr", "qty", "any", "list", "map", "obj"}
    assert len(SITES) > 400


@pytest.mark.parametrize("site", _sample_sites(), ids=lambda s: f"{s[2]}:{s[1]}")
def test_every_extreme_in_every_kind(site: tuple[tuple[Any, ...], str, str]) -> None:
    at, _, _ = site
    for n, raw in enumerate(EXTREMES):
        _check(_document(at, raw, as_json=n % 2 == 0), raw)


def test_refusals_name_the_field_or_the_line() -> None:
    at = ("spec", "terminationGracePeriodSeconds")
    (error,) = _errors(_document(at, "9" * 5000, as_json=False))
    assert error.startswith("line 9, column ") and "numbers must fit in 64 bits" in error
    (error,) = _errors(_document(at, ".inf", as_json=True))
    assert error.startswith("spec.terminationGracePeriodSeconds: Invalid value: .inf: must be a finite number")
    (error,) = _errors(_document(at, "1.0e+300", as_json=True))
    assert error == "spec.terminationGracePeriodSeconds: Invalid value: 1e+300: must fit in a 64-bit signed integer"
    (error,) = _errors(_document(("spec", "containers", 0, "args", 0), '"a\\0b"', as_json=True))
    assert error == 'spec.containers[0].args[0]: Invalid value: "a\\u0000b": must not contain a NUL character ' \
                    "(C strings end there)"


def _errors(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_pod_text(text)
    return [str(e) for e in info.value.errors]


# --- property: any site, any generated value -------------------------------------------------------

def _float_text(x: float) -> str:
    if x != x:
        return ".nan"
    if x in (float("inf"), float("-inf")):
        return ".inf" if x > 0 else "-.inf"
    return repr(x)


def _string_text(s: str, ascii_only: bool) -> str:
    try:
        return json.dumps(s, ensure_ascii=ascii_only)
    except UnicodeEncodeError:
        return '"x"'


_raw_values = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.tuples(st.sampled_from(["", "-", "+"]), st.integers(19, 6000)).map(lambda t: t[0] + "9" * t[1]),
    st.floats(allow_nan=True, allow_infinity=True).map(_float_text),
    st.tuples(st.text(max_size=40), st.booleans()).map(lambda t: _string_text(*t)),
    st.tuples(st.text(max_size=10), st.text(max_size=10)).map(lambda t: json.dumps(t[0] + "\0" + t[1])),
    st.integers(1000, 300_000).map(lambda n: json.dumps("y" * n)),
    st.sampled_from(EXTREMES),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.sampled_from(SITES), _raw_values, st.booleans())
def test_any_value_at_any_site(site: tuple[tuple[Any, ...], str, str], raw: str, as_json: bool) -> None:
    _check(_document(site[0], raw, as_json), raw)


@pytest.mark.parametrize(("literal", "port"), [("1e2", 100), ("1E2", 100), ("+1e+2", 100), ("1.5e2", 150),
                                               ("15e1", 150), ("1_0e1", 100), (".5e3", 500)])
def test_an_exponent_is_a_number_as_go_yaml_reads_it(literal: str, port: int) -> None:
    """YAML 1.1 keeps `1e2` a string (no dot, no exponent sign); the API server's go-yaml reads
    100, so `containerPort: 1e2` is port 100 as `kubectl apply` would have it."""
    pod = load_pod_text(_document(("spec", "containers", 0, "ports", 0, "containerPort"), literal, as_json=False))
    assert pod.spec.containers[0].ports[0].container_port == port


@pytest.mark.parametrize("literal", ["1e", "e2", "1e2.5", "1ee2", "1e2x", "1e 2"])
def test_what_go_yaml_keeps_a_string_stays_one(literal: str) -> None:
    pod = load_pod_text(_document(("metadata", "annotations", "a"), literal, as_json=False))
    assert pod.metadata.annotations["a"] == literal
