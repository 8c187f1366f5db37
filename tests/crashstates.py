"""Power-cut states from a recorded write stream, in the spirit of CrashMonkey and SQLite's
crash VFS.

`record(workload)` runs a workload on a fresh volume with pyfalloc.device.hostio's recorder
on: every write, punch, truncate, sync and rename the volume issues to its host files, in
issue order, interleaved with what the workload did and saw (`Oracle`). `states(events)`
then builds what a disk may hold after a power cut at event k: for each host file, every
event up to its last sync before k, plus any subset of the later ones (reordered across
files, torn at 512-byte sectors or 4 KiB pages). `check(state)` opens each state as a
volume and holds it to the durability contract:

- the volume opens and fsck finds nothing (no block owned twice, tables consistent);
- every file shows, sector by sector, bytes that this file held at some moment no earlier
  than the last commit before the cut (what an fsync or sync covered is there; no other
  file's data, no deleted data, no stale data); the sector where a shorter version ended
  may join that version's bytes to a longer one's (a shrink not yet durable);
- every file that existed at that commit and was not removed or renamed since still exists.
"""
import os
import random
import shutil
import tempfile

from pyfalloc import Volume
from pyfalloc.device import hostio
from pyfalloc.store import volume_files

SECTOR = 512
PAGE = 4096


class Oracle:
    """What the workload did: file versions by inode, and where commits completed."""

    def __init__(self, events):
        self.events = events

    def version(self, vol, path):
        """Note the file's content and name now (after a change to it)."""
        ino = vol.stat(path).st_ino
        self.events.append(("version", ino, path, vol.read_file(path)))

    def gone(self, ino):
        """The file left its name (unlink, or a rename over it or of it)."""
        self.events.append(("gone", ino))

    def symlink(self, path, target):
        """A symbolic link made (links are not renamed or removed by the workload)."""
        self.events.append(("symlink", path, target))

    def committed(self):
        """An fsync/sync/umount returned: everything before it must survive."""
        self.events.append(("commit",))


def record(image, workload, size="8M", **geometry):
    """Make a volume, then run workload(vol, oracle) recording the stream. Returns the
    host files as they were before (path -> bytes) and the events."""
    vol = Volume.mkfs(image, size, **geometry)
    vol.umount()
    base = {}
    for path in volume_files(image):
        with open(path, "rb") as f:
            base[path] = f.read()
    events = []
    hostio.recorder = events.append
    try:
        vol = Volume(image)
        oracle = Oracle(events)
        workload(vol, oracle)
        vol.umount()
        oracle.committed()
    finally:
        hostio.recorder = None
    return base, events


IO = ("write", "punch", "truncate")


def crash_points(events):
    """Indexes worth cutting at: right after every sync, and every host I/O."""
    return [i + 1 for i, e in enumerate(events) if e[0] in IO or e[0] in ("sync", "rename")]


