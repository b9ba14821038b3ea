r"""Read Pod manifests (YAML or JSON, one or many documents) into the model, as the API server would.

The pipeline for each document: bounded parse -> defaults -> conversion -> validation. Every problem
ends in one `SpecError` carrying all FieldErrors; no other exception leaves this module.

Input is read by `sandbox.spec.source` (regular files and `-` for standard input, nothing else).
Hostile input (security-reliability §3) is refused before PyYAML builds any object: the input is capped
at 10 MiB (the kubelet's `maxConfigLength`), then libyaml's event stream is scanned for nesting depth,
alias use (a billion-laughs file is small but expands without bound in any later walk), recursive
aliases, duplicate mapping keys (PyYAML keeps the last one silently; `kubectl --validate=strict`
rejects them) and tags beyond YAML's core scalars, maps and sequences. Only then does `CSafeLoader`
construct the documents, with integer, float and boolean constructors that turn a bad or out-of-range
literal into an error at its line (an integer beyond 64 bits is no Kubernetes number; a 5,000-digit one
would otherwise hit Python's int-to-string limit).

Where libyaml and kubectl's reader (sigs.k8s.io/yaml over go-yaml) disagree on a real file, the file is
read as kubectl reads it, narrowly: go-yaml accepts `\'` in a double-quoted scalar as `'` (libyaml
refuses it), so a double-quoted scalar libyaml refuses for exactly that escape has it rewritten to
`\x27` and the input is read again (`_Source`). Everything else stays as strict as libyaml.
"""

from __future__ import annotations

import base64
import binascii
import re

import yaml  # no stubs in the venv; only this module uses yaml

from sandbox.errors import FieldError, SpecError
from sandbox.spec import defaults
from sandbox.spec.convert import Converter, child, entry, format_value, to_dict
from sandbox.spec.model import ConfigMap, Manifests, ObjectMeta, Pod, Secret
from sandbox.spec.source import MAX_BYTES, STDIN, read_manifest, source_name
from sandbox.spec.validate import validate_config_map, validate_pod, validate_secret

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any, ClassVar

MAX_DEPTH = 64  # a Pod needs < 30 levels; libyaml's recursive C code crashes far deeper
MAX_ALIASES = 100
MAX_ALIAS_NODES = 10_000  # nodes that aliases may add to a document in total, counted expanded
# A 200-container Pod has some 20,000 nodes. Beyond these the input is not a manifest, and refusing it
# early keeps the time to an answer well under a second for any input that passes the size cap.
MAX_NODES = 500_000
MAX_DOCUMENTS = 1_000
# Re-reads after rewriting a `\'` escape: each costs a pre-scan up to the scalar at fault (some 2 MB/s
# of dense YAML) and an encoding of the whole text (PyYAML hands libyaml the input whole, ~1 GB/s).
# The total is bounded by count and by that work, in characters: about a second at worst. Real files
# have a few such strings; past the bounds the escape is reported as libyaml reports it.
MAX_ESCAPE_FIXES = 100
MAX_ESCAPE_REREAD = 2 * 1024 * 1024
SUPPORTED_KINDS = ("Pod", "ConfigMap", "Secret", "List")
_KINDS_HINT = f"supported kinds: {', '.join(SUPPORTED_KINDS)}"

_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_VALUE = "tag:yaml.org,2002:value"
_CORE = "tag:yaml.org,2002:"
# Explicit tags a manifest may carry: the core schema's scalars, maps and sequences. `!!binary`,
# `!!set`, `!!omap`, `!!timestamp` and every application tag (`!!python/...`, `!foo`) are refused.
_SCALAR_TAGS = frozenset(_CORE + t for t in ("str", "int", "float", "bool", "null"))
_MAP_TAGS = frozenset((_CORE + "map",))
_SEQ_TAGS = frozenset((_CORE + "seq",))
INT64_MIN = -(1 << 63)
UINT64_MAX = (1 << 64) - 1
INT_RANGE = "integer out of range: numbers must fit in 64 bits"


