"""Shared mappings (MAP_SHARED) of image files: coherent with every other mapping, read and
write, in this process and others, as on ext4 (each script runs in a host ext4 directory and
on the image, outputs compared); what msync covered survives a power cut."""
import glob
import os
import shutil
import subprocess
import sys

import pytest
from test_shim_programs import both

from pyfalloc import Volume
from pyfalloc.shim.run import environment

COHERENT = r"""
import ctypes, errno, mmap, os, subprocess, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
p = sys.argv[1] + "/m"
fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.pwrite(fd, b"a" * 10000, 0)
m1 = mmap.mmap(fd, 10000)
m2 = mmap.mmap(fd, 4096, offset=4096)
m1[4096:4101] = b"HELLO"
print("other mapping, read:", m2[:5], os.pread(fd, 5, 4096))
os.pwrite(fd, b"write", 100)
print("write seen by the mapping:", m1[100:105])
print("another process, before any msync:", subprocess.run(["cat", p], capture_output=True).stdout[4094:4103])
os.ftruncate(fd, 5000)
os.ftruncate(fd, 10000)
print("cut and grown again:", m1[4998:5003], os.pread(fd, 4, 4998))
print("punch:", libc.fallocate(fd, 3, 0, 4096), m1[:4], m1[4096:4099])
m1[0:3] = b"xyz"
m1.flush()
print("after msync:", os.pread(fd, 3, 0))
ro = os.open(p, os.O_RDONLY)
try:
    mmap.mmap(ro, 4096)
except OSError as e:
    print("writable mapping of a read-only descriptor:", errno.errorcode[e.errno])
r = mmap.mmap(ro, 4096, prot=mmap.PROT_READ)
print("read-only mapping:", r[:3])
m2.close(); m1.close(); r.close()
print("after the last unmap:", os.pread(fd, 3, 0), os.pread(fd, 5, 4096))
pid = os.fork()
if pid == 0:
    m = mmap.mmap(fd, 4096)
    m[10:14] = b"kid!"
    os._exit(0)
os.waitpid(pid, 0)
print("stored by a child that exited:", os.pread(fd, 4, 10))

# a sparse file keeps its holes: only the blocks stored to become data
s = os.open(sys.argv[1] + "/sparse", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.ftruncate(s, 1 << 20)
m = mmap.mmap(s, 1 << 20)
m[600000] = 7
m.close()
segments, pos = [], 0
while True:
    try:
        d = os.lseek(s, pos, os.SEEK_DATA)
    except OSError:
        break
    pos = os.lseek(s, d, os.SEEK_HOLE)
    segments.append((d, pos))
print("data after write-back:", segments, os.pread(s, 1, 600000))

g = os.open(sys.argv[1] + "/grown", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.pwrite(g, b"g" * 4096, 0)
m = mmap.mmap(g, 4096)
m.resize(16384)                 # the file grows (ftruncate), the mapping moves (mremap)
m[12000:12004] = b"more"
print("resized:", os.fstat(g).st_size, os.pread(g, 4, 12000), m[4094:4098])
m.close()
print("after its unmap:", os.pread(g, 4, 12000))
"""


def test_shared_mappings_are_coherent_as_on_ext4(image, host_dir):
    host, img = both(image, host_dir, [sys.executable, "-c", COHERENT, "{}"])
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    assert img.stdout == host.stdout
    assert "another process, before any msync: b'aaHELLOaa'" in img.stdout
    assert "data after write-back: [(598016, 602112)]" in img.stdout
    with Volume(image) as vol:
        assert vol.read_file("/m")[:14] == b"xyz" + bytes(7) + b"kid!"
        assert vol.fsck() == []


