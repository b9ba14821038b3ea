"""Typed records: what `@dataclass(frozen=True, slots=True)` gives, at a fraction of the import cost.

Start-up time is a feature of `sandbox run`, and on Python 3.11 the dataclass decorator compiles
five or six methods per class when the module is imported: the ~70 record types of the spec
model, status and runtime cost ~40 ms before a pod could start. `record` builds the slotted class
and compiles nothing: `__init__`, `__repr__`, `__eq__` and `__hash__` are generic functions that
read the class's field list. Type checkers see a dataclass (PEP 681 `dataclass_transform`).

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
def record(cls: type[T] | None = None, /, *, frozen: bool = True) -> Any:
    """Class decorator: `@record` (frozen) or `@record(frozen=False)` (mutable, unhashable)."""

    def wrap(target: type[T]) -> type[T]:
        return _build(target, frozen)

    return wrap if cls is None else wrap(cls)


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


def _collect_fields(cls: type) -> list[Field]:
    inherited: list[Field] = []
    for base in reversed(cls.__mro__[1:]):
        inherited.extend(getattr(base, _FIELDS, ()))
    own = []
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():
        if "ClassVar" in str(annotation):
            continue
        value = cls.__dict__.get(name, _MISSING)
        f = value if isinstance(value, Field) else Field(default=value)
        f.name = name
        own.append(f)
    names = {f.name for f in own}
    return [f for f in inherited if f.name not in names] + own


def _build(cls: type[T], frozen: bool) -> type[T]:
    all_fields = _collect_fields(cls)
    inherited = {f.name for base in cls.__mro__[1:] for f in getattr(base, _FIELDS, ())}
    names = tuple(f.name for f in all_fields)
    skip = {*names, "__dict__", "__weakref__"}  # one set per class, not one per attribute (~1 ms at import)
    namespace = {k: v for k, v in cls.__dict__.items() if k not in skip and not isinstance(v, Field)}
    namespace["__slots__"] = tuple(name for name in names if name not in inherited)
    namespace[_FIELDS] = tuple(all_fields)
    namespace["__init__"] = _init
    namespace["__repr__"] = _repr
    namespace["__eq__"] = _eq
    namespace["__match_args__"] = names
    if frozen:
        namespace["__setattr__"] = _frozen_setattr
        namespace["__delattr__"] = _frozen_delattr
        namespace["__hash__"] = _hash
    else:
        namespace["__hash__"] = None
    namespace["__record_frozen__"] = frozen
    metaclass: Any = type(cls)
    built: type[T] = metaclass(cls.__name__, cls.__bases__, namespace)
    return built


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
