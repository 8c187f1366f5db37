"""The metadata engine: tables in memory, changes shared through the log in /dev/shm,
made durable by group commit to the journal.

Durability follows ext4's data=ordered:
- a commit first flushes the image, then appends the changes since the last commit to the
  journal and syncs it, so metadata never reaches the disk before the data it exposes;
- blocks a change frees wait in the pending table until a commit has made that change
  durable; only then are they free for others (`on_release` returns them);
- commits happen at fsync/fdatasync/sync (any file: the journal is one, as jbd2's is), at
  the first change made 5 s or more after the oldest uncommitted one, and when a process
  that made changes closes its volume.

A change is a list of (table, key, value) records applied under the exclusive lock of the
shared log and published whole; a change that raises is undone before anyone sees it.
"""
import _thread
import errno
import os
import time

from pyfalloc.device.hostio import HostFile
from pyfalloc.errors import FormatError, FsError
from pyfalloc.store import journal
from pyfalloc.forks import at_fork_in_child, forget_fork
from pyfalloc.store.journal import frame, unframe_at
from pyfalloc.store.shared import CAPACITY, SharedLog, shm_path
from pyfalloc.store.tables import Tables

COMMIT_INTERVAL = 5.0               # jbd2's default commit interval
CHECKPOINT_MIN = 256 << 10          # journal bytes before a checkpoint is worth writing: a new
                                    # process replays what came after the last one
FOLD_ON_CLOSE = 64 << 10            # journal bytes the last user folds into a checkpoint
JOURNAL_AHEAD = 256 << 10           # zeros written past the journal's end at a time: a commit
                                    # then overwrites, and its sync carries no size change


