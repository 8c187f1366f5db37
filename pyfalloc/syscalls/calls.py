"""The Linux semantics layer: file descriptors, argument checks in the kernel's order,
capabilities and errno. Every front (Python API, shim, CLI) calls through here, so one
place decides which error a call gets.
"""
import _thread
import errno
import fcntl
import os
import stat as st
import struct

from pyfalloc import uapi
from pyfalloc.errors import FsError, LeavesImage
from pyfalloc.fs import acl as acls
from pyfalloc.fs import move, paths, perms
from pyfalloc.fs.filesystem import clock
from pyfalloc.fs.perms import CAP_FOWNER, CAP_LINUX_IMMUTABLE
from pyfalloc.records import record
from pyfalloc.syscalls import abi, limits, xattr
from pyfalloc.syscalls.caps import capable, current_cred, real_caps
from pyfalloc.uapi import (
    FALLOC_FL_COLLAPSE_RANGE,
    FALLOC_FL_INSERT_RANGE,
    FALLOC_FL_KEEP_SIZE,
    FALLOC_FL_MODE_MASK,
    FALLOC_FL_PUNCH_HOLE,
    FALLOC_FL_UNSHARE_RANGE,
    FALLOC_FL_WRITE_ZEROES,
    FALLOC_FL_ZERO_RANGE,
    NO_HINT,
)
from pyfalloc.units import ceil_div

LOFF_MAX = (1 << 63) - 1
Stat = record("Stat", "st_mode st_ino st_dev st_nlink st_uid st_gid st_size st_atime st_mtime "
                      "st_ctime st_blksize st_blocks st_flags st_rdev")
FiemapExtent = record("FiemapExtent", "logical physical length flags")
NOW = object()              # a time argument of setattr: the current time, as UTIME_NOW

# what each call answers when its path ends in the root, "." or "..", as fs/namei.c
_MKDIR_REFUSED = {paths.ROOT: errno.EEXIST, paths.DOT: errno.EEXIST, paths.DOTDOT: errno.EEXIST}
_RMDIR_REFUSED = {paths.ROOT: errno.EBUSY, paths.DOT: errno.EINVAL, paths.DOTDOT: errno.ENOTEMPTY}
_UNLINK_REFUSED = {paths.ROOT: errno.EISDIR, paths.DOT: errno.EISDIR, paths.DOTDOT: errno.EISDIR}
_RENAME_REFUSED = {paths.ROOT: errno.EBUSY, paths.DOT: errno.EBUSY, paths.DOTDOT: errno.EBUSY}


# fallocate's step 8 on what is not a regular file (else ENODEV)
_FALLOCATE_NOT_REGULAR = {st.S_IFIFO: errno.ESPIPE, st.S_IFDIR: errno.EISDIR}
_APPEND_OR_IMMUTABLE = uapi.FS_APPEND_FL | uapi.FS_IMMUTABLE_FL
_MOVES_BYTES = frozenset((FALLOC_FL_COLLAPSE_RANGE, FALLOC_FL_INSERT_RANGE))
_CHANGES_BYTES = frozenset((FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE, FALLOC_FL_WRITE_ZEROES))

# an open looks its name up again when an unlink freed the inode before it was held
_OPEN_TRIES = 8


def _shown(path):
    return paths.printable(os.fsdecode(path))


class OpenFile:
    """An open file description: dup'ed descriptors share it, offset and flags included."""
    __slots__ = ("ino", "flags", "pos", "refs", "is_dir")

    def __init__(self, ino, flags, is_dir):
        self.ino, self.flags, self.pos, self.refs, self.is_dir = ino, flags, 0, 1, is_dir

    @property
    def readable(self):
        return self.flags & os.O_ACCMODE in (os.O_RDONLY, os.O_RDWR)

    @property
    def writable(self):
        return self.flags & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR)


def _foreign_donor(fd):
    """A donor that is not on this volume: EBADF unless it is a writable file, then EINVAL."""
    try:
        acc = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
    except OSError:
        raise FsError(errno.EBADF, f"donor fd {fd} is not open") from None
    if acc == os.O_RDONLY:
        raise FsError(errno.EBADF, "donor not open for writing")
    raise FsError(errno.EINVAL, "donor is on another filesystem")


_AT_SYMLINK_FOLLOW, _AT_EMPTY_PATH = 0x400, 0x1000
_protected_hardlinks = None         # fs.protected_hardlinks, read at the first link


def _hardlinks_protected():
    global _protected_hardlinks
    if _protected_hardlinks is None:
        try:
            with open("/proc/sys/fs/protected_hardlinks") as f:
                _protected_hardlinks = f.read().strip() != "0"
        except OSError:
            _protected_hardlinks = True
    return _protected_hardlinks


def _safe_link_source(cred, inode, acl):
    """may_linkat's safe source: a regular file, not set-user-ID, not set-group-ID and
    group-executable, that the caller may read and write (acl: its access ACL)."""
    mode = inode.mode
    return (st.S_ISREG(mode) and not mode & st.S_ISUID
            and mode & (st.S_ISGID | st.S_IXGRP) != st.S_ISGID | st.S_IXGRP
            and perms.allowed(cred, inode, perms.MAY_READ | perms.MAY_WRITE, acl))


def check_fallocate_mode(mode, offset, length):
    """vfs_fallocate's first checks (steps 1-3 of the reference order)."""
    if offset < 0 or length <= 0:
        raise FsError(errno.EINVAL, "offset < 0 or len <= 0")
    if mode & ~(FALLOC_FL_MODE_MASK | FALLOC_FL_KEEP_SIZE):
        raise FsError(errno.EOPNOTSUPP, f"unknown mode bits {mode & ~(FALLOC_FL_MODE_MASK | FALLOC_FL_KEEP_SIZE):#x}")
    op = mode & FALLOC_FL_MODE_MASK
    if op in (0, FALLOC_FL_UNSHARE_RANGE, FALLOC_FL_ZERO_RANGE):
        return
    if op == FALLOC_FL_PUNCH_HOLE:
        if not mode & FALLOC_FL_KEEP_SIZE:
            raise FsError(errno.EOPNOTSUPP, "PUNCH_HOLE needs KEEP_SIZE")
        return
    if op in (FALLOC_FL_COLLAPSE_RANGE, FALLOC_FL_INSERT_RANGE, FALLOC_FL_WRITE_ZEROES):
        if mode & FALLOC_FL_KEEP_SIZE:
            raise FsError(errno.EOPNOTSUPP, "this mode refuses KEEP_SIZE")
        return
    raise FsError(errno.EOPNOTSUPP, f"mode {mode:#x} combines two operations")


