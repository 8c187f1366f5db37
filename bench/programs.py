"""Whole programs on an image through the shim, as ratios to kernel ext4 on a loop device in
the same run: fio 4 KiB random writes with psync (1 and 4 jobs; into files fio laid out
before, and into fresh files, which fio fallocates, so every write turns an unwritten block
written) and dbench with 4 clients.

    python bench/programs.py [--seconds S]

Needs root for the loop mount, fio and dbench.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import loopfs  # noqa: E402
from pyfalloc import Volume  # noqa: E402
from pyfalloc.shim.run import environment  # noqa: E402


def fio(directory, jobs, seconds, env, fresh):
    """IOPS of 4 KiB psync random writes over 64 MiB per job."""
    if fresh:
        subprocess.run(["rm", "-rf", directory], env=env, check=True)
    subprocess.run(["mkdir", "-p", directory], env=env, check=True)
    base = ["fio", "--name=w", f"--directory={directory}", "--bs=4k", "--ioengine=psync", "--size=64M",
            f"--numjobs={jobs}", "--group_reporting", "--output-format=json"]
    if not fresh:       # lay the files out first: the writes then land on written blocks
        subprocess.run(base + ["--rw=write"], env=env, capture_output=True, check=True)
    out = subprocess.run(base + ["--rw=randwrite", f"--runtime={seconds}", "--time_based"], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout[out.stdout.index("{"):])["jobs"][0]["write"]["iops"]


def dbench(directory, clients, seconds, env):
    subprocess.run(["mkdir", "-p", directory], env=env, check=True)
    out = subprocess.run(["dbench", "-D", directory, "-t", str(seconds), str(clients)], env=env,
                         capture_output=True, text=True, check=True)
    return float(re.search(r"Throughput ([\d.]+) MB/sec", out.stdout).group(1))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=4)
    a = ap.parse_args(argv)
    missing = [p for p in ("fio", "dbench") if not shutil.which(p)]
    if missing or os.geteuid() != 0:
        print(f"skipped: needs root and {', '.join(missing) or 'a loop mount'}")
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="pyfalloc-bench-", dir=os.environ.get("TMPDIR", "/tmp")) as tmp:
        with loopfs.ext4(tmp, 4 << 30) as mnt:
            image = os.path.join(tmp, "disk.img")
            Volume.mkfs(image, "4G").umount()
            env = environment(image)
            places = ((mnt, os.environ.copy()), ("/pyfalloc", env))
            for jobs, fresh in ((1, False), (4, False), (1, True), (4, True)):
                name = f"fio randwrite psync, {jobs} job{'s' * (jobs > 1)}, {'fresh' if fresh else 'laid-out'} files"
                got = [fio(os.path.join(top, f"fio{jobs}"), jobs, a.seconds, e, fresh) for top, e in places]
                rows.append((name, "IOPS", *got))
            got = [dbench(os.path.join(top, "dbench"), 4, 2 * a.seconds, e) for top, e in places]
            rows.append(("dbench, 4 clients", "MB/s", *got))
    print(f"{'program':48} {'unit':>5} {'ext4':>10} {'pyfalloc':>10} {'ratio':>7}")
    for name, unit, native, shim in rows:
        print(f"{name:48} {unit:>5} {native:10.0f} {shim:10.0f} {shim / native:6.2f}x")


if __name__ == "__main__":
    main()
