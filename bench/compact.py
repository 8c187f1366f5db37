"""The compactor's comparison table on one aged image (default: 1 GiB, 1 MiB granules,
fill 0.8, agrawal profile): a row per strategy, the bound, and the kernel — the same aging
history replayed on ext4 in a sparse loop image, then e4defrag and fstrim, counting the
granules of the backing file that hold no data any more.

moved/B_k is the bytes moved over the least any plan must move to free as many granules.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pyfalloc import Volume  # noqa: E402
from pyfalloc.store import volume_files
from pyfalloc.tools import age  # noqa: E402
from pyfalloc.tools.compact import Compactor, cheapest_costs, lower_bound, plan_exact, snapshot, walk  # noqa: E402

MiB = 1 << 20


def drop_cache(path):
    """Forget a file's pages, so the next reads come from the disk (--cold)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def copy_image(src, dst, cold=False):
    """A copy of the volume, on disk before it is used (the compactor's first flush must
    not pay for writing back the copy's pages), the source's pages dropped; cold: the
    copy's too."""
    src_files, dst_files = volume_files(src), volume_files(dst)
    subprocess.run(["cp", "--sparse=always", src, dst], check=True)
    for a, b in zip(src_files[1:], dst_files[1:]):
        shutil.copy(a, b)
    os.sync()
    drop_cache(src)     # the run reads only the copy; at 16 GiB the two do not fit the page cache
    if cold:
        drop_cache(dst)
    return dst


