"""``record``: value classes declared like dataclasses, at a tenth of the import cost.

pybpf defines some seventy small value classes (instructions, BTF kinds, program
and map descriptions) on the path from ``import`` to a loaded program.
``@dataclass(frozen=True, slots=True)`` spends 0.6-0.9 ms on each here: it compiles
six methods per class and builds the class twice. That was half of a cold
start, which is the moment a run-time program generator pays for it.

A record compiles only its ``__init__`` (so construction runs as fast as a
dataclass's); equality, hashing, ``repr`` and immutability are shared methods
driven by the class's field tuple. The declaration reads the same::

    @record
    class Load(Instruction):
        dst: Reg
        off: int = 0

        def __post_init__(self): ...      # checks run after the fields are set

Fields are the annotations of the class and of its record bases, in order;
``ClassVar`` annotations are not fields. ``record(frozen=False)`` makes a
mutable record (no hash, like a dataclass with ``eq=True``), ``slots=False``
keeps an instance ``__dict__`` (for ``functools.cached_property``), and
``eq=False`` keeps identity comparison. ``field(default_factory=...)`` and
``field(repr=False)`` work as in dataclasses; ``replace`` and ``fields`` are
the module-level helpers.
"""

from __future__ import annotations

from operator import attrgetter

_MISSING = object()


class FrozenRecordError(AttributeError):
    """An assignment to a field of a frozen record."""


class field:   # noqa: N801 - spelled like dataclasses.field, which it stands in for
    """A field's default (``default`` or ``default_factory``) and whether ``repr`` shows it."""

    __slots__ = ("default", "default_factory", "repr")

    def __init__(self, *, default=_MISSING, default_factory=_MISSING, repr: bool = True):
        self.default = default
        self.default_factory = default_factory
        self.repr = repr


def fields(obj_or_cls) -> tuple[str, ...]:
    """The field names of a record (class or instance), in declaration order."""
    return obj_or_cls.__record_fields__


def replace(obj, **changes):
    """A copy of ``obj`` with some fields changed; ``__post_init__`` checks run again."""
    values = {name: getattr(obj, name) for name in obj.__record_fields__}
    values.update(changes)
    return type(obj)(**values)


# -- shared methods ---------------------------------------------------------------------------

def _eq(self, other):
    if other.__class__ is not self.__class__:
        return NotImplemented
    key = self.__record_key__
    return key(self) == key(other)


def _hash(self):
    return hash(self.__record_key__(self))


def _repr(self):
    shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__record_repr__)
    return f"{type(self).__qualname__}({shown})"


def _frozen_setattr(self, name, value):
    raise FrozenRecordError(f"cannot assign to field {name!r} of a frozen {type(self).__name__}")


def _frozen_delattr(self, name):
    raise FrozenRecordError(f"cannot delete field {name!r} of a frozen {type(self).__name__}")


def _getstate(self):
    return [getattr(self, name) for name in self.__record_fields__]


def _setstate(self, state):
    for name, value in zip(self.__record_fields__, state, strict=True):
        object.__setattr__(self, name, value)


def _no_fields(obj):
    return ()


# -- the decorator ----------------------------------------------------------------------------

def record(cls=None, /, *, frozen: bool = True, slots: bool = True, eq: bool = True):
    """Make ``cls`` a record; usable bare (``@record``) or with options."""
    if cls is None:
        return lambda c: _make(c, frozen, slots, eq)
    return _make(cls, frozen, slots, eq)


def _own_fields(cls) -> list[tuple[str, object]]:
    """(name, default or field or _MISSING) for the fields ``cls`` itself declares."""
    own = []
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():
        kind = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
        if kind.startswith(("ClassVar", "typing.ClassVar")):
            continue
        own.append((name, cls.__dict__.get(name, _MISSING)))
    return own


