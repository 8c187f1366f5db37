"""One exception type for every failure that has an errno, named the way Linux names it."""
import errno
import os


def errno_name(code):
    # Linux aliases ENOTSUP to EOPNOTSUPP; the kernel sources and fallocate(2) say EOPNOTSUPP.
    if code == errno.EOPNOTSUPP:
        return "EOPNOTSUPP"
    return errno.errorcode.get(code, str(code))


class FsError(OSError):
    """An OSError carrying the errno a Linux filesystem would return, plus why."""

    def __init__(self, code, detail=""):
        super().__init__(code, os.strerror(code))
        self.detail = detail

    def __str__(self):
        text = f"{self.strerror} ({errno_name(self.errno)})"
        return f"{text}: {self.detail}" if self.detail else text


class FormatError(FsError):
    """The image or its metadata is missing, foreign or corrupt."""

    def __init__(self, detail):
        super().__init__(errno.EUCLEAN, detail)
