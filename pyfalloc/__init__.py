"""pyfalloc: a reference prototype of fallocate2(), the physical-placement fallocate."""
from pyfalloc.alloc.policy import Policy
from pyfalloc.api.libc import compat_fallocate2, fallocate, fallocate2, fallocate3
from pyfalloc.api.volume import Volume
from pyfalloc.errors import FormatError, FsError
from pyfalloc.syscalls import abi  # noqa: F401  (split/join of the 32-bit ABI, the fallocate_how struct)
from pyfalloc.uapi import *  # noqa: F401,F403  (FALLOC_FL_*, ALLOC_*, NO_HINT, ioctl numbers)

__all__ = ["Volume", "Policy", "FsError", "FormatError", "fallocate", "fallocate2", "fallocate3", "compat_fallocate2"]