def _make(cls, frozen: bool, slots: bool, eq: bool):
    inherited = []
    for base in reversed(cls.__mro__[1:]):
        inherited += base.__dict__.get("__record_defaults__", ())
    inherited_names = {n for n, _ in inherited}
    own = _own_fields(cls)
    spec = dict(inherited)
    spec.update(own)
    names = tuple(spec)

    namespace = dict(cls.__dict__)
    for name, _ in own:
        namespace.pop(name, None)   # defaults live in __init__, not as class attributes
    if slots:
        namespace["__slots__"] = tuple(n for n, _ in own if n not in inherited_names)
        namespace.pop("__dict__", None)
        namespace.pop("__weakref__", None)
        if frozen:
            namespace["__getstate__"] = _getstate
            namespace["__setstate__"] = _setstate
    namespace["__record_fields__"] = names
    namespace["__record_defaults__"] = tuple(spec.items())
    namespace["__record_repr__"] = tuple(
        n for n, d in spec.items() if not (isinstance(d, field) and not d.repr))
    namespace["__match_args__"] = names
    _check_order(cls.__qualname__, spec)
    if "__repr__" not in cls.__dict__:
        namespace["__repr__"] = _repr
    if eq:
        namespace["__record_key__"] = attrgetter(*names) if names else staticmethod(_no_fields)
        namespace.setdefault("__eq__", _eq)
        if "__hash__" not in cls.__dict__ or cls.__dict__["__hash__"] is None:
            namespace["__hash__"] = _hash if frozen else None
    if frozen:
        namespace["__setattr__"] = _frozen_setattr
        namespace["__delattr__"] = _frozen_delattr
    made = type(cls)(cls.__name__, cls.__bases__, namespace)
    made.__init__ = _deferred_init(made, spec, frozen, hasattr(cls, "__post_init__"))
    return made


def _check_order(qualname: str, spec: dict) -> None:
    """Reject a field without a default after one with, when the class is declared."""
    seen_default = False
    for name, default in spec.items():
        if isinstance(default, field) and default.default_factory is not _MISSING:
            seen_default = True
            continue
        if isinstance(default, field):
            default = default.default
        if default is _MISSING and seen_default:
            raise TypeError(f"{qualname}: field {name!r} without a default follows one with")
        seen_default = seen_default or default is not _MISSING


def _deferred_init(cls, spec: dict, frozen: bool, post_init: bool):
    """An ``__init__`` that compiles the real one on the first construction and steps aside.

    A program touches about a third of the records it imports (most instruction
    and BTF kinds go unused), so compiling each ``__init__`` at class creation
    (0.07 ms) spent most of that work for nothing.
    """
    def __init__(self, *args, **kwargs):
        init = _compile_init(cls, spec, frozen, post_init)
        cls.__init__ = init
        init(self, *args, **kwargs)

    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    return __init__


_SLOT = type(field.__dict__["default"])
"""The descriptor type of a ``__slots__`` member."""


def _compile_init(cls, spec: dict, frozen: bool, post_init: bool):
    """``__init__(self, <fields>)``: one small compiled function, as fast as a dataclass's.

    A frozen record's field goes in through its slot's descriptor (``_set_dst(self,
    dst)``, ~45 ns), not ``object.__setattr__(self, "dst", dst)`` (~75 ns), which looks
    that descriptor up by name each time: instructions are built by the hundred.
    """
    params, body, env = [], [], {"_set": object.__setattr__, "_MISSING": _MISSING}
    for i, (name, default) in enumerate(spec.items()):
        if isinstance(default, field):
            if default.default_factory is not _MISSING:
                env[f"_factory{i}"] = default.default_factory
                params.append(f"{name}=_MISSING")
                body.append(f"if {name} is _MISSING: {name} = _factory{i}()")
                continue
            default = default.default
        if default is _MISSING:
            params.append(name)
        else:
            env[f"_default{i}"] = default
            params.append(f"{name}=_default{i}")
    for name in spec:
        if not frozen:
            body.append(f"self.{name} = {name}")
        elif isinstance(slot := getattr(cls, name, None), _SLOT):
            env[f"_set_{name}"] = slot.__set__
            body.append(f"_set_{name}(self, {name})")
        else:
            body.append(f"_set(self, {name!r}, {name})")
    if post_init:
        body.append("self.__post_init__()")
    source = f"def __init__(self, {', '.join(params)}):\n    " + "\n    ".join(body or ["pass"])
    exec(source, env)   # noqa: S102 - the source is built above from field names only
    init = env["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init
