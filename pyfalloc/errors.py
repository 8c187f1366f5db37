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


class LeavesImage(FsError):
    """A look-up that a symbolic link took out of the image: `host` is the path it goes on
    with on the host (the link's absolute target, then the components after the link).
    EXDEV for a front that cannot go there; the shim goes on with the host's own call."""

    def __init__(self, host):
        super().__init__(errno.EXDEV, f"a symbolic link leads out of the image, to {host}")
        self.host = host

    def then(self, *names):
        """the same, with names looked up after the link ("." adds nothing)"""
        names = [n for n in names if n != "."]
        return LeavesImage("/".join([self.host.rstrip("/"), *names]) if names else self.host)


class FormatError(FsError):
    """The image or its metadata is missing, foreign or corrupt."""

    def __init__(self, detail):
        super().__init__(errno.EUCLEAN, detail)
