"""Relocation throughput: `relocate` (donor + fallocate2 + MOVE_EXT, every step copied,
flushed and committed) against a plain copy of the same bytes between two host files on
the same filesystem, with the same final fdatasync, in the same run.

Also moves per second for small files (one 4 KiB block each), the compactor's usual case.
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pyfalloc import Volume  # noqa: E402
from pyfalloc.tools.relocate import relocate  # noqa: E402

MiB = 1 << 20


def host_copy(src, dst, size, chunk=4 * MiB):
    t = time.perf_counter()
    fi = os.open(src, os.O_RDONLY)
    fo = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    pos = 0
    while pos < size:
        os.pwrite(fo, os.pread(fi, chunk, pos), pos)
        pos += chunk
    os.fdatasync(fo)
    os.close(fi)
    os.close(fo)
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64, help="MiB moved per run")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--small", type=int, default=300, help="number of 4 KiB files moved")
    args = ap.parse_args()
    size = args.size * MiB
    with tempfile.TemporaryDirectory(dir=os.environ.get("PYFALLOC_BENCH_DIR")) as d:
        data = os.urandom(size)
        src = os.path.join(d, "src")
        with open(src, "wb") as f:
            f.write(data)
            os.fsync(f.fileno())
        vol = Volume.mkfs(os.path.join(d, "b.img"), "2G")
        vol.write_file("/big", data)
        fd = vol.open("/big", os.O_RDWR)
        places = [512 * MiB, 1024 * MiB]
        moves, copies = [], []
        for r in range(args.runs):
            t = time.perf_counter()
            moved = relocate(vol, fd, 0, None, places[r % 2])
            moves.append(time.perf_counter() - t)
            assert moved == size
            copies.append(host_copy(src, os.path.join(d, "dst"), size))
        assert vol.pread(fd, size, 0) == data
        vol.close(fd)

        for i in range(args.small):
            vol.write_file(f"/s{i}", bytes([i % 255 + 1]) * 4096)
        t = time.perf_counter()
        for i in range(args.small):
            f = vol.open(f"/s{i}", os.O_RDWR)
            relocate(vol, f, 0, None, 1536 * MiB + i * 4096)
            vol.close(f)
        small_s = time.perf_counter() - t
        assert vol.fsck() == []
        vol.umount()

    best_move, best_copy = min(moves), min(copies)
    print(f"{args.size} MiB, best of {args.runs}")
    print(f"  relocate (MOVE_EXT)   {args.size / best_move:8.1f} MiB/s")
    print(f"  host copy + fdatasync {args.size / best_copy:8.1f} MiB/s")
    print(f"  ratio move/copy       {best_copy / best_move:8.2f}x")
    print(f"  small files: {args.small / small_s:.0f} relocations/s of 4 KiB "
          f"({small_s / args.small * 1e3:.2f} ms each)")


if __name__ == "__main__":
    main()
