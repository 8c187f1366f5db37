"""POSIX access ACLs as ext4 keeps them, printed so a run in a host directory and a run on
the image can be compared line by line: the xattr's checks (version, size, order, mask),
an ACL the mode says all of (not kept), the mode an ACL sets, chmod's update of it, a
default ACL on a file, symbolic links, and what the ACL grants another user (a named
user, the owning group named by id, a directory's search) with the mask cutting it down;
default ACLs and what new files, directories and FIFOs inherit from them, the umask left
out. Run as root.

    python acls.py DIR
"""
import os
import struct
import sys

from oracle import as_nobody, show, workdir

A, D = "system.posix_acl_access", "system.posix_acl_default"
UOBJ, USER, GOBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
ANY = 0xFFFFFFFF
NOBODY = 65534


def acl(*entries, version=2):
    return struct.pack("<I", version) + b"".join(struct.pack("<HHI", *e) for e in entries)


BASE = ((UOBJ, 6, ANY), (GOBJ, 4, ANY), (OTHER, 0, ANY))
NAMED = ((UOBJ, 6, ANY), (USER, 6, NOBODY), (GOBJ, 4, ANY), (MASK, 6, ANY), (OTHER, 0, ANY))

workdir(sys.argv[1], "acl")
open("f", "w").close()
os.chmod("f", 0o640)
os.mkdir("d")
show("remove when there is none", lambda: os.removexattr("f", A))
show("a header alone", lambda: os.setxattr("f", A, acl()))
show("version 1", lambda: os.setxattr("f", A, acl(*BASE, version=1)))
show("a size between entries", lambda: os.setxattr("f", A, acl(*BASE) + b"x"))
show("a named user without a mask", lambda: os.setxattr("f", A, acl((UOBJ, 6, ANY), (USER, 6, 1000), *BASE[1:])))
show("the group before the owner", lambda: os.setxattr("f", A, acl(BASE[1], BASE[0], BASE[2])))
show("permission 016", lambda: os.setxattr("f", A, acl((UOBJ, 14, ANY), *BASE[1:])))
show("an unknown tag", lambda: os.setxattr("f", A, acl(*BASE[:2], (0x40, 0, ANY))))
show("what the mode says all of", lambda: (os.setxattr("f", A, acl((UOBJ, 7, ANY), (GOBJ, 5, ANY), (OTHER, 1, ANY))),
                                            oct(os.stat("f").st_mode)))
show("is not kept", lambda: os.getxattr("f", A))
show("a named user", lambda: (os.setxattr("f", A, acl(*NAMED)), oct(os.stat("f").st_mode)))
show("read back", lambda: os.getxattr("f", A).hex())
show("listed", lambda: os.listxattr("f"))
show("chmod 0700", lambda: (os.chmod("f", 0o700), os.getxattr("f", A).hex()))
show("chmod 0664", lambda: (os.chmod("f", 0o664), os.getxattr("f", A).hex()))
show("one user named twice", lambda: os.setxattr("f", A, acl(NAMED[0], NAMED[1], NAMED[1], *NAMED[2:])))
show("ids on the unnamed entries", lambda: (os.setxattr("f", A, acl((UOBJ, 6, 5), (GOBJ, 4, 5), (OTHER, 0, 5))),
                                             os.getxattr("f", A)))
show("a default ACL on a file", lambda: os.setxattr("f", D, acl(*BASE)))
show("an empty default ACL on a file", lambda: os.setxattr("f", D, acl()))
show("a file's default ACL", lambda: os.getxattr("f", D))
show("a directory's default ACL", lambda: os.getxattr("d", D))
show("removing a directory's default ACL", lambda: os.removexattr("d", D))
show("flags play no part", lambda: (os.setxattr("f", A, acl(*NAMED), os.XATTR_CREATE),
                                     os.setxattr("f", A, acl(*NAMED), os.XATTR_CREATE)))
show("removed", lambda: (os.removexattr("f", A), oct(os.stat("f").st_mode), os.listxattr("f")))
os.symlink("f", "link")
show("on a symbolic link", lambda: os.setxattr("link", A, acl(*BASE), follow_symlinks=False))
show("read on a symbolic link", lambda: os.getxattr("link", A, follow_symlinks=False))

