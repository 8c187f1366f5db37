"""The main job on an embedded default: a fresh 1 GiB sparse image with 1 MiB discard
granules, files written and deleted until granules are partly used, fallocate2 placing
a file exactly into a hole, the granule map, trim, and the host disk usage throughout."""
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pyfalloc import FsError, Volume, mapview  # noqa: E402
from pyfalloc.units import format_size  # noqa: E402

OUT = os.environ.get("PYFALLOC_DEMO_DIR", "out")
IMAGE = os.path.join(OUT, "demo.img")
MiB = 1 << 20


def host_usage(vol):
    return format_size(vol.fs.dev.host_allocated_bytes() // 4096 * 4096)


def show_map(vol, title):
    s = vol.granules()
    print(f"\n== {title}: {s['free']} free, {s['partial']} partly used, {s['full']} full granules; "
          f"image uses {host_usage(vol)} on the host")
    print(mapview.terminal(s, width=64, max_cells=256))


def main():
    os.makedirs(OUT, exist_ok=True)
    vol = Volume.mkfs(IMAGE, "1G", granule="1M", force=True)
    print(f"mkfs {IMAGE}: 1 GiB sparse image, 4 KiB blocks, 1 MiB granules, host usage {host_usage(vol)}")
    rng = random.Random(7)
    vol.mkdir("/data")
    names = []
    for i in range(160):
        size = rng.choice([4096, 12288, 64 << 10, 300 << 10, 1 << 20, 3 << 20])
        name = f"/data/f{i:03d}"
        vol.write_file(name, rng.randbytes(size))
        names.append(name)
    show_map(vol, "after writing 160 files")
    for name in rng.sample(names, 110):
        vol.unlink(name)
    show_map(vol, "after deleting 110 of them")
    r = vol.trim()
    print(f"\ntrim: {r['granules']} wholly free granules discarded, host released "
          f"{format_size(r['released_bytes'])} — the partly used granules stay allocated on the host")

    # fallocate2: put a small file exactly into the first hole of a partly used granule
    s = vol.granules()
    g = vol.granule
    partial = [i for i, u in enumerate(s["used_bytes"]) if 0 < u < g]
    holes = [(p, n) for p, n in vol.free_extents() if p // g in set(partial) and n >= 8192]
    target = holes[0][0]
    fd = vol.open("/data/packed", os.O_RDWR | os.O_CREAT)
    vol.fallocate2(fd, 0, 0, 8192, physical=target)
    vol.pwrite(fd, b"cold data packed into a hole\n", 0)
    ext = vol.fiemap(fd)[0]
    print(f"\nfallocate2(fd, 0, 0, 8192, physical={target}) -> extent at physical {ext.physical} "
          f"(granule {ext.physical // g}, which was partly used)")
    for physical, why in ((target, "same blocks again, now in use"), (target + 1, "not block-aligned"),
                          (vol.size, "outside the device")):
        fd2 = vol.open("/data/probe", os.O_RDWR | os.O_CREAT)
        try:
            vol.fallocate2(fd2, 0, 0, 4096, physical=physical)
        except FsError as e:
            print(f"fallocate2(..., physical={physical}) [{why}]: {e}")
        vol.close(fd2)
    vol.unlink("/data/probe")
    vol.close(fd)
    problems = vol.fsck()
    print(f"\nfsck: {'clean' if not problems else problems}")
    print(f"image: {IMAGE} (metadata {IMAGE}.meta); try: .venv/bin/pyfalloc map {IMAGE}")
    vol.umount()


if __name__ == "__main__":
    main()
