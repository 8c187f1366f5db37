"""Metadata binding, crash consistency under kill -9, and handles across processes."""
import errno
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from pyfalloc import FormatError, FsError, Volume
from pyfalloc.store import shm_path

HERE = os.path.dirname(os.path.abspath(__file__))


def test_missing_metadata_is_refused_not_recreated(image):
    os.unlink(image + ".meta")
    with pytest.raises(FormatError, match="missing"):
        Volume(image)
    assert not os.path.exists(image + ".meta")


def test_foreign_metadata_is_refused(tmp_path, image):
    other = str(tmp_path / "other.img")
    Volume.mkfs(other, "64M").umount()
    shutil.copy(other + ".meta", image + ".meta")
    with pytest.raises(FormatError, match="another image"):
        Volume(image)


def test_corrupt_metadata_is_refused(image):
    with open(image + ".meta", "r+b") as f:
        f.write(b"garbage" * 100)
    with pytest.raises(FormatError, match="corrupt"):
        Volume(image)


def test_a_corrupt_bucket_of_the_checkpoint_is_euclean_where_it_is_read_and_named_by_fsck(image):
    """The per-inode tables are read a bucket at a time, each checked as it is read: a
    damaged one fails the calls that need it (EUCLEAN, as ext4 answers a bad metadata
    checksum) and fsck, which reads them all, names it; files elsewhere stay readable."""
    from pyfalloc.store import journal
    from pyfalloc.store.lazy import SHIFT
    with Volume(image) as v:
        for i in range(600):
            v.write_file(f"/f{i}", b"%d" % i)
        inos = {i: v.stat(f"/f{i}").st_ino for i in range(600)}
    # the last user folds its journal into a checkpoint
    off, n, _, _ = journal.read_checkpoint(journal.meta_path(image)).source.index["i"][1]
    with open(image + ".meta", "r+b") as f:
        f.seek(off + n // 2)
        byte = f.read(1)
        f.seek(off + n // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    with Volume(image) as v:
        good = next(i for i, ino in inos.items() if ino >> SHIFT == 0)
        bad = next(i for i, ino in inos.items() if ino >> SHIFT == 1)
        assert v.read_file(f"/f{good}") == b"%d" % good
        with pytest.raises(FsError) as e:
            v.stat(f"/f{bad}")
        assert e.value.errno == errno.EUCLEAN and "corrupt" in str(e.value)
        problems = v.fsck()
        assert len(problems) == 1 and "corrupt" in problems[0] and "'i'" in problems[0]


def test_maps_read_whole_become_plain_dicts_at_the_next_change_and_keep_every_row(image):
    """A process reads the checkpoint's buckets as it needs them; once a map is read whole,
    the next change puts a plain dict in its place (cheaper look-ups), with every row."""
    from pyfalloc.store.lazy import LazyMap
    with Volume(image) as v:
        for i in range(600):
            v.write_file(f"/f{i}", b"%d" % i)
    with Volume(image) as v:
        t = v.fs.meta.t
        assert t.inodes.__class__ is LazyMap and t.inodes._pending
        n = len(t.inodes)
        assert v.fsck() == []                   # reads every bucket
        v.write_file("/one-more", b"x")
        assert t.inodes.__class__ is dict and t.dirs.__class__ is dict and len(t.inodes) == n + 1
        assert t._source is None                # nothing keeps the checkpoint mapped
        assert [v.read_file(f"/f{i}") for i in range(600)] == [b"%d" % i for i in range(600)]
        assert v.fsck() == []


def test_image_without_superblock_is_refused(tmp_path):
    bogus = tmp_path / "bogus.img"
    bogus.write_bytes(bytes(1 << 20))
    with pytest.raises(FormatError, match="not a pyfalloc image"):
        Volume(bogus)


def test_the_last_user_leaves_everything_on_disk_and_nothing_in_memory(image):
    with Volume(image) as v:
        v.write_file("/hello", b"hi")
        log = shm_path(v.fs.dev.identity(), v.fs.dev.uuid)
        assert os.path.exists(log)                      # shared while the volume is in use
    assert not os.path.exists(log)
    with Volume(image) as v:                            # rebuilt from checkpoint + journal
        assert v.read_file("/hello") == b"hi"


UNLINK_HOLDER = """
import os, sys, time
from pyfalloc import Volume
v = Volume(sys.argv[1])
fd = v.open("/victim")
print("open", flush=True)
sys.stdin.readline()
print(v.pread(fd, 100, 0).decode(), flush=True)
if sys.argv[2] == "close":
    v.close(fd)
    v.umount()
else:
    os._exit(0)            # die with the handle open: the next opener frees the orphan
"""


@pytest.mark.parametrize("ending", ["close", "die"])
def test_unlinked_file_lives_until_last_handle_across_processes(image, ending):
    with Volume(image) as v:
        v.write_file("/victim", b"still here")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(HERE))
    holder = subprocess.Popen([sys.executable, "-c", UNLINK_HOLDER, image, ending], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env)
    assert holder.stdout.readline().strip() == "open"
    with Volume(image) as v:
        v.unlink("/victim")
        assert "victim" not in v.listdir("/")
        assert v.fsck() == []                          # an orphan with a live handle is fine
        assert len(v.fs.t.orphans) == 1
    holder.stdin.write("\n")
    holder.stdin.flush()
    assert holder.stdout.readline().strip() == "still here"
    holder.wait(timeout=30)
    with Volume(image) as v:                           # opening frees orphans nobody holds
        assert v.fs.t.orphans == set()
        assert v.fsck() == []


CRASH_WORKER = """
import os, random, sys
sys.path.insert(0, sys.argv[3])
import workload
from pyfalloc import Volume
v = Volume(sys.argv[1])
workload.run(v, "w" + sys.argv[2], int(sys.argv[2]), 100000, check_each=False)
"""


def test_kill_9_at_random_instants_leaves_a_clean_filesystem(tmp_path):
    image = str(tmp_path / "crash.img")
    Volume.mkfs(image, "32M", granule="64K", group_size="4M").umount()
    rng = random.Random(5)
    env = dict(os.environ, PYTHONPATH=os.path.dirname(HERE))
    kills = int(os.environ.get("PYFALLOC_CRASH_KILLS", 25))
    for i in range(kills):
        p = subprocess.Popen([sys.executable, "-c", CRASH_WORKER, image, str(i), HERE], env=env,
                             stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.3, 1.2))
        p.send_signal(signal.SIGKILL)
        _, err = p.communicate()
        assert p.returncode == -signal.SIGKILL, err.decode()[-2000:]
        with Volume(image) as v:
            assert v.fsck() == [], f"after kill {i}"


