"""`-o yaml` as kubectl prints it: go-yaml v2's choice of plain, double-quoted, single-quoted and
literal styles, its folding at column 80, and output that reads back as what was written."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from sandbox.cli.yamlout import to_yaml
from sandbox.spec.load import decode_documents

# fmt: off
STYLES = [
    # plain: reads back as the same string, no indicator in the way
    ("busybox:1.36", "busybox:1.36"), ("-c", "-c"), ("echo hi", "echo hi"), ("x=y z", "x=y z"),
    ("581db037-869e-4e81-90be-ce85e79155ff", "581db037-869e-4e81-90be-ce85e79155ff"),
    ("a#b", "a#b"), ("http://host:80/x", "http://host:80/x"), ("yEs", "yEs"), ("<<", "<<"),
    ("héllo ✓", "héllo ✓"), ("1.2.3", "1.2.3"), ("0x", "0x"), ("-", "'-'"),
    # double quotes: plain text would read back as another type
    ("", '""'), ("true", '"true"'), ("True", '"True"'), ("yes", '"yes"'), ("on", '"on"'), ("N", '"N"'),
    ("~", '"~"'), ("null", '"null"'), ("123", '"123"'), ("-5", '"-5"'), ("1_000", '"1_000"'),
    ("0x1F", '"0x1F"'), ("017", '"017"'), ("0o17", '"0o17"'), ("0b101", '"0b101"'), ("08", '"08"'),
    ("1e3", '"1e3"'), (".5", '".5"'), ("+.inf", '"+.inf"'), (".NaN", '".NaN"'), ("1:30", '"1:30"'),
    ("2026-12-01T11:19:51Z", '"2026-12-01T11:19:51Z"'), ("2024-1-2", '"2024-1-2"'),
    ("2024-01-01 10:00:00", '"2024-01-01 10:00:00"'),
    # ... but not what no layout of go-yaml's timestamps parses
    ("2024-13-01", "2024-13-01"), ("2024-02-30", "2024-02-30"), ("2024-01-01T25:00:00Z", "2024-01-01T25:00:00Z"),
    # single quotes: an indicator forbids plain text
    ("a: b", "'a: b'"), ("*", "'*'"), ("#x", "'#x'"), ("a #b", "'a #b'"), ("it's: x", "'it''s: x'"),
    (" lead", "' lead'"), ("trail ", "'trail '"), ("---", "'---'"), ("[x]", "'[x]'"), ("@x", "'@x'"),
    ("? x", "'? x'"), ("- x", "'- x'"),
    # double quotes and escapes: what neither plain nor single quotes can hold
    ("a\tb", '"a\\tb"'), ("a😀", '"a\\U0001F600"'), ("bell\x07", '"bell\\a"'), ("nul\x00", '"nul\\0"'),
    ("\x85", '"\\N"'), ("a\u2028b", '"a\\Lb"'), ("\ufeffx", '"\\uFEFFx"'), ("a\rb", '"a\\rb"'),
]
# fmt: on


@pytest.mark.parametrize("text, want", STYLES, ids=[repr(t) for t, _ in STYLES])
def test_string_style(text: str, want: str) -> None:
    assert to_yaml({"k": text}) == f"k: {want}\n"


def test_keys_use_the_same_styles_and_never_fold() -> None:
    assert to_yaml({"yes": 1, "a: b": 2, "": 3, "n": 4}) == "\"\": 3\n'a: b': 2\n\"n\": 4\n\"yes\": 1\n"


def test_multi_line_text_is_a_literal_block_with_its_chomping() -> None:
    doc = {"a": "x\ny", "b": "x\ny\n", "c": "x\n\n", "d": " x\ny", "e": "x \ny"}
    assert to_yaml({"m": doc}) == (
        "m:\n  a: |-\n    x\n    y\n  b: |\n    x\n    y\n  c: |+\n    x\n\n"
        "  d: |2-\n     x\n    y\n"
        '  e: "x \\ny"\n')  # a space before a break: no block can keep it


def test_long_text_folds_past_column_80_two_columns_deeper() -> None:
    message = ("0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: "
               "3 No preemption victims found for incoming pod.")
    text = to_yaml({"status": {"conditions": [{"message": message, "type": "PodScheduled"}]}})
    assert text == ("status:\n  conditions:\n"
                    "  - message: '0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are\n"
                    "      available: 3 No preemption victims found for incoming pod.'\n"
                    "    type: PodScheduled\n")
    plain = "word " * 30 + "end"
    lines = to_yaml({"k": plain}).splitlines()
    assert lines[0].startswith("k: word") and all(line.startswith("  word") or line.startswith("  end")
                                                  for line in lines[1:])
    assert all(len(line) <= 86 for line in lines)  # a fold comes at the first space past column 80


def test_a_double_quoted_fold_keeps_a_second_space() -> None:
    # 'k: "true' and 37 " x" end at column 82: the fold comes at the next space, one of two
    text = "true" + " x" * 37 + "  y" + "\t"  # a tab: only double quotes can hold it
    out = to_yaml({"k": text})
    assert out == 'k: "true' + " x" * 37 + '\n  \\ y\\t"\n'

    assert decode_documents(out, []) == [{"k": text}]


def test_layout_of_maps_and_lists() -> None:
    doc = {"spec": {"containers": [{"command": ["sh", "-c", "true"], "name": "a"}], "empty": [], "none": {},
                    "n": None, "on": True, "x": 1.5}}
    assert to_yaml(doc) == ("spec:\n  containers:\n  - command:\n    - sh\n    - -c\n    - \"true\"\n    name: a\n"
                            "  empty: []\n  \"n\": null\n  none: {}\n  \"on\": true\n  x: 1.5\n")


@settings(max_examples=400, deadline=None)
@given(hs.dictionaries(hs.text(max_size=12), hs.text(max_size=120), max_size=4),
       hs.lists(hs.text(alphabet=hs.sampled_from(" ab:#'\"-\n\t\u2028\x85é😀"), max_size=90), max_size=3))
def test_what_is_written_reads_back_the_same(mapping: dict[str, str], items: list[str]) -> None:
    doc: dict[str, Any] = {"map": mapping, "items": items, "nested": {"deeper": {"text": " ".join(items)}}}
    decoded = decode_documents(to_yaml(doc), errors := [])
    assert not errors and decoded == [doc]
