"""The pyfalloc command as a user runs it: output, JSON shapes, errors and exit codes."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(*args, check=True, stdin=None):
    out = subprocess.run([sys.executable, "-m", "pyfalloc.cli.main", *map(str, args)], capture_output=True,
                         env=dict(os.environ, PYTHONPATH=ROOT), input=stdin)
    if check:
        assert out.returncode == 0, out.stderr.decode()
    return out


def js(*args):
    return json.loads(cli(*args, "--json").stdout)


@pytest.fixture
def img(tmp_path):
    path = tmp_path / "cli.img"
    cli("mkfs", path, "--size", "64M", "--granule", "64K", "--group-size", "16M")
    return path


def test_put_cat_ls_stat_rm(img, tmp_path):
    local = tmp_path / "local"
    payload = os.urandom(300_000)
    local.write_bytes(payload)
    cli("mkdir", img, "/d")
    cli("put", img, local, "/d/file")
    cli("put", img, "-", "/d/stdin", stdin=b"from stdin")
    assert cli("cat", img, "/d/file").stdout == payload
    assert cli("cat", img, "/d/stdin").stdout == b"from stdin"
    listing = js("ls", img, "/", "-R")
    assert {"path": "/d/file", "type": "file", "size": 300_000} in [
        {k: e[k] for k in ("path", "type", "size")} for e in listing]
    assert js("stat", img, "/d/file")["size"] == 300_000
    assert "file" in cli("ls", img, "/d", "-l").stdout.decode()
    root = cli("rm", img, "/", "-r", check=False)
    assert root.returncode == 1 and "(EBUSY)" in root.stderr.decode()
    assert [e["path"] for e in js("ls", img)] == ["/d"]      # nothing removed
    cli("rm", img, "/d", "-r")
    assert js("ls", img) == []


def test_fallocate_flags_like_util_linux(img):
    cli("fallocate", img, "/f", "-l", "64K")
    assert js("stat", img, "/f")["size"] == 65536
    cli("fallocate", img, "/f", "-n", "-o", "64K", "-l", "64K")
    assert js("stat", img, "/f")["size"] == 65536
    cli("fallocate", img, "/f", "-p", "-o", "0", "-l", "8K")           # punch implies keep-size
    ext = js("fiemap", img, "/f")["extents"]
    assert ext[0]["logical"] == 8192 and all("unwritten" in e["flags"] for e in ext)
    assert "last" in ext[-1]["flags"]
    cli("fallocate", img, "/f", "-c", "-o", "0", "-l", "8K")
    assert js("stat", img, "/f")["size"] == 65536 - 8192
    cli("fallocate", img, "/f", "-i", "-o", "0", "-l", "4K")
    cli("fallocate", img, "/f", "-z", "-o", "0", "-l", "100K")
    assert js("stat", img, "/f")["size"] == 102400
    cli("fallocate", img, "/g", "-x", "-l", "10000")
    assert js("stat", img, "/g")["size"] == 10000


def test_fallocate_physical_and_errors(img):
    cli("fallocate", img, "/p", "-l", "16K", "--physical", "8M")
    assert js("fiemap", img, "/p")["extents"] == [
        {"logical": 0, "physical": 8 << 20, "length": 16384, "flags": ["last", "unwritten"]}]
    busy = cli("fallocate", img, "/q", "-l", "4K", "--physical", "8M", check=False)
    assert busy.returncode == 1
    assert busy.stderr.decode().splitlines()[0] == "pyfalloc: fallocate: No space left on device (ENOSPC)"
    outside = cli("fallocate", img, "/q", "-l", "4K", "--physical", "64M", check=False)
    assert outside.stderr.decode().splitlines()[0] == "pyfalloc: fallocate: Invalid argument (EINVAL)"
    unsup = cli("fallocate", img, "/q", "-l", "4K", "-z", "--physical", "1M", check=False)
    assert "(EOPNOTSUPP)" in unsup.stderr.decode()
    missing = cli("cat", img, "/nope", check=False)
    assert missing.returncode == 1
    assert missing.stderr.decode().splitlines()[0] == "pyfalloc: cat: No such file or directory (ENOENT)"


def test_bad_sizes_and_geometry(tmp_path):
    bad = cli("mkfs", tmp_path / "x.img", "--size", "12Q", check=False)
    assert bad.returncode != 0 and "invalid size" in bad.stderr.decode()
    geo = cli("mkfs", tmp_path / "x.img", "--size", "64M", "--granule", "3K", check=False)
    assert geo.stderr.decode().startswith("pyfalloc: mkfs: Invalid argument (EINVAL)")
    assert "power of two" in geo.stderr.decode()
    cli("mkfs", tmp_path / "y.img", "--size", "64M")
    again = cli("mkfs", tmp_path / "y.img", "--size", "64M", check=False)
    assert "(EEXIST)" in again.stderr.decode()
    cli("mkfs", tmp_path / "y.img", "--size", "64M", "-F")


def test_fsmap_map_trim_fsck_json(img):
    cli("fallocate", img, "/p", "-l", "64K", "--physical", "1M")
    free = js("fsmap", img, "--free")["free"]
    assert all(set(f) == {"physical", "length"} for f in free)
    assert sum(f["length"] for f in free) == (64 << 20) - 4096 - 65536
    m = js("map", img)
    assert m["granule_size"] == 65536 and m["granules"] == 1024
    assert m["free"] + m["partial"] + m["full"] == 1024 and m["full"] == 1 and m["partial"] == 1
    assert len(m["used_bytes"]) == 1024 and m["used_bytes"][16] == 65536
    t = js("trim", img)
    assert set(t) >= {"released_bytes", "granules"} and t["granules"] == 1022
    assert js("fsck", img) == {"clean": True, "problems": []}
    text = cli("map", img).stdout.decode()
    assert "1024 granules of 64K: 1022 free, 1 partly used, 1 full" in text


def test_map_png(img, tmp_path):
    png = tmp_path / "map.png"
    cli("map", img, "--png", png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fsck_exit_status_on_damage(img):
    from pyfalloc.store import Tables, journal
    cli("fallocate", img, "/p", "-l", "64K")
    meta = journal.meta_path(img)
    ckpt = journal.read_checkpoint(meta)
    changes, _, last, _ = journal.read_journal(meta, ckpt)
    settings = {key: value for table, key, value in ckpt.records if table == "s"}
    tables = Tables(settings["group_size"] // settings["block_size"])
    tables.load(ckpt)
    for change in changes:
        tables.apply(change)
    records = tables.dump()
    first_free = min(r for r in records if r[0] == "f")
    records = [r for r in records if r != first_free]                   # lose free blocks
    records.append(("e", (99, 0), (1, 5, 0)))                           # orphaned extent
    damaged = Tables(tables.group_blocks)
    damaged.apply(records)
    journal.write_checkpoint(meta, ckpt.uuid, ckpt.epoch + 1, seq=last, **damaged.checkpoint())
    out = cli("fsck", img, check=False)
    assert out.returncode == 1
    text = out.stdout.decode()
    assert "free + used + preallocated" in text and "extents of missing inode 99" in text


def test_move_relocates_reports_and_refuses_clearly(img, tmp_path):
    local = tmp_path / "local"
    payload = os.urandom(50_000)
    local.write_bytes(payload)
    cli("put", img, local, "/f")
    r = js("move", img, "/f", "--physical", "32M", "-l", "1G")      # length past EOF: clipped
    assert r["moved_bytes"] == 53248 and r["extents"][0]["physical"] == 32 << 20
    assert cli("cat", img, "/f").stdout == payload
    again = js("move", img, "/f", "--physical", "32M")                # already there: nothing moves
    assert again["moved_bytes"] == 0
    cli("put", img, local, "/g")
    busy = cli("move", img, "/g", "--physical", str((32 << 20) + 4096), check=False)
    assert busy.returncode == 1 and b"(ENOSPC)" in busy.stderr
    outside = cli("move", img, "/g", "--physical", str((64 << 20) - 4096), check=False)
    assert outside.returncode == 1 and b"(EINVAL)" in outside.stderr
    part = js("move", img, "/g", "--physical", "40M", "-o", "8K", "-l", "8K", "--trim")
    assert part["moved_bytes"] == 8192 and part["trim"]["granules"] > 0
    assert [e["physical"] for e in part["extents"] if e["logical"] == 8192] == [40 << 20]
    assert cli("cat", img, "/g").stdout == payload
    assert js("fsck", img)["clean"]
