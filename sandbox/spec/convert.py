"""Decoded YAML/JSON -> model, and model -> camelCase dict, both driven by `schema.TYPES`.

The walker reports what the API server's strict decoder reports (unknown fields, wrong JSON types,
fields the OpenAPI schema requires, bad quantities), every problem with its field path, and keeps
going: a field that fails is left out of the object, and its path is remembered in `bad_paths` so
validation does not report the same mistake a second time.

Two rules go beyond the API server, for what a node hands to C and the kernel: a string (value or
map key, in any field) that contains a NUL character is refused (C would cut it there), and so is a
number that JSON cannot carry (`.inf`, `.nan`: kubectl's YAML-to-JSON step fails on them too).
"""

from __future__ import annotations

from _collections_abc import Mapping  # collections.abc without the collections package (spec/fields.py)

from sandbox.errors import FieldError
from sandbox.record import fields as dataclass_fields
from sandbox.spec.model import Quantity
from sandbox.spec.quantity import QUANTITY_ERROR, parse_quantity, quantity_from_number
from sandbox.spec.schema import TYPES, ObjectType

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from types import MappingProxyType
    from typing import Any

    from sandbox.spec.schema import Kind
else:
    MappingProxyType = type(type.__dict__)  # without `import types` (spec/model.py)

_NUL = "\0"
_NUL_DETAIL = "must not contain a NUL character (C strings end there)"
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_INT64_LIMIT = float(1 << 63)
_INT64_DETAIL = "must fit in a 64-bit signed integer"
_NON_FINITE = "must be a finite number (JSON has no infinity or NaN)"
_TYPE_NAMES = {
    "str": "string", "int": "integer", "bool": "boolean", "intstr": "integer or string",
    "qty": "quantity (string or number)", "list": "array", "map": "object", "obj": "object",
}
_MISSING = object()