class _ValueProblem(yaml.MarkedYAMLError):  # type: ignore[misc]
    """A scalar the constructors refuse (bad or out-of-range literal), at its mark."""


class _Loader(yaml.CSafeLoader):  # type: ignore[misc]
    """CSafeLoader without the YAML 1.1 timestamp and `=` resolvers.

    sigs.k8s.io/yaml hands `2024-01-01` to the API server as a string, so an `env[].value` or
    annotation that looks like a date must stay a string; a bare `=` has no safe constructor at all.
    """

    yaml_implicit_resolvers: ClassVar[dict[str, list[tuple[str, Any]]]] = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_TIMESTAMP, _VALUE)]
        for first, resolvers in yaml.CSafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_yaml_int(self, node: Any) -> int:
        # Bounded before int(): a literal of more significant characters than any 64-bit number
        # needs (64 binary digits, 20 decimal, a dozen sexagesimal groups) is refused unread, so
        # neither Python's 4,300-digit limit nor the sexagesimal loop's big-number maths is reached.
        digits = str(node.value).replace("_", "").lstrip("+-")
        if digits[:2] in ("0b", "0x"):
            digits = digits[2:]
        if len(digits.lstrip("0")) > 64:
            raise _refused(node, INT_RANGE)
        try:
            value = int(super().construct_yaml_int(node))
        except (ValueError, TypeError):
            raise _refused(node, "not a valid integer") from None
        if not INT64_MIN <= value <= UINT64_MAX:
            raise _refused(node, INT_RANGE)
        return value

    def construct_yaml_float(self, node: Any) -> float:
        try:
            return float(super().construct_yaml_float(node))
        except (ValueError, TypeError, OverflowError):
            raise _refused(node, "not a valid number") from None

    def construct_yaml_bool(self, node: Any) -> bool:
        try:
            return bool(super().construct_yaml_bool(node))
        except (KeyError, AttributeError):
            raise _refused(node, "not a valid boolean") from None


# go-yaml v2 (sigs.k8s.io/yaml: how kubectl and the API server read YAML) takes a plain scalar as a
# float when its yamlStyleFloat pattern matches and strconv.ParseFloat reads it: `1e3`, `1.5E2` and
# `2e-1` too, which YAML 1.1 keeps as strings (its floats need a dot, and a sign in the exponent).
# Tried after YAML 1.1's own int and float patterns, which every other number literal matches.
_Loader.add_implicit_resolver(_CORE + "float",
                              re.compile(r"^[-+]?(?:\.[0-9_]+|[0-9][0-9_]*(?:\.[0-9_]*)?)[eE][-+]?[0-9_]+$"),
                              list("-+.0123456789"))
_Loader.add_constructor(_CORE + "int", _Loader.construct_yaml_int)
_Loader.add_constructor(_CORE + "float", _Loader.construct_yaml_float)
_Loader.add_constructor(_CORE + "bool", _Loader.construct_yaml_bool)


def _refused(node: Any, problem: str) -> _ValueProblem:
    text = str(node.value)
    shown = text if len(text) <= 40 else text[:37] + "..."
    if not shown.isprintable():
        shown = format_value(shown)
    return _ValueProblem(problem=f"{shown}: {problem}", problem_mark=node.start_mark)


def load_pod_file(path: str) -> Pod:
    """The one Pod in the file at `path` (`-`: standard input); SpecError (naming the file) on any
    problem."""
    return _only_pod(load_manifests(path), source_name(path))


def load_pod_text(text: str | bytes, source: str = "") -> Pod:
    """The one Pod in `text`; SpecError (prefixed with `source`) on any problem."""
    return _only_pod(load_manifests_text(text, source), source)


def load_manifests(path: str) -> Manifests:
    """Every Pod, ConfigMap and Secret in the file at `path` (`-`: standard input; multi-document and
    `kind: List`). Only a regular file or `-` is read (`sandbox.spec.source.read_manifest`)."""
    return load_manifests_text(read_manifest(path), source_name(path))


