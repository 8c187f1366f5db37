"""The thin-provisioning compactor: free whole discard granules by moving the live bytes of
the cheapest ones into holes of granules that stay, then discard.

It sees the volume only as a tool sees a kernel filesystem: GETFSMAP for who owns each
byte, the directory tree and stat for names and ages, FIEMAP to re-check a placement; it
acts only through fallocate2, EXT4_IOC_MOVE_EXT and FITRIM. Three strategies:

  exact     the proposal: per granule one donor, fallocate2'd exactly into the holes, then MOVE_EXT
  donor     one large donor fallocated without a hint, whole files moved into it
  keepsize  KEEP_SIZE blocks at the end of the file before a hole, used as the donor
"""
import errno
import os
import time
from array import array
from bisect import bisect_left
from dataclasses import dataclass, field

from sortedcontainers import SortedList

from pyfalloc import uapi
from pyfalloc.cli.progress import progress
from pyfalloc.errors import FsError
from pyfalloc.fs.move import PAGE_SIZE
from pyfalloc.tools.relocate import relocate
from pyfalloc.units import ceil_div, round_up

STRATEGIES = ("exact", "donor", "keepsize")
DT_DIR, DT_REG = 4, 8           # <dirent.h>


class Granule:
    """One discard granule: its live bytes, whether it must stay, and its holes and file
    pieces kept flat in arrays (a few machine words each, not a tuple of ints each)."""
    __slots__ = ("index", "size", "live", "pinned", "_holes", "_pieces")

    def __init__(self, index, size):
        self.index, self.size, self.live, self.pinned = index, size, 0, False
        self._holes = self._pieces = None

    def add_hole(self, physical, length):
        if self._holes is None:
            self._holes = array("q")
        self._holes.extend((physical, length))

    def add_piece(self, ino, logical, physical, length):
        if self._pieces is None:
            self._pieces = array("q")
        self._pieces.extend((ino, logical, physical, length))

    @property
    def holes(self):
        """[(physical, length)]"""
        h = self._holes or ()
        return list(zip(h[0::2], h[1::2]))

    @property
    def pieces(self):
        """[(ino, logical, physical, length)]"""
        p = self._pieces or ()
        return list(zip(p[0::4], p[1::4], p[2::4], p[3::4]))

    @property
    def owners(self):
        return self._pieces[0::4] if self._pieces else ()

    @property
    def free(self):
        return sum(self._holes[1::2]) if self._holes else 0


class PathIndex:
    """ino -> path for every named regular file, in two arrays and one blob (a dict of str
    would cost about five times as much per file)."""

    def __init__(self, pairs):
        inos, ends, blob = array("q"), array("q", [0]), bytearray()
        for ino, path in pairs:
            inos.append(ino)
            blob += path.encode("utf-8", "surrogateescape")
            ends.append(len(blob))
        self._inos, self._ends, out = array("q"), array("q"), bytearray()
        for i in sorted(range(len(inos)), key=inos.__getitem__):     # by ino, for bisect
            self._inos.append(inos[i])
            out += blob[ends[i]:ends[i + 1]]
            self._ends.append(len(out))
        self._blob = bytes(out)

    def _find(self, ino):
        i = bisect_left(self._inos, ino)
        return i if i < len(self._inos) and self._inos[i] == ino else -1

    def __contains__(self, ino):
        return self._find(ino) >= 0

    def __getitem__(self, ino):
        i = self._find(ino)
        if i < 0:
            raise KeyError(ino)
        return self._blob[self._ends[i - 1] if i else 0:self._ends[i]].decode("utf-8", "surrogateescape")

    def __len__(self):
        return len(self._inos)


@dataclass
class Snapshot:
    granule: int
    block: int
    granules: list
    paths: PathIndex     # ino -> path, every named regular file
    skipped: dict        # why files were left alone -> count
    kept: dict = field(default_factory=dict)    # ino -> why it must not change

    @property
    def wholly_free(self):
        return sum(1 for g in self.granules if g.live == 0)

    def candidates(self):
        """Granules that could be freed, cheapest first."""
        return sorted((g for g in self.granules if g.live and not g.pinned), key=lambda g: (g.live, g.index))

    def partial(self):
        return [g for g in self.granules if g.live and g.live < g.size]


def fsmap_all(vol, chunk=4096):
    """Every GETFSMAP record, a chunk at a time, continuing from the last one as a tool does."""
    low = 0
    while True:
        recs = vol.getfsmap(low=low, count=chunk)
        yield from recs
        if not recs or recs[-1].flags & uapi.FMR_OF_LAST:
            return
        low = recs[-1].physical + recs[-1].length


