"""Carrying a plan out through the public calls only: fallocate2, EXT4_IOC_MOVE_EXT and
FITRIM (three strategies, see the package)."""
import errno
import os
import time

from pyfalloc import uapi
from pyfalloc.cli.progress import progress
from pyfalloc.errors import FsError
from pyfalloc.fs.move import PAGE_SIZE
from pyfalloc.tools.compact.plan import HolePool, cheapest_costs, lower_bound, plan_exact
from pyfalloc.tools.compact.survey import occupancy, snapshot, why_kept
from pyfalloc.tools.relocate import relocate
from pyfalloc.units import ceil_div, round_up

STRATEGIES = ("exact", "donor", "keepsize")
# pieces moved with one donor: a file with pieces in several granules of a batch is opened
# once for them all; the old blocks wait for the donor's close, a batch's worth at most
BATCH_PIECES = 512


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


def _batches(plan):
    """(victims, their moves) of about BATCH_PIECES pieces each, the victims in physical
    order: the pieces are read from one stretch of the device after another, not from
    wherever the next cheapest granule lies."""
    batch, n = [], 0
    for _, moves in sorted(plan, key=lambda gm: gm[0].index):
        batch += moves
        n += 1
        if len(batch) >= BATCH_PIECES:
            yield n, batch
            batch, n = [], 0
    if n:
        yield n, batch


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
        phases = {"plan": time.monotonic() - t0}      # where the time went, in seconds
        if not dry_run:
            t = time.monotonic()
            with progress(len(plan), f"defrag ({self.strategy})", self.show_progress) as self._advance:
                getattr(self, "_run_" + self.strategy)(snap, plan)
            phases["move"] = time.monotonic() - t
            t = time.monotonic()
            trimmed = vol.trim()
            phases["trim"] = time.monotonic() - t
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
                       "phases": {k: round(v, 3) for k, v in phases.items()}, "bound": bound})
        result["unplaced_bytes"] = self.unplaced
        result["_used_before"], result["_used_after"] = before, after
        return result

    # ---- exact: one donor per batch of granules, fallocate2'd into the holes, then MOVE_EXT ------------
    def _run_exact(self, snap, plan):
        self.victims = {g.index for g, _ in plan}
        for victims, moves in _batches(plan):
            self._empty(snap, moves)
            self._advance(victims)

    def _empty(self, snap, moves):
        """Move a batch of granules' pieces with one donor: its ranges are fallocate2'd at
        the targets (one call for pieces that follow each other in the donor and on the
        device), then each file, opened once, gives its pieces by MOVE_EXT. The donor leaves
        with the old blocks, freed when it closes. A piece whose target was taken meanwhile
        is re-planned on its own. moves: the batch's, victim after victim."""
        vol, bs = self.vol, snap.block
        page = max(1, PAGE_SIZE // bs) * bs
        layout, cursor = [], 0          # [ino, logical, length, donor offset, target]
        for ino, logical, length, target in sorted(moves, key=lambda m: m[3]):
            cursor += (logical - cursor) % page     # MOVE_EXT: the same offset within a page
            layout.append((ino, logical, length, cursor, target))
            cursor += length
        fds = {}                        # ino -> its descriptor, None when it went meanwhile
        donor = None
        retry = []
        try:
            # every file of the batch opened first, its pieces read ahead: the disk reads
            # them together while the donor is placed, not one by one at each MOVE_EXT
            for ino, logical, length, _ in moves:
                if ino not in fds:
                    fds[ino] = self._open(snap, ino)
                if fds[ino] is not None:
                    vol.fadvise(fds[ino], logical, length, os.POSIX_FADV_WILLNEED)
            donor = vol.open("/", os.O_RDWR | os.O_TMPFILE, 0o600)
            placed = {}                 # ino -> [(logical, length, donor offset)]
            for run in _runs(layout):
                at, end = run[0][3], run[-1][3] + run[-1][2]
                if self._fallocated(donor, at, end - at, run[0][4]):
                    ok = run
                else:                       # part of the run was taken: place what still fits
                    ok = []
                    for piece in run:
                        if self._fallocated(donor, piece[3], piece[2], piece[4]):
                            ok.append(piece)
                        else:
                            retry.append(piece)
                for ino, logical, length, at, _ in ok:
                    placed.setdefault(ino, []).append((logical, length, at))
            for ino, fd in fds.items():     # in the order they were read ahead
                if fd is not None and ino in placed:
                    self._give(snap, ino, fd, donor, placed[ino])
        finally:
            for fd in fds.values():
                if fd is not None:
                    vol.close(fd)
            if donor is not None:
                vol.close(donor)
        for ino, logical, length, _, target in retry:
            self._relocate(snap, ino, logical, length, target)

    def _fallocated(self, donor, at, length, target):
        """fallocate2 the donor's [at, +length) at target; False when the space there was
        taken meanwhile (ENOSPC)."""
        try:
            self.vol.fallocate2(donor, 0, at, length, target)
            return True
        except FsError as e:
            if e.errno != errno.ENOSPC:
                raise
            return False

    def _open(self, snap, ino):
        try:
            return self.vol.open(snap.paths[ino], os.O_RDWR)
        except FsError:
            return None                     # deleted or renamed meanwhile: nothing to move

    def _give(self, snap, ino, fd, donor, pieces):
        """MOVE_EXT each piece of one file into the donor's placed blocks."""
        bs = snap.block
        for logical, length, at in pieces:
            try:
                n = self.vol.move_extent(fd, donor, logical // bs, at // bs, length // bs)
            except FsError as e:
                if e.errno not in (errno.ENODATA, errno.EINVAL):
                    raise
                n = e.moved_len             # the range shrank or went (a writer truncated it)
            self.bytes_moved += n * bs
            if n:
                self.files.add(ino)

    def _relocate(self, snap, ino, logical, length, target):
        """One move on its own; when a writer changed the picture (the target was taken, the
        range moved or shrank) re-plan it into the holes there are now."""
        vol = self.vol
        for _ in range(3):
            fd = self._open(snap, ino)
            if fd is None:
                return
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
            pool = HolePool((g for g in fresh.partial() if g.index not in self.victims), fresh.granule,
                            fresh.block)
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
                why = snap.kept.get(owner) or why_kept(self.vol, owner, snap.paths,
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