def load_manifests_text(text: str | bytes, source: str = "") -> Manifests:
    errors: list[FieldError] = []
    try:
        manifests = _load(text, errors)
    except RecursionError:
        errors.append(FieldError("<input>", "Invalid value: document nested too deeply"))
    except Exception as exc:  # noqa: BLE001 - the contract is "SpecError, never a traceback"
        errors.append(FieldError("<input>", f"Internal error: {type(exc).__name__}: {exc}"))
    if errors:
        raise SpecError(errors, source)
    return manifests


def decode_documents(data: str | bytes, errors: list[FieldError]) -> list[Any]:
    """The bounded loader's documents of `data` (plain data, no model yet); problems go to
    `errors`. For readers of other kinds (the agent's KubeletConfiguration, a static pod's file)."""
    text = _decode(data, errors)
    return _documents(text, errors) if text is not None else []


def pod_of_document(doc: dict[str, Any], where: str, errors: list[FieldError]) -> Pod | None:
    """One decoded document through the same defaults and validation as a manifest file's Pod;
    None (with `errors` filled) when it is no valid Pod."""
    collector = _Collector(errors)
    collector.add(doc, where)
    return collector.pods[0] if collector.pods and not errors else None


def pod_to_dict(pod: Pod) -> dict[str, Any]:
    """The Pod as a Kubernetes-style camelCase dict (absent and empty optional fields left out)."""
    return to_dict(pod, "Pod")


def _only_pod(manifests: Manifests, source: str) -> Pod:
    if len(manifests.pods) == 1:
        return manifests.pods[0]
    if not manifests.pods:
        found = [f"ConfigMap/{o.metadata.name}" for o in manifests.config_maps]
        found += [f"Secret/{o.metadata.name}" for o in manifests.secrets]
        others = f" (found: {', '.join(found)})" if found else ""
        detail = f"Required value: no Pod document{others}"
    else:
        detail = f"Invalid value: {len(manifests.pods)} Pod documents: expected exactly one"
    raise SpecError([FieldError("kind", detail)], source)


# --- parsing -----------------------------------------------------------------------------------------


def _decode(text: str | bytes, errors: list[FieldError]) -> str | None:
    if len(text) > MAX_BYTES:
        errors.append(FieldError("<input>", f"Too long: must have at most {MAX_BYTES} bytes"))
        return None
    if isinstance(text, str):
        return text
    try:
        decoded = text.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        errors.append(FieldError("<input>", f"Invalid value: not UTF-8 text (byte {exc.start})"))
        return None
    return decoded


class _Source:
    """The text handed to libyaml, with the `\\'` escapes rewritten so far, and the way back from
    libyaml's marks to lines and columns of the input as written."""

    def __init__(self, text: str) -> None:
        self.original = text
        self.text = text
        self.fixes: list[int] = []  # index in `text` of each rewritten escape (`\\x27`, 2 longer)
        self.rescans = 0
        self.reread = 0

    def mark(self, mark: Any) -> str:
        line_start = mark.index - mark.column
        shift = 2 * sum(1 for f in self.fixes if line_start <= f < mark.index)
        return f"line {mark.line + 1}, column {mark.column - shift + 1}"

    def original_index(self, index: int) -> int:
        return index - 2 * sum(1 for f in self.fixes if f < index)

    def fix_quote_escape(self, exc: yaml.YAMLError) -> bool:
        """Rewrite the double-quoted scalar libyaml refused for a `\\'` escape, as go-yaml reads it
        (`\\'` is `'`). False when the error is anything else, or the re-read budget is spent."""
        problem, start = getattr(exc, "problem_mark", None), getattr(exc, "context_mark", None)
        if not isinstance(exc, yaml.scanner.ScannerError) or problem is None or start is None:
            return False
        text, at, begin = self.text, problem.index, start.index
        if not (begin < at and text[at:at + 2] == "\\'" and text[begin:begin + 1] == '"'):
            return False
        self.rescans += 1
        self.reread += at + len(text) // 16
        if self.rescans > MAX_ESCAPE_FIXES or self.reread > MAX_ESCAPE_REREAD:
            return False
        out: list[str] = []
        length = 0  # characters written after the opening quote
        i = begin + 1
        while i < len(text):
            ch = text[i]
            if ch == "\\" and i + 1 < len(text):
                pair = text[i:i + 2]
                if pair == "\\'":
                    self.fixes.append(begin + 1 + length)
                    pair = "\\x27"
                out.append(pair)
                length += len(pair)
                i += 2
                continue
            out.append(ch)
            length += 1
            i += 1
            if ch == '"':
                break
        self.text = text[:begin + 1] + "".join(out) + text[i:]
        return True


