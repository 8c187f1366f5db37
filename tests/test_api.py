"""Kara's allocate(), FIEMAP, GETFSMAP, trim, statfs, directories, and the ctypes syscall."""
import errno
import os
import shutil
import subprocess
import time

import pytest

import pyfalloc
from pyfalloc import Volume, uapi
from pyfalloc.errors import FsError, LeavesImage

BS = 4096
A = uapi


def raises(code, fn, *args):
    with pytest.raises(FsError) as info:
        fn(*args)
    assert info.value.errno == code, info.value


def test_kara_fixed_start_contiguous_fixed_len(vol):
    fd = vol.open("/k", os.O_RDWR | os.O_CREAT)
    assert vol.allocate(fd, A.ALLOC_FIXED_START | A.ALLOC_CONTIGUOUS | A.ALLOC_FIXED_LEN, 5000 * BS, 8 * BS) == 8 * BS
    assert [(e.physical, e.length) for e in vol.fiemap(fd)] == [(5000 * BS, 8 * BS)]
    # a blocker 4 blocks after the goal: contiguous without FIXED_LEN returns the run it had room for
    blocker = vol.open("/blk", os.O_RDWR | os.O_CREAT)
    vol.fallocate2(blocker, 0, 0, BS, 6004 * BS)
    vol.lseek(fd, 100 * BS)
    assert vol.allocate(fd, A.ALLOC_FIXED_START | A.ALLOC_CONTIGUOUS, 6000 * BS, 16 * BS) == 4 * BS
    vol.lseek(fd, 200 * BS)
    vol.fallocate2(blocker, 0, BS, BS, 7002 * BS)
    before = vol.fiemap(fd)
    raises(errno.ENOSPC, vol.allocate, fd, A.ALLOC_FIXED_START | A.ALLOC_CONTIGUOUS | A.ALLOC_FIXED_LEN,
           7000 * BS, 8 * BS)
    assert vol.fiemap(fd) == before                   # FIXED_LEN: all or nothing
    # FIXED_START without CONTIGUOUS: starts at the goal, the rest goes elsewhere
    assert vol.allocate(fd, A.ALLOC_FIXED_START, 7000 * BS, 8 * BS) == 8 * BS
    ext = [e for e in vol.fiemap(fd) if e.logical >= 200 * BS]
    assert ext[0].physical == 7000 * BS and sum(e.length for e in ext) == 8 * BS
    assert vol.fsck() == []


def test_kara_argument_errors(vol):
    fd = vol.open("/k", os.O_RDWR | os.O_CREAT)
    raises(errno.EINVAL, vol.allocate, fd, 0, 100, BS)          # goal unaligned
    raises(errno.EINVAL, vol.allocate, fd, 0, 0, 100)           # len unaligned
    raises(errno.EINVAL, vol.allocate, fd, 0x80, 0, BS)         # unknown mode bit
    raises(errno.EINVAL, vol.allocate, fd, 0, vol.size, BS)     # goal outside the device
    vol.allocate(fd, 0, 0, 4 * BS)
    raises(errno.EEXIST, vol.allocate, fd, 0, 0, BS)            # interval already allocated


