"""Typed records: what `@dataclass(frozen=True, slots=True)` gives, at a fraction of the import cost.

Start-up time is a feature of `sandbox run`, and on Python 3.11 the dataclass decorator compiles
five or six methods per class when the module is imported: the ~70 record types of the spec
model, status and runtime cost ~40 ms before a pod could start. `Record` (its metaclass) builds
the slotted class and compiles nothing: `__init__`, `__repr__`, `__eq__` and `__hash__` are
generic functions that read the class's field list. Type checkers see a dataclass (PEP 681 `dataclass_transform`).

Semantics kept from dataclasses: fields in annotation order, positional-or-keyword `__init__`,
`field(default_factory=...)`, `__post_init__`, frozen instances (FrozenInstanceError), value
equality between instances of the same class, hashing of frozen records.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~3 ms to import: checkers see it, the runtime does not
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform

    T = TypeVar("T")
else:

    def dataclass_transform(**_: object) -> object:
        return lambda decorator: decorator

_MISSING: Any = type("_Missing", (), {"__repr__": lambda self: "MISSING"})()
_FIELDS = "__record_fields__"
_FROZEN = "__record_frozen__"


class FrozenInstanceError(AttributeError):
    """Raised on assignment to a field of a frozen record."""


class Field:
    __slots__ = ("default", "default_factory", "name")

    def __init__(self, default: Any = _MISSING, default_factory: Any = _MISSING) -> None:
        self.name = ""
        self.default = default
        self.default_factory = default_factory

    def __repr__(self) -> str:
        return f"Field({self.name!r})"


def field(*, default: Any = _MISSING, default_factory: Callable[[], Any] | Any = _MISSING) -> Any:
    return Field(default, default_factory)


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
class RecordType(type):
    """The metaclass of every record: `class Point(Record):` (frozen) or
    `class Counter(Record, frozen=False):` (mutable, unhashable).

    A metaclass rather than a class decorator so that each record class is created once, with its
    slots, from the namespace of its `class` statement: a decorator gets the finished class and
    must build a second one to add `__slots__`. The ~145 records of the package cost ~60 us each
    as decorated classes and ~30 as a metaclass's (a plain class: ~17); about 110 of them are
    imported by a `sandbox run`, ~2-3 ms of its start."""

    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any],
                frozen: bool | None = None) -> RecordType:
        parents = [getattr(base, _FIELDS) for base in bases if hasattr(base, _FIELDS)]
        if not parents:
            return super().__new__(mcs, name, bases, namespace)  # `Record` itself
        if frozen is None:  # a record's subclass is as frozen as its parent, by default frozen
            frozen = all(getattr(base, _FROZEN, True) for base in bases)
        if not frozen:  # the mutable methods come from _MutableRecord, a subclass of Record
            bases = tuple(_MutableRecord if base is Record else base for base in bases)
        own = _own_fields(namespace)
        inherited = [f for fields_of in parents for f in fields_of]
        if inherited:  # a record's subclass: its own fields replace the parent's of the same name
            names_own = {f.name for f in own}
            inherited_names = {f.name for f in inherited}
            all_fields = tuple([f for f in inherited if f.name not in names_own] + own)
            namespace["__slots__"] = tuple(f.name for f in own if f.name not in inherited_names)
        else:
            all_fields = tuple(own)
            namespace["__slots__"] = tuple(f.name for f in own)
        namespace[_FIELDS] = all_fields
        namespace["__match_args__"] = tuple(f.name for f in all_fields)
        # __init__, __repr__, __eq__, __hash__ and the frozen __setattr__/__delattr__ are inherited
        # from Record (or _MutableRecord), not set per class: special methods in a class's own
        # namespace make type() fix up a slot for each. With the defaults popped as the fields are
        # read: 20.3 -> 18.7 us per record class (interleaved runs; ~110 classes per `sandbox run`).
        # Set here only where the bases disagree with `frozen`.
        if any(getattr(base, _FROZEN, True) != frozen for base in bases):
            namespace.update(_FROZEN_METHODS if frozen else _MUTABLE_METHODS)
        namespace[_FROZEN] = frozen
        return super().__new__(mcs, name, bases, namespace)


class Record(metaclass=RecordType):
    """The base of every record (see RecordType); it has no fields and no instances of its own.
    Its methods (set below) serve every frozen record; _MutableRecord's every mutable one."""

    __slots__ = ()