WAL = r"""
import sqlite3, subprocess, sys
db = sys.argv[1] + "/wal.db"
c = sqlite3.connect(db)
print(c.execute("pragma journal_mode=wal").fetchone())
c.execute("create table t(x integer, y text)")
c.executemany("insert into t values (?, ?)", [(i, str(i) * 20) for i in range(3000)])
c.commit()
# another process reads through the WAL and the shared-memory index while this one holds
# the database open (nothing checkpointed yet), then writes through them
print(subprocess.run(["sqlite3", db, "select count(*), sum(x) from t; insert into t values (-1, 'other');"],
                     capture_output=True, text=True).stdout.strip())
print(c.execute("select count(*), sum(x) from t").fetchone())
c.execute("delete from t where x % 2 = 0")
c.commit()
print(c.execute("pragma wal_checkpoint(truncate)").fetchone()[0])
print(c.execute("select count(*), sum(x) from t").fetchone(), c.execute("pragma integrity_check").fetchone())
c.close()
"""


@pytest.mark.skipif(not shutil.which("sqlite3"), reason="the sqlite3 shell is not installed (apt sqlite3)")
def test_sqlite_in_wal_mode_across_processes_as_on_ext4(image, host_dir):
    """SQLite's WAL mode maps its -shm index shared in every connection's process."""
    host, img = both(image, host_dir, [sys.executable, "-c", WAL, "{}"])
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    assert img.stdout == host.stdout
    assert img.stdout.splitlines()[:2] == ["('wal',)", "3000|4498500"]


POWER_CUT = r"""
import mmap, os, signal
fd = os.open("/pyfalloc/f", os.O_RDWR | os.O_CREAT, 0o644)
os.ftruncate(fd, 1 << 16)
m = mmap.mmap(fd, 1 << 16)
m[:6] = b"synced"
m.flush()                       # msync(MS_SYNC)
m[32768:32776] = b"unsynced"
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_what_msync_covered_survives_a_power_cut(image):
    """The process is killed with a mapping whose later stores were never synced, then the
    machine's memory is lost (the shared log and runtime directory in /dev/shm: the copy
    goes with them): the volume opens with the synced stores and fsck is clean."""
    r = subprocess.run([sys.executable, "-c", POWER_CUT], env=environment(image), capture_output=True, text=True)
    assert r.returncode == -9, r.stderr
    with open(image, "rb") as f:
        uuid = f.read(28)[12:28].hex()          # the superblock's; names the volume's /dev/shm files
    for path in glob.glob(f"/dev/shm/pyfalloc-{uuid}-*"):
        shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)
    with Volume(image) as vol:
        data = vol.read_file("/f")
        assert data[:6] == b"synced"
        assert data[32768:32776] in (b"unsynced", bytes(8))
        assert vol.fsck() == []


LMDB = r"""
import lmdb, sys
d = sys.argv[1] + "/lm"
env = lmdb.open(d, map_size=64 << 20)
with env.begin(write=True) as t:
    for i in range(3000):
        t.put(str(i).encode(), str(i).encode() * 10)
with env.begin() as t:
    print(t.stat()["entries"], t.get(b"2999")[:8])
env.close()
env = lmdb.open(d, map_size=64 << 20, writemap=True)     # writes through the shared mapping
with env.begin(write=True) as t:
    t.put(b"w", b"writemap")
    t.delete(b"17")
env.sync(True)
env.close()
env = lmdb.open(d, readonly=True)
with env.begin() as t:
    print(t.stat()["entries"], t.get(b"w"), t.get(b"17"), sum(1 for _ in t.cursor()))
"""


def _system_python_with_lmdb():
    exe = shutil.which("python3", path="/usr/bin")
    if exe and subprocess.run([exe, "-c", "import lmdb"], capture_output=True).returncode == 0:
        return exe
    return None


@pytest.mark.skipif(_system_python_with_lmdb() is None, reason="python3-lmdb is not installed (apt python3-lmdb)")
def test_lmdb_maps_its_database_shared_as_on_ext4(image, host_dir):
    """LMDB maps its data file shared (read-only, or writable with writemap) and its lock
    file's reader table shared."""
    host, img = both(image, host_dir, [_system_python_with_lmdb(), "-c", LMDB, "{}"])
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    assert img.stdout == host.stdout
    assert img.stdout.splitlines() == ["3000 b'29992999'", "3000 b'writemap' None 3000"]
