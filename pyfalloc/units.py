"""Sizes with binary suffixes, as util-linux and mkfs accept them (4K, 1M, 2G, 1T, 512KiB)."""
import errno

from pyfalloc.errors import FsError

_SUFFIX = {"": 0, "K": 10, "M": 20, "G": 30, "T": 40, "P": 50, "E": 60}


def parse_size(text):
    if isinstance(text, int):
        return text
    import re       # here, not at the top: a process the shim starts never parses a size
    m = re.match(r"^\s*(\d+)\s*([KMGTPE]?)(?:I?B)?\s*$", str(text), re.IGNORECASE)
    if not m:
        raise FsError(errno.EINVAL, f"invalid size {text!r} (use a number with an optional K/M/G/T suffix)")
    return int(m.group(1)) << _SUFFIX[m.group(2).upper()]


def format_size(n):
    for shift, suffix in ((40, "T"), (30, "G"), (20, "M"), (10, "K")):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift}{suffix}"
    return str(n)


def ceil_div(a, b):
    return -(-a // b)


def round_up(n, unit):
    """n rounded up to a multiple of unit."""
    return -(-n // unit) * unit


def is_pow2(n):
    return n > 0 and n & (n - 1) == 0
