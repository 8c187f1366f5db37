"""Each fallocate2 rule of the reference semantics, checked on a pyfalloc volume."""
import errno
import os
import shutil

import pytest
from conftest import run_py

from pyfalloc import NO_HINT, Volume, uapi
from pyfalloc.errors import FsError

BS = 4096


def new_file(vol, path="/f", flags=os.O_RDWR | os.O_CREAT):
    return vol.open(path, flags)


def placement(vol, fd):
    return [(e.logical, e.physical, e.length, bool(e.flags & uapi.FIEMAP_EXTENT_UNWRITTEN)) for e in vol.fiemap(fd)]


def raises(code, fn, *args, **kw):
    with pytest.raises(FsError) as info:
        fn(*args, **kw)
    assert info.value.errno == code, info.value
    return info.value


def test_all_ones_means_no_hint_same_as_fallocate(vol):
    a, b = new_file(vol, "/a"), new_file(vol, "/b")
    vol.fallocate2(a, 0, 0, 40 * BS, NO_HINT)
    vol.fallocate2(b, 0, 0, 40 * BS, -1)           # -1 as a signed value is the same hint
    assert vol.fstat(a).st_size == vol.fstat(b).st_size == 40 * BS
    assert all(e.flags & uapi.FIEMAP_EXTENT_UNWRITTEN for e in vol.fiemap(a) + vol.fiemap(b))


def test_logical_block_lands_at_physical_plus_offset(vol):
    fd = new_file(vol)
    vol.fallocate2(fd, 0, 3 * BS, 5 * BS, physical=1000 * BS)
    assert placement(vol, fd) == [(3 * BS, 1000 * BS, 5 * BS, True)]
    # an unaligned offset starts at its block: block 10 -> 2000, block 11 -> 2001
    vol.fallocate2(fd, 0, 10 * BS + 100, BS, physical=2000 * BS)
    assert placement(vol, fd)[-1] == (10 * BS, 2000 * BS, 2 * BS, True)
    assert vol.fstat(fd).st_size == 11 * BS + 100


def test_keep_size_with_hint(vol):
    fd = new_file(vol)
    vol.fallocate2(fd, uapi.FALLOC_FL_KEEP_SIZE, 0, 4 * BS, physical=500 * BS)
    assert vol.fstat(fd).st_size == 0
    assert placement(vol, fd) == [(0, 500 * BS, 4 * BS, True)]


