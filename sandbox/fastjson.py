"""JSON for the paths that must start fast (`sandbox exec`, `run -d`), without `import json`.

`json.decoder` and `json.encoder` import `re` (and with it enum, functools, collections): 4-6 ms
of a command that has nothing else needing them. json's own C accelerator (`_json`) does the
work here: its scanner reads, its encoder writes. Same results and the same errors
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


class _JsonDefaults:
    """The attributes _json.make_scanner reads from a json.JSONDecoder: json.loads' defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__


def dumps(value: Any) -> str:
    """json.dumps(value, separators=(",", ":")), byte for byte, through json's C encoder (the one
    json.dumps itself uses when no indent is asked) without `import json`. The state, tear-down
    and record writes of a `sandbox run` call it ~19 times: a walk in Python (the previous form)
    took ~390 us for a 1 KB state where the C encoder takes ~80 (same machine, same load), 1-3 ms
    of a pod cycle. A value json cannot encode goes to json.dumps for json's own error."""
    try:
        from _json import encode_basestring_ascii, make_encoder
    except ImportError:  # an interpreter without json's C accelerator
        pass
    else:
        # json.JSONEncoder's defaults: a circular-reference check ({}), ensure_ascii, allow_nan,
        # no key sorting, no skipped keys; `_unencodable` stops at what json would refuse.
        encode = make_encoder({}, _unencodable, encode_basestring_ascii, None, ":", ",", False, False, True)
        try:
            return "".join(encode(value, 0))
        except _Unencodable:
            pass
    import json

    return json.dumps(value, separators=(",", ":"))


class _Unencodable(Exception):
    """A value the C encoder hands back: json.dumps then raises json's own TypeError for it."""


def _unencodable(value: Any) -> Any:
    raise _Unencodable