class Syscalls:
    """File-descriptor calls on one filesystem, for one process."""

    def __init__(self, fs):
        self.fs = fs
        self.files = {}
        self._next_fd = 3
        self._lock = _thread.RLock()
        # fd -> OpenFile of a descriptor a front opened without telling (the shim answers
        # opens that change nothing itself): set by that front, None otherwise
        self.claim = None
        # O_TMPFILE inodes made without O_EXCL and not linked yet: linkat may name them
        # (ext4's I_LINKABLE; kept by the process that made them)
        self._linkable = set()

    # ---- descriptors -----------------------------------------------------------------------
    def _known(self, fd):
        of = self.files.get(fd)
        if of is None and self.claim is not None:
            of = self.claim(fd)
        return of

    def _file(self, fd):
        of = self._known(fd)
        if of is None:
            raise FsError(errno.EBADF, f"fd {fd} is not open on this volume")
        return of

    def _alloc_fd(self):
        while self._next_fd in self.files:
            self._next_fd += 1
        return self._next_fd

    def open(self, path, flags=os.O_RDONLY, mode=0o644, fd=None, umask=0):
        """open(2). `fd` lets a front choose the number (the shim uses its shadow fd); umask:
        the caller's, which a created file's mode loses unless its directory has a default
        ACL (the mode is otherwise taken as given)."""
        fs = self.fs
        cred = current_cred()
        with self._lock:
            acc = flags & os.O_ACCMODE
            if acc == 3:
                raise FsError(errno.EINVAL, "bad access mode")
            if flags & os.O_TMPFILE == os.O_TMPFILE:
                return self._open_tmpfile(path, flags, mode, fd, cred, umask)
            for _ in range(_OPEN_TRIES):
                ino, created = self._look_up(path, flags, mode, cred, umask)
                if fs.hold_existing(ino):
                    break
                # an unlink by another process freed it between the look-up and the hold
            else:
                raise FsError(errno.ENOENT, f"{_shown(path)}: removed while being opened")
            try:
                inode = fs.inode(ino)
                is_dir = st.S_ISDIR(inode.mode)
                want = (perms.MAY_READ if acc != os.O_WRONLY else 0) | \
                       (perms.MAY_WRITE if acc != os.O_RDONLY or flags & os.O_TRUNC else 0)
                special = st.S_IFMT(inode.mode) in (st.S_IFIFO, st.S_IFCHR, st.S_IFBLK, st.S_IFSOCK)
                if special and not flags & os.O_PATH:
                    self._open_special(inode, want, cred, path)
                if flags & os.O_DIRECTORY and not is_dir:
                    raise FsError(errno.ENOTDIR, _shown(path))
                if is_dir and (acc != os.O_RDONLY or flags & os.O_CREAT):
                    raise FsError(errno.EISDIR, _shown(path))
                if acc != os.O_RDONLY or flags & os.O_TRUNC:
                    fs.check_writable()
                if not created and not flags & os.O_PATH:      # O_PATH reads nothing: no check
                    self._may(cred, inode, want, path)
                if acc != os.O_RDONLY or flags & os.O_TRUNC:
                    if inode.flags & uapi.FS_IMMUTABLE_FL:
                        raise FsError(errno.EPERM, "immutable file")
                    if inode.flags & uapi.FS_APPEND_FL and (not flags & os.O_APPEND or flags & os.O_TRUNC):
                        raise FsError(errno.EPERM, "append-only file")
                if flags & os.O_TRUNC and not is_dir and acc != os.O_RDONLY and inode.size:
                    fs.truncate(ino, 0)
            except Exception:
                # a refused open lets go of its hold; an interrupt (KeyboardInterrupt) does no
                # more work on tables it may have caught half-restored
                fs.drop_handle(ino)
                raise
            return self._install(fd, OpenFile(ino, flags, is_dir))

    def _look_up(self, path, flags, mode, cred, umask):
        """open's look-up of the name, creating the file for O_CREAT: (inode, created)."""
        fs = self.fs
        parent, p = fs.walk_parent(path, cred)
        if p.kind != paths.NORM:
            if flags & os.O_CREAT:
                raise FsError(errno.EISDIR, _shown(path))
            return fs.resolve(path), False
        if flags & os.O_CREAT and p.trailing:
            raise FsError(errno.EISDIR, f"{_shown(path)}: O_CREAT of a name ending in /")
        ino = fs.entry(parent, p.last)
        if ino is not None and ino in fs.t.symlinks:
            if flags & os.O_CREAT and flags & os.O_EXCL:
                raise FsError(errno.EEXIST, _shown(path))
            if flags & os.O_PATH and flags & os.O_NOFOLLOW:
                return ino, False                       # the link itself
            if flags & os.O_NOFOLLOW:
                raise FsError(errno.ELOOP, f"{_shown(path)}: a symbolic link (O_NOFOLLOW)")
            parent, name, ino = fs.follow_entry(parent, ino, cred, path)
            if ino is None:                             # a dangling link: O_CREAT makes its target
                p = paths.Parsed([], name, paths.NORM, False)
        if ino is not None:
            if flags & os.O_CREAT and flags & os.O_EXCL:
                raise FsError(errno.EEXIST, _shown(path))
            if p.trailing and not st.S_ISDIR(fs.inode(ino).mode):
                raise FsError(errno.ENOTDIR, f"{_shown(path)}: not a directory")
            return ino, False
        if not flags & os.O_CREAT:
            raise FsError(errno.ENOENT, _shown(path))
        if flags & os.O_DIRECTORY:
            raise FsError(errno.EINVAL, "O_CREAT with O_DIRECTORY")
        self._may_change(parent, cred, path)
        try:
            return self._create(parent, p.last, st.S_IFREG | (mode & 0o7777), cred, umask), True
        except FsError as e:
            # another process made the name since the look-up: without O_EXCL the open takes
            # that file, as the kernel's look-up under the directory's lock would have found it
            ino = fs.entry(parent, p.last)
            if e.errno != errno.EEXIST or flags & os.O_EXCL or ino is None:
                raise
            return ino, False

    def _open_special(self, inode, want, cred, path):
        """A FIFO opens as the host FIFO that stands for it (LeavesImage: the shim opens it,
        and the kernel pipes between its openers); a device node as on a nodev mount
        (EACCES); a socket as Linux opens one (ENXIO). want: open's permission mask (O_TRUNC
        asks for write permission on a FIFO too, as may_open checks it)."""
        kind = st.S_IFMT(inode.mode)
        if kind == st.S_IFSOCK:
            raise FsError(errno.ENXIO, f"{_shown(path)}: a socket")
        if kind != st.S_IFIFO:
            raise FsError(errno.EACCES, f"{_shown(path)}: device nodes are not opened (nodev)")
        self._may(cred, inode, want, path)
        raise LeavesImage(self.fs.fifo_path(inode.ino))

    def _may_change(self, parent, cred, path):
        """The caller may add or remove entries of directory parent: a writable volume (a
        read-only mount says EROFS before any EACCES), write and search permission."""
        self.fs.check_writable()
        self._may(cred, self.fs.inode(parent), perms.MAY_WRITE | perms.MAY_EXEC, path)

    def _create(self, parent, name, mode, cred, umask=0):
        """A new inode in parent (which _may_change allowed), owned as _owner says, its
        permissions and ACLs as _inherited says."""
        mode, gid = self._owner(parent, mode, cred)
        with self.fs.meta.tx():         # the parent's default ACL as it stands, caught up
            mode, access, default = self._inherited(parent, mode, umask)
            ino = self.fs.create(parent, name, mode, cred.uid, gid)
            self._give_acls(ino, access, default)
            return ino

    def _inherited(self, parent, mode, umask):
        """posix_acl_create: without a default ACL on parent the umask takes bits off mode;
        with one, the ACL, masked by mode, gives the new inode its permission bits, an
        access ACL unless the mode says it all, and to a directory the default ACL again.
        (mode, access ACL, default ACL)."""
        default = self.fs.default_acl(parent)
        if default is None:
            return mode & ~(umask & 0o777), None, None
        mode, access, plain = acls.create_masq(default, mode)
        return mode, None if plain else access, default if st.S_ISDIR(mode) else None

    def _give_acls(self, ino, access, default):
        """Inside the change that made ino: the ACLs _inherited gave it."""
        if access is not None:
            self.fs.put_acl(ino, acls.ACCESS, access)
        if default is not None:
            self.fs.put_acl(ino, acls.DEFAULT, default)

    def _owner(self, parent, mode, cred):
        """inode_init_owner: (mode, group) of a new inode in parent, owned by the fsuid. The
        group and, for a directory, the set-group-ID bit come from a set-group-ID parent;
        elsewhere a new file keeps that bit only within the caller's groups or CAP_FSETID."""
        pinode = self.fs.inode(parent)
        gid = cred.gid
        if pinode.mode & st.S_ISGID:
            gid = pinode.gid
            if st.S_ISDIR(mode):
                mode |= st.S_ISGID
        elif mode & st.S_ISGID and not st.S_ISDIR(mode) and not perms.in_group(cred, gid) \
                and not perms.capable(cred, perms.CAP_FSETID):
            mode &= ~st.S_ISGID
        return mode, gid

    def _open_tmpfile(self, path, flags, mode, fd, cred, umask):
        """O_TMPFILE: an unnamed regular file in directory path, gone when its last handle closes."""
        fs = self.fs
        if flags & os.O_ACCMODE == os.O_RDONLY:
            raise FsError(errno.EINVAL, "O_TMPFILE needs O_WRONLY or O_RDWR")
        parent = fs.resolve(path, cred)
        if not st.S_ISDIR(fs.inode(parent).mode):
            raise FsError(errno.ENOTDIR, _shown(path))
        self._may_change(parent, cred, path)
        with fs.meta.tx():
            ino = self._create(parent, None, st.S_IFREG | (mode & 0o7777), cred, umask)
            fs.add_handle(ino)
        if not flags & os.O_EXCL:
            self._linkable.add(ino)
        return self._install(fd, OpenFile(ino, flags & ~os.O_TMPFILE, False))

    def _install(self, fd, of):
        fd = self._alloc_fd() if fd is None else fd
        if fd in self.files:
            self.close(fd)
        self.files[fd] = of
        return fd

    def adopt(self, inherited):
        """Take over descriptors inherited across exec: inherited maps fd to (ino, flags).
        Each holds a handle of this process, which keeps an unlinked file alive; the file
        position stays in the kernel's description (the shim's shadow)."""
        for fd, (ino, flags) in sorted(inherited.items()):
            try:
                is_dir = st.S_ISDIR(self.fs.inode(ino).mode)
            except FsError:                 # freed before this process could take it
                continue
            self.fs.add_handle(ino)
            self.files[fd] = OpenFile(ino, flags, is_dir)

    def path_of(self, fd):
        """The path inside the volume of the file open as fd (its name at this moment)."""
        return self.fs.path_of(self._file(fd).ino)

    def dir_path(self, fd):
        """Where a name relative to fd is looked up: the directory's path at this moment (it
        may have been renamed since it was opened); ENOTDIR when fd is no directory, ENOENT
        when the directory was removed, as path_init and the lookup answer."""
        of = self._file(fd)
        if not of.is_dir:
            raise FsError(errno.ENOTDIR, f"fd {fd} is not a directory")
        return self.fs.path_of(of.ino)

    def close(self, fd):
        with self._lock:
            of = self.files.pop(fd, None)
            if of is None:
                raise FsError(errno.EBADF, f"fd {fd} is not open on this volume")
            of.refs -= 1
            if of.refs == 0:
                self._linkable.discard(of.ino)      # once unnamed and closed, it is gone
                self.fs.drop_handle(of.ino)

    def dup(self, fd, newfd=None):
        with self._lock:
            of = self._file(fd)
            newfd = self._alloc_fd() if newfd is None else newfd
            if newfd == fd:
                return newfd
            if newfd in self.files:
                self.close(newfd)
            of.refs += 1
            self.files[newfd] = of
            return newfd

    # ---- data ------------------------------------------------------------------------------
    def _check_io(self, of, for_write):
        if for_write and not of.writable or not for_write and not of.readable:
            raise FsError(errno.EBADF, "fd not open for " + ("writing" if for_write else "reading"))
        if of.is_dir:
            raise FsError(errno.EISDIR, "is a directory")

    def pread(self, fd, length, offset):
        buf = bytearray(max(0, length))
        return bytes(buf[:self.pread_into(fd, memoryview(buf), offset)])

    def pread_into(self, fd, view, offset):
        """pread into a writable buffer (the shim's: no copy on the way); returns the count."""
        of = self._file(fd)
        self._check_io(of, False)
        if offset < 0:
            raise FsError(errno.EINVAL, "negative offset")
        return self.fs.read_into(of.ino, offset, view)

    def extent_at(self, fd, offset):
        """For reads and overwrites outside Python (the shim's): the extent of a regular file
        that holds offset, with the file's size and what the answer reflects — (log epoch,
        the inode's change counter, size, lblk, len, pblk, unwritten, block size, inode, mtime
        as the bits of a double, inode flags, the inode's gate counter) — or None. It holds
        while the counters (and the epoch) stay."""
        of = self._file(fd)
        if of.is_dir or offset < 0:
            return None
        fs, store = self.fs, self.fs.meta
        size = fs.known_size(of.ino)
        if size is not None and offset >= size:
            # an append or a read at the end: nothing the shim can do alone, and a smaller
            # size seen here than the file has now only sends one call Python's way
            return None
        with fs.locks.stable(of.ino):               # no change of the inode under way
            gen, gate = store.generation(of.ino), store.gate_count(of.ino)
            if fs.mapped.has(of.ino):
                return None                         # mapped shared: its bytes are the copy's
            inode = fs.inode(of.ino, local=True)    # caught up with this inode's changes
            epoch, _ = store.snapshot()
            found = fs.extmap.overlapping(of.ino, offset // fs.bs, offset // fs.bs + 1)
        if not found:
            return None
        e = found[0]
        mtime_bits = struct.unpack("<q", struct.pack("<d", inode.mtime))[0]
        return (epoch, gen, inode.size, e.lblk, e.len, e.pblk, e.unwritten, fs.bs, of.ino,
                mtime_bits, inode.flags, gate)

    def read(self, fd, length):
        with self._lock:
            of = self._file(fd)
            data = self.pread(fd, length, of.pos)
            of.pos += len(data)
            return data

    def pwrite(self, fd, data, offset):
        of = self._file(fd)
        self._check_io(of, True)
        if offset < 0:
            raise FsError(errno.EINVAL, "negative offset")
        if not data:
            return 0
        count = limits.room(offset, len(data))
        if offset >= self.fs.max_bytes:
            raise FsError(errno.EFBIG, "offset past the maximum file size")
        return self._synced(of, self.fs.write(of.ino, offset, memoryview(data)[:min(count, self.fs.max_bytes - offset)]))

    def _synced(self, of, n):
        """O_SYNC, O_DSYNC: a write is durable when it returns (generic_write_sync commits)."""
        if n and of.flags & os.O_DSYNC:
            self.fs.meta.commit()
        return n

    def write(self, fd, data):
        with self._lock:
            of = self._file(fd)
            if of.flags & os.O_APPEND:
                of.pos, n = self.append(fd, data)
            else:
                n = self.pwrite(fd, data, of.pos)
            of.pos += n
            return n

    def append(self, fd, data):
        """A write on an O_APPEND description: at the end of the file, atomically; returns
        (offset written at, bytes written)."""
        of = self._file(fd)
        self._check_io(of, True)
        offset, n = self.fs.append(of.ino, data, self.fs.max_bytes, limits.room)
        return offset, self._synced(of, n)

    def lseek(self, fd, offset, whence=os.SEEK_SET, pos=None):
        """lseek(2); pos, when given, is the current position (the shim keeps it in the kernel)."""
        with self._lock:
            of = self._file(fd)
            if pos is not None:
                of.pos = pos
            size = self.fs.inode(of.ino).size if whence not in (os.SEEK_SET, os.SEEK_CUR) else None
            if whence == os.SEEK_SET:
                pos = offset
            elif whence == os.SEEK_CUR:
                pos = of.pos + offset
            elif whence == os.SEEK_END:
                pos = size + offset
            elif whence in (os.SEEK_DATA, os.SEEK_HOLE):
                if offset < 0 or offset >= size:
                    raise FsError(errno.ENXIO, "offset beyond end of file")
                pos = self._seek_data_hole(of.ino, offset, size, whence == os.SEEK_DATA)
            else:
                raise FsError(errno.EINVAL, f"whence {whence}")
            if pos < 0 or pos > self.fs.max_bytes:
                raise FsError(errno.EINVAL, "position outside 0..the maximum file size")
            of.pos = pos
            return pos

    def _seek_data_hole(self, ino, offset, size, want_data):
        """Written extents are data; holes and unwritten extents read as zeros and are holes."""
        bs = self.fs.bs
        for lblk, _, e in self.fs.extmap.segments(ino, offset // bs, ceil_div(size, bs)):
            is_data = e is not None and not e.unwritten
            if is_data == want_data:
                return max(offset, lblk * bs)
        if want_data:
            raise FsError(errno.ENXIO, "no data after offset")
        return size

    def fsync(self, fd):
        """fsync, fdatasync: a commit, which flushes the image and then journals every
        change so far (the journal is one for the volume, as jbd2's is)."""
        of = self._file(fd)
        self.fs.mapped.sync(of.ino)
        self.fs.meta.commit()

    def sync(self):
        """sync, syncfs: everything durable."""
        self.fs.mapped.sync()
        self.fs.meta.commit()

    # ---- shared mappings (fs/mapped.py) ----------------------------------------------------------
    def map_shared(self, fd, writable):
        """mmap(MAP_SHARED) of fd: a descriptor of the file's copy to map (then close), as
        the kernel checks first: a regular file, open for writing if the mapping is."""
        of = self._file(fd)
        if not of.readable or writable and not of.writable:
            raise FsError(errno.EACCES, "fd not open for reading" if not of.readable else "fd not open for writing")
        inode = self.fs.inode(of.ino)
        if not st.S_ISREG(inode.mode):
            raise FsError(errno.ENODEV, "not a regular file")
        if of.writable and inode.flags & uapi.FS_APPEND_FL:
            raise FsError(errno.EACCES, "append-only file")
        return of.ino, self.fs.mapped.map(of.ino, of.writable)

    def unmapped(self, ino, durable=False):
        """After a munmap (or msync, durable for MS_SYNC) of a shared mapping of ino."""
        self.fs.mapped.settle(ino, durable)

    def ftruncate(self, fd, length):
        of = self._file(fd)
        if length < 0:
            raise FsError(errno.EINVAL, "negative length")
        if not of.writable:
            raise FsError(errno.EINVAL, "fd not open for writing")
        self._truncate_ino(of.ino, length)

    def truncate(self, path, length):
        if length < 0:
            raise FsError(errno.EINVAL, "negative length")
        cred = current_cred()
        ino = self.fs.resolve(path, cred)
        inode = self.fs.inode(ino)
        if not st.S_ISDIR(inode.mode):
            self.fs.check_writable()
            self._may(cred, inode, perms.MAY_WRITE, path)
        self._truncate_ino(ino, length)

    def _truncate_ino(self, ino, length):
        self.fs.check_writable()
        inode = self.fs.inode(ino)
        if st.S_ISDIR(inode.mode):
            raise FsError(errno.EISDIR, "is a directory")
        if inode.flags & (uapi.FS_APPEND_FL | uapi.FS_IMMUTABLE_FL):
            raise FsError(errno.EPERM, "append-only or immutable file")
        limits.check_new_size(length, inode.size)
        if length > self.fs.max_bytes:
            raise FsError(errno.EFBIG, "length past the maximum file size")
        self.fs.truncate(ino, length)

    # ---- metadata ---------------------------------------------------------------------------
    def _stat_ino(self, ino):
        i = self.fs.inode(ino)
        blocks = self.fs.blocks_held(i)
        return Stat(i.mode, i.ino, 0, i.nlink, i.uid, i.gid, i.size, i.atime, i.mtime, i.ctime,
                    self.fs.bs, blocks, i.flags, self.fs.t.rdevs.get(ino, 0))

    def fstat(self, fd):
        return self._stat_ino(self._file(fd).ino)

    def stat(self, path, follow=True):
        """stat(2); follow False: lstat(2), a symbolic link itself."""
        return self._stat_ino(self.fs.resolve(path, current_cred(), follow))

    def mknod(self, path, mode, dev=0, umask=0):
        """mknod(2) in do_mknodat's order: the type (EINVAL; a directory EPERM), the name
        (EEXIST), the directory's write and search permission, then CAP_MKNOD for a device. A
        regular file is made as open makes it. umask: as open's."""
        kind = st.S_IFMT(mode) or st.S_IFREG
        if kind == st.S_IFDIR:
            raise FsError(errno.EPERM, "mknod of a directory")
        if kind not in (st.S_IFREG, st.S_IFCHR, st.S_IFBLK, st.S_IFIFO, st.S_IFSOCK):
            raise FsError(errno.EINVAL, f"file type {kind:#o}")
        cred = current_cred()
        parent, name = self._new_entry(path, cred)
        if kind in (st.S_IFCHR, st.S_IFBLK) and not perms.capable(cred, perms.CAP_MKNOD):
            raise FsError(errno.EPERM, "a device node needs CAP_MKNOD")
        if kind == st.S_IFREG:
            self._create(parent, name, st.S_IFREG | (mode & 0o7777), cred, umask)
            return
        mode, gid = self._owner(parent, kind | (mode & 0o7777), cred)
        with self.fs.meta.tx():
            mode, access, _ = self._inherited(parent, mode, umask)
            ino = self.fs.mknod(parent, name, mode, dev if kind in (st.S_IFCHR, st.S_IFBLK) else 0, cred.uid, gid)
            self._give_acls(ino, access, None)

    def _new_entry(self, path, cred):
        """filename_create's checks for the name a call adds: EEXIST for one that exists or
        is no name, ENOENT for a trailing slash, then write and search on the directory;
        (parent, name)."""
        parent, p = self.fs.walk_parent(path, cred)
        if p.kind != paths.NORM or self.fs.entry(parent, p.last) is not None:
            raise FsError(errno.EEXIST, _shown(path))
        if p.trailing:
            raise FsError(errno.ENOENT, f"{_shown(path)}: a new name with a trailing slash")
        self._may_change(parent, cred, path)
        return parent, p.last

    def symlink(self, target, path):
        """symlink(2): the target as given (not looked at), in do_symlinkat's order."""
        target = paths.decoded(paths.encode(target))      # ENOENT for "", ENAMETOOLONG, EINVAL for a NUL
        cred = current_cred()
        parent, name = self._new_entry(path, cred)
        self.fs.symlink(parent, name, target, cred.uid, self._owner(parent, st.S_IFLNK, cred)[1])

    def readlink(self, path):
        """readlink(2): the target of the link path names (EINVAL for any other file)."""
        return self.fs.readlink(self.fs.resolve(path, current_cred(), follow=False))

    def realpath(self, path):
        """The path with every symbolic link, ".", ".." and "//" resolved, as realpath(3)
        gives it (ENOENT when it names nothing)."""
        return self.fs.real_path(path, current_cred())

    def setattr(self, fd=None, path=None, mode=None, uid=None, gid=None, atime=None, mtime=None, follow=True):
        """chmod, chown, utimensat by descriptor or path, with their permission rules. A time
        of NOW is the current time, set as by UTIME_NOW (which any writer may do). follow
        False: lchown, AT_SYMLINK_NOFOLLOW (a link's mode cannot change: EOPNOTSUPP)."""
        cred = current_cred()
        ino = self._file(fd).ino if fd is not None else self.fs.resolve(path, cred, follow)
        if mode is not None and ino in self.fs.t.symlinks:
            raise FsError(errno.EOPNOTSUPP, f"{_shown(path)}: the mode of a symbolic link")
        inode = self.fs.inode(ino)
        self.fs.check_writable()
        if mode is not None:
            mode = perms.chmod_mode(cred, inode, mode)
        if uid is not None or gid is not None:
            perms.chown_ok(cred, inode, uid, gid)
            if mode is None:
                mode = perms.chown_mode(inode) & 0o7777
        if atime is not None or mtime is not None:
            perms.utimes_ok(cred, inode, atime in (None, NOW) and mtime in (None, NOW), self.fs.access_acl(ino))
            now = clock()
            atime = now if atime is NOW else atime
            mtime = now if mtime is NOW else mtime
        self.fs.setattr(ino, mode, uid, gid, atime, mtime)

    def access(self, path, mode=os.F_OK, effective=False):
        """faccessat(2): with the real ids (and, for a real root, the permitted capabilities)
        unless effective (AT_EACCESS)."""
        if mode & ~(os.R_OK | os.W_OK | os.X_OK):
            raise FsError(errno.EINVAL, f"access mode {mode:#o}")
        cred = current_cred()
        if not effective:
            cred = perms.Cred(os.getuid(), os.getgid(), cred.groups, real_caps() if os.getuid() == 0 else 0)
        inode = self.fs.inode(self.fs.resolve(path, cred))
        if mode & os.W_OK:
            self.fs.check_writable()
        if mode & os.W_OK and inode.flags & uapi.FS_IMMUTABLE_FL:
            raise FsError(errno.EPERM, "immutable file")
        want = (perms.MAY_READ if mode & os.R_OK else 0) | (perms.MAY_WRITE if mode & os.W_OK else 0) | \
               (perms.MAY_EXEC if mode & os.X_OK else 0)
        self._may(cred, inode, want, path)

    def _name(self, path, cred, refused):
        """(parent, name, parsed) for a call that changes an entry of parent, which the
        caller must be able to write; refused maps a last component that is not a name
        (the root, "." or "..") to the errno this call gives it."""
        parent, p = self.fs.walk_parent(path, cred)
        if p.kind != paths.NORM:
            raise FsError(refused[p.kind], f"{_shown(path)}: not a name")
        self._may_change(parent, cred, path)
        return parent, p.last, p

    def _may_delete(self, cred, parent, name, path):
        """The sticky-directory rule for the entry parent/name, when it exists."""
        ino = self.fs.entry(parent, name)
        if ino is not None:
            perms.check_sticky(cred, self.fs.inode(parent), self.fs.inode(ino), path)
        return ino

    def mkdir(self, path, mode=0o755, umask=0):
        """mkdir(2); umask: as open's. The mode keeps its permission and sticky bits only
        (vfs_mkdir's mask): set-group-ID comes from a set-group-ID parent, if at all."""
        cred = current_cred()
        parent, name, _ = self._name(path, cred, _MKDIR_REFUSED)
        if self.fs.entry(parent, name) is not None:
            raise FsError(errno.EEXIST, _shown(path))
        self._create(parent, name, st.S_IFDIR | (mode & (0o777 | st.S_ISVTX)), cred, umask)

    def rmdir(self, path):
        cred = current_cred()
        parent, name, _ = self._name(path, cred, _RMDIR_REFUSED)
        self._may_delete(cred, parent, name, path)
        self.fs.unlink(parent, name, want_dir=True)

    def unlink(self, path):
        cred = current_cred()
        parent, name, p = self._name(path, cred, _UNLINK_REFUSED)
        ino = self._may_delete(cred, parent, name, path)
        if p.trailing:
            if ino is None:
                raise FsError(errno.ENOENT, _shown(path))
            is_dir = st.S_ISDIR(self.fs.inode(ino).mode)
            raise FsError(errno.EISDIR if is_dir else errno.ENOTDIR, _shown(path))
        self.fs.unlink(parent, name)

    def link(self, src, dst, flags=0, fd=None):
        """linkat(2) in do_linkat's order: the old name looked up, then the new one, then
        may_linkat (protected hard links) and vfs_link's checks. fd: AT_EMPTY_PATH with an
        empty old name, the descriptor's inode (an O_TMPFILE made without O_EXCL can be
        given a name; any other inode without links cannot)."""
        fs = self.fs
        if flags & ~(_AT_SYMLINK_FOLLOW | _AT_EMPTY_PATH):
            raise FsError(errno.EINVAL, f"unknown linkat flags {flags:#x}")
        cred = current_cred()
        what = _shown(src) if fd is None else f"fd {fd}"
        if fd is not None:
            if not perms.capable(cred, perms.CAP_DAC_READ_SEARCH):
                raise FsError(errno.ENOENT, "an empty name needs CAP_DAC_READ_SEARCH")
            ino = self._file(fd).ino
        else:
            ino = fs.resolve(src, cred, follow=bool(flags & _AT_SYMLINK_FOLLOW))
        parent, p = fs.walk_parent(dst, cred)
        if p.kind != paths.NORM or fs.entry(parent, p.last) is not None:
            raise FsError(errno.EEXIST, _shown(dst))
        if p.trailing:
            raise FsError(errno.ENOENT, f"{_shown(dst)}: a new name with a trailing slash")
        fs.check_writable()
        inode = fs.inode(ino)
        if _hardlinks_protected() and not perms.owner_or_fowner(cred, inode) and not _safe_link_source(cred, inode, fs.access_acl(ino)):
            raise FsError(errno.EPERM, f"{what}: not the owner, and not a safe source (protected_hardlinks)")
        if fs.inode(parent).nlink == 0:                     # may_create: a removed directory
            raise FsError(errno.ENOENT, f"{_shown(dst)}: directory was removed")
        self._may(cred, fs.inode(parent), perms.MAY_WRITE | perms.MAY_EXEC, dst)
        if inode.flags & (uapi.FS_APPEND_FL | uapi.FS_IMMUTABLE_FL):
            raise FsError(errno.EPERM, f"{what}: append-only or immutable")
        if st.S_ISDIR(inode.mode):
            raise FsError(errno.EPERM, f"{what}: a directory")
        fs.link(ino, parent, p.last, linkable=ino in self._linkable)
        self._linkable.discard(ino)

    def _may(self, cred, inode, mask, path=None):
        """perms.check with the inode's access ACL."""
        perms.check(cred, inode, mask, path, self.fs.access_acl(inode.ino))

    # ---- extended attributes: path, or fd when path is None --------------------------------------
    def _xattr_target(self, path, fd, follow):
        cred = current_cred()
        ino = self._file(fd).ino if path is None else self.fs.resolve(path, cred, follow)
        return cred, ino, self.fs.inode(ino)

    def getxattr(self, path, name, fd=None, follow=True):
        """The value (bytes) of one attribute, in getxattr(2)'s order of checks (follow
        False: lgetxattr)."""
        name = xattr.checked_name(name)
        cred, ino, inode = self._xattr_target(path, fd, follow)
        xattr.permission(cred, inode, name, perms.MAY_READ, self.fs.access_acl)
        xattr.handler(name)
        if name in (acls.ACCESS, acls.DEFAULT):
            return xattr.get_acl(self.fs, inode, name)
        value = self.fs.xattrs(ino).get(name)
        if value is None:
            raise FsError(errno.ENODATA, f"no attribute {name.decode(errors='replace')!r}")
        return value

    def setxattr(self, path, name, value, flags=0, fd=None, follow=True):
        """setxattr(2): flags XATTR_CREATE or XATTR_REPLACE; value None removes
        (removexattr(2), whose checks are the same but for the flags and the size)."""
        if flags & ~(xattr.XATTR_CREATE | xattr.XATTR_REPLACE):
            raise FsError(errno.EINVAL, f"unknown xattr flags {flags:#x}")
        name = xattr.checked_name(name)
        if value is not None and len(value) > xattr.XATTR_SIZE_MAX:
            raise FsError(errno.E2BIG, f"a value of {len(value)} bytes")
        cred, ino, inode = self._xattr_target(path, fd, follow)
        self.fs.check_writable()
        xattr.permission(cred, inode, name, perms.MAY_WRITE, self.fs.access_acl)
        xattr.security_write(cred, name)
        xattr.handler(name)
        if name in (acls.ACCESS, acls.DEFAULT):        # flags play no part, as in the kernel
            return xattr.set_acl(self.fs, cred, inode, name, None if value is None else bytes(value))
        self.fs.set_xattr(ino, name, None if value is None else bytes(value),
                          create=bool(flags & xattr.XATTR_CREATE), replace=bool(flags & xattr.XATTR_REPLACE))

    def removexattr(self, path, name, fd=None, follow=True):
        self.setxattr(path, name, None, 0, fd, follow)

    def listxattr(self, path, fd=None, follow=True):
        """The names the caller may see (trusted.* only with CAP_SYS_ADMIN), as bytes, in the
        order they were first set: ext4's order for the attributes that fit in its inode
        (it lists those that did not from its block, sorted)."""
        cred, ino, _ = self._xattr_target(path, fd, follow)
        trusted = perms.capable(cred, perms.CAP_SYS_ADMIN)
        return [name for name in self.fs.xattrs(ino) if trusted or not name.startswith(b"trusted.")]

    def rename(self, src, dst, flags=0):
        """renameat2(2): its flag checks first (do_renameat2's order), then the names'.
        RENAME_WHITEOUT leaves a whiteout (a character device 0:0, which needs no CAP_MKNOD
        since Linux 5.8) at the old name, as ext4 does for overlayfs."""
        if flags & ~(uapi.RENAME_NOREPLACE | uapi.RENAME_EXCHANGE | uapi.RENAME_WHITEOUT):
            raise FsError(errno.EINVAL, f"unknown rename flags {flags:#x}")
        if flags & (uapi.RENAME_NOREPLACE | uapi.RENAME_WHITEOUT) and flags & uapi.RENAME_EXCHANGE:
            raise FsError(errno.EINVAL, "RENAME_EXCHANGE with NOREPLACE or WHITEOUT")
        cred = current_cred()
        sp, sn, sparsed = self._name(src, cred, _RENAME_REFUSED)
        dp, dn, dparsed = self._name(dst, cred, _RENAME_REFUSED)
        whiteout = None
        if flags & uapi.RENAME_WHITEOUT:
            whiteout = (cred.uid, self._owner(sp, st.S_IFCHR, cred)[1])
        ino = self._may_delete(cred, sp, sn, src)
        target = self._may_delete(cred, dp, dn, dst)
        if ino is not None:
            inode = self.fs.inode(ino)
            is_dir = st.S_ISDIR(inode.mode)
            exchanged_dir = target is not None and flags & uapi.RENAME_EXCHANGE \
                and st.S_ISDIR(self.fs.inode(target).mode)
            if (sparsed.trailing or dparsed.trailing) and not is_dir and not exchanged_dir:
                raise FsError(errno.ENOTDIR, f"{_shown(src)}: not a directory")
            if is_dir and sp != dp and target != ino:       # its ".." changes: it must be writable
                self._may(cred, inode, perms.MAY_WRITE, src)
        self.fs.rename(sp, sn, dp, dn, noreplace=bool(flags & uapi.RENAME_NOREPLACE),
                       exchange=bool(flags & uapi.RENAME_EXCHANGE), whiteout=whiteout)

    def readdir_fd(self, fd):
        """getdents of a directory descriptor: (name, ino, d_type), "." and ".." first."""
        of = self._file(fd)
        if not of.is_dir:
            raise FsError(errno.ENOTDIR, f"fd {fd} is not a directory")
        fs = self.fs
        out = [(".", of.ino, 4), ("..", fs.parent_of(of.ino), 4)]     # DT_DIR
        inodes = fs.t.inodes
        for name, ino in fs.readdir(of.ino):
            out.append((name, ino, st.S_IFMT(inodes[ino][0]) >> 12))   # d_type is the file type
        return out

    def dir_version(self, fd):
        """(inode, metadata position) of a directory descriptor: its listing is the same as
        long as both are, since every change of an entry moves the shared log."""
        of = self._file(fd)
        if not of.is_dir:
            raise FsError(errno.ENOTDIR, f"fd {fd} is not a directory")
        self.fs.meta.fresh()
        return of.ino, self.fs.meta.snapshot()

    def listdir(self, path="/"):
        """The names in a directory (opendir's read permission checked), as os.listdir:
        bytes names for a bytes path."""
        cred = current_cred()
        ino = self.fs.resolve(path, cred)
        inode = self.fs.inode(ino)
        if st.S_ISDIR(inode.mode):
            self._may(cred, inode, perms.MAY_READ, path)
        names = [name for name, _ in self.fs.readdir(ino)]
        return [os.fsencode(n) for n in names] if isinstance(path, bytes) else names

    def getflags(self, fd):
        """FS_IOC_GETFLAGS: the stored flags, and ext4's extent flag, which every file has."""
        return self.fs.inode(self._file(fd).ino).flags | uapi.FS_EXTENT_FL

    def setflags(self, fd, flags):
        """FS_IOC_SETFLAGS: vfs_fileattr_set's checks, then ext4's (_set_flags)."""
        inode = self.fs.inode(self._file(fd).ino)
        self._may_set_flags(inode, flags)
        self._set_flags(inode, flags)

    def _may_set_flags(self, inode, flags):
        """The generic checks of a change of inode flags: the owner or CAP_FOWNER, and
        CAP_LINUX_IMMUTABLE to change append-only or immutable."""
        if not perms.owner_or_fowner(current_cred(), inode):
            raise FsError(errno.EPERM, "not the owner")
        if (flags ^ inode.flags) & (uapi.FS_APPEND_FL | uapi.FS_IMMUTABLE_FL) and not capable(CAP_LINUX_IMMUTABLE):
            raise FsError(errno.EPERM, "CAP_LINUX_IMMUTABLE needed")

    def _set_flags(self, inode, flags, projid=0):
        """ext4's part: an immutable file may only lose that flag; project ids are refused
        after the flags are set, as ext4 without its project feature does. Kept: append-only,
        immutable (the calls honour them), no-atime (no access time is ever updated here) and
        no-dump (for dump programs to read); the extent flag is always there; other flags
        are refused."""
        keep = uapi.FS_APPEND_FL | uapi.FS_IMMUTABLE_FL | uapi.FS_NOATIME_FL | uapi.FS_NODUMP_FL
        if flags & ~(keep | uapi.FS_EXTENT_FL):
            raise FsError(errno.EOPNOTSUPP, f"inode flags {flags & ~(keep | uapi.FS_EXTENT_FL):#x}")
        if inode.flags & flags & uapi.FS_IMMUTABLE_FL and (inode.flags ^ flags) & keep & ~uapi.FS_IMMUTABLE_FL:
            raise FsError(errno.EPERM, "an immutable file keeps its other flags")
        self.fs.set_flags(inode.ino, flags & keep)
        if projid:
            raise FsError(errno.EOPNOTSUPP, "no project ids")

    def getxattr_fs(self, fd):
        """FS_IOC_FSGETXATTR: the flags both interfaces name, as xflags; no extent size
        hints, extent count or project id (ext4 fills none of them)."""
        flags = self.getflags(fd)
        return sum(x for f, x in uapi.FS_COMMON_XFLAGS.items() if flags & f), 0, 0, 0, 0

    def setxattr_fs(self, fd, xflags, extsize, nextents, projid, cowextsize):
        """FS_IOC_FSSETXATTR: the common xflags become inode flags beside those only the
        other interface names; the generic checks, those of the hint flags, then ext4's."""
        inode = self.fs.inode(self._file(fd).ino)
        common = sum(uapi.FS_COMMON_XFLAGS)
        flags = (self.getflags(fd) & ~common) | sum(f for f, x in uapi.FS_COMMON_XFLAGS.items() if xflags & x)
        self._may_set_flags(inode, flags)
        is_reg, is_dir = st.S_ISREG(inode.mode), st.S_ISDIR(inode.mode)
        if (xflags & (uapi.FS_XFLAG_EXTSIZE | uapi.FS_XFLAG_COWEXTSIZE) and not is_reg
                or xflags & uapi.FS_XFLAG_EXTSZINHERIT and not is_dir
                or xflags & uapi.FS_XFLAG_DAX and not (is_reg or is_dir)):
            raise FsError(errno.EINVAL, f"xflags {xflags:#x} for this file type")
        if flags & uapi.FS_PROJINHERIT_FL and not is_dir:
            raise FsError(errno.EOPNOTSUPP, "project inheritance is for directories")
        self._set_flags(inode, flags, projid)

    def unread(self, fd):
        """FIONREAD on a regular file: the bytes from the position to the end."""
        of = self._file(fd)
        return max(0, self.fs.inode(of.ino).size - of.pos)

    def chattr(self, path, flags):
        """FS_IOC_SETFLAGS for the two flags the fallocate checks read (append-only, immutable)."""
        if not capable(CAP_LINUX_IMMUTABLE):
            raise FsError(errno.EPERM, "CAP_LINUX_IMMUTABLE needed")
        self.fs.set_flags(self.fs.resolve(path, current_cred()), flags & (uapi.FS_APPEND_FL | uapi.FS_IMMUTABLE_FL))

    def statfs(self):
        fs = self.fs
        fs.meta.fresh()
        free = fs.free.free_blocks() + fs.free.pending_blocks() + fs.free.prealloc_blocks()
        files = len(fs.t.inodes)
        return {"f_bsize": fs.bs, "f_frsize": fs.bs, "f_blocks": fs.nblocks, "f_bfree": free,
                # inodes are rows, not a table on the device: at most one per block
                "f_bavail": free, "f_files": files + fs.nblocks, "f_ffree": fs.nblocks,
                "f_namemax": 255, "f_granule": fs.dev.granule,
                # mount flags (statvfs's ST_*): reads never update atime here
                "f_flag": os.ST_NOATIME | (os.ST_RDONLY if fs.meta.readonly else 0)}

    # ---- allocation --------------------------------------------------------------------------
    def fallocate(self, fd, mode, offset, length):
        return self.fallocate2(fd, mode, offset, length, NO_HINT)

    def fallocate3(self, fd, how, size):
        """fallocate3(fd, &how, size): the struct form (pyfalloc.syscalls.abi), then fallocate2."""
        mode, offset, length, physical = abi.decode_how(how, size)
        return self.fallocate2(fd, mode, offset, length, physical)

    def fadvise(self, fd, offset, length, advice):
        """posix_fadvise: fadvise64's checks; WILLNEED reads the file's bytes ahead into the
        page cache (the host's, over the image), as generic_fadvise does. DONTNEED is not
        passed on: on the image it would write back the image's dirty pages to the disk,
        where a kernel filesystem's write-back goes to its device (a loop device's file
        stays in the host's cache); the access-pattern hints change nothing here."""
        of = self._file(fd)
        if length < 0 or advice not in range(os.POSIX_FADV_NORMAL, os.POSIX_FADV_NOREUSE + 1):
            raise FsError(errno.EINVAL, f"advice {advice} or length {length}")
        if advice == os.POSIX_FADV_WILLNEED:
            start = max(offset, 0)
            end = LOFF_MAX if length == 0 or offset + length > LOFF_MAX else offset + length   # 0: to the end
            if start < end:
                self.fs.read_ahead(of.ino, start, end)

    def fallocate2(self, fd, mode, offset, length, physical=NO_HINT):
        """fallocate2(2) of the RFC: vfs_fallocate's checks in order, then the filesystem's."""
        fs = self.fs
        check_fallocate_mode(mode, offset, length)                           # 1-3
        of = self._file(fd)
        if not of.writable:                                                   # 4
            raise FsError(errno.EBADF, "fd not open for writing")
        inode = fs.inode(of.ino)
        if inode.flags & _APPEND_OR_IMMUTABLE:                                # 5
            if inode.flags & uapi.FS_IMMUTABLE_FL:
                raise FsError(errno.EPERM, "immutable file")
            if mode & ~FALLOC_FL_KEEP_SIZE:
                raise FsError(errno.EPERM, "append-only file")
        physical &= NO_HINT
        if physical != NO_HINT and not capable(CAP_FOWNER):                   # 7
            raise FsError(errno.EPERM, "a physical hint needs CAP_FOWNER")
        kind = st.S_IFMT(inode.mode)                                          # 8
        if kind != st.S_IFREG:
            raise FsError(_FALLOCATE_NOT_REGULAR.get(kind, errno.ENODEV))
        if offset + length > fs.max_bytes or offset + length > LOFF_MAX:      # 9
            raise FsError(errno.EFBIG, "offset + len past the maximum file size")
        op = mode & FALLOC_FL_MODE_MASK                                       # 10: the filesystem
        # a shared mapping's copy follows: the range re-read where bytes changed, after a
        # write-back where they move
        if op in _MOVES_BYTES:
            around = fs.mapped.changing(of.ino, offset, None, write_back=True)
        elif op in _CHANGES_BYTES:
            around = fs.mapped.changing(of.ino, offset, offset + length)
        else:
            around = fs.mapped.changing(of.ino)
        with around:
            return self._fallocate_fs(of, mode, op, offset, length, physical, inode.size)

    def _fallocate_fs(self, of, mode, op, offset, length, physical, size):
        fs = self.fs
        keep = bool(mode & FALLOC_FL_KEEP_SIZE)
        if physical != NO_HINT:
            if mode & ~FALLOC_FL_KEEP_SIZE:
                raise FsError(errno.EOPNOTSUPP, "a physical hint goes only with mode 0 or KEEP_SIZE")
            if physical % fs.bs:
                raise FsError(errno.EINVAL, f"physical {physical} is not a multiple of the block size")
            first = physical // fs.bs
            nblocks = ceil_div(offset + length, fs.bs) - offset // fs.bs
            if first + nblocks > fs.nblocks:
                raise FsError(errno.EINVAL, "physical range outside the device")
            self._check_grows(keep, offset + length, size)
            return fs.allocate_range(of.ino, offset, length, keep, physical)
        if op == FALLOC_FL_PUNCH_HOLE:
            return fs.punch_hole(of.ino, offset, length)
        if op in (FALLOC_FL_COLLAPSE_RANGE, FALLOC_FL_INSERT_RANGE):
            if (offset | length) % fs.bs:
                raise FsError(errno.EINVAL, "range not aligned to the block size")
            if op == FALLOC_FL_COLLAPSE_RANGE:
                return fs.collapse_range(of.ino, offset, length)
            return fs.insert_range(of.ino, offset, length)
        self._check_grows(keep, offset + length, size)
        if op == FALLOC_FL_ZERO_RANGE:
            return fs.zero_range(of.ino, offset, length, keep)
        if op == FALLOC_FL_WRITE_ZEROES:
            return fs.zero_range(of.ino, offset, length, False, write_zeroes=True)
        return fs.allocate_range(of.ino, offset, length, keep)      # ALLOCATE, UNSHARE (no shared blocks)

    @staticmethod
    def _check_grows(keep, end, size):
        """ext4's fallocate and zero range check the size they would set, as a truncate does"""
        if not keep:
            limits.check_new_size(end, size)

    def posix_fallocate(self, fd, offset, length):
        """posix_fallocate(3): returns the error number instead of raising (glibc's contract)."""
        try:
            self.fallocate(fd, 0, offset, length)
            return 0
        except FsError as e:
            return e.errno

    def allocate(self, fd, mode, goal, length):
        """Jan Kara's allocate(fd, mode, goal, len) at the file position; returns bytes allocated."""
        fs = self.fs
        of = self._file(fd)
        if not of.writable:
            raise FsError(errno.EBADF, "fd not open for writing")
        if mode & ~(uapi.ALLOC_FIXED_START | uapi.ALLOC_FIXED_LEN | uapi.ALLOC_CONTIGUOUS):
            raise FsError(errno.EINVAL, f"unknown allocate mode bits {mode:#x}")
        if length <= 0 or goal < 0 or (of.pos | length | goal) % fs.bs:
            raise FsError(errno.EINVAL, "position, goal and len must be positive multiples of the block size")
        if goal // fs.bs >= fs.nblocks:
            raise FsError(errno.EINVAL, "goal outside the device")
        if mode & uapi.ALLOC_FIXED_START and not capable(CAP_FOWNER):
            raise FsError(errno.EPERM, "a fixed start needs CAP_FOWNER")
        if not st.S_ISREG(fs.inode(of.ino).mode):
            raise FsError(errno.EISDIR)
        if of.pos + length > fs.max_bytes:
            raise FsError(errno.EFBIG)
        with fs.mapped.changing(of.ino):
            return fs.allocate_kara(of.ino, of.pos, length, goal, mode)

    # ---- relocation -----------------------------------------------------------------------------
    def move_extent(self, fd, donor_fd, orig_start, donor_start, length):
        """EXT4_IOC_MOVE_EXT, units in blocks: returns moved_len. An FsError raised part way
        carries .moved_len, as the ioctl writes it back even on error."""
        try:
            of = self._file(fd)
            if not (of.readable and of.writable):
                raise FsError(errno.EBADF, "orig not open for reading and writing")
            donor = self._known(donor_fd)
            if donor is None:
                _foreign_donor(donor_fd)
            if not donor.writable:
                raise FsError(errno.EBADF, "donor not open for writing")
            if donor.ino == of.ino:
                raise FsError(errno.EINVAL, "orig and donor are the same inode")
            # both files' bytes as the image holds them; the donor's change
            with self.fs.mapped.changing(of.ino, write_back=True), \
                    self.fs.mapped.changing(donor.ino, 0, None, write_back=True):
                return move.move_extent(self.fs, of.ino, donor.ino, orig_start & move.U64,
                                        donor_start & move.U64, length & move.U64)
        except FsError as e:
            if not hasattr(e, "moved_len"):
                e.moved_len = 0
            raise

    # ---- placement ------------------------------------------------------------------------------
    def fiemap(self, fd, start=0, length=None):
        """FS_IOC_FIEMAP: extents overlapping [start, start+length) in bytes, ext4's flags."""
        fs = self.fs
        ino = self._file(fd).ino
        bs = fs.bs
        end = LOFF_MAX if length is None else min(start + length, LOFF_MAX)
        fs.meta.fresh()
        found = fs.extmap.overlapping(ino, start // bs, ceil_div(end, bs)) if end > start else []
        last = fs.extmap.last(ino)
        out = []
        for e in found:
            flags = uapi.FIEMAP_EXTENT_UNWRITTEN if e.unwritten else 0
            if last is not None and e.lblk == last.lblk:
                flags |= uapi.FIEMAP_EXTENT_LAST
            out.append(FiemapExtent(e.lblk * bs, e.pblk * bs, e.len * bs, flags))
        return out

