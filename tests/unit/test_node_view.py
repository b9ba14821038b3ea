"""`get nodes` / `describe node` (cli/node.py): quantities and shares as kubectl prints them."""

from __future__ import annotations

from sandbox.cli.node import cpu_text, memory_text, percent


def test_quantities_in_kubectls_forms() -> None:
    assert (cpu_text(2000), cpu_text(1500), cpu_text(100), cpu_text(0)) == ("2", "1500m", "100m", "0")
    assert (memory_text(64 << 20), memory_text(3 << 30), memory_text(1000), memory_text(0)) == ("64Mi", "3Gi", "1000", "0")
    assert memory_text(24684084 << 10) == "24684084Ki"


def test_shares_are_truncated_percentages() -> None:
    assert (percent(100, 2000), percent(1999, 2000), percent(5, 0)) == ("(5%)", "(99%)", "(0%)")
