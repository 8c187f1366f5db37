"""POSIX access ACLs as ext4 keeps them (fs/posix_acl.c's rules): the xattr's format, its
checks, the mode it implies, chmod's update of it, and the permission it grants.

An ACL is a tuple of (tag, perm, id) entries in the order given; ids of the entries that
name no one are ACL_UNDEFINED_ID, as getxattr returns them."""
import errno
import struct

from pyfalloc.errors import FsError

ACCESS = b"system.posix_acl_access"
DEFAULT = b"system.posix_acl_default"
USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
VERSION = 2
UNDEFINED_ID = 0xFFFFFFFF
_HEADER, _ENTRY = struct.Struct("<I"), struct.Struct("<HHI")
_NAMED = (USER, GROUP)


def from_xattr(value):
    """posix_acl_from_xattr: the entries, or None for no ACL (an empty value or a header
    alone); EOPNOTSUPP for another version, EINVAL for a size that is no whole entry."""
    if not value:
        return None
    if len(value) < _HEADER.size:
        raise FsError(errno.EINVAL, "an ACL shorter than its header")
    if _HEADER.unpack_from(value)[0] != VERSION:
        raise FsError(errno.EOPNOTSUPP, "an ACL of another version")
    body = memoryview(value)[_HEADER.size:]
    if len(body) % _ENTRY.size:
        raise FsError(errno.EINVAL, "an ACL's size is not a whole number of entries")
    return tuple((tag, perm, uid if tag in _NAMED else UNDEFINED_ID)
                 for tag, perm, uid in _ENTRY.iter_unpack(body)) or None


def check(acl):
    """posix_acl_valid: the owner, named users, the owning group, named groups, the mask
    (needed when anyone is named), others — each kind in its place, permissions rwx only."""
    state, needs_mask = USER_OBJ, False
    for tag, perm, _ in acl:
        if perm & ~7:
            raise FsError(errno.EINVAL, f"ACL permission {perm:#o}")
        if tag == USER_OBJ and state == USER_OBJ:
            state = USER
        elif tag == USER and state == USER:
            needs_mask = True
        elif tag == GROUP_OBJ and state == USER:
            state = GROUP
        elif tag == GROUP and state == GROUP:
            needs_mask = True
        elif tag == MASK and state == GROUP:
            state = OTHER
        elif tag == OTHER and (state == OTHER or state == GROUP and not needs_mask):
            state = 0
        else:
            raise FsError(errno.EINVAL, f"ACL entry {tag:#x} out of place, or a named entry without a mask")
    if state != 0:
        raise FsError(errno.EINVAL, "an ACL without its owner, group or other entry")


def to_xattr(acl):
    return _HEADER.pack(VERSION) + b"".join(_ENTRY.pack(*entry) for entry in acl)


def mode_of(acl, mode):
    """posix_acl_equiv_mode: (the permission bits the ACL implies over mode's others, and
    whether the mode says it all — then the ACL is not kept)."""
    bits, plain = 0, True
    for tag, perm, _ in acl:
        if tag == USER_OBJ:
            bits |= perm << 6
        elif tag == GROUP_OBJ:
            bits |= perm << 3
        elif tag == OTHER:
            bits |= perm
        elif tag == MASK:
            bits = bits & ~0o70 | perm << 3
            plain = False
        else:
            plain = False
    return mode & ~0o777 | bits, plain


def chmod(acl, mode):
    """__posix_acl_chmod: the owner, others and the mask (the owning group without one)
    take the new mode's bits."""
    has_mask = any(tag == MASK for tag, _, _ in acl)
    out = []
    for tag, perm, uid in acl:
        if tag == USER_OBJ:
            perm = mode >> 6 & 7
        elif tag == OTHER:
            perm = mode & 7
        elif tag == MASK or tag == GROUP_OBJ and not has_mask:
            perm = mode >> 3 & 7
        out.append((tag, perm, uid))
    return tuple(out)


def create_masq(acl, mode):
    """posix_acl_create_masq: a directory's default ACL given to a new inode made with mode
    (no umask): (the inode's mode, its access ACL, whether the mode says it all). The
    owner's, others' and the mask's (the owning group's without one) permissions and the
    mode's bits each keep only what both allow."""
    bits, out, plain = mode & 0o777, [], True
    at = {}
    for tag, perm, uid in acl:
        if tag == USER_OBJ:
            perm &= bits >> 6
            bits &= perm << 6 | ~0o700
        elif tag == OTHER:
            perm &= bits
            bits &= perm | ~0o7
        elif tag in (USER, GROUP, MASK):
            plain = False
        at.setdefault(tag, len(out))
        out.append((tag, perm, uid))
    i = at.get(MASK, at.get(GROUP_OBJ))
    tag, perm, uid = out[i]
    perm &= bits >> 3 & 7
    bits &= perm << 3 | ~0o70
    out[i] = (tag, perm, uid)
    return mode & ~0o777 | bits & 0o777, tuple(out), plain


def grants(acl, uid, gid, in_group, want):
    """posix_acl_permission for a caller that is not the owner: a named user's entry, else
    any group entry of the caller's that grants it all (found: one of its groups is named,
    and others do not count), each limited by the mask; else others' entry."""
    found = False
    for i, (tag, perm, eid) in enumerate(acl):
        if tag == USER:
            if uid == eid:
                return _masked(acl, i, perm, want)
        elif tag == GROUP_OBJ or tag == GROUP:
            if in_group(gid if tag == GROUP_OBJ else eid):
                found = True
                if perm & want == want:
                    return _masked(acl, i, perm, want)
        elif tag == MASK:
            return False
        elif tag == OTHER:
            return not found and perm & want == want
    return False


def _masked(acl, i, perm, want):
    for tag, mask, _ in acl[i + 1:]:
        if tag == MASK:
            return perm & mask & want == want
    return perm & want == want
