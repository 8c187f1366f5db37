"""EXT4_IOC_MOVE_EXT: swap the blocks behind a range of a file with a donor's, keeping the
file's data (copied into the donor's blocks). The donor ends up owning the file's old
blocks, unwritten, so it can never show the file's old data.

Each step of at most STEP_BYTES, under both inodes' data locks:
  1. donor blocks that are about to receive data and are readable become unwritten, and
     that is made durable, so a crash never shows the file's data through the donor;
  2. the data is copied into the donor's blocks;
  3. one metadata change exchanges the two mappings.
The file therefore maps either its old blocks or fully copied new ones at every instant,
and every block keeps exactly one owner. The copy needs no flush of its own: the change
of step 3 reaches the journal only in a commit, which flushes the image first, and the
old blocks stay pending until then. A move holds both inode locks from start to end, so
writers that change metadata wait for it, as they do in ext4; readers, and overwrites of
written blocks (shim/fastread.c), wait only for a step.
"""
import errno
import os
import stat as st

from pyfalloc import uapi
from pyfalloc.errors import FsError
from pyfalloc.fs.filesystem import EXT_MAX_BLOCKS
from pyfalloc.units import ceil_div

U64 = (1 << 64) - 1
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
STEP_BYTES = 4 << 20        # longest stretch readers of the file wait for


def move_extent(fs, orig, donor, orig_start, donor_start, length):
    """Move [orig_start, +length) blocks of inode orig into donor's blocks at donor_start.
    Returns the number of blocks moved; an FsError raised part way carries .moved_len.

    A move of more than one step is recorded (its row, and a lock byte that tells whether
    its process is alive) from its first step's change to its last's; a move of one step
    is a single change, with nothing to record around it."""
    moved = 0
    mid = held = None
    with fs.locks.inode(orig, donor):
        length = _check_arguments(fs, orig, donor, orig_start, donor_start, length)
        step = max(1, STEP_BYTES // fs.bs)
        o, o_end, d = orig_start, orig_start + length, donor_start
        try:
            while o < o_end:
                ext = fs.extmap.at_or_after(orig, o)
                if ext is None:
                    raise FsError(errno.ENODATA, f"hole to the end of the file from block {o}")
                if ext.lblk > o:                # holes of the file are skipped
                    d += ext.lblk - o
                    o = ext.lblk
                    if o >= o_end:
                        break
                n = min(ext.lblk + ext.len, o_end, o + step) - o
                last = o + n >= o_end
                if mid is None and not last:
                    mid = fs.meta.next_move_id()
                    held = fs.locks.move(mid)
                    held.__enter__()
                with fs.locks.data(orig, donor):
                    moved += _swap(fs, mid, orig, donor, o, d, n, ext.pblk + (o - ext.lblk), ext.unwritten, last)
                o += n
                d += n
        except FsError as e:
            e.moved_len = moved
            raise
        finally:
            try:
                if mid in fs.meta.t.moves:      # the last step's change did not end it
                    with fs.meta.tx() as s:
                        s.put("m", mid, None)
            finally:
                if held is not None:
                    held.__exit__(None, None, None)
    return moved


def _check_arguments(fs, orig, donor, orig_start, donor_start, length):
    """ext4's mext_check_arguments, in its order; returns len clipped to both files' ends."""
    oi, di = fs.inode(orig), fs.inode(donor)
    if di.mode & (st.S_ISUID | st.S_ISGID):
        raise FsError(errno.EINVAL, "donor is set-user-ID or set-group-ID")
    if di.flags & (uapi.FS_IMMUTABLE_FL | uapi.FS_APPEND_FL):
        raise FsError(errno.EPERM, "donor is immutable or append-only")
    if not st.S_ISREG(oi.mode) or not st.S_ISREG(di.mode):
        raise FsError(errno.EINVAL, "both files must be regular")
    page_blocks = max(1, PAGE_SIZE // fs.bs)
    if orig_start % page_blocks != donor_start % page_blocks:
        raise FsError(errno.EINVAL, "orig_start and donor_start are not aligned within a page")
    if (orig_start >= EXT_MAX_BLOCKS or donor_start >= EXT_MAX_BLOCKS or length > EXT_MAX_BLOCKS
            or donor_start + length >= EXT_MAX_BLOCKS or orig_start + length >= EXT_MAX_BLOCKS):
        raise FsError(errno.EINVAL, "range past the last logical block")
    if oi.size == 0 or di.size == 0:
        raise FsError(errno.EINVAL, "orig or donor is empty")
    # the kernel's u64 arithmetic, off-by-one and all: len 0 at start 0 means "to the end"
    for start, size in ((orig_start, oi.size), (donor_start, di.size)):
        eof = ceil_div(size, fs.bs)
        if eof <= start:
            length = 0
        elif eof < (start + length - 1) & U64:
            length = eof - start
    if length == 0:
        raise FsError(errno.EINVAL, "len is 0 after clipping to the end of either file")
    return length


def _swap(fs, mid, orig, donor, o, d, n, opblk, unwritten, last):
    """Exchange orig [o, o+n) (one extent, at physical opblk) with whatever the donor maps
    at [d, d+n); donor holes leave the file's blocks where they are. A recorded move (mid)
    has its row made by its first step's change and ended by its last's. Returns blocks
    moved."""
    bs = fs.bs
    pieces = [(lblk, m, e.pblk, e.unwritten) for lblk, m, e in fs.extmap.segments(donor, d, d + n) if e]
    if not pieces:
        # ext4 looks the donor up for an unwritten piece, and finds no path in an empty tree
        if unwritten and fs.extmap.last(donor) is None:
            raise FsError(errno.ENODATA, "donor has no blocks")
        return 0
    if not unwritten:
        readable = [p for p in pieces if not p[3]]
        if readable:
            with fs.meta.tx():
                for lblk, m, _, _ in readable:
                    fs.extmap.set_unwritten(donor, lblk, lblk + m, True)
            fs.meta.commit()
        for lblk, m, dpblk, _ in pieces:
            fs.dev.copy((opblk + lblk - d) * bs, dpblk * bs, m * bs)
    count = 0
    with fs.meta.tx() as s:
        for lblk, m, dpblk, _ in pieces:
            lo = o + lblk - d
            count += m
            if fs.extmap.exchange(orig, lo, donor, lblk, m, opblk + lblk - d, dpblk):
                continue
            fs.extmap.remove(orig, lo, lo + m)
            fs.extmap.remove(donor, lblk, lblk + m)
            fs.extmap.insert(orig, lo, m, dpblk, unwritten)
            fs.extmap.insert(donor, lblk, m, opblk + lblk - d, True)
        if mid is not None:
            moved = s.t.moves[mid][3] if mid in s.t.moves else 0
            s.put("m", mid, None if last else (orig, donor, os.getpid(), moved + count))
    return count
