"""The Python half of libpyfalloc: the interposer (shim/*.c) hands paths inside the
image (the mount prefix already taken off) and shadow descriptors here, and this serves
them from a Volume.

Conventions of cdefs/shim.h: success returns the result + 1, failure -errno, so the 0 that
cffi returns when Python could not start is never taken for a result.
"""
import _thread
import atexit
import errno
import fcntl
import gc
import os
import sys

from pyfalloc.api.volume import Volume
from pyfalloc.collector import without_collector
from pyfalloc.errors import FsError, LeavesImage
from pyfalloc.fs import paths
from pyfalloc.store import gates
from pyfalloc.syscalls import abi, caps, limits
from pyfalloc.syscalls.calls import NOW

_vol = None
_lift = _restore = lambda: None     # bind's: the program's file-size limit lifted and put back
_make_claim = None              # bind's: the hook that takes over descriptors the C half opened
_leaves = None                  # bind's: tells the C half the host path a link led to
# directory listings as the C half reads them, by inode: (dir_version, blob), the oldest
# dropped first (a program that lists a directory again while nothing changed gets it as is)
_listings = {}
_LISTINGS_KEPT = 64
_X_GET, _X_SET, _X_LIST, _X_REMOVE = range(4)      # pyf_xattr's op (shim/xattr.c)
_LINK_ITSELF = -2           # the fd of a call by path on a last link itself (BY_PATH_ITSELF)
# os.fsencode's encoding, without its cost per name (a directory listing encodes thousands)
_FS_ENCODING, _FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()
def shadows(directory):
    """The image files this process holds, from their shadow descriptors (opens of
    DIRECTORY/INO made by shim/fdtable.c): fd -> (ino, flags)."""
    found = {}
    lead = directory + "/"
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}").removesuffix(" (deleted)")
            if target.startswith(lead):
                found[int(name)] = (int(target[len(lead):]), fcntl.fcntl(int(name), fcntl.F_GETFL))
        except (OSError, ValueError):
            continue
    return found


def volume():
    """The Volume of PYFALLOC_IMAGE, opened at the first image call of the process. A
    process started by exec adopts the image files it inherited; a forked child keeps its
    parent's Volume, whose locks the store re-takes in the child."""
    global _vol
    if _vol is not None:
        return _vol
    image = os.environ.get("PYFALLOC_IMAGE")
    if not image:
        raise FsError(errno.ENODEV, "PYFALLOC_IMAGE is not set")
    _vol = _open(image)
    return _vol


@without_collector            # what opening makes lives as long as the process
def _open(image):
    vol = Volume(image, meta=os.environ.get("PYFALLOC_META"), mount=os.environ.get("PYFALLOC_MOUNT") or paths.DEFAULT_MOUNT)
    vol.adopt(shadows(vol.fs.meta.runtime_dir()))      # the C half names it the same way
    if _make_claim is not None:
        vol.claim = _make_claim(vol)
    # the tables (a few objects per file) live as long as the process: out of the cyclic
    # collector's reach, or every full collection traverses them all again
    gc.freeze()
    return vol


def at_exit():
    """The process ends: what it changed becomes durable, and the last user of the volume
    leaves nothing in memory."""
    if _vol is not None:
        store = _vol.fs.meta
        _lift()         # a Python program finalizes outside any call of the shim's
        try:
            if not store.leave():
                store.commit_if_mine()
        finally:
            _restore()


atexit.register(at_exit)        # a Python program finalizes before the shim's destructor

_serial = _thread.RLock()


def _new_serial():
    global _serial
    _serial = _thread.RLock()


# a fork waits for the call under way, and the child starts with the lock free
os.register_at_fork(before=lambda: _serial.acquire(), after_in_parent=lambda: _serial.release(),
                    after_in_child=_new_serial)


def _call(fn, *args):
    """One call of the program into the volume. Threads of the program take turns: each
    process changes its copy of the tables in place, and a thread must not read them
    half-changed (the interpreter lets only one run at a time anyway). A look-up that a
    link took out of the image tells the C half where it goes on (EXDEV)."""
    try:
        with _serial:
            r = fn(*args)
        return (0 if r is None else r) + 1
    except LeavesImage as e:
        if _leaves is not None:
            _leaves(os.fsencode(e.host))
        return -e.errno
    except FsError as e:
        return -e.errno
    except OSError as e:
        return -(e.errno or errno.EIO)
    except Exception:                       # a bug must not kill the host program
        import traceback
        traceback.print_exc()
        return -errno.EIO


def _claimer(ffi, lib, vol):
    """The hook by which the volume takes over a descriptor the C half opened alone: the
    volume holds the inode before the C half lets go of its hold."""
    def claim(fd):
        ino = ffi.new("long long *")
        flags = lib.pyf_claim(fd, ino)
        if flags < 0:
            return None
        try:
            vol.adopt({fd: (ino[0], flags)})
        finally:
            lib.pyf_unhold(ino[0])
        return vol.files.get(fd)
    return claim


