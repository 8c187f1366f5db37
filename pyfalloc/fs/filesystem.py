"""Files and directories over the extent maps: the filesystem proper.

Data of a file lives in the image at the physical blocks its extents name. New blocks are
mapped unwritten first and turned written only after their data (zero-padded to whole
blocks) is in the image, and a commit flushes the image before it journals, so neither a
reader nor a crash shows another file's old data. Every change of an inode's mapping
happens under that inode's exclusive lock, across processes: relocation builds on this.
"""
import errno
import os
import stat as st
import time

from pyfalloc.alloc.freespace import FreeSpace
from pyfalloc.alloc.policy import Allocator
from pyfalloc.errors import FsError, LeavesImage
from pyfalloc.fs import acl as acls
from pyfalloc.fs import paths, perms
from pyfalloc.fs.extents import LOOK_UP, ExtentMap
from pyfalloc.fs.locks import InodeLocks
from pyfalloc.fs.mapped import SharedMappings
from pyfalloc.records import record
from pyfalloc.store import Handles
from pyfalloc.units import ceil_div

ROOT_INO = 2
FIRST_INO = 12                  # as ext4: 2 is the root, 11 lost+found, user inodes follow
EXT_MAX_BLOCKS = (1 << 32) - 1  # ext4's last logical block + 1
LINK_MAX = 65000                # ext4's EXT4_LINK_MAX: links of one inode
MAXSYMLINKS = 40                # namei: symbolic links one look-up follows


def _xattr_entries(attrs):
    """The room attributes' entries take in ext4, wherever they are: per entry a 16-byte
    head and the name (past its namespace prefix, which the entry codes as one byte) and
    value, each padded to 4 bytes, then a 4-byte end."""
    def pad(n):
        return (n + 3) & ~3
    return sum(16 + pad(len(name) - len(name.split(b".", 1)[0]) - 1) + pad(len(value))
               for name, value in attrs.items()) + 4


def _xattr_bytes(attrs):
    """The room attributes take in ext4's attribute block: its 32-byte header, the entries."""
    return 32 + _xattr_entries(attrs)


# ext4's 256-byte inode keeps attributes past the 128 bytes of the old inode and the 32 of
# i_extra_isize, after a 4-byte magic; what does not fit there takes a block of its own
_XATTR_IN_INODE = 256 - 128 - 32 - 4
FAST_SYMLINK_MAX = 59       # ext4 keeps a target this long or shorter in the inode's i_block


def _dir_steps(p):
    """The names a parsed path's directory is reached by ("." last, so the parent is
    checked as a searchable directory)."""
    return p.dirs if p.kind == paths.ROOT else p.dirs + ["."]


def _last_step(p):
    """What follows the directory: the last name (a trailing slash kept), if any."""
    return [p.last + "/" if p.trailing else p.last] if p.last else []


Inode = record("Inode", "ino mode uid gid size nlink flags atime mtime ctime grp")
_FIELD = {name: i - 1 for i, name in enumerate(Inode._fields) if i}
_SIZE, _MTIME, _CTIME = _FIELD["size"], _FIELD["mtime"], _FIELD["ctime"]


_CLOCK_REALTIME_COARSE = 5          # <linux/time.h>; the time module does not name it


def _shown(path):
    return paths.printable(os.fsdecode(path))


def clock():
    """File times come from the coarse clock, as the kernel's current_time()."""
    return time.clock_gettime(_CLOCK_REALTIME_COARSE)


