"""Extended attributes' rules as the kernel applies them before a filesystem sees the call
(fs/xattr.c's name and permission checks, the capability module's rule for security.*, the
handler look-up), for the namespaces ext4 serves here: user.*, trusted.*, security.*, and
of system.* the POSIX ACLs."""
import errno
import os
import stat as st

from pyfalloc import uapi
from pyfalloc.errors import FsError
from pyfalloc.fs import acl as acls
from pyfalloc.fs import perms

XATTR_CREATE, XATTR_REPLACE = 1, 2
XATTR_NAME_MAX, XATTR_SIZE_MAX = 255, 65536
NAMESPACES = (b"user.", b"trusted.", b"security.")
_CAP_SETFCAP = 31


def checked_name(name):
    """The name as bytes, with the system call's ERANGE for an empty or too long one."""
    name = os.fsencode(name)
    if not name or len(name) > XATTR_NAME_MAX:
        raise FsError(errno.ERANGE, f"attribute name of {len(name)} bytes")
    return name


def permission(cred, inode, name, mask, acl_of=None):
    """xattr_permission: immutable and append-only refuse writes; trusted.* is for
    CAP_SYS_ADMIN; user.* only on regular files and directories (a sticky directory's
    only for its owner); security.* and system.* unchecked here; then inode_permission
    (acl_of(ino): the inode's access ACL, read only when it counts)."""
    write = mask & perms.MAY_WRITE
    if write and inode.flags & (uapi.FS_IMMUTABLE_FL | uapi.FS_APPEND_FL):
        raise FsError(errno.EPERM, "immutable or append-only")
    if name.startswith((b"security.", b"system.")):
        return
    if name.startswith(b"trusted."):
        if not perms.capable(cred, perms.CAP_SYS_ADMIN):
            raise FsError(errno.EPERM if write else errno.ENODATA, "trusted.* needs CAP_SYS_ADMIN")
        return
    if name.startswith(b"user."):
        if not st.S_ISREG(inode.mode) and not st.S_ISDIR(inode.mode):
            raise FsError(errno.EPERM if write else errno.ENODATA, "user.* only on files and directories")
        if st.S_ISDIR(inode.mode) and inode.mode & st.S_ISVTX and write and not perms.owner_or_fowner(cred, inode):
            raise FsError(errno.EPERM, "a sticky directory's user.* attributes are its owner's")
    perms.check(cred, inode, mask, acl=acl_of(inode.ino) if acl_of else None)


def security_write(cred, name):
    """The capability module's rule for security.*: CAP_SYS_ADMIN, or CAP_SETFCAP for
    security.capability (whose value the kernel also checks; not here)."""
    if name.startswith(b"security."):
        cap = _CAP_SETFCAP if name == b"security.capability" else perms.CAP_SYS_ADMIN
        if not perms.capable(cred, cap):
            raise FsError(errno.EPERM, f"{name.decode(errors='replace')} needs a capability")


def handler(name):
    """The handler look-up: a namespace ext4 serves here, and a name after its prefix."""
    if name in (acls.ACCESS, acls.DEFAULT):
        return
    for prefix in NAMESPACES:
        if name.startswith(prefix):
            if name == prefix:
                raise FsError(errno.EINVAL, "an attribute name is more than its namespace")
            return
    raise FsError(errno.EOPNOTSUPP, f"namespace of {name.decode(errors='replace')!r}")


def set_acl(fs, cred, inode, name, value):
    """set_posix_acl's checks in order, then ext4_set_acl: a symbolic link has none
    (EOPNOTSUPP), a default ACL is a directory's (EACCES), only the owner or CAP_FOWNER
    sets one (EPERM), it must be well formed (EINVAL). An access ACL that the mode says
    all of is not kept; the mode takes its bits (set-group-ID dropped, as chmod drops it)."""
    acl = acls.from_xattr(value)
    if st.S_ISLNK(inode.mode):
        raise FsError(errno.EOPNOTSUPP, "a symbolic link has no ACL")
    if name == acls.DEFAULT:
        if not st.S_ISDIR(inode.mode):
            if acl is not None:
                raise FsError(errno.EACCES, "a default ACL is a directory's")
            return
    if not perms.owner_or_fowner(cred, inode):
        raise FsError(errno.EPERM, "only the owner may set an ACL")
    if acl is not None:
        acls.check(acl)
    if name == acls.DEFAULT:
        fs.set_acl(inode.ino, name, acl)
        return
    mode = inode.mode
    if acl is not None:
        mode, plain = acls.mode_of(acl, mode)
        if plain:
            acl = None
        mode = perms.chmod_mode(cred, inode, mode)
    fs.set_acl(inode.ino, name, acl, mode)


def get_acl(fs, inode, name):
    """vfs_get_acl: none on a symbolic link (EOPNOTSUPP), else the one kept (ENODATA)."""
    if st.S_ISLNK(inode.mode):
        raise FsError(errno.EOPNOTSUPP, "a symbolic link has no ACL")
    value = fs.xattrs(inode.ino).get(name)
    if value is None:
        raise FsError(errno.ENODATA, f"no {name.decode()}")
    return value
