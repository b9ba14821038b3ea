"""kubectl's label selectors (`-l`, `--selector`): apimachinery's labels.Parse and its matching.

The grammar is the API's: requirements separated by commas, each `key`, `!key`, `key=value`
(`==` alike), `key!=value`, `key in (v1,v2)`, `key notin (v1,v2)`, `key>N` or `key<N`. Keys are
qualified names and values label values, checked as the API server checks labels
(spec/validate.py); an error is kubectl's `unable to parse requirement: ...` or `couldn't parse
the selector string ...`. Matching, as Requirement.Matches: `!=` and `notin` match a pod without
the label; `>`/`<` need the label to hold an integer; an empty selector matches every pod.

Field selectors (`--field-selector`) are fields.ParseSelector's: `field=value`, `==`, `!=`, joined
by commas (a backslash escapes `,`, `=` and itself), over the fields the API server lets pods be selected by
(pod.ToSelectableFields); another field is refused in the API server's words.
"""

from __future__ import annotations

from sandbox.errors import SandboxError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

EXISTS, DOES_NOT_EXIST = "exists", "!"
IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS, GREATER, LESS = "in", "notin", "=", "==", "!=", "gt", "lt"
# labels.Parse's binaryOperators, in its order, as its "expected:" lists them
BINARY = (IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS, GREATER, LESS)
_SYMBOLS = {"!=": NOT_EQUALS, "==": DOUBLE_EQUALS, "=": EQUALS, ">": GREATER, "<": LESS, "!": DOES_NOT_EXIST,
            "(": "(", ")": ")", ",": ","}
_SPECIAL = frozenset("!=(),<>")
_IDENT, _END = "identifier", "end of string"

Requirement = tuple[str, str, tuple[str, ...]]  # (key, operator, values)


class SelectorError(SandboxError):
    """A selector kubectl would refuse (exit 1, nothing listed or deleted)."""


def parse(text: str) -> tuple[Requirement, ...]:
    """The requirements of `text`, all of which a pod's labels must meet."""
    try:
        return _Parser(text).parse()
    except SelectorError as e:
        raise SelectorError(f"couldn't parse the selector string \"{text}\": {e}") from None


def matches(selector: tuple[Requirement, ...], labels: Mapping[str, str]) -> bool:
    return all(_meets(requirement, labels) for requirement in selector)


def _meets(requirement: Requirement, labels: Mapping[str, str]) -> bool:
    key, op, values = requirement
    if op in (IN, EQUALS, DOUBLE_EQUALS):
        return key in labels and labels[key] in values
    if op in (NOT_IN, NOT_EQUALS):
        return key not in labels or labels[key] not in values
    if op == EXISTS:
        return key in labels
    if op == DOES_NOT_EXIST:
        return key not in labels
    try:  # GREATER, LESS: an integer label (strconv.ParseInt); the value was checked at parse time
        have = int(labels[key], 10) if _integer(labels.get(key, "")) else None
    except ValueError:
        have = None
    if have is None:
        return False
    want = int(values[0], 10)
    return have > want if op == GREATER else have < want


def _integer(text: str) -> bool:
    """strconv.ParseInt(text, 10, 64) succeeds: an optional sign, ASCII digits, within int64 (a
    label value may hold 63 digits, which Go refuses and Python's int would take)."""
    digits = text[1:] if text[:1] in "+-" else text
    return digits.isascii() and digits.isdigit() and -(1 << 63) <= int(text, 10) < (1 << 63)


