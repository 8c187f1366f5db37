"""Who owns the physical space: GETFSMAP records, discard-granule occupancy, and trim."""
import errno
import heapq
from array import array

from pyfalloc import uapi
from pyfalloc.errors import FsError
from pyfalloc.records import record
from pyfalloc.units import ceil_div, round_up

FsmapRecord = record("FsmapRecord", "physical length owner offset flags")

# the tables that own physical space; pending frees are free space (an allocation that
# needs them commits first)
_OWNER, _FREE, _WINDOW, _SUPER = 0, 1, 2, 3


def getfsmap(fs, low=0, high=None, count=None):
    """Records overlapping bytes [low, high], in physical order; the first is cut to start at
    low, so a query continues with low = last.physical + last.length. A query of count
    records reads at most count + 1 rows of a table, and none past a row that count rows
    of a table already precede."""
    bs = fs.bs
    high = fs.nblocks * bs - 1 if high is None else high
    lo_blk, hi_blk = low // bs, high // bs
    fs.meta.fresh()
    t = fs.meta.t
    rows = [(0, _SUPER, None)] if lo_blk == 0 else []       # no table holds the superblock
    for table, kind in ((t.owner, _OWNER), (t.free, _FREE), (t.pending, _FREE), (t.win, _WINDOW)):
        got = _owned(table, kind, lo_blk, hi_blk, count)
        if count is not None and len(got) > count:
            hi_blk = got[-1][0]     # count rows come before it: nothing past it can be returned
        rows += got
    rows.sort()         # sorted runs, merged; a start is in one table only, so only starts compare
    more = count is not None and len(rows) > count
    if more:
        del rows[count:]
    out = []
    for pblk, kind, v in rows:
        if kind == _OWNER:
            n, owner, lblk, flags = v[0], v[1], v[2], uapi.FMR_OF_PREALLOC if v[3] else 0
        elif kind == _FREE:
            n, owner, lblk, flags = v, uapi.FMR_OWN_FREE, 0, uapi.FMR_OF_SPECIAL_OWNER
        elif kind == _WINDOW:
            n, owner, lblk, flags = v[0], uapi.PYFALLOC_FMR_OWN_PREALLOC, 0, uapi.FMR_OF_SPECIAL_OWNER
        else:
            n, owner, lblk, flags = 1, uapi.FMR_OWN_FS, 0, uapi.FMR_OF_SPECIAL_OWNER
        start = pblk if pblk >= lo_blk else lo_blk
        out.append(FsmapRecord(start * bs, (pblk + n - start) * bs, owner, (lblk + start - pblk) * bs, flags))
    if out and not more:
        out[-1] = out[-1]._replace(flags=out[-1].flags | uapi.FMR_OF_LAST)
    return out


def _owned(table, kind, lo_blk, hi_blk, limit):
    """Up to limit rows of a table overlapping blocks [lo_blk, hi_blk], as (pblk, kind, row)."""
    keys = table.islice(max(table.bisect_right(lo_blk) - 1, 0))
    out = []
    for pblk in keys:
        if pblk > hi_blk:
            break
        v = table[pblk]
        if pblk < lo_blk and pblk + (v if kind == _FREE else v[0]) <= lo_blk:
            continue                # the row before lo_blk ends before it
        out.append((pblk, kind, v))
        if limit is not None and len(out) > limit:
            break
    return out


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
