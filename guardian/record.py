"""Records: what @dataclass(frozen=True) and @dataclass do for the guardian, without importing
dataclasses (it pulls in inspect, ast, dis, tokenize, copy...: megabytes the resident daemon
would hold for good).

    @record                      # frozen: hashable, FrozenInstanceError on assignment
    class Point:
        x: int
        y: int = 0
        tags: Dict[str, str] = field(default_factory=dict)

Fields are the class's own annotations in order, after those of record bases (a field named
again keeps its place, as in dataclasses). The generated __init__ takes them positionally or
by keyword in that order; __repr__, __eq__ (same class, fields equal) and, for frozen records,
__hash__ are added unless the class defines them. replace(), fields() and is_record() stand in
for dataclasses' replace, fields (names only) and is_dataclass. No __slots__: instances keep a
__dict__, as dataclasses' do.
"""
from __future__ import annotations

from _operator import attrgetter  # not operator.py: nothing more to import

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Tuple, TypeVar

    from typing_extensions import dataclass_transform

    _T = TypeVar("_T")
else:
    def dataclass_transform(**_kwargs):
        """typing's marker for type checkers; nothing to do at run time."""
        return lambda f: f

_FIELDS = "__record_fields__"  # name -> default (_MISSING, a value, or a _Factory)
_FROZEN = "__record_frozen__"
_VALUES = "__record_values__"  # the field values getter
_NAMES = "__record_names__"  # the field names, in order
_POST = "__record_post__"  # whether __init__ ends with self.__post_init__()


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


_MISSING: Any = _Missing()


class FrozenInstanceError(AttributeError):
    """Assignment to (or deletion of) a field of a frozen record."""


class _Factory:
    __slots__ = ("factory",)

    def __init__(self, factory: Callable[[], Any]):
        self.factory = factory


def field(*, default_factory: Callable[[], _T]) -> _T:
    """A field whose default is made anew for each instance: default_factory()."""
    return _Factory(default_factory)  # type: ignore[return-value]


# The methods every record shares (one function each, not one per class: the resident daemon
# holds some forty record classes). A record class keeps its field values' getter in _VALUES.
def _values(self: Any) -> Tuple[Any, ...]:
    return getattr(type(self), _VALUES)(self)  # type: ignore[no-any-return]


def _repr(self: Any) -> str:
    names = getattr(type(self), _FIELDS)
    return "%s(%s)" % (self.__class__.__qualname__,
                       ", ".join([n + "=" + repr(v) for n, v in zip(names, _values(self))]))


def _eq(self: Any, other: Any) -> Any:
    if other.__class__ is self.__class__:
        return _values(self) == _values(other)
    return NotImplemented


def _hash(self: Any) -> int:
    return hash(_values(self))


# One __init__ for every record, not one compiled per class: the compiler it took pulled about
# 0.25 MiB of the interpreter's parser into the resident daemon's memory (locked there), and
# each generated function held its own code. The instance's __dict__ is filled directly, as
# dataclasses' frozen __init__ does through object.__setattr__.
def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    cls = type(self)
    names = getattr(cls, _NAMES)
    d = self.__dict__
    if args:
        if len(args) > len(names):
            raise TypeError("%s() takes %d positional arguments but %d were given"
                            % (cls.__qualname__, len(names), len(args)))
        d.update(zip(names, args))
    if kwargs:
        if not kwargs.keys() <= getattr(cls, _FIELDS).keys() or (args and not d.keys().isdisjoint(kwargs)):
            _refuse(cls, d, kwargs)
        d.update(kwargs)
    if len(d) < len(names):
        for name, default in getattr(cls, _FIELDS).items():
            if name not in d:
                if default is _MISSING:
                    raise TypeError("%s() missing required argument: %r" % (cls.__qualname__, name))
                d[name] = default.factory() if type(default) is _Factory else default
    if getattr(cls, _POST):
        self.__post_init__()


def _refuse(cls: Any, given: Dict[str, Any], kwargs: Dict[str, Any]) -> None:
    for name in kwargs:
        if name not in getattr(cls, _FIELDS):
            raise TypeError("%s() got an unexpected keyword argument %r" % (cls.__qualname__, name))
        if name in given:
            raise TypeError("%s() got multiple values for argument %r" % (cls.__qualname__, name))


