"""kubectl's JSONPath templates (`get -o jsonpath=...`, custom-columns' fields), as
k8s.io/client-go/util/jsonpath reads and runs them, over objects decoded from JSON.

A template is literal text with actions in braces: `{.metadata.name}`, `{.items[*].status.phase}`,
`{range .items[*]}{.metadata.name}{"\\n"}{end}`. Inside an action: `$` the root, `@` the current
object, `.field` (`\\.` escapes a dot in a name), `..` recursive descent, `*`, `[n]`, `[start:end:step]`
(negative counts from the end), `[*]`, unions `[0,2]` / `['a','b.c']` (a quoted key is read as a
path, as the client-go parser does), filters `[?(@.x=="y")]` (==, !=, <, >, <=, >=, or the left side
alone: it exists), quoted literals with Go's escapes, numbers and true/false.

What an action finds is printed as kubectl prints it: strings as they are, numbers and booleans as
Go's fmt does, maps and lists as compact JSON (keys sorted), several results separated by one
space. Missing fields print nothing (kubectl's --allow-missing-template-keys, on by default).
"""

from __future__ import annotations

import json
import re

from sandbox.record import Record, field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class JSONPathError(Exception):
    """A template that does not parse, or fails on the object (the message is client-go's)."""


# --- the parsed template ---------------------------------------------------------------------------


class Field(Record):
    name: str


class Slice(Record):
    start: int | None
    end: int | None
    step: int | None
    single: bool  # `[n]`: one element, its end derived from its start


class Step(Record):
    """One step of a path: `kind` is root, current, field, wildcard, recursive, slice, union,
    filter or identifier (a bare word, which fails when run, as client-go's)."""

    kind: str
    value: Any = None


class Literal(Record):
    value: Any  # a string, int, float or bool written in the template


class Path(Record):
    steps: tuple[Step, ...]


class Filter(Record):
    left: Path | Literal
    operator: str  # "exists" when there is no right side
    right: Path | Literal | None


class Range(Record, frozen=False):
    path: Path | Literal
    body: list[Any] = field(default_factory=list)


class Text(Record):
    value: str


class End(Record):
    """An `{end}` with no range open: an error when run, as client-go's."""


Node = Text | Path | Literal | Range | End


class Template(Record):
    source: str
    nodes: tuple[Any, ...]

    def results(self, data: Any, *, allow_missing: bool = True) -> list[list[Any]]:
        """What each printed piece (text, action) gives, in order (a range repeats its body)."""
        out: list[list[Any]] = []
        _run(list(self.nodes), data, data, allow_missing, out)
        return out

    def render(self, data: Any, *, allow_missing: bool = True) -> str:
        return "".join(" ".join(text_of(v) for v in piece) for piece in self.results(data, allow_missing=allow_missing))

    def render_json(self, data: Any, *, allow_missing: bool = True) -> str:
        """`-o jsonpath-as-json`: each piece's results as an indented JSON array."""
        pieces = self.results(data, allow_missing=allow_missing)
        return "".join(go_json(piece, indent=4) + "\n" for piece in pieces)


def parse(source: str) -> Template:
    """The template, or JSONPathError with client-go's reason (`unclosed action`, ...)."""
    tokens = [_parse_action(body) if is_action else Text(body) for is_action, body in _split(source)]
    nodes, _ = _nest(tokens, 0, top=True)
    return Template(source, tuple(nodes))


def _split(source: str) -> list[tuple[bool, str]]:
    """(is it an action, its text) of each piece: text outside braces, or an action's body."""
    pieces: list[tuple[bool, str]] = []
    i = 0
    while i < len(source):
        start = source.find("{", i)
        if start < 0:
            pieces.append((False, source[i:]))
            break
        if start > i:
            pieces.append((False, source[i:start]))
        end = _action_end(source, start + 1)
        pieces.append((True, source[start + 1 : end]))
        i = end + 1
    return pieces


def _action_end(source: str, i: int) -> int:
    """Where the action that starts at `i` closes (a `}` outside quotes)."""
    while i < len(source):
        c = source[i]
        if c in "\"'":
            i = _quote_end(source, i)
        elif c == "}":
            return i
        i += 1
    raise JSONPathError("unclosed action")


