"""What a forked child must redo: locks held through an open file description are shared
with the parent after fork, so every lock holder reopens its description in the child
(its `_after_fork`). Holders are kept weakly: a volume that is gone is not revived. (By
_weakref's references: weakref's WeakSet costs every process's start a millisecond.)"""
import os
from _weakref import ref

_holders = {}                   # id(owner) -> a weak reference that removes itself


def at_fork_in_child(owner):
    key = id(owner)
    _holders[key] = ref(owner, lambda _, key=key: _holders.pop(key, None))


def forget_fork(owner):
    _holders.pop(id(owner), None)


def _run():
    for r in list(_holders.values()):
        owner = r()
        if owner is not None:
            owner._after_fork()


os.register_at_fork(after_in_child=_run)
