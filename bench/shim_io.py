"""The shim's cost, as ratios to native in one run: the same C program (bench/shimbench.c)
on a host file without the shim, and under `pyfalloc run` on a host file (the fast path)
or an image file.

    python bench/shim_io.py [--calls N] [--mib M] [--rounds R]

Rows: open+close of a host file under the shim vs without it (target <= 1.05x);
fallocate2 of one block through the shim vs the kernel's fallocate of one block on a host
file (target <= 3x); sequential 1 MiB writes (then fsync) and reads, image file vs host file
(target >= 0.8x of the host's throughput). Each figure is the best of R rounds.
"""
import argparse
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pyfalloc import Volume  # noqa: E402
from pyfalloc.shim.run import environment  # noqa: E402


def build(tmp):
    exe = os.path.join(tmp, "shimbench")
    subprocess.run(["cc", "-O2", "-o", exe, os.path.join(ROOT, "bench", "shimbench.c")], check=True)
    return exe


def timed(cmd, env=None):
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return float(out.stdout)


def best(rounds, fn):
    return min(fn(i) for i in range(rounds))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pyfalloc-bench-", dir=os.environ.get("TMPDIR", "/tmp")) as tmp:
        exe = build(tmp)
        image = os.path.join(tmp, "disk.img")
        Volume.mkfs(image, "4G").umount()
        shim = environment(image)
        host = os.path.join(tmp, "host")
        with open(host, "wb") as f:
            f.write(b"x")
        n = a.calls * 10
        oc_native = best(a.rounds, lambda i: timed([exe, "openclose", host, str(n)]))
        oc_shim = best(a.rounds, lambda i: timed([exe, "openclose", host, str(n)], shim))
        fa_native = best(a.rounds, lambda i: timed([exe, "fallocate", os.path.join(tmp, f"fa{i}"), str(a.calls)]))
        # each round places its blocks in a fresh 1 GiB region of the device
        fa_shim = best(a.rounds, lambda i: timed([exe, "fallocate", f"/pyfalloc/fa{i}", str(a.calls),
                                                  str((i + 1) << 30)], shim))
        wr_native = best(a.rounds, lambda i: timed([exe, "write", os.path.join(tmp, "seq"), str(a.mib)]))
        wr_shim = best(a.rounds, lambda i: timed([exe, "write", "/pyfalloc/seq", str(a.mib)], shim))
        rd_native = best(a.rounds, lambda i: timed([exe, "read", os.path.join(tmp, "seq"), str(a.mib)]))
        rd_shim = best(a.rounds, lambda i: timed([exe, "read", "/pyfalloc/seq", str(a.mib)], shim))
        with Volume(image) as vol:
            assert vol.fsck() == [], "the benchmark left the image inconsistent"

    us = 1e6
    rows = [
        ("open+close, host file", f"{oc_native / n * us:.2f} us", f"{oc_shim / n * us:.2f} us",
         oc_shim / oc_native, "<= 1.05x"),
        ("fallocate2 1 block vs fallocate", f"{fa_native / a.calls * us:.1f} us", f"{fa_shim / a.calls * us:.1f} us",
         fa_shim / fa_native, "<= 3x"),
        (f"write {a.mib} x 1 MiB + fsync", f"{a.mib / wr_native:.0f} MiB/s", f"{a.mib / wr_shim:.0f} MiB/s",
         wr_native / wr_shim, ">= 0.8x"),
        (f"read {a.mib} x 1 MiB", f"{a.mib / rd_native:.0f} MiB/s", f"{a.mib / rd_shim:.0f} MiB/s",
         rd_native / rd_shim, ">= 0.8x"),
    ]
    print(f"{'':34} {'native':>14} {'shim':>14} {'ratio':>8}  target")
    for name, nat, sh, ratio, target in rows:
        # time ratios for the calls, throughput ratios (shim / native) for I/O
        print(f"{name:34} {nat:>14} {sh:>14} {ratio:>7.2f}x  {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
