"""`-n/--namespace` after the verb, as kubectl takes its global flags anywhere (cli/__init__.py)."""

from __future__ import annotations

import pytest

from sandbox.cli import _fast_args, _globals_first, _verb_index, build_parser


@pytest.mark.parametrize(("argv", "moved"), [
    (["get", "pods", "-n", "team"], ["-n", "team", "get", "pods"]),
    (["--root", "/r", "logs", "web", "--namespace=team", "-f"], ["--root", "/r", "--namespace=team", "logs", "web", "-f"]),
    (["exec", "web", "-nteam", "-it"], ["-nteam", "exec", "web", "-it"]),
    (["get", "pods", "--no-headers"], ["get", "pods", "--no-headers"]),
    (["-n", "a", "get", "pods"], ["-n", "a", "get", "pods"]),
])
def test_namespace_flags_move_before_the_verb(argv: list[str], moved: list[str]) -> None:
    at = _verb_index(argv)
    assert at is not None and _globals_first(argv, at) == moved


def test_a_verb_word_as_a_global_value_is_not_the_verb() -> None:
    argv = ["--root", "get", "get", "pods", "-n", "x"]  # --root's value happens to be a verb's name
    assert _verb_index(argv) == 2
    assert _globals_first(argv, 2) == ["--root", "get", "-n", "x", "get", "pods"]


def test_both_readers_read_the_moved_namespace() -> None:
    argv = _globals_first(["exec", "web", "-n", "team", "-c", "app"], 0)
    fast = _fast_args(argv, "exec")
    assert fast is not None and (fast.namespace, fast.name, fast.container) == ("team", "web", "app")
    slow = build_parser("get").parse_args(_globals_first(["get", "pods", "-n", "team"], 0))
    assert slow.namespace == "team"