def build(base, events, k, rng):
    """The host files after a power cut once events[:k] were issued. Per file: everything
    up to its last sync before k; of the later writes, each 4 KiB page holds the page cache's
    content at some moment (a random prefix of the writes to it, as writeback takes a whole
    page), and a page may be torn at 512-byte sectors; a later punch or truncate happened
    or not. Files are independent of each other, so any order across files occurs."""
    last_sync = {}
    for i, e in enumerate(events[:k]):
        if e[0] == "sync":
            last_sync[e[1]] = i
        elif e[0] == "rename":              # replace() syncs the directory before it records
            last_sync[e[2]] = i
    files = {p: bytearray(b) for p, b in base.items()}
    unsynced = {}
    for i, e in enumerate(events[:k]):
        kind = e[0]
        if kind == "rename":
            files[e[2]] = files.pop(e[1], bytearray())
        elif kind in IO:
            if i < last_sync.get(e[1], -1):
                _apply(files.setdefault(e[1], bytearray()), e)
            else:
                unsynced.setdefault(e[1], []).append(e)
    for path, later in unsynced.items():
        data = files.setdefault(path, bytearray())
        before = bytes(data)
        touches = {}
        for n, e in enumerate(later):
            if e[0] == "write":
                for page in range(e[2] // PAGE, (e[2] + len(e[3]) - 1) // PAGE + 1):
                    touches.setdefault(page, []).append(n)
        cut = {page: rng.randint(0, len(ns)) for page, ns in touches.items()}
        for n, e in enumerate(later):
            if e[0] != "write":
                if rng.random() < 0.5:
                    _apply(data, e)
                continue
            pos, blob = e[2], e[3]
            for page, ns in touches.items():
                if n in ns[:cut[page]]:
                    lo, hi = max(pos, page * PAGE), min(pos + len(blob), (page + 1) * PAGE)
                    _write(data, lo, blob[lo - pos:hi - pos])
        for page in touches:
            if rng.random() < 0.2:                  # the page's writeback torn at sectors
                for sec in range(page * PAGE, (page + 1) * PAGE, SECTOR):
                    if rng.random() < 0.5 and sec < len(data):
                        old = before[sec:sec + SECTOR]
                        data[sec:sec + len(old)] = old
    return files


def _apply(data, e):
    kind = e[0]
    if kind == "write":
        _write(data, e[2], e[3])
    elif kind == "punch":
        _, _, pos, length = e
        end = min(pos + length, len(data))
        if pos < end:
            data[pos:end] = bytes(end - pos)
    else:
        size = e[2]
        del data[size:]
        data.extend(bytes(size - len(data)))


def _write(data, pos, blob):
    if len(data) < pos + len(blob):
        data.extend(bytes(pos + len(blob) - len(data)))
    data[pos:pos + len(blob)] = blob


def expectations(events, k):
    """From the events before the cut: per inode, the versions it may show (from the one
    current at the last commit on) and the names it had; the inodes that must exist."""
    versions, current, floor = {}, {}, {}
    names = {}
    alive_at_commit, dead = set(), set()
    gone_after = set()
    for e in events[:k]:
        if e[0] == "version":
            _, ino, path, data = e
            versions.setdefault(ino, []).append(data)
            current[ino] = len(versions[ino]) - 1
            names.setdefault(ino, set()).add(path)
        elif e[0] == "gone":
            gone_after.add(e[1])
            current.pop(e[1], None)
        elif e[0] == "commit":
            floor = dict(current)
            alive_at_commit = set(current)
            dead = set(versions) - alive_at_commit     # removed, and the removal committed
            gone_after = set()
    allowed = {ino: vs[floor.get(ino, 0):] for ino, vs in versions.items() if ino not in dead}
    # the operation under way at the cut has issued writes whose version is noted after it
    for e in events[k:]:
        if e[0] == "version":
            allowed.setdefault(e[1], []).append(e[3])
            names.setdefault(e[1], set()).add(e[2])
            break
    must_exist = alive_at_commit - gone_after
    return allowed, names, must_exist


def link_targets(events, k):
    """The symbolic links of the workload: every one's target (a state cut inside the
    symlink call may hold it before its event), and those made before the last commit."""
    targets, made, durable = {}, set(), set()
    for i, e in enumerate(events):
        if e[0] == "symlink":
            targets[e[1]] = e[2]
            if i < k:
                made.add(e[1])
        elif e[0] == "commit" and i < k:
            durable |= made
    return targets, durable


def check(vol, allowed, names, must_exist, links=None):
    """Problems of a recovered volume against the contract; empty when it holds. links:
    link_targets()."""
    problems = [f"fsck: {p}" for p in vol.fsck()]
    targets, durable = links or ({}, set())
    found = dict(_links(vol))
    for path, target in found.items():
        if targets.get(path) != target:
            problems.append(f"{path}: a symbolic link to {target!r}, which the workload never made")
    for path in durable - set(found):
        problems.append(f"{path}: a symbolic link made before a commit is gone")
    seen = set()
    for path, ino in _files(vol):
        seen.add(ino)
        if ino not in allowed:
            problems.append(f"{path}: inode {ino} is not a file the workload had at or after the last commit")
            continue
        if path not in names[ino]:
            problems.append(f"{path}: inode {ino} never had this name")
        data = vol.read_file(path)
        if len(data) not in {len(v) for v in allowed[ino]}:
            problems.append(f"{path}: size {len(data)} is none of the sizes it had since the last commit")
        for off in range(0, len(data), SECTOR):
            piece = data[off:off + SECTOR]
            if not _sector_given(piece, off, allowed[ino]):
                problems.append(f"{path}: bytes {off}..{off + len(piece)} are none it was given")
                break
    for ino in must_exist - seen:
        problems.append(f"inode {ino} ({sorted(names[ino])}) was durable and is gone")
    return problems


def _sector_given(piece, off, versions):
    """The sector at off holds what some version had there; or, when a shorter version ends
    inside it, that version's bytes up to its end and a longer version's after: an
    overwrite of a file whose shrinking is not durable yet, shown at the old size (data
    newer than the metadata, which data=ordered allows; ext4 would show zeros past the
    end, which the file never had)."""
    n = len(piece)
    if any(v[off:off + n] == piece for v in versions):
        return True
    for short in versions:
        cut = len(short) - off
        if 0 < cut < n and short[off:] == piece[:cut] \
                and any(len(v) >= off + n and v[off + cut:off + n] == piece[cut:] for v in versions):
            return True
    return False


def _entries(vol, top="/"):
    for name in vol.listdir(top):
        path = top.rstrip("/") + "/" + name
        s = vol.stat(path, follow=False)
        if s.st_mode & 0o170000 == 0o040000:
            yield from _entries(vol, path)
        else:
            yield path, s


def _files(vol):
    return ((path, s.st_ino) for path, s in _entries(vol) if s.st_mode & 0o170000 != 0o120000)


def _links(vol):
    return ((path, vol.readlink(path)) for path, s in _entries(vol) if s.st_mode & 0o170000 == 0o120000)


def run_states(image, base, events, count, seed):
    """Build and check `count` states (every sync point first, then random cuts); returns
    (states checked, failures as (k, problems))."""
    rng = random.Random(seed)
    points = crash_points(events)
    syncs = [i + 1 for i, e in enumerate(events) if e[0] == "sync"]
    order = syncs + [rng.choice(points) for _ in range(max(0, count - len(syncs)))]
    failures = []
    workdir = tempfile.mkdtemp(prefix="crash-", dir=os.path.dirname(image))
    target = os.path.join(workdir, "state.img")
    try:
        for k in order[:count]:
            files = build(base, events, k, rng)
            for src, dst in zip(volume_files(image), volume_files(target)):
                with open(dst, "wb") as f:
                    f.write(files.get(src, b""))
            allowed, names, must_exist = expectations(events, k)
            links = link_targets(events, k)
            try:
                with Volume(target) as vol:
                    problems = check(vol, allowed, names, must_exist, links)
            except Exception as e:          # a state that does not open breaks the contract too
                problems = [f"open: {type(e).__name__}: {e}"]
            finally:
                _drop_shared_log(target)
            if problems:
                failures.append((k, problems))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return len(order[:count]), failures


def _drop_shared_log(image):
    """A state that failed to open may leave its log in /dev/shm; the next state reuses
    the path (and maybe the inode), so it must not find it."""
    for name in os.listdir("/dev/shm"):
        if name.startswith("pyfalloc-"):
            try:
                st = os.stat(image)
            except FileNotFoundError:
                return
            if name.endswith(f"-{st.st_dev:x}-{st.st_ino:x}"):
                os.unlink(os.path.join("/dev/shm", name))
