"""What a forked child must redo: locks held through an open file description are shared
with the parent after fork, so every lock holder reopens its description in the child
(its `_after_fork`). Holders are kept weakly: a volume that is gone is not revived."""
import os
import weakref

_holders = weakref.WeakSet()


def at_fork_in_child(owner):
    _holders.add(owner)


def forget_fork(owner):
    _holders.discard(owner)


def _run():
    for owner in list(_holders):
        owner._after_fork()


os.register_at_fork(after_in_child=_run)
