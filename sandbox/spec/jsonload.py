r"""JSON manifests, read as kubectl reads them rather than as YAML.

kubectl (apimachinery's YAMLOrJSONDecoder) and the kubelet's static-pod reader (utilyaml.ToJSON)
take an input whose first non-space character is `{` for JSON: a stream of JSON values, decoded
by a JSON decoder. PyYAML's YAML 1.1 reads most JSON the same, not all of it: `1e3` is a string to
PyYAML and the number 1000 to kubectl, and libyaml refuses a surrogate-pair escape
(`"\ud83d\ude00"`, as `json.dumps` writes an emoji). So such input goes through the json module's
C scanner, with the YAML path's bounds (sandbox.spec.load): nesting depth, nodes, documents,
repeated keys (refused, as `kubectl --validate=strict` does; Go's decoder would keep the last),
integers within 64 bits. NaN and Infinity are no JSON (Go's decoder fails on them, Python's
takes them); a lone surrogate escape becomes U+FFFD, as Go's decoder makes it (Python would
keep a string no UTF-8 encoder takes). Input whose first value is no JSON is YAML that only
starts like it, and goes to libyaml as kubectl sends it (see `documents`). `json` (and the `re`
it imports) is loaded only for JSON input.
"""

from __future__ import annotations

from sandbox.errors import FieldError
from sandbox.spec.convert import child, format_value
from sandbox.spec.load import INT64_MIN, INT_RANGE, MAX_DEPTH, MAX_DOCUMENTS, MAX_NODES, UINT64_MAX, shorten

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from typing import Any

_JSON_SPACE = " \t\n\r"  # what may stand between two values of a JSON stream


class _NotJson(ValueError):
    """NaN or Infinity, which Python's decoder takes and Go's refuses as a syntax error."""


def _constant(literal: str) -> float:
    raise _NotJson(literal)


class _RepeatedKey(dict):  # type: ignore[type-arg]
    """An object in which `repeated` appeared more than once (its last value kept)."""

    repeated: str = ""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                repeated = _RepeatedKey(obj)
                repeated.repeated = key
                return repeated
            seen.add(key)
    return obj


def documents(text: str, errors: list[FieldError]) -> list[Any] | None:
    """Every value of the JSON stream `text` (documents that are not objects included: the caller
    refuses them by path); problems go to `errors`, and then nothing is returned. None when the
    first value is no JSON: the text is YAML that starts like JSON (a flow mapping such as
    `{kind: Pod, ...}`), which kubectl reads as YAML since Kubernetes 1.33 (apimachinery's
    YAMLOrJSONDecoder falls back when its JSON decoder fails on the first object; after one
    object decoded as JSON the stream stays JSON)."""
    import json

    # Numbers are the C scanner's own (a hook per number would be a Python call each: a 10 MiB
    # array of zeros took 2.5 s more); their range is checked in the walk.
    decoder = json.JSONDecoder(object_pairs_hook=_object, parse_constant=_constant)
    values: list[Any] = []
    nodes = 0
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos] in _JSON_SPACE:
            pos += 1
        if pos >= end:
            return values
        if len(values) >= MAX_DOCUMENTS:
            errors.append(FieldError("<input>", f"Too many: more than {MAX_DOCUMENTS} JSON documents"))
            return []
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            if not values:
                return None
            errors.append(FieldError(f"line {exc.lineno}, column {exc.colno}",
                                     f"Invalid value: JSON syntax error: {exc.msg}"))
            return []
        except _NotJson as exc:
            if not values:
                return None
            errors.append(FieldError(f"<document {len(values) + 1}>",
                                     f"Invalid value: JSON syntax error: {exc} is not a JSON value"))
            return []
        except RecursionError:  # the C scanner's own limit (~1000 levels), met before the walk's
            errors.append(FieldError(f"<document {len(values) + 1}>",
                                     f"Invalid value: nested more than {MAX_DEPTH} levels deep"))
            return []
        except ValueError:  # an integer literal beyond Python's int-to-string limit (4,300 digits)
            errors.append(FieldError(f"<document {len(values) + 1}>", f"Invalid value: {INT_RANGE}"))
            return []
        value, nodes = _checked(value, len(values) + 1, nodes, errors)
        if errors:
            return []
        values.append(value)


