"""The 32-bit ABI of fallocate2.

On i386 every 64-bit argument travels as two 32-bit words joined ``(hi << 32) | lo``, and a
system call has six argument registers (ebx, ecx, edx, esi, edi, ebp). fallocate(2) fills
all six; fallocate2 needs eight — fd, mode, offset_lo, offset_hi, len_lo, len_hi,
physical_lo, physical_hi — so the RFC's compat entry cannot be reached by a real i386
syscall: physical_lo and physical_hi have no register. The fix the kernel uses for such
calls (clone3, openat2) is a struct plus its size: `FallocateHow` and fallocate3 below,
three words on every ABI.
"""
import errno
import struct

from pyfalloc.errors import FsError
from pyfalloc.uapi import NO_HINT

U32 = (1 << 32) - 1
U64 = (1 << 64) - 1
COMPAT_ARGS = ("fd", "mode", "offset_lo", "offset_hi", "len_lo", "len_hi", "physical_lo", "physical_hi")
I386_ARG_REGISTERS = ("ebx", "ecx", "edx", "esi", "edi", "ebp")
I386_NR_FALLOCATE = 324


def split(value):
    """A 64-bit argument as the (lo, hi) 32-bit words the i386 ABI passes (two's complement
    for a negative loff_t, as the C cast to u64 gives)."""
    value &= U64
    return value & U32, value >> 32


def join(lo, hi):
    """((u64)hi << 32) | lo, as the compat entry rebuilds an argument."""
    return ((hi & U32) << 32) | (lo & U32)


def compat_words(fd, mode, offset, length, physical=NO_HINT):
    """The eight 32-bit words of the RFC's compat entry, in COMPAT_ARGS order."""
    return (fd & U32, mode & U32, *split(offset), *split(length), *split(physical))


def i386_delivery(words):
    """What a real i386 syscall carries of an argument list: {register: word} for the six
    argument registers, and the names of the words left without one."""
    names = COMPAT_ARGS[:len(words)]
    carried = dict(zip(I386_ARG_REGISTERS, words))
    return carried, names[len(I386_ARG_REGISTERS):]


# struct fallocate_how (cdefs/fallocate2.h), the argument of fallocate3(fd, how, size):
# offset, len, physical (u64), mode, reserved (u32)
_HOW = struct.Struct("=QQQII")
FALLOCATE_HOW_SIZE_VER0 = _HOW.size


def __getattr__(name):
    # the ctypes form of the struct, for callers that build one; defined at first use, as the
    # shim decodes with struct and its processes need not pay for importing ctypes
    if name != "FallocateHow":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import ctypes

    class FallocateHow(ctypes.Structure):
        """struct fallocate_how: the argument of fallocate3(fd, how, size)."""
        _fields_ = [("offset", ctypes.c_uint64), ("len", ctypes.c_uint64), ("physical", ctypes.c_uint64),
                    ("mode", ctypes.c_uint32), ("reserved", ctypes.c_uint32)]
    FallocateHow.__qualname__ = name
    globals()[name] = FallocateHow
    return FallocateHow


PAGE_SIZE = 4096


def decode_how(raw, size):
    """The fields of a struct fallocate_how of `size` bytes, read as openat2 reads open_how
    (copy_struct_from_user): below the first version EINVAL, above a page E2BIG, nonzero
    bytes past the fields this version knows E2BIG, reserved != 0 EINVAL. Returns (mode,
    offset, len, physical), offset and len as the signed loff_t the call takes."""
    if size < FALLOCATE_HOW_SIZE_VER0:
        raise FsError(errno.EINVAL, f"struct fallocate_how of {size} bytes: the first version has "
                                    f"{FALLOCATE_HOW_SIZE_VER0}")
    if size > PAGE_SIZE:
        raise FsError(errno.E2BIG, f"struct fallocate_how of {size} bytes is larger than a page")
    raw = bytes(raw[:size])
    if any(raw[FALLOCATE_HOW_SIZE_VER0:]):
        raise FsError(errno.E2BIG, "nonzero bytes past the fields this version knows")
    offset, length, physical, mode, reserved = _HOW.unpack_from(raw)
    if reserved:
        raise FsError(errno.EINVAL, "fallocate_how.reserved must be zero")

    def loff(v):
        return v - (1 << 64) if v >> 63 else v
    return mode, loff(offset), loff(length), physical