def format_value(value: object) -> str:
    """A value as the API server prints it in errors: strings quoted, numbers and bools bare, else JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float) and value - value != 0.0:
        return ".nan" if value != value else ".inf" if value > 0 else "-.inf"  # as YAML writes them
    if isinstance(value, int) and value.bit_length() > 256:
        return f"<a {value.bit_length()}-bit integer>"  # repr would be long, or refused past 4300 digits
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        text = _quote(value)
    else:
        text = _json_ish(value, 0)
    return text if len(text) <= 120 else text[:117] + "..."


def _quote(text: str) -> str:
    import json  # only on the error path

    return json.dumps(text if len(text) <= 200 else text[:200] + "...", ensure_ascii=False)


def _json_ish(value: object, depth: int) -> str:
    # Bounded: error messages never walk a whole (possibly huge) document.
    if depth > 3:
        return "..."
    if isinstance(value, Mapping):
        items = list(value.items())[:5]
        body = ",".join(f"{_quote(str(k))}:{_json_ish(v, depth + 1)}" for k, v in items)
        return "{" + body + (",..." if len(value) > 5 else "") + "}"
    if isinstance(value, (list, tuple)):
        body = ",".join(_json_ish(v, depth + 1) for v in value[:5])
        return "[" + body + (",..." if len(value) > 5 else "") + "]"
    if isinstance(value, (str, bool, int, float)) or value is None:
        return format_value(value)
    return _quote(str(value))


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def child(path: str, key: str) -> str:
    """`path.key`; a key that is empty or not printable is shown quoted in brackets."""
    if not key or not key.isprintable():
        return f"{path}[{format_value(key)}]"
    return f"{path}.{key}" if path else key


def entry(path: str, key: str) -> str:
    """A map entry, `path[key]`, as the API server writes `metadata.labels[app]`."""
    return f"{path}[{key}]" if key.isprintable() else f"{path}[{format_value(key)}]"


class Converter:
    """One document's conversion; collects `errors` and the `bad_paths` they concern."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []
        self.bad_paths: set[str] = set()

    def fail(self, path: str, detail: str) -> object:
        self.errors.append(FieldError(path, detail))
        self.bad_paths.add(path)
        return _MISSING

    def unrepresentable(self, value: object, path: str) -> bool:
        """A string with a NUL, or a float JSON cannot carry: reported at `path`; True if so."""
        if type(value) is str and _NUL in value:
            self.fail(path, f"Invalid value: {format_value(value)}: {_NUL_DETAIL}")
            return True
        if type(value) is float and value - value != 0.0:  # inf or nan
            self.fail(path, f"Invalid value: {format_value(value)}: {_NON_FINITE}")
            return True
        return False

    def wrong_type(self, path: str, value: object, kind: Kind) -> object:
        expected = _TYPE_NAMES.get(kind[0], kind[0])
        return self.fail(path, f"Invalid value: {format_value(value)}: must be of type {expected}, "
                               f"not {_json_type(value)}")

    def convert_object(self, value: object, type_name: str, path: str) -> Any:
        otype = TYPES[type_name]
        if not isinstance(value, dict):
            return self.wrong_type(path, value, ("obj",))
        kwargs: dict[str, Any] = {}
        for key, raw in value.items():
            if not isinstance(key, str):
                self.fail(child(path, str(key)), f"Invalid value: {format_value(key)}: field names must be strings")
                continue
            if _NUL in key:
                self.fail(child(path, key), f"Invalid value: {format_value(key)}: {_NUL_DETAIL}")
                continue
            f = otype.fields.get(key)
            if f is None:
                self.fail(child(path, key), f"unknown field {format_value(key)}")
                continue
            if raw is None:  # JSON null: the field is absent (Go leaves the zero value)
                continue
            converted = self.value(raw, f.kind, child(path, key))
            if converted is _MISSING:
                continue
            if f.group is not None:
                kwargs.setdefault(f.group, {})[key] = converted
            else:
                kwargs[f.attr] = converted
        for f in otype.fields.values():
            if f.required and value.get(f.key) is None:
                self.fail(child(path, f.key), "Required value")
        return self._build(otype, kwargs)

    @staticmethod
    def _build(otype: ObjectType, kwargs: dict[str, Any]) -> Any:
        if otype.cls is None:
            return MappingProxyType(kwargs)
        for group in [g for g in kwargs if g.startswith("_")]:
            del kwargs[group]  # read but not modelled (Pod status)
        if "other_sources" in kwargs:
            kwargs["other_sources"] = MappingProxyType(kwargs["other_sources"])
        return otype.cls(**kwargs)

    def value(self, value: object, kind: Kind, path: str) -> Any:
        tag = kind[0]
        if self.unrepresentable(value, path):
            return _MISSING
        if tag == "str":
            return value if isinstance(value, str) else self.wrong_type(path, value, kind)
        if tag == "int":
            return self._int(value, path, kind)
        if tag == "bool":
            return value if isinstance(value, bool) else self.wrong_type(path, value, kind)
        if tag == "obj":
            return self.convert_object(value, kind[1], path)
        if tag == "list":
            return self._list(value, kind, path)
        if tag == "map":
            return self._map(value, kind, path)
        if tag == "intstr":
            return value if isinstance(value, str) else self._int(value, path, kind)
        if tag == "qty":
            return self.quantity(value, path)
        return self.convert_any(value, path)

    def _int(self, value: object, path: str, kind: Kind) -> Any:
        if isinstance(value, float) and value.is_integer():
            # YAML 80.0 reaches the API server as JSON 80; 1.0e+300 does not fit (checked as a
            # float: its integer would have 301 digits).
            if not _INT64_MIN <= value < _INT64_LIMIT:
                return self.fail(path, f"Invalid value: {format_value(value)}: {_INT64_DETAIL}")
            value = int(value)
        if type(value) is not int:
            return self.wrong_type(path, value, kind)
        if not _INT64_MIN <= value <= _INT64_MAX:
            return self.fail(path, f"Invalid value: {value}: {_INT64_DETAIL}")
        return value

    def _list(self, value: object, kind: Kind, path: str) -> Any:
        if not isinstance(value, list):
            return self.wrong_type(path, value, kind)
        out = []
        for i, item in enumerate(value):
            converted = self.value(item, kind[1], f"{path}[{i}]") if item is not None else _MISSING
            if item is None:
                self.fail(f"{path}[{i}]", "Invalid value: null: list items may not be null")
            if converted is not _MISSING:
                out.append(converted)
        return tuple(out)

    def _map(self, value: object, kind: Kind, path: str) -> Any:
        if not isinstance(value, dict):
            return self.wrong_type(path, value, kind)
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = _map_key(key)
            if name is None:
                self.fail(f"{path}[{format_value(key)}]", "Invalid value: map keys must be strings")
                continue
            if _NUL in name:
                self.fail(entry(path, name), f"Invalid value: {format_value(name)}: {_NUL_DETAIL}")
                continue
            converted = self.value(item, kind[1], entry(path, name))
            if converted is not _MISSING:
                out[name] = converted
        return MappingProxyType(out)

    def quantity(self, value: object, path: str) -> Any:
        q: Quantity | None
        if isinstance(value, str):
            q = parse_quantity(value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            q = quantity_from_number(value)
        else:
            return self.wrong_type(path, value, ("qty",))
        if q is None:
            return self.fail(path, f"Invalid value: {format_value(value)}: {QUANTITY_ERROR}")
        return q

    def convert_any(self, value: object, path: str) -> Any:
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                name = _map_key(key)
                if name is None:
                    return self.fail(path, f"Invalid value: {format_value(key)}: map keys must be strings")
                if _NUL in name:
                    return self.fail(entry(path, name), f"Invalid value: {format_value(name)}: {_NUL_DETAIL}")
                converted = self.convert_any(item, entry(path, name))
                if converted is _MISSING:
                    return _MISSING
                out[name] = converted
            return MappingProxyType(out)
        if isinstance(value, list):
            items = [self.convert_any(item, f"{path}[{i}]") for i, item in enumerate(value)]
            return _MISSING if _MISSING in items else tuple(items)
        if self.unrepresentable(value, path):
            return _MISSING
        if value is None or isinstance(value, (str, bool, int, float)):
            return value
        return self.fail(path, f"Invalid value: {format_value(value)}: not a JSON value ({type(value).__name__})")


def _map_key(key: object) -> str | None:
    # sigs.k8s.io/yaml turns scalar YAML keys into JSON strings (`1:` -> "1", `true:` -> "true").
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, (int, float)):
        return repr(key)
    return None


