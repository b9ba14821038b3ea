"""kubectl's label selectors (sandbox/cli/selector.py): apimachinery's labels.Parse grammar,
its errors and Requirement.Matches."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.cli.selector import PodFilter, SelectorError, matches, parse, parse_fields

POD = {"app": "web", "tier": "front", "replicas": "3"}


@pytest.mark.parametrize(("text", "expected"), [
    ("", True),
    ("app=web", True), ("app==web", True), ("app = web", True), ("app=db", False),
    ("app!=db", True), ("app!=web", False), ("missing!=x", True),
    ("app in (web,db)", True), ("app in (db)", False), ("app notin (db, cache)", True),
    ("missing notin (x)", True), ("app notin (web)", False),
    ("app", True), ("missing", False), ("!missing", True), ("!app", False),
    ("app=web,tier=front", True), ("app=web, tier=back", False),
    ("replicas>2", True), ("replicas<3", False), ("replicas<4", True), ("app>1", False), ("missing>1", False),
    ("in=x", False), ("missing=", False), ("app in (,web)", True), ("app in ()", False),
])
def test_matching(text: str, expected: bool) -> None:
    assert matches(parse(text), POD) is expected


def test_an_empty_value_matches_an_empty_label() -> None:
    assert matches(parse("x="), {"x": ""}) and matches(parse("x in ()"), {"x": ""})
    assert matches(parse("x in (a,)"), {"x": ""})


def test_the_requirements_are_parsed_in_order_with_their_values() -> None:
    assert parse("a in (x, y, x), !b,c!=d") == (("a", "in", ("x", "y")), ("b", "!", ()), ("c", "!=", ("d",)))


@pytest.mark.parametrize(("text", "message"), [
    ("app web", "unable to parse requirement: found 'web', expected: in, notin, =, ==, !=, gt, lt"),
    ("app=web,", "found '', expected: identifier after ','"),
    ("=web", "found '=', expected: !, identifier, or 'end of string'"),
    ("app in web", "unable to parse requirement: found 'web' expected: '('"),
    ("app in (a b)", "unable to parse requirement: found 'b', expected: ',' or ')'"),
    ("app foo x", "unable to parse requirement: found 'foo', expected: in, notin, =, ==, !=, gt, lt"),
    ("!app=web", "found '=', expected: ',' or 'end of string'"),
    ("app>x", "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, "
              "the value must be an integer"),
    ("app=web x", "found 'x', expected: ',' or 'end of string'"),
])
def test_errors_name_what_was_found(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse(text)
    assert str(caught.value) == f"couldn't parse the selector string \"{text}\": {message}"


def test_keys_and_values_are_checked_as_labels_are() -> None:
    with pytest.raises(SelectorError, match=r'key: Invalid value: "-bad": name part must consist'):
        parse("-bad=x")
    with pytest.raises(SelectorError, match=r'values\[0\]\[app\]: Invalid value: "a_": a valid label must be'):
        parse("app=a_")
    with pytest.raises(SelectorError, match=r"values\[1\]\[app\]: Invalid value: \"-x\""):
        parse("app in (ok,-x)")
    assert parse("example.com/app=v.1") == (("example.com/app", "=", ("v.1",)),)


STATE = {"name": "web", "namespace": "team", "manifest": {"spec": {"restartPolicy": "Always"}},
         "status": {"phase": "Running", "podIPs": [{"ip": "10.89.0.7"}]}}


@pytest.mark.parametrize(("text", "expected"), [
    ("", True), ("status.phase=Running", True), ("status.phase==Running", True), ("status.phase!=Running", False),
    ("metadata.name=web,metadata.namespace=team", True), ("metadata.namespace=default", False),
    ("spec.restartPolicy=Always", True), ("spec.hostNetwork=false", True), ("spec.hostNetwork=true", False),
    ("status.podIP=10.89.0.7", True), ("spec.nodeName=node-a", True), ("spec.nodeName!=node-a", False),
    ("status.nominatedNodeName=", True), ("spec.schedulerName!=x,status.phase=Running", True),
])
def test_field_selectors(text: str, expected: bool) -> None:
    chosen = PodFilter(None, text)
    chosen.node = "node-a"
    assert chosen.admits(STATE) is expected


def test_labels_and_fields_together() -> None:
    labelled = {**STATE, "manifest": {"metadata": {"labels": {"app": "web"}}, "spec": {}}}
    assert PodFilter("app=web", "status.phase=Running").admits(labelled)
    assert not PodFilter("app=db", "status.phase=Running").admits(labelled)


@pytest.mark.parametrize(("text", "message"), [
    ("status.hostIP=1.2.3.4", 'Unable to find "/v1, Resource=pods" that match label selector "", field selector '
                              '"status.hostIP=1.2.3.4": field label not supported: status.hostIP'),
    ("status.phase", "invalid selector: 'status.phase'; can't understand 'status.phase'"),
    ("metadata.name=a=b", "invalid field selector: 'metadata.name=a=b': unescaped = in value"),
    ("metadata.name=a\\x", "invalid field selector: 'metadata.name=a\\x': invalid escape sequence: \\x"),
])
def test_bad_field_selectors(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as caught:
        PodFilter(None, text)
    assert str(caught.value) == message


def test_escaped_commas_and_equals_in_field_values() -> None:
    assert parse_fields("metadata.name=a\\,b\\=c,status.phase!=Failed") == (
        ("metadata.name", True, "a,b=c"), ("status.phase", False, "Failed"))


def test_gt_and_lt_take_int64s_only_as_strconv_parses_them() -> None:
    big = "9223372036854775808"  # 2^63: a valid label value, no int64
    with pytest.raises(SelectorError, match=r"for 'Gt', 'Lt' operators, the value must be an integer"):
        parse(f"n>{big}")
    assert matches(parse("n>9223372036854775806"), {"n": "9223372036854775807"})
    assert not matches(parse("n>1"), {"n": big})  # a label beyond int64 matches neither
    assert not matches(parse("n<1"), {"n": "-" + big + "1"})
    assert matches(parse("n<0"), {"n": "-9223372036854775808"})


@pytest.mark.parametrize(("flags", "message"), [
    (["--all", "-l", "app=web"], "cannot set --all and --selector at the same time"),
    (["--all", "--field-selector", "status.phase=Failed"], "cannot set --all and --field-selector at the same time"),
])
def test_delete_refuses_all_with_a_selector(tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str],
                                            message: str) -> None:
    from sandbox.cli import main

    assert main(["--root", str(tmp_path), "delete", "pods", *flags]) == 2
    assert f"error: {message}" in capsys.readouterr().err
