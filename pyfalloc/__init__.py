"""pyfalloc: a reference prototype of fallocate2(), the physical-placement fallocate."""
from .errors import FsError, FormatError
from .libc import compat_fallocate2, fallocate, fallocate2, fallocate3
from .uapi import *  # noqa: F401,F403  (FALLOC_FL_*, ALLOC_*, NO_HINT, ioctl numbers)
from .alloc import Policy
from .volume import Volume

__all__ = ["Volume", "Policy", "FsError", "FormatError", "fallocate", "fallocate2", "fallocate3", "compat_fallocate2"]
