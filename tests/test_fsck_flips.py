"""fsck that can be trusted: bytes flipped at random in the files of a volume (the image's
superblock block, the checkpoint, the journal) never give a traceback, and never a "clean"
verdict over a volume whose files changed in name, size, mode or bytes. A damaged store is
refused (EUCLEAN) before anyone can write into it.

File data carries no checksum (as ext4's), so flips inside data blocks are out of reach of
any fsck; the superblock block holds everything of the image that is metadata."""
import errno
import hashlib
import os
import random
import shutil
import stat

import pytest

from pyfalloc import Volume
from pyfalloc.errors import FsError
from pyfalloc.store import volume_files

TRIALS = int(os.environ.get("PYFALLOC_FLIP_TRIALS", "120"))


def snapshot(v):
    out = {}

    def walk(d):
        for name in v.listdir(d):
            p = d.rstrip("/") + "/" + name
            s = v.stat(p)
            if stat.S_ISDIR(s.st_mode):
                out[p] = ("dir", s.st_mode)
                walk(p)
            else:
                out[p] = (hashlib.sha256(v.read_file(p)).hexdigest(), s.st_size, s.st_mode)
    walk("/")
    return out


def _populate(v, rng):
    for i in range(40):
        if i % 10 == 0:
            v.mkdir(f"/d{i}")
        v.write_file(f"/d{i // 10 * 10}/f{i}", rng.randbytes(rng.randrange(0, 40000)))
    v.unlink("/d0/f3")
    v.rename("/d10/f12", "/d20/moved")
    v.truncate("/d20/f21", 100)


@pytest.fixture(params=["folded", "journal"])
def volume(request, tmp_path):
    """A volume as the last user leaves it (one checkpoint), or as a crash leaves it with
    commits in the journal."""
    rng = random.Random(7)
    img = str(tmp_path / "v.img")
    v = Volume.mkfs(img, "16M")
    _populate(v, rng)
    if request.param == "folded":
        v.umount()
        copy = img
    else:
        v.sync()
        copy = str(tmp_path / "copy" / "v.img")
        os.mkdir(os.path.dirname(copy))
        for f, g in zip(volume_files(img), volume_files(copy)):
            shutil.copyfile(f, g)
        v.umount()
        assert os.path.getsize(copy + ".meta-journal") > 8192, "the journal holds commits"
    with Volume(copy, readonly=True) as ro:
        expected = snapshot(ro)
    return copy, expected


def test_random_byte_flips_are_found_or_harmless_never_a_traceback(volume, tmp_path):
    image, expected = volume
    rng = random.Random(int.from_bytes(os.urandom(4), "little"))
    seed_note = rng.getstate()[1][0]
    verdicts = {"refused": 0, "problems": 0, "clean": 0}
    for trial in range(TRIALS):
        d = tmp_path / f"t{trial}"
        d.mkdir()
        files = [str(d / os.path.basename(f)) for f in volume_files(image)]
        for f, g in zip(volume_files(image), files):
            shutil.copyfile(f, g)
        target = rng.randrange(3)
        size = os.path.getsize(files[target])
        pos = rng.randrange(4096 if target == 0 else size)
        with open(files[target], "r+b") as fh:
            fh.seek(pos)
            old = fh.read(1)[0]
            fh.seek(pos)
            fh.write(bytes([old ^ rng.randrange(1, 256)]))
        where = f"trial {trial} (seed note {seed_note}): byte {pos} of {os.path.basename(files[target])}"
        try:
            with Volume(files[0]) as v:
                problems = v.fsck()
                if problems:
                    verdicts["problems"] += 1
                else:
                    verdicts["clean"] += 1
                    assert snapshot(v) == expected, f"fsck said clean over changed files: {where}"
        except FsError as e:
            assert e.errno == errno.EUCLEAN, f"{where}: {e}"
            verdicts["refused"] += 1
        shutil.rmtree(d)
    assert verdicts["refused"] + verdicts["problems"] > 0, verdicts      # damage is found
