"""Block allocation policies over the free-space map.

* default: ext4-like. The goal is right after the file's previous extent, else the
  inode's group. Small files (< STREAM_BLOCKS) are packed from a shared locality window
  of LG_WINDOW blocks; larger streams get a per-inode preallocation window, except that a
  small file grown into a stream goes on in the shared window while the window's next
  block follows its last. Windows count as used for every other allocation.
* exact: fallocate2's physical hint. The goal block or nothing; a window covering the
  goal is discarded first (the RFC's EXT4_MB_HINT_GOAL_ONLY behaviour).
* Kara's 2007 allocate(): FIXED_START, FIXED_LEN, CONTIGUOUS.

Each step costs a few index look-ups (freespace.FreeSpace). Out of space, the allocator
first drops preallocation windows, then forces a commit so that pending frees become
free (ext4 retries an allocation after a journal commit the same way).
"""
import errno

from pyfalloc.errors import FsError
from pyfalloc.uapi import ALLOC_CONTIGUOUS, ALLOC_FIXED_LEN, ALLOC_FIXED_START

STREAM_BLOCKS = 16          # ext4's mb_stream_req default
LG_WINDOW = 512             # ext4's locality-group preallocation size
MAX_WINDOW_BYTES = 8 << 20  # ext4 normalizes large requests to at most 8 MiB


class Policy:
    """Placement preferences: groups tried first, and a callable that may forbid groups."""

    def __init__(self, preferred=(), allowed=None):
        self.preferred = list(preferred)
        self.allowed = allowed or (lambda group: True)


