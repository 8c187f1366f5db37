"""Permission checks as the kernel's generic_permission and its callers make them: the
owner, group and other bits against the caller's fsuid, fsgid and supplementary groups (or,
for anyone but the owner, the file's access ACL when it has one), overridden by the
capabilities root holds."""
import errno
import os
import stat as st

from pyfalloc.errors import FsError
from pyfalloc.fs import acl as acls
from pyfalloc.fs import paths
from pyfalloc.records import record

MAY_EXEC, MAY_WRITE, MAY_READ = 1, 2, 4
# <linux/capability.h>
CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID = 0, 1, 2, 3, 4
CAP_LINUX_IMMUTABLE = 9
CAP_SYS_ADMIN = 21
CAP_MKNOD = 27

Cred = record("Cred", "uid gid groups caps")
Cred.__doc__ = "fsuid, fsgid, supplementary groups (a frozenset) and effective capability bits"


def capable(cred, cap):
    return bool(cred.caps >> cap & 1)


def in_group(cred, gid):
    return gid == cred.gid or gid in cred.groups


def _bits(cred, mode, uid, gid, acl, mask):
    """acl_permission_check: the permission bits that apply to cred (all when an access ACL
    grants the request, none when it refuses it: only capabilities may then override)."""
    if cred.uid == uid:
        return mode >> 6
    if acl is not None and mode & 0o70:
        return 7 if acls.grants(acl, cred.uid, gid, lambda g: in_group(cred, g), mask & 7) else 0
    return mode >> 3 if in_group(cred, gid) else mode


def allowed(cred, inode, mask, acl=None):
    mode = inode.mode
    bits = _bits(cred, mode, inode.uid, inode.gid, acl, mask)
    if not mask & ~bits & 7:
        return True
    if st.S_ISDIR(mode):
        if not mask & MAY_WRITE and capable(cred, CAP_DAC_READ_SEARCH):
            return True
        return capable(cred, CAP_DAC_OVERRIDE)
    if mask == MAY_READ and capable(cred, CAP_DAC_READ_SEARCH):
        return True
    return (not mask & MAY_EXEC or bool(mode & 0o111)) and capable(cred, CAP_DAC_OVERRIDE)


def searchable(cred, mode, uid, gid, acl=None):
    """A directory's search (x) permission, from its raw mode and owners: the walk's test."""
    if cred.caps >> CAP_DAC_READ_SEARCH & 1 or cred.caps >> CAP_DAC_OVERRIDE & 1:
        return True
    return bool(_bits(cred, mode, uid, gid, acl, MAY_EXEC) & 1)


def _named(path, inode):
    """How an error names the file: its path as given, or the inode (the path is rendered
    only for an error: the checks that pass are most of every call)."""
    return paths.printable(os.fsdecode(path)) if path else f"inode {inode.ino}"


def check(cred, inode, mask, path=None, acl=None):
    """EACCES unless cred may read/write/search inode as mask asks (None: no checks); acl:
    the inode's access ACL, if it has one."""
    if cred is not None and not allowed(cred, inode, mask, acl):
        need = "".join(c for bit, c in ((MAY_READ, "r"), (MAY_WRITE, "w"), (MAY_EXEC, "x")) if mask & bit)
        raise FsError(errno.EACCES, f"{_named(path, inode)}: {need} permission denied")


def owner_or_fowner(cred, inode):
    return cred is None or cred.uid == inode.uid or capable(cred, CAP_FOWNER)


def check_sticky(cred, directory, victim, path):
    """A sticky directory lets only the file's owner, the directory's owner or CAP_FOWNER
    remove or rename an entry (EPERM)."""
    if (cred is not None and directory.mode & st.S_ISVTX and cred.uid not in (victim.uid, directory.uid)
            and not capable(cred, CAP_FOWNER)):
        raise FsError(errno.EPERM, f"{_named(path, victim)}: sticky directory, not the owner")


def chmod_mode(cred, inode, mode):
    """chmod: only the owner or CAP_FOWNER (EPERM); the setgid bit drops when the caller
    is not in the file's group and lacks CAP_FSETID."""
    if not owner_or_fowner(cred, inode):
        raise FsError(errno.EPERM, f"inode {inode.ino}: only the owner may chmod")
    if cred is not None and mode & st.S_ISGID and not in_group(cred, inode.gid) \
            and not capable(cred, CAP_FSETID):
        mode &= ~st.S_ISGID
    return mode


def chown_ok(cred, inode, uid, gid):
    """chown: a new owner needs CAP_CHOWN; the owner may give the file to a group of its
    own; anything else is EPERM."""
    if cred is None or capable(cred, CAP_CHOWN):
        return
    if uid is not None and uid != inode.uid:
        raise FsError(errno.EPERM, f"inode {inode.ino}: CAP_CHOWN needed to change the owner")
    if gid is not None and gid != inode.gid and (cred.uid != inode.uid or not in_group(cred, gid)):
        raise FsError(errno.EPERM, f"inode {inode.ino}: not the owner, or not a member of group {gid}")
    if (uid is not None or gid is not None) and cred.uid != inode.uid:
        raise FsError(errno.EPERM, f"inode {inode.ino}: only the owner may chown")


def chown_mode(inode):
    """The mode after a change of owner: a regular file loses set-user-ID, and set-group-ID
    when it is group-executable (the kernel's ATTR_KILL_SUID/SGID)."""
    mode = inode.mode
    if not st.S_ISDIR(mode):
        mode &= ~st.S_ISUID
        if mode & st.S_IXGRP:
            mode &= ~st.S_ISGID
    return mode


def utimes_ok(cred, inode, to_now, acl=None):
    """Setting both times to now needs ownership, write permission or CAP_FOWNER (EACCES);
    any other time needs ownership or CAP_FOWNER (EPERM)."""
    if owner_or_fowner(cred, inode):
        return
    if not to_now:
        raise FsError(errno.EPERM, f"inode {inode.ino}: only the owner may set times")
    check(cred, inode, MAY_WRITE, acl=acl)
