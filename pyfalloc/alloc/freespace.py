"""The free-space map and preallocation windows over the metadata tables.

Every operation is a few look-ups in sorted indexes: logarithmic in the number of free
extents, never a scan over blocks. Callers hold a metadata change (store.tx()).

Blocks a change frees are *pending* until a commit makes that change durable (ext4's rule:
a freed block is not reused before the transaction freeing it commits); `release` then
returns them to the map. Unused window blocks never held this owner's data and go back at
once.
"""
from pyfalloc.errors import FormatError


class FreeSpace:
    def __init__(self, store, group_blocks, nblocks):
        self.s = store
        self.group_blocks = group_blocks
        self.nblocks = nblocks
        store.on_release = self.release

    def group_of(self, pblk):
        return pblk // self.group_blocks

    # ---- free extents -------------------------------------------------------------
    def containing(self, pblk):
        """The free extent holding pblk, as (start, len), or None."""
        free = self.s.t.free
        i = free.bisect_right(pblk) - 1
        if i >= 0:
            start, n = free.peekitem(i)
            if start + n > pblk:
                return start, n
        return None

    def best_fit_in_group(self, grp, n):
        idx = self.s.t.free_grp.get(grp)
        if idx:
            i = idx.bisect_left((n, -1))
            if i < len(idx):
                length, pblk = idx[i]
                return pblk, length
        return None

    def fits(self, n):
        """Free extents of at least n blocks, smallest first (lazily, for policy filters)."""
        for length, pblk in self.s.t.free_len.irange((n, -1)):
            yield pblk, length

    def largest(self):
        idx = self.s.t.free_len
        if not idx:
            return None
        length, pblk = idx[idx.bisect_left((idx[-1][0], -1))]
        return pblk, length

    def take(self, start, n, row=None):
        """Mark [start, start+n) used; it must lie inside one free extent (row, when the
        caller has just looked it up)."""
        if row is None:
            row = self.containing(start)
        if row is None or start + n > row[0] + row[1]:
            raise FormatError(f"blocks {start}+{n} taken but not free")
        fs, fl = row
        put = self.s.put
        put("f", fs, start - fs if start > fs else None)    # a head left keeps its row
        if start + n < fs + fl:
            put("f", start + n, fs + fl - start - n)

    def give(self, start, n):
        """Blocks a change frees: reusable once the change is durable."""
        if n > 0:
            self.s.put("p", start, n)

    def release(self, items):
        """Return durable frees (pblk, len) to the map (the store calls this at commit).
        Frees that touch go back as one run: the map ends the same, and an emptied granule's
        pieces cost one merge instead of one each."""
        put = self.s.put
        start = end = None
        for pblk, n in sorted(items):
            put("p", pblk, None)
            if pblk != end:
                if start is not None:
                    self.put_back(start, end - start)
                start = pblk
            end = pblk + n
        if start is not None:
            self.put_back(start, end - start)

    def put_back(self, start, n):
        """Return [start, start+n) to the map now, merging with neighbours in the same group."""
        end = start + n
        while start < end:
            grp_end = (self.group_of(start) + 1) * self.group_blocks
            piece_end = min(end, grp_end)
            self._give_in_group(start, piece_end)
            start = piece_end

    def _give_in_group(self, start, end):
        grp = self.group_of(start)
        free, put = self.s.t.free, self.s.put
        i = free.bisect_left(start)
        if i > 0:
            pp, pn = free.peekitem(i - 1)
            if pp + pn > start:
                raise FormatError(f"block {start} freed twice (free extent {pp}+{pn})")
            if pp + pn == start and self.group_of(pp) == grp:
                put("f", pp, None)
                start = pp
                i -= 1
        if i < len(free):
            np_, nn = free.peekitem(i)
            if np_ < end:
                raise FormatError(f"block {np_} freed twice")
            if np_ == end and self.group_of(np_) == grp:
                put("f", np_, None)
                end = np_ + nn
        put("f", start, end - start)

    def release_durable(self):
        """Out of space inside a change: commit, so the frees pending on it become free
        (ext4 retries an allocation after a journal commit). Returns the blocks released."""
        return self.s.release_durable_frees()

    def is_pending(self, pblk):
        pending = self.s.t.pending
        i = pending.bisect_right(pblk) - 1
        if i < 0:
            return False
        p, n = pending.peekitem(i)
        return p + n > pblk

    def free_blocks(self):
        return sum(self.s.t.free.values())

    def pending_blocks(self):
        return sum(self.s.t.pending.values())

    def count(self):
        return len(self.s.t.free)

    # ---- preallocation windows -----------------------------------------------------
    def window_containing(self, pblk):
        win = self.s.t.win
        i = win.bisect_right(pblk) - 1
        if i >= 0:
            wp, (wl, ino, lblk) = win.peekitem(i)
            if wp + wl > pblk:
                return wp, wl, ino, lblk
        return None

    def inode_window_at(self, ino, lblk):
        """The window of inode ino that covers logical block lblk."""
        mine = self.s.t.win_of.get(ino)
        if not mine:
            return None
        i = mine.bisect_right(lblk) - 1
        if i < 0:
            return None
        wp = mine.peekitem(i)[1]
        wl, _, wlblk = self.s.t.win[wp]
        return (wp, wl, ino, wlblk) if wlblk + wl > lblk else None

    def locality_windows(self):
        """The shared small-file windows, in physical order."""
        win = self.s.t.win
        return [(wp, *win[wp]) for wp in self.s.t.win_of.get(0, {}).values()]

    def locality_window_at(self, pblk):
        """The shared small-file window that starts at block pblk, or None."""
        row = self.s.t.win.get(pblk)
        return (pblk, *row) if row is not None and row[1] == 0 else None

    def add_window(self, pblk, n, ino, lblk):
        if n > 0:
            self.s.put("w", pblk, (n, ino, lblk))

    def use_window(self, window, start, n):
        """Consume [start, start+n) of a window, keeping what is left on either side."""
        wp, wl, ino, wlblk = window
        self.s.put("w", wp, None)
        if start > wp:
            self.add_window(wp, start - wp, ino, wlblk)
        if start + n < wp + wl:
            rest = start + n
            self.add_window(rest, wp + wl - rest, ino, None if wlblk is None else wlblk + (rest - wp))

    def discard_window(self, window):
        self.s.put("w", window[0], None)
        self.put_back(window[0], window[1])

    def discard_windows_of(self, ino):
        win = self.s.t.win
        for wp in list(self.s.t.win_of.get(ino, {}).values()):
            self.discard_window((wp, *win[wp]))

    def discard_all_windows(self):
        rows = [(wp, *v) for wp, v in self.s.t.win.items()]
        for w in rows:
            self.discard_window(w)
        return sum(w[1] for w in rows)

    def prealloc_blocks(self):
        return sum(v[0] for v in self.s.t.win.values())