def _tokens(text: str) -> list[tuple[str, str]]:
    """(kind, literal) of each token, labels.Lexer's: identifiers run to a space or a special
    character; `in`/`notin` are keywords only where an operator is expected (the parser decides)."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in _SPECIAL:
            two = text[i:i + 2]
            if two in ("!=", "=="):
                out.append((_SYMBOLS[two], two))
                i += 2
            else:
                out.append((_SYMBOLS[ch], ch))
                i += 1
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in _SPECIAL:
                i += 1
            out.append((_IDENT, text[start:i]))
    return out


class _Parser:
    """labels.Parser: one pass over the tokens with one token of look-ahead."""

    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.at = 0

    def lookahead(self) -> tuple[str, str]:
        return self.tokens[self.at] if self.at < len(self.tokens) else (_END, "")

    def consume(self) -> tuple[str, str]:
        token = self.lookahead()
        self.at += 1
        return token

    def parse(self) -> tuple[Requirement, ...]:
        requirements: list[Requirement] = []
        while True:
            kind, literal = self.lookahead()
            if kind == _END:
                return tuple(requirements)
            if kind not in (_IDENT, DOES_NOT_EXIST):
                raise SelectorError(f"found '{literal}', expected: !, identifier, or 'end of string'")
            try:
                requirements.append(self.requirement())
            except SelectorError as e:
                raise SelectorError(f"unable to parse requirement: {e}") from None
            kind, literal = self.consume()
            if kind == _END:
                return tuple(requirements)
            if kind != ",":
                raise SelectorError(f"found '{literal}', expected: ',' or 'end of string'")
            after, literal = self.lookahead()
            if after not in (_IDENT, DOES_NOT_EXIST):
                raise SelectorError(f"found '{literal}', expected: identifier after ','")

    def requirement(self) -> Requirement:
        op = ""
        kind, key = self.consume()
        if kind == DOES_NOT_EXIST:
            op = DOES_NOT_EXIST
            kind, key = self.consume()
        if kind != _IDENT:
            raise SelectorError(f"found '{key}', expected: identifier")
        if self.lookahead()[0] in (_END, ",") or op == DOES_NOT_EXIST:  # `!key` takes no operator
            _check(key, op or EXISTS, ())
            return key, op or EXISTS, ()
        kind, literal = self.consume()
        op = {"in": IN, "notin": NOT_IN}.get(literal, "") if kind == _IDENT else kind
        if op not in BINARY:
            raise SelectorError(f"found '{literal}', expected: {', '.join(BINARY)}")
        values = self.values() if op in (IN, NOT_IN) else self.exact_value()
        _check(key, op, values)
        return key, op, values

    def values(self) -> tuple[str, ...]:
        kind, literal = self.consume()
        if kind != "(":
            raise SelectorError(f"found '{literal}' expected: '('")
        kind, literal = self.lookahead()
        if kind == ")":
            self.consume()
            return ("",)
        if kind not in (_IDENT, ","):
            raise SelectorError(f"found '{literal}', expected: ',', ')' or identifier")
        found: list[str] = []
        while True:  # parseIdentifiersList: "(,", ",," and ",)" stand for the empty value
            kind, literal = self.consume()
            if kind == _IDENT:
                found.append(literal)
                after, literal = self.lookahead()
                if after == ")":
                    break
                if after != ",":
                    raise SelectorError(f"found '{literal}', expected: ',' or ')'")
            elif kind == ",":
                after = self.lookahead()[0]
                if not found or after in (")", ","):
                    found.append("")
                if after == ")":
                    break
                if after == ",":
                    self.consume()
            else:
                raise SelectorError(f"found '{literal}', expected: ',', or identifier")
        self.consume()  # the ')'
        return tuple(dict.fromkeys(found))

    def exact_value(self) -> tuple[str, ...]:
        kind, literal = self.lookahead()
        if kind in (_END, ","):
            return ("",)
        self.consume()
        if kind != _IDENT:
            raise SelectorError(f"found '{literal}', expected: identifier")
        return (literal,)


def _check(key: str, op: str, values: tuple[str, ...]) -> None:
    """labels.NewRequirement's checks of the key and each value, in the API server's words (all of
    them, printed as an aggregate of several errors is)."""
    from sandbox.spec.validate import Errors, label_value, qualified_name

    errs = Errors()
    qualified_name(errs, "key", key)
    if op in (GREATER, LESS):
        for i, value in enumerate(values):
            if not _integer(value):
                errs.invalid(f"values[{i}]", value, "for 'Gt', 'Lt' operators, the value must be an integer")
    for i, value in enumerate(values):
        label_value(errs, f"values[{i}][{key}]", value)
    if errs:
        raise SelectorError(str(errs[0]) if len(errs) == 1 else f"[{', '.join(map(str, errs))}]")


def add_option(parser: Any, what: str = "pods", *, fields: bool = False) -> None:
    """`-l/--selector` (and `--field-selector`), as kubectl's verbs take them."""
    parser.add_argument("-l", "--selector", metavar="SELECTOR",
                        help=f"only the {what} whose labels match, e.g. app=web,tier!=db or 'env in (a,b)'")
    if fields:
        parser.add_argument("--field-selector", metavar="SELECTOR",
                            help="only the pods whose fields match, e.g. status.phase=Running,spec.nodeName!=a "
                                 f"(fields: {', '.join(FIELDS)})")