def bind(ffi, lib):
    global _make_claim
    _make_claim = lambda vol: _claimer(ffi, lib, vol)
    fsize_limit = lib.pyf_fsize_limit

    def limit():
        v = fsize_limit()
        return None if v < 0 else v

    limits.limit = limit
    limits.send_signal = lib.pyf_xfsz
    global _lift, _restore, _leaves
    _lift, _restore = lib.pyf_fsize_lift, lib.pyf_fsize_restore
    _leaves = lib.pyf_leaves_image

    def gates_init(at, slots):
        r = lib.pyf_gates_init(at, slots)
        if r:
            raise OSError(r, "pthread_mutex_init failed")
    def capget():
        sets = ffi.new("unsigned long long[2]")
        return (sets[0], sets[1]) if lib.pyf_capget(sets) == 0 else (0, 0)
    caps.use_c(capget)
    gates.use(lib.pyf_gate_take, lib.pyf_gate_give, gates_init,
              lambda mm: int(ffi.cast("unsigned long long", ffi.from_buffer(mm))))

    @ffi.def_extern()
    def pyf_open(path, flags, mode, umask, fd, out):
        def open_():
            v = volume()
            v.open(os.fsdecode(ffi.string(path)), flags, mode, fd=fd, umask=umask)
            ino = v.files[fd].ino
            out[0] = ino
            out[1] = not v.fs.last_close_work(ino)
        return _call(open_)

    @ffi.def_extern()
    def pyf_release(ino):
        return _call(lambda: volume().fs.last_close(ino))

    @ffi.def_extern()
    def pyf_close(fd):
        return _call(lambda: volume().close(fd))

    @ffi.def_extern()
    def pyf_read(fd, buf, n, off):
        return _call(lambda: volume().pread_into(fd, memoryview(ffi.buffer(buf, n)), off))

    @ffi.def_extern()
    def pyf_extent(fd, off, out):
        def extent():
            found = volume().extent_at(fd, off)
            if found is None:
                return 0
            out[0:12] = found
            return 1
        return _call(extent)

    @ffi.def_extern()
    def pyf_write(fd, buf, n, off, end):
        def write():
            v = volume()
            data = memoryview(ffi.buffer(buf, n))         # no copy: written before the call returns
            start, done = v.append(fd, data) if off < 0 else (off, v.pwrite(fd, data, off))
            end[0] = start + done
            return done
        return _call(write)

    @ffi.def_extern()
    def pyf_lseek(fd, off, whence, pos):
        return _call(lambda: volume().lseek(fd, off, whence, pos=pos))

    @ffi.def_extern()
    def pyf_stat(fd, path, out):
        def stat():
            v = volume()
            s = v.fstat(fd) if fd >= 0 else v.stat(os.fsdecode(ffi.string(path)), follow=fd != _LINK_ITSELF)
            times = [s.st_atime, s.st_mtime, s.st_ctime]
            vals = [s.st_mode, s.st_ino, s.st_nlink, s.st_uid, s.st_gid, s.st_size, *(int(t) for t in times),
                    s.st_blksize, s.st_blocks, *(int((t - int(t)) * 1e9) for t in times), s.st_dev, s.st_rdev]
            out[0:len(vals)] = vals             # one cffi call, not one per field
        return _call(stat)

    @ffi.def_extern()
    def pyf_fallocate(fd, mode, off, length, physical):
        return _call(lambda: volume().fallocate2(fd, mode, off, length, physical))

    @ffi.def_extern()
    def pyf_decode_how(how, size, out):
        def decode():
            fields = abi.decode_how(ffi.buffer(how, min(size, abi.PAGE_SIZE)), size)
            out[0:4] = [v - (1 << 64) if v >> 63 else v for v in fields]    # physical may be all ones
        return _call(decode)

    @ffi.def_extern()
    def pyf_fadvise(fd, off, length, advice):
        return _call(lambda: volume().fadvise(fd, off, length, advice))

    @ffi.def_extern()
    def pyf_ftruncate(fd, path, length):
        if fd >= 0:
            return _call(lambda: volume().ftruncate(fd, length))
        return _call(lambda: volume().truncate(os.fsdecode(ffi.string(path)), length))

    @ffi.def_extern()
    def pyf_fsync(fd):
        return _call(lambda: volume().fsync(fd) if fd >= 0 else volume().sync())

    @ffi.def_extern()
    def pyf_map_shared(fd, writable, ino):
        def map_shared():
            ino[0], copy = volume().map_shared(fd, writable)
            return copy
        return _call(map_shared)

    @ffi.def_extern()
    def pyf_unmapped(ino, durable):
        return _call(lambda: volume().unmapped(ino, bool(durable)))

    @ffi.def_extern()
    def pyf_exit():
        return _call(at_exit)

    @ffi.def_extern()
    def pyf_ioctl(fd, request, arg, size):
        return _call(lambda: volume().ioctl(fd, request, ffi.buffer(arg, size)))

    @ffi.def_extern()
    def pyf_unlink(path, rmdir):
        p = os.fsdecode(ffi.string(path))
        return _call(lambda: volume().rmdir(p) if rmdir else volume().unlink(p))

    @ffi.def_extern()
    def pyf_mkdir(path, mode, umask):
        return _call(lambda: volume().mkdir(os.fsdecode(ffi.string(path)), mode, umask))

    @ffi.def_extern()
    def pyf_access(path, mode, flags):
        return _call(lambda: volume().access(os.fsdecode(ffi.string(path)), mode, bool(flags & 0x200)))

    @ffi.def_extern()
    def pyf_rename(src, dst, flags):
        return _call(lambda: volume().rename(os.fsdecode(ffi.string(src)), os.fsdecode(ffi.string(dst)), flags))

    @ffi.def_extern()
    def pyf_xattr(op, fd, path, name, value, size, flags):
        def xattr():
            v = volume()
            p = None if path == ffi.NULL else os.fsdecode(ffi.string(path))
            at = fd if p is None else None
            follow = fd != _LINK_ITSELF
            n = None if name == ffi.NULL else ffi.string(name)
            if op == _X_SET:
                v.setxattr(p, n, ffi.buffer(value, size)[:] if size else b"", flags, at, follow)
                return 0
            if op == _X_REMOVE:
                v.removexattr(p, n, at, follow)
                return 0
            blob = v.getxattr(p, n, at, follow) if op == _X_GET else \
                b"".join(x + b"\0" for x in v.listxattr(p, at, follow))
            if size:
                if size < len(blob):
                    raise FsError(errno.ERANGE, f"{len(blob)} bytes do not fit in {size}")
                ffi.memmove(value, blob, len(blob))
            return len(blob)
        return _call(xattr)

    @ffi.def_extern()
    def pyf_link(src, dst, flags, fd):
        return _call(lambda: volume().link(os.fsdecode(ffi.string(src)), os.fsdecode(ffi.string(dst)), flags,
                                           fd if fd >= 0 else None))

    @ffi.def_extern()
    def pyf_listdir(fd, buf, size):
        def listdir():
            v = volume()
            version = v.dir_version(fd)
            kept = _listings.get(version[0])
            if kept and kept[0] == version:
                blob = kept[1]
            else:
                blob = b"".join(b"%d %d %s\0" % (ino, dtype, name.encode(_FS_ENCODING, _FS_ERRORS))
                                for name, ino, dtype in v.readdir_fd(fd))
                if len(_listings) >= _LISTINGS_KEPT:
                    del _listings[next(iter(_listings))]
                _listings[version[0]] = (version, blob)
            if len(blob) <= size:
                ffi.memmove(buf, blob, len(blob))
            return len(blob)
        return _call(listdir)

    def _put_path(path, buf, size):
        blob = os.fsencode(path)
        if len(blob) >= size:
            raise FsError(errno.ENAMETOOLONG, "path of a descriptor")
        ffi.memmove(buf, blob + b"\0", len(blob) + 1)

    @ffi.def_extern()
    def pyf_path(fd, buf, size):
        return _call(lambda: _put_path(volume().path_of(fd), buf, size))

    @ffi.def_extern()
    def pyf_dir_path(fd, buf, size):
        return _call(lambda: _put_path(volume().dir_path(fd), buf, size))

    @ffi.def_extern()
    def pyf_adopt(fd, ino, flags):
        return _call(lambda: volume().adopt({fd: (ino, flags)}))

    @ffi.def_extern()
    def pyf_statfs(out):
        def statfs():
            f = volume().statfs()
            for i, key in enumerate(("f_bsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree",
                                     "f_namemax", "f_flag")):
                out[i] = f[key]
        return _call(statfs)

    @ffi.def_extern()
    def pyf_dup(oldfd, newfd):
        return _call(lambda: volume().dup(oldfd, newfd))

    @ffi.def_extern()
    def pyf_setattr(fd, path, attr):
        mode, uid, gid, atime, mtime = (None if attr[i] == -1 else attr[i] for i in range(5))
        atime, mtime = (t if t is None else NOW if t == -2 else t / 1e9 for t in (atime, mtime))
        return _call(lambda: volume().setattr(
            fd=fd if fd >= 0 else None, path=None if fd >= 0 else os.fsdecode(ffi.string(path)),
            mode=mode, uid=uid, gid=gid, atime=atime, mtime=mtime, follow=fd != _LINK_ITSELF))

    @ffi.def_extern()
    def pyf_mknod(path, mode, dev, umask):
        return _call(lambda: volume().mknod(os.fsdecode(ffi.string(path)), mode, dev, umask))

    @ffi.def_extern()
    def pyf_symlink(target, path):
        return _call(lambda: volume().symlink(ffi.string(target), os.fsdecode(ffi.string(path))))

    @ffi.def_extern()
    def pyf_readlink(path, buf, size):
        def readlink():
            blob = os.fsencode(volume().readlink(os.fsdecode(ffi.string(path))))[:size]
            ffi.memmove(buf, blob, len(blob))
            return len(blob)
        return _call(readlink)

    @ffi.def_extern()
    def pyf_realpath(path, buf, size):
        return _call(lambda: _put_path(volume().realpath(os.fsdecode(ffi.string(path))), buf, size))
