"""The compactor (pyfalloc age + defrag): planner optimality on constructed images, contents
unchanged, fsck clean, writers during a defrag, the CLI's JSON, aging determinism."""
import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

from pyfalloc import Volume
from pyfalloc.store import volume_files
from pyfalloc.tools import age
from pyfalloc.tools.compact import Compactor, PathIndex, lower_bound, snapshot, walk

K = 1024
M = 1 << 20


def digests(vol):
    out = {}
    for d in vol.listdir("/"):
        for f in vol.listdir("/" + d):
            out[f"/{d}/{f}"] = hashlib.sha256(vol.read_file(f"/{d}/{f}")).hexdigest()
    return out


def place(vol, path, physical, length, byte):
    fd = vol.open(path, os.O_RDWR | os.O_CREAT)
    vol.fallocate2(fd, 0, 0, length, physical=physical)
    vol.pwrite(fd, bytes([byte]) * length, 0)
    vol.close(fd)


def test_rfc_example_moves_4k_not_1m(tmp_path):
    """[1020K file][4K free] [4K file][1020K free]: the 4 KiB file goes into the 4 KiB hole."""
    vol = Volume.mkfs(tmp_path / "rfc.img", "4M", granule="1M", group_size="1M")
    vol.mkdir("/d")
    place(vol, "/d/filler", 4 * K, 1020 * K, 1)          # granule 0 full (block 0 is the superblock)
    place(vol, "/d/big", M, 1020 * K, 2)
    place(vol, "/d/small", 2 * M, 4 * K, 3)
    before = digests(vol)
    r = Compactor(vol, "exact").run()
    assert r["bytes_moved"] == 4 * K
    assert r["granules_freed"] == 1 and r["bound"] == {"k_max": 1, "bytes_for_k_max": 4 * K, "bytes_for_freed": 4 * K}
    assert vol.fiemap_path("/d/small")[0].physical == M + 1020 * K
    assert digests(vol) == before
    assert vol.fsck() == []
    vol.umount()


def test_a_file_with_two_names_moves_once_and_both_names_follow(tmp_path):
    """A hard-linked victim: the walk names it once, its 4 KiB move is counted once, and
    both names read the same bytes from the new place."""
    vol = Volume.mkfs(tmp_path / "hl.img", "4M", granule="1M", group_size="1M")
    vol.mkdir("/d")
    place(vol, "/d/filler", 4 * K, 1020 * K, 1)
    place(vol, "/d/big", M, 1020 * K, 2)
    place(vol, "/d/small", 2 * M, 4 * K, 3)
    vol.link("/d/small", "/other")
    assert len(walk(vol)) == 3
    r = Compactor(vol, "exact").run()
    assert r["bytes_moved"] == 4 * K and r["granules_freed"] == 1 and r["files_moved"] == 1
    assert vol.fiemap_path("/other")[0].physical == M + 1020 * K
    assert vol.read_file("/other") == vol.read_file("/d/small") and vol.stat("/other").st_nlink == 2
    assert vol.fsck() == []
    vol.umount()


HOLDER = """
import os, sys, time
sys.path.insert(0, {root!r})
from pyfalloc import Volume
vol = Volume(sys.argv[1])
fds = [vol.open(p, os.O_RDONLY) for p in sys.argv[2:]]
print("held", flush=True)
time.sleep(60)
"""


def test_a_file_open_in_another_process_stays_where_it_is(tmp_path):
    """The RFC example, with the 4 KiB file held open elsewhere: fuser's rule keeps it in
    place, so its granule is no candidate; the next cheapest (1020K) goes into its hole."""
    image = tmp_path / "held.img"
    vol = Volume.mkfs(image, "4M", granule="1M", group_size="1M")
    vol.mkdir("/d")
    place(vol, "/d/filler", 4 * K, 1020 * K, 1)
    place(vol, "/d/big", M, 1020 * K, 2)
    place(vol, "/d/small", 2 * M, 4 * K, 3)
    vol.sync()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER.format(root=ROOT), str(image), "/d/small"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        small = vol.stat("/d/small").st_ino
        assert small in vol.open_inodes()
        r = Compactor(vol, "exact").run()
        assert r["skipped_files"]["open"] == 1
        assert vol.fiemap_path("/d/small")[0].physical == 2 * M
        assert r["bytes_moved"] == 1020 * K and r["granules_freed"] == 1
        assert vol.fiemap_path("/d/big")[0].physical == 2 * M + 4 * K
    finally:
        holder.kill()
        holder.wait()
    vol.umount()


