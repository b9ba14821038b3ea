"""`-o yaml`: API objects written as kubectl writes them (sigs.k8s.io/yaml, i.e. go-yaml v2's
Marshal: block style, map keys sorted, a sequence under a key at the key's own column).

A string's style follows go-yaml v2 (encode.go stringv, emitterc.go analyze_scalar and
select_scalar_style): plain when it would read back as the same string and no YAML indicator
forbids it; double-quoted when plain text would read back as something else (a boolean, a
number, null, a timestamp: `"true"`, `"123"`, `"2026-12-01T10:00:00Z"`); single-quoted when an
indicator forbids plain text (`'a: b'`, `'*'`, `'-'`); a literal block for multi-line text. Long
plain and quoted scalars fold at spaces past column 80 (go-yaml's best width), continued two
columns deeper, as kubectl prints a long status message.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

BEST_WIDTH = 80  # go-yaml's default best_width: plain and quoted scalars fold past this column
INDENT = 2

# resolve.go's resolveMap: the plain scalars YAML 1.1 reads as booleans, null, special floats.
_RESOLVED = frozenset("""y Y yes Yes YES true True TRUE on On ON n N no No NO false False FALSE off Off
OFF ~ null Null NULL .nan .NaN .NAN .inf .Inf .INF +.inf +.Inf +.INF -.inf -.Inf -.INF""".split()) | {""}
_FIRST_INDICATORS = frozenset("#,[]{}&*!|>'\"%@`")


def to_yaml(value: Any) -> str:
    """The document for `value` (maps, lists, strings, numbers, booleans, None)."""
    out: list[str] = []
    _node(value, 0, 0, out)
    return "".join(out)


def _node(value: Any, indent: int, column: int, out: list[str]) -> None:
    """Write `value` at `column` (what precedes it on its line is written already); its block
    content, and the first line's continuation, go at `indent`."""
    if isinstance(value, dict):
        if not value:
            out.append("{}\n")
            return
        for i, key in enumerate(sorted(value)):
            item = value[key]
            text = scalar(str(key), indent, indent, key=True)
            out.append(f"{' ' * indent if i else ''}{text}:")
            if isinstance(item, list) and item:  # go-yaml: "- " at the key's own column
                out.append("\n" + " " * indent)
                _node(item, indent, indent, out)
            elif isinstance(item, dict) and item:
                out.append("\n" + " " * (indent + INDENT))
                _node(item, indent + INDENT, indent + INDENT, out)
            else:
                out.append(" ")
                _node(item, indent + INDENT, indent + len(text) + 2, out)
        return
    if isinstance(value, list):
        if not value:
            out.append("[]\n")
            return
        for i, item in enumerate(value):
            out.append(f"{' ' * indent if i else ''}- ")
            _node(item, indent + INDENT, indent + INDENT, out)
        return
    if isinstance(value, bool):
        out.append("true\n" if value else "false\n")
    elif value is None:
        out.append("null\n")
    elif isinstance(value, (int, float)):
        out.append(f"{value}\n")
    else:
        out.append(scalar(str(value), indent, column) + "\n")


def scalar(text: str, indent: int, column: int, *, key: bool = False) -> str:
    """`text` as go-yaml v2 writes a string starting at `column`; folds and a literal block's
    lines go at `indent`. A map key never folds nor becomes a block (go-yaml's simple key)."""
    plain_ok, single_ok, block_ok = _analyze(text)
    if "\n" in text:  # stringv picks a literal block; the emitter falls back to double quotes
        return _literal(text, indent) if block_ok and not key else _double(text, indent, column, fold=not key)
    if not _reads_as_string(text):
        return _double(text, indent, column, fold=not key)
    if plain_ok and not (key and not text):
        return text if key else _fold(list(text), indent, column, "plain")
    if single_ok:
        quoted = text.replace("'", "''")
        return "'" + (quoted if key else _fold(list(quoted), indent, column + 1, "single")) + "'"
    return _double(text, indent, column, fold=not key)


