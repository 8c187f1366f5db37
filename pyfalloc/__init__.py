"""pyfalloc: a reference prototype of fallocate2(), the physical-placement fallocate."""
from pyfalloc.errors import FsError, FormatError
from pyfalloc.api.libc import compat_fallocate2, fallocate, fallocate2, fallocate3
from pyfalloc.uapi import *  # noqa: F401,F403  (FALLOC_FL_*, ALLOC_*, NO_HINT, ioctl numbers)
from pyfalloc.alloc.policy import Policy
from pyfalloc.api.volume import Volume
from pyfalloc.syscalls import abi  # noqa: F401  (split/join of the 32-bit ABI, the fallocate_how struct)

__all__ = ["Volume", "Policy", "FsError", "FormatError", "fallocate", "fallocate2", "fallocate3", "compat_fallocate2"]
