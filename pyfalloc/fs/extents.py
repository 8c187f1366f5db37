"""Extent maps: which physical blocks back which logical blocks of an inode.

Extents of one inode never overlap; neighbours that are contiguous both logically and
physically and have the same written state are merged, as ext4 does. Changes are made
inside a metadata change (store.tx()).
"""
from pyfalloc.records import record

Extent = record("Extent", "lblk len pblk unwritten")
LOOK_UP = object()          # insert's prev when the caller does not know the extent before


class ExtentMap:
    def __init__(self, store):
        self.s = store

    def _map(self, ino):
        return self.s.t.extents(ino)

    def lookup(self, ino, a, b):
        """Extents overlapping logical blocks [a, b), clipped to it, in order."""
        return [_clip(e, a, b) for e in self.overlapping(ino, a, b)]

    def overlapping(self, ino, a, b):
        """Whole extents overlapping logical blocks [a, b), in order."""
        m = self._map(ino)
        if b <= a or not m:
            return []
        i = m.bisect_right(a) - 1
        out = []
        if i >= 0:
            lblk, (n, pblk, unw) = m.peekitem(i)
            if lblk + n > a:
                out.append(Extent(lblk, n, pblk, unw))
                if lblk + n >= b:
                    return out
        for lblk in m.irange(a, b, inclusive=(False, False)):
            n, pblk, unw = m[lblk]
            out.append(Extent(lblk, n, pblk, unw))
        return out

    def segments(self, ino, a, b):
        """[a, b) cut into mapped extents and holes: yields (lblk, len, Extent-or-None)."""
        pos = a
        for e in self.lookup(ino, a, b):
            if e.lblk > pos:
                yield pos, e.lblk - pos, None
            yield e.lblk, e.len, e
            pos = e.lblk + e.len
        if pos < b:
            yield pos, b - pos, None

    def at_or_after(self, ino, lblk):
        """The whole extent holding lblk, else the first one after it, else None."""
        found = self.overlapping(ino, lblk, lblk + 1)
        if found:
            return found[0]
        m = self._map(ino)
        if m:
            i = m.bisect_right(lblk)
            if i < len(m):
                k, v = m.peekitem(i)
                return Extent(k, *v)
        return None

    def last(self, ino):
        m = self._map(ino)
        if not m:
            return None
        k, v = m.peekitem(-1)
        return Extent(k, *v)

    def before(self, ino, lblk):
        """The extent that starts before lblk and is nearest to it (for goal finding)."""
        m = self._map(ino)
        if not m:
            return None
        i = m.bisect_left(lblk) - 1
        if i < 0:
            return None
        k, v = m.peekitem(i)
        return Extent(k, *v)

    def all(self, ino):
        m = self._map(ino)
        return [Extent(k, *v) for k, v in m.items()] if m else []

    def insert(self, ino, lblk, n, pblk, unwritten, prev=LOOK_UP):
        """prev: the extent before lblk (None: there is none), or LOOK_UP."""
        unwritten = int(bool(unwritten))
        put = self.s.put
        if prev is LOOK_UP:
            prev = self.before(ino, lblk)
        if prev and prev.lblk + prev.len == lblk and prev.pblk + prev.len == pblk and prev.unwritten == unwritten:
            lblk, pblk, n = prev.lblk, prev.pblk, n + prev.len     # its row is rewritten below
        m = self._map(ino)
        nxt = m.get(lblk + n) if m else None
        if nxt and pblk + n == nxt[1] and nxt[2] == unwritten:
            put("e", (ino, lblk + n), None)
            n += nxt[0]
        put("e", (ino, lblk), (n, pblk, unwritten))

    def remove(self, ino, a, b):
        """Unmap logical [a, b); returns the removed pieces as Extents (physical blocks to free)."""
        whole = self.overlapping(ino, a, b)
        if not whole:
            return []
        put = self.s.put
        # the extents straddling a and b keep their outer parts (the cuts, without looking
        # either extent up again)
        first, last = whole[0], whole[-1]
        if first.lblk < a:
            put("e", (ino, first.lblk), (a - first.lblk, first.pblk, first.unwritten))
        else:
            put("e", (ino, first.lblk), None)
        for e in whole[1:]:
            put("e", (ino, e.lblk), None)
        if last.lblk + last.len > b:
            put("e", (ino, b), (last.lblk + last.len - b, last.pblk + b - last.lblk, last.unwritten))
        return [_clip(e, a, b) for e in whole]

    def exchange(self, a, a_lblk, b, b_lblk, n, a_pblk, b_pblk):
        """A move's swap in two rows: when a's [a_lblk, +n) is one whole extent at a_pblk
        and b's [b_lblk, +n) one whole unwritten extent at b_pblk, and neither lands beside
        a neighbour it would merge with, a's row takes b_pblk (keeping its state) and b's
        takes a_pblk, unwritten — what removing both and inserting them again would give.
        Returns False, changing nothing, otherwise."""
        ma, mb = self._map(a), self._map(b)
        va = ma.get(a_lblk) if ma else None
        vb = mb.get(b_lblk) if mb else None
        if va is None or vb is None or va[0] != n or vb[0] != n or va[1] != a_pblk or vb[1] != b_pblk or not vb[2]:
            return False
        unw = va[2]
        for m, lblk, pblk, state in ((ma, a_lblk, b_pblk, unw), (mb, b_lblk, a_pblk, 1)):
            i = m.bisect_left(lblk) - 1
            if i >= 0:
                k, (pn, pp, pu) = m.peekitem(i)
                if k + pn == lblk and pp + pn == pblk and pu == state:
                    return False
            nxt = m.get(lblk + n)
            if nxt is not None and nxt[1] == pblk + n and nxt[2] == state:
                return False
        put = self.s.put
        put("e", (a, a_lblk), (n, b_pblk, unw))
        put("e", (b, b_lblk), (n, a_pblk, 1))
        return True

    def set_unwritten(self, ino, a, b, unwritten):
        """Mark logical [a, b) unwritten or written. An extent that changes keeps its head
        and tail as they were, and its middle, re-marked, merges with a neighbour of the
        same kind: three rows for a block turned written inside an unwritten extent (every
        first write into fallocated space)."""
        flag = int(bool(unwritten))
        put = self.s.put
        for e in self.overlapping(ino, a, b):
            if e.unwritten == flag:
                continue
            lo, hi, end = max(e.lblk, a), min(e.lblk + e.len, b), e.lblk + e.len
            put("e", (ino, e.lblk), (lo - e.lblk, e.pblk, e.unwritten) if lo > e.lblk else None)
            if hi < end:
                put("e", (ino, hi), (end - hi, e.pblk + hi - e.lblk, e.unwritten))
            self.insert(ino, lo, hi - lo, e.pblk + lo - e.lblk, flag)

    def shift(self, ino, start, delta):
        """Move every extent at or after logical block start by delta blocks."""
        m = self._map(ino)
        if not m:
            return
        moving = [(k, m[k]) for k in m.irange(minimum=start)]
        for k, _ in moving:
            self.s.put("e", (ino, k), None)
        for k, v in moving:
            self.s.put("e", (ino, k + delta), v)

    def merge_at(self, ino, lblk):
        """Re-merge the extent starting at lblk with its left neighbour when they now touch."""
        m = self._map(ino)
        v = m.get(lblk) if m else None
        if v:
            self.s.put("e", (ino, lblk), None)
            self.insert(ino, lblk, *v)

    def split(self, ino, lblk):
        self._cut(ino, lblk)

    def _cut(self, ino, at):
        """Split the extent that straddles logical block `at`, so a boundary falls there."""
        e = self.before(ino, at)
        if e and e.lblk + e.len > at:
            head = at - e.lblk
            self.s.put("e", (ino, e.lblk), (head, e.pblk, e.unwritten))
            self.s.put("e", (ino, at), (e.len - head, e.pblk + head, e.unwritten))

    def drop_all(self, ino):
        rows = self.all(ino)
        for e in rows:
            self.s.put("e", (ino, e.lblk), None)
        return rows

    def count_blocks(self, ino):
        m = self.s.t.ext.get(ino)      # in any order: a stat need not sort the file's index
        return sum(v[0] for v in dict.values(m)) if m else 0


def _clip(e, a, b):
    lo, hi = max(e.lblk, a), min(e.lblk + e.len, b)
    return Extent(lo, hi - lo, e.pblk + (lo - e.lblk), e.unwritten)
