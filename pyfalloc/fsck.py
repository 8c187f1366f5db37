"""Consistency check of a pyfalloc volume: every invariant the filesystem promises."""
import stat as st

from .fs import ROOT_INO


def fsck(fs, alive=None):
    """Return the list of problems found (empty when the volume is clean)."""
    problems = []
    m = fs.meta
    nblocks, gb = fs.nblocks, fs.group_blocks
    with m.tx():
        spans = [(0, 1, "superblock")]
        for ino, lblk, n, pblk, unw in m.q("SELECT ino, lblk, len, pblk, unwritten FROM extents"):
            spans.append((pblk, n, f"inode {ino} block {lblk}"))
            if n <= 0 or lblk < 0 or unw not in (0, 1):
                problems.append(f"inode {ino}: malformed extent {lblk}+{n} -> {pblk}")
            if lblk + n > (1 << 32) - 1:
                problems.append(f"inode {ino}: extent {lblk}+{n} past the maximum file size")
        for pblk, n, grp in m.q("SELECT pblk, len, grp FROM free"):
            spans.append((pblk, n, "free"))
            if grp != pblk // gb or (pblk + n - 1) // gb != grp:
                problems.append(f"free extent {pblk}+{n} crosses or mislabels block group {grp}")
        for pblk, n, ino in m.q("SELECT pblk, len, ino FROM prealloc"):
            spans.append((pblk, n, f"preallocation of inode {ino}" if ino else "locality preallocation"))
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

        # logical overlap inside each file
        last = {}
        for ino, lblk, n in m.q("SELECT ino, lblk, len FROM extents ORDER BY ino, lblk"):
            if ino in last and lblk < last[ino]:
                problems.append(f"inode {ino}: extents overlap at logical block {lblk}")
            last[ino] = lblk + n

        inodes = {r[0]: r for r in m.q("SELECT ino, mode, size, nlink FROM inodes")}
        for ino in last:
            if ino not in inodes:
                problems.append(f"extents of missing inode {ino}")
        links, subdirs = {}, {}
        for parent, name, ino in m.q("SELECT parent, name, ino FROM dirents"):
            if ino not in inodes:
                problems.append(f"entry {name!r} in directory {parent} names missing inode {ino}")
                continue
            if parent not in inodes or not st.S_ISDIR(inodes[parent][1]):
                problems.append(f"entry {name!r} lives in {parent}, which is not a directory")
            links[ino] = links.get(ino, 0) + 1
            if st.S_ISDIR(inodes[ino][1]):
                subdirs[parent] = subdirs.get(parent, 0) + 1
        if ROOT_INO not in inodes:
            problems.append("root directory is missing")
        held = {r[0] for r in m.q("SELECT DISTINCT ino FROM handles")}
        for ino, (_, mode, size, nlink) in inodes.items():
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
            else:
                if nlink != links.get(ino, 0):
                    problems.append(f"inode {ino}: nlink {nlink} but {links.get(ino, 0)} entries")
            if nlink == 0 and ino not in held:
                problems.append(f"inode {ino}: orphan past its last handle")
        for ino, n in m.q("SELECT ino, COUNT(*) FROM handles GROUP BY ino"):
            if ino not in inodes:
                problems.append(f"{n} open handles on missing inode {ino}")
        if alive is not None:
            for pid, started in m.q("SELECT DISTINCT pid, started FROM handles"):
                if not alive(pid, started):
                    problems.append(f"handles of dead process {pid} not reaped")
        for (ino,) in m.q("SELECT ino FROM prealloc WHERE ino != 0"):
            if ino not in inodes:
                problems.append(f"preallocation window of missing inode {ino}")
        for mid, orig, donor, pid, started in m.q("SELECT id, orig, donor, pid, started FROM moves"):
            if orig not in inodes or donor not in inodes:
                problems.append(f"move {mid} names missing inode {orig} or {donor}")
            if alive is not None and not alive(pid, started):
                problems.append(f"move {mid} ({orig} -> {donor}) of dead process {pid} not recovered")
    return problems