# As dataclasses: any attribute of a frozen record itself is refused, only fields on a plain
# subclass (a record class has _FROZEN in its own __dict__, a plain subclass does not).
def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    if _FROZEN in type(self).__dict__ or name in getattr(type(self), _FIELDS):
        raise FrozenInstanceError("cannot assign to field %r" % name)
    object.__setattr__(self, name, value)


def _frozen_delattr(self: Any, name: str) -> None:
    if _FROZEN in type(self).__dict__ or name in getattr(type(self), _FIELDS):
        raise FrozenInstanceError("cannot delete field %r" % name)
    object.__delattr__(self, name)


def _getter(names: Tuple[str, ...]) -> Callable[[Any], Tuple[Any, ...]]:
    """The field values of an instance, as a tuple, by a C getter (no generated code)."""
    if not names:
        return lambda _self: ()
    get = attrgetter(*names)
    if len(names) == 1:
        return lambda self: (get(self),)
    return get  # type: ignore[no-any-return]


def _is_classvar(annotation: Any) -> bool:
    text = annotation if isinstance(annotation, str) else repr(annotation)
    return text.startswith(("ClassVar", "typing.ClassVar"))


def _build(cls: Any, frozen: bool) -> Any:
    fields: Dict[str, Any] = {}
    for base in reversed(cls.__mro__[1:]):
        inherited = base.__dict__.get(_FIELDS)
        if inherited is not None:
            if base.__dict__[_FROZEN] != frozen:
                raise TypeError("cannot inherit %s record %s from %s one %s" % (
                    "frozen" if frozen else "non-frozen", cls.__qualname__,
                    "frozen" if base.__dict__[_FROZEN] else "non-frozen", base.__qualname__))
            fields.update(inherited)
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():
        if _is_classvar(annotation):
            continue
        default = cls.__dict__.get(name, _MISSING)
        if isinstance(default, _Factory):
            delattr(cls, name)  # as dataclasses: no class attribute for a factory default
        fields[name] = default

    names = tuple(fields)
    seen_default = False
    for name in names:
        if fields[name] is _MISSING:
            if seen_default:
                raise TypeError("non-default argument %r follows default argument" % name)
        else:
            seen_default = True

    own = cls.__dict__
    # as dataclasses: a class body's __eq__ leaves __hash__ None there, which is not explicit
    explicit_hash = own.get("__hash__", _MISSING) is not _MISSING and not (
        own["__hash__"] is None and "__eq__" in own)
    if "__init__" not in own:
        cls.__init__ = _init
    for name, shared in (("__repr__", _repr), ("__eq__", _eq)):
        if name not in own:
            setattr(cls, name, shared)
    if not explicit_hash:
        cls.__hash__ = _hash if frozen else None  # mutable and compared by value: unhashable
    if frozen:
        cls.__setattr__ = _frozen_setattr
        cls.__delattr__ = _frozen_delattr
    setattr(cls, _VALUES, _getter(names))
    setattr(cls, _FIELDS, fields)
    setattr(cls, _NAMES, names)
    setattr(cls, _FROZEN, frozen)
    setattr(cls, _POST, hasattr(cls, "__post_init__"))
    return cls


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def record(cls: type[_T]) -> type[_T]:
    """@dataclass(frozen=True)."""
    return _build(cls, True)  # type: ignore[no-any-return]


@dataclass_transform(field_specifiers=(field,))
def mutable_record(cls: type[_T]) -> type[_T]:
    """@dataclass."""
    return _build(cls, False)  # type: ignore[no-any-return]


def is_record(obj: Any) -> bool:
    """Whether obj is a record class or an instance of one (dataclasses.is_dataclass)."""
    return hasattr(obj if isinstance(obj, type) else type(obj), _FIELDS)


def fields(class_or_instance: Any) -> Tuple[str, ...]:
    """The field names of a record class or instance, in order."""
    try:
        return tuple(getattr(class_or_instance, _FIELDS))
    except AttributeError:
        raise TypeError("must be called with a record type or instance") from None


def replace(obj: _T, **changes: Any) -> _T:
    """A copy of the record obj with changes, through its __init__ (dataclasses.replace)."""
    for name in fields(obj):
        if name not in changes:
            changes[name] = getattr(obj, name)
    return obj.__class__(**changes)


__all__ = ["FrozenInstanceError", "field", "fields", "is_record", "mutable_record", "record", "replace"]
