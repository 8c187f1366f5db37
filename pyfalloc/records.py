"""Named records: tuples whose fields also have names, as collections.namedtuple makes them
(the same C accessors, the same generated constructor), without importing collections — a
process's first image call pays for every module the package imports, and collections
brings operator, keyword and reprlib, and functools and contextlib with it."""
import sys
from _collections import _tuplegetter


def record(name, fields):
    fields = tuple(fields.replace(",", " ").split())
    args = ", ".join(fields)
    ns = {"_new": tuple.__new__}
    exec(f"def __new__(_cls, {args}):\n    return _new(_cls, ({args}{',' if len(fields) == 1 else ''}))", ns)

    def _replace(self, **changes):
        values = [changes.pop(f, v) for f, v in zip(fields, self)]
        if changes:
            raise ValueError(f"{name} has no fields {sorted(changes)}")
        return tuple.__new__(type(self), values)

    def __repr__(self):
        return f"{name}(" + ", ".join(f"{f}={v!r}" for f, v in zip(fields, self)) + ")"

    body = {f: _tuplegetter(i, f"field {f}") for i, f in enumerate(fields)}
    body.update(__slots__=(), _fields=fields, __new__=ns["__new__"], _replace=_replace, __repr__=__repr__,
                _asdict=lambda self: dict(zip(fields, self)),
                _make=classmethod(lambda cls, values: tuple.__new__(cls, values)),
                __getnewargs__=lambda self: tuple(self),
                __module__=sys._getframe(1).f_globals.get("__name__", __name__))
    cls = type(name, (tuple,), body)
    cls.__new__.__qualname__ = f"{name}.__new__"
    return cls
