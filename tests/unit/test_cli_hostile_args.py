"""Hostile command-line arguments, driven in process through `sandbox.cli.main`: pod names, namespaces,
container names, image references and file names with `/`, `..`, NUL, odd unicode or great length.
Every verb that runs without root answers with exit 1 or 2 and an error of its own (one line, or one
per problem for `validate`), never an internal error or a traceback, and creates nothing outside its
--root."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.cli import main
from sandbox.images.reference import reference_problem
from sandbox.names import is_dns_subdomain

HOSTILE = ["../x", "../../../etc/passwd", "a/b", "/abs", "..", ".", "", " ", "a b", "A", "a_b", "\u00e9", "a\nb",
           "a\0b", "x" * 300, "\u202eevil", "a:b", "a@sha256:" + "0" * 64, "%2e%2e", "~root", "$(id)", "*"]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("root")
    yield path


def _run(argv: list[str], root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    try:
        code = main(["--root", str(root), *argv])
    except SystemExit as exc:  # argparse's own usage error
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    return code, err


def _assert_refused(code: int, err: str, *, one_line: bool = True) -> None:
    assert code in (1, 2), (code, err)
    assert err, "no error printed"
    assert "internal error" not in err.lower() and "Traceback" not in err, err
    if one_line:
        assert err.count("\n") == 1 and err.startswith("error: "), err


def _verbs(name: str) -> list[list[str]]:
    return [["get", "pod", name], ["describe", "pod", name], ["logs", name], ["logs", "web", "-c", name],
            ["exec", name, "--", "true"], ["exec", "web", "-c", name, "--", "true"], ["delete", name],
            ["-n", name, "get", "pods"], ["-n", name, "logs", "web"], ["image", "tag", name, "busybox"],
            ["image", "tag", "busybox", name], ["image", "import", "/nonexistent", name]]


@pytest.mark.parametrize("name", HOSTILE, ids=repr)
def test_hostile_names_are_usage_errors(name: str, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in _verbs(name):
        code, err = _run(argv, root, capsys)
        _assert_refused(code, err)
        if argv[0] != "image" or reference_problem(name) is not None:
            assert code == 2, (argv, err)  # refused as an argument, before anything is looked up
    assert sorted(p.name for p in root.iterdir()) in ([], ["lib"], ["log"], ["lib", "log"]), list(root.iterdir())


def test_image_tag_traversal_is_a_usage_error(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(["image", "tag", "busybox", "../../../etc/x"], root, capsys)
    assert code == 2 and err.startswith("error: target image name: invalid image reference '../../../etc/x'"), err


@pytest.mark.parametrize("name", ["-x", "-n", "--namespace"])
def test_dash_names_are_argparse_usage_errors(name: str, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(["get", "pod", name, "-o"], root, capsys)
    assert code == 2 and "Traceback" not in err


@pytest.mark.parametrize("name", [n for n in HOSTILE if n.isprintable()], ids=repr)
def test_validate_with_hostile_file_names(name: str, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(["validate", name], root, capsys)
    _assert_refused(code, err, one_line=False)
    assert code == 2 and all(line.startswith(f"{name}: ") for line in err.splitlines()), err


_names = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=80), st.text(alphabet="./-_aZ\0\u00e9", max_size=20),
                   st.integers(254, 3000).map(lambda n: "a" * n)).filter(lambda s: not s.startswith("-"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=_names, verb=st.integers(0, len(_verbs("x")) - 1))
def test_any_name_in_any_verb(name: str, verb: int, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(_verbs(name)[verb], root, capsys)
    if code == 0:  # a name that happens to be valid (`-n 0 get pods` lists no pods)
        assert is_dns_subdomain(name) or reference_problem(name) is None, (name, err)
        assert "error" not in err
        return
    _assert_refused(code, err)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=_names.filter(str.isprintable))
def test_any_file_name_in_validate(name: str, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(["validate", name], root, capsys)
    _assert_refused(code, err, one_line=False)


def test_valid_names_too_long_for_one_file_name_are_not_found(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A 63-character namespace and a 253-character name are each valid, but `<ns>_<name>` is no
    # file name (over 255 bytes): no such pod can have run, so it is not found, not an OSError.
    (root / "run" / "pods").mkdir(parents=True)
    ns, name = "n" * 63, ".".join(["a" * 63] * 4)[:253]
    for argv in (["get", "pod", name], ["describe", "pod", name], ["delete", name], ["exec", name, "--", "true"]):
        code, err = _run(["-n", ns, *argv], root, capsys)
        _assert_refused(code, err)
        assert code == 1 and "not found" in err, (argv, err)