def test_a_journal_that_lost_commits_is_refused_not_silently_older(image):
    """The image's superblock names the last commit; a journal replaced by an older copy
    (or deleted) after more commits were made is noticed at the next opening."""
    from pyfalloc.store import journal_path
    with Volume(image) as v:
        v.write_file("/a", b"first")
        v.sync()
    old_journal = open(journal_path(image), "rb").read()
    with Volume(image) as v:
        v.write_file("/b", b"second")
        v.sync()
    with open(journal_path(image), "wb") as f:
        f.write(old_journal)
    with pytest.raises(FormatError, match="lacks commits"):
        Volume(image)


def _reloaded(t, path):
    """t written as a checkpoint at path and loaded back (buckets t never read are copied
    from the checkpoint it came from)."""
    from pyfalloc.store import journal
    from pyfalloc.store.tables import Tables
    journal.write_checkpoint(path, b"u" * 16, 1, **t.checkpoint())
    loaded = Tables(t.group_blocks)
    loaded.load(journal.read_checkpoint(path))
    return loaded


def test_a_checkpoint_loads_into_the_same_tables_as_its_rows_applied_one_by_one(image, tmp_path):
    """A checkpoint loaded (a process's start, the per-inode maps read as they are needed)
    holds every table and index that Tables.apply (the replay of changes) builds from the
    same rows: an aged volume with an unlinked open file, preallocation windows, frees
    pending on a commit, attributes and hard links. Then the same through a process that
    read only a few buckets before writing the next checkpoint."""
    from pyfalloc.store.tables import Tables
    from pyfalloc.tools import age
    with Volume(image) as vol:
        age.apply_volume(vol, age.history(vol.size, vol.block_size, seed=3, fill=0.6, churn=2))
        fd = vol.open("/held", os.O_RDWR | os.O_CREAT)
        for i in range(200):    # a growing file gets a window of its own past the shared one
            vol.pwrite(fd, b"x" * 16384, i * 16384)
        vol.unlink("/held")
        vol.close(vol.open("/tagged", os.O_RDWR | os.O_CREAT))
        for i in range(3):
            vol.setxattr("/tagged", f"user.k{i}", bytes([i]) * (i + 1))
        vol.setxattr(None, "user.on_the_orphan", b"x", 0, fd)
        vol.link("/tagged", "/tagged2")
        vol.link("/tagged", "/tagged3")
        vol.unlink("/tagged")
        t = vol.fs.meta.t
        assert t.orphans and t.pending and t.free_grp and any(ino for _, ino, _ in t.win.values())
        assert len(t.xattrs) == 2 and t.links
        rows = t.dump()
        vol.close(fd)
        assert len(t.xattrs) == 1 and vol.fsck() == []      # the orphan's went with it
    applied = Tables(t.group_blocks)
    applied.apply(rows)
    loaded = _reloaded(applied, tmp_path / "whole.meta")
    assert len(loaded.inodes) == len(applied.inodes) and loaded.inodes._pending     # known before it is read
    some = sorted(applied.inodes)
    for ino in some[:3] + some[-3:]:                                        # a process that looked at a few files
        loaded.inodes.get(ino), ino in loaded.ext, loaded.parent.get(ino)
    assert loaded.inodes._pending
    again = _reloaded(loaded, tmp_path / "again.meta")
    for other in (loaded, again):
        for name in ("settings", "inodes", "dirs", "parent", "links", "orphans", "moves", "stale_tail",
                     "xattrs", "next_ino"):
            assert getattr(other, name) == getattr(applied, name), name
        for name in ("owner", "free", "win", "pending"):
            assert list(getattr(other, name).items()) == list(getattr(applied, name).items()), name
        assert list(other.free_len) == list(applied.free_len)
        for name in ("ext", "win_of", "free_grp"):
            mine, theirs = getattr(other, name), getattr(applied, name)
            assert mine.keys() == theirs.keys(), name
            for k in theirs:
                assert list(mine[k]) == list(theirs[k]), (name, k)
                if hasattr(theirs[k], "items"):
                    assert list(mine[k].items()) == list(theirs[k].items()), (name, k)
        assert sorted(map(repr, other.dump())) == sorted(map(repr, rows))    # in bucket order


