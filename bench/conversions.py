"""First writes into fallocated files from several processes at once, through the Python API
on an image and with the kernel on ext4 (a loop device) in the same run: each process
fallocates a 64 MiB file of its own and writes 4 KiB into random blocks of it, so every
write turns an unwritten block written — a metadata change. Prints conversions per second
in all and each write's mean time, for 1, 2 and 4 processes.

    python bench/conversions.py [--writes N]

Needs root for the loop mount.
"""
import argparse
import multiprocessing
import os
import random
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import loopfs  # noqa: E402
from pyfalloc import Volume  # noqa: E402

FILE = 64 << 20
BS = 4096


def _blocks(i, n):
    order = list(range(FILE // BS))
    random.Random(i).shuffle(order)
    return order[:n]


def _writes(i, n, ready, out, pwrite):
    """Wait for the others, then time n first writes of process i."""
    buf = b"x" * BS
    ready.wait()
    t = time.perf_counter()
    for b in _blocks(i, n):
        pwrite(buf, b * BS)
    out.put(time.perf_counter() - t)


def _on_image(image, i, n, ready, out):
    v = Volume(image)
    fd = v.open(f"/f{i}", os.O_RDWR | os.O_CREAT, 0o644)
    v.fallocate(fd, 0, 0, FILE)
    _writes(i, n, ready, out, lambda buf, off: v.pwrite(fd, buf, off))
    v.close(fd)
    v.umount()


def _on_kernel(directory, i, n, ready, out):
    fd = os.open(os.path.join(directory, f"f{i}"), os.O_RDWR | os.O_CREAT, 0o644)
    os.posix_fallocate(fd, 0, FILE)
    _writes(i, n, ready, out, lambda buf, off: os.pwrite(fd, buf, off))
    os.close(fd)


def run(target, where, procs, n):
    """(conversions per second in all, mean µs per write) of procs processes at once."""
    ready, out = multiprocessing.Barrier(procs + 1), multiprocessing.Queue()
    ps = [multiprocessing.Process(target=target, args=(where, i, n, ready, out)) for i in range(procs)]
    for p in ps:
        p.start()
    ready.wait()
    took = [out.get() for _ in ps]
    for p in ps:
        p.join()
    return procs * n / max(took), sum(took) / len(took) / n * 1e6


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--writes", type=int, default=1500, help="first writes per process")
    a = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("skipped: needs root for the loop mount")
        return
    print(f"{'processes':>9} {'ext4 /s':>10} {'pyfalloc /s':>12} {'ratio':>7} {'ext4 us':>8} {'pyfalloc us':>12}")
    with tempfile.TemporaryDirectory(prefix="pyfalloc-bench-", dir=os.environ.get("TMPDIR", "/tmp")) as tmp:
        with loopfs.ext4(tmp, 2 << 30) as mnt:
            for procs in (1, 2, 4):
                image = os.path.join(tmp, f"conv{procs}.img")
                Volume.mkfs(image, "1G").umount()
                host = os.path.join(mnt, f"conv{procs}")
                os.mkdir(host)
                native, native_us = run(_on_kernel, host, procs, a.writes)
                ours, ours_us = run(_on_image, image, procs, a.writes)
                print(f"{procs:>9} {native:10.0f} {ours:12.0f} {ours / native:6.3f}x {native_us:8.1f} {ours_us:12.1f}")


if __name__ == "__main__":
    main()