class FileSystem:
    def __init__(self, device, store, policy=None, mount=paths.DEFAULT_MOUNT):
        self.dev = device
        self.meta = store
        self.bs = device.block_size
        self.nblocks = device.nblocks
        self.group_blocks = device.group_size // device.block_size
        self.ngroups = ceil_div(self.nblocks, self.group_blocks)
        # ext4's s_maxbytes for extent-mapped files: 2^32 - 1 logical blocks
        self.max_bytes = EXT_MAX_BLOCKS * self.bs
        self.free = FreeSpace(store, self.group_blocks, self.nblocks)
        self.extmap = ExtentMap(store)
        self.alloc = Allocator(self.free, self.extmap, self.bs, policy)
        # data locks: OFD locks on the image file, else on the shared log, which every
        # process of this host using the volume has open (the shim's C paths take none:
        # gates.py); inode locks: mutexes in the shared log
        self.locks = InodeLocks(device.path if device.local else store.log.path, store.log.gates,
                                store.log.inode_locks, after_acquire=store.fresh, readonly=store.readonly)
        self.handles = Handles(store.log.path)
        # where the host sees the image (the shim's prefix): an absolute link target under
        # it is a path of the image
        self.mount = mount
        self.mapped = SharedMappings(self)
        store.on_leave = self.mapped.leave

    @property
    def t(self):
        return self.meta.t

    @property
    def readonly(self):
        return self.meta.readonly

    def check_writable(self):
        if self.meta.readonly:
            raise FsError(errno.EROFS, "the volume is open read-only")

    def close(self):
        self.handles.close()
        self.locks.close()
        self.meta.close()
        self.dev.close()

    # ---- creation --------------------------------------------------------------------
    @classmethod
    def format(cls, device, store):
        fs = cls(device, store)
        now = clock()
        with store.tx():
            store.put("i", ROOT_INO, (st.S_IFDIR | 0o755, os.getuid(), os.getgid(), fs.bs, 2, 0, now, now, now, 0))
            fs.free.put_back(1, fs.nblocks - 1)      # block 0 holds the superblock
        return fs

    # ---- inodes ------------------------------------------------------------------------
    def inode(self, ino, local=False):
        """local: the caller holds the inode's lock and reads nothing else, so only a
        change of this inode needs catching up with (Store.fresh)."""
        self.meta.fresh((ino,) if local else None)
        return self._inode_held(ino)

    def _inode_held(self, ino):
        """inode() without catching up: under a lock whose taking did (locks.inode,
        locks.exclusive without local)."""
        v = self.meta.t.inodes.get(ino)
        if v is None:
            raise FsError(errno.ENOENT, f"inode {ino} does not exist")
        return Inode(ino, *v)

    def known_size(self, ino):
        """The size as these tables last saw it, without catching up (None: no such inode):
        a hint, for a caller whom a stale answer only sends the slower way."""
        v = self.meta.t.inodes.get(ino)
        return None if v is None else v[_SIZE]

    def _set(self, ino, **fields):
        v = list(self.meta.t.inodes[ino])
        for k, x in fields.items():
            v[_FIELD[k]] = x
        self.meta.put("i", ino, tuple(v))

    def _touch(self, ino, size=None):
        """mtime and ctime now (every change of a file's data), and the size if given."""
        v = list(self.meta.t.inodes[ino])
        v[_MTIME] = v[_CTIME] = clock()
        if size is not None:
            v[_SIZE] = size
        self.meta.put("i", ino, tuple(v))

    def blocks_held(self, inode):
        """st_blocks as ext4 counts it, in 512-byte units: a directory's entries' blocks, a
        file's mapped blocks, a symbolic link's block when its target is too long for the
        inode, and the attributes' block when they do not all fit in the inode."""
        per = self.bs // 512
        if st.S_ISDIR(inode.mode):
            blocks = inode.size // 512
        elif st.S_ISLNK(inode.mode):
            blocks = per if inode.size > FAST_SYMLINK_MAX else 0
        else:
            blocks = self.extmap.count_blocks(inode.ino) * per
        attrs = self.meta.t.xattrs.get(inode.ino)
        if attrs and _xattr_entries(attrs) > _XATTR_IN_INODE:
            blocks += per
        return blocks

    def setattr(self, ino, mode=None, uid=None, gid=None, atime=None, mtime=None):
        """chmod, chown and utimensat: what is given changes, ctime becomes now; a new mode
        also goes into the access ACL, if the file has one (posix_acl_chmod)."""
        with self.meta.tx():
            inode = self.inode(ino)
            fields = {"ctime": clock()}
            if mode is not None:
                fields["mode"] = st.S_IFMT(inode.mode) | (mode & 0o7777)
                acl = self.access_acl(ino)
                if acl is not None:
                    self.put_acl(ino, acls.ACCESS, acls.chmod(acl, mode))
            for key, value in (("uid", uid), ("gid", gid), ("atime", atime), ("mtime", mtime)):
                if value is not None:
                    fields[key] = value
            self._set(ino, **fields)

    def set_flags(self, ino, flags):
        with self.meta.tx():
            self.inode(ino)
            self._set(ino, flags=flags, ctime=clock())

    # ---- names ---------------------------------------------------------------------------
    def walk_parent(self, path, cred=None):
        """(parent, parsed path): every component but the last looked up, symbolic links
        among them followed, each directory on the way searchable, the parent too (cred
        None: no permission checks)."""
        parent, p, _ = self._walk_parent(path, cred)
        return parent, p

    def _walk_parent(self, path, cred):
        p = paths.parse(path)
        self.meta.fresh()
        budget = [0]                    # links followed by this look-up, as nd->total_link_count
        try:
            return self._walk(ROOT_INO, _dir_steps(p), cred, path, budget), p, budget
        except LeavesImage as e:
            raise e.then(*_last_step(p)) from None

    def _walk(self, ino, steps, cred, path, budget, in_link=False):
        """The directory that steps (names, "." and "..") lead to from directory ino: each
        one searched must be a searchable directory, and a link among them is followed.
        in_link: steps of a link's target, whose ".." at the root leaves the image for the
        host directory that holds the mount prefix, as ".." leaves a mounted filesystem."""
        t = self.meta.t
        inodes, dirs, links = t.inodes, t.dirs, t.symlinks
        for i, part in enumerate(steps):
            v = inodes.get(ino)
            if v is None:
                raise FsError(errno.ENOENT, _shown(path))
            if not st.S_ISDIR(v[0]):
                raise FsError(errno.ENOTDIR, f"{_shown(path)}: a component before the last is not a directory")
            if cred is not None and not perms.searchable(cred, v[0], v[1], v[2], self.access_acl(ino)):
                raise FsError(errno.EACCES, f"{_shown(path)}: search permission denied")
            if part == ".":
                continue
            if part == "..":
                if in_link and ino == ROOT_INO:
                    raise LeavesImage(self._above_mount()).then(*steps[i + 1:])
                ino = self.parent_of(ino)
                continue
            child = dirs.get(ino, {}).get(part)
            if child is None:
                raise FsError(errno.ENOENT, _shown(path))
            if links and child in links:
                try:
                    child = self._follow(ino, child, cred, path, budget)[2]
                except LeavesImage as e:
                    raise e.then(*steps[i + 1:]) from None
                if child is None:
                    raise FsError(errno.ENOENT, f"{_shown(path)}: a symbolic link names nothing")
            ino = child
        return ino

    def _follow(self, parent, link, cred, path, budget):
        """Where symbolic link `link` in directory parent leads, links on the way followed:
        (directory, name, inode), the inode None when the name is missing (its directory and
        name then say where an O_CREAT would make it), directory and name None for a target
        whose last component is ".", ".." or the root. A relative target starts at parent,
        an absolute one at the root of the host, which holds the image at the mount prefix:
        a target elsewhere on the host is LeavesImage."""
        budget[0] += 1
        if budget[0] > MAXSYMLINKS:
            raise FsError(errno.ELOOP, f"{_shown(path)}: more than {MAXSYMLINKS} symbolic links")
        target = self.meta.t.symlinks[link]
        start = parent
        if target.startswith("/"):
            inside = self.inside_mount(target)
            if inside is None:
                raise LeavesImage(target)
            target, start = inside, ROOT_INO
        p = paths.parse(target)
        try:
            d = self._walk(start, _dir_steps(p), cred, path, budget, True)
        except LeavesImage as e:
            raise e.then(*_last_step(p)) from None
        if p.kind == paths.ROOT:
            return None, None, ROOT_INO
        if p.kind == paths.DOTDOT and d == ROOT_INO:
            raise LeavesImage(self._above_mount())
        if p.kind != paths.NORM:
            return None, None, self.parent_of(d) if p.kind == paths.DOTDOT else d
        child = self.meta.t.dirs.get(d, {}).get(p.last)
        if child is not None and child in self.meta.t.symlinks:
            return self._follow(d, child, cred, path, budget)
        if child is not None and p.trailing and not st.S_ISDIR(self.meta.t.inodes[child][0]):
            raise FsError(errno.ENOTDIR, f"{_shown(path)}: not a directory")
        return d, p.last, child

    def _above_mount(self):
        return os.path.dirname(self.mount.rstrip("/")) or "/"

    def inside_mount(self, target):
        """An absolute link target as a path of the image, or None when it leaves it."""
        m = self.mount.rstrip("/")
        if target == m or target.startswith(m + "/"):
            return target[len(m):] or "/"
        return None

    def resolve(self, path, cred=None, follow=True):
        """The inode path names. follow: a symbolic link as the last component is followed
        (stat, open); else the link itself (lstat, O_NOFOLLOW). A trailing slash follows."""
        parent, p, budget = self._walk_parent(path, cred)
        if p.kind == paths.NORM:
            ino = self.meta.t.dirs.get(parent, {}).get(p.last)
            if ino is None:
                raise FsError(errno.ENOENT, _shown(path))
            if (follow or p.trailing) and ino in self.meta.t.symlinks:
                try:
                    ino = self._follow(parent, ino, cred, path, budget)[2]
                except LeavesImage as e:
                    raise e.then("") if p.trailing else e from None
                if ino is None:
                    raise FsError(errno.ENOENT, f"{_shown(path)}: a symbolic link names nothing")
        else:
            ino = self.parent_of(parent) if p.kind == paths.DOTDOT else parent
        if p.trailing and not st.S_ISDIR(self.inode(ino).mode):
            raise FsError(errno.ENOTDIR, f"{_shown(path)}: not a directory")
        return ino

    def real_path(self, path, cred=None):
        """path's own name: a directory's from its entries up to the root, a file's the name
        its last link led to (a file with hard links has several; this is the one asked)."""
        ino = self.resolve(path, cred)
        if st.S_ISDIR(self.inode(ino).mode):
            return self.path_of(ino)
        parent, p = self.walk_parent(path, cred)
        name, link = p.last, self.entry(parent, p.last)
        if link in self.meta.t.symlinks:
            parent, name, _ = self.follow_entry(parent, link, cred, path)
        return self.path_of(parent).rstrip("/") + "/" + name

    def follow_entry(self, parent, link, cred, path):
        """_follow with a budget of its own: open's O_CREAT through a link"""
        return self._follow(parent, link, cred, path, [0])

    def entry(self, parent, name):
        return self.meta.t.dirs.get(parent, {}).get(name)

    def parent_of(self, ino):
        """The directory holding ino's entry (the root is its own)."""
        key = self.meta.t.parent.get(ino)
        return key[0] if key else ino

    def path_of(self, ino):
        """The path of ino, from the entries that name it up to the root."""
        self.meta.fresh()
        parts = []
        while ino != ROOT_INO:
            key = self.meta.t.parent.get(ino)
            if key is None:
                raise FsError(errno.ENOENT, f"inode {ino} has no name")
            parts.append(key[1])
            ino = key[0]
        return "/" + "/".join(reversed(parts))

    def readdir(self, ino):
        if not st.S_ISDIR(self.inode(ino).mode):
            raise FsError(errno.ENOTDIR, f"inode {ino}")
        return sorted(self.meta.t.dirs.get(ino, {}).items())

    def create(self, parent, name, mode, uid=None, gid=None):
        """A new inode linked at parent/name; with name None an unlinked one (O_TMPFILE),
        which the caller must hold within the same change."""
        now = clock()
        with self.meta.tx() as s:
            pinode = self.inode(parent)
            if name is not None and self.entry(parent, name) is not None:
                raise FsError(errno.EEXIST, name)
            if pinode.nlink == 0:
                raise FsError(errno.ENOENT, "directory was removed")
            is_dir = st.S_ISDIR(mode)
            nlink = 0 if name is None else 2 if is_dir else 1
            ino = max(FIRST_INO, s.t.next_ino)
            # spread directories over the groups, as ext4's Orlov allocator does for new dirs
            grp = (ino * 2654435761) % self.ngroups if is_dir and name is not None else pinode.grp
            s.put("i", ino, (mode, os.getuid() if uid is None else uid, os.getgid() if gid is None else gid,
                             self.bs if is_dir else 0, nlink, 0, now, now, now, grp))
            if name is None:
                return ino
            if is_dir:
                self._set(parent, nlink=pinode.nlink + 1)
            s.put("d", (parent, name), ino)
            self._touch(parent)
        return ino

    def symlink(self, parent, name, target, uid=None, gid=None):
        """A symbolic link parent/name to target, made and named in one change."""
        with self.meta.tx() as s:
            ino = self.create(parent, name, st.S_IFLNK | 0o777, uid, gid)
            self._set(ino, size=len(os.fsencode(target)))
            s.put("l", ino, target)
        return ino

    def mknod(self, parent, name, mode, rdev, uid=None, gid=None):
        """A FIFO, socket or device node parent/name (its number in the "r" table), in one
        change."""
        with self.meta.tx() as s:
            ino = self.create(parent, name, mode, uid, gid)
            if rdev:
                s.put("r", ino, rdev)
        return ino

    def fifo_path(self, ino):
        """The host FIFO that stands for FIFO ino: the kernel's pipe between its openers, in
        the runtime directory every process of the volume shares."""
        path = self._fifo_name(ino)
        try:
            os.mkfifo(path)
            os.chmod(path, 0o666)       # the image's permissions decide who may open it
        except FileExistsError:
            pass
        return path

    def _fifo_name(self, ino):
        return os.path.join(self.meta.runtime_dir(), f"fifo.{ino}")

    def readlink(self, ino):
        target = self.meta.t.symlinks.get(ino)
        if target is None:
            raise FsError(errno.EINVAL, f"inode {ino} is not a symbolic link")
        return target

    def unlink(self, parent, name, want_dir=False):
        with self.meta.tx() as s:
            ino = self.entry(parent, name)
            if ino is None:
                raise FsError(errno.ENOENT, name)
            inode = self.inode(ino)
            if st.S_ISDIR(inode.mode) and not want_dir:
                raise FsError(errno.EISDIR, name)
            if want_dir:
                if not st.S_ISDIR(inode.mode):
                    raise FsError(errno.ENOTDIR, name)
                if s.t.dirs.get(ino):
                    raise FsError(errno.ENOTEMPTY, name)
            s.put("d", (parent, name), None)
            self._drop_link(inode)
            if want_dir:
                self._set(parent, nlink=self.inode(parent).nlink - 1)
            self._touch(parent)

    def link(self, ino, parent, name, linkable=False):
        """A new entry parent/name for ino. The caller made the path and permission checks;
        the name, the directory and the count are looked at inside the change, as vfs_link
        looks at them under the inode's lock. linkable: an O_TMPFILE that may get a name."""
        with self.meta.tx() as s:
            if self.entry(parent, name) is not None:
                raise FsError(errno.EEXIST, name)
            if self.inode(parent).nlink == 0:
                raise FsError(errno.ENOENT, "directory was removed")
            nlink = self.inode(ino).nlink
            if nlink == 0 and not linkable:
                raise FsError(errno.ENOENT, f"inode {ino} has no name left")
            if nlink >= LINK_MAX:
                raise FsError(errno.EMLINK, f"inode {ino} has {LINK_MAX} links")
            s.put("d", (parent, name), ino)
            self._set(ino, nlink=nlink + 1, ctime=clock())
            self._touch(parent)

    # ---- extended attributes (names and values as bytes) -------------------------------------
    def xattrs(self, ino):
        """{name: value} of ino."""
        self.meta.fresh()
        self.inode(ino)
        return dict(self.meta.t.xattrs.get(ino, {}))

    def set_xattr(self, ino, name, value, create=False, replace=False):
        """Set (value None: remove) one attribute: EEXIST for create over one that exists,
        ENODATA for replace or remove of one that does not; ENOSPC past what ext4 keeps of
        one inode's attributes (one block; ext4 also has a little room in the inode itself, not
        counted here). The change time moves."""
        with self.meta.tx() as s:
            self.inode(ino)
            attrs = s.t.xattrs.get(ino, {})
            if name in attrs and create:
                raise FsError(errno.EEXIST, f"attribute {name!r} exists")
            if name not in attrs and (replace or value is None):
                raise FsError(errno.ENODATA, f"no attribute {name!r}")
            self._put_xattr(ino, name, value)
            self._set(ino, ctime=clock())

    def _put_xattr(self, ino, name, value):
        """Inside a change: one attribute set (None: removed), within ext4's room of one
        block for an inode's attributes (ENOSPC)."""
        if value is not None and _xattr_bytes({**self.meta.t.xattrs.get(ino, {}), name: value}) > self.bs:
            raise FsError(errno.ENOSPC, "no room for the attribute in the inode's block")
        self.meta.put("x", (ino, name), value)

    def access_acl(self, ino, name=acls.ACCESS):
        """ino's access ACL (name: or its default ACL) as entries, or None (most files: one
        look-up). One that does not parse was not written here: EIO, as the kernel answers
        a corrupt one."""
        attrs = self.meta.t.xattrs.get(ino)
        value = attrs.get(name) if attrs else None
        if value is None:
            return None
        try:
            acl = acls.from_xattr(value)
            acls.check(acl or ())
        except FsError as e:
            raise FsError(errno.EIO, f"inode {ino}: corrupt ACL ({e})") from None
        return acl

    def default_acl(self, ino):
        return self.access_acl(ino, acls.DEFAULT)

    def put_acl(self, ino, name, acl):
        """Inside a change: keep (None: drop, if there is one) one of ino's ACLs."""
        if acl is not None or name in self.meta.t.xattrs.get(ino, {}):
            self._put_xattr(ino, name, None if acl is None else acls.to_xattr(acl))

    def set_acl(self, ino, name, acl, mode=None):
        """One of ino's ACLs (None: none kept) and, for the access ACL, the mode that goes
        with it, as one change."""
        with self.meta.tx():
            inode = self.inode(ino)
            self.put_acl(ino, name, acl)
            if mode is None:
                self._set(ino, ctime=clock())
            else:
                self._set(ino, mode=st.S_IFMT(inode.mode) | mode & 0o7777, ctime=clock())

    def _drop_link(self, inode):
        nlink = 0 if st.S_ISDIR(inode.mode) else inode.nlink - 1
        self._set(inode.ino, nlink=nlink, ctime=clock())
        if nlink == 0:
            self.release_if_orphan(inode.ino)

    def rename(self, src_parent, src_name, dst_parent, dst_name, noreplace=False, exchange=False, whiteout=None):
        """whiteout: (uid, gid) of the whiteout left at the old name (RENAME_WHITEOUT): a
        character device 0:0 with no permission bits, made in the same change."""
        with self.meta.tx() as s:
            ino = self.entry(src_parent, src_name)
            if ino is None:
                raise FsError(errno.ENOENT, src_name)
            inode = self.inode(ino)
            target = self.entry(dst_parent, dst_name)
            if st.S_ISDIR(inode.mode):
                walk = dst_parent
                while walk != ROOT_INO:             # no directory into its own subtree
                    if walk == ino:
                        raise FsError(errno.EINVAL, f"{src_name} into itself")
                    walk = self.parent_of(walk)
            if exchange:
                if target is None:
                    raise FsError(errno.ENOENT, dst_name)
                s.put("d", (src_parent, src_name), target)
                s.put("d", (dst_parent, dst_name), ino)
                self._fix_dir_counts(ino, src_parent, dst_parent)
                self._fix_dir_counts(target, dst_parent, src_parent)
                return
            if target is not None and noreplace:        # even onto itself, as Linux checks first
                raise FsError(errno.EEXIST, dst_name)
            if target == ino:
                return
            if target is not None:
                tnode = self.inode(target)
                if st.S_ISDIR(tnode.mode):
                    if not st.S_ISDIR(inode.mode):
                        raise FsError(errno.EISDIR, dst_name)
                    if s.t.dirs.get(target):
                        raise FsError(errno.ENOTEMPTY, dst_name)
                    self._set(dst_parent, nlink=self.inode(dst_parent).nlink - 1)
                elif st.S_ISDIR(inode.mode):
                    raise FsError(errno.ENOTDIR, dst_name)
                s.put("d", (dst_parent, dst_name), None)
                self._drop_link(tnode)
            s.put("d", (src_parent, src_name), None)
            s.put("d", (dst_parent, dst_name), ino)
            self._fix_dir_counts(ino, src_parent, dst_parent)
            if whiteout is not None:
                self.create(src_parent, src_name, st.S_IFCHR, *whiteout)
            self._touch(src_parent)
            self._touch(dst_parent)
            self._set(ino, ctime=clock())

    def _fix_dir_counts(self, ino, old_parent, new_parent):
        if old_parent != new_parent and st.S_ISDIR(self.inode(ino).mode):
            self._set(old_parent, nlink=self.inode(old_parent).nlink - 1)
            self._set(new_parent, nlink=self.inode(new_parent).nlink + 1)

    # ---- open files and orphans ----------------------------------------------------------------
    def add_handle(self, ino):
        self.handles.hold(ino)

    def hold_existing(self, ino):
        """Hold ino open; False (and no hold) when it no longer exists. The kernel takes an
        open's reference under the directory's lock, so an unlink either sees the file open
        or came before the look-up. Here an unlink that asked for holders between this
        process's look-up and its hold may have freed the inode. A change asks only after
        it has said so in the shared log (Store.reaping), and unsays it once published: if
        nothing is said after the hold, every such change is published (caught up with
        here) or will see the hold. Else waiting once for the writer's lock orders the two.
        Then the inode is gone (look it up again) or held for good."""
        self.handles.hold(ino)
        if self.meta.reaping():
            self.meta.settle()
        else:
            self.meta.fresh()
        if ino in self.meta.t.inodes:
            return True
        self.handles.drop(ino)
        return False

    def drop_handle(self, ino):
        if self.handles.drop(ino):
            self.last_close(ino)

    def last_close_work(self, ino):
        """Whether ino's last close has work to do: preallocation to drop, or an unlinked
        inode to free."""
        t = self.meta.t
        return bool(t.win_of.get(ino)) or ino in t.orphans

    def last_close(self, ino):
        """This process let go of ino: if nobody else holds it, what its last close does."""
        if self.readonly:
            return
        self.meta.fresh()          # another process may have unlinked it meanwhile
        if self.last_close_work(ino):
            with self.meta.tx():
                if not self.in_use(ino):
                    # ext4 drops an inode's preallocation when its last user goes
                    self.free.discard_windows_of(ino)
                    self.release_if_orphan(ino)

    def in_use(self, ino):
        """Whether any process holds ino open (inside a change that frees ino if not)."""
        self.meta.reap_intended()
        return self.handles.in_use(ino, self.meta.log.fd)

    def open_inodes(self):
        """Every inode some process holds open."""
        return self.handles.held(self.meta.log.fd, self.meta.t.next_ino)

    def release_if_orphan(self, ino):
        """Free an unlinked inode once no process holds it."""
        v = self.meta.t.inodes.get(ino)
        if v is None or v[4] > 0 or self.in_use(ino):
            return False
        for e in self.extmap.drop_all(ino):
            self.free.give(e.pblk, e.len)
        self.free.discard_windows_of(ino)
        if ino in self.meta.t.stale_tail:
            self.meta.put("z", ino, None)
        for name in list(self.meta.t.xattrs.get(ino, ())):
            self.meta.put("x", (ino, name), None)
        if ino in self.meta.t.symlinks:
            self.meta.put("l", ino, None)
        if ino in self.meta.t.rdevs:
            self.meta.put("r", ino, None)
        if st.S_ISFIFO(v[0]):
            try:
                os.unlink(self._fifo_name(ino))
            except FileNotFoundError:
                pass
        self.meta.put("i", ino, None)
        self.meta.forget_runtime(ino)
        return True

    def reap(self):
        """Free the orphans nobody holds any more (their last holder died or crashed) and
        forget the moves of dead movers; returns how many orphans were freed."""
        t = self.meta.t
        if not t.orphans and not t.moves or self.readonly:
            return 0
        with self.meta.tx():
            freed = sum(1 for ino in sorted(t.orphans) if self.release_if_orphan(ino))
            for mid in list(t.moves):
                if not self.locks.move_alive(mid):
                    self.meta.put("m", mid, None)
            return freed

    # ---- data ---------------------------------------------------------------------------
    def read(self, ino, offset, length):
        buf = bytearray(max(0, length))
        return bytes(buf[:self.read_into(ino, offset, memoryview(buf))])

    def read_into(self, ino, offset, view):
        """Read into a writable buffer; returns the bytes read (short at EOF). Holes and
        unwritten blocks read as zeros. Under the data lock, shared: no write is half done."""
        with self.locks.shared(ino):
            if self.mapped.any():
                n = self.mapped.read_into(ino, offset, view)
                if n is not None:
                    return n
            return self._read_mapped(ino, offset, view)

    def read_ahead(self, ino, start, end):
        """Start reading bytes [start, end) of a file: the image's pages behind its written
        blocks (holes and unwritten blocks read as zeros, from no page)."""
        bs = self.bs
        with self.locks.stable(ino):
            for _, n, e in self.extmap.segments(ino, start // bs, ceil_div(end, bs)):
                if e is not None and not e.unwritten:
                    self.dev.read_ahead(e.pblk * bs, n * bs)

    def _read_mapped(self, ino, offset, view):
        bs = self.bs
        v = self.meta.t.inodes.get(ino)
        if v is None:
            raise FsError(errno.ENOENT, f"inode {ino} does not exist")
        size = v[3]
        if offset >= size or not len(view):
            return 0
        length = min(len(view), size - offset)
        end = offset + length
        found = self.extmap.overlapping(ino, offset // bs, offset // bs + 1)
        if found and not found[0].unwritten and (found[0].lblk + found[0].len) * bs >= end:
            e = found[0]        # one extent holds the range: a sequential reader's case
            self.dev.preadinto(view[:length], e.pblk * bs + (offset - e.lblk * bs))
            return length
        pos = offset
        for lblk, n, e in self.extmap.segments(ino, offset // bs, ceil_div(end, bs)):
            lo, hi = max(offset, lblk * bs), min(end, (lblk + n) * bs)
            if e is None or e.unwritten:
                view[lo - offset:hi - offset] = bytes(hi - lo)
            else:
                self.dev.preadinto(view[lo - offset:hi - offset], e.pblk * bs + (lo - lblk * bs))
            pos = hi
        if pos < end:
            view[pos - offset:length] = bytes(end - pos)
        return length

    def write(self, ino, offset, data):
        """Write data at offset; returns bytes written (short only when space ran out)."""
        if not data:
            return 0
        with self.locks.exclusive(ino, local=True):
            n = self._write(ino, offset, data)
            if self.mapped.any():
                self.mapped.write_through(ino, offset, data[:n])
            return n

    def append(self, ino, data, limit, room=None):
        """O_APPEND: write at the end, read and written under one lock, so appenders in
        other processes never overlap; returns (offset, bytes written). Past limit: EFBIG.
        room(offset, count) may cut the count short or refuse (the caller's own limit)."""
        with self.locks.exclusive(ino, local=True):
            offset = self.inode(ino, local=True).size
            if not data:
                return offset, 0
            count = room(offset, len(data)) if room else len(data)
            if offset >= limit:
                raise FsError(errno.EFBIG, "offset past the maximum file size")
            n = self._write(ino, offset, memoryview(data)[:min(count, limit - offset)])
            if self.mapped.any():
                self.mapped.write_through(ino, offset, memoryview(data)[:n])
            return offset, n

    def _write(self, ino, offset, data):
        """Under the inode's lock, taken local: what needs more than this inode's rows (an
        allocation, a stale tail) is a change of its own, which catches up first."""
        bs = self.bs
        a = offset // bs
        b = ceil_div(offset + len(data), bs)
        inode = self.inode(ino, local=True)
        if offset + len(data) > inode.size and ino in self.meta.t.stale_tail:
            self._settle_tail(ino)
        error = None
        if self._mapped_prefix(ino, a, b) < b:
            with self.meta.tx():
                try:
                    self._map_holes(inode, a, b)
                except FsError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    error = e
        if error is not None:
            mapped = self._mapped_prefix(ino, a, b)
            if mapped == a:
                raise error
            data = data[:mapped * bs - offset]
            b = mapped
        end = offset + len(data)
        fresh = []
        for lblk, n, e in self.extmap.segments(ino, a, b):
            lo, hi = max(offset, lblk * bs), min(end, (lblk + n) * bs)
            piece = memoryview(data)[lo - offset:hi - offset]
            if e.unwritten:
                # whole blocks, zero-padded: the rest of an unwritten block reads as zeros
                self.dev.pwritev([bytes(lo - lblk * bs), piece, bytes((lblk + n) * bs - hi)], e.pblk * bs)
                fresh.append((lblk, n))
            else:
                self.dev.pwrite(piece, e.pblk * bs + (lo - lblk * bs))
        inode = self.inode(ino, local=True)
        # as the kernel: times move with the coarse clock, so an overwrite inside the file
        # changes no metadata within one tick
        t = clock()
        if fresh or end > inode.size or inode.mtime != t:
            def written():
                for lblk, n in fresh:
                    self.extmap.set_unwritten(ino, lblk, lblk + n, False)
                self._set(ino, size=max(self.inode(ino, local=True).size, end), mtime=t, ctime=t)
            self.meta.change_local(ino, written)
        return len(data)

    def _mapped_prefix(self, ino, a, b):
        pos = a
        for lblk, n, e in self.extmap.segments(ino, a, b):
            if e is None:
                break
            pos = lblk + n
        return pos

    def _map_holes(self, inode, a, b):
        """Allocate (unwritten) every hole of logical [a, b) with the default policy."""
        file_blocks = ceil_div(inode.size, self.bs)
        last = self.extmap.last(inode.ino)
        if last is None or last.lblk + last.len <= a:
            # past the last extent (a file growing): one hole, after that extent
            holes, prev = ((a, b - a),), last
        else:
            holes, prev = [(lblk, n) for lblk, n, e in self.extmap.segments(inode.ino, a, b) if e is None], LOOK_UP
        for lblk, n in holes:
            while n:
                pblk, got = self.alloc.allocate(inode.ino, lblk, n, inode.grp, file_blocks)
                self.extmap.insert(inode.ino, lblk, got, pblk, True, prev)
                lblk += got
                n -= got
                prev = LOOK_UP

    def truncate(self, ino, size):
        bs = self.bs
        with self.locks.exclusive(ino):
            inode = self.inode(ino)
            keep = ceil_div(size, bs)
            if size > inode.size:
                self._settle_tail(ino)
            with self.meta.tx() as s:
                if size <= inode.size:
                    # as ext4: a truncate that does not grow the file also drops the
                    # preallocated (KEEP_SIZE) blocks past the new end
                    for e in self.extmap.remove(ino, keep, EXT_MAX_BLOCKS):
                        self.free.give(e.pblk, e.len)
                    self.free.discard_windows_of(ino)
                    if size % bs and size < inode.size:
                        s.put("z", ino, (size, s.position()))
                self._touch(ino, size)
            if self.mapped.any():
                self.mapped.resize(ino, size)

    def _settle_tail(self, ino):
        """Before a file grows: zero what a truncate left past the old end in the last
        block. Zeroed only once the truncate is durable, or a power cut could show the old
        size with the zeros (bytes the file never had)."""
        stale = self.meta.t.stale_tail.get(ino)
        if stale is None:
            return
        size, at = stale
        if self.meta.durable() <= at:
            self.meta.commit()
        if self.inode(ino).size == size:
            self._zero_bytes(ino, size, ceil_div(size, self.bs) * self.bs)
        with self.meta.tx() as s:
            s.put("z", ino, None)

    def _zero_bytes(self, ino, start, end):
        """Zero [start, end) of written blocks in place (holes and unwritten already read zeros)."""
        bs = self.bs
        for lblk, n, e in self.extmap.segments(ino, start // bs, ceil_div(end, bs)):
            if e is None or e.unwritten:
                continue
            lo, hi = max(start, lblk * bs), min(end, (lblk + n) * bs)
            self.dev.pwrite(bytes(hi - lo), e.pblk * bs + (lo - lblk * bs))

    def _shift_stale_tail(self, ino, delta):
        """COLLAPSE moves the last block, and the bytes a truncate left past the end move
        with it (INSERT settles them first: a refused shift still grows the file)."""
        stale = self.meta.t.stale_tail.get(ino)
        if stale is not None:
            self.meta.put("z", ino, (stale[0] + delta, stale[1]))

    # ---- fallocate modes as extent-map operations --------------------------------------------
    def allocate_range(self, ino, offset, length, keep_size, physical=None):
        """Mode 0 / KEEP_SIZE / UNSHARE_RANGE, with fallocate2's exact placement when physical
        is given. Blocks placed before a failure stay, and the size follows them (ext4)."""
        bs = self.bs
        a, b = offset // bs, ceil_div(offset + length, bs)
        # holes become unwritten extents: nothing a reader or an overwrite reaches changes,
        # so the inode lock alone, but for the zeroing of a truncate's stale tail
        with self.locks.inode(ino):
            inode = self._inode_held(ino)
            new_size = offset + length if not keep_size and offset + length > inode.size else None
            if new_size is not None and ino in self.meta.t.stale_tail:
                with self.locks.data(ino):
                    self._settle_tail(ino)
            reached = [a]
            error = None
            with self.meta.tx():
                try:
                    if physical is None:
                        self._map_holes(inode, a, b)
                    else:
                        self._map_exact(ino, a, b, physical // bs, reached)
                    reached[0] = b
                except FsError as e:
                    error = e
                    if physical is None:
                        reached[0] = self._mapped_prefix(ino, a, b)
                if new_size is not None and reached[0] > a:
                    # ext4 moves the size to the end of the last block it mapped, if any
                    size = min(new_size, reached[0] * bs)
                    if size > inode.size:
                        self._touch(ino, size)
                elif error is None:
                    self._set(ino, ctime=clock())
            if error is not None:
                raise error

    def _map_exact(self, ino, a, b, target, reached):
        """Logical block L goes to physical target + (L - a): skip blocks already there,
        EEXIST for a block mapped elsewhere, ENOSPC (after dropping a covering
        preallocation window) for a busy target block."""
        for lblk, n, e in list(self.extmap.segments(ino, a, b)):
            want = target + (lblk - a)
            if e is not None:
                if e.pblk != want:
                    raise FsError(errno.EEXIST, f"logical block {lblk} is mapped at {e.pblk}, not {want}")
                reached[0] = lblk + n
                continue
            while n:
                got = self.alloc.take_exact(want, n)
                self.extmap.insert(ino, lblk, got, want, True)
                lblk, want, n = lblk + got, want + got, n - got
                reached[0] = lblk

    def punch_hole(self, ino, offset, length):
        bs = self.bs
        with self.locks.exclusive(ino):
            size = self.inode(ino).size
            if offset >= size:
                return
            end = min(offset + length, ceil_div(size, bs) * bs)
            # bytes past the end are a truncate's stale tail, zeroed once the file grows
            # and the truncate is durable: zeros written there now could reach the disk
            # before the truncate does, and show at the old size
            self._zero_edges(ino, offset, end, stop=size)
            with self.meta.tx():
                for e in self.extmap.remove(ino, ceil_div(offset, bs), end // bs):
                    self.free.give(e.pblk, e.len)
                self.free.discard_windows_of(ino)
                self._touch(ino)

    def _zero_edges(self, ino, start, end, stop=None):
        """Zero in place the parts of [start, end) in blocks the range does not cover whole
        (those are unmapped or made unwritten), none of it at or past stop."""
        bs = self.bs
        stop = end if stop is None else min(end, stop)
        a, b = ceil_div(start, bs), end // bs
        if a > b:                       # inside a single block
            spans = [(start, stop)]
        else:
            spans = [(start, min(a * bs, stop)), (b * bs, stop)]
        for lo, hi in spans:
            if lo < hi:
                self._zero_bytes(ino, lo, hi)

    def zero_range(self, ino, offset, length, keep_size, write_zeroes=False):
        """ZERO_RANGE (interior blocks become unwritten) or WRITE_ZEROES (interior blocks
        are zeroed on the device and become written); edges are zeroed in place."""
        bs = self.bs
        end = offset + length
        a, b = ceil_div(offset, bs), end // bs
        with self.locks.exclusive(ino):
            inode = self.inode(ino)
            if not keep_size and end > inode.size:
                self._settle_tail(ino)
            error = None
            with self.meta.tx():
                try:
                    self._map_holes(inode, offset // bs, ceil_div(end, bs))
                except FsError as e:
                    error = e
            if error is None:
                # past the end only once the file grows over it (its stale tail settled
                # first): as in punch_hole
                grows = not keep_size and end > inode.size
                self._zero_edges(ino, offset, end, stop=None if grows else inode.size)
                if write_zeroes:
                    for _, n, e in self.extmap.segments(ino, a, b):
                        self.dev.zero(e.pblk * bs, n * bs)
            with self.meta.tx():
                if error is None and a < b:
                    self.extmap.set_unwritten(ino, a, b, not write_zeroes)
                if error is None and not keep_size and end > inode.size:
                    self._touch(ino, end)
                else:
                    self._touch(ino)
            if error is not None:
                raise error

    def collapse_range(self, ino, offset, length):
        bs = self.bs
        a, n = offset // bs, length // bs
        with self.locks.exclusive(ino):
            with self.meta.tx():
                inode = self.inode(ino)
                if offset + length >= inode.size:
                    raise FsError(errno.EINVAL, "collapse range reaches end of file")
                for e in self.extmap.remove(ino, a, a + n):
                    self.free.give(e.pblk, e.len)
                self.free.discard_windows_of(ino)
                self.extmap.shift(ino, a + n, -n)
                self.extmap.merge_at(ino, a)
                self._touch(ino, inode.size - length)
                self._shift_stale_tail(ino, -length)
            # blocks changed logical place: an overwrite must not land in one before that
            # is durable, or a power cut would show it at the old place
            self.meta.commit()

    def insert_range(self, ino, offset, length):
        bs = self.bs
        a, n = offset // bs, length // bs
        with self.locks.exclusive(ino):
            self._settle_tail(ino)
            with self.meta.tx():
                inode = self.inode(ino)
                if length > self.max_bytes - inode.size:
                    raise FsError(errno.EFBIG, "insert range beyond the maximum file size")
                if offset >= inode.size:
                    raise FsError(errno.EINVAL, "insert range at or past end of file")
                self.free.discard_windows_of(ino)
                # ext4 grows i_size before shifting and keeps it when the shift is refused
                self._touch(ino, inode.size + length)
                last = self.extmap.last(ino)
                if last is not None and last.lblk + last.len > a and last.lblk + last.len + n > EXT_MAX_BLOCKS:
                    error = FsError(errno.EINVAL, "shifted extent would pass the last logical block")
                else:
                    error = None
                    self.extmap.split(ino, a)
                    self.extmap.shift(ino, a, n)
            if error is not None:
                raise error
            self.meta.commit()          # as for COLLAPSE_RANGE

    # ---- Kara's allocate() --------------------------------------------------------------------
    def allocate_kara(self, ino, offset, length, goal, mode):
        bs = self.bs
        a, n = offset // bs, length // bs
        with self.locks.exclusive(ino):
            with self.meta.tx():
                inode = self.inode(ino)
                if self.extmap.lookup(ino, a, a + n):
                    raise FsError(errno.EEXIST, "the interval already has blocks")
                pieces = self.alloc.take_kara(goal // bs, n, mode)
                lblk = a
                for pblk, count in pieces:
                    self.extmap.insert(ino, lblk, count, pblk, True)
                    lblk += count
                done = (lblk - a) * bs
                if offset + done > inode.size:
                    self._touch(ino, offset + done)
                return done