def walk(vol, top="/"):
    """ino -> path for every regular file, by walking the tree with the file types readdir
    gives (as e4defrag's nftw does, without a stat per file)."""
    return PathIndex(_regular_files(vol, top))


def _regular_files(vol, top):
    stack = [top]
    while stack:
        d = stack.pop()
        fd = vol.open(d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            entries = vol.readdir_fd(fd)
        finally:
            vol.close(fd)
        base = d.rstrip("/") + "/"
        for name, ino, dtype in entries:
            if dtype == DT_DIR and name not in (".", ".."):
                stack.append(base + name)
            elif dtype == DT_REG:
                yield ino, base + name


def snapshot(vol, min_age=0.0, now=None):
    """Who owns every granule (GETFSMAP, in physical order), with the files named by one
    walk of the tree; files open anywhere (fuser's view, gathered once) and, with min_age,
    owners of partly used granules changed recently are left alone."""
    G, bs = vol.granule, vol.block_size
    files = walk(vol)
    granules, unnamed = occupancy(vol, files)
    now = time.time() if now is None else now
    skipped = {"open": 0, "recent": 0, "unnamed": len(unnamed)}
    busy = vol.open_inodes()
    kept = {}
    for g in granules:
        if g.pinned or not g.owners or g.live >= g.size:
            continue
        for ino in g.owners:
            why = kept.get(ino) or _why_kept(vol, ino, files, busy, min_age, now)
            if why:
                if ino not in kept:
                    kept[ino] = why
                    skipped[why] += 1
                g.pinned = True
    return Snapshot(G, bs, granules, files, skipped, kept)


def occupancy(vol, files=None):
    """Granules with their live bytes and holes from GETFSMAP, and the owners not in files.
    With files (ino -> path), the pieces of those files; blocks of anything else (metadata,
    preallocation windows, files with no name) pin their granule."""
    G, size = vol.granule, vol.size
    granules = [Granule(i, min(G, size - i * G)) for i in range(ceil_div(size, G))]
    unnamed = set()
    for r in fsmap_all(vol):
        start, end = r.physical, r.physical + r.length
        while start < end:
            g = granules[start // G]
            piece = min(end, (g.index + 1) * G) - start
            if r.flags & uapi.FMR_OF_SPECIAL_OWNER:
                if r.owner == uapi.FMR_OWN_FREE:
                    g.add_hole(start, piece)
                else:
                    g.live += piece
                    g.pinned = True
            else:
                g.live += piece
                if files is not None:
                    if r.owner in files:
                        g.add_piece(r.owner, r.offset + (start - r.physical), start, piece)
                    else:
                        g.pinned = True
                        unnamed.add(r.owner)
            start += piece
    return granules, unnamed


def _why_kept(vol, ino, paths, busy, min_age, now):
    if ino in busy:
        return "open"
    if min_age and now - vol.stat(paths[ino]).st_mtime < min_age:
        return "recent"
    return None


def lower_bound(snap):
    """The fractional bound: k_max granules could be freed at all (cheapest first, as long
    as the holes of the granules kept can absorb their live bytes); freeing k granules
    moves at least the sum of the k smallest live counts."""
    cands = snap.candidates()
    free_space = sum(g.free for g in snap.partial())
    k_max, moved = 0, 0
    for g in cands:
        own_holes = g.free
        if moved + g.live > free_space - own_holes:
            break
        moved += g.live
        free_space -= own_holes
        k_max += 1
    return {"k_max": k_max, "bytes_for_k_max": moved}


def cheapest_costs(snap):
    """B_k for every k: the bytes of the k cheapest granules together (B_0 = 0)."""
    out = [0]
    for g in snap.candidates():
        out.append(out[-1] + g.live)
    return out


class HolePool:
    """Holes of the granules that stay, for best fit: the smallest hole a piece fits in."""

    def __init__(self, granules, granule_size):
        self.G = granule_size
        self.by_len = SortedList()
        self.frags = {}                     # granule index -> {(length, physical)}
        self.total = 0
        for g in granules:
            self.add_granule(g)

    def add_granule(self, g):
        for p, n in g.holes:
            self._add(n, p)

    def _add(self, n, p):
        self.by_len.add((n, p))
        self.frags.setdefault(p // self.G, set()).add((n, p))
        self.total += n

    def _remove(self, n, p):
        self.by_len.remove((n, p))
        self.frags[p // self.G].discard((n, p))
        self.total -= n

    def remove_granule(self, g):
        for n, p in list(self.frags.get(g.index, ())):
            self._remove(n, p)

    def take(self, length):
        """Place length bytes: best fit, else split over the largest holes. Returns
        [(physical, length)], or None (nothing taken) when the pool cannot hold it."""
        if length > self.total:
            return None
        out = []
        while length:
            i = self.by_len.bisect_left((length, -1))
            n, p = self.by_len[i] if i < len(self.by_len) else self.by_len[-1]
            self._remove(n, p)
            used = min(n, length)
            out.append((p, used))
            if n > used:
                self._add(n - used, p + used)
            length -= used
        return out


def _runs(layout):
    """Split [(ino, logical, length, donor offset, target)], in target order, into runs that
    are contiguous both in the donor and on the device: one fallocate2 places a run."""
    run = []
    for piece in layout:
        if run and not (run[-1][3] + run[-1][2] == piece[3] and run[-1][4] + run[-1][2] == piece[4]):
            yield run
            run = []
        run.append(piece)
    if run:
        yield run


def plan_exact(snap, k, budget=None):
    """The k cheapest granules that the holes of the others can absorb (k as in the bound,
    cut by the budget) are the victims; their pieces go, largest first, into the smallest
    hole they fit in among the granules that stay (split over the largest holes only when
    none fits). Never into a victim, never into a wholly free granule. Returns
    [(granule, moves)] with moves = [(ino, logical, length, target physical)]."""
    victims, spent = [], 0
    for g in snap.candidates()[:k]:
        if budget is not None and spent + g.live > budget:
            break
        victims.append(g)
        spent += g.live
    chosen = {g.index for g in victims}
    pool = HolePool((g for g in snap.partial() if g.index not in chosen), snap.granule)
    moves = {g.index: [] for g in victims}
    pieces = sorted(((length, ino, logical, g.index) for g in victims for ino, logical, _, length in g.pieces),
                    reverse=True)
    for length, ino, logical, gi in pieces:
        spots = pool.take(length)
        if spots is None:           # cannot happen within the bound; drop the granule if it does
            moves.pop(gi, None)
            continue
        off = 0
        for target, n in spots:
            if gi in moves:
                moves[gi].append((ino, logical + off, n, target))
            off += n
    return [(g, moves[g.index]) for g in victims if g.index in moves]


class Compactor:
    def __init__(self, vol, strategy="exact", budget=None, min_age=0.0, progress=False):
        if strategy not in STRATEGIES:
            raise FsError(errno.EINVAL, f"unknown strategy {strategy!r} ({', '.join(STRATEGIES)})")
        self.vol, self.strategy, self.budget, self.min_age = vol, strategy, budget, min_age
        self.show_progress = progress
        self.bytes_moved = 0
        self.files = set()
        self.unplaced = {}

    def _note_unplaced(self, why, n):
        self.unplaced[why] = self.unplaced.get(why, 0) + n

    def run(self, dry_run=False):
        vol = self.vol
        t0 = time.monotonic()
        snap = snapshot(vol, self.min_age)
        bound = lower_bound(snap)
        costs = cheapest_costs(snap)
        plan = plan_exact(snap, bound["k_max"], self.budget)
        before = [g.live for g in snap.granules]
        result = {"strategy": self.strategy, "dry_run": dry_run, "granule": snap.granule,
                  "granules": len(snap.granules), "granules_free_before": snap.wholly_free,
                  "planned_granules": len(plan), "planned_bytes": sum(g.live for g, _ in plan),
                  "skipped_files": snap.skipped}
        if not dry_run:
            with progress(len(plan), f"defrag ({self.strategy})", self.show_progress) as self._advance:
                getattr(self, "_run_" + self.strategy)(snap, plan)
            trimmed = vol.trim()
            after = [g.live for g in occupancy(vol)[0]]
            free_after = after.count(0)
        else:
            trimmed = {"released_bytes": 0}
            after, free_after = before, snap.wholly_free
        freed = free_after - snap.wholly_free
        bound["bytes_for_freed"] = costs[min(max(freed, 0), len(costs) - 1)]
        result.update({"granules_free_after": free_after, "granules_freed": freed,
                       "bytes_moved": self.bytes_moved, "files_moved": len(self.files),
                       "released_bytes": trimmed["released_bytes"], "seconds": round(time.monotonic() - t0, 3),
                       "bound": bound})
        result["unplaced_bytes"] = self.unplaced
        result["_used_before"], result["_used_after"] = before, after
        return result

    # ---- exact: one donor per granule, fallocate2'd into the holes, then MOVE_EXT ----------------------
    def _run_exact(self, snap, plan):
        self.victims = {g.index for g, _ in plan}
        for _, moves in plan:
            self._empty(snap, moves)
            self._advance()

    def _empty(self, snap, moves):
        """Move one granule's pieces with one donor: its ranges are fallocate2'd at the
        targets (one call for pieces that follow each other in the donor and on the device),
        then each file, opened once, gives its pieces by MOVE_EXT. The donor leaves with the
        old blocks, freed when it closes. A piece whose target was taken meanwhile is
        re-planned on its own."""
        vol, bs = self.vol, snap.block
        page = max(1, PAGE_SIZE // bs) * bs
        layout, cursor = [], 0          # [ino, logical, length, donor offset, target]
        for ino, logical, length, target in sorted(moves, key=lambda m: m[3]):
            cursor += (logical - cursor) % page     # MOVE_EXT: the same offset within a page
            layout.append((ino, logical, length, cursor, target))
            cursor += length
        donor = vol.open("/", os.O_RDWR | os.O_TMPFILE, 0o600)
        retry = []
        try:
            placed = {}                 # ino -> [(logical, length, donor offset)]
            for run in _runs(layout):
                at, target = run[0][3], run[0][4]
                end = run[-1][3] + run[-1][2]
                try:
                    vol.fallocate2(donor, 0, at, end - at, target)
                    ok = run
                except FsError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    ok = []
                    for piece in run:       # part of the run was taken: place what still fits
                        try:
                            vol.fallocate2(donor, 0, piece[3], piece[2], piece[4])
                            ok.append(piece)
                        except FsError as e:
                            if e.errno != errno.ENOSPC:
                                raise
                            retry.append(piece)
                for ino, logical, length, at, _ in ok:
                    placed.setdefault(ino, []).append((logical, length, at))
            for ino, pieces in placed.items():
                self._give(snap, ino, donor, pieces)
        finally:
            vol.close(donor)
        for ino, logical, length, _, target in retry:
            self._relocate(snap, ino, logical, length, target)

    def _give(self, snap, ino, donor, pieces):
        """MOVE_EXT each piece of one file into the donor's placed blocks."""
        vol, bs = self.vol, snap.block
        try:
            fd = vol.open(snap.paths[ino], os.O_RDWR)
        except FsError:
            return                          # deleted or renamed meanwhile: nothing to move
        try:
            for logical, length, at in pieces:
                try:
                    n = vol.move_extent(fd, donor, logical // bs, at // bs, length // bs)
                except FsError as e:
                    if e.errno not in (errno.ENODATA, errno.EINVAL):
                        raise
                    n = e.moved_len         # the range shrank or went (a writer truncated it)
                self.bytes_moved += n * bs
                if n:
                    self.files.add(ino)
        finally:
            vol.close(fd)

    def _relocate(self, snap, ino, logical, length, target):
        """One move on its own; when a writer changed the picture (the target was taken, the
        range moved or shrank) re-plan it into the holes there are now."""
        vol = self.vol
        path = snap.paths[ino]
        for _ in range(3):
            try:
                fd = vol.open(path, os.O_RDWR)
            except FsError:
                return                      # deleted or renamed meanwhile: nothing to move
            try:
                moved = relocate(vol, fd, logical, length, target)
                self.bytes_moved += moved
                if moved:
                    self.files.add(ino)
                return
            except FsError as e:
                if e.errno not in (errno.ENOSPC, errno.ENODATA, errno.EINVAL):
                    raise
                if e.errno != errno.ENOSPC:
                    return                  # the range is gone (truncated): nothing left to move
            finally:
                vol.close(fd)
            fresh = snapshot(vol, self.min_age)
            pool = HolePool((g for g in fresh.partial() if g.index not in self.victims), fresh.granule)
            spots = pool.take(length)
            if not spots or len(spots) > 1:
                return
            target = spots[0][0]

    # ---- donor: one big donor without a hint, whole files moved into it ----------------------------
    def _run_donor(self, snap, plan):
        vol, bs = self.vol, snap.block
        inos = []
        for _, moves in plan:
            for ino, *_ in moves:
                if ino not in inos:
                    inos.append(ino)
        # MOVE_EXT wants orig_start and donor_start at the same offset within a page
        page = max(1, PAGE_SIZE // bs)
        sizes = {}
        for ino in inos:
            sizes[ino] = ceil_div(vol.stat(snap.paths[ino]).st_size, bs)
        total = sum(round_up(n, page) for n in sizes.values())
        if not total:
            return
        donor = vol.open("/", os.O_RDWR | os.O_TMPFILE, 0o600)
        try:
            try:
                vol.fallocate(donor, 0, 0, total * bs)
            except FsError as e:
                if e.errno != errno.ENOSPC:
                    raise
                self._note_unplaced("no room for one donor of all the files", total * bs)
                return
            cursor = 0
            for ino in inos:
                fd = vol.open(snap.paths[ino], os.O_RDWR)
                try:
                    n = vol.move_extent(fd, donor, 0, cursor, sizes[ino])
                    self.bytes_moved += n * bs
                    self.files.add(ino)
                except FsError as e:
                    if e.errno not in (errno.ENODATA, errno.EINVAL):
                        raise
                    self.bytes_moved += e.moved_len * bs
                finally:
                    vol.close(fd)
                cursor += round_up(sizes[ino], page)
                self._advance()
        finally:
            vol.close(donor)

    # ---- keepsize: blocks fallocated past the end of the file before a hole --------------------------
    def _run_keepsize(self, snap, plan):
        """A hole can be filled only from the file whose last extent ends right where the hole
        starts (the allocator's goal for KEEP_SIZE blocks); MOVE_EXT takes a donor range only
        below the donor's EOF, so that file's size is raised for the move and put back after —
        the step that is not safe against its writers."""
        tails = self._file_tails(snap)
        for _, moves in plan:
            for ino, logical, length, target in moves:
                owner = tails.get(target)
                if owner is None or owner == ino:
                    self._note_unplaced("no file ends where the hole starts", length)
                    continue
                # the neighbour grows for a moment: it must be idle too
                why = snap.kept.get(owner) or _why_kept(self.vol, owner, snap.paths,
                                                        self.vol.open_inodes(), self.min_age, time.time())
                if why:
                    self._note_unplaced(f"the file before the hole is {why}", length)
                    continue
                if not self._keepsize_move(snap, ino, logical, length, target, owner):
                    continue
                # the hole's rest now follows the same file
                tails.pop(target, None)
                tails[target + length] = owner
            self._advance()

    @staticmethod
    def _file_tails(snap):
        """physical address right after a file's last extent -> that file."""
        tails = {}
        last = {}
        for g in snap.granules:
            for ino, logical, phys, length in g.pieces:
                if ino not in last or logical > last[ino][0]:
                    last[ino] = (logical, phys + length)
        for ino, (_, end) in last.items():
            tails[end] = ino
        return tails

    def _keepsize_move(self, snap, ino, logical, length, target, owner):
        vol, bs = self.vol, snap.block
        nfd = vol.open(snap.paths[owner], os.O_RDWR)
        fd = None
        try:
            size = vol.fstat(nfd).st_size
            end = round_up(size, bs)
            if vol.fiemap(nfd, end, 1 << 62):
                self._note_unplaced("file before the hole has blocks past its end", length)
                return False
            vol.fallocate(nfd, uapi.FALLOC_FL_KEEP_SIZE, end, length)
            got = vol.fiemap(nfd, end, length)
            if len(got) != 1 or got[0].physical != target or got[0].logical != end:
                vol.fallocate(nfd, uapi.FALLOC_FL_PUNCH_HOLE | uapi.FALLOC_FL_KEEP_SIZE, end, length)
                self._note_unplaced("allocator did not place the KEEP_SIZE blocks in the hole", length)
                return False
            fd = vol.open(snap.paths[ino], os.O_RDWR)
            vol.ftruncate(nfd, end + length)            # the unsafe window: the neighbour grows
            try:
                n = vol.move_extent(fd, nfd, logical // bs, end // bs, length // bs)
            except FsError as e:
                n = e.moved_len
                self._note_unplaced(f"MOVE_EXT failed ({errno.errorcode.get(e.errno, e.errno)})", length - n * bs)
            finally:
                vol.ftruncate(nfd, size)               # and shrinks back, freeing the old blocks
            self.bytes_moved += n * bs
            if not n:
                return False
            self.files.add(ino)
            return True
        finally:
            vol.close(nfd)
            if fd is not None:
                vol.close(fd)