def test_fiemap_flags_and_whole_extents(vol):
    fd = vol.open("/f", os.O_RDWR | os.O_CREAT)
    vol.fallocate2(fd, 0, 0, 4 * BS, 3000 * BS)
    vol.pwrite(fd, b"x" * BS, BS)                        # splits: unwritten | written | unwritten
    ext = vol.fiemap(fd)
    assert [(e.logical // BS, e.physical // BS, e.length // BS) for e in ext] == [(0, 3000, 1), (1, 3001, 1),
                                                                               (2, 3002, 2)]
    assert [e.flags for e in ext] == [A.FIEMAP_EXTENT_UNWRITTEN, 0,
                                      A.FIEMAP_EXTENT_UNWRITTEN | A.FIEMAP_EXTENT_LAST]
    # a query inside an extent reports the whole extent
    assert vol.fiemap(fd, 3 * BS, 10)[0].logical == 2 * BS


@pytest.mark.parametrize("blocks", [16, 40, 600])
def test_a_file_written_a_block_at_a_time_stays_one_extent_past_the_small_file_size(vol, blocks):
    """Small files share a window; a file that grows past the stream size (16 blocks) one
    4 KiB write at a time keeps going right after its blocks, through the rest of that
    window and past its end, as ext4's delayed allocation places such a file at once.
    Before, its 16th block went to a window of its own elsewhere: every file written in
    small pieces had two extents, fragmented from the start."""
    for name in ("first", "second"):
        fd = vol.open(f"/{name}", os.O_RDWR | os.O_CREAT, 0o644)
        for _ in range(blocks):
            vol.write(fd, b"x" * BS)
        got = vol.fiemap(fd)
        vol.close(fd)
        assert [(e.logical, e.length) for e in got] == [(0, blocks * BS)], got


def test_a_corrupt_access_acl_is_found_by_fsck_and_answers_eio(vol):
    """An access ACL that set_acl would never write (a group entry alone), as a
    damaged table would hold it: fsck names it, and a chmod, which must rewrite it, gets
    EIO rather than a traceback or a silently dropped ACL."""
    vol.write_file("/f", b"x")
    ino = vol.stat("/f").st_ino
    with vol.fs.meta.tx() as s:
        s.put("x", (ino, b"system.posix_acl_access"), b"\x02\x00\x00\x00\x04\x00\x04\x00\xff\xff\xff\xff")
    assert any(f"inode {ino}: access ACL" in p for p in vol.fsck())
    raises(errno.EIO, lambda: vol.setattr(path="/f", mode=0o600))
    vol.removexattr("/f", "system.posix_acl_access")
    assert vol.fsck() == []


def test_getfsmap_covers_the_device_and_continues(vol):
    for i in range(20):
        fd = vol.open(f"/f{i}", os.O_RDWR | os.O_CREAT)
        vol.fallocate2(fd, 0, 0, BS, (100 + 2 * i) * BS)
        vol.close(fd)
    whole = vol.getfsmap()
    assert whole[0].physical == 0 and whole[0].owner == A.FMR_OWN_FS
    assert sum(r.length for r in whole) == vol.size
    assert all(a.physical + a.length == b.physical for a, b in zip(whole, whole[1:]))
    assert whole[-1].flags & A.FMR_OF_LAST
    pages, low = [], 0
    while True:
        page = vol.getfsmap(low=low, count=7)
        pages += page
        if page[-1].flags & A.FMR_OF_LAST:
            break
        low = page[-1].physical + page[-1].length
    assert pages == whole
    # a low key inside a record cuts that record
    cut = vol.getfsmap(low=50 * BS, count=1)[0]
    assert cut.physical == 50 * BS and cut.owner == A.FMR_OWN_FREE


def test_trim_discards_only_whole_free_granules(tmp_path):
    vol = Volume.mkfs(tmp_path / "t.img", "64M", granule="1M")
    fd = vol.open("/data", os.O_RDWR | os.O_CREAT)
    vol.fallocate2(fd, 0, 0, 8 << 20, physical=8 << 20)
    vol.pwrite(fd, os.urandom(8 << 20), 0)
    vol.fsync(fd)
    host = vol.fs.dev.host_allocated_bytes()
    assert host >= 8 << 20
    # keep one block in granule 10, free the rest of the 8 MiB
    vol.fallocate(fd, A.FALLOC_FL_PUNCH_HOLE | A.FALLOC_FL_KEEP_SIZE, 0, (2 << 20) + BS * 10)
    vol.fallocate(fd, A.FALLOC_FL_PUNCH_HOLE | A.FALLOC_FL_KEEP_SIZE, (2 << 20) + BS * 11, 6 << 20)
    r = vol.trim()
    assert r["released_bytes"] >= (7 << 20) - BS     # every granule but number 10 went back to the host
    assert vol.granules()["partial"] == 2             # the superblock's and granule 10
    assert vol.pread(fd, BS, (2 << 20) + BS * 10) != bytes(BS)
    # minlen: nothing to trim twice, and a minimum larger than any free run trims nothing
    assert vol.trim(minlen=1 << 30)["granules"] == 0
    assert vol.fsck() == []
    vol.umount()


def test_statfs_counts(vol):
    s = vol.statfs()
    assert s["f_bsize"] == BS and s["f_blocks"] == vol.size // BS
    fd = vol.open("/f", os.O_RDWR | os.O_CREAT)
    vol.fallocate2(fd, 0, 0, 10 * BS, 900 * BS)
    assert vol.statfs()["f_bfree"] == s["f_bfree"] - 10


def test_directories_rename_and_errors(vol):
    vol.mkdir("/a")
    vol.mkdir("/a/b")
    vol.write_file("/a/b/f", b"1")
    raises(errno.ENOTEMPTY, vol.rmdir, "/a")
    raises(errno.EEXIST, vol.mkdir, "/a")
    raises(errno.ENOENT, vol.open, "/nope")
    raises(errno.ENOTDIR, vol.open, "/a/b/f/x")
    raises(errno.EISDIR, vol.open, "/a", os.O_RDWR)
    raises(errno.EISDIR, vol.unlink, "/a")
    raises(errno.EINVAL, vol.rename, "/a", "/a/b/c")
    raises(errno.EBUSY, vol.rmdir, "/")                 # the root, as Linux answers for each call
    raises(errno.EISDIR, vol.unlink, "/")
    raises(errno.EEXIST, vol.mkdir, "/")
    vol.rename("/a/b/f", "/g")
    assert vol.read_file("/g") == b"1"
    vol.write_file("/h", b"2")
    vol.rename("/h", "/g")                              # replaces, the old /g is freed
    assert vol.read_file("/g") == b"2" and "h" not in vol.listdir("/")
    assert vol.stat("/a").st_nlink == 3
    vol.rmdir("/a/b")
    assert vol.stat("/a").st_nlink == 2
    assert vol.fsck() == []


def test_times_move(vol):
    fd = vol.open("/t", os.O_RDWR | os.O_CREAT)
    m0 = vol.fstat(fd).st_mtime
    time.sleep(0.01)
    vol.pwrite(fd, b"x", 0)
    assert vol.fstat(fd).st_mtime > m0


def test_one_tebibyte_image_is_cheap(tmp_path):
    vol = Volume.mkfs(tmp_path / "big.img", "1T")
    fd = vol.open("/far", os.O_RDWR | os.O_CREAT)
    vol.fallocate2(fd, 0, 0, 1 << 20, physical=(1 << 40) - (1 << 20))
    vol.pwrite(fd, b"end of the device", 0)
    assert vol.fiemap(fd)[0].physical == (1 << 40) - (1 << 20)
    assert vol.fs.dev.host_allocated_bytes() < 64 << 20
    assert vol.granules()["granules"] == 1 << 20
    assert vol.fsck() == []
    vol.umount()


def test_geometry_is_checked(tmp_path):
    for kw in ({"block_size": 3000}, {"granule": 2048}, {"group_size": "3M"}, {"size": "1000000"}):
        args = {"size": "64M", **kw}
        with pytest.raises(FsError) as info:
            Volume.mkfs(tmp_path / "g.img", **args)
        assert info.value.errno == errno.EINVAL


def test_ctypes_fallocate2_reaches_the_kernel(tmp_path):
    """Without the shim, syscall 486 is the stock kernel's: ENOSYS (the RFC was never merged)."""
    fd = os.open(tmp_path / "host", os.O_RDWR | os.O_CREAT)
    with pytest.raises(OSError) as info:
        pyfalloc.fallocate2(fd, 0, 0, 4096, physical=0)
    assert info.value.errno == errno.ENOSYS
    pyfalloc.fallocate(fd, A.FALLOC_FL_KEEP_SIZE, 0, 8192)   # the plain syscall works on host files
    assert os.fstat(fd).st_blocks >= 16 and os.fstat(fd).st_size == 0
    os.close(fd)


def test_dup_shares_the_open_file_description(vol):
    fd = vol.open("/d", os.O_RDWR | os.O_CREAT)
    other = vol.dup(fd)
    vol.write(fd, b"abc")
    assert vol.lseek(other, 0, os.SEEK_CUR) == 3          # one offset for both
    vol.close(fd)
    vol.write(other, b"def")                               # still open through the dup
    vol.unlink("/d")
    assert vol.pread(other, 6, 0) == b"abcdef"
    vol.close(other)
    assert vol.fs.t.orphans == set()


def test_policy_hook_forbids_groups(tmp_path):
    Volume.mkfs(tmp_path / "p.img", "64M", group_size="8M").umount()
    forbid = {0, 1, 2}
    vol = Volume(tmp_path / "p.img", policy=pyfalloc.Policy(preferred=[5], allowed=lambda g: g not in forbid))
    for i in range(30):
        fd = vol.open(f"/f{i}", os.O_RDWR | os.O_CREAT)
        vol.pwrite(fd, os.urandom(BS * (1 + i * 7)), 0)
        vol.close(fd)
    groups = {e.physical // (8 << 20) for i in range(30) for e in vol.fiemap_path(f"/f{i}")}
    assert groups and not groups & forbid
    vol.umount()


def test_link_counts_stop_at_the_limit_and_a_file_without_names_gets_none(vol, monkeypatch):
    """EMLINK when the count reaches LINK_MAX (ext4's 65000, lowered here); ENOENT for an
    open file whose names are all gone; fsck holds every count to its entries."""
    from pyfalloc.fs import filesystem
    monkeypatch.setattr(filesystem, "LINK_MAX", 3)
    fd = vol.open("/f", os.O_RDWR | os.O_CREAT)
    vol.link("/f", "/g")
    vol.link("/f", "/h")
    with pytest.raises(FsError) as e:
        vol.link("/f", "/i")
    assert e.value.errno == errno.EMLINK and vol.stat("/f").st_nlink == 3
    for name in ("/f", "/g", "/h"):
        vol.unlink(name)
    with pytest.raises(FsError) as e:
        vol.link("", "/back", 0x1000, fd)         # AT_EMPTY_PATH: an unlinked, not an O_TMPFILE
    assert e.value.errno == errno.ENOENT
    assert vol.fsck() == []
    vol.close(fd)


def test_a_file_with_links_keeps_a_name_as_its_names_go(vol):
    """The name index keeps one of a file's entries while it has any: path_of names a
    remaining link after the others are unlinked or renamed, and none once all are gone."""
    vol.mkdir("/d")
    fd = vol.open("/a", os.O_RDWR | os.O_CREAT)
    vol.link("/a", "/d/b")
    vol.link("/a", "/c")
    vol.unlink("/c")
    assert vol.path_of(fd) in ("/a", "/d/b")
    vol.unlink("/a")
    assert vol.path_of(fd) == "/d/b"
    vol.rename("/d/b", "/e")
    assert vol.path_of(fd) == "/e"
    vol.unlink("/e")
    with pytest.raises(FsError) as e:
        vol.path_of(fd)
    assert e.value.errno == errno.ENOENT
    assert vol.fsck() == []
    vol.close(fd)


def test_symbolic_links_through_the_api_survive_a_reopen(image):
    """symlink, readlink, lstat and realpath on the Python API; a target outside the image,
    or a relative one whose ".." passes the image's root, is EXDEV there, naming the host
    path (only the shim can go on at the host); the link's target and size are in the
    tables after a reopen and fsck holds them to each other."""
    with Volume(image) as vol:
        vol.mkdir("/d")
        vol.write_file("/d/f", b"data")
        vol.symlink("d/f", "/rel")
        vol.symlink("/pyfalloc/d", "/abs")
        vol.symlink("/etc", "/host")
        assert vol.read_file("/rel") == b"data" and vol.read_file("/abs/f") == b"data"
        assert vol.readlink("/rel") == "d/f" and vol.stat("/rel", follow=False).st_size == 3
        assert vol.realpath("/abs/f") == "/d/f"
        raises(errno.EXDEV, vol.stat, "/host/passwd")
        vol.symlink("../../etc", "/d/up")       # ".." past the image's root: the mount's parent
        with pytest.raises(LeavesImage) as out:
            vol.stat("/d/up/passwd")
        assert out.value.host == "/etc/passwd"
        raises(errno.EINVAL, vol.readlink, "/d/f")
        raises(errno.EEXIST, vol.symlink, "x", "/rel")
        raises(errno.ENOENT, vol.symlink, "", "/empty")
        vol.unlink("/host")
    with Volume(image) as vol:
        assert vol.readlink("/abs") == "/pyfalloc/d" and vol.read_file("/rel") == b"data"
        raises(errno.ENOENT, vol.readlink, "/host")
        assert vol.fsck() == []


@pytest.mark.skipif(not shutil.which("fincore"), reason="fincore is not installed (util-linux)")
def test_fadvise_willneed_reads_the_image_pages_of_the_file_ahead(vol):
    """WILLNEED brings the file's bytes into the page cache, as for a file of a kernel
    filesystem: seen from outside with fincore on the image."""
    def resident():
        out = subprocess.run(["fincore", "--bytes", "--raw", "--noheadings", "--output", "RES", vol.image],
                             capture_output=True, text=True, check=True)
        return int(out.stdout.split()[0])

    def drop():
        host = os.open(vol.image, os.O_RDONLY)
        try:
            os.posix_fadvise(host, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(host)

    fd = vol.open("/big", os.O_RDWR | os.O_CREAT, 0o644)
    vol.pwrite(fd, os.urandom(8 << 20), 0)
    vol.fsync(fd)
    drop()
    cold = resident()
    assert cold < 2 << 20
    vol.fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)       # accepted; nothing to write back or drop
    vol.fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
    deadline = time.monotonic() + 10
    while resident() < cold + (8 << 20) and time.monotonic() < deadline:
        time.sleep(0.05)                # the reads were started, not waited for
    assert resident() >= cold + (8 << 20)
    with pytest.raises(FsError) as e:
        vol.fadvise(fd, 0, -1, os.POSIX_FADV_WILLNEED)
    assert e.value.errno == errno.EINVAL
    vol.close(fd)
