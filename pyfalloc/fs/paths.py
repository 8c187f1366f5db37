"""Path names as the kernel's namei takes them, for every front (API, shim, CLI).

A name is bytes on Linux; here it is a str decoded with the file system encoding's
surrogateescape (os.fsdecode), so any byte string round-trips and os.fsencode gives it back.
"""
import errno
import os

from pyfalloc.errors import FsError
from pyfalloc.records import record

PATH_MAX = 4096             # with its NUL: a path of 4096 bytes is too long
DEFAULT_MOUNT = "/pyfalloc"     # where the shim shows an image unless told otherwise
NAME_MAX = 255

# the kinds of a path's last component, as namei's LAST_* types
NORM, ROOT, DOT, DOTDOT = "norm", "root", "dot", "dotdot"

Parsed = record("Parsed", "dirs last kind trailing")
Parsed.__doc__ = """dirs: the components walked before the last (names, "." and ".." as
written); last: the last component (None for the root); kind: NORM, ROOT, DOT or DOTDOT;
trailing: whether the path ended in "/" (then the last component must be a directory)."""


def encode(path):
    """A path as the bytes the kernel would see, with getname's checks."""
    if isinstance(path, (bytes, bytearray, memoryview)):
        raw = bytes(path)
    else:
        raw = os.fsencode(path)
    if b"\0" in raw:
        raise FsError(errno.EINVAL, "a path cannot hold a NUL byte")
    if not raw:
        raise FsError(errno.ENOENT, "empty path")
    if len(raw) >= PATH_MAX:
        raise FsError(errno.ENAMETOOLONG, f"path of {len(raw)} bytes (the limit is {PATH_MAX - 1})")
    return raw


def decoded(raw):
    """bytes from encode() as the str names are kept in"""
    return raw.decode("ascii") if raw.isascii() else os.fsdecode(raw)


def parse(path):
    if type(path) is str and path.isascii():        # the common case: bytes are characters
        if not path:
            raise FsError(errno.ENOENT, "empty path")
        if "\0" in path:
            raise FsError(errno.EINVAL, "a path cannot hold a NUL byte")
        if len(path) >= PATH_MAX:
            raise FsError(errno.ENAMETOOLONG, f"path of {len(path)} bytes (the limit is {PATH_MAX - 1})")
        comps = [c for c in path.split("/") if c]
        trailing = path[-1] == "/"
    else:
        raw = encode(path)
        comps = [c for c in raw.split(b"/") if c]
        trailing = raw.endswith(b"/")
    for c in comps:
        if len(c) > NAME_MAX:
            raise FsError(errno.ENAMETOOLONG, f"a name of {len(c)} bytes (the limit is {NAME_MAX})")
    names = comps if not comps or type(comps[0]) is str else [os.fsdecode(c) for c in comps]
    if not names:
        return Parsed([], None, ROOT, False)
    last = names[-1]
    kind = DOT if last == "." else DOTDOT if last == ".." else NORM
    return Parsed(names[:-1], last, kind, trailing)


_C_ESCAPES = {"\a": "\\a", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\v": "\\v", "\f": "\\f",
              "\r": "\\r", " ": "\\ "}


def printable(name):
    """A name for a terminal: bytes that are not printable UTF-8 as octal escapes and a
    backslash doubled, as `ls -b` writes them."""
    if name.isascii() and name.isprintable() and "\\" not in name and " " not in name:
        return name                 # nothing to escape (the common case, checked in C)
    out = []
    for c in name:
        if 0xDC80 <= ord(c) <= 0xDCFF:                  # a byte that was not UTF-8
            out.append(f"\\{ord(c) - 0xDC00:03o}")
        elif c == "\\":
            out.append("\\\\")
        elif c in _C_ESCAPES:
            out.append(_C_ESCAPES[c])
        elif not c.isprintable():
            out.extend(f"\\{b:03o}" for b in c.encode())
        else:
            out.append(c)
    return "".join(out)