def to_dict(obj: Any, type_name: str) -> dict[str, Any]:
    """Render a model object (or an opaque mapping) as a Kubernetes-style camelCase dict.

    None, empty lists/maps and `false` for plain (non-pointer) booleans are left out, as the API
    server's `omitempty` does.
    """
    otype = TYPES[type_name]
    out: dict[str, Any] = {}
    if otype.cls is None:
        for key, value in obj.items():
            f = otype.fields.get(key)
            out[key] = _render(value, f.kind if f is not None else ("any",))
        return out
    false_default = _false_defaults(otype)
    for f in otype.fields.values():
        if f.group is not None:
            group = getattr(obj, f.group, None)
            value = group.get(f.key) if group is not None else None
        else:
            value = getattr(obj, f.attr)
        if value is None or (isinstance(value, (tuple, Mapping)) and not value):
            continue
        if value is False and f.attr in false_default:
            continue
        out[f.key] = _render(value, f.kind)
    return out


_FALSE_DEFAULTS: dict[str, frozenset[str]] = {}


def _false_defaults(otype: ObjectType) -> frozenset[str]:
    cached = _FALSE_DEFAULTS.get(otype.name)
    if cached is None:
        cls = otype.cls
        cached = frozenset(f.name for f in dataclass_fields(cls) if f.default is False) if cls else frozenset()
        _FALSE_DEFAULTS[otype.name] = cached
    return cached


def _render(value: Any, kind: Kind) -> Any:
    tag = kind[0]
    if tag == "obj":
        return to_dict(value, kind[1])
    if tag == "list":
        return [_render(v, kind[1]) for v in value]
    if tag == "map":
        return {k: _render(v, kind[1]) for k, v in value.items()}
    if tag == "qty":
        return value.text
    if tag == "any":
        return _thaw(value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value