def empty_granules(path, granule):
    """Granules of a host file that hold no data (SEEK_DATA finds none inside)."""
    size = os.path.getsize(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        data = set()
        pos = 0
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            data.update(range(start // granule, -(-end // granule)))
            pos = end
        return -(-size // granule) - len(data)
    finally:
        os.close(fd)


def loop_written_bytes(dev):
    with open(f"/sys/block/{os.path.basename(dev)}/stat") as f:
        return int(f.read().split()[6]) * 512


def kernel_row(work, ops, size, granule):
    """ext4 on a loop device backed by a sparse file: replay, fstrim, e4defrag, fstrim."""
    if os.geteuid() != 0 or not shutil.which("e4defrag") or not shutil.which("losetup"):
        return None, "needs root, losetup and e4defrag"
    backing, mnt = os.path.join(work, "ext4.img"), os.path.join(work, "mnt")
    os.mkdir(mnt)
    with open(backing, "wb") as f:
        f.truncate(size)
    mk = subprocess.run(["mkfs.ext4", "-q", "-F", "-b", "4096", backing], capture_output=True, text=True)
    if mk.returncode:
        return None, f"mkfs.ext4 failed: {mk.stderr.strip()}"
    dev = subprocess.run(["losetup", "-f", "--show", backing], capture_output=True, text=True)
    if dev.returncode:
        return None, f"loop devices not allowed here: {dev.stderr.strip()}"
    dev = dev.stdout.strip()
    try:
        if subprocess.run(["mount", dev, mnt], capture_output=True).returncode:
            return None, "mount of the loop device failed"
        try:
            age.apply_directory(mnt, ops)
            subprocess.run(["sync"])
            subprocess.run(["fstrim", mnt], check=True)
            before = empty_granules(backing, granule)
            w0, t0 = loop_written_bytes(dev), time.monotonic()
            subprocess.run(["e4defrag", mnt], capture_output=True)
            subprocess.run(["sync"])
            subprocess.run(["fstrim", mnt], check=True)
            seconds = time.monotonic() - t0
            moved = loop_written_bytes(dev) - w0
            after = empty_granules(backing, granule)
        finally:
            subprocess.run(["umount", mnt])
    finally:
        subprocess.run(["losetup", "-d", dev])
    return {"freed": after - before, "moved": moved, "seconds": seconds}, None


def dd_seconds(work, nbytes, cold=False):
    """What copying nbytes costs on this disk: dd of a file of that size, fdatasync'd (cold:
    read from the disk)."""
    src, dst = os.path.join(work, "dd.src"), os.path.join(work, "dd.dst")
    with open(src, "wb") as f:
        f.write(os.urandom(nbytes))
        os.fsync(f.fileno())
    if cold:
        drop_cache(src)
    t = time.monotonic()
    subprocess.run(["dd", f"if={src}", f"of={dst}", "bs=1M", "conv=fdatasync", "status=none"], check=True)
    seconds = time.monotonic() - t
    os.unlink(src)
    os.unlink(dst)
    return seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1G")
    ap.add_argument("--granule", default="1M")
    ap.add_argument("--fill", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--churn", type=int, default=4)
    ap.add_argument("--strategies", default="exact,donor,keepsize", help="comma-separated")
    ap.add_argument("--no-kernel", action="store_true", help="skip the ext4 + e4defrag row (slow at 16G)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of exact and of dd, the fastest kept")
    ap.add_argument("--cold", action="store_true",
                    help="the image copy and dd's source dropped from the page cache first: every byte "
                         "moved is read from the disk (scattered pieces for the compactor, one run for dd)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("PYFALLOC_BENCH_DIR")) as work:
        base = os.path.join(work, "aged.img")
        with Volume.mkfs(base, args.size, granule=args.granule) as vol:
            ops = age.history(vol.size, vol.block_size, seed=args.seed, fill=args.fill, churn=args.churn)
            t = time.monotonic()
            age.apply_volume(vol, ops)
            print(f"aged {args.size} at fill {args.fill}: {len(ops)} ops in {time.monotonic() - t:.1f} s; "
                  f"granules {vol.granules()['free']} free, {vol.granules()['partial']} partly used")
            size, granule = vol.size, vol.granule
        # planned on the volume opened afresh, as `pyfalloc defrag` opens it: its tables loaded
        # whole, not grown row by row over the aging's hundreds of thousands of operations
        with Volume(base) as vol:
            nfiles = len(walk(vol))
            times = []
            for _ in range(3):          # best of three: one pass is at the mercy of the machine
                t = time.monotonic()
                snap = snapshot(vol)
                plan_exact(snap, lower_bound(snap)["k_max"])
                times.append(time.monotonic() - t)
            plan_s = min(times)
            prefix = cheapest_costs(snap)
            del snap
            # the memory in a second pass: tracemalloc counts every allocation (and slows them)
            tracemalloc.start()
            snap = snapshot(vol)
            plan = plan_exact(snap, lower_bound(snap)["k_max"])
            held, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            del snap, plan
        n = max(1, nfiles)
        print(f"planning (GETFSMAP, the tree walk, the plan): {plan_s:.2f} s for {nfiles} files, "
              f"{plan_s / n * 1e6:.1f} us per file (best of 3; worst {max(times) / n * 1e6:.1f}); "
              f"memory per file {held / n:.0f} bytes held by the plan "
              f"and its snapshot, {peak / n:.0f} at the peak")
        rows = {}
        for strategy in args.strategies.split(","):
            runs = []
            # the strategy the ratio to dd is for: its fastest of --repeat runs, each on a
            # fresh copy (every run frees the same granules moving the same bytes)
            for _ in range(args.repeat if strategy == "exact" else 1):
                with Volume(copy_image(base, os.path.join(work, f"{strategy}.img"), args.cold)) as vol:
                    runs.append(Compactor(vol, strategy).run())
            rows[strategy] = min(runs, key=lambda r: r["seconds"])
        moved = rows[next(iter(rows))]["bytes_moved"]
        dd_s = min(dd_seconds(work, moved, args.cold) for _ in range(args.repeat))
        print(f"dd conv=fdatasync of the {moved / MiB:.1f} MiB {next(iter(rows))} moved, same disk: {dd_s:.2f} s "
              f"(best of {args.repeat}; exact: best of {args.repeat} runs; "
              f"{'both read from the disk' if args.cold else 'both read what the page cache holds'})")
        d_freed = rows["donor"]["granules_freed"] if "donor" in rows else 0
        if 0 < d_freed < len(prefix):
            # exact with a budget of B_k for donor's k: what it moves to free as many granules
            with Volume(copy_image(base, os.path.join(work, "same.img"))) as vol:
                rows["exact, budget B_k(donor)"] = Compactor(vol, "exact", budget=prefix[d_freed]).run()
        kernel, why = (None, "--no-kernel") if args.no_kernel else kernel_row(work, ops, size, granule)

    def ratio(r):
        k = r["granules_freed"]
        return f"{r['bytes_moved'] / prefix[k]:.2f}" if 0 < k < len(prefix) and prefix[k] else "-"

    b = rows["exact"]["bound"]
    print(f"\n{'':26s} {'granules freed':>15s} {'MiB moved':>10s} {'moved/B_k':>10s} {'seconds':>8s}")
    print(f"{'bound (k_max, B_k)':26s} {b['k_max']:>15d} {b['bytes_for_k_max'] / MiB:>10.1f} {'1.00':>10s} {'':>8s}")
    for name, r in rows.items():
        print(f"{name:26s} {r['granules_freed']:>15d} {r['bytes_moved'] / MiB:>10.1f} {ratio(r):>10s} "
              f"{r['seconds']:>8.1f}  ({r['seconds'] / max(dd_s, 1e-9):.1f}x dd)")
    if kernel:
        print(f"{'ext4 + e4defrag + fstrim':26s} {kernel['freed']:>15d} {kernel['moved'] / MiB:>10.1f} "
              f"{'-':>10s} {kernel['seconds']:>8.1f}")
    else:
        print(f"ext4 row skipped: {why}")
    e, dn = rows["exact"], rows.get("donor")
    print(f"\nexact frees {e['granules_freed'] / max(1, b['k_max']):.0%} of k_max, moved/B_k {ratio(e)}")
    ph = e["phases"]
    print(f"exact's time: planning {ph['plan']:.2f} s, moving {ph['move']:.2f} s, trim (the commit's flush and "
          f"the host's punches) {ph['trim']:.2f} s; moving and trim {(ph['move'] + ph['trim']) / max(dd_s, 1e-9):.1f}x dd")
    if "keepsize" in rows:
        print(f"keepsize could not place: {rows['keepsize']['unplaced_bytes']}")
    same = rows.get("exact, budget B_k(donor)")
    if same and same["bytes_moved"] and same["granules_freed"] >= d_freed:
        print(f"for {d_freed} granules donor moved {dn['bytes_moved'] / same['bytes_moved']:.1f}x the bytes of exact")


if __name__ == "__main__":
    main()
