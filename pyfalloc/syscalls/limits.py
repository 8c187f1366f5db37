"""The calling program's file-size limit (RLIMIT_FSIZE, `ulimit -f`), applied to its files
on the volume where the kernel applies it: a write at or past the limit fails with EFBIG
and earns a SIGXFSZ, a write across it is cut short (generic_write_check_limits); a
truncate or an fallocate that would grow a file past it fails the same way
(inode_newsize_ok). Inside the shim the process's own limit is lifted while the volume's
files are written, so the shim gives the program's value (serve.bind installs it)."""
import _thread
import errno

from pyfalloc.errors import FsError


def _process_limit():
    import resource
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else soft


def _signal_thread():
    import signal
    signal.pthread_kill(_thread.get_ident(), signal.SIGXFSZ)


limit = _process_limit          # () -> bytes, or None for no limit
send_signal = _signal_thread    # SIGXFSZ to the calling thread


def room(offset, count):
    """How many of count bytes a write at offset may write."""
    lim = limit()
    if lim is None:
        return count
    if offset >= lim:
        send_signal()
        raise FsError(errno.EFBIG, f"offset {offset} at or past the file size limit ({lim})")
    return min(count, lim - offset)


def check_new_size(size, old_size):
    """A change that sets a file's size from old_size to size."""
    if size <= old_size:
        return
    lim = limit()
    if lim is not None and size > lim:
        send_signal()
        raise FsError(errno.EFBIG, f"size {size} past the file size limit ({lim})")