def _syntax_error(exc: yaml.YAMLError, src: _Source) -> FieldError:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = src.mark(mark) if mark is not None else "<input>"
        problem = " ".join(str(exc.problem or "invalid YAML").split())
        if isinstance(exc, _ValueProblem):
            return FieldError(where, f"Invalid value: {problem}")
        if "maximum nesting depth" in problem:  # libyaml's own limit (1000), met before ours
            return FieldError(where, f"Invalid value: nested more than {MAX_DEPTH} levels deep")
        context = f" {exc.context}" if exc.context else ""
        hint = _space_hint(src.text, mark.line) if mark is not None else ""
        return FieldError(where, f"Invalid value: YAML syntax error: {problem}{context}{hint}")
    if isinstance(exc, yaml.reader.ReaderError):
        position = src.original_index(exc.position)
        before = src.original[:position]
        where = f"line {before.count(chr(10)) + 1}, column {position - before.rfind(chr(10))}"
        return FieldError(where, f"Invalid value: unacceptable character #x{exc.character:04x}: {exc.reason}")
    return FieldError("<input>", "Invalid value: YAML syntax error: " + " ".join(str(exc).split()))


# Characters that look like spaces but are not YAML white space: a value followed by them turns into
# text, and the next indented line then fails to parse far from the real cause.
_LOOKALIKE_SPACES = {"\u3000": "IDEOGRAPHIC SPACE", "\u00a0": "NO-BREAK SPACE", "\u2009": "THIN SPACE",
                     "\u200b": "ZERO WIDTH SPACE", "\ufeff": "ZERO WIDTH NO-BREAK SPACE"}


def _space_hint(text: str, line: int) -> str:
    lines = text.splitlines()
    found: dict[str, list[int]] = {}
    for n in range(max(0, line - 2), min(len(lines), line + 1)):
        for ch in _LOOKALIKE_SPACES:
            if ch in lines[n]:
                found.setdefault(ch, []).append(n + 1)
    return "".join(f" (U+{ord(ch):04X} {_LOOKALIKE_SPACES[ch]} on line {', '.join(map(str, ns))} is not white "
                   "space in YAML)" for ch, ns in found.items())


class _Frame:
    """An open mapping or sequence in the event scan. Its path is only built for an error message."""

    __slots__ = ("anchor", "index", "is_map", "key", "keys", "parent", "size", "slot", "want_key")

    def __init__(self, is_map: bool, anchor: str | None, parent: _Frame | None, slot: str | int) -> None:
        self.is_map = is_map
        self.keys: set[str] = set()
        self.want_key = True
        self.index = 0
        self.size = 1
        self.anchor = anchor
        self.parent = parent
        self.slot = slot  # key in the parent mapping, index in the parent sequence, or document number
        self.key = ""

    @property
    def path(self) -> str:
        if self.parent is None:
            return f"<document {self.slot}>"
        if self.parent.is_map:
            return _join(self.parent.path, str(self.slot))
        return f"{self.parent.path}[{self.slot}]"


