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
