"""Who owns the physical space: GETFSMAP records, discard-granule occupancy, and trim."""
import errno
import heapq
from array import array

from pyfalloc import uapi
from pyfalloc.errors import FsError
from pyfalloc.records import record
from pyfalloc.units import ceil_div, round_up

FsmapRecord = record("FsmapRecord", "physical length owner offset flags")



def _sources(t):
    """Each table that owns physical space: its rows by start block, and how a row reads
    as (length, owner, logical block, flags). Pending frees are free space: an allocation
    that needs them commits first."""
    special = uapi.FMR_OF_SPECIAL_OWNER
    return (
        (t.owner, lambda v: (v[0], v[1], v[2], uapi.FMR_OF_PREALLOC if v[3] else 0)),
        (t.free, lambda n: (n, uapi.FMR_OWN_FREE, 0, special)),
        (t.pending, lambda n: (n, uapi.FMR_OWN_FREE, 0, special)),
        (t.win, lambda v: (v[0], uapi.PYFALLOC_FMR_OWN_PREALLOC, 0, special)),
    )


def getfsmap(fs, low=0, high=None, count=None):
    """Records overlapping bytes [low, high], in physical order; the first is cut to start at
    low, so a query continues with low = last.physical + last.length. The tables are merged
    lazily: a query of count records reads about count rows, not count from each table."""
    bs = fs.bs
    high = fs.nblocks * bs - 1 if high is None else high
    lo_blk, hi_blk = low // bs, high // bs
    fs.meta.fresh()
    streams = [_owned(table, read, lo_blk, hi_blk) for table, read in _sources(fs.meta.t)]
    if lo_blk == 0:
        streams.append(iter([(0, 1, uapi.FMR_OWN_FS, 0, uapi.FMR_OF_SPECIAL_OWNER)]))   # the superblock
    out = []
    more = False
    for pblk, n, owner, lblk, flags in heapq.merge(*streams):
        if count is not None and len(out) == count:
            more = True
            break
        start = max(pblk, lo_blk)
        out.append(FsmapRecord(start * bs, (pblk + n - start) * bs, owner, (lblk + start - pblk) * bs, flags))
    if out and not more:
        out[-1] = out[-1]._replace(flags=out[-1].flags | uapi.FMR_OF_LAST)
    return out


def _owned(table, read, lo_blk, hi_blk):
    """A table's rows overlapping blocks [lo_blk, hi_blk], as (pblk, len, owner, lblk, flags)."""
    for pblk in table.islice(max(table.bisect_right(lo_blk) - 1, 0)):
        if pblk > hi_blk:
            return
        n, owner, lblk, flags = read(table[pblk])
        if pblk + n > lo_blk:
            yield pblk, n, owner, lblk, flags


def granule_usage(fs):
    """Used bytes of every discard granule (preallocation windows count as used)."""
    bs, g = fs.bs, fs.dev.granule
    total = fs.nblocks * bs
    ngran = ceil_div(total, g)
    used = array("q", (min(g, total - i * g) for i in range(ngran)))
    fs.meta.fresh()
    t = fs.meta.t
    for pblk, n in list(t.free.items()) + list(t.pending.items()):
        start, end = pblk * bs, (pblk + n) * bs
        while start < end:
            gi = start // g
            piece = min(end, (gi + 1) * g) - start
            used[gi] -= piece
            start += piece
    return used


def granule_summary(fs):
    g = fs.dev.granule
    used = granule_usage(fs)
    total = fs.nblocks * fs.bs
    sizes = [min(g, total - i * g) for i in range(len(used))]
    free = sum(1 for u in used if u == 0)
    full = sum(1 for u, s in zip(used, sizes) if u == s)
    return {"granule": g, "granules": len(used), "free": free, "partial": len(used) - free - full,
            "full": full, "used_bytes": list(used)}


def _rows(table, end_blk):
    for pblk in table.irange(maximum=end_blk, inclusive=(True, False)):
        yield pblk, table[pblk]


def free_runs(fs, start_blk=0, end_blk=None, pending=True):
    """Free extents merged across group boundaries, as (pblk, len); pending frees count as
    free unless pending is off (what trim may discard must be free durably)."""
    end_blk = fs.nblocks if end_blk is None else end_blk
    t = fs.meta.t
    tables = (t.free, t.pending) if pending else (t.free,)
    rows = heapq.merge(*(_rows(table, end_blk) for table in tables))
    run = None
    for pblk, n in rows:
        if pblk + n <= start_blk:
            continue
        if run and run[0] + run[1] == pblk:
            run = (run[0], run[1] + n)
            continue
        if run:
            yield run
        run = (pblk, n)
    if run:
        yield run


def trim(fs, start=0, length=None, minlen=0):
    """FITRIM: discard every granule-aligned granule wholly inside a free run of at least
    minlen bytes. Done under the metadata lock, so no allocation can race the discard.
    Returns trimmed granules and bytes, and what the host really released."""
    bs, g = fs.bs, fs.dev.granule
    dev_bytes = fs.nblocks * bs
    if start >= dev_bytes or length is not None and length < bs:     # ext4_trim_fs's checks
        raise FsError(errno.EINVAL, f"range {start}+{length} is past the device or shorter than a block")
    end = dev_bytes if length is None else min(dev_bytes, start + length)
    before = fs.dev.host_allocated_bytes()
    granules = 0
    # the frees being discarded must outlive a power cut, or a rolled-back map would point
    # at discarded blocks: commit (which also returns pending frees), then discard while
    # holding the metadata lock, so no allocation races the discard
    fs.meta.commit()
    with fs.meta.tx():
        for pblk, n in list(free_runs(fs, start // bs, ceil_div(end, bs), pending=False)):
            if n * bs < minlen:
                continue
            lo = max(pblk * bs, start)
            hi = min((pblk + n) * bs, end)
            lo = round_up(lo, g)
            hi = hi // g * g
            if hi > lo:
                fs.dev.discard(lo, hi - lo)
                granules += (hi - lo) // g
        fs.dev.flush()
    after = fs.dev.host_allocated_bytes()
    return {"granules": granules, "trimmed_bytes": granules * g, "released_bytes": max(0, before - after)}