def fields(obj_or_cls: Any) -> tuple[Field, ...]:
    cls = obj_or_cls if isinstance(obj_or_cls, type) else type(obj_or_cls)
    found: tuple[Field, ...] = getattr(cls, _FIELDS)
    return found


def replace(obj: T, /, **changes: Any) -> T:
    """A copy of `obj` with some fields changed (dataclasses.replace)."""
    values = {f.name: changes.pop(f.name) if f.name in changes else getattr(obj, f.name) for f in fields(obj)}
    if changes:
        raise TypeError(f"{type(obj).__name__} has no field(s) {', '.join(changes)}")
    return type(obj)(**values)


def _own_fields(namespace: dict[str, Any]) -> list[Field]:
    """The fields the class statement annotated, in order; their defaults leave the namespace (a
    class attribute would clash with the slot)."""
    own = []
    pop = namespace.pop
    for name, annotation in namespace.get("__annotations__", {}).items():
        if "ClassVar" in (annotation if type(annotation) is str else str(annotation)):
            continue
        value = pop(name, _MISSING)
        f = value if type(value) is Field else Field(value)
        f.name = name
        own.append(f)
    return own


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    """One generic __init__ for every record: no code is generated or compiled per class (that
    alone cost ~0.15 ms per class on first use), at a few microseconds per instance."""
    cls = type(self)
    plan: tuple[Field, ...] = getattr(cls, _FIELDS)
    if len(args) > len(plan):
        raise TypeError(f"{cls.__name__}() takes {len(plan)} positional arguments but {len(args)} were given")
    for i, f in enumerate(plan):
        if i < len(args):
            if f.name in kwargs:
                raise TypeError(f"{cls.__name__}() got multiple values for argument {f.name!r}")
            value = args[i]
        elif f.name in kwargs:
            value = kwargs.pop(f.name)
        elif f.default is not _MISSING:
            value = f.default
        elif f.default_factory is not _MISSING:
            value = f.default_factory()
        else:
            raise TypeError(f"{cls.__name__}() missing required argument: {f.name!r}")
        object.__setattr__(self, f.name, value)
    if kwargs:
        raise TypeError(f"{cls.__name__}() got unexpected keyword argument(s): {', '.join(kwargs)}")
    post_init = getattr(cls, "__post_init__", None)
    if post_init is not None:
        post_init(self)


def _values(self: Any) -> tuple[Any, ...]:
    return tuple(getattr(self, f.name) for f in getattr(type(self), _FIELDS))


def _repr(self: Any) -> str:
    inner = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in getattr(type(self), _FIELDS))
    return f"{type(self).__qualname__}({inner})"


def _eq(self: Any, other: Any) -> Any:
    if other.__class__ is not self.__class__:
        return NotImplemented
    return _values(self) == _values(other)


def _hash(self: Any) -> int:
    return hash(_values(self))


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


_FROZEN_METHODS: dict[str, Any] = {"__setattr__": _frozen_setattr, "__delattr__": _frozen_delattr, "__hash__": _hash}
_MUTABLE_METHODS: dict[str, Any] = {"__setattr__": object.__setattr__, "__delattr__": object.__delattr__,
                                    "__hash__": None}
for _name, _method in {"__init__": _init, "__repr__": _repr, "__eq__": _eq, **_FROZEN_METHODS}.items():
    setattr(Record, _name, _method)
setattr(Record, _FIELDS, ())
setattr(Record, _FROZEN, True)
# The base of the records made with `frozen=False` (RecordType swaps it in for Record); created by
# type() directly, as it has no fields of its own to collect.
_MutableRecord = type.__new__(RecordType, "Record", (Record,), {"__slots__": (), _FIELDS: (), _FROZEN: False,
                                                                "__qualname__": "Record", **_MUTABLE_METHODS})
