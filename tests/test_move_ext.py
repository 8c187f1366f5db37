"""EXT4_IOC_MOVE_EXT: pyfalloc against the kernel's ext4 on a host file, through the same
ioctl request and 40-byte struct on both sides.

Random layouts (holes, unwritten and written blocks, sizes ending mid-block) and random
arguments must give the same errno, moved_len, contents, per-block written state and the
same set of swapped blocks; a table of descriptor and flag cases covers the rest.
"""
import ctypes
import errno
import fcntl
import os
import subprocess

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as hs

from pyfalloc import FsError, Volume, uapi

B = 4096
_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


class Host:
    """The kernel side: plain host files on ext4."""

    def __init__(self, root):
        self.root = root

    def open(self, name, flags=os.O_RDWR | os.O_CREAT | os.O_TRUNC):
        return os.open(os.path.join(self.root, name), flags, 0o644)

    def build(self, fd, size, states, byte):
        os.ftruncate(fd, size)
        for i, s in enumerate(states):
            if s == "U" or s == "W" and i * B >= size:
                assert _libc.fallocate(fd, uapi.FALLOC_FL_KEEP_SIZE, i * B, B) == 0
            elif s == "W":
                os.pwrite(fd, bytes([byte + i]) * min(B, size - i * B), i * B)
        # no delayed allocation and no cached folios: ext4 then moves every block
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)

    def ioctl(self, fd, request, buf):
        fcntl.ioctl(fd, request, buf, True)

    def read(self, fd):
        return os.pread(fd, os.fstat(fd).st_size, 0)

    close = staticmethod(os.close)


class Pyf:
    """The pyfalloc side, through Volume's ioctl."""

    def __init__(self, vol):
        self.vol = vol

    def open(self, name, flags=os.O_RDWR | os.O_CREAT | os.O_TRUNC):
        return self.vol.open("/" + name, flags)

    def build(self, fd, size, states, byte):
        v = self.vol
        v.ftruncate(fd, size)
        for i, s in enumerate(states):
            if s == "U" or s == "W" and i * B >= size:
                v.fallocate(fd, uapi.FALLOC_FL_KEEP_SIZE, i * B, B)
            elif s == "W":
                v.pwrite(fd, bytes([byte + i]) * min(B, size - i * B), i * B)

    def ioctl(self, fd, request, buf):
        self.vol.ioctl(fd, request, buf)

    def read(self, fd):
        return self.vol.pread(fd, self.vol.fstat(fd).st_size, 0)

    def close(self, fd):
        self.vol.close(fd)


def move(side, fd, donor_fd, o, d, n):
    """Returns (errno name or 'ok', moved_len) read back from the struct."""
    buf = bytearray(uapi.MOVE_EXTENT.pack(0, donor_fd, o, d, n, 0))
    try:
        side.ioctl(fd, uapi.EXT4_IOC_MOVE_EXT, buf)
        err = "ok"
    except OSError as e:
        err = errno.errorcode[e.errno]
    return err, uapi.MOVE_EXTENT.unpack(buf)[5]