# pod.ToSelectableFields: what a pod can be selected by
FIELDS = ("metadata.name", "metadata.namespace", "spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
          "spec.serviceAccountName", "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName")
FieldTerm = tuple[str, bool, str]  # (field, equal: True for = and ==, False for !=, value)


def parse_fields(text: str, labels: str = "") -> tuple[FieldTerm, ...]:
    """fields.ParseSelector over the pods' fields (`labels`: the label selector, for the error)."""
    terms: list[FieldTerm] = []
    for part in sorted(_split_unescaped(text)):
        if not part:
            continue
        for i in range(len(part)):
            op = next((o for o in ("!=", "==", "=") if part.startswith(o, i)), "")
            if op:
                field, value = part[:i], _unescape(part[i + len(op):], text)
                break
        else:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        if field not in FIELDS:
            raise SelectorError(f'Unable to find "/v1, Resource=pods" that match label selector "{labels}", '
                                f'field selector "{text}": field label not supported: {field}')
        terms.append((field, op != "!=", value))
    return tuple(terms)


def _split_unescaped(text: str) -> list[str]:
    parts, current, escaped = [], "", False
    for ch in text:
        if escaped:
            current += "\\" + ch
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current + ("\\" if escaped else ""))
    return parts


def _unescape(value: str, text: str) -> str:
    """fields.UnescapeValue: a backslash before `,`, `=` or a backslash stands for that character;
    any other escape, or a bare `,` or `=`, is an error."""
    out, escaped = "", False
    for ch in value:
        if escaped:
            if ch not in "\\,=":
                raise SelectorError(f"invalid field selector: '{text}': invalid escape sequence: \\{ch}")
            out += ch
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in ",=":
            raise SelectorError(f"invalid field selector: '{text}': unescaped {ch} in value")
        else:
            out += ch
    if escaped:
        raise SelectorError(f"invalid field selector: '{text}': invalid escape sequence: \\")
    return out


def pod_fields(state: Mapping[str, Any], node: str) -> dict[str, str]:
    """A pod record's selectable fields, as `get -o json` and `-o wide` show them (`node`: the
    pod's node when its spec names none)."""
    manifest = state.get("manifest") or {}
    spec = manifest.get("spec") or {}
    status = state.get("status") or {}
    ips = [p.get("ip") for p in status.get("podIPs") or [] if isinstance(p, dict) and p.get("ip")]
    return {"metadata.name": str(state.get("name") or ""), "metadata.namespace": str(state.get("namespace") or ""),
            "spec.nodeName": str(spec.get("nodeName") or node), "spec.restartPolicy": str(spec.get("restartPolicy") or ""),
            "spec.schedulerName": str(spec.get("schedulerName") or ""),
            "spec.serviceAccountName": str(spec.get("serviceAccountName") or ""),
            "spec.hostNetwork": "true" if spec.get("hostNetwork") else "false",
            "status.phase": str(status.get("phase") or ""), "status.podIP": str(ips[0] if ips else status.get("podIP") or ""),
            "status.nominatedNodeName": str(status.get("nominatedNodeName") or "")}


class PodFilter:
    """A label selector and a field selector, both parsed: `admits` a pod record or not."""

    def __init__(self, labels: str | None, fields: str | None) -> None:
        import os

        self.labels = parse(labels or "")
        self.fields = parse_fields(fields or "", labels or "")
        self.node = os.uname().nodename

    def admits(self, state: Mapping[str, Any]) -> bool:
        if not matches(self.labels, pod_labels(state)):
            return False
        if not self.fields:
            return True
        values = pod_fields(state, self.node)
        return all((values[field] == value) == equal for field, equal, value in self.fields)


def pod_labels(state: Mapping[str, Any]) -> Mapping[str, str]:
    """A pod record's labels (its manifest's metadata.labels)."""
    return ((state.get("manifest") or {}).get("metadata") or {}).get("labels") or {}


def selected_pods(args: Any, namespace: str | None, text: str | None,
                  fields: str | None = None) -> dict[str, dict[str, Any]]:
    """The records of the pods of `namespace` (None: every namespace) whose labels match the
    selector `text` and whose fields match `fields`, by directory name in kubectl's order
    (get.read_pods)."""
    from sandbox.cli.get import read_pods

    chosen = PodFilter(text, fields)  # a bad selector is refused before anything is read
    return {entry: state for entry, state in read_pods(args, namespace).items() if chosen.admits(state)}