def test_open_inodes_lists_what_every_process_holds(tmp_path):
    """The one-pass listing names exactly the inodes that the per-inode check finds held,
    here and in another process, over scattered inode numbers."""
    image = tmp_path / "o.img"
    vol = Volume.mkfs(image, "16M")
    names = [f"/f{i}" for i in range(60)]
    for p in names:
        vol.close(vol.open(p, os.O_RDWR | os.O_CREAT))
    vol.sync()
    mine = [vol.open(p, os.O_RDONLY) for p in names[::7]]
    holder = subprocess.Popen([sys.executable, "-c", HOLDER.format(root=ROOT), str(image), *names[3::5]],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        want = {vol.stat(p).st_ino for p in names[::7] + names[3::5]}
        assert vol.open_inodes() == want
        assert want == {vol.stat(p).st_ino for p in names if vol.in_use(p)}
    finally:
        holder.kill()
        holder.wait()
    for fd in mine:
        vol.close(fd)
    vol.umount()


def test_the_walk_names_every_file_including_names_that_are_not_utf8(tmp_path):
    """The compact name index gives back each path exactly as the tree has it (bytes that
    are not UTF-8 included), and KeyError for an inode that has no name."""
    vol = Volume.mkfs(tmp_path / "n.img", "16M")
    paths = ["/a", "/d/b", "/d/e/caf\udce9", "/d/e/\u00e9t\u00e9"]
    vol.mkdir("/d")
    vol.mkdir("/d/e")
    for p in paths:
        vol.close(vol.open(p, os.O_RDWR | os.O_CREAT))
    names = walk(vol)
    assert len(names) == len(paths)
    assert {names[vol.stat(p).st_ino] for p in paths} == set(paths)
    assert vol.stat("/d").st_ino not in names
    with pytest.raises(KeyError):
        names[vol.stat("/d").st_ino]
    assert len(PathIndex([])) == 0
    vol.umount()


def test_bound_counts_what_the_holes_can_absorb(tmp_path):
    """Three granules at 1/4, 1/2 and 3/4: the holes of the kept ones absorb at most one
    (1/4 into the 3/4 granule's hole); freeing one moves at least 256K."""
    vol = Volume.mkfs(tmp_path / "b.img", "4M", granule="1M", group_size="1M")
    vol.mkdir("/d")
    place(vol, "/d/filler", 4 * K, 1020 * K, 1)
    place(vol, "/d/q", M, 256 * K, 2)
    place(vol, "/d/h", 2 * M, 512 * K, 3)
    place(vol, "/d/t", 3 * M, 768 * K, 4)
    b = lower_bound(snapshot(vol))
    # holes of kept granules: 768K + 512K + 256K; freeing the 256K one leaves 512K + 256K of
    # holes for 256K of data, freeing two more would need 768K into 256K
    assert (b["k_max"], b["bytes_for_k_max"]) == (1, 256 * K)
    r = Compactor(vol, "exact").run(dry_run=True)
    assert (r["planned_granules"], r["planned_bytes"], r["bytes_moved"]) == (1, 256 * K, 0)
    vol.umount()


@pytest.fixture(scope="module")
def aged(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("aged") / "aged.img")
    with Volume.mkfs(path, "96M") as vol:
        age.apply_volume(vol, age.history(vol.size, vol.block_size, seed=5, fill=0.8, churn=3))
    return path


def copy_image(src, dst):
    for a, b in zip(volume_files(src), volume_files(dst)):
        shutil.copy(a, b)
    return str(dst)


@pytest.mark.parametrize("strategy", ["exact", "donor", "keepsize"])
def test_defrag_keeps_every_byte_and_fsck_clean(aged, tmp_path, strategy):
    with Volume(copy_image(aged, tmp_path / "c.img")) as vol:
        before = digests(vol)
        r = Compactor(vol, strategy).run()
        assert digests(vol) == before
        assert vol.fsck() == []
        assert r["granules_free_after"] == vol.granules()["free"]
        if strategy == "exact":
            b = r["bound"]
            assert r["granules_freed"] >= 0.95 * b["k_max"] > 0
            assert r["bytes_moved"] <= 1.25 * b["bytes_for_freed"]
            assert r["released_bytes"] > 0


def test_dry_run_moves_nothing(aged, tmp_path):
    with Volume(copy_image(aged, tmp_path / "c.img")) as vol:
        maps = {p: vol.fiemap_path(p) for p in digests(vol)}
        r = Compactor(vol, "exact").run(dry_run=True)
        assert r["planned_bytes"] > 0 and r["bytes_moved"] == 0
        assert {p: vol.fiemap_path(p) for p in maps} == maps


WRITER = """
import hashlib, os, random, sys, json
sys.path.insert(0, {root!r})
from pyfalloc import Volume
image, seed, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
vol = Volume(image)
files = sorted(p for p in json.loads(sys.argv[4]) if hash(p) % 2 == seed % 2)
model = {{}}
for _ in range(n):
    p = rng.choice(files)
    data = model.get(p) or vol.read_file(p)
    off = rng.randrange(max(1, len(data)))
    chunk = bytes([rng.randrange(1, 256)]) * rng.randint(1, 9000)
    fd = vol.open(p, os.O_RDWR)
    vol.pwrite(fd, chunk, off)
    vol.fsync(fd)
    vol.close(fd)
    data = bytearray(data)
    data[off:off + len(chunk)] = chunk
    model[p] = bytes(data)
print(json.dumps({{p: hashlib.sha256(d).hexdigest() for p, d in model.items()}}))
"""


def test_writers_during_a_defrag_lose_nothing(aged, tmp_path):
    image = copy_image(aged, tmp_path / "w.img")
    with Volume(image) as vol:
        before = digests(vol)
    env = dict(os.environ, PYTHONHASHSEED="0")
    writers = [subprocess.Popen([sys.executable, "-c", WRITER.format(root=ROOT), image, str(s), "150",
                                 json.dumps(sorted(before))], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env) for s in (0, 1)]
    with Volume(image) as vol:
        r = Compactor(vol, "exact").run()
    changed = {}
    for w in writers:
        out, err = w.communicate(timeout=600)
        assert w.returncode == 0, err
        changed.update(json.loads(out))
    assert r["files_moved"] > 0
    with Volume(image) as vol:
        assert vol.fsck() == []
        after = digests(vol)
    assert changed and all(after[p] == d for p, d in changed.items())
    assert all(after[p] == d for p, d in before.items() if p not in changed)


def test_cli_age_and_defrag_json(tmp_path):
    img, log = str(tmp_path / "j.img"), str(tmp_path / "ops.log")
    cli = [sys.executable, "-m", "pyfalloc.cli.main"]
    env = dict(os.environ, PYTHONPATH=ROOT)

    def run(*args):
        p = subprocess.run(cli + list(args), capture_output=True, text=True, env=env)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    subprocess.run(cli + ["mkfs", img, "--size", "48M"], check=True, env=env, capture_output=True)
    a = run("age", img, "--seed", "2", "--churn", "2", "--write-log", log, "--json")
    assert a["files"] == a["files_created"] - a["files_deleted"] > 0
    d = run("defrag", img, "--json")
    for key in ("granules_free_before", "granules_free_after", "granules_freed", "bytes_moved",
                "files_moved", "released_bytes", "seconds"):
        assert isinstance(d[key], (int, float)), key
    assert set(d["bound"]) == {"k_max", "bytes_for_k_max", "bytes_for_freed"}
    assert set(d["phases"]) == {"plan", "move", "trim"}
    assert 0 <= sum(d["phases"].values()) <= d["seconds"] + 0.003     # parts of the run, rounded
    assert d["granules_freed"] == d["granules_free_after"] - d["granules_free_before"]
    # the same history replayed elsewhere gives the same files
    img2 = str(tmp_path / "r.img")
    subprocess.run(cli + ["mkfs", img2, "--size", "48M"], check=True, env=env, capture_output=True)
    run("age", img2, "--replay-log", log, "--json")
    with Volume(img) as v1, Volume(img2) as v2:
        assert digests(v1) == digests(v2)


def test_aging_is_deterministic_and_follows_the_profile():
    a = age.history(1 << 30, 4096, seed=9)
    assert a == age.history(1 << 30, 4096, seed=9) != age.history(1 << 30, 4096, seed=10)
    sizes = sorted(op[2] for op in a if op[0] == "create")
    median = sizes[len(sizes) // 2]
    assert 1024 <= median <= 16384          # the agrawal histogram peaks at 2-8 KiB
    imp = [op[2] for op in age.history(1 << 30, 4096, seed=9, profile="impressions") if op[0] == "create"]
    assert 4000 < sorted(imp)[len(imp) // 2] < 40000    # e^9.48 ~ 13 KiB


def test_second_history_adds_to_the_first_and_overfull_is_refused(tmp_path):
    img = str(tmp_path / "t.img")
    env = dict(os.environ, PYTHONPATH=ROOT)
    cli = [sys.executable, "-m", "pyfalloc.cli.main"]
    subprocess.run(cli + ["mkfs", img, "--size", "32M"], check=True, env=env, capture_output=True)
    first = subprocess.run(cli + ["age", img, "--fill", "0.5", "--json"], capture_output=True, text=True, env=env)
    second = subprocess.run(cli + ["age", img, "--fill", "0.7", "--seed", "2", "--json"],
                            capture_output=True, text=True, env=env)
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    again = subprocess.run(cli + ["age", img, "--fill", "0.3"], capture_output=True, text=True, env=env)
    assert again.returncode == 1 and "(ENOSPC)" in again.stderr
    with Volume(img) as vol:
        assert vol.fsck() == []
        sf = vol.statfs()
        assert 0.6 < 1 - sf["f_bfree"] / sf["f_blocks"] <= 0.71


def test_donor_strategy_keeps_page_alignment_with_1k_blocks(tmp_path):
    """MOVE_EXT wants both starts at the same offset in a page: with 1 KiB blocks the donor's
    slots must be page-aligned, or every move is EINVAL."""
    with Volume.mkfs(tmp_path / "k.img", "32M", block_size="1K", granule="64K", group_size="8M") as vol:
        age.apply_volume(vol, age.history(vol.size, vol.block_size, seed=3, churn=2))
        before = digests(vol)
        r = Compactor(vol, "donor").run()
        assert r["bytes_moved"] > 0 and r["files_moved"] > 0
        assert digests(vol) == before
        assert vol.fsck() == []
