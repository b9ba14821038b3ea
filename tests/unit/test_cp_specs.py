"""`sandbox cp`'s file specs and path rules (sandbox/cli/cp.py), as kubectl cp reads them."""

from __future__ import annotations

import pytest

from sandbox.cli.cp import FileSpec, parse_spec, strip_shortcuts
from sandbox.errors import UsageError


@pytest.mark.parametrize(("text", "spec"), [
    ("/tmp/x", FileSpec("/tmp/x")),
    ("web:/tmp/x", FileSpec("/tmp/x", "web")),
    ("team/web:/tmp/x", FileSpec("/tmp/x", "web", "team")),
    ("web:", FileSpec("", "web")),
    ("web:a:b", FileSpec("a:b", "web")),
])
def test_file_specs(text: str, spec: FileSpec) -> None:
    assert parse_spec(text) == spec


@pytest.mark.parametrize("text", [":/tmp/x", "a/b/c:/tmp/x"])
def test_a_spec_out_of_the_canonical_format_is_refused(text: str) -> None:
    with pytest.raises(UsageError, match=r"filespec must match the canonical format: \[\[namespace/\]pod:\]file/path"):
        parse_spec(text)


@pytest.mark.parametrize(("path", "stripped"), [
    ("tmp/x", "tmp/x"), ("../../tmp/x", "tmp/x"), ("..", ""), (".", ""), ("/x", "x"), ("../..", ""),
])
def test_path_shortcuts_are_stripped(path: str, stripped: str) -> None:
    assert strip_shortcuts(path) == stripped


@pytest.mark.parametrize(("name", "quoted"), [
    ('a"b\\c', '"a\\"b\\\\c"'),
    ("x\x1b]0;owned\x07", '"x\\x1b]0;owned\\a"'),  # a terminal's escape sequence from the container
    ("tab\there\nnl\r", '"tab\\there\\nnl\\r"'),
    ("café\u00a0\u200b", '"café\\u00a0\\u200b"'),
    (b"bad\xff".decode("utf-8", "surrogateescape"), '"bad\\xff"'),
    ("\x7f\U000e0001", '"\\x7f\\U000e0001"'),
])
def test_names_in_warnings_are_quoted_as_gos_q(name: str, quoted: str) -> None:
    from sandbox.cli.cp import _q

    assert _q(name) == quoted
