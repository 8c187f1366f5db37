"""fallocate2 and fallocate latency per call against the number of free extents.

For each level F, a fresh sparse image is fragmented into F free extents (a file
preallocated over 2F blocks, every other block punched out) and then timed:
  fallocate2  — one block placed exactly into a free hole (physical hint)
  fallocate   — one block and 64 blocks with the default ext4-like policy
  native      — the kernel's fallocate of one block on a host file, as the baseline
Prints microseconds per call and the growth relative to the smallest level.
"""
import argparse
import ctypes
import os
import random
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pyfalloc import Volume, uapi  # noqa: E402
from pyfalloc.store import volume_files

BS = 4096
_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


def fragment(vol, nfree):
    """Leave nfree one-block free extents: allocate 2*nfree blocks, punch every other one."""
    fd = vol.open("/frag", os.O_RDWR | os.O_CREAT)
    vol.fallocate2(fd, 0, 0, 2 * nfree * BS, physical=BS)
    with vol.fs.meta.tx():                      # one transaction for the set-up, not timed
        for i in range(nfree):
            vol.fallocate(fd, uapi.FALLOC_FL_PUNCH_HOLE | uapi.FALLOC_FL_KEEP_SIZE, 2 * i * BS, BS)
    vol.sync()                                  # punched blocks are free once the punch is durable
    vol.close(fd)
    return [(2 * i + 1) * BS for i in range(nfree)]     # physical byte offsets of the holes


def time_calls(calls):
    """(mean, median) microseconds per call: the mean carries whatever a call does for all
    (the commit that the 5 s interval makes inline in whichever call comes due)."""
    took = []
    for call in calls:
        t = time.perf_counter()
        call()
        took.append(time.perf_counter() - t)
    return sum(took) / len(took) * 1e6, statistics.median(took) * 1e6


def native_us(workdir, samples):
    path = os.path.join(workdir, "native")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    t = time.perf_counter()
    for i in range(samples):
        if _libc.fallocate(fd, 0, 2 * i * BS, BS) != 0:
            raise OSError(ctypes.get_errno(), "fallocate")
    us = (time.perf_counter() - t) / samples * 1e6
    os.close(fd)
    os.unlink(path)
    return us


def measure(workdir, nfree, samples, rng):
    image = os.path.join(workdir, f"bench-{nfree}.img")
    size = max(2 * nfree * BS + (1 << 30), 2 << 30)
    vol = Volume.mkfs(image, size, force=True)
    t = time.perf_counter()
    holes = fragment(vol, nfree)
    setup = time.perf_counter() - t
    assert vol.fs.free.count() >= nfree
    targets = rng.sample(holes, samples)
    fds = [vol.open(f"/t{i}", os.O_RDWR | os.O_CREAT) for i in range(samples)]
    f2 = time_calls([lambda fd=fd, p=p: vol.fallocate2(fd, 0, 0, BS, p) for fd, p in zip(fds, targets)])
    fds1 = [vol.open(f"/s{i}", os.O_RDWR | os.O_CREAT) for i in range(samples)]
    f1 = time_calls([lambda fd=fd: vol.fallocate(fd, 0, 0, BS) for fd in fds1])
    fds64 = [vol.open(f"/b{i}", os.O_RDWR | os.O_CREAT) for i in range(samples)]
    f64 = time_calls([lambda fd=fd: vol.fallocate(fd, 0, 0, 64 * BS) for fd in fds64])
    nat = native_us(workdir, samples)
    vol.umount()
    for path in volume_files(image):
        if os.path.exists(path):
            os.unlink(path)
    return {"free_extents": nfree, "fallocate2": f2, "fallocate_1": f1, "fallocate_64": f64,
            "native": nat, "setup_s": setup}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--levels", default="1000,10000,100000,1000000")
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--dir", default=None, help="where the sparse images go (default: a temp dir)")
    args = ap.parse_args()
    rng = random.Random(1)
    workdir = args.dir or tempfile.mkdtemp(prefix="pyfalloc-bench-")
    rows = []
    print("microseconds per call, mean / median")
    print(f"{'free extents':>12} {'fallocate2':>15} {'fallocate 1blk':>15} {'fallocate 64blk':>16} "
          f"{'native':>7} {'f2/native':>10} {'set-up s':>9}")
    for level in map(int, args.levels.split(",")):
        r = measure(workdir, level, args.samples, rng)
        rows.append(r)
        cell = lambda key: f"{r[key][0]:.0f} / {r[key][1]:.0f}"
        print(f"{level:>12} {cell('fallocate2'):>15} {cell('fallocate_1'):>15} {cell('fallocate_64'):>16} "
              f"{r['native']:>7.1f} {r['fallocate2'][1] / r['native']:>9.1f}x {r['setup_s']:>9.1f}", flush=True)
    base = rows[0]
    print("\ngrowth from the smallest to the largest level, mean / median (target < 2x):")
    for key in ("fallocate2", "fallocate_1", "fallocate_64"):
        print(f"  {key:<13} {rows[-1][key][0] / base[key][0]:.2f}x / {rows[-1][key][1] / base[key][1]:.2f}x")


if __name__ == "__main__":
    main()