def _quote_end(text: str, i: int) -> int:
    quote, i = text[i], i + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            return i
        i += 1
    raise JSONPathError("unterminated quoted string")


def _nest(tokens: list[Any], i: int, *, top: bool) -> tuple[list[Any], int]:
    """Tokens into nodes, a range holding everything up to its end (or the template's end)."""
    nodes: list[Any] = []
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if isinstance(token, End):
            if not top:
                return nodes, i
            nodes.append(token)
        elif isinstance(token, Range):
            token.body, i = _nest(tokens, i, top=False)
            nodes.append(token)
        else:
            nodes.append(token)
    return nodes, i


def _parse_action(body: str) -> Any:
    stripped = body.strip()
    if stripped == "end":
        return End()
    if stripped.startswith("range") and (len(stripped) == 5 or stripped[5].isspace()):
        return Range(_Expression(stripped[5:]).parse())
    return _Expression(body).parse()


# What ends a field name (client-go's isTerminator); `\` escapes the next character.
_FIELD_STOP = set(".,[]$@{}") | {" ", "\t", "\n", "\r"}
_SLICE = re.compile(r"^\s*(-?\d+)?\s*(?:(:)\s*(-?\d+)?\s*)?(?::\s*(-?\d+)?\s*)?$")
_FILTER = re.compile(r"^([^!<>=]+)([!<>=]+)(.+?)$", re.DOTALL)
_NUMBER = re.compile(r"-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
OPERATORS = ("==", "!=", "<", ">", "<=", ">=")


class _Expression:
    """One action's body: a path, or a literal."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0

    def parse(self) -> Path | Literal:
        text = self.text
        self._skip_space()
        if self.i < len(text) and text[self.i] in "\"'":
            end = _quote_end(text, self.i)
            value = unquote(text[self.i : end + 1])
            self.i = end + 1
            self._expect_end()
            return Literal(value)
        if text[self.i :].strip() in ("true", "false"):
            return Literal(text[self.i :].strip() == "true")
        number = _NUMBER.match(text, self.i)
        if number and (text[self.i].isdigit() or text[self.i] in "-."):
            self.i = number.end()
            self._expect_end()
            literal = number.group(0)
            return Literal(float(literal) if any(c in literal for c in ".eE") else int(literal))
        return Path(tuple(self._steps()))

    def _expect_end(self) -> None:
        self._skip_space()
        if self.i < len(self.text):
            raise JSONPathError(f"unrecognized character in action: {go_rune(self.text[self.i])}")

    def _skip_space(self) -> None:
        while self.i < len(self.text) and self.text[self.i].isspace():
            self.i += 1

    def _steps(self) -> list[Step]:
        text, steps = self.text, list[Step]()
        while True:
            self._skip_space()
            if self.i >= len(text):
                return steps
            c = text[self.i]
            if c in "$@":
                steps.append(Step("root" if c == "$" else "current"))
                self.i += 1
            elif c == ".":
                steps += self._dot()
            elif c == "[":
                steps.append(self._bracket())
            elif c == "*":
                steps.append(Step("wildcard"))
                self.i += 1
            elif c == "_" or c.isalnum():
                steps.append(Step("identifier", self._name()))
            else:
                raise JSONPathError(f"unrecognized character in action: {go_rune(c)}")

    def _dot(self) -> list[Step]:
        text = self.text
        self.i += 1
        steps = []
        if text.startswith(".", self.i):
            steps.append(Step("recursive"))
            self.i += 1
            if text.startswith(".", self.i):  # `...x`: the descent, then `.x`; no more dots
                if text.startswith("..", self.i):
                    raise JSONPathError("invalid multiple recursive descent")
                self.i += 1
        if self.i < len(text) and text[self.i] == "*":
            self.i += 1
            return [*steps, Step("wildcard")]
        if self.i >= len(text) or (text[self.i] in _FIELD_STOP and text[self.i] != "\\"):
            return steps if steps else [Step("current")]  # `{.}`: the object itself
        return [*steps, Step("field", Field(self._name()))]

    def _name(self) -> str:
        text, out = self.text, []
        while self.i < len(text):
            c = text[self.i]
            if c == "\\" and self.i + 1 < len(text):
                out.append(text[self.i + 1])
                self.i += 2
                continue
            if c in _FIELD_STOP:
                break
            out.append(c)
            self.i += 1
        return "".join(out)

    def _bracket(self) -> Step:
        text, start = self.text, self.i + 1
        if text.startswith("[?(", self.i):
            return self._filter_bracket()
        depth, i = 0, start
        while True:
            if i >= len(text):
                raise JSONPathError("unterminated array")
            c = text[i]
            if c in "\"'":
                i = _quote_end(text, i)
            elif c in "[(":
                depth += 1
            elif c in ")]":
                if c == "]" and depth == 0:
                    break
                depth -= 1
            i += 1
        inner = text[start:i]
        self.i = i + 1
        return bracket_step(inner)

    def _filter_bracket(self) -> Step:
        """`[?(...)]`: up to the `)` that closes it (outside quotes), which `]` must follow."""
        text, i, depth = self.text, self.i + 3, 0
        while True:
            if i >= len(text):
                raise JSONPathError("unterminated filter")
            c = text[i]
            if c in "\"'":
                i = _quote_end(text, i)
            elif c == "(":
                depth += 1
            elif c == ")":
                if depth == 0:
                    break
                depth -= 1
            i += 1
        if not text.startswith("]", i + 1):
            raise JSONPathError("unclosed array expect ]")
        inner = text[self.i + 1 : i + 1]
        self.i = i + 2
        return bracket_step(inner)


def bracket_step(inner: str) -> Step:
    """What `[inner]` selects: a filter, a union, a quoted key (read as a path) or a slice."""
    stripped = inner.strip()
    if stripped.startswith("?"):
        body = stripped[1:].strip()
        if not (body.startswith("(") and body.endswith(")")):
            raise JSONPathError("unclosed array expect ]")
        return Step("filter", _filter(body[1:-1]))
    parts = _split_union(stripped)
    if len(parts) > 1:
        return Step("union", tuple(Path((bracket_step(p),)) if not _quoted(p.strip()) else _key_path(p.strip())
                                   for p in parts))
    if _quoted(stripped):
        return Step("union", (_key_path(stripped),))
    if stripped == "*":
        return Step("slice", Slice(None, None, None, single=False))
    m = _SLICE.match(stripped)
    if not stripped or m is None:
        raise JSONPathError(f"invalid array index {inner}")
    start, colon, end, step = m.group(1), m.group(2), m.group(3), m.group(4)
    if colon is None:
        return Step("slice", Slice(_int(start), None, None, single=True))
    return Step("slice", Slice(_int(start), _int(end), _int(step), single=False))


def _int(text: str | None) -> int | None:
    return int(text) if text is not None else None


def _quoted(text: str) -> bool:
    return len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'"


def _key_path(quoted: str) -> Path:
    """`['a.b']`: client-go reads the key as the path `.a.b`."""
    expression = _Expression("." + quoted[1:-1]).parse()
    return expression if isinstance(expression, Path) else Path(())


def _split_union(text: str) -> list[str]:
    parts, current, i = [], [], 0
    while i < len(text):
        c = text[i]
        if c in "\"'":
            end = _quote_end(text, i)
            current.append(text[i : end + 1])
            i = end + 1
            continue
        if c == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(c)
        i += 1
    parts.append("".join(current))
    return parts


def _filter(body: str) -> Filter:
    m = _FILTER.match(body)
    if m is None:
        return Filter(_Expression(body).parse(), "exists", None)
    left, operator, right = m.group(1), m.group(2), m.group(3)
    return Filter(_Expression(left).parse(), operator, _Expression(right).parse())


_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\",
            "'": "'", '"': '"'}


def unquote(quoted: str) -> str:
    """A quoted literal with Go's escapes (\\n, \\t, \\", \\xHH, \\uHHHH, \\UHHHHHHHH, octal)."""
    body, out, i = quoted[1:-1], [], 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        kind = body[i + 1] if i + 1 < len(body) else ""
        if kind in _ESCAPES:
            out.append(_ESCAPES[kind])
            i += 2
        elif kind in ("x", "u", "U"):
            width = {"x": 2, "u": 4, "U": 8}[kind]
            digits = body[i + 2 : i + 2 + width]
            if len(digits) != width or not all(d in "0123456789abcdefABCDEF" for d in digits):
                raise JSONPathError(f"unquote string {quoted} error invalid syntax")
            out.append(chr(int(digits, 16)))
            i += 2 + width
        elif kind in "01234567" and kind:
            digits = body[i + 1 : i + 4]
            if len(digits) != 3 or not all(d in "01234567" for d in digits):
                raise JSONPathError(f"unquote string {quoted} error invalid syntax")
            out.append(chr(int(digits, 8)))
            i += 4
        else:
            raise JSONPathError(f"unquote string {quoted} error invalid syntax")
    return "".join(out)


def go_rune(c: str) -> str:
    """Go's %#U of a character: U+0021 '!'."""
    return f"U+{ord(c):04X} '{c}'" if c.isprintable() else f"U+{ord(c):04X}"


# --- running it ----------------------------------------------------------------------------------


def _run(nodes: list[Any], current: Any, root: Any, allow_missing: bool, out: list[list[Any]]) -> None:
    for node in nodes:
        if isinstance(node, Text):
            out.append([node.value])
        elif isinstance(node, End):
            raise JSONPathError("not in range, nothing to end")
        elif isinstance(node, Range):
            for item in evaluate(node.path, current, root, allow_missing):
                _run(node.body, item, root, allow_missing, out)
        else:
            out.append(evaluate(node, current, root, allow_missing))


def evaluate(expression: Path | Literal, current: Any, root: Any, allow_missing: bool = True) -> list[Any]:
    """Every value the expression finds from `current` (`$` is `root`)."""
    if isinstance(expression, Literal):
        return [expression.value]
    values = [current]
    for step in expression.steps:
        values = _step(step, values, current, root, allow_missing)
    return values


def _step(step: Step, values: list[Any], current: Any, root: Any, allow_missing: bool) -> list[Any]:
    kind = step.kind
    if kind == "root":
        return [root]
    if kind == "current":
        return values
    if kind == "identifier":
        raise JSONPathError(f"unrecognized identifier {step.value}")
    if kind == "field":
        name = step.value.name
        found = [v[name] for v in values if isinstance(v, dict) and name in v]
        if not found and not allow_missing:
            raise JSONPathError(f"{name} is not found")
        return found
    if kind == "wildcard":
        out: list[Any] = []
        for v in values:
            out += list(v.values()) if isinstance(v, dict) else list(v) if isinstance(v, list) else []
        return out
    if kind == "recursive":
        out = []
        for v in values:
            _descend(v, out)
        return out
    if kind == "slice":
        out = []
        for v in values:
            out += _slice(v, step.value)
        return out
    if kind == "union":
        out = []
        for path in step.value:
            out += _step_all(path, values, root, allow_missing)
        return out
    if kind == "filter":
        return _filter_values(step.value, values, root, allow_missing)
    raise JSONPathError(f"unknown step {kind}")


def _step_all(path: Path, values: list[Any], root: Any, allow_missing: bool) -> list[Any]:
    for step in path.steps:
        values = _step(step, values, values[0] if values else None, root, allow_missing)
    return values


def _descend(value: Any, out: list[Any]) -> None:
    """client-go's `..`: every value that has children (maps, lists, non-empty strings), itself
    first, then its children's, depth first; the leaves are reached by the step after it."""
    children: list[Any] = list(value.values()) if isinstance(value, dict) else value if isinstance(value, list) else []
    if not children and not (isinstance(value, str) and value):
        return
    out.append(value)
    for child in children:
        _descend(child, out)


def _slice(value: Any, s: Slice) -> list[Any]:
    if not isinstance(value, list):
        if value is None:
            return []
        raise JSONPathError(f"{go_type(value)} is not array or slice")
    length = len(value)
    start = s.start if s.start is not None else 0
    if start < 0:
        start += length
    if s.single:
        end = start + 1
    else:
        end = s.end if s.end is not None else length
        if end < 0:
            end += length
    if end == start:
        return []
    if start >= length or start < 0:
        raise JSONPathError(f"array index out of bounds: index {start}, length {length}")
    if end > length or end < 0:
        raise JSONPathError(f"array index out of bounds: index {end - 1}, length {length}")
    if start > end:
        raise JSONPathError(f"starting index {start} is greater than ending index {end}")
    if s.step is not None and s.step <= 0:
        raise JSONPathError("step must be > 0")
    return value[start:end:s.step or 1]


def _filter_values(f: Filter, values: list[Any], root: Any, allow_missing: bool) -> list[Any]:
    out = []
    for v in values:
        if not isinstance(v, list):
            raise JSONPathError(f"{go_value(v)} is not array or slice and cannot be filtered")
        for item in v:
            if f.operator == "exists":
                try:
                    found = evaluate(f.left, item, root, allow_missing)
                except JSONPathError:
                    found = []
                if found:
                    out.append(item)
                continue
            lefts = evaluate(f.left, item, root, allow_missing)
            if not lefts:
                continue
            assert f.right is not None
            rights = evaluate(f.right, item, root, allow_missing)
            if not rights:
                continue
            if len(lefts) > 1 or len(rights) > 1:
                raise JSONPathError("can only compare one element at a time")
            if _compare(lefts[0], f.operator, rights[0]):
                out.append(item)
    return out


def _compare(left: Any, operator: str, right: Any) -> bool:
    if operator not in OPERATORS:
        raise JSONPathError(f"unrecognized filter operator {operator}")
    numbers = (int, float)
    comparable = (isinstance(left, numbers) and isinstance(right, numbers)
                  and not isinstance(left, bool) and not isinstance(right, bool))
    if operator in ("==", "!="):
        if type(left) is not type(right) and not comparable:
            if left is None or right is None:
                return (left is right) == (operator == "==")
            raise JSONPathError("incompatible types for comparison")
        return bool(left == right) == (operator == "==")
    if not comparable and not (isinstance(left, str) and isinstance(right, str)):
        raise JSONPathError("invalid type for comparison")
    return bool({"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right}[operator])


# --- printing as Go does ---------------------------------------------------------------------------


def text_of(value: Any) -> str:
    """One result as client-go prints it: maps and lists as compact JSON, the rest with fmt's %v."""
    if isinstance(value, (dict, list)):
        return go_json(value)
    return go_value(value)


def go_value(value: Any) -> str:
    """fmt's %v of a value decoded from JSON (custom-columns prints every value so)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_value(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_value(v) for v in value) + "]"
    return str(value)


def go_float(x: float) -> str:
    """fmt's %v of a float64 (strconv's 'g' with the shortest digits): an exponent when it is
    below -4 or from 6 on (1e+06, 1.5e-05), else plain digits (100000, 19.95, 1)."""
    from decimal import Decimal

    if x != x:
        return "NaN"
    if x in (float("inf"), float("-inf")):
        return "+Inf" if x > 0 else "-Inf"
    if x == 0:
        return "-0" if str(x).startswith("-") else "0"
    sign, digits, exponent = Decimal(repr(x)).normalize().as_tuple()
    assert isinstance(exponent, int)
    places = "".join(map(str, digits))
    point = len(places) + exponent  # where the decimal point falls in the digits
    e = point - 1
    if e < -4 or e >= 6:
        mantissa = places[0] + ("." + places[1:] if len(places) > 1 else "")
        text = f"{mantissa}e{e:+03d}"
    elif point <= 0:
        text = "0." + "0" * -point + places
    elif point >= len(places):
        text = places + "0" * (point - len(places))
    else:
        text = places[:point] + "." + places[point:]
    return ("-" if sign else "") + text


def _json_numbers(value: Any) -> Any:
    """Integral floats as ints: encoding/json writes 2.0 as 2."""
    if isinstance(value, float) and value == value and abs(value) < 1e21 and value == int(value):
        return int(value)
    if isinstance(value, dict):
        return {k: _json_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_numbers(v) for v in value]
    return value


def go_json(value: Any, indent: int | None = None) -> str:
    """encoding/json's Marshal (MarshalIndent with `indent`): keys sorted, <, > and & escaped,
    integral floats bare."""
    separators = (",", ":") if indent is None else (",", ": ")
    text = json.dumps(_json_numbers(value), indent=indent, separators=separators, sort_keys=True,
                      ensure_ascii=False, default=str)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def go_type(value: Any) -> str:
    """The Go type a JSON value decodes to, for client-go's messages."""
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    return "interface {}"
