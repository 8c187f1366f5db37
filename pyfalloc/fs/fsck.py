"""Consistency check of a pyfalloc volume: every invariant the filesystem promises.

The store checks its own integrity (checksums of the checkpoint's directory and of every
journal block when it opens, of each bucket of the checkpoint when it is first read: here,
all of them); this checks the tables against each other and against the device."""
import os
import stat as st

from pyfalloc.errors import FormatError, FsError
from pyfalloc.fs import acl as acls
from pyfalloc.fs.filesystem import ROOT_INO


def fsck(fs):
    """Return the list of problems found (empty when the volume is clean)."""
    problems = []
    fs.meta.fresh()
    t = fs.meta.t
    try:
        t.read_all()
    except FormatError as e:
        return [str(e)]
    nblocks, gb = fs.nblocks, fs.group_blocks
    spans = [(0, 1, "superblock")]
    last = {}
    for ino, m in t.ext.items():
        prev_end = None
        for lblk, (n, pblk, unw) in m.items():
            spans.append((pblk, n, f"inode {ino} block {lblk}"))
            if n <= 0 or lblk < 0 or unw not in (0, 1):
                problems.append(f"inode {ino}: malformed extent {lblk}+{n} -> {pblk}")
            if lblk + n > (1 << 32) - 1:
                problems.append(f"inode {ino}: extent {lblk}+{n} past the maximum file size")
            if prev_end is not None and lblk < prev_end:
                problems.append(f"inode {ino}: extents overlap at logical block {lblk}")
            prev_end = lblk + n
            if t.owner.get(pblk) != (n, ino, lblk, unw):
                problems.append(f"inode {ino}: extent {lblk}+{n} missing from the physical index")
        last[ino] = prev_end
    if sum(len(m) for m in t.ext.values()) != len(t.owner):
        problems.append("the physical index of extents does not match the extent maps")
    for pblk, n in t.free.items():
        spans.append((pblk, n, "free"))
        if pblk // gb != (pblk + n - 1) // gb:
            problems.append(f"free extent {pblk}+{n} crosses a block-group boundary")
    if sorted(t.free_len) != sorted((n, p) for p, n in t.free.items()):
        problems.append("the free-space size index does not match the free map")
    for pblk, n in t.pending.items():
        spans.append((pblk, n, "pending free"))
    for pblk, (n, ino, _) in t.win.items():
        spans.append((pblk, n, f"preallocation of inode {ino}" if ino else "locality preallocation"))
        if ino and ino not in t.inodes:
            problems.append(f"preallocation window of missing inode {ino}")
    spans.sort()
    total = 0
    prev_end, prev_name = 0, None
    for pblk, n, name in spans:
        if n <= 0:
            problems.append(f"{name}: empty extent at {pblk}")
            continue
        if pblk < 0 or pblk + n > nblocks:
            problems.append(f"{name}: blocks {pblk}+{n} outside the device ({nblocks} blocks)")
        if pblk < prev_end:
            problems.append(f"block {pblk}: owned twice ({prev_name} and {name})")
        total += n
        if pblk + n > prev_end:
            prev_end, prev_name = pblk + n, name
    if total != nblocks:
        problems.append(f"free + used + preallocated = {total} blocks, device has {nblocks}")

    inodes = t.inodes
    for ino in last:
        if ino not in inodes:
            problems.append(f"extents of missing inode {ino}")
    links, subdirs = {}, {}
    for parent, entries in t.dirs.items():
        for name, ino in entries.items():
            if not name or "/" in name or name in (".", ".."):
                problems.append(f"entry {name!r} in directory {parent} is not a valid name")
            if ino not in inodes:
                problems.append(f"entry {name!r} in directory {parent} names missing inode {ino}")
                continue
            if parent not in inodes or not st.S_ISDIR(inodes[parent][0]):
                problems.append(f"entry {name!r} lives in {parent}, which is not a directory")
            links[ino] = links.get(ino, 0) + 1
            if st.S_ISDIR(inodes[ino][0]):
                subdirs[parent] = subdirs.get(parent, 0) + 1
    if ROOT_INO not in inodes:
        problems.append("root directory is missing")
    for ino, (mode, _, _, size, nlink, *_rest) in inodes.items():
        if size < 0 or size > fs.max_bytes:
            problems.append(f"inode {ino}: size {size} out of range")
        if st.S_ISDIR(mode):
            want = 2 + subdirs.get(ino, 0)
            if ino != ROOT_INO and links.get(ino, 0) != 1 and nlink:
                problems.append(f"directory {ino} has {links.get(ino, 0)} entries naming it")
            if nlink and nlink != want:
                problems.append(f"directory {ino}: nlink {nlink}, expected {want}")
            if ino in last:
                problems.append(f"directory {ino} has data extents")
        elif nlink != links.get(ino, 0):
            problems.append(f"inode {ino}: nlink {nlink} but {links.get(ino, 0)} entries")
        if nlink == 0 and not fs.in_use(ino):
            problems.append(f"inode {ino}: orphan past its last handle")
    for mid, (orig, donor, pid, _) in t.moves.items():
        if orig not in inodes or donor not in inodes:
            problems.append(f"move {mid} names missing inode {orig} or {donor}")
        if not fs.locks.move_alive(mid):
            problems.append(f"move {mid} ({orig} -> {donor}) of dead process {pid} not recovered")
    for ino, attrs in t.xattrs.items():
        if ino not in inodes:
            problems.append(f"extended attributes of missing inode {ino}")
        for kind, name in (("access", acls.ACCESS), ("default", acls.DEFAULT)):
            try:
                fs.access_acl(ino, name)
            except FsError as e:
                problems.append(f"inode {ino}: {kind} ACL: {e}")
    for ino, (mode, _, _, size, *_rest) in inodes.items():
        if st.S_ISLNK(mode):
            target = t.symlinks.get(ino)
            if target is None:
                problems.append(f"symbolic link {ino} has no target")
            elif size != len(os.fsencode(target)):
                problems.append(f"symbolic link {ino}: size {size}, its target has {len(os.fsencode(target))} bytes")
            if ino in last:
                problems.append(f"symbolic link {ino} has data extents")
    for ino in t.symlinks:
        if ino not in inodes or not st.S_ISLNK(inodes[ino][0]):
            problems.append(f"a link target for inode {ino}, which is no symbolic link")
    for ino in t.rdevs:
        if ino not in inodes or not (st.S_ISCHR(inodes[ino][0]) or st.S_ISBLK(inodes[ino][0])):
            problems.append(f"a device number for inode {ino}, which is no device node")
    return problems