def _prescan(src: _Source, errors: list[FieldError]) -> bool:
    """Refuse deep nesting, alias abuse, duplicate keys and unsupported tags, from libyaml's event
    stream."""
    _mark = src.mark
    stack: list[_Frame] = []
    anchors: dict[str, int] = {}
    aliases = alias_nodes = nodes = 0
    documents = 0
    for event in yaml.parse(src.text, Loader=_Loader):
        kind = type(event)
        if kind is yaml.DocumentStartEvent:
            documents += 1
            anchors.clear()  # anchors are scoped to their document
            if documents > MAX_DOCUMENTS:
                errors.append(FieldError("<input>", f"Too many: more than {MAX_DOCUMENTS} YAML documents"))
                return False
            continue
        if kind not in _NODE_EVENTS and kind not in _END_EVENTS:
            continue
        nodes += 1
        if nodes > MAX_NODES:
            errors.append(FieldError("<input>", f"Too many: more than {MAX_NODES} YAML nodes "
                                                f"({_mark(event.start_mark)})"))
            return False
        parent = stack[-1] if stack else None
        if kind in _END_EVENTS:
            done = stack.pop()
            if done.anchor is not None:
                anchors[done.anchor] = done.size
            _add_child(stack, done.size)
            continue
        if parent is not None and parent.is_map and parent.want_key:
            if kind is yaml.ScalarEvent and event.value != "<<":  # `<<` merge keys may repeat
                if event.value in parent.keys:
                    errors.append(FieldError(_join(parent.path, event.value),
                                             f"Duplicate value: {format_value(event.value)}: mapping key "
                                             f"repeated ({_mark(event.start_mark)})"))
                    return False
                parent.keys.add(event.value)
            parent.key = event.value if kind is yaml.ScalarEvent else "?"
        if kind is not yaml.AliasEvent and event.tag is not None and event.tag not in (
                _SCALAR_TAGS if kind is yaml.ScalarEvent else _MAP_TAGS if kind is yaml.MappingStartEvent
                else _SEQ_TAGS):
            tag = "!!" + event.tag[len(_CORE):] if event.tag.startswith(_CORE) else event.tag
            errors.append(FieldError(shorten(_node_path(parent, documents)),
                                     f"Invalid value: YAML tag {format_value(tag)} is not supported: only "
                                     f"strings, numbers, booleans, null, maps and sequences "
                                     f"({_mark(event.start_mark)})"))
            return False
        if kind is yaml.AliasEvent:
            aliases += 1
            size = anchors.get(event.anchor)
            if size is None:
                open_anchor = any(f.anchor == event.anchor for f in stack)
                detail = "recursive alias" if open_anchor else "undefined alias"
                errors.append(FieldError(_node_path(parent, documents), f"Invalid value: {detail} *{event.anchor} ({_mark(event.start_mark)})"))
                return False
            alias_nodes += size
            if aliases > MAX_ALIASES or alias_nodes > MAX_ALIAS_NODES:
                errors.append(FieldError(_node_path(parent, documents), f"Invalid value: too many YAML aliases (more than {MAX_ALIASES} "
                                               f"or expanding to more than {MAX_ALIAS_NODES} nodes) "
                                               f"({_mark(event.start_mark)})"))
                return False
            _add_child(stack, size)
            continue
        if kind is yaml.ScalarEvent:
            if event.anchor is not None:
                anchors[event.anchor] = 1
            _add_child(stack, 1)
            continue
        if len(stack) >= MAX_DEPTH:
            errors.append(FieldError(shorten(_node_path(parent, documents)), f"Invalid value: nested more than {MAX_DEPTH} levels deep "
                                           f"({_mark(event.start_mark)})"))
            return False
        slot: str | int = documents if parent is None else (
            parent.index if not parent.is_map else "?" if parent.want_key else parent.key)
        stack.append(_Frame(kind is yaml.MappingStartEvent, event.anchor, parent, slot))
    return True


_NODE_EVENTS = (yaml.ScalarEvent, yaml.AliasEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent)
_END_EVENTS = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


