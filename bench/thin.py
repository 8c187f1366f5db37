"""The compactor on a real thin device: a qcow2 (1 MiB clusters) served by qemu-nbd on a
UNIX socket with --discard=unmap. mkfs (granule from the device), age, defrag --strategy
exact, trim, with qemu-img info's actual-size before and after, granules freed against the
bound, and the time of each step.

    python bench/thin.py [--size 1G]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MiB = 1 << 20


def cli(*args):
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "pyfalloc.cli.main", *args], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=ROOT), check=True)
    return r.stdout, time.monotonic() - t0


def actual_size(disk):
    info = subprocess.run(["qemu-img", "info", "-U", "--output=json", disk], capture_output=True, text=True,
                          check=True)
    return json.loads(info.stdout)["actual-size"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1G")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pyfalloc-thin-") as d:
        disk, sock, pid, meta = (os.path.join(d, n) for n in ("d.qcow2", "nbd.sock", "nbd.pid", "vol.meta"))
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=1M", disk, a.size], check=True)
        subprocess.run(["qemu-nbd", "--discard=unmap", "-f", "qcow2", f"--socket={sock}", "-x", "vol",
                        "--persistent", "--shared=0", "--fork", f"--pid-file={pid}", disk], check=True)
        uri = f"nbd+unix:///vol?socket={sock}"
        try:
            _, t_mkfs = cli("mkfs", uri, "--meta", meta)
            out, t_age = cli("age", uri, "--meta", meta, "--json")
            aged = json.loads(out)
            before = actual_size(disk)
            out, t_defrag = cli("defrag", uri, "--meta", meta, "--strategy", "exact", "--json")
            r = json.loads(out)
            _, t_trim = cli("trim", uri, "--meta", meta)
            after = actual_size(disk)
            clean = json.loads(cli("fsck", uri, "--meta", meta, "--json")[0])["clean"]
        finally:
            with open(pid) as f:
                os.kill(int(f.read()), 15)
    freed, bound = r["granules_freed"], r["bound"]
    print(f"qcow2 {a.size}, 1 MiB clusters, over qemu-nbd (nbd+unix), granule {r['granule'] // MiB} MiB")
    print(f"  mkfs {t_mkfs:.1f} s; age {t_age:.1f} s: {aged['files']} files, {aged['granules_partial']} "
          f"granules partly used, {aged['granules_free']} free")
    print(f"  defrag --strategy exact {t_defrag:.1f} s: moved {r['bytes_moved'] / MiB:.1f} MiB "
          f"(bound {bound['bytes_for_k_max'] / MiB:.1f} MiB), freed {freed} granules (bound {bound['k_max']})")
    print(f"  qemu-img actual-size: {before / MiB:.1f} MiB before, {after / MiB:.1f} MiB after "
          f"(-{(before - after) / MiB:.1f} MiB; granules freed x cluster = {freed} MiB, "
          f"ratio {(before - after) / (freed * MiB) if freed else 0:.2f}); trim {t_trim:.1f} s; fsck "
          + ("clean" if clean else "NOT clean"))


if __name__ == "__main__":
    main()
