"""Differential test: the same random write/truncate/fallocate sequences on a host file on
ext4 and on a pyfalloc file must give the same errno, size and contents after every step.

Two modes that ext4 refuses on this kind of device are served by pyfalloc and compared
with their kernel equivalents (see README, "Linux semantics"):
  UNSHARE_RANGE [| KEEP_SIZE] -> mode 0 [| KEEP_SIZE]  (no shared blocks: unshare = allocate)
  WRITE_ZEROES                -> ZERO_RANGE            (same contents and size)
Argument errors are decided before the filesystem, so invalid combinations go to the
kernel unchanged.
"""
import ctypes
import errno
import os

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as hs

from pyfalloc import Volume, uapi

_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]

MAX_BYTES = ((1 << 32) - 1) * 4096
VALID_MODES = [0, 0x1, 0x3, 0x8, 0x10, 0x11, 0x20, 0x40, 0x41, 0x80]


def kernel_mode(mode):
    if mode in (0x40, 0x41):
        return mode & ~0x40
    if mode == 0x80:
        return 0x10
    return mode


def k_call(fn, *args):
    try:
        fn(*args)
        return 0
    except OSError as e:
        return e.errno


def k_fallocate(fd, mode, off, length):
    if _libc.fallocate(fd, mode, off, length) != 0:
        raise OSError(ctypes.get_errno(), "fallocate")


def host_data_regions(fd, size):
    regions, pos = [], 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:
                break
            raise
        end = os.lseek(fd, start, os.SEEK_HOLE)
        regions.append((start, min(end, size)))
        pos = end
    return regions


def assert_same_contents(vol, vfd, hfd, size, where):
    """Compare every byte that could be non-zero on either side: the host's data regions
    and pyfalloc's written extents. Outside both, each side reads zeros by construction."""
    spans = host_data_regions(hfd, size)
    spans += [(e.logical, min(e.logical + e.length, size)) for e in vol.fiemap(vfd)
              if not e.flags & uapi.FIEMAP_EXTENT_UNWRITTEN and e.logical < size]
    for start, end in spans:
        assert vol.pread(vfd, end - start, start) == os.pread(hfd, end - start, start), f"{where} at {start}"


block_aligned = hs.integers(0, 96).map(lambda b: b * 4096)
offsets = hs.one_of(hs.integers(0, 400_000), block_aligned, hs.sampled_from([-1, -4096]),
                    hs.sampled_from([MAX_BYTES - 4096, MAX_BYTES, 1 << 62]))
lengths = hs.one_of(hs.integers(1, 200_000), block_aligned, hs.sampled_from([0, -1, 1 << 62, 4096]))
modes = hs.one_of(hs.sampled_from(VALID_MODES), hs.integers(0, 0x1FF), hs.sampled_from([0x4, 0x2, 0x12, 0x48]))
ops = hs.one_of(
    hs.tuples(hs.just("write"), hs.integers(0, 500_000), hs.integers(1, 70_000), hs.integers(1, 255)),
    hs.tuples(hs.just("truncate"), hs.one_of(hs.integers(0, 500_000), block_aligned)),
    hs.tuples(hs.just("fallocate"), modes, offsets, lengths),
    # collapse / insert succeed only block-aligned and inside the file
    hs.tuples(hs.just("fallocate"), hs.sampled_from([0x8, 0x20]), hs.integers(0, 40).map(lambda b: b * 4096),
              hs.integers(1, 10).map(lambda b: b * 4096)),
)


@settings(max_examples=int(os.environ.get("PYFALLOC_DIFF_EXAMPLES", 150)), deadline=None, suppress_health_check=list(HealthCheck))
@given(seq=hs.lists(ops, min_size=1, max_size=25))
def test_same_errno_size_and_contents_as_ext4(ext4_dir, tmp_path_factory, seq):
    host_path = os.path.join(ext4_dir, "oracle")
    hfd = os.open(host_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    vol = Volume.mkfs(tmp_path_factory.mktemp("img") / "d.img", "64M")
    vfd = vol.open("/f", os.O_RDWR | os.O_CREAT)
    try:
        for step, op in enumerate(seq):
            if op[0] == "write":
                _, off, n, byte = op
                data = bytes([byte]) * n
                k = k_call(os.pwrite, hfd, data, off)
                p = k_call(vol.pwrite, vfd, data, off)
            elif op[0] == "truncate":
                k = k_call(os.ftruncate, hfd, op[1])
                p = k_call(vol.ftruncate, vfd, op[1])
            else:
                _, mode, off, length = op
                k = k_call(k_fallocate, hfd, kernel_mode(mode), off, length)
                p = k_call(vol.fallocate, vfd, mode, off, length)
                if mode in VALID_MODES:
                    event(f"mode {mode:#x}: {errno.errorcode.get(k, 'ok')}")
            where = f"step {step} {op}"
            assert errno.errorcode.get(p, p) == errno.errorcode.get(k, k), where
            ksize = os.fstat(hfd).st_size
            assert vol.fstat(vfd).st_size == ksize, where
            assert_same_contents(vol, vfd, hfd, ksize, where)
        assert vol.fsck() == []
    finally:
        os.close(hfd)
        vol.umount()