def shorten(path: str) -> str:
    return path if len(path) <= 120 else path[:117] + "..."


def _add_child(stack: list[_Frame], size: int) -> None:
    """Account a finished node to its parent and move the parent to its next key/value/index."""
    if not stack:
        return
    parent = stack[-1]
    parent.size += size
    if parent.is_map:
        parent.want_key = not parent.want_key
    else:
        parent.index += 1


def _node_path(parent: _Frame | None, document: int) -> str:
    if parent is None:
        return f"<document {document}>"
    if parent.is_map:
        return parent.path if parent.want_key else _join(parent.path, parent.key)
    return f"{parent.path}[{parent.index}]"


def _join(path: str, key: str) -> str:
    return child("" if path.startswith("<document") else path, key)


# Go's unicode.IsSpace: what apimachinery's YAMLOrJSONDecoder trims before it looks for JSON's `{`
_SNIFF_SPACE = " \t\n\r\v\f\x85\xa0"


def _is_json(text: str) -> bool:
    """Whether kubectl would decode `text` as JSON: its first non-space character is `{`."""
    for ch in text:
        if ch not in _SNIFF_SPACE:
            return ch == "{"
    return False


def _documents(text: str, errors: list[FieldError]) -> list[Any]:
    if _is_json(text):
        from sandbox.spec import jsonload  # JSON as kubectl decodes it, not as YAML 1.1 (its docstring)

        values = jsonload.documents(text, errors)
        if values is not None:
            return values
    src = _Source(text)
    while True:
        try:
            if not _prescan(src, errors):
                return []
            break
        except yaml.YAMLError as exc:
            if src.fix_quote_escape(exc):
                continue
            errors.append(_syntax_error(exc, src))
            return []
    try:
        return [doc for doc in yaml.load_all(src.text, Loader=_Loader) if doc is not None]
    except yaml.YAMLError as exc:
        errors.append(_syntax_error(exc, src))
        return []


# --- documents -> model ------------------------------------------------------------------------------


class _Collector:
    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        self.pods: list[Pod] = []
        self.config_maps: list[ConfigMap] = []
        self.secrets: list[Secret] = []

    def add(self, doc: object, where: str) -> None:
        """One decoded document (or List item); `where` prefixes its error paths."""
        if not isinstance(doc, dict):
            self.errors.append(FieldError(where.rstrip(".") or "<document>",
                                          f"Invalid value: {format_value(doc)}: must be of type object"))
            return
        kind = doc.get("kind")
        if kind is None:
            self.errors.append(FieldError(f"{where}kind", "Required value"))
            return
        if doc.get("apiVersion") is None:
            self.errors.append(FieldError(f"{where}apiVersion", "Required value"))
            return
        if kind == "List" or (isinstance(kind, str) and kind.endswith("List") and "items" in doc):
            self._list(doc, where)
        elif kind == "Pod":
            self._pod(doc, where)
        elif kind == "ConfigMap":
            self._config_map(doc, where)
        elif kind == "Secret":
            self._secret(doc, where)
        else:
            # kubectl would send any kind to the API server; a node runs Pods, and reads only the
            # ConfigMaps and Secrets they use. Anything else would be silently ignored: refuse it.
            self.errors.append(FieldError(f"{where}kind", f"Invalid value: {format_value(kind)}: sandbox runs "
                                                          f"Pods; {_KINDS_HINT}"))

    def _list(self, doc: dict[str, Any], where: str) -> None:
        items = doc.get("items")
        if items is None:
            return
        if not isinstance(items, list):
            self.errors.append(FieldError(f"{where}items", f"Invalid value: {format_value(items)}: must be of "
                                                           "type array"))
            return
        for i, item in enumerate(items):
            self.add(item, f"{where}items[{i}].")

    def _convert(self, doc: dict[str, Any], type_name: str, where: str) -> tuple[Any, Converter]:
        conv = Converter()
        obj = conv.convert_object(doc, type_name, "")
        if doc.get("apiVersion") != "v1":
            conv.fail("apiVersion", f"Unsupported value: {format_value(doc.get('apiVersion'))}: supported "
                                    'values: "v1"')
        return obj, conv

    def _report(self, conv: Converter, semantic: list[FieldError], where: str) -> bool:
        found = conv.errors + [e for e in semantic if not _already_reported(e, conv.bad_paths)]
        self.errors.extend(FieldError(where + e.path, e.detail) for e in _unique(found))
        return not found

    def _pod(self, doc: dict[str, Any], where: str) -> None:
        defaults.default_pod(doc)
        pod, conv = self._convert(doc, "Pod", where)
        if self._report(conv, validate_pod(pod), where):
            self.pods.append(pod)

    def _config_map(self, doc: dict[str, Any], where: str) -> None:
        raw, conv = self._convert(doc, "ConfigMap", where)
        binary = _base64_map(conv, raw.get("binaryData", {}), "binaryData")
        cm = ConfigMap(metadata=raw.get("metadata", ObjectMeta()), data=raw.get("data", {}),
                       binary_data=binary, immutable=raw.get("immutable"))
        if self._report(conv, validate_config_map(cm), where):
            self.config_maps.append(cm)

    def _secret(self, doc: dict[str, Any], where: str) -> None:
        defaults.default_secret(doc)
        raw, conv = self._convert(doc, "Secret", where)
        data = dict(_base64_map(conv, raw.get("data", {}), "data"))
        # The API server merges stringData over data on write.
        data.update({k: v.encode() for k, v in raw.get("stringData", {}).items()})
        secret = Secret(metadata=raw.get("metadata", ObjectMeta()), data=_frozen(data),
                        type=raw.get("type", "Opaque"), immutable=raw.get("immutable"))
        if self._report(conv, validate_secret(secret), where):
            self.secrets.append(secret)


