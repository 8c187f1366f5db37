"""Relocate part of a file to a chosen physical place, the way e4defrag does it, using only
the public calls: a donor (an O_TMPFILE file, so nothing outlives a crash) gets its blocks
at the place through fallocate2, then EXT4_IOC_MOVE_EXT swaps them in. The donor leaves
with the file's old blocks, which are freed when it closes."""
import errno
import os

from pyfalloc.errors import FsError
from pyfalloc.units import round_up


STEP = 64 << 20         # bytes per MOVE_EXT call: the progress a long move reports


def relocate(vol, fd, offset, length, physical, advance=None):
    """Move bytes [offset, offset+length) of open file fd to start at device byte physical.
    length None means to the end of the file. Returns bytes moved (holes are not moved).
    advance(n), when given, hears of each step's bytes."""
    bs = vol.block_size
    if offset % bs or physical % bs:
        raise FsError(errno.EINVAL, f"offset and physical must be multiples of the block size ({bs})")
    eof = round_up(vol.fstat(fd).st_size, bs)
    # nothing past the end of the file moves (MOVE_EXT clips there too), so ask no space for it
    length = eof - offset if length is None else min(round_up(length, bs), eof - offset)
    if length <= 0:
        raise FsError(errno.EINVAL, "nothing to move: the range is empty or past the end of the file")
    if placed_at(vol, fd, offset, length, physical):
        return 0
    donor = vol.open("/", os.O_RDWR | os.O_TMPFILE, 0o600)
    try:
        # the donor's logical range is the file's, so the two starts are trivially aligned
        vol.fallocate2(donor, 0, offset, length, physical)
        moved = 0
        for start in range(offset, offset + length, STEP):
            n = min(STEP, offset + length - start)
            moved += vol.move_extent(fd, donor, start // bs, start // bs, n // bs) * bs
            if advance:
                advance(n)
        return moved
    finally:
        vol.close(donor)


def placed_at(vol, fd, offset, length, physical):
    """True when every mapped block of the range already sits where relocate would put it."""
    ext = vol.fiemap(fd, offset, length)
    return bool(ext) and all(e.physical - physical == e.logical - offset for e in ext)
