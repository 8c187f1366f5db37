"""The main job on an embedded default: a fresh 1 GiB sparse image with 1 MiB discard
granules is aged (files created and deleted from a published size profile) until most
granules are partly used; fstrim-style trim then frees little. fallocate2 places a file
exactly into a hole, then the compactor packs the cheapest granules into the holes of the
others (fallocate2 + MOVE_EXT), discards what became free, and the host disk usage of the
image is shown before and after. Last, unmodified util-linux and e2fsprogs tools work on
the image through the LD_PRELOAD shim. Where qemu-utils and libnbd are installed, the same
aged history is replayed on a qcow2 disk with 1 MiB clusters served by qemu-nbd, and
qemu-img's own figure of what the disk holds is shown before and after the compactor."""
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pyfalloc import FsError, Volume  # noqa: E402
from pyfalloc.cli import mapview  # noqa: E402
from pyfalloc.shim.run import environment  # noqa: E402
from pyfalloc.tools import age, qcow2  # noqa: E402
from pyfalloc.tools.compact import Compactor  # noqa: E402
from pyfalloc.units import format_size  # noqa: E402

OUT = os.environ.get("PYFALLOC_DEMO_DIR", "out")
IMAGE = os.path.join(OUT, "demo.img")


def host_usage(vol):
    return vol.fs.dev.host_allocated_bytes()


def show_map(vol, title):
    s = vol.granules()
    print(f"\n== {title}: {s['free']} free, {s['partial']} partly used, {s['full']} full granules; "
          f"the image takes {format_size(host_usage(vol))} on the host")
    print(mapview.terminal(s, width=64, max_cells=1024))
    return s


