"""Extent maps: which physical blocks back which logical blocks of an inode.

Extents of one inode never overlap; neighbours that are contiguous both logically and
physically and have the same written state are merged, as ext4 does.
"""
from collections import namedtuple

Extent = namedtuple("Extent", "lblk len pblk unwritten")


class ExtentMap:
    def __init__(self, meta):
        self.m = meta

    def lookup(self, ino, a, b):
        """Extents overlapping logical blocks [a, b), clipped to it, in order."""
        return [_clip(e, a, b) for e in self.overlapping(ino, a, b)]

    def overlapping(self, ino, a, b):
        """Whole extents overlapping logical blocks [a, b), in order."""
        if b <= a:
            return []
        out = []
        first = self.m.q1("SELECT lblk, len, pblk, unwritten FROM extents WHERE ino = ? AND lblk <= ? "
                          "ORDER BY lblk DESC LIMIT 1", (ino, a))
        if first and first[0] + first[1] > a:
            out.append(Extent(*first))
            if first[0] + first[1] >= b:        # one extent holds the range: a sequential reader's case
                return out
        out += [Extent(*r) for r in self.m.q(
            "SELECT lblk, len, pblk, unwritten FROM extents WHERE ino = ? AND lblk > ? AND lblk < ? ORDER BY lblk",
            (ino, a, b))]
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
        row = self.m.q1("SELECT lblk, len, pblk, unwritten FROM extents WHERE ino = ? AND lblk > ? "
                        "ORDER BY lblk LIMIT 1", (ino, lblk))
        return Extent(*row) if row else None

    def last(self, ino):
        row = self.m.q1("SELECT lblk, len, pblk, unwritten FROM extents WHERE ino = ? ORDER BY lblk DESC LIMIT 1",
                        (ino,))
        return Extent(*row) if row else None

    def before(self, ino, lblk):
        """The extent that ends at or before lblk and is nearest to it (for goal finding)."""
        row = self.m.q1("SELECT lblk, len, pblk, unwritten FROM extents WHERE ino = ? AND lblk < ? "
                        "ORDER BY lblk DESC LIMIT 1", (ino, lblk))
        return Extent(*row) if row else None

    def insert(self, ino, lblk, n, pblk, unwritten):
        unwritten = int(bool(unwritten))
        prev = self.m.q1("SELECT lblk, len, pblk, unwritten FROM extents WHERE ino = ? AND lblk < ? "
                         "ORDER BY lblk DESC LIMIT 1", (ino, lblk))
        if prev and prev[0] + prev[1] == lblk and prev[2] + prev[1] == pblk and prev[3] == unwritten:
            self.m.conn.execute("DELETE FROM extents WHERE ino = ? AND lblk = ?", (ino, prev[0]))
            lblk, pblk, n = prev[0], prev[2], n + prev[1]
        nxt = self.m.q1("SELECT lblk, len, pblk, unwritten FROM extents WHERE ino = ? AND lblk = ?",
                        (ino, lblk + n))
        if nxt and pblk + n == nxt[2] and nxt[3] == unwritten:
            self.m.conn.execute("DELETE FROM extents WHERE ino = ? AND lblk = ?", (ino, nxt[0]))
            n += nxt[1]
        self.m.conn.execute("INSERT INTO extents(ino, lblk, len, pblk, unwritten) VALUES (?, ?, ?, ?, ?)",
                            (ino, lblk, n, pblk, unwritten))

    def remove(self, ino, a, b):
        """Unmap logical [a, b); returns the removed pieces as Extents (physical blocks to free)."""
        removed = self.lookup(ino, a, b)
        if not removed:
            return []
        self._cut(ino, a)
        self._cut(ino, b)
        self.m.conn.execute("DELETE FROM extents WHERE ino = ? AND lblk >= ? AND lblk < ?", (ino, a, b))
        return removed

    def set_unwritten(self, ino, a, b, unwritten):
        for e in self.lookup(ino, a, b):
            if e.unwritten != int(unwritten):
                self.remove(ino, e.lblk, e.lblk + e.len)
                self.insert(ino, e.lblk, e.len, e.pblk, unwritten)

    def shift(self, ino, start, delta):
        """Move every extent at or after logical block start by delta blocks."""
        if delta > 0:
            rows = self.m.q("SELECT lblk FROM extents WHERE ino = ? AND lblk >= ? ORDER BY lblk DESC", (ino, start))
        else:
            rows = self.m.q("SELECT lblk FROM extents WHERE ino = ? AND lblk >= ? ORDER BY lblk", (ino, start))
        for (lblk,) in rows:
            self.m.conn.execute("UPDATE extents SET lblk = ? WHERE ino = ? AND lblk = ?", (lblk + delta, ino, lblk))

    def merge_at(self, ino, lblk):
        """Re-merge the extent starting at lblk with its left neighbour when they now touch."""
        row = self.m.q1("SELECT lblk, len, pblk, unwritten FROM extents WHERE ino = ? AND lblk = ?", (ino, lblk))
        if row:
            self.m.conn.execute("DELETE FROM extents WHERE ino = ? AND lblk = ?", (ino, lblk))
            self.insert(ino, *row[:3], row[3])

    def split(self, ino, lblk):
        self._cut(ino, lblk)

    def _cut(self, ino, at):
        """Split the extent that straddles logical block `at`, so a boundary falls there."""
        row = self.m.q1("SELECT lblk, len, pblk, unwritten FROM extents WHERE ino = ? AND lblk < ? "
                        "ORDER BY lblk DESC LIMIT 1", (ino, at))
        if row and row[0] + row[1] > at:
            lblk, n, pblk, unw = row
            head = at - lblk
            self.m.conn.execute("UPDATE extents SET len = ? WHERE ino = ? AND lblk = ?", (head, ino, lblk))
            self.m.conn.execute("INSERT INTO extents(ino, lblk, len, pblk, unwritten) VALUES (?, ?, ?, ?, ?)",
                                (ino, at, n - head, pblk + head, unw))

    def drop_all(self, ino):
        rows = [Extent(*r) for r in self.m.q(
            "SELECT lblk, len, pblk, unwritten FROM extents WHERE ino = ? ORDER BY lblk", (ino,))]
        self.m.conn.execute("DELETE FROM extents WHERE ino = ?", (ino,))
        return rows

    def count_blocks(self, ino):
        return self.m.q1("SELECT COALESCE(SUM(len), 0) FROM extents WHERE ino = ?", (ino,))[0]


def _clip(e, a, b):
    lo, hi = max(e.lblk, a), min(e.lblk + e.len, b)
    return Extent(lo, hi - lo, e.pblk + (lo - e.lblk), e.unwritten)
