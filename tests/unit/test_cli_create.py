"""`sandbox create configmap|secret generic` sources as kubectl reads them (--from-literal,
--from-file with and without a key and over a directory, --from-env-file), the API server's key
checks, and the output formats shared with `get` (`-o yaml`, secret values hidden)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from sandbox.cli import build_parser, create
from sandbox.cli.get import api_object
from sandbox.cli.yamlout import to_yaml
from sandbox.errors import SpecError, UsageError


def parse(*argv: str) -> argparse.Namespace:
    return build_parser("create").parse_args(["create", *argv])


def collected(*argv: str) -> dict[str, bytes]:
    args = parse("configmap", "x", *argv)
    return dict(create.collect(args, "ConfigMap"))


def test_literals_split_at_the_first_equals_sign() -> None:
    assert collected("--from-literal=a=b=c", "--from-literal=empty=") == {"a": b"b=c", "empty": b""}
    for bad in ("novalue", "=v"):
        with pytest.raises(UsageError, match=f"invalid literal source {bad}, expected key=value"):
            collected(f"--from-literal={bad}")


def test_files_by_name_by_key_and_by_directory(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "one.txt").write_text("1")
    (tmp_path / "d" / "two").write_bytes(b"\xff")
    (tmp_path / "d" / "sub").mkdir()
    (tmp_path / "d" / "link").symlink_to(tmp_path / "d" / "one.txt")
    (tmp_path / "f.conf").write_text("conf")
    got = collected(f"--from-file={tmp_path / 'f.conf'}", f"--from-file=renamed={tmp_path / 'f.conf'}",
                    f"--from-file={tmp_path / 'd'}")
    assert got == {"f.conf": b"conf", "renamed": b"conf", "one.txt": b"1", "two": b"\xff"}
    with pytest.raises(UsageError, match="cannot give a key name for a directory path"):
        collected(f"--from-file=k={tmp_path / 'd'}")
    with pytest.raises(UsageError, match="error reading .*missing: No such file or directory"):
        collected(f"--from-file={tmp_path / 'missing'}")
    with pytest.raises(UsageError, match="key names or file paths cannot contain '='"):
        collected("--from-file=a=b=c")
    with pytest.raises(UsageError, match="key name for file path p missing"):
        collected("--from-file==p")


def test_env_files_as_kubectl_reads_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FROM_ENV", "inherited")
    path = tmp_path / "app.env"
    path.write_bytes(b"\xef\xbb\xbfFIRST=1\n# comment\n\n   INDENTED=two words \nQUOTED=\"kept\"\nFROM_ENV\nEQ=a=b\n")
    assert collected(f"--from-env-file={path}") == {
        "FIRST": b"1", "INDENTED": b"two words ", "QUOTED": b'"kept"', "FROM_ENV": b"inherited", "EQ": b"a=b"}
    path.write_text("1BAD=x\n")
    with pytest.raises(UsageError, match='"1BAD" is not a valid key name: a valid environment variable name'):
        collected(f"--from-env-file={path}")
    with pytest.raises(UsageError, match="from-env-file cannot be combined with from-file or from-literal"):
        collected(f"--from-env-file={path}", "--from-literal=a=b")


def test_keys_are_checked_as_the_api_server_checks_them() -> None:
    with pytest.raises(UsageError, match='cannot add key "a", another key by that name already exists'):
        create.build("ConfigMap", "x", "default", [("a", b"1"), ("a", b"2")])
    with pytest.raises(SpecError, match=r"data\[bad key\]: Invalid value: \"bad key\": a valid config key"):
        create.build("ConfigMap", "x", "default", [("bad key", b"1")])
    with pytest.raises(SpecError, match=r"data\[\.\.\]"):
        create.build("Secret", "x", "default", [("..", b"1")])


def test_text_goes_to_data_and_other_bytes_to_binary_data() -> None:
    obj = create.build("ConfigMap", "x", "default", [("t", b"text"), ("b", b"\xff\xfe")])
    assert (obj.binary_keys, obj.data) == (frozenset({"b"}), {"t": b"text", "b": b"\xff\xfe"})
    assert api_object(obj) == {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "default"},
                               "data": {"t": "text"}, "binaryData": {"b": "//4="}}


def test_secret_values_are_hidden_unless_revealed() -> None:
    args = parse("secret", "generic", "s", "--from-literal=password=hunter2", "--type=kubernetes.io/basic-auth")
    obj = create.build("Secret", "s", "default", create.collect(args, "Secret"), args.type)
    shown = api_object(obj)
    assert shown["data"] == {"password": "<hidden: 7 bytes>"} and shown["type"] == "kubernetes.io/basic-auth"
    assert "hunter2" not in to_yaml(shown)
    assert api_object(obj, reveal=True)["data"] == {"password": "aHVudGVyMg=="}


def test_yaml_output_is_block_style_and_unambiguous() -> None:
    text = to_yaml({"kind": "ConfigMap", "data": {"n": "3", "yes": "no", "multi": "a\nb\n", "plain": "x=y z",
                                                  "colon": "a: b"}, "list": [{"k": 1}], "empty": {}})
    assert text == ("data:\n  colon: 'a: b'\n  multi: |\n    a\n    b\n  \"n\": \"3\"\n  plain: x=y z\n"
                    '  "yes": "no"\n'
                    "empty: {}\nkind: ConfigMap\nlist:\n- k: 1\n")