def _checked(value: Any, document: int, nodes: int, errors: list[FieldError]) -> tuple[Any, int]:
    """`value` walked without recursion: depth, node count, numbers, repeated keys and lone
    surrogates (replaced). Returns the value (a new one if the top was a string) and the node
    count so far; a problem goes to `errors` with the path of the node. Leaves are looked at in
    their container's loop and a path is made only for a problem (a path per node made the walk
    of 400,000 objects take 1.0 s)."""
    top = [value]
    stack: list[tuple[Any, Any, Any, int]] = [(top, None, None, 0)]  # container, its parent and slot there, depth
    while stack:
        container, parent, slot, depth = stack.pop()
        nodes += len(container)
        if nodes > MAX_NODES:
            errors.append(FieldError("<input>", f"Too many: more than {MAX_NODES} JSON nodes"))
            break
        if depth > MAX_DEPTH:
            errors.append(FieldError(shorten(_path_of(top, parent, slot, document)),
                                     f"Invalid value: nested more than {MAX_DEPTH} levels deep"))
            break
        if isinstance(container, dict):
            if type(container) is _RepeatedKey:
                _repeated(top, container, container.repeated, document, errors)
                break
            if not all(key.isascii() for key in container):
                container = _rekeyed(top, container, document, errors)
                if errors:
                    break
                parent[slot] = container
            pairs: Any = container.items()
        else:
            pairs = enumerate(container)
        for key, item in pairs:
            kind = type(item)
            if kind is str:
                if not item.isascii():
                    container[key] = _whole(item)
            elif kind is dict or kind is list or kind is _RepeatedKey:
                stack.append((item, container, key, depth + 1))
            elif kind is int:
                if not INT64_MIN <= item <= UINT64_MAX:
                    shown = str(item)
                    _refuse(top, container, key, document, f"{shown[:37]}..." if len(shown) > 40 else shown,
                            INT_RANGE, errors)
                    return value, nodes
            elif kind is float:
                if item - item != 0.0:  # 1e999: infinite, which no Kubernetes number is
                    _refuse(top, container, key, document, "number", "out of range for a 64-bit float", errors)
                    return value, nodes
    return top[0], nodes


def _refuse(top: list[Any], container: Any, key: Any, document: int, shown: str, problem: str,
            errors: list[FieldError]) -> None:
    errors.append(FieldError(_path_of(top, container, key, document), f"Invalid value: {shown}: {problem}"))


def _repeated(top: list[Any], obj: dict[str, Any], key: str, document: int, errors: list[FieldError]) -> None:
    errors.append(FieldError(_path_of(top, obj, key, document),
                             f"Duplicate value: {format_value(key)}: object key repeated"))


def _path_of(top: list[Any], container: Any, slot: Any, document: int) -> str:
    """The path of `container[slot]`, the container found by identity: made only for a problem."""
    if container is top:
        return f"<document {document}>"
    todo: list[tuple[Any, str]] = [(top[0], "")]
    while todo:
        node, path = todo.pop()
        if node is container:
            return f"{path}[{slot}]" if isinstance(slot, int) else child(path, slot)
        pairs = node.items() if isinstance(node, dict) else enumerate(node)
        for key, item in pairs:
            if isinstance(item, (dict, list)):
                todo.append((item, f"{path}[{key}]" if isinstance(key, int) else child(path, key)))
    return f"<document {document}>"


def _rekeyed(top: list[Any], obj: dict[str, Any], document: int, errors: list[FieldError]) -> dict[str, Any]:
    """`obj` with lone surrogates in its keys replaced; two keys that become one are repeated keys."""
    out: dict[str, Any] = {}
    for key, item in obj.items():
        key = _whole(key)
        if key in out:
            _repeated(top, obj, key, document, errors)
            return obj
        out[key] = item
    return out


def _whole(text: str) -> str:
    """`text` with each lone surrogate (an unpaired \\uD800-\\uDFFF escape) as U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in text)
    return text
