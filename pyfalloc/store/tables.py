"""The metadata tables of one volume, in memory, with the indexes the allocator and the
filesystem query.

Every change is `set(table, key, value)` (value None deletes); the same call applies a
change made here and one replayed from another process or from the journal, so every
replica that applies the same records in the same order holds the same tables.

    table  key             value
    "s"    name            setting (geometry, UUID)
    "i"    ino             (mode, uid, gid, size, nlink, flags, atime, mtime, ctime, grp)
    "d"    (parent, name)  ino
    "e"    (ino, lblk)     (len, pblk, unwritten)   logical blocks -> physical blocks
    "f"    pblk            len                      free; never crosses a block-group boundary
    "w"    pblk            (len, ino, lblk)         preallocation window (ino 0: locality window)
    "p"    pblk            len                      freed, not reusable until the free is durable
    "m"    id              (orig, donor, pid, moved) relocation under way
    "z"    ino             (size, log position)     a truncate left bytes past size in the
                                                    last block, to be zeroed before it grows
    "x"    (ino, name)     value                    extended attribute (name and value bytes)
    "l"    ino             target                   a symbolic link's target
    "r"    ino             rdev                     a device node's device number
"""
import marshal
import zlib
from _functools import partial          # functools' own, without functools' imports
from _thread import allocate_lock
from itertools import groupby
from _operator import itemgetter        # operator's own, without operator's import

from pyfalloc.collector import without_collector
from pyfalloc.sortedindex import SortedDict, SortedList
from pyfalloc.store.lazy import SHIFT, LazyMap

# the tables with no index of their own, by their attribute
_PLAIN = {"s": "settings", "p": "pending", "m": "moves", "z": "stale_tail", "l": "symlinks", "r": "rdevs"}
# the maps keyed by inode number that a checkpoint keeps in buckets (lazy.py), by their
# attribute; "P" and "L" are the names index, kept so a process need not read every directory
_LAZY = {"i": "inodes", "d": "dirs", "e": "ext", "x": "xattrs", "P": "parent", "L": "links"}