def _reads_as_string(text: str) -> bool:
    """go-yaml v2's stringv: plain text is allowed only if resolve() gives it back as a string
    and it is no base-60 float (YAML 1.1's `1:30`, quoted for other parsers)."""
    if text in _RESOLVED:
        return False
    first = text[0]
    if first == ".":
        return not _is_go_float(text)
    if not (first.isdigit() and first.isascii()) and first not in "+-":
        return True
    if _is_timestamp(text) or _is_base60_float(text):
        return False
    plain = text.replace("_", "")
    return not (_is_go_int(plain) or _is_yaml_float(plain) or _is_binary(plain))


def _is_go_float(text: str) -> bool:
    # strconv.ParseFloat of a text that starts with '.': decimal digits, an optional exponent.
    import re

    return re.fullmatch(r"\.[0-9]+(?:[eE][-+]?[0-9]+)?", text) is not None


def _is_yaml_float(text: str) -> bool:
    import re

    return re.fullmatch(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?", text) is not None


def _is_go_int(text: str) -> bool:
    """strconv.ParseInt(text, 0, 64) or ParseUint(text, 0, 64) succeeds."""
    import re

    m = re.fullmatch(r"([-+]?)(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)", text)
    if m is None:
        return False
    sign, digits = m.groups()
    prefix = digits[:2].lower()
    base = {"0x": 16, "0o": 8, "0b": 2}.get(prefix)
    if base is not None:
        number = int(digits[2:], base)
    else:
        number = int(digits, 8) if digits.startswith("0") and len(digits) > 1 else int(digits)
    if sign == "-":
        return number <= 2**63
    return number < 2**64 if sign == "" else number < 2**63


def _is_binary(text: str) -> bool:
    # resolve.go's last case: "0b..." / "-0b..." as a binary int (what ParseInt base 0 refused).
    import re

    m = re.fullmatch(r"-?0b([01]+)", text)
    return m is not None and int(m.group(1), 2) < 2**63


def _is_base60_float(text: str) -> bool:
    import re

    return re.fullmatch(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?", text) is not None


def _is_timestamp(text: str) -> bool:
    """parseTimestamp: YYYY-M-D, optionally with a time (`T`/`t` and a zone, or a space and no
    zone), as time.Parse reads go-yaml's four layouts."""
    import calendar
    import re

    m = re.fullmatch(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})"
                     r"(?:([Tt])([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})(?:\.[0-9]+)?(?:Z|[-+]([0-9]{2}):([0-9]{2}))"
                     r"|( )([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})(?:\.[0-9]+)?)?", text)
    if m is None:
        return False
    year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if not 1 <= month <= 12 or not 1 <= day <= calendar.monthrange(year, month)[1]:
        return False
    clock = m.group(5, 6, 7) if m.group(4) else m.group(11, 12, 13) if m.group(10) else None
    if clock is not None:
        hour, minute, second = (int(x) for x in clock)
        if hour > 23 or minute > 59 or second > 59:
            return False
    zone = m.group(8, 9)
    return zone[0] is None or (int(zone[0]) <= 23 and int(zone[1]) <= 59)


def _printable(ch: str) -> bool:
    # yaml's is_printable: LF, ASCII 0x20-0x7E, U+00A0-U+D7FF, U+E000-U+FFFD but the BOM.
    code = ord(ch)
    return (ch == "\n" or 0x20 <= code <= 0x7E or 0xA0 <= code <= 0xD7FF
            or (0xE000 <= code <= 0xFFFD and code != 0xFEFF))


