"""`put` and `get`: copies between the host and the image with cp's rules — into an
existing directory under the source's name, directories only with -r, and with -p the
mode, times (and, for root, the owner) kept; otherwise a new file gets the source's mode
less the umask."""
import errno
import os
import stat as st

from pyfalloc.cli.progress import progress
from pyfalloc.errors import FsError
from pyfalloc.fs.paths import printable

CHUNK = 1 << 20


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _join(base, name):
    sep = b"/" if isinstance(base, bytes) else "/"
    return base.rstrip(sep) + sep + name if base.rstrip(sep) else sep + name


def _image_is_dir(v, path):
    try:
        return st.S_ISDIR(v.stat(path).st_mode)
    except FsError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            return False
        raise


class _Copy:
    def __init__(self, v, recursive, preserve, advance):
        self.v, self.recursive, self.preserve, self.advance = v, recursive, preserve, advance
        self.umask = _umask()


def _host_bytes(path):
    """Bytes a host tree holds, for the progress bar."""
    if not os.path.isdir(path):
        return os.stat(path).st_size if os.path.exists(path) else 0
    return sum(os.lstat(os.path.join(d, f)).st_size for d, _, files in os.walk(path) for f in files)


def _image_bytes(v, path):
    s = v.stat(path)
    if not st.S_ISDIR(s.st_mode):
        return s.st_size
    return sum(_image_bytes(v, _join(path, n)) for n in v.listdir(path))


# ---- host -> image -------------------------------------------------------------------------------
def put(v, local, dest, recursive=False, preserve=False, show=True):
    """Copy host file or tree `local` ("-" for stdin) to image path `dest`."""
    if local != "-" and os.path.isdir(local):
        if not recursive:
            raise FsError(errno.EISDIR, f"-r not given; omitting directory {printable(local)}")
    if local != "-" and _image_is_dir(v, dest):
        dest = _join(dest, os.path.basename(os.path.normpath(local)))
    total = 0 if local == "-" else _host_bytes(local)
    with progress(total, "put", show and total >= 64 << 20) as advance:
        c = _Copy(v, recursive, preserve, advance)
        if local == "-":
            _put_stream(c, os.fdopen(os.dup(0), "rb"), dest, 0o666 & ~c.umask)
        else:
            _put(c, local, dest)


def _put(c, local, dest):
    s = os.lstat(local)
    made = True
    if st.S_ISDIR(s.st_mode):
        made = not _image_is_dir(c.v, dest)
        if made:
            c.v.mkdir(dest, 0o700)      # opened up when its contents are in
        for name in sorted(os.listdir(local)):
            _put(c, os.path.join(local, name), _join(dest, name))
    elif st.S_ISREG(s.st_mode):
        with open(local, "rb") as src:
            _put_stream(c, src, dest, st.S_IMODE(s.st_mode) & ~c.umask)
    else:
        raise FsError(errno.EOPNOTSUPP, f"{printable(local)}: only regular files and directories can be put")
    if made or c.preserve:
        c.v.setattr(path=dest, mode=st.S_IMODE(s.st_mode) if c.preserve else st.S_IMODE(s.st_mode) & ~c.umask)
    if c.preserve:
        c.v.setattr(path=dest, atime=s.st_atime, mtime=s.st_mtime)
        if os.geteuid() == 0:
            c.v.setattr(path=dest, uid=s.st_uid, gid=s.st_gid)


def _put_stream(c, src, dest, mode):
    with src:
        fd = c.v.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            pos = 0
            while chunk := src.read(CHUNK):
                pos += c.v.pwrite(fd, chunk, pos)
                c.advance(len(chunk))
        finally:
            c.v.close(fd)


# ---- image -> host -------------------------------------------------------------------------------
def get(v, path, local, recursive=False, preserve=False, show=True):
    """Copy image file or tree `path` to host path `local` ("-" for stdout)."""
    is_dir = st.S_ISDIR(v.stat(path).st_mode)
    if is_dir and not recursive:
        raise FsError(errno.EISDIR, f"-r not given; omitting directory {printable(os.fsdecode(path))}")
    if local == "-":
        if is_dir:
            raise FsError(errno.EISDIR, f"{printable(os.fsdecode(path))} is a directory")
        with os.fdopen(os.dup(1), "wb") as out:
            _get_stream(v, path, out, lambda n: None)
        return
    if os.path.isdir(local):
        name = os.path.basename(os.fsdecode(path).rstrip("/")) or "."
        local = os.path.join(local, name)
    total = _image_bytes(v, path)
    with progress(total, "get", show and total >= 64 << 20) as advance:
        _get(_Copy(v, recursive, preserve, advance), path, local)


def _get(c, path, local):
    s = c.v.stat(path)
    made = True
    if st.S_ISDIR(s.st_mode):
        made = not os.path.isdir(local)
        if made:
            os.mkdir(local, 0o700)
        for name in sorted(c.v.listdir(path)):
            _get(c, _join(path, name), os.path.join(local, name))
    else:
        fd = os.open(local, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            _get_stream(c.v, path, out, c.advance)
    if made or c.preserve:
        os.chmod(local, st.S_IMODE(s.st_mode) if c.preserve else st.S_IMODE(s.st_mode) & ~c.umask)
    if c.preserve:
        os.utime(local, (s.st_atime, s.st_mtime))
        if os.geteuid() == 0:
            os.chown(local, s.st_uid, s.st_gid)


def _get_stream(v, path, out, advance):
    fd = v.open(path)
    try:
        pos = 0
        while chunk := v.pread(fd, CHUNK, pos):
            out.write(chunk)
            pos += len(chunk)
            advance(len(chunk))
    finally:
        v.close(fd)
