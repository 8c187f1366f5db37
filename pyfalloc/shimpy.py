"""The Python half of libpyfalloc: the interposer (shim/interpose.c) hands image paths and
shadow descriptors here, and this serves them from a Volume.

Conventions of cdefs/shim.h: success returns the result + 1, failure -errno, so the 0 that
cffi returns when Python could not start is never taken for a result. The Volume is opened
on first use and again after fork (its SQLite connection and lock descriptor belong to the
parent), carrying the inherited open files over.
"""
import errno
import os

from .errors import FsError
from .volume import Volume

_vol = None
_pid = None


def volume():
    global _vol, _pid
    if _vol is not None and _pid == os.getpid():
        return _vol
    image = os.environ.get("PYFALLOC_IMAGE")
    if not image:
        raise FsError(errno.ENODEV, "PYFALLOC_IMAGE is not set")
    inherited = _vol
    _vol = Volume(image)
    _pid = os.getpid()
    if inherited is not None:
        # a forked child: the same descriptions (dup'ed ones shared), with handles of its own
        for of in {id(of): of for of in inherited.files.values()}.values():
            of.hid = _vol.fs.add_handle(of.ino, _pid, _vol._started)
        _vol.files.update(inherited.files)
    return _vol


def image_path(path):
    """The path inside the image of a path under the mount prefix."""
    mount = os.environ.get("PYFALLOC_MOUNT", "/pyfalloc").rstrip("/") or "/"
    rest = path[len(mount):]
    return rest if rest.startswith("/") else "/" + rest


def umask():
    """The process umask, which the kernel applies to the mode of a new file."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return 0o022


def _call(fn, *args):
    try:
        r = fn(*args)
        return (0 if r is None else r) + 1
    except FsError as e:
        return -e.errno
    except OSError as e:
        return -(e.errno or errno.EIO)
    except Exception:                       # a bug must not kill the host program
        import traceback
        traceback.print_exc()
        return -errno.EIO


def bind(ffi):
    @ffi.def_extern()
    def pyf_open(path, flags, mode, fd):
        return _call(lambda: volume().open(image_path(ffi.string(path).decode()), flags, mode & ~umask(), fd=fd))

    @ffi.def_extern()
    def pyf_close(fd):
        return _call(lambda: volume().close(fd))

    @ffi.def_extern()
    def pyf_read(fd, buf, n, off):
        def read():
            v = volume()
            data = v.read(fd, n) if off < 0 else v.pread(fd, n, off)
            ffi.memmove(buf, data, len(data))
            return len(data)
        return _call(read)

    @ffi.def_extern()
    def pyf_write(fd, buf, n, off):
        def write():
            v = volume()
            data = ffi.buffer(buf, n)[:]
            return v.write(fd, data) if off < 0 else v.pwrite(fd, data, off)
        return _call(write)

    @ffi.def_extern()
    def pyf_lseek(fd, off, whence):
        return _call(lambda: volume().lseek(fd, off, whence))

    @ffi.def_extern()
    def pyf_stat(fd, path, out):
        def stat():
            v = volume()
            s = v.fstat(fd) if fd >= 0 else v.stat(image_path(ffi.string(path).decode()))
            times = [s.st_atime, s.st_mtime, s.st_ctime]
            vals = [s.st_mode, s.st_ino, s.st_nlink, s.st_uid, s.st_gid, s.st_size, *(int(t) for t in times),
                    s.st_blksize, s.st_blocks, *(int((t - int(t)) * 1e9) for t in times), s.st_dev]
            for i, x in enumerate(vals):
                out[i] = x
        return _call(stat)

    @ffi.def_extern()
    def pyf_fallocate(fd, mode, off, length, physical):
        return _call(lambda: volume().fallocate2(fd, mode, off, length, physical))

    @ffi.def_extern()
    def pyf_ftruncate(fd, path, length):
        if fd >= 0:
            return _call(lambda: volume().ftruncate(fd, length))
        return _call(lambda: volume().truncate(image_path(ffi.string(path).decode()), length))

    @ffi.def_extern()
    def pyf_fsync(fd):
        return _call(lambda: volume().fsync(fd))

    @ffi.def_extern()
    def pyf_ioctl(fd, request, arg, size):
        return _call(lambda: volume().ioctl(fd, request, ffi.buffer(arg, size)))

    @ffi.def_extern()
    def pyf_unlink(path, rmdir):
        p = image_path(ffi.string(path).decode())
        return _call(lambda: volume().rmdir(p) if rmdir else volume().unlink(p))

    @ffi.def_extern()
    def pyf_mkdir(path, mode):
        return _call(lambda: volume().mkdir(image_path(ffi.string(path).decode()), mode & ~umask()))

    @ffi.def_extern()
    def pyf_rename(src, dst, flags):
        return _call(lambda: volume().rename(image_path(ffi.string(src).decode()),
                                             image_path(ffi.string(dst).decode()), flags))

    @ffi.def_extern()
    def pyf_listdir(fd, buf, size):
        def listdir():
            blob = b"".join(b"%d %d %s\0" % (ino, dtype, name.encode()) for name, ino, dtype in volume().readdir_fd(fd))
            if len(blob) <= size:
                ffi.memmove(buf, blob, len(blob))
            return len(blob)
        return _call(listdir)

    @ffi.def_extern()
    def pyf_statfs(out):
        def statfs():
            f = volume().statfs()
            for i, key in enumerate(("f_bsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree",
                                     "f_namemax")):
                out[i] = f[key]
        return _call(statfs)

    @ffi.def_extern()
    def pyf_dup(oldfd, newfd):
        return _call(lambda: volume().dup(oldfd, newfd))