CHMODDER = """
import sys
from pyfalloc import Volume
v = Volume(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
for i in range(int(sys.argv[2])):
    v.setattr(path="/f", mode=0o600 if i % 2 else 0o640)
v.setattr(path="/f", mode=0o604)
v.umount()
"""

CONVERTER = """
import os, random, sys
from pyfalloc import Volume
v = Volume(sys.argv[1])
fd = v.open("/" + sys.argv[2], os.O_RDWR)
print("ready", flush=True)
sys.stdin.readline()
for b in random.Random(sys.argv[2]).sample(range(4096), int(sys.argv[3])):
    v.pwrite(fd, b.to_bytes(4, "little") * 1024, b * 4096)
v.close(fd)
v.umount()
"""


def test_writers_changing_their_files_ahead_of_the_log_lose_no_other_change(image):
    """Writes that turn unwritten blocks written are made ahead of the log's lock when the
    writer's tables reflect the file: another writer's file, and a chmod that changes the
    written file's inode row without its lock, both land, and every block reads what was
    written to it."""
    with Volume(image) as v:
        for name in ("f", "g"):
            fd = v.open("/" + name, os.O_RDWR | os.O_CREAT, 0o644)
            v.fallocate(fd, 0, 0, 4096 * 4096)
            v.close(fd)
    env = dict(os.environ, PYTHONPATH=os.path.dirname(HERE))
    procs = [subprocess.Popen([sys.executable, "-c", CONVERTER, image, name, "1500"], env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for name in ("f", "g")]
    procs.append(subprocess.Popen([sys.executable, "-c", CHMODDER, image, "600"], env=env,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        p.stdin.write("\n")
        p.stdin.flush()
    for p in procs:
        assert p.wait(timeout=300) == 0
    with Volume(image) as v:
        assert v.stat("/f").st_mode & 0o777 == 0o604
        for name in ("f", "g"):
            data = v.read_file("/" + name)
            for b in random.Random(name).sample(range(4096), 1500):
                assert data[b * 4096:(b + 1) * 4096] == b.to_bytes(4, "little") * 1024, (name, b)
        assert v.fsck() == []


def test_a_change_of_the_inode_made_meanwhile_sends_a_change_ahead_back_to_be_made_again(image):
    """A write's change made ahead of the log's lock, met by another process's change of
    the same inode row (a chmod takes no inode lock), is undone and made again after
    catching up: both land."""
    with Volume(image) as a, Volume(image) as b:     # two stores, as two processes
        fd = a.open("/f", os.O_RDWR | os.O_CREAT, 0o644)
        a.fallocate(fd, 0, 0, 1 << 20)
        a.pwrite(fd, b"a" * 4096, 0)                 # a's tables now reflect the file
        made = []
        convert = a.fs.extmap.set_unwritten

        def chmod_meanwhile(*args):
            made.append(a.fs.meta._ahead_change)
            if len(made) == 1:
                b.setattr(path="/f", mode=0o604)
            return convert(*args)
        a.fs.extmap.set_unwritten = chmod_meanwhile
        a.pwrite(fd, b"b" * 4096, 8192)
        assert made == [True, False]                 # ahead first, then again after catching up
        for v in (a, b):
            st = v.stat("/f")
            assert st.st_mode & 0o777 == 0o604 and st.st_size == 1 << 20
            assert v.read_file("/f")[8192:12288] == b"b" * 4096
        a.close(fd)
        assert a.fsck() == []


def test_an_open_whose_hold_lands_while_an_unlink_asks_for_holders_finds_the_file_gone(image):
    """An unlink's change asks whether anyone holds the file, finds nobody, and frees it
    when it is published. An open in another process that looked the name up before and
    takes its hold in between must wait for that change (the change said so in the shared
    log before it asked) and then find the file gone: ENOENT, not a descriptor of a freed
    inode."""
    with Volume(image) as a, Volume(image) as b:     # two stores, as two processes
        a.write_file("/f", b"x")
        assert b.stat("/f").st_size == 1             # b's tables hold the name
        asked = a.fs.handles.in_use
        got = []

        def opener():
            try:
                fd = b.open("/f")
                got.append(("opened", b.fstat(fd).st_nlink))
                b.close(fd)
            except FsError as e:
                got.append(errno.errorcode[e.errno])

        def ask_then_open(ino, probe):
            held = asked(ino, probe)
            t = threading.Thread(target=opener)
            t.start()
            t.join(0.5)             # b holds the file by now and waits for this change
            got.append("waiting" if t.is_alive() else "done")
            return held
        a.fs.handles.in_use = ask_then_open
        a.unlink("/f")
        a.fs.handles.in_use = asked
        deadline = time.time() + 30
        while len(got) < 2 and time.time() < deadline:
            time.sleep(0.01)
        assert got == ["waiting", "ENOENT"]
        assert a.fs.t.orphans == set() and b.fsck() == []


def test_a_reaping_notice_left_by_a_dead_process_is_cleared_by_the_next_change(image):
    """A process that died inside a change that may free inodes leaves its notice in the
    shared log: opens then wait for the writer's lock (correct, slower) until the next
    change clears it."""
    with Volume(image) as v:
        v.write_file("/f", b"x")
        v.fs.meta.log.put("reaping", 1)
        assert v.read_file("/f") == b"x"            # an open still works meanwhile
        v.write_file("/g", b"y")
        assert not v.fs.meta.reaping()
        assert v.fsck() == []


def test_other_changes_go_on_while_a_commit_writes_the_journal(image):
    """A commit writes the journal without the log's lock (as jbd2 lets handles start while
    a transaction commits): another process creates and writes a file meanwhile, at once.
    Its change is not in that commit; the next commit makes it durable, and the frees the
    first commit covered go back to the free map."""
    with Volume(image) as a, Volume(image) as b:     # two stores, as two processes
        a.write_file("/gone", b"x" * 8192)
        a.unlink("/gone")                            # its two blocks wait for a commit
        store = a.fs.meta
        flush = store.flush_data
        seen = []

        def flush_then_change():
            flush()
            t = threading.Thread(target=lambda: seen.append(b.write_file("/meanwhile", b"m")))
            t.start()
            t.join(10)
            seen.append("blocked" if t.is_alive() else "went on")
        store.flush_data = flush_then_change
        store.commit()
        store.flush_data = flush
        assert seen == [1, "went on"]
        assert store.durable() < store.log.get("tail")      # b's change came after
        assert store.t.pending == {}                        # a's commit covered the unlink
        b.fs.meta.commit()
        assert store.durable() == store.log.get("tail")
        assert a.fsck() == [] and b.fsck() == []
    with Volume(image) as v:
        assert v.read_file("/meanwhile") == b"m" and "gone" not in v.listdir("/")


def test_a_commit_that_queued_behind_one_that_covers_it_writes_no_journal_block(image):
    """Group commit: b's fsync asks while a's commit is writing, and a's commit covers all
    b must make durable (b's change was published before a's commit read the log). b then
    writes no journal block of its own, although c published another change meanwhile
    (which stays for the next commit): one block for both fsyncs."""
    with Volume(image) as a, Volume(image) as b, Volume(image) as c:
        b.write_file("/b", b"b")
        wanted = b.fs.meta.log.get("tail")
        store = a.fs.meta
        seq = store.log.get("commit_seq")
        flush = store.flush_data
        queued = []

        def flush_while_others_go_on():
            store.flush_data = flush
            t = threading.Thread(target=b.fs.meta.commit)
            t.start()
            queued.append(t)
            time.sleep(0.2)                  # b has asked and waits for the commit lock
            c.write_file("/c", b"c")
            flush()
        store.flush_data = flush_while_others_go_on
        store.commit()
        queued[0].join(30)
        assert not queued[0].is_alive()
        assert store.log.get("commit_seq") == seq + 1
        assert wanted <= store.durable() < store.log.get("tail")
        c.fs.meta.commit()
        assert store.log.get("commit_seq") == seq + 2
    with Volume(image) as v:
        assert v.read_file("/b") == b"b" and v.read_file("/c") == b"c"


LAST_USER_UNLINKS = """
import os, sys
from pyfalloc import Volume
v = Volume(sys.argv[1])
v.unlink("/f")
v.fs.meta.leave()           # a shimmed program's exit as the last user
os._exit(0)
"""


def test_a_commit_with_nothing_to_journal_still_returns_durable_frees(image):
    """The last user's exit journals an unlink and frees its blocks after the commit; that
    last change is not journaled, so the next opener finds the blocks pending in a durable
    state. Its first commit has nothing to write, and must still return them (fstrim's
    commit relies on it to discard them)."""
    with Volume(image) as v:
        v.write_file("/f", b"x" * (1 << 20))
    env = dict(os.environ, PYTHONPATH=os.path.dirname(HERE))
    subprocess.run([sys.executable, "-c", LAST_USER_UNLINKS, image], env=env, check=True)
    with Volume(image) as v:
        assert sum(v.fs.t.pending.values()) == 256
        v.fs.meta.commit()
        assert v.fs.t.pending == {} and v.fsck() == []



HOLDER = """
import os, sys
from pyfalloc import Volume
v = Volume(sys.argv[1])
fd = v.open("/f", os.O_RDWR)
ino = v.fstat(fd).st_ino
v.fs.locks.inode(ino).__enter__()           # the file's inode lock
v.fs.meta.tx().__enter__()                  # and the shared log's writer lock
os.write(1, b"held")
os.read(0, 1)                               # until killed
"""

WAITER = """
import sys
from pyfalloc import Volume
with Volume(sys.argv[1]) as v:
    v.write_file("/g", b"y")
"""


def test_a_process_killed_holding_the_writer_and_inode_locks_leaves_them_to_the_next(image):
    """The writer lock and the inode locks are mutexes in the shared log's mapping, not OFD
    locks the kernel drops with a descriptor: robust ones, so a holder killed with both
    leaves them to the next taker. A change waiting in another process goes on, then a
    change of the file the dead process held, and fsck finds the volume clean."""
    with Volume(image) as v:
        v.write_file("/f", b"x")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(HERE))
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, image], env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE)
    waiter = None
    try:
        assert holder.stdout.read(4) == b"held"
        waiter = subprocess.Popen([sys.executable, "-c", WAITER, image], env=env)
        with pytest.raises(subprocess.TimeoutExpired):
            waiter.wait(1.5)                    # a change waits while the writer lock is held
        holder.kill()
        holder.wait()
        assert waiter.wait(10) == 0, "the dead holder's writer lock was not handed on"
    finally:
        for p in (holder, waiter):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    with Volume(image) as v:
        fd = v.open("/f", os.O_RDWR)
        v.fallocate(fd, 0, 0, 1 << 20)          # under the inode lock the dead process held
        v.close(fd)
        assert v.stat("/f").st_size == 1 << 20 and v.read_file("/g") == b"y"
        assert v.fsck() == []