class Store:
    def __init__(self, meta, uuid, group_blocks, device, readonly=False):
        """meta: the checkpoint's path (the journal is beside it). readonly: load what the
        disk holds into a log of this process alone and change nothing (every change is
        EROFS)."""
        self.meta = os.fspath(meta)
        self.readonly = readonly
        self.uuid = uuid
        self.group_blocks = group_blocks
        self.device = device            # flush() the data; note_commit(n) and noted_commit()
        self.flush_data = device.flush
        self.on_release = None          # callable(pending items): returns blocks to the free map
        self.on_leave = None            # callable(): the last user's work before it leaves
        self.t = None
        self._rlock = _thread.RLock()
        self._depth = 0
        self._redo = self._undo = None
        self._mine = False               # this process made changes not yet committed
        # Changes of one inode made without catching up first (change_local): this
        # process's own frames past _pos, already in its tables (their offsets), and the
        # inodes whose change counter these tables reflect (ino -> counter).
        self._ahead = set()
        self._seen = {}
        self._ahead_change = False       # the change under way skipped catching up
        self._reaping = False            # the change under way said so (reap_intended)
        self.log = SharedLog(device.identity(), uuid, private=readonly, mode=device.access_mode())
        try:
            with self.log.opening():
                self.log.prepare_writer()
                # no commit writing the journal meanwhile: the check compares its length
                with self.log.writing(), self.log.committing():
                    self._load(None if self._log_matches_disk() else self._recover())
        except BaseException:
            if not readonly and self.log.last_user():     # a store refused leaves no log behind
                self.log.remove()
            self.log.close()
            raise
        at_fork_in_child(self)

    @classmethod
    def create(cls, meta, uuid, settings, identity):
        """A new volume's metadata: a checkpoint holding only its settings."""
        journal.write_checkpoint(meta, uuid, 1, [("s", k, v) for k, v in sorted(settings.items())])
        try:
            os.unlink(shm_path(identity, uuid))     # a log left by an earlier volume of this device
        except FileNotFoundError:
            pass

    def runtime_dir(self):
        """A directory for what lives only while the volume is in use (the shim's shadows),
        shared by every user and removed with the shared log."""
        path = self.log.shared_path + ".d"
        if not os.path.isdir(path):
            try:
                os.mkdir(path)
                os.chmod(path, 0o1777)
            except FileExistsError:
                pass
        return path

    def forget_runtime(self, ino):
        """Inside a change that frees an inode: its shadow, if a shim made one, goes with it
        (inode numbers are never reused, and the directory would keep a file for every inode
        ever opened), and so does the copy of a shared mapping (fs/mapped.py): a mapping
        still alive keeps its bytes, as the kernel's keeps an unlinked file's."""
        try:
            os.unlink(f"{self.log.shared_path}.d/{ino}")
        except FileNotFoundError:
            pass
        if self.copies():
            try:
                os.unlink(f"{self.log.shared_path}.d/{ino}.map")
                self.note_copy(ino, -1)
            except FileNotFoundError:
                pass

    def copies(self):
        """How many files have a shared mapping's copy (never fewer than there are)."""
        return self.log.get("copies")

    def note_copy(self, ino, delta):
        """A copy of ino was made (1, counted before it exists) or dropped (-1, after), or
        changed its role (0): ino's change counter moves, so what a process learnt of its
        blocks (the shim's reads and overwrites in C) stops holding."""
        with self.tx(dirty=False):
            log = self.log
            log.put("copies", max(0, log.get("copies") + delta))
            log.bump((ino,))

    @property
    def settings(self):
        return self.t.settings

    # ---- opening -------------------------------------------------------------------------------
    def _log_matches_disk(self):
        """The shared log continues what is on disk: same checkpoint, journal as long as it
        left it. Otherwise it is from another boot or another file: rebuild it."""
        log = self.log
        if not log.initialized():
            return False
        try:
            ckpt = journal.read_checkpoint(self.meta, records=False)
            size = os.stat(journal.journal_of(self.meta)).st_size
        except (FormatError, OSError):
            return False
        return (log.get("ckpt_epoch"), log.get("ckpt_nonce"), log.get("journal_room")) == (ckpt.epoch, ckpt.nonce, size)

    def _recover(self):
        """First opening since boot or a crash: the checkpoint plus the journal's complete
        commits is the volume. The commits go into the new shared log as frames already
        durable, so opening writes nothing but a repair: a torn block at the journal's end
        is cut off, a journal left from an earlier checkpoint is started again."""
        ckpt = journal.read_checkpoint(self.meta)
        if ckpt.uuid != self.uuid:
            raise FormatError(f"metadata {self.meta} belongs to another image "
                              f"(UUID {ckpt.uuid.hex()})")
        changes, end, last, room_past_end = journal.read_journal(self.meta, ckpt)
        noted = self.device.noted_commit()
        if noted > last:
            raise FormatError(f"metadata journal {journal.journal_of(self.meta)} lacks commits "
                              f"{last + 1}..{noted} that the image says were made (lost or replaced)")
        if self.readonly:
            end = journal.JOURNAL_START if end is None else end
        elif end is None:
            journal.reset_journal(self.meta, self.uuid, ckpt.epoch, ckpt.nonce)
            end = journal.JOURNAL_START
        elif not room_past_end:
            f = HostFile(journal.journal_of(self.meta))
            try:
                f.truncate(end)
                f.sync()
            finally:
                f.close()
        if not self.readonly:
            self.device.claim()             # one host writes a shared device
        log = self.log
        log.initialize()
        if not self.readonly:
            # copies of shared mappings from before (a crash of the last user): the log that
            # counted them is new, and their bytes were never synced
            _remove_runtime(log.shared_path + ".d", suffix=".map")
        log.append(b"".join(frame(change) for change in changes))
        tail = log.get("tail")
        room = os.stat(journal.journal_of(self.meta)).st_size     # its end and the zeros written past it
        for name, value in (("ckpt_epoch", ckpt.epoch), ("ckpt_nonce", ckpt.nonce), ("journal_len", end),
                            ("journal_room", room),
                            ("commit_seq", last), ("durable", tail)):
            log.put(name, value)
        return ckpt

    def _load(self, ckpt=None):
        """This process's tables: the checkpoint (read here unless given), then the log since it."""
        log = self.log
        ckpt = ckpt or journal.read_checkpoint(self.meta)
        if ckpt.uuid != self.uuid:
            raise FormatError(f"metadata {self.meta} belongs to another image")
        t = Tables(self.group_blocks)
        t.set_locks(self._rlock)
        t.load(ckpt)
        self.t = t
        self._ahead.clear()
        self._seen.clear()
        self._epoch, tail = log.position()
        self._pos = log.get("ckpt_tail")
        self._replay(tail)

    def _replay(self, tail):
        if tail > self._pos:
            self._apply(self.log.read(self._pos, tail), tail)

    def _apply(self, frames, tail):
        """frames: the log from this process's position to tail."""
        ahead = self._ahead
        for at, change in unframe_at(frames, self._pos):
            if at not in ahead:             # this process's own, applied when made
                self.t.apply(change)
        ahead.clear()
        self._pos = tail

    def fresh(self, inos=None):
        """Apply what other processes changed since this one last looked: one read of the
        shared mapping when nothing did. With inos, only if one of those inodes changed
        since these tables last reflected it (their counters), for a caller that reads
        nothing but those inodes' rows and holds their locks.

        No lock: frames below the tail never change within an epoch, and a change is
        published by moving the tail after its frames are written. A caller sees every
        change published before it looked, as a lock holder must (a change is published
        before its maker lets go of the inode locks). A change under way is not waited
        for (settle() does that); only a restart of the log (a new epoch) is caught up
        with under the lock, where the checkpoint is read."""
        if inos is not None:
            if all(self._reflects(ino) for ino in inos):
                return
        elif self.log.position() == (self._epoch, self._pos):
            return
        with self._rlock:
            if not self._depth and not self._follow(inos or ()):
                self.settle(inos or ())

    def _follow(self, inos):
        """fresh() without the lock: False when the log restarted (a new epoch)."""
        log = self.log
        # the counters before the position: a change counted in them is below its tail
        seen = [(ino, log.generation(ino)) for ino in inos]
        epoch, tail = log.position()
        if epoch != self._epoch:
            return False
        if tail > self._pos:
            frames = log.read(self._pos, tail)
            if log.position()[0] != epoch:      # restarted while read: the copy may be torn
                return False
            self._apply(frames, tail)
        self._seen.update(seen)
        return True

    def settle(self, note=()):
        """Catch up after any change under way in another process has ended: unlike fresh(),
        this waits for the writer's lock once, so a change that had begun is seen."""
        with self._rlock:
            if self._depth:
                return
            with self.log.writing():
                self._catch_up()
                self._note(note)

    def _note(self, inos):
        """Under the log's lock, caught up or having just published their change: these
        tables reflect these inodes as their counters now stand."""
        log = self.log
        for ino in inos:
            self._seen[ino] = log.generation(ino)

    def snapshot(self):
        """(epoch, position) of the shared log that this process's tables reflect."""
        return self._epoch, self._pos

    def _catch_up(self):
        epoch, tail = self.log.position()
        if epoch != self._epoch:
            self._load()
        else:
            self._replay(tail)

    # ---- changes -----------------------------------------------------------------------------
    def tx(self, dirty=True):
        """One atomic change (a context manager yielding the store); nested uses join the
        outer one. dirty=False marks a change that need not be committed for its own sake."""
        return _Change(self, dirty, None)

    def change_local(self, ino, change):
        """change() changes only inode ino's rows (its extents, inode row and stale tail),
        reading no others; the caller holds ino's inode lock. When these tables reflect
        ino's last change, it runs before the log's lock and skips catching up with other
        processes' changes — they touch other rows, so they commute with it and are applied
        later, around it — and the lock covers only the check that ino did not change
        meanwhile and the publication. Writers of different files then neither replay each
        other nor wait for each other's work. Met by a change of ino (an unlink or a chmod
        changes its inode row without its lock), it is undone and made again as any change."""
        ahead = _Change(self, True, ino)
        with ahead:
            change()
        if ahead.conflict:
            with self.tx():
                change()

    def _reflects(self, ino):
        """These tables hold ino's rows as its last published change left them."""
        log = self.log
        return log.position()[0] == self._epoch and self._seen.get(ino) == log.generation(ino)

    def put(self, table, key, value):
        """Inside tx(): set a row (value None deletes it)."""
        old = self.t.set(table, key, value)
        self._undo.append((table, key, old))
        self._redo.append((table, key, value))
        return old

    def _publish(self, redo, blob, dirty, ahead):
        """Append the change (blob: its frame) under the log's write lock."""
        log = self.log
        at = log.append(blob)
        if ahead:
            self._ahead.add(at)
        else:
            self._pos = at + len(blob)
        # then the counters of the inodes changed: one read before catching up, then equal
        # later, proves no change of that inode was published in between
        changed = {key[0] if table == "e" else key for table, key, _ in redo if table in "eiz"}
        self._seen.update(log.bump(changed))        # these tables reflect them as they stand
        if dirty:
            self._mine = True
            since = log.get("dirty_since")
            if not since:
                log.put("dirty_since", time.time())
            elif time.time() - since >= COMMIT_INTERVAL and log.lock_commit(wait=False):
                try:        # (a commit under way: the next change tries again)
                    self._catch_up()            # a commit may release frees and checkpoint
                    self._commit_locked()
                finally:
                    log.unlock_commit()

    def position(self):
        """Inside tx(): where this change will stand in the log; once durable() passes it,
        the change is on disk."""
        return self.log.get("tail")

    def durable(self):
        return self.log.get("durable")

    def generation(self, ino):
        """The inode's change counter in the shared log: read before fresh(), and the same
        later, no change of that inode was published in between."""
        return self.log.generation(ino)

    def reap_intended(self):
        """Inside a change, before it asks whether an inode is held (to free it if not):
        said in the shared log until the change is published, for an opener that takes its
        hold meanwhile (Filesystem.hold_existing)."""
        if self._depth and not self._reaping:
            self._reaping = True
            self.log.put("reaping", 1)

    def reaping(self):
        """Whether a change that may free an inode is under way."""
        return self.log.get("reaping") != 0

    def gate_count(self, ino):
        """The counter of ino's gate (gates.py): moved when a change of its bytes or mapping
        starts, where generation() moves once it is published."""
        return self.log.gates.count(ino)

    def next_move_id(self):
        with self.tx(dirty=False):
            mid = self.log.get("next_move") + 1
            self.log.put("next_move", mid)
            return mid

    # ---- durability --------------------------------------------------------------------------
    def commit(self, data=True):
        """Make every change so far durable (fsync, sync, syncfs), and with data the bytes
        written too: an overwrite changes no metadata, and an fsync must flush it all the same.

        Other changes go on while the journal is written, as jbd2 lets handles start while
        a transaction commits. Commits take turns on a lock of their own (the commit lock,
        which only they and checkpoints take). One that waited may find that a commit made
        meanwhile covered it — everything published before it asked is durable, and a flush
        of the image begun after it asked has ended — and then writes nothing (a group
        commit: one journal block and one flush for the fsyncs that queued). Frames below
        the tail never move while the commit lock is held (a checkpoint that restarts the
        log holds it), so the journal's payload is read without the log's lock. The log's
        lock is taken afterwards, to return the frees made durable to the free map. Who
        holds the commit lock never waits for the log's lock: a change that runs out of
        space may wait for the commit lock under it (release_durable_frees)."""
        if self.readonly:
            return
        log = self.log
        with self._rlock:
            if self._depth:
                raise RuntimeError("commit inside a change")
            (epoch, want), begun = log.position(), log.get("flush_begun")      # what it must cover
            while True:
                self.fresh()
                log.lock_commit()
                if log.position()[0] == self._epoch:
                    break
                log.unlock_commit()         # the log restarted meanwhile: reload first
            pending = None
            try:
                if self._epoch != epoch or log.get("durable") < want:
                    self._follow(())
                    pending = list(self.t.pending.items())
                    self._journal_published()
                elif self.t.pending and self._pos <= log.get("durable"):
                    pending = list(self.t.pending.items())      # these tables hold only durable frees
                if data and log.get("flush_done") <= begun:
                    self._flush()
                self._mine = False
            finally:
                log.unlock_commit()
            if pending is not None:
                self._after_commit(pending)

    def _flush(self):
        """Under the commit lock: the image's data to the disk, counted, so a commit that
        asked before this flush began knows its data is covered once it has ended."""
        log = self.log
        n = log.get("flush_begun") + 1
        log.put("flush_begun", n)
        self.flush_data()
        log.put("flush_done", n)

    def _after_commit(self, pending):
        """Under the log's lock: the frees a commit made durable (pending, as it read them)
        return to the free map; a journal grown long becomes a checkpoint."""
        log = self.log
        with log.writing():
            self._catch_up()
            if log.get("durable") == log.get("tail"):
                log.put("dirty_since", 0.0)
            now = self.t.pending
            self._release([(p, n) for p, n in pending if now.get(p) == n])
            if self._checkpoint_due():
                with log.committing():
                    self._commit_locked()

    def commit_if_mine(self):
        """At close: what this process changed becomes durable, as a kernel's would within
        its commit interval."""
        if self._mine:
            self.commit(data=False)

    def _commit_locked(self):
        """Commit under both locks (the interval's commit, and before a checkpoint)."""
        log = self.log
        self._journal_published()
        log.put("dirty_since", 0.0)
        self._mine = False
        self._release(list(self.t.pending.items()))
        if self._checkpoint_due():
            self._checkpoint_locked()

    def _checkpoint_due(self):
        """The journal grew past twice the checkpoint (and a minimum), or the shared log
        past half its room."""
        log = self.log
        return log.get("journal_len") > max(CHECKPOINT_MIN, os.stat(self.meta).st_size * 2) \
            or log.get("tail") > CAPACITY // 2

    def _release(self, items):
        """Under the log's lock, caught up: durable frees back to the free map, as a change."""
        if not items or self.on_release is None:
            return
        log = self.log
        self._depth, self._redo, self._undo = 1, [], []
        try:
            self.on_release(items)
        finally:
            self._depth = 0
        redo, self._redo, self._undo = self._redo, None, None
        if redo:
            blob = frame(redo)
            self._pos = log.append(blob) + len(blob)

    def _journal_published(self):
        """Under the commit lock: the image flushed, then every change published up to the
        tail these tables reflect appended to the journal and synced."""
        log = self.log
        durable, tail = log.get("durable"), self._pos
        if durable >= tail:
            return
        self._flush()                               # data before the metadata exposing it
        payload = bytes(log.read(durable, tail))
        jlen = log.get("journal_len")
        seq = log.get("commit_seq") + 1
        blob = journal.block(payload, log.get("ckpt_epoch"), seq)
        end, room = jlen + len(blob), log.get("journal_room")
        f = HostFile(journal.journal_of(self.meta))
        try:
            if end > room:
                grown = end + JOURNAL_AHEAD
                f.pwritev([blob, bytes(grown - end)], jlen)
                log.put("journal_room", grown)
            else:
                f.pwrite(blob, jlen)
            f.sync()
        finally:
            f.close()
        log.put("journal_len", end)
        log.put("durable", tail)
        log.put("commit_seq", seq)
        self.device.note_commit(seq)        # reaches the disk with the next flush of the image

    def release_durable_frees(self):
        """Inside a change that ran out of space: commit what is published, then free the
        blocks pending on it (not those this change freed). Returns the blocks released."""
        added = {key for table, key, _ in self._undo if table == "p"}
        items = [(p, n) for p, n in self.t.pending.items() if p not in added]
        if not items or self.on_release is None:
            return 0
        with self.log.committing():     # a commit writing the journal ends first
            self._journal_published()
        self.on_release(items)
        return sum(n for _, n in items)

    def _checkpoint_locked(self):
        """Everything durable so far (and the frees it released) as one new checkpoint;
        the journal starts again after it."""
        log = self.log
        epoch = log.get("ckpt_epoch") + 1
        nonce = journal.write_checkpoint(self.meta, self.uuid, epoch, seq=log.get("commit_seq"),
                                         **self.t.checkpoint())
        tail = log.get("tail")
        log.put("ckpt_epoch", epoch)
        log.put("ckpt_nonce", nonce)
        log.put("journal_len", journal.JOURNAL_START)
        log.put("journal_room", journal.JOURNAL_START)
        log.put("durable", tail)
        if tail > CAPACITY // 2:            # start the log again; others reload the checkpoint
            log.put("ckpt_tail", 0)
            log.put("durable", 0)
            log.put("tail", 0)
            log.put("shm_epoch", log.get("shm_epoch") + 1)
            self._epoch, self._pos = log.position()
        else:
            log.put("ckpt_tail", tail)

    def _fold_journal(self):
        """The last user leaves a short journal: the next opener then loads one checkpoint
        instead of replaying every commit since the last one."""
        log = self.log
        if log.get("journal_len") - journal.JOURNAL_START > FOLD_ON_CLOSE:
            with log.writing(), log.committing():
                self._catch_up()
                self._checkpoint_locked()

    def _after_fork(self):
        self.log.reopen_lock()
        self._rlock = _thread.RLock()
        self.t.set_locks(self._rlock)
        self._mine = False

    def leave(self):
        """The last user of the volume commits, folds the journal and removes the shared log
        and the runtime directory: the disk then holds everything, nothing is left in memory.
        Returns whether this was the last user."""
        if self.readonly or not self.log.last_user():
            return False
        if self.on_leave is not None:
            self.on_leave()
        self.commit(data=False)
        self._fold_journal()
        self.device.release()
        # the runtime directory first: once the log is unlinked, a newcomer makes a new log
        # and uses the directory at once, which this one must not remove under it
        _remove_runtime(self.log.path + ".d")
        self.log.remove()
        return True

    def close(self):
        """Leave the volume (see leave) and let go of the shared log."""
        forget_fork(self)
        try:
            self.leave()
        finally:
            self.log.close()