def _analyze(text: str) -> tuple[bool, bool, bool]:
    """emitterc.go analyze_scalar in block context: (plain allowed, single quotes allowed, literal
    block allowed)."""
    if not text:
        return True, True, False
    block_indicators = text.startswith(("---", "..."))
    special = tabs = leading_tab = space_break = break_space = False
    line_breaks = False
    preceded_by_space = True
    previous_space = previous_break = False
    for i, ch in enumerate(text):
        followed_by_space = i + 1 >= len(text) or text[i + 1] in " \t\r\n\x85\u2028\u2029"
        if i == 0:
            if ch in _FIRST_INDICATORS or (ch in "?:-" and followed_by_space):
                block_indicators = True
        elif (ch == ":" and followed_by_space) or (ch == "#" and preceded_by_space):
            block_indicators = True
        if ch == "\t":
            tabs = True
            # A line of a block that starts with a tab is read as bad indentation (libyaml,
            # go-yaml) although go-yaml writes it: double quotes here instead.
            leading_tab = leading_tab or i == 0 or previous_break
        elif not _printable(ch) or ch in "\u2028\u2029":
            # go-yaml single-quotes the Unicode line and paragraph separators as they are, and a
            # reader folds them into spaces: here they are escaped in double quotes instead.
            special = True
        if ch == " ":
            break_space = break_space or previous_break
            previous_space, previous_break = True, False
        elif ch in "\r\n\x85\u2028\u2029":
            line_breaks = True
            space_break = space_break or previous_space
            previous_space, previous_break = False, True
        else:
            previous_space = previous_break = False
        preceded_by_space = ch in " \t\r\n\x85\u2028\u2029"
    edges = text[0] in " \r\n\x85\u2028\u2029" or text[-1] in " \r\n\x85\u2028\u2029"
    plain = not (edges or break_space or space_break or tabs or special or line_breaks or block_indicators)
    single = not (break_space or space_break or tabs or special)
    block = not (text[-1] == " " or space_break or special or leading_tab)
    return plain, single, block


def _fold(units: list[str], indent: int, column: int, style: str) -> str:
    """Scalar text, one unit per character (a double-quoted one's escaped), broken at a single
    space once past BEST_WIDTH as go-yaml's write_plain_scalar, write_single_quoted_scalar and
    write_double_quoted_scalar do: quoted text never at its ends, and where a double-quoted
    fold meets a second space, a `\\` keeps it."""
    out: list[str] = []
    spaces = False
    last = len(units) - 1
    for i, unit in enumerate(units):
        if unit == " ":
            next_space = i < last and units[i + 1] == " "
            if (not spaces and column > BEST_WIDTH and (style == "plain" or 0 < i < last)
                    and (style == "double" or not next_space)):
                out.append("\n" + " " * indent + ("\\" if next_space else ""))
                column = indent + next_space
                spaces = True
                continue
            spaces = True
        else:
            spaces = False
        out.append(unit)
        column += len(unit)
    return "".join(out)


_ESCAPES = {"\0": "0", "\a": "a", "\b": "b", "\t": "t", "\n": "n", "\v": "v", "\f": "f", "\r": "r",
            "\x1b": "e", '"': '"', "\\": "\\", "\x85": "N", "\u2028": "L", "\u2029": "P"}


def _escaped(ch: str) -> str:
    """A character inside double quotes: itself, or its escape where YAML needs one (what is
    not printable, breaks, the BOM, quotes and backslashes)."""
    if _printable(ch) and ch not in "\n\u2028\u2029\ufeff\"\\":
        return ch
    code = ord(ch)
    esc = _ESCAPES.get(ch) or (f"x{code:02X}" if code <= 0xFF else f"u{code:04X}" if code <= 0xFFFF
                               else f"U{code:08X}")
    return "\\" + esc


def _double(text: str, indent: int, column: int, *, fold: bool) -> str:
    units = [_escaped(ch) for ch in text]
    return '"' + (_fold(units, indent, column + 1, "double") if fold else "".join(units)) + '"'


def _literal(text: str, indent: int) -> str:
    """A literal block (`|`): an indentation hint when the text starts with a space or break, the
    chomping indicator from its end (`-` without a final break, `+` with more than one)."""
    hint = str(INDENT) if text[0] in " \n" else ""
    if not text.endswith("\n"):
        chomp = "-"
    elif len(text) == 1 or text.endswith("\n\n"):
        chomp = "+"
    else:
        chomp = ""
    body = text[:-1] if text.endswith("\n") else text
    pad = " " * indent
    lines = "".join(f"\n{pad}{line}" if line else "\n" for line in body.split("\n"))
    return f"|{hint}{chomp}{lines}"