OPENER = """
import errno, sys
from pyfalloc import FsError, Volume
try:
    with Volume(sys.argv[1]) as v:
        v.write_file("/from-there", b"z")
except FsError as e:
    print(errno.errorcode[e.errno])
else:
    print("opened")
"""


def test_a_volume_in_use_is_refused_from_another_pid_namespace_and_opened_once_left(image):
    """The writer and inode locks are robust mutexes, which name their holder by thread id:
    a process of another PID namespace could have the number of a thread that holds one
    here and take it as its own. While the volume is in use here, an opening from another
    PID namespace is refused (EBUSY); once its users are gone, even leaving the shared log
    behind (killed), that opening rebuilds the log and goes on."""
    if subprocess.run(["unshare", "--pid", "--fork", "true"], capture_output=True).returncode:
        pytest.skip("cannot make a PID namespace here (unshare --pid needs CAP_SYS_ADMIN)")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(HERE))
    there = ["unshare", "--pid", "--fork", sys.executable, "-c", OPENER, image]
    with Volume(image) as v:
        v.write_file("/f", b"x")
        out = subprocess.run(there, env=env, capture_output=True, text=True)
        assert out.stdout.strip() == "EBUSY", out.stderr[-2000:]
        assert v.read_file("/f") == b"x" and "from-there" not in v.listdir("/")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, image], env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE)
    try:
        assert holder.stdout.read(4) == b"held"
    finally:
        holder.kill()
        holder.wait()
    out = subprocess.run(there, env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "opened", out.stderr[-2000:]
    with Volume(image) as v:
        assert v.read_file("/from-there") == b"z" and v.fsck() == []