def _frozen(data: dict[str, bytes]) -> Any:
    from types import MappingProxyType

    return MappingProxyType(data)


def _base64_map(conv: Converter, values: Any, key: str) -> Any:
    out: dict[str, bytes] = {}
    for name, text in values.items():
        try:
            out[name] = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            conv.fail(entry(key, name), f"Invalid value: {format_value(text)}: illegal base64 data")
    return _frozen(out)


def _already_reported(error: FieldError, bad_paths: set[str]) -> bool:
    """True when validation complains about a field the converter already rejected (or its parent
    lost a required child because of it)."""
    path = error.path
    for bad in bad_paths:
        if path == bad or path.startswith((bad + ".", bad + "[")):
            return True
        if error.detail.startswith("Required value") and bad.startswith((path + ".", path + "[")):
            return True
    return False


def _unique(errors: list[FieldError]) -> Iterator[FieldError]:
    seen: set[tuple[str, str]] = set()
    for e in errors:
        if (e.path, e.detail) not in seen:
            seen.add((e.path, e.detail))
            yield e


def _load(text: str | bytes, errors: list[FieldError]) -> Manifests:
    decoded = _decode(text, errors)
    if decoded is None:
        return Manifests()
    docs = _documents(decoded, errors)
    collector = _Collector(errors)
    for n, doc in enumerate(docs, 1):
        collector.add(doc, f"<document {n}> " if len(docs) > 1 else "")
    manifests = Manifests(tuple(collector.pods), tuple(collector.config_maps), tuple(collector.secrets))
    if not errors and not (manifests.pods or manifests.config_maps or manifests.secrets):
        what = "no document (it is empty, or only comments and ---)" if not docs else "only empty Lists"
        errors.append(FieldError("kind", f"Required value: the input holds {what}; {_KINDS_HINT}"))
    return manifests


__all__ = ["MAX_BYTES", "STDIN", "SUPPORTED_KINDS", "load_manifests", "load_manifests_text", "load_pod_file",
           "load_pod_text", "pod_to_dict", "read_manifest", "source_name"]