def fallocate2_into_a_hole(vol):
    g = vol.granule
    used = vol.granules()["used_bytes"]
    hole = next((p, n) for p, n in vol.free_extents() if 0 < used[p // g] < g and n >= 8192)
    fd = vol.open("/packed", os.O_RDWR | os.O_CREAT)
    vol.fallocate2(fd, 0, 0, 8192, physical=hole[0])
    vol.pwrite(fd, b"cold data packed into a hole\n", 0)
    ext = vol.fiemap(fd)[0]
    print(f"\nfallocate2(fd, 0, 0, 8192, physical={hole[0]}) -> extent at physical {ext.physical} "
          f"(granule {ext.physical // g}, partly used)")
    for physical, why in ((hole[0], "the same blocks, now in use"), (hole[0] + 1, "not block-aligned"),
                          (vol.size, "outside the device")):
        fd2 = vol.open("/probe", os.O_RDWR | os.O_CREAT)
        try:
            vol.fallocate2(fd2, 0, 0, 4096, physical=physical)
        except FsError as e:
            print(f"fallocate2(..., physical={physical}) [{why}]: {e}")
        vol.close(fd2)
    vol.unlink("/probe")
    vol.close(fd)


def unmodified_tools():
    """util-linux fallocate and e2fsprogs filefrag, never written for pyfalloc, under `pyfalloc run`."""
    steps = [["fallocate", "-l", "1M", "/pyfalloc/by-fallocate"], ["filefrag", "-v", "/pyfalloc/by-fallocate"],
             ["df", "-h", "/pyfalloc"]]
    if not all(shutil.which(cmd[0]) for cmd in steps):
        print("\n(unmodified tools: util-linux fallocate, filefrag or df missing here)")
        return
    env = environment(IMAGE)
    for cmd in steps:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        out = (r.stdout + r.stderr).rstrip()
        print(f"\n$ pyfalloc run {IMAGE} -- {' '.join(cmd)}" + (f"\n{out}" if out else ""))
        if r.returncode:
            raise SystemExit(f"{cmd[0]} failed under the shim (exit {r.returncode})")


def thin_device(ops):
    """The same history on a qcow2 over NBD: the store's own accounting is the proof."""
    if not qcow2.available():
        print("\n(thin device: qemu-utils or libnbd's Python binding (python3-libnbd) missing here)")
        return
    with tempfile.TemporaryDirectory(prefix="pyfalloc-demo-qcow2-") as d, qcow2.served(d, "1G") as (uri, disk):
        t0 = time.monotonic()
        with Volume.mkfs(uri, meta=os.path.join(d, "vol.meta")) as vol:
            print(f"\n== thin device: mkfs on {uri}, a 1 GiB qcow2 with 1 MiB clusters: granule "
                  f"{format_size(vol.granule)} (from the device); qemu-img actual-size "
                  f"{format_size(qcow2.actual_size(disk))}")
            age.apply_volume(vol, ops)
            before = qcow2.actual_size(disk)
            print(f"the same aged history replayed over NBD in {time.monotonic() - t0:.1f} s: qemu-img actual-size "
                  f"{before / (1 << 20):.0f} MiB (deleted files' clusters stay allocated)")
            res = Compactor(vol, "exact").run()
            after = qcow2.actual_size(disk)
            print(f"defrag --strategy exact: moved {format_size(res['bytes_moved'])} in {res['seconds']:.1f} s, "
                  f"{res['granules_freed']} granules freed (bound {res['bound']['k_max']}), free granules "
                  f"discarded with NBD_CMD_TRIM")
            print(f"qemu-img actual-size: {before / (1 << 20):.0f} MiB -> {after / (1 << 20):.0f} MiB "
                  f"({(before - after) / (1 << 20):.0f} MiB given back to the qcow2's host file); fsck "
                  + ("clean" if not vol.fsck() else "NOT clean"))


def main():
    os.makedirs(OUT, exist_ok=True)
    vol = Volume.mkfs(IMAGE, "1G", granule="1M", force=True)
    print(f"mkfs {IMAGE}: 1 GiB sparse image, 4 KiB blocks, 1 MiB granules, "
          f"{format_size(host_usage(vol))} on the host")
    ops = age.history(vol.size, vol.block_size, seed=1, profile="agrawal", fill=0.8, churn=4)
    created, deleted, written = age.apply_volume(vol, ops)
    print(f"age (agrawal profile, fill 0.8, 4 churn rounds): {created} files created, {deleted} deleted, "
          f"{written / (1 << 20):.0f} MiB written")
    show_map(vol, "aged")
    r = vol.trim()
    print(f"\ntrim: {r['granules']} wholly free granules discarded, host released "
          f"{format_size(r['released_bytes'])}; the partly used granules stay allocated on the host")

    fallocate2_into_a_hole(vol)

    before = host_usage(vol)
    plan = Compactor(vol, "exact").run(dry_run=True)
    b = plan["bound"]
    print(f"\ndefrag plan: free {plan['planned_granules']} granules moving {format_size(plan['planned_bytes'])} "
          f"(bound: at most {b['k_max']} granules, at least {format_size(b['bytes_for_k_max'])})")
    res = Compactor(vol, "exact").run()
    print(f"defrag --strategy exact: moved {format_size(res['bytes_moved'])} of {res['files_moved']} files "
          f"in {res['seconds']:.1f} s; wholly free granules {res['granules_free_before']} -> "
          f"{res['granules_free_after']}; host released {format_size(res['released_bytes'])}")
    show_map(vol, "compacted")
    after = host_usage(vol)
    print(f"\nhost disk usage of the image: {format_size(before)} before the defrag, {format_size(after)} after "
          f"({format_size(before - after)} given back to the thin-provisioned store)")
    g, total = vol.granule, vol.size
    png = os.path.join(OUT, "defrag.png")
    mapview.png(png, [mapview.summarize(res["_used_before"], g, total), mapview.summarize(res["_used_after"], g, total)],
                ["aged", "after defrag --strategy exact"])
    vol.umount()
    unmodified_tools()
    with Volume(IMAGE) as vol:
        problems = vol.fsck()
    print(f"\nfsck: {'clean' if not problems else problems}")
    thin_device(ops)
    print(f"picture: {png}; image: {IMAGE}; try: .venv/bin/pyfalloc defrag {IMAGE} --dry-run, "
          f".venv/bin/pyfalloc run {IMAGE} -- ls -l /pyfalloc")


if __name__ == "__main__":
    main()