def _remove_runtime(path, suffix=None):
    """rm -rf of the runtime directory, which holds only files (the shadows and the copies of
    shared mappings), or only its files ending in suffix. Not shutil's: most processes are the
    last user when they end, and its import costs each ~4 ms."""
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                if suffix is None or entry.name.endswith(suffix):
                    try:
                        os.unlink(entry.path)
                    except OSError:
                        pass
    except OSError:
        pass
    if suffix is None:
        try:
            os.rmdir(path)
        except OSError:
            pass


_changing = 0                   # changes under way in this process (any store)
_interrupted = False


def interrupt_between_changes(signum, frame):
    """A SIGINT handler for a program that drives the store itself (the CLI): Ctrl-C raises
    KeyboardInterrupt at once between changes, and at the end of a change under way, never
    inside its bookkeeping (an interrupt there left a change neither undone nor published)."""
    global _interrupted
    if _changing:
        _interrupted = True
    else:
        raise KeyboardInterrupt


class _Change:
    """The context of Store.tx() (a class: every call makes one, and a generator costs more)."""
    __slots__ = ("s", "dirty", "outer", "local", "ahead", "conflict")

    def __init__(self, store, dirty, local):
        self.s, self.dirty, self.local, self.ahead, self.conflict = store, dirty, local, False, False

    def __enter__(self):
        global _changing
        s = self.s
        if s.readonly:
            raise FsError(errno.EROFS, "the volume is open read-only")
        _changing += 1
        try:
            return self._enter(s)
        except BaseException:
            self._done()
            raise

    def _done(self):
        global _changing, _interrupted
        _changing -= 1
        if _interrupted and not _changing:
            _interrupted = False
            raise KeyboardInterrupt

    def _enter(self, s):
        s._rlock.acquire()
        self.outer = not s._depth
        if not self.outer:
            if s._ahead_change and self.local is None:
                s._rlock.release()
                raise RuntimeError("a change of more than one inode inside a local one")
            s._depth += 1
            return s
        # a local change whose inode these tables reflect is made before the log's lock:
        # _exit takes it, checks that the inode did not change meanwhile, and publishes
        self.ahead = self.local is not None and s._reflects(self.local)
        if not self.ahead:
            try:
                s.fresh()       # before the lock every change takes: under it, only
                s.log.lock()    # what others publish meanwhile
                try:
                    if s.log.get("reaping"):        # said by a process that died in its change
                        s.log.put("reaping", 0)
                    s._catch_up()
                except BaseException:
                    s.log.unlock()
                    raise
            except BaseException:
                s._rlock.release()
                raise
        if s.t.whole:           # no change under way here or anywhere in this process
            s.t.settle()
        s._depth, s._redo, s._undo = 1, [], []
        s._ahead_change = self.ahead
        return s

    def __exit__(self, kind, exc, tb):
        try:
            return self._exit(kind)
        finally:
            self._done()

    def _exit(self, kind):
        s = self.s
        try:
            if not self.outer:
                s._depth -= 1
                return False
            # the frame made before the lock of a change ahead of it: the lock is held briefly
            blob = frame(s._redo) if kind is None and s._redo else None
            if self.ahead:
                try:
                    s.log.lock()
                except BaseException:
                    self._undo(s)
                    raise
                # the inode changed meanwhile (its row, by an unlink or a chmod): undone, and
                # Store.change_local makes it again after catching up
                self.conflict = kind is None and not s._reflects(self.local)
            try:
                if kind is not None or self.conflict:
                    self._undo(s)
                else:
                    s._depth = 0
                    s._ahead_change = False
                    redo, s._redo, s._undo = s._redo, None, None
                    if redo:
                        s._publish(redo, blob, self.dirty, self.ahead)
            finally:
                if s._reaping:                      # published or undone: unsaid
                    s._reaping = False
                    s.log.put("reaping", 0)
                s.log.unlock()
            return self.conflict
        finally:
            s._rlock.release()

    @staticmethod
    def _undo(s):
        for table, key, old in reversed(s._undo):
            s.t.set(table, key, old)
        s._depth = 0
        s._ahead_change = False
        s._redo = s._undo = None
