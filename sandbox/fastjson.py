"""JSON for the paths that must start fast (`sandbox exec`, `run -d`), without `import json`.

`json.decoder` and `json.encoder` import `re` (and with it enum, functools, collections): 4-6 ms
of a command that has nothing else needing them. json's own C accelerator (`_json`) does the
work here: its scanner reads, its string escaper writes. Same results and the same errors
(ValueError, JSONDecodeError) as json.loads/json.dumps; anything unusual goes to json itself.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from typing import Any


def loads(data: bytes | str) -> Any:
    """json.loads(data) through json's own C scanner, without `import json`: json.decoder
    imports re (and with it enum, functools, collections), ~4-6 ms on `sandbox exec`'s path when
    nothing else there needs re. Errors are json's (JSONDecodeError, a ValueError)."""
    try:
        from _json import make_scanner
    except ImportError:  # an interpreter without json's C accelerator
        import json

        return json.loads(data)
    text = data if isinstance(data, str) else data.decode()
    start = len(text) - len(text.lstrip(_JSON_SPACE))
    try:
        value, end = make_scanner(_JsonDefaults)(text, start)  # type: ignore[arg-type]  # typeshed: a JSONDecoder
    except StopIteration as e:
        raise ValueError(f"Expecting value: char {e.value}") from None
    if text[end:].strip(_JSON_SPACE):
        raise ValueError(f"Extra data: char {end}")
    return value


_JSON_SPACE = " \t\n\r"
_INF = float("inf")


class _JsonDefaults:
    """The attributes _json.make_scanner reads from a json.JSONDecoder: json.loads' defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__


def dumps(value: Any) -> str:
    """json.dumps(value, separators=(",", ":")) for dicts, lists, strings, ints, floats, bools and
    None (the agent protocol's requests, pod state); anything else through json.dumps itself."""
    quote: Any = None
    try:
        from _json import encode_basestring_ascii as quote
    except ImportError:  # an interpreter without json's C accelerator
        pass
    if quote is None or not _simple(value):
        import json

        return json.dumps(value, separators=(",", ":"))
    return _encode(value, quote)


def _simple(value: Any) -> bool:
    if value is None or isinstance(value, (str, bool, int, float)):
        return True
    if isinstance(value, list):
        return all(_simple(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _simple(v) for k, v in value.items())
    return False


def _encode(value: Any, quote: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return str(quote(value))
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):  # json's floatstr: repr, and its names for the non-finite ones
        if value != value:
            return "NaN"
        if value in (_INF, -_INF):
            return "Infinity" if value > 0 else "-Infinity"
        return float.__repr__(value)
    if isinstance(value, list):
        return "[" + ",".join(_encode(v, quote) for v in value) + "]"
    return "{" + ",".join(f"{quote(k)}:{_encode(v, quote)}" for k, v in value.items()) + "}"
