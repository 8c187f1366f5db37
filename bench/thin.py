"""The compactor on a real thin device: a qcow2 (1 MiB clusters) served by qemu-nbd on a
UNIX socket with --discard=unmap, or (--rbd) an RBD image with 4 MiB objects on the
cluster CEPH_CONF names (make ceph-up starts one). mkfs (granule from the device), age,
defrag --strategy exact, trim, with the store's own figure (qemu-img info's actual-size,
rbd du's used size) before and after, granules freed against the bound, and the time of
each step.

    python bench/thin.py [--size 1G] [--rbd]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
MiB = 1 << 20

from pyfalloc.tools import qcow2  # noqa: E402


def cli(*args):
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "pyfalloc.cli.main", *args], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=ROOT), check=True)
    return r.stdout, time.monotonic() - t0


def story(uri, meta, stored):
    _, t_mkfs = cli("mkfs", uri, "--meta", meta)
    out, t_age = cli("age", uri, "--meta", meta, "--json")
    aged = json.loads(out)
    before = stored()
    out, t_defrag = cli("defrag", uri, "--meta", meta, "--strategy", "exact", "--json")
    r = json.loads(out)
    _, t_trim = cli("trim", uri, "--meta", meta)
    after = stored()
    clean = json.loads(cli("fsck", uri, "--meta", meta, "--json")[0])["clean"]
    return t_mkfs, t_age, aged, before, t_defrag, r, t_trim, after, clean


def report(title, figure, t_mkfs, t_age, aged, before, t_defrag, r, t_trim, after, clean):
    freed, bound, g = r["granules_freed"], r["bound"], r["granule"]
    print(f"{title}, granule {g // MiB} MiB")
    print(f"  mkfs {t_mkfs:.1f} s; age {t_age:.1f} s: {aged['files']} files, {aged['granules_partial']} "
          f"granules partly used, {aged['granules_free']} free")
    print(f"  defrag --strategy exact {t_defrag:.1f} s: moved {r['bytes_moved'] / MiB:.1f} MiB "
          f"(bound {bound['bytes_for_k_max'] / MiB:.1f} MiB), freed {freed} granules (bound {bound['k_max']})")
    print(f"  {figure}: {before / MiB:.1f} MiB before, {after / MiB:.1f} MiB after "
          f"(-{(before - after) / MiB:.1f} MiB; granules freed x granule = {freed * g // MiB} MiB, "
          f"ratio {(before - after) / (freed * g) if freed else 0:.2f}); trim {t_trim:.1f} s; fsck "
          + ("clean" if clean else "NOT clean"))


def rbd_main(size):
    name = f"rbd/pyfalloc-bench-{os.getpid()}"
    subprocess.run(["rbd", "create", "--size", size, "--object-size", "4M", name], check=True)

    def used():
        out = subprocess.run(["rbd", "du", "--format", "json", name], capture_output=True, text=True, check=True)
        return json.loads(out.stdout)["images"][0]["used_size"]
    try:
        with tempfile.TemporaryDirectory(prefix="pyfalloc-thin-") as d:
            figures = story(f"rbd:{name}", os.path.join(d, "vol.meta"), used)
    finally:
        subprocess.run(["rbd", "rm", "--no-progress", name], check=True)
    report(f"RBD image {size}, 4 MiB objects ({os.environ.get('CEPH_CONF', '/etc/ceph/ceph.conf')})",
           "rbd du used", *figures)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1G")
    ap.add_argument("--rbd", action="store_true", help="an RBD image on the cluster CEPH_CONF names")
    a = ap.parse_args()
    if a.rbd:
        return rbd_main(a.size)
    with tempfile.TemporaryDirectory(prefix="pyfalloc-thin-") as d, qcow2.served(d, a.size) as (uri, disk):
        figures = story(uri, os.path.join(d, "vol.meta"), lambda: qcow2.actual_size(disk))
    report(f"qcow2 {a.size}, 1 MiB clusters, over qemu-nbd (nbd+unix)", "qemu-img actual-size", *figures)

if __name__ == "__main__":
    main()
