"""Python's cyclic collector paused around bulk building of acyclic objects.

A checkpoint's rows, a survey and a plan are millions of small tuples that can hold no
cycle; each collection their allocation triggers would traverse every object made so far,
the volume's tables included (half of opening a volume of 10^5 files, a fifth of planning
at 4 GiB)."""
import gc


def without_collector(fn):
    def run(*args, **kwargs):
        was = gc.isenabled()
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            if was:
                gc.enable()
    run.__name__, run.__qualname__, run.__doc__ = fn.__name__, fn.__qualname__, fn.__doc__
    return run
