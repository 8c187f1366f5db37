"""The syscall layer: the Linux semantics of every call, argument checks in the kernel's
order and errno (calls.py), the 32-bit ABI (abi.py), ioctl structs (ioctl.py),
capabilities (caps.py) and the caller's file-size limit (limits.py)."""
from pyfalloc.syscalls.calls import Syscalls

__all__ = ["Syscalls"]
