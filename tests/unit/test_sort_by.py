"""`get --sort-by` (cli/printers.sort_by): kubectl's RuntimeSort over a JSONPath field."""

from __future__ import annotations

import pytest

from sandbox.cli.printers import sort_by
from sandbox.errors import SandboxError


def pods(*specs: tuple[str, object]) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for name, restarts in specs:
        status = {"containerStatuses": [{"restartCount": restarts}]} if restarts is not None else {}
        out.append({"metadata": {"name": name}, "status": status})
    return out


def names(items: list[dict[str, object]], expression: str) -> list[str]:
    return [items[i]["metadata"]["name"] for i in sort_by(items, expression)]  # type: ignore[index]


def test_numbers_sort_by_value_and_a_missing_field_first() -> None:
    items = pods(("a", 10), ("b", 2), ("c", None), ("d", 0))
    assert names(items, "{.status.containerStatuses[0].restartCount}") == ["c", "d", "b", "a"]
    assert names(items, ".status.containerStatuses[0].restartCount") == ["c", "d", "b", "a"]  # relaxed form


def test_strings_sort_in_natural_order() -> None:
    items = pods(("web-10", 0), ("web-9", 0), ("web-09", 0), ("api", 0), ("web-1a", 0), ("web-1", 0))
    # digit runs as numbers; fewer leading zeros first; a digit before any other character
    assert names(items, ".metadata.name") == ["api", "web-1", "web-1a", "web-9", "web-09", "web-10"]


def test_equal_keys_keep_their_order() -> None:
    items = pods(("z", 1), ("a", 1), ("m", 0))
    assert names(items, ".status.containerStatuses[0].restartCount") == ["m", "z", "a"]


def test_a_field_no_item_has_is_refused() -> None:
    with pytest.raises(SandboxError, match=r'couldn\'t find any field with path "\{\.spec\.nope\}" in the list of objects'):
        sort_by(pods(("a", 1)), ".spec.nope")
    assert sort_by([], ".spec.nope") == []
