"""pyfalloc: a reference prototype of fallocate2(), the physical-placement fallocate."""
from pyfalloc.errors import FormatError, FsError
from pyfalloc.uapi import *  # noqa: F401,F403  (FALLOC_FL_*, ALLOC_*, NO_HINT, ioctl numbers)

__all__ = ["Volume", "Policy", "FsError", "FormatError", "fallocate", "fallocate2", "fallocate3", "compat_fallocate2"]

# Imported on first use: every process the shim serves imports this package before its first
# image call, and needs none of these (ctypes alone is milliseconds of its start).
_LAZY = {"Volume": "pyfalloc.api.volume", "Policy": "pyfalloc.alloc.policy",
         "fallocate": "pyfalloc.api.libc", "fallocate2": "pyfalloc.api.libc",
         "fallocate3": "pyfalloc.api.libc", "compat_fallocate2": "pyfalloc.api.libc",
         "abi": "pyfalloc.syscalls.abi"}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'pyfalloc' has no attribute {name!r}")
    import importlib
    module = importlib.import_module(_LAZY[name])
    value = module if module.__name__.endswith("." + name) else getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