def block_map(side, fd):
    """logical block -> (physical block, unwritten) through FS_IOC_FIEMAP."""
    n = 64
    buf = bytearray(uapi.FIEMAP_HEAD.pack(0, (1 << 64) - 1, 0, 0, n, 0) + bytes(n * uapi.FIEMAP_EXTENT.size))
    side.ioctl(fd, uapi.FS_IOC_FIEMAP, buf)
    mapped = uapi.FIEMAP_HEAD.unpack_from(buf)[3]
    out = {}
    for i in range(mapped):
        logical, physical, length, flags = uapi.FIEMAP_EXTENT.unpack_from(
            buf, uapi.FIEMAP_HEAD.size + i * uapi.FIEMAP_EXTENT.size)
        for k in range(length // B):
            out[logical // B + k] = (physical // B + k, bool(flags & uapi.FIEMAP_EXTENT_UNWRITTEN))
    return out


def run_case(side, case):
    (osize, ostates), (dsize, dstates), (o, d, n) = case
    fo, fd = side.open("orig"), side.open("donor")
    try:
        side.build(fo, osize, ostates, 1)
        side.build(fd, dsize, dstates, 101)
        before_o, before_d = block_map(side, fo), block_map(side, fd)
        result = move(side, fo, fd, o, d, n)
        after_o, after_d = block_map(side, fo), block_map(side, fd)
        # which of orig's blocks now sit where the donor's were, and the reverse
        took = sorted(lb for lb, (pb, _) in after_o.items() if before_d.get(lb - o + d, (None,))[0] == pb)
        gave = sorted(lb for lb, (pb, _) in after_d.items() if before_o.get(lb - d + o, (None,))[0] == pb)
        return {"result": result, "orig": side.read(fo), "donor": side.read(fd),
                "orig_state": {k: u for k, (_, u) in after_o.items()},
                "donor_state": {k: u for k, (_, u) in after_d.items()}, "took": took, "gave": gave}
    finally:
        side.close(fo)
        side.close(fd)


# mostly valid moves (the interesting swaps), with every kind of refusal mixed in
sizes = hs.integers(0, 40).map(lambda k: 0 if k == 0 else (k % 10 + 1) * B - (k // 10) * 1000)
layout = hs.tuples(sizes, hs.lists(hs.sampled_from("HUWWW"), min_size=1, max_size=10))
lens = hs.integers(0, 40).map(lambda k: [1 << 40, (1 << 32) - 2, (1 << 64) - 1][k - 38] if k >= 38 else k % 12)
args = hs.tuples(hs.integers(0, 4), hs.integers(0, 4), lens)


@settings(max_examples=int(os.environ.get("PYFALLOC_DIFF_EXAMPLES", 150)), deadline=None,
          suppress_health_check=list(HealthCheck))
@given(case=hs.tuples(layout, layout, args))
def test_move_ext_matches_ext4(ext4_dir, tmp_path_factory, case):
    vol = Volume.mkfs(tmp_path_factory.mktemp("img") / "d.img", "64M")
    try:
        want = run_case(Host(ext4_dir), case)
        got = run_case(Pyf(vol), case)
        event(f"{want['result'][0]}")
        assert got == want, case
        assert vol.fsck() == []
    finally:
        vol.umount()


def _rows(vol):
    """Every extent row, and the owners' index, as the tables hold them."""
    t = vol.fs.meta.t
    return {ino: dict(t.extents(ino)) for ino in list(t.ext)}, dict(t.owner)


def _with_and_without_trades(monkeypatch, directory, size, act):
    """act(vol) on a fresh volume where a move may trade rows in place (ExtentMap.exchange)
    and on one where it may not: each one's answers, extent rows, owners' index and GETFSMAP,
    both volumes checked clean by fsck."""
    from pyfalloc.fs.extents import ExtentMap
    ends = []
    for shortcut in (True, False):
        vol = Volume.mkfs(directory / f"{shortcut}.img", size)
        try:
            vol.getfsmap()                  # the owners' index built, so the changes keep it
            with monkeypatch.context() as m:
                if not shortcut:
                    m.setattr(ExtentMap, "exchange", lambda *a: False)
                answers = act(vol)
            ends.append((answers, _rows(vol), vol.getfsmap()))
            assert vol.fsck() == []
        finally:
            vol.umount()
    return ends


@settings(max_examples=int(os.environ.get("PYFALLOC_DIFF_EXAMPLES", 150)) // 2, deadline=None,
          suppress_health_check=list(HealthCheck))
@given(case=hs.tuples(layout, layout, args))
def test_two_extents_trading_blocks_leave_the_rows_that_removing_and_inserting_them_would(
        tmp_path_factory, monkeypatch, case):
    """A move's swap of whole extents rewrites two rows in place (ExtentMap.exchange); with
    that shortcut refused, the general path (two removes, two inserts, merging neighbours)
    must end with the same rows, the same owners' index and the same answers."""
    ends = _with_and_without_trades(monkeypatch, tmp_path_factory.mktemp("img"), "64M",
                                    lambda vol: run_case(Pyf(vol), case))
    assert ends[0] == ends[1], case


# (orig's blocks, donor's blocks, the move): blocks as (logical, physical, written); the
# donor's new place or the file's lands beside a neighbour it merges with, or neither
TRADES = {
    "no neighbour": ([(0, 100, 1), (1, 500, 1)], [(0, 300, 0)], (1, 0, 1)),
    "orig merges before": ([(0, 100, 1), (1, 500, 1)], [(0, 101, 0)], (1, 0, 1)),
    "orig merges after": ([(0, 500, 1), (1, 201, 1)], [(0, 200, 0)], (0, 0, 1)),
    "unwritten orig merges": ([(0, 100, 0), (1, 500, 0)], [(0, 101, 0)], (1, 0, 1)),
    "written beside unwritten stays apart": ([(0, 100, 0), (1, 500, 1)], [(0, 101, 0)], (1, 0, 1)),
    "donor merges before": ([(0, 701, 0)], [(0, 700, 0), (1, 900, 0)], (0, 1, 1)),
    "donor merges after": ([(0, 799, 1)], [(0, 900, 0), (1, 800, 0)], (0, 0, 1)),
}


@pytest.mark.parametrize("name", TRADES)
def test_a_trade_of_whole_extents_beside_neighbours_ends_as_the_general_swap_does(tmp_path, monkeypatch, name):
    orig_blocks, donor_blocks, (o, d, n) = TRADES[name]

    def trade(vol):
        fo, fd = vol.open("/orig", os.O_RDWR | os.O_CREAT), vol.open("/donor", os.O_RDWR | os.O_CREAT)
        for blocks, f in ((orig_blocks, fo), (donor_blocks, fd)):
            for lblk, pblk, written in blocks:
                vol.fallocate2(f, 0, lblk * B, B, pblk * B)
                if written:
                    vol.pwrite(f, bytes([lblk + 1]) * B, lblk * B)
        assert vol.move_extent(fo, fd, o, d, n) == n
        answers = block_map(Pyf(vol), fo), block_map(Pyf(vol), fd), vol.pread(fo, 1 << 20, 0)
        vol.close(fo)
        vol.close(fd)
        return answers

    ends = _with_and_without_trades(monkeypatch, tmp_path, "8M", trade)
    assert ends[0] == ends[1]


def _chattr(side, path, flag):
    if isinstance(side, Host):
        subprocess.run(["chattr", flag, path], check=True)
    else:
        bits = {"+a": uapi.FS_APPEND_FL, "+i": uapi.FS_IMMUTABLE_FL}.get(flag, 0)
        side.vol.chattr(path, bits)


def descriptor_cases(side, path):
    """Each case: set-up on this side, then the move; returns {case: (errno, moved_len)}."""
    out = {}

    def fresh():
        fo, fd = side.open("orig"), side.open("donor")
        side.build(fo, 8 * B, "WWWWWWWW", 1)
        side.build(fd, 8 * B, "UUUUUUUU", 101)
        return fo, fd

    fo, fd = fresh()
    ro = side.open("orig", os.O_RDONLY)
    wo = side.open("orig", os.O_WRONLY)
    dro = side.open("donor", os.O_RDONLY)
    out["orig read-only"] = move(side, ro, fd, 0, 0, 8)
    out["orig write-only"] = move(side, wo, fd, 0, 0, 8)
    out["donor read-only"] = move(side, fo, dro, 0, 0, 8)
    out["donor not open"] = move(side, fo, 999, 0, 0, 8)
    out["same inode"] = move(side, fo, fo, 0, 0, 8)
    out["orig_start at EXT_MAX_BLOCKS"] = move(side, fo, fd, (1 << 32) - 1, (1 << 32) - 1, 1)
    out["len past EXT_MAX_BLOCKS"] = move(side, fo, fd, 0, 0, 1 << 32)
    out["start past both ends"] = move(side, fo, fd, 9, 9, 2)
    for f in (ro, wo, dro):
        side.close(f)
    hostw = os.open("/dev/shm", os.O_RDWR | os.O_TMPFILE, 0o600)
    hostr = os.open("/proc/self/exe", os.O_RDONLY)
    out["donor writable on another filesystem"] = move(side, fo, hostw, 0, 0, 8)
    out["donor read-only on another filesystem"] = move(side, fo, hostr, 0, 0, 8)
    os.close(hostw)
    os.close(hostr)
    for flag in ("+a", "+i"):
        _chattr(side, path("donor"), flag)
        out[f"donor chattr {flag}"] = move(side, fo, fd, 0, 0, 8)
        _chattr(side, path("donor"), "-" + flag[1])
    _chattr(side, path("orig"), "+i")
    out["orig immutable (opened before)"] = move(side, fo, fd, 0, 0, 4)
    _chattr(side, path("orig"), "-i")
    side.close(fo)
    side.close(fd)
    return out


def test_descriptor_and_flag_errors_match_ext4(ext4_dir, vol):
    host = Host(ext4_dir)
    want = descriptor_cases(host, lambda n: os.path.join(ext4_dir, n))
    got = descriptor_cases(Pyf(vol), lambda n: "/" + n)
    assert got == want
    assert want["donor chattr +a"] == ("EPERM", 0)       # the oracle really refused
    assert vol.fsck() == []


def test_setuid_donor_is_refused(vol):
    """ext4 refuses a set-user-ID donor with EINVAL (pyfalloc has no chmod yet: set the mode in the map)."""
    fo = vol.open("/o", os.O_RDWR | os.O_CREAT)
    vol.pwrite(fo, b"x" * B, 0)
    fd = vol.open("/d", os.O_RDWR | os.O_CREAT, 0o4755)
    vol.fallocate(fd, 0, 0, B)
    with pytest.raises(FsError) as e:
        vol.move_extent(fo, fd, 0, 0, 1)
    assert e.value.errno == errno.EINVAL and e.value.moved_len == 0


def test_moved_len_is_reported_with_the_error(vol):
    fo = vol.open("/o", os.O_RDWR | os.O_CREAT)
    vol.pwrite(fo, b"x" * 4 * B, 0)
    vol.ftruncate(fo, 8 * B)                       # blocks 4..7: a hole to the end
    fd = vol.open("/", os.O_RDWR | os.O_TMPFILE)
    vol.fallocate(fd, 0, 0, 8 * B)
    with pytest.raises(FsError) as e:
        vol.move_extent(fo, fd, 0, 0, 8)
    assert e.value.errno == errno.ENODATA and e.value.moved_len == 4
    assert vol.pread(fo, 8 * B, 0) == b"x" * 4 * B + bytes(4 * B)


def test_donor_gets_old_blocks_unwritten_and_frees_them_on_close(vol):
    fo = vol.open("/o", os.O_RDWR | os.O_CREAT)
    vol.pwrite(fo, b"secret" * 2000, 0)
    old = vol.fiemap(fo)[0].physical
    fd = vol.open("/", os.O_RDWR | os.O_TMPFILE)
    vol.fallocate2(fd, 0, 0, 3 * B, physical=40 << 20)
    assert vol.move_extent(fo, fd, 0, 0, 3) == 3
    assert vol.fiemap(fo)[0].physical == 40 << 20
    assert vol.pread(fd, 3 * B, 0) == bytes(3 * B)          # never the file's old data
    assert [e.flags & uapi.FIEMAP_EXTENT_UNWRITTEN for e in vol.fiemap(fd)] == [uapi.FIEMAP_EXTENT_UNWRITTEN]
    vol.close(fd)
    free = vol.free_extents()
    assert any(p <= old < p + n for p, n in free)
    assert vol.read_file("/o") == b"secret" * 2000
    assert vol.fsck() == []
