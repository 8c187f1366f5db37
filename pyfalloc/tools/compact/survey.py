"""What the compactor sees of a volume, as a tool sees a kernel filesystem: GETFSMAP for who
owns each byte, one walk of the tree for names (file types from readdir, no stat per file),
fuser's view of open files, stat for ages. Kept compact: a few words per file."""
import os
import time
from array import array
from bisect import bisect_left
from dataclasses import dataclass, field
from itertools import accumulate

from pyfalloc import uapi
from pyfalloc.collector import without_collector
from pyfalloc.units import ceil_div

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
        rows = sorted((ino, path.encode("utf-8", "surrogateescape")) for ino, path in pairs)   # by ino, for bisect
        rows = [r for i, r in enumerate(rows) if not i or rows[i - 1][0] != r[0]]     # hard links: one name
        self._inos = array("q", [ino for ino, _ in rows])
        self._ends = array("q", accumulate(len(name) for _, name in rows))
        self._blob = b"".join(name for _, name in rows)

    @property
    def inos(self):
        """The named inodes, sorted."""
        return self._inos

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


@without_collector
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
    for g in granules if busy or min_age else ():     # else why_kept has no reason to give
        if g.pinned or not g.owners or g.live >= g.size:
            continue
        for ino in g.owners:
            why = kept.get(ino) or why_kept(vol, ino, files, busy, min_age, now)
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
    special, own_free = uapi.FMR_OF_SPECIAL_OWNER, uapi.FMR_OWN_FREE
    named = files.inos if files is not None else ()
    last = len(named) - 1
    for start, length, owner, offset, flags in fsmap_all(vol):
        end = start + length
        # what the record is, once; then its pieces, one per granule it crosses
        if flags & special:
            hole = owner == own_free
            pin, piece_of = not hole, False
        elif files is None:
            hole = pin = piece_of = False
        else:
            i = bisect_left(named, owner)
            hole, piece_of = False, i <= last and named[i] == owner
            pin = not piece_of
            if pin:
                unnamed.add(owner)
        while start < end:
            gi = start // G
            g = granules[gi]
            piece = min(end, (gi + 1) * G) - start
            if hole:
                g.add_hole(start, piece)
            else:
                g.live += piece
                if pin:
                    g.pinned = True
                elif piece_of:
                    g.add_piece(owner, offset, start, piece)
            offset += piece
            start += piece
    return granules, unnamed


def why_kept(vol, ino, paths, busy, min_age, now):
    """Why a file must stay where it is ("open", "recent"), or None; busy: the open inodes."""
    if ino in busy:
        return "open"
    if min_age and now - vol.stat(paths[ino]).st_mtime < min_age:
        return "recent"
    return None
