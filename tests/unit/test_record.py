"""sandbox.record: the dataclass semantics the code relies on, without dataclasses."""

from __future__ import annotations

import pytest

from sandbox.record import FrozenInstanceError, Record, field, fields, replace


class Point(Record):
    x: int
    y: int = 0
    tags: tuple[str, ...] = ()


class WithFactory(Record):
    items: list[int] = field(default_factory=list)


class Mutable(Record, frozen=False):
    name: str
    count: int = 0


class Checked(Record):
    value: int

    def __post_init__(self) -> None:
        if self.value < 0:
            raise ValueError("negative")


def test_init_positional_keyword_and_defaults() -> None:
    assert (Point(1).x, Point(1).y, Point(1, 2).y, Point(x=3, y=4).y) == (1, 0, 2, 4)
    with pytest.raises(TypeError, match="missing required argument: 'x'"):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword"):
        Point(1, z=2)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="multiple values"):
        Point(1, x=2)  # type: ignore[misc]
    with pytest.raises(TypeError, match="positional"):
        Point(1, 2, (), 4)  # type: ignore[call-arg]


def test_frozen_equality_hash_repr() -> None:
    p = Point(1, 2)
    with pytest.raises(FrozenInstanceError):
        p.x = 5  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        del p.x  # type: ignore[misc]
    assert p == Point(1, 2) and p != Point(2, 1) and hash(p) == hash(Point(1, 2))
    assert p != (1, 2, ())
    assert repr(p) == "Point(x=1, y=2, tags=())"
    assert not hasattr(p, "__dict__")  # slotted


def test_default_factory_gives_fresh_values() -> None:
    a, b = WithFactory(), WithFactory()
    a.items.append(1)
    assert b.items == []


def test_mutable_records_are_unhashable() -> None:
    m = Mutable("a")
    m.count += 1
    assert m.count == 1
    with pytest.raises(TypeError):
        hash(m)


def test_post_init_replace_and_fields() -> None:
    with pytest.raises(ValueError):
        Checked(-1)
    p = replace(Point(1, 2), y=5)
    assert p == Point(1, 5)
    with pytest.raises(TypeError, match="no field"):
        replace(p, z=1)
    assert [f.name for f in fields(Point)] == ["x", "y", "tags"]
    assert fields(p)[1].default == 0
