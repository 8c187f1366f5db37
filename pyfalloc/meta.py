"""Metadata store: SQLite in WAL mode, one transaction per change, shared by processes.

The database lives beside the image (IMAGE.meta) and carries the image's UUID; a
missing, foreign or corrupt counterpart is refused, never re-created. Anyone can open it
with the sqlite3 shell to see what the filesystem holds.
"""
import contextlib
import os
import sqlite3
import threading

from .errors import FormatError

SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE super(key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE inodes(
    ino INTEGER PRIMARY KEY, mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL,
    size INTEGER NOT NULL DEFAULT 0, nlink INTEGER NOT NULL, flags INTEGER NOT NULL DEFAULT 0,
    atime REAL NOT NULL, mtime REAL NOT NULL, ctime REAL NOT NULL,
    grp INTEGER NOT NULL);                       -- the block group new data prefers
CREATE TABLE dirents(parent INTEGER NOT NULL, name TEXT NOT NULL, ino INTEGER NOT NULL,
    PRIMARY KEY(parent, name)) WITHOUT ROWID;
CREATE INDEX dirents_ino ON dirents(ino);
-- logical block lblk..lblk+len of inode ino lives at physical pblk..pblk+len
CREATE TABLE extents(ino INTEGER NOT NULL, lblk INTEGER NOT NULL, len INTEGER NOT NULL,
    pblk INTEGER NOT NULL, unwritten INTEGER NOT NULL, PRIMARY KEY(ino, lblk)) WITHOUT ROWID;
CREATE INDEX extents_pblk ON extents(pblk);
-- free extents never cross a block-group boundary, so (grp, len) finds a fit in a group
CREATE TABLE free(pblk INTEGER PRIMARY KEY, len INTEGER NOT NULL, grp INTEGER NOT NULL);
CREATE INDEX free_grp_len ON free(grp, len);
CREATE INDEX free_len ON free(len, pblk);
-- unused part of a preallocation window: busy for everybody but its owner
-- (ino 0: the shared locality window; otherwise the inode's window, lblk its logical start)
CREATE TABLE prealloc(pblk INTEGER PRIMARY KEY, len INTEGER NOT NULL, ino INTEGER NOT NULL,
    lblk INTEGER);
CREATE INDEX prealloc_ino ON prealloc(ino, lblk);
-- open files per process, so an unlinked inode lives until its last handle closes
CREATE TABLE handles(id INTEGER PRIMARY KEY, ino INTEGER NOT NULL, pid INTEGER NOT NULL,
    started REAL NOT NULL);
CREATE INDEX handles_ino ON handles(ino);
-- relocations under way: which process moves what, and how many blocks it has switched
CREATE TABLE moves(id INTEGER PRIMARY KEY, orig INTEGER NOT NULL, donor INTEGER NOT NULL,
    pid INTEGER NOT NULL, started REAL NOT NULL, moved INTEGER NOT NULL DEFAULT 0);
"""


def meta_path(image):
    return os.fspath(image) + ".meta"


class Meta:
    def __init__(self, conn, path):
        self.conn = conn
        self.path = path
        self._depth = 0
        self._lock = threading.RLock()

    @classmethod
    def create(cls, image, settings):
        path = meta_path(image)
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path + suffix)
        conn = cls._connect(path)
        conn.executescript(SCHEMA)
        meta = cls(conn, path)
        with meta.tx():
            conn.executemany("INSERT INTO super VALUES (?, ?)",
                             [("schema", SCHEMA_VERSION)] + sorted(settings.items()))
        return meta

    @classmethod
    def open(cls, image, uuid):
        path = meta_path(image)
        if not os.path.exists(path):
            raise FormatError(f"metadata {path} is missing (refusing to re-create it)")
        try:
            conn = cls._connect(path)
            rows = dict(conn.execute("SELECT key, value FROM super"))
        except sqlite3.DatabaseError as e:
            raise FormatError(f"metadata {path} is corrupt: {e}") from None
        if rows.get("schema") != SCHEMA_VERSION:
            raise FormatError(f"metadata {path} has schema {rows.get('schema')}, expected {SCHEMA_VERSION}")
        if rows.get("uuid") != uuid.hex():
            raise FormatError(f"metadata {path} belongs to another image (UUID {rows.get('uuid')})")
        meta = cls(conn, path)
        meta.settings = rows
        return meta

    @staticmethod
    def _connect(path):
        conn = sqlite3.connect(path, isolation_level=None, timeout=120, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit survives kill -9 of any process; a power cut can lose
        # the newest commits but never leaves the database inconsistent. fsync, moves and
        # trim call sync() where durability is promised.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=OFF")
        return conn

    @contextlib.contextmanager
    def tx(self):
        """One atomic change; nested uses join the outer transaction."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self.conn
                finally:
                    self._depth -= 1
                return
            self.conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self.conn
            except BaseException:
                self._depth = 0
                self.conn.execute("ROLLBACK")
                raise
            self._depth = 0
            self.conn.execute("COMMIT")

    def sync(self):
        """Make every committed transaction durable (commits are only ordered, not synced,
        under synchronous=NORMAL): fsync the write-ahead log and the database."""
        for suffix in ("-wal", ""):
            try:
                fd = os.open(self.path + suffix, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def q(self, sql, args=()):
        return self.conn.execute(sql, args).fetchall()

    def q1(self, sql, args=()):
        return self.conn.execute(sql, args).fetchone()

    def close(self):
        self.conn.close()