with open("g", "w") as f:
    f.write("secret")
os.chmod("g", 0o600)
os.setxattr("g", A, acl((UOBJ, 6, ANY), (USER, 4, NOBODY), (GOBJ, 0, ANY), (MASK, 4, ANY), (OTHER, 0, ANY)))
show("g's mode", lambda: oct(os.stat("g").st_mode))


def tried(name, fn):
    as_nobody(lambda: show(name, fn))


tried("the named user reads", lambda: open("g").read())
tried("the named user writes", lambda: open("g", "w").write("x"))
tried("access R_OK", lambda: os.access("g", os.R_OK))
os.chmod("g", 0o600)                   # the mask becomes ---
tried("after chmod 0600, reads", lambda: open("g").read())
show("the ACL after chmod 0600", lambda: os.getxattr("g", A).hex())
os.chmod("g", 0o640)
tried("after chmod 0640, reads", lambda: open("g").read())
os.chmod("d", 0o700)
with open("d/in", "w") as f:
    f.write("in")
os.chmod("d/in", 0o644)
tried("a file in a directory without search", lambda: open("d/in").read())
os.setxattr("d", A, acl((UOBJ, 7, ANY), (USER, 1, NOBODY), (GOBJ, 0, ANY), (MASK, 1, ANY), (OTHER, 0, ANY)))
tried("with search for the named user", lambda: open("d/in").read())
tried("but no read of the directory", lambda: os.listdir("d"))
with open("h", "w") as f:
    f.write("h")
os.chmod("h", 0o600)
os.chown("h", 0, NOBODY)
os.setxattr("h", A, acl((UOBJ, 6, ANY), (GOBJ, 4, ANY), (GROUP, 0, 0), (MASK, 4, ANY), (OTHER, 0, ANY)))
tried("the owning group, by the ACL", lambda: open("h").read())

# not an ACL, but what they rely on: a file made under umask 077 and opened up by chmod
# afterwards is another user's to read
saved = os.umask(0o077)
with open("opened_up", "w") as f:
    f.write("open")
os.umask(saved)
os.chmod("opened_up", 0o644)
tried("a file made under umask 077, then chmod 0644", lambda: open("opened_up").read())

# default ACLs: what new files, directories and FIFOs in the directory get, the umask not
# counting there; a subdirectory passes the default ACL on
os.mkdir("dd")
show("a default ACL on a directory",
     lambda: os.setxattr("dd", D, acl((UOBJ, 7, ANY), (USER, 6, NOBODY), (GOBJ, 5, ANY), (MASK, 7, ANY), (OTHER, 5, ANY))))
show("its default ACL read back", lambda: os.getxattr("dd", D).hex())
show("its attributes", lambda: sorted(os.listxattr("dd")))
saved = os.umask(0o077)
os.close(os.open("dd/f", os.O_CREAT | os.O_WRONLY, 0o666))
os.mkdir("dd/sub", 0o777)
os.mkfifo("dd/fifo", 0o640)
os.close(os.open("dd/sub/deeper", os.O_CREAT | os.O_WRONLY, 0o600))
os.umask(saved)
for name in ("dd/f", "dd/sub", "dd/fifo", "dd/sub/deeper"):
    show(f"{name}'s mode", lambda name=name: oct(os.stat(name).st_mode))
    show(f"{name}'s access ACL", lambda name=name: os.getxattr(name, A).hex())
    show(f"{name}'s default ACL", lambda name=name: os.getxattr(name, D).hex())
os.mkdir("de")
os.setxattr("de", D, acl(*BASE))
saved = os.umask(0)
os.close(os.open("de/g", os.O_CREAT | os.O_WRONLY, 0o666))
os.umask(saved)
show("under a default the mode says all of: mode", lambda: oct(os.stat("de/g").st_mode))
show("and no access ACL", lambda: os.getxattr("de/g", A))
os.removexattr("de", D)
saved = os.umask(0o027)
os.close(os.open("de/h", os.O_CREAT | os.O_WRONLY, 0o666))
os.umask(saved)
show("the default removed: the umask again", lambda: oct(os.stat("de/h").st_mode))
tried("a file the default ACL names the user in", lambda: open("dd/f").read())