class Allocator:
    def __init__(self, free, extmap, block_size, policy=None):
        self.free = free
        self.extmap = extmap
        self.block_size = block_size
        self.policy = policy or Policy()

    def _ok(self, pblk):
        return self.policy.allowed(self.free.group_of(pblk))

    # ---- the default policy ---------------------------------------------------------
    def _home(self, group):
        return min(group * self.free.group_blocks, self.free.nblocks - 1)

    def _following(self, ino, lblk):
        """The block that would continue the file's previous extent up to lblk, if any."""
        prev = self.extmap.before(ino, lblk)
        if prev is not None:
            goal = prev.pblk + (lblk - prev.lblk)
            if goal < self.free.nblocks:
                return goal
        return None

    def allocate(self, ino, lblk, n, home_group, file_blocks):
        """Allocate up to n blocks for logical block lblk; returns (pblk, count), count >= 1."""
        window = self._inode_window_at(ino, lblk)
        if window:
            wp, wl, _, wlblk = window
            start = wp + (lblk - wlblk)
            count = min(n, wp + wl - start)
            self.free.use_window(window, start, count)
            return start, count
        follows = self._following(ino, lblk)
        goal = self._home(home_group) if follows is None else follows
        if max(file_blocks, lblk + n) < STREAM_BLOCKS:
            got = self._from_locality_window(goal, n)
            if got:
                return got
        elif follows is not None:
            # a small file grown past the stream size, one write at a time (ext4 would
            # allocate its delayed blocks at once): it goes on contiguously while the shared
            # window's next block is the one after its own, and past the window's end
            window = self.free.locality_window_at(follows)
            if window:
                count = min(n, window[1])
                self.free.use_window(window, follows, count)
                return follows, count
        return self._carve(ino, lblk, n, goal)

    def _inode_window_at(self, ino, lblk):
        return self.free.inode_window_at(ino, lblk)

    def _from_locality_window(self, goal, n):
        windows = self.free.locality_windows()
        window = next((w for w in windows if w[1] >= n), None)
        if window is None:
            for old in windows:
                self.free.discard_window(old)
            found = self._search(goal, LG_WINDOW) or self._search(goal, n)
            if found is None:
                return None
            start, size = found[0], min(found[1], LG_WINDOW)
            self.free.take(start, size)
            self.free.add_window(start, size, 0, None)
            window = (start, size, 0, None)
        self.free.use_window(window, window[0], n)
        return window[0], n

    def _carve(self, ino, lblk, n, goal):
        want = self._normalize(n)
        found = self._search(goal, want)
        if found:
            start = found[0]
            self.free.take(start, want)
            self.free.add_window(start + n, want - n, ino, lblk + n)
            return start, n
        found = self._search(goal, n)
        if found:
            self.free.take(found[0], n)
            return found[0], n
        found = self._largest()
        if found is None and (self.free.discard_all_windows() or self.free.release_durable()):
            return self._carve(ino, lblk, n, goal)
        if found is None:
            raise FsError(errno.ENOSPC, "no free blocks")
        self.free.take(found[0], found[1])
        return found

    def _normalize(self, n):
        cap = max(MAX_WINDOW_BYTES // self.block_size, 1)
        if n >= cap:
            return n
        size = STREAM_BLOCKS
        while size < n:
            size <<= 1
        return max(n, min(size, cap, self.free.group_blocks))

    def _search(self, goal, need):
        """A free run of `need` blocks: at the goal, else best fit in its group, else anywhere."""
        at = self.free.containing(goal)
        if at and at[0] + at[1] - goal >= need and self._ok(goal):
            return goal, at[0] + at[1] - goal
        for grp in [self.free.group_of(goal)] + self.policy.preferred:
            if self.policy.allowed(grp):
                row = self.free.best_fit_in_group(grp, need)
                if row:
                    return row
        for row in self.free.fits(need):
            if self._ok(row[0]):
                return row
        return None

    def _largest(self):
        row = self.free.largest()
        if row is None or self._ok(row[0]):
            return row
        for row in self.free.fits(1):
            if self._ok(row[0]):
                return row
        return None

    # ---- fallocate2's exact goal ------------------------------------------------------
    def take_exact(self, pblk, n):
        """Take blocks starting exactly at pblk; returns how many (>= 1), else ENOSPC. A
        target covered by a window drops the window; one whose free is not durable yet
        forces a commit."""
        for attempt in (0, 1):
            at = self.free.containing(pblk)
            if at:
                count = min(n, at[0] + at[1] - pblk)
                self.free.take(pblk, count, at)
                return count
            if attempt:
                break
            window = self.free.window_containing(pblk)
            if window is not None:
                self.free.discard_window(window)
            elif not (self.free.is_pending(pblk) and self.free.release_durable()):
                break
        raise FsError(errno.ENOSPC, f"physical block {pblk} is in use")

    # ---- Kara's allocate() ------------------------------------------------------------
    def take_kara(self, goal, n, mode):
        """Pieces (pblk, count) for n blocks under ALLOC_* mode; may be fewer than n blocks
        unless FIXED_LEN. The caller owns the transaction and rolls back on error."""
        contiguous = mode & ALLOC_CONTIGUOUS
        if mode & ALLOC_FIXED_START:
            pieces = [(goal, self.take_exact(goal, n))]
        elif contiguous:
            found = self._search(goal, n) or self._largest()
            if found is None:
                raise FsError(errno.ENOSPC, "no free blocks")
            first = min(n, found[1])
            self.free.take(found[0], first)
            pieces = [(found[0], first)]
        else:
            pieces = []
        got = sum(p[1] for p in pieces)
        if not contiguous:
            while got < n:
                nxt = pieces[-1][0] + pieces[-1][1] if pieces else goal
                found = self._search(nxt, n - got) or self._largest()
                if found is None:
                    break
                count = min(n - got, found[1])
                self.free.take(found[0], count)
                pieces.append((found[0], count))
                got += count
        if mode & ALLOC_FIXED_LEN and got < n:
            raise FsError(errno.ENOSPC, f"only {got} of {n} blocks available")
        if not pieces:
            raise FsError(errno.ENOSPC, "no free blocks")
        return pieces
