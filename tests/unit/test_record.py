"""guardian.record: the @dataclass stand-in the guardian's classes are built with."""
from __future__ import annotations

import typing
from typing import ClassVar, Dict, List, Optional

import pytest

from guardian.record import FrozenInstanceError, field, fields, is_record, mutable_record, record, replace


@record
class Point:
    x: int
    y: int = 0
    tags: Dict[str, str] = field(default_factory=dict)


@record
class Point3(Point):
    z: int = 0


@mutable_record
class Box:
    items: List[int] = field(default_factory=list)
    label: Optional[str] = None


def test_positional_and_keyword_construction_in_field_order():
    assert fields(Point) == ("x", "y", "tags")
    p = Point(1, 2, {"a": "b"})
    assert (p.x, p.y, p.tags) == (1, 2, {"a": "b"})
    q = Point(y=5, x=4)
    assert (q.x, q.y) == (4, 5)
    with pytest.raises(TypeError):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point(1, 2, {}, 3)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point(1, w=2)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point(1, x=2)  # type: ignore[misc]


def test_defaults():
    p = Point(7)
    assert (p.y, p.tags) == (0, {})
    assert Point.y == 0  # a plain default stays a class attribute, as in dataclasses
    assert not hasattr(Point, "tags")  # a factory does not


def test_default_factory_makes_a_new_value_per_instance():
    a, b = Point(1), Point(1)
    assert a.tags is not b.tags
    a.tags["k"] = "v"
    assert b.tags == {}
    m, n = Box(), Box()
    m.items.append(1)
    assert n.items == []
    given = [3]
    assert Box(given).items is given  # a value passed is used, not the factory's


def test_frozen_fields_refuse_assignment_and_deletion():
    p = Point(1)
    with pytest.raises(FrozenInstanceError):
        p.x = 2  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        del p.x  # type: ignore[misc]
    with pytest.raises(AttributeError):  # FrozenInstanceError is one: code catching that still works
        p.other = 1  # type: ignore[attr-defined]
    assert p.x == 1


def test_mutable_records_take_assignment():
    b = Box()
    b.label = "x"
    b.items = [1]
    assert b == Box([1], "x")


def test_eq_and_hash():
    assert Point(1, 2) == Point(1, 2)
    assert Point(1, 2) != Point(1, 3)
    assert Point(1, 2, {"a": "b"}) != Point(1, 2)
    assert Point3(1, 2) != Point(1, 2)  # another class is never equal, as in dataclasses
    assert Point(1, 2).__eq__(object()) is NotImplemented

    @record
    class Pair:
        a: int
        b: str = ""

    assert hash(Pair(1, "x")) == hash(Pair(1, "x"))
    assert hash(Pair(1, "x")) == hash((1, "x"))
    assert len({Pair(1, "x"), Pair(1, "x"), Pair(2, "x")}) == 2
    with pytest.raises(TypeError):
        hash(Box())  # mutable and compared by value: unhashable


def test_replace():
    p = Point(1, 2, {"a": "b"})
    q = replace(p, y=9)
    assert (q.x, q.y, q.tags) == (1, 9, {"a": "b"})
    assert type(q) is Point and p.y == 2
    r = replace(Point3(1, z=3), x=5)
    assert type(r) is Point3 and (r.x, r.y, r.z) == (5, 0, 3)
    with pytest.raises(TypeError):
        replace(p, w=1)


def test_inheritance_puts_base_fields_first():
    assert fields(Point3) == ("x", "y", "tags", "z")
    p = Point3(1, 2, {}, 3)
    assert (p.x, p.y, p.z) == (1, 2, 3)
    assert fields(p) == fields(Point3)

    @record
    class Again(Point):
        y: int = 5  # named again: keeps its place, takes the new default

    assert fields(Again) == ("x", "y", "tags")
    assert Again(1).y == 5

    with pytest.raises(TypeError):
        @mutable_record
        class Thawed(Point):
            pass


def test_a_field_without_default_after_one_with_is_refused():
    with pytest.raises(TypeError):
        @record
        class Bad:
            a: int = 0
            b: int  # type: ignore[misc]


def test_repr():
    assert repr(Point(1, 2)) == "Point(x=1, y=2, tags={})"
    assert repr(Box([1], "a")) == "Box(items=[1], label='a')"

    @record
    class Empty:
        pass

    assert repr(Empty()) == "test_repr.<locals>.Empty()"  # the qualified name, as in dataclasses
    assert Empty() == Empty()


def test_methods_the_class_defines_are_kept():
    @record
    class Own:
        a: int

        def __repr__(self) -> str:
            return "own"

        def __eq__(self, other: object) -> bool:
            return True

        __hash__ = object.__hash__

    o = Own(1)
    assert repr(o) == "own"
    assert o == Own(2)
    assert hash(o) == object.__hash__(o)


def test_classvar_is_not_a_field():
    @record
    class WithClassVar:
        a: int
        kinds: ClassVar[int] = 3

    assert fields(WithClassVar) == ("a",)
    assert WithClassVar(1).kinds == 3


def test_is_record_and_fields_of_other_things():
    assert is_record(Point) and is_record(Point(1))
    assert not is_record(int) and not is_record(3) and not is_record(typing.Optional[Point])
    with pytest.raises(TypeError):
        fields(3)


def test_construction_errors_name_the_class_and_the_argument():
    with pytest.raises(TypeError, match=r"Point\(\) missing required argument: 'x'"):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"Point\(\) takes 3 positional arguments but 4 were given"):
        Point(1, 2, {}, 3)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"Point\(\) got an unexpected keyword argument 'w'"):
        Point(1, w=2)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"Point\(\) got multiple values for argument 'x'"):
        Point(1, x=2)  # type: ignore[misc]


def test_no_record_class_compiles_code():
    """Every record shares one __init__: none is compiled per class (the compiler's pages would
    stay in the daemon's locked memory)."""
    assert Point.__init__ is Box.__init__
    assert Point.__init__.__code__.co_filename.endswith("record.py")


def test_post_init_runs_after_the_fields_are_set():
    seen = []

    @mutable_record
    class Counted:
        n: int
        doubled: int = 0

        def __post_init__(self):
            seen.append(self.n)
            self.doubled = 2 * self.n

    assert Counted(4).doubled == 8 and seen == [4]