def test_blocks_already_at_target_are_left_alone(vol):
    fd = new_file(vol)
    vol.fallocate2(fd, 0, 0, 4 * BS, physical=700 * BS)
    vol.pwrite(fd, b"x" * BS, 0)
    vol.fallocate2(fd, 0, 0, 8 * BS, physical=700 * BS)     # first 4 already there: kept, data too
    assert vol.pread(fd, 1, 0) == b"x"
    assert sum(e.length for e in vol.fiemap(fd)) == 8 * BS
    assert {e.physical // BS for e in vol.fiemap(fd)} <= set(range(700, 708))


def test_block_mapped_elsewhere_is_eexist(vol):
    fd = new_file(vol)
    vol.fallocate2(fd, 0, 0, 2 * BS, physical=300 * BS)
    raises(errno.EEXIST, vol.fallocate2, fd, 0, 0, 2 * BS, physical=400 * BS)


def test_busy_target_is_enospc_and_earlier_blocks_stay(vol):
    other = new_file(vol, "/other")
    vol.fallocate2(other, 0, 0, BS, physical=1005 * BS)
    fd = new_file(vol)
    raises(errno.ENOSPC, vol.fallocate2, fd, 0, 0, 10 * BS, physical=1000 * BS)
    assert placement(vol, fd) == [(0, 1000 * BS, 5 * BS, True)]
    assert vol.fstat(fd).st_size == 5 * BS             # size follows what was placed, as ext4
    assert vol.fsck() == []


def test_preallocation_window_covering_target_is_discarded(vol):
    # a 100-block write opens a per-inode window behind its blocks
    stream = new_file(vol, "/stream")
    vol.pwrite(stream, b"s" * 100 * BS, 0)
    windows = vol.getfsmap()
    pre = [r for r in windows if r.owner == uapi.PYFALLOC_FMR_OWN_PREALLOC]
    assert pre, "expected a preallocation window after a streaming write"
    target = pre[0].physical
    fd = new_file(vol)
    vol.fallocate2(fd, 0, 0, BS, physical=target)
    assert placement(vol, fd) == [(0, target, BS, True)]
    assert not [r for r in vol.getfsmap() if r.owner == uapi.PYFALLOC_FMR_OWN_PREALLOC
                and r.physical <= target < r.physical + r.length]
    assert vol.read_file("/stream") == b"s" * 100 * BS
    assert vol.fsck() == []


def test_hint_with_other_modes_is_eopnotsupp(vol):
    fd = new_file(vol)
    vol.pwrite(fd, b"a" * 8 * BS, 0)
    for mode in (0x3, 0x10, 0x11, 0x8, 0x20, 0x40, 0x41, 0x80):
        raises(errno.EOPNOTSUPP, vol.fallocate2, fd, mode, 0, BS, physical=900 * BS)


def test_unaligned_or_outside_goal_is_einval(vol):
    fd = new_file(vol)
    raises(errno.EINVAL, vol.fallocate2, fd, 0, 0, BS, physical=900 * BS + 512)
    raises(errno.EINVAL, vol.fallocate2, fd, 0, 0, BS, physical=vol.size)
    raises(errno.EINVAL, vol.fallocate2, fd, 0, 0, 2 * BS, physical=vol.size - BS)
    assert vol.fiemap(fd) == []


def test_vfs_checks_come_before_the_hint_checks(vol):
    fd = new_file(vol)
    raises(errno.EINVAL, vol.fallocate2, fd, 0, -1, BS, physical=7)       # 1: offset
    raises(errno.EOPNOTSUPP, vol.fallocate2, fd, 0x4, 0, BS, physical=7)  # 2: NO_HIDE_STALE
    raises(errno.EOPNOTSUPP, vol.fallocate2, fd, 0x2, 0, BS, physical=7)  # 3: punch w/o keep
    ro = vol.open("/f", os.O_RDONLY)
    raises(errno.EBADF, vol.fallocate2, ro, 0, 0, BS, physical=7)         # 4: not writable
    raises(errno.EFBIG, vol.fallocate2, fd, 0, vol.fs.max_bytes, BS, physical=7)   # 9 before 10


def test_append_only_and_immutable_are_eperm(vol):
    fd = new_file(vol)
    vol.chattr("/f", uapi.FS_APPEND_FL)
    raises(errno.EPERM, vol.fallocate2, fd, 0x3, 0, BS)
    vol.fallocate2(fd, uapi.FALLOC_FL_KEEP_SIZE, 0, BS, physical=600 * BS)   # KEEP_SIZE alone is allowed
    vol.chattr("/f", uapi.FS_IMMUTABLE_FL)
    raises(errno.EPERM, vol.fallocate2, fd, uapi.FALLOC_FL_KEEP_SIZE, 0, BS)


@pytest.mark.skipif(not shutil.which("setpriv"), reason="setpriv (util-linux) not installed")
def test_eperm_without_cap_fowner(image):
    code = """
import errno, os, sys
from pyfalloc import Volume
v = Volume(sys.argv[1])
fd = v.open("/f", os.O_RDWR | os.O_CREAT)
v.fallocate2(fd, 0, 0, 4096)                      # no hint: allowed
try:
    v.fallocate2(fd, 0, 4096, 4096, physical=4096 * 900)
    print("allowed")
except OSError as e:
    print(errno.errorcode[e.errno])
try:                                              # EPERM comes after EBADF (step 4 < 7)
    v.fallocate2(v.open("/f"), 0, 0, 4096, physical=4096 * 900)
except OSError as e:
    print(errno.errorcode[e.errno])
v.umount()
"""
    out = run_py(code, image, prefix=["setpriv", "--inh-caps=-fowner", "--bounding-set=-fowner"])
    assert out.stdout.split() == ["EPERM", "EBADF"], out.stderr
    with_cap = run_py(code, image)
    assert with_cap.stdout.split() == ["allowed", "EBADF"], with_cap.stderr


def test_stale_data_never_readable_through_fallocate2(vol):
    secret = b"TOP-SECRET-" * 3000
    fd = new_file(vol, "/secret")
    vol.pwrite(fd, secret, 0)
    blocks = [(e.physical, e.length) for e in vol.fiemap(fd)]
    vol.close(fd)
    vol.unlink("/secret")
    thief = new_file(vol, "/thief")
    for phys, length in blocks:
        vol.fallocate2(thief, 0, 0, length, physical=phys)
    assert [(e.physical, e.length) for e in vol.fiemap(thief)] == blocks
    allocated = sum(n for _, n in blocks)
    assert vol.fstat(thief).st_size == allocated
    assert vol.pread(thief, allocated, 0) == bytes(allocated)
    # a partial write into the unwritten block must not expose the rest of it
    vol.pwrite(thief, b"Z", 5)
    assert vol.pread(thief, BS, 0) == bytes(5) + b"Z" + bytes(BS - 6)


def test_zero_length_and_enospc_when_device_full(tmp_path):
    v = Volume.mkfs(tmp_path / "small.img", "256K", group_size="128K")
    fd = v.open("/big", os.O_RDWR | os.O_CREAT)
    raises(errno.ENOSPC, v.fallocate, fd, 0, 0, 1 << 20)
    # plain fallocate keeps what it got before running out, as ext4
    assert 0 < v.fstat(fd).st_size < 1 << 20
    assert v.fsck() == []
    v.umount()