class Tables:
    def __init__(self, group_blocks=1):
        self.group_blocks = group_blocks
        self.settings = {}
        self.inodes = LazyMap()
        self.dirs = LazyMap()       # parent -> {name: ino}
        self.parent = LazyMap()     # ino -> (parent, name): one of its entries
        self.links = LazyMap()      # ino -> {entry: None}: its other entries (hard links), in order
        self.orphans = set()        # inodes with nlink 0 (alive while someone holds them)
        self.ext = LazyMap()        # ino -> SortedDict lblk -> (len, pblk, unwritten); see extents()
        self._owner = SortedDict()  # see owner
        self.free = SortedDict()    # pblk -> len
        self.free_len = SortedList()   # (len, pblk)
        self.free_grp = {}          # group -> SortedList of (len, pblk)
        self.win = SortedDict()     # pblk -> (len, ino, lblk)
        self.win_of = {}            # ino -> SortedDict key -> pblk (key: lblk, or pblk for ino 0)
        self.pending = SortedDict()  # pblk -> len
        self.moves = {}
        self.stale_tail = {}
        self.xattrs = LazyMap()     # ino -> {name: value}
        self.symlinks = {}          # ino -> target
        self.rdevs = {}             # ino -> device number
        self.next_ino = 1
        self._source = None         # the checkpoint the lazy maps read from
        self.whole = ()             # its tables read whole, to settle
        self.changes_lock = None    # the store's lock that every set() runs under (see owner)
        self._sorting = allocate_lock()
        self._set = {"i": self._i, "d": self._d, "e": self._e, "f": self._f, "w": self._w, "x": self._x}
        self._set.update((table, partial(self._plain, getattr(self, name))) for table, name in _PLAIN.items())

    def set_locks(self, changes_lock):
        """The store's lock, which every change runs under (see owner), and locks of their
        own made afresh (again after a fork: one held by another thread stays held there)."""
        self.changes_lock = changes_lock
        self._sorting = allocate_lock()
        if self._source is not None:
            self._source.lock = allocate_lock()

    def set(self, table, key, value):
        """Apply one change; returns the value it replaced (None: there was none)."""
        return self._set[table](key, value)

    def apply(self, records):
        for table, key, value in records:
            self._set[table](key, value)

    def extents(self, ino):
        """ino's extent index. A checkpoint's bucket gives each inode's rows as a plain dict,
        sorted here at its first use: a process pays for no index of the files it never
        touches."""
        m = self.ext.get(ino)
        if m.__class__ is dict:
            with self._sorting:         # threads: one sorts it, the others take the result
                m = self.ext[ino]
                if m.__class__ is dict:
                    m = self.ext[ino] = SortedDict(m)
        return m

    @property
    def owner(self):
        """pblk -> (len, ino, lblk, unwritten): the extents by place (GETFSMAP, fsck), built
        from the extent maps at its first use after a load; most processes never ask."""
        if self._owner is None:
            lock = self.changes_lock    # no change may land while the maps are read
            if lock is not None:
                lock.acquire()
            try:
                if self._owner is None:
                    owner = {}
                    for ino, m in self.ext.items():
                        for lblk, v in m.items():
                            owner[v[1]] = (v[0], ino, lblk, v[2])
                    self._owner = SortedDict(owner)
            finally:
                if lock is not None:
                    lock.release()
        return self._owner

    @without_collector
    def load(self, ckpt):
        """Fill these empty tables from a checkpoint (journal.Checkpoint): the tables kept
        whole row by row, the maps kept in buckets attached to be read as they are needed."""
        for table, group in groupby(ckpt.records, key=itemgetter(0)):
            if table in _PLAIN:
                getattr(self, _PLAIN[table]).update({key: value for _, key, value in group})
            else:
                getattr(self, "_load_" + table)(list(group))
        if ckpt.source is not None:
            self._source = ckpt.source
            self.whole = ckpt.source.whole
            for table, name in _LAZY.items():
                getattr(self, name).attach(ckpt.source, table)
        self.orphans.update(ckpt.orphans)
        self.next_ino = ckpt.next_ino
        self._owner = None

    def _load_f(self, rows):
        self.free.update({pblk: n for _, pblk, n in rows})
        self.free_len = SortedList((n, pblk) for _, pblk, n in rows)
        groups = {}
        for _, pblk, n in rows:
            groups.setdefault(pblk // self.group_blocks, []).append((n, pblk))
        self.free_grp.update((grp, SortedList(idx)) for grp, idx in groups.items())

    def _load_w(self, rows):
        self.win.update({pblk: value for _, pblk, value in rows})
        mine = {}
        for _, pblk, value in rows:
            mine.setdefault(value[1], {})[pblk if value[1] == 0 else value[2]] = pblk
        self.win_of.update((ino, SortedDict(m)) for ino, m in mine.items())

    # ---- one setter per table, keeping its indexes ----------------------------------------------
    def _i(self, ino, value):
        old = self.inodes.get(ino)
        if value is None:
            self.inodes.pop(ino, None)
            self.orphans.discard(ino)
            self.win_of.pop(ino, None)
            return old
        self.inodes[ino] = value
        if value[4] == 0:
            self.orphans.add(ino)
        else:
            self.orphans.discard(ino)
        if ino >= self.next_ino:
            self.next_ino = ino + 1
        return old

    def _d(self, key, ino):
        parent, name = key
        entries = self.dirs.get(parent)
        old = entries.get(name) if entries else None
        if old is not None:
            del entries[name]
            self._unindex(old, key)
            if not entries:
                del self.dirs[parent]
        if ino is not None:
            self.dirs.setdefault(parent, {})[name] = ino
            self._index(ino, key)
        return old

    def _index(self, ino, key):
        if self.parent.setdefault(ino, key) != key:
            self.links.setdefault(ino, {})[key] = None

    def _unindex(self, ino, key):
        """parent keeps one of ino's entries while it has any."""
        more = self.links.get(ino)
        if self.parent.get(ino) != key:
            if more:
                more.pop(key, None)
        elif more:
            self.parent[ino] = next(iter(more))
            del more[self.parent[ino]]
        else:
            del self.parent[ino]
        if more is not None and not more:
            del self.links[ino]

    def _x(self, key, value):
        ino, name = key
        attrs = self.xattrs.get(ino)
        old = attrs.get(name) if attrs else None
        if value is None:
            if old is not None:
                del attrs[name]
                if not attrs:
                    del self.xattrs[ino]
        else:
            self.xattrs.setdefault(ino, {})[name] = value
        return old

    def _e(self, key, value):
        ino, lblk = key
        m = self.extents(ino)
        owner = self._owner             # None: not built yet, and built from ext when asked
        if value is not None and m is not None:
            old = m.get(lblk)
            if old is not None:
                # the row keeps its key (grown, shrunk, re-marked or moved in place): the
                # inode's index does not move, nor the owners' when it stays put
                dict.__setitem__(m, lblk, value)
                if owner is not None:
                    if old[1] == value[1]:
                        dict.__setitem__(owner, value[1], (value[0], ino, lblk, value[2]))
                    else:
                        self._disown(owner, old[1], ino, lblk)
                        owner[value[1]] = (value[0], ino, lblk, value[2])
                return old
        old = m.pop(lblk, None) if m is not None else None
        if old is not None:
            if owner is not None:
                self._disown(owner, old[1], ino, lblk)
            if not m and value is None:
                del self.ext[ino]
        if value is not None:
            if m is None:
                m = self.ext[ino] = SortedDict()
            m[lblk] = value
            if owner is not None:
                owner[value[1]] = (value[0], ino, lblk, value[2])
        return old

    @staticmethod
    def _disown(owner, pblk, ino, lblk):
        """Drop the owner row of (ino, lblk) at pblk, unless a row put earlier in the same
        change already took that place (two extents trading blocks)."""
        row = owner.get(pblk)
        if row is not None and row[1] == ino and row[2] == lblk:
            del owner[pblk]

    def _f(self, pblk, n):
        free = self.free
        old = free.get(pblk)
        if old is not None:
            self.free_len.remove((old, pblk))
            self.free_grp[pblk // self.group_blocks].remove((old, pblk))
            if n is None:
                del free[pblk]
            else:
                dict.__setitem__(free, pblk, n)     # the same start: its key stays in place
        elif n is not None:
            free[pblk] = n
        if n is not None:
            self.free_len.add((n, pblk))
            grp = pblk // self.group_blocks
            idx = self.free_grp.get(grp)
            if idx is None:
                idx = self.free_grp[grp] = SortedList()
            idx.add((n, pblk))
        return old

    def _w(self, pblk, value):
        old = self.win.pop(pblk, None)
        if old is not None:
            ino = old[1]
            mine = self.win_of[ino]
            del mine[pblk if ino == 0 else old[2]]     # an empty index stays until its inode goes
        if value is not None:
            self.win[pblk] = value
            ino = value[1]
            mine = self.win_of.get(value[1])
            if mine is None:
                mine = self.win_of[value[1]] = SortedDict()
            mine[pblk if ino == 0 else value[2]] = pblk
        return old

    @staticmethod
    def _plain(table, key, value):
        """A table with no index of its own (_PLAIN)."""
        old = table.pop(key, None)
        if value is not None:
            table[key] = value
        return old

    # ---- whole tables -------------------------------------------------------------------------------
    def settle(self):
        """Plain dicts in place of the lazy maps now read whole: a dict's look-up costs a
        third of a LazyMap's. Only where no change is under way and none can start (the
        store's lock held outside a change): changes reach the maps through the attributes
        at each step, and a reader without the lock that still holds a replaced map reads
        what it held when it looked."""
        whole = self.whole
        while whole:
            name = _LAZY[whole.pop()]
            m = getattr(self, name)
            if m.__class__ is LazyMap and not m._pending:
                setattr(self, name, dict(dict.items(m)))
        if all(getattr(self, name).__class__ is dict for name in _LAZY.values()):
            self._source = None         # the mapping goes with the last map: a checkpoint
                                        # replaced since is no longer held on the host

    def read_all(self):
        """Read every bucket of the checkpoint still unread (each checked)."""
        for name in _LAZY.values():
            m = getattr(self, name)
            if m.__class__ is LazyMap:
                m.read_all()

    def checkpoint(self):
        """What a checkpoint of these tables holds (journal.write_checkpoint's arguments): the
        buckets this process never read are copied as the checkpoint it loaded has them."""
        rows = self._kept_whole()
        buckets = {}
        for table, name in _LAZY.items():
            m = getattr(self, name)
            out = m.unread() if m.__class__ is LazyMap else []
            groups = {}
            for k, v in dict.items(m):
                if v.__class__ is SortedDict:
                    v = dict(v.items())
                groups.setdefault(k >> SHIFT, {})[k] = v
            for b, group in groups.items():
                blob = marshal.dumps(group)
                out.append((b, blob, zlib.crc32(blob), len(group)))
            buckets[table] = out
        return {"rows": rows, "buckets": buckets, "orphans": sorted(self.orphans), "next_ino": self.next_ino}

    def _kept_whole(self):
        """The rows of the tables a checkpoint keeps whole (not in buckets)."""
        out = [(table, k, v) for table, name in _PLAIN.items() for k, v in getattr(self, name).items()]
        out += [("f", k, v) for k, v in self.free.items()]
        out += [("w", k, v) for k, v in self.win.items()]
        return out

    def dump(self):
        """Every row as a record: replaying them into empty tables rebuilds these."""
        out = self._kept_whole()
        out += [("i", k, v) for k, v in self.inodes.items()]
        out += [("d", (p, name), ino) for p, entries in self.dirs.items() for name, ino in entries.items()]
        out += [("e", (ino, lblk), v) for ino, m in self.ext.items() for lblk, v in m.items()]
        out += [("x", (ino, name), v) for ino, m in self.xattrs.items() for name, v in m.items()]
        return out
