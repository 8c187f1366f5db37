"""The free-space map and preallocation windows, as B-tree indexed tables.

Every operation is a handful of index look-ups: logarithmic in the number of free
extents, never a scan over blocks. Callers hold a metadata transaction.
"""
from .errors import FormatError


class FreeSpace:
    def __init__(self, meta, group_blocks, nblocks):
        self.m = meta
        self.group_blocks = group_blocks
        self.nblocks = nblocks

    def group_of(self, pblk):
        return pblk // self.group_blocks

    # ---- free extents -------------------------------------------------------------
    def containing(self, pblk):
        """The free extent holding pblk, as (start, len), or None."""
        row = self.m.q1("SELECT pblk, len FROM free WHERE pblk <= ? ORDER BY pblk DESC LIMIT 1", (pblk,))
        if row and row[0] + row[1] > pblk:
            return row
        return None

    def best_fit_in_group(self, grp, n):
        return self.m.q1("SELECT pblk, len FROM free WHERE grp = ? AND len >= ? ORDER BY len, pblk LIMIT 1",
                         (grp, n))

    def fits(self, n):
        """Free extents of at least n blocks, smallest first (lazily, for policy filters)."""
        return self.m.conn.execute("SELECT pblk, len FROM free WHERE len >= ? ORDER BY len, pblk", (n,))

    def largest(self):
        return self.m.q1("SELECT pblk, len FROM free ORDER BY len DESC, pblk LIMIT 1")

    def take(self, start, n):
        """Mark [start, start+n) used; it must lie inside one free extent."""
        row = self.containing(start)
        if row is None or start + n > row[0] + row[1]:
            raise FormatError(f"blocks {start}+{n} taken but not free")
        fs, fl = row
        self.m.conn.execute("DELETE FROM free WHERE pblk = ?", (fs,))
        if start > fs:
            self._put(fs, start - fs)
        if start + n < fs + fl:
            self._put(start + n, fs + fl - start - n)

    def give(self, start, n):
        """Return [start, start+n) to the free map, merging with neighbours in the same group."""
        end = start + n
        while start < end:
            grp_end = (self.group_of(start) + 1) * self.group_blocks
            piece_end = min(end, grp_end)
            self._give_in_group(start, piece_end)
            start = piece_end

    def _give_in_group(self, start, end):
        grp = self.group_of(start)
        prev = self.m.q1("SELECT pblk, len, grp FROM free WHERE pblk < ? ORDER BY pblk DESC LIMIT 1", (start,))
        if prev:
            if prev[0] + prev[1] > start:
                raise FormatError(f"block {start} freed twice (free extent {prev[0]}+{prev[1]})")
            if prev[0] + prev[1] == start and prev[2] == grp:
                self.m.conn.execute("DELETE FROM free WHERE pblk = ?", (prev[0],))
                start = prev[0]
        nxt = self.m.q1("SELECT pblk, len, grp FROM free WHERE pblk >= ? ORDER BY pblk LIMIT 1", (start,))
        if nxt:
            if nxt[0] < end:
                raise FormatError(f"block {nxt[0]} freed twice")
            if nxt[0] == end and nxt[2] == grp:
                self.m.conn.execute("DELETE FROM free WHERE pblk = ?", (nxt[0],))
                end = nxt[0] + nxt[1]
        self._put(start, end - start)

    def _put(self, start, n):
        self.m.conn.execute("INSERT INTO free(pblk, len, grp) VALUES (?, ?, ?)", (start, n, self.group_of(start)))

    def free_blocks(self):
        return self.m.q1("SELECT COALESCE(SUM(len), 0) FROM free")[0]

    def count(self):
        return self.m.q1("SELECT COUNT(*) FROM free")[0]

    # ---- preallocation windows -----------------------------------------------------
    def window_containing(self, pblk):
        row = self.m.q1("SELECT pblk, len, ino, lblk FROM prealloc WHERE pblk <= ? ORDER BY pblk DESC LIMIT 1",
                        (pblk,))
        if row and row[0] + row[1] > pblk:
            return row
        return None

    def add_window(self, pblk, n, ino, lblk):
        if n > 0:
            self.m.conn.execute("INSERT INTO prealloc(pblk, len, ino, lblk) VALUES (?, ?, ?, ?)",
                                (pblk, n, ino, lblk))

    def use_window(self, window, start, n):
        """Consume [start, start+n) of a window, keeping what is left on either side."""
        wp, wl, ino, wlblk = window
        self.m.conn.execute("DELETE FROM prealloc WHERE pblk = ?", (wp,))
        if start > wp:
            self.add_window(wp, start - wp, ino, wlblk)
        if start + n < wp + wl:
            rest = start + n
            self.add_window(rest, wp + wl - rest, ino, None if wlblk is None else wlblk + (rest - wp))

    def discard_window(self, window):
        self.m.conn.execute("DELETE FROM prealloc WHERE pblk = ?", (window[0],))
        self.give(window[0], window[1])

    def discard_windows_of(self, ino):
        for w in self.m.q("SELECT pblk, len, ino, lblk FROM prealloc WHERE ino = ?", (ino,)):
            self.discard_window(w)

    def discard_all_windows(self):
        rows = self.m.q("SELECT pblk, len, ino, lblk FROM prealloc")
        for w in rows:
            self.discard_window(w)
        return sum(w[1] for w in rows)

    def prealloc_blocks(self):
        return self.m.q1("SELECT COALESCE(SUM(len), 0) FROM prealloc")[0]
