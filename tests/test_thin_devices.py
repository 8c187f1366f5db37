"""The volume on real thin devices, space given back in the device's own figures: a qcow2
with 1 MiB clusters served by qemu-nbd (qemu-img info's actual-size), and a sparse file
served by nbdkit's file plugin (its host blocks). The story on each: mkfs, age, defrag
--strategy exact, trim; the store's figure drops by at least 90 % of the granules freed,
fsck is clean and every file's bytes are unchanged."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from pyfalloc import Volume
from pyfalloc.errors import FsError
from pyfalloc.tools import qcow2

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MiB = 1 << 20

try:
    import nbd  # noqa: F401
    HAVE_LIBNBD = True
except ImportError:
    HAVE_LIBNBD = False

needs_libnbd = pytest.mark.skipif(not HAVE_LIBNBD, reason="libnbd's Python binding is missing (apt python3-libnbd)")


def cli(*args):
    r = subprocess.run([sys.executable, "-m", "pyfalloc.cli.main", *args], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=ROOT), timeout=600)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _wait_for(path):
    for _ in range(100):
        if os.path.exists(path):
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


def digests(uri, meta):
    with Volume(uri, meta=meta, readonly=True) as v:
        out = {}

        def walk(d):
            for name in v.listdir(d):
                p = d.rstrip("/") + "/" + name
                if v.stat(p).st_mode & 0o40000:
                    walk(p)
                else:
                    out[p] = hashlib.sha256(v.read_file(p)).hexdigest()
        walk("/")
        return out


def story(uri, meta, stored_bytes, granule_option=()):
    """mkfs, age, defrag, trim: returns (granules freed, granule, stored bytes before and after)."""
    out = cli("mkfs", uri, "--meta", meta, *granule_option)
    granule = json.loads(cli("map", uri, "--meta", meta, "--json"))["granule_size"]
    cli("age", uri, "--meta", meta, "--churn", "3", "--json")
    before_files = digests(uri, meta)
    before = stored_bytes()
    r = json.loads(cli("defrag", uri, "--meta", meta, "--strategy", "exact", "--json"))
    cli("trim", uri, "--meta", meta)
    after = stored_bytes()
    assert json.loads(cli("fsck", uri, "--meta", meta, "--json"))["clean"]
    assert digests(uri, meta) == before_files
    return r["granules_freed"], granule, before, after, out


@pytest.fixture
def qemu_nbd(tmp_path):
    if not (shutil.which("qemu-nbd") and shutil.which("qemu-img")):
        pytest.skip("qemu-nbd/qemu-img are not installed (apt qemu-utils)")
    with qcow2.served(str(tmp_path), "256M") as served:
        yield served


@needs_libnbd
def test_qcow2_over_nbd_gives_back_the_clusters_defrag_frees(qemu_nbd, tmp_path):
    uri, disk = qemu_nbd
    freed, granule, before, after, mkfs_out = story(uri, str(tmp_path / "vol.meta"), lambda: qcow2.actual_size(disk))
    assert granule == MiB, f"mkfs took the granule from the device (the qcow2 cluster): {mkfs_out}"
    assert freed > 0
    assert before - after >= 0.9 * freed * granule, (before, after, freed)


@needs_libnbd
def test_nbdkit_file_plugin_gives_back_host_blocks(tmp_path):
    if not shutil.which("nbdkit"):
        pytest.skip("nbdkit is not installed (apt nbdkit)")
    backing, sock, pid = tmp_path / "backing.raw", tmp_path / "kit.sock", tmp_path / "kit.pid"
    with open(backing, "wb") as f:
        f.truncate(256 * MiB)
    subprocess.run(["nbdkit", "--unix", str(sock), "--pidfile", str(pid), "file", str(backing)], check=True)
    _wait_for(pid)
    try:
        freed, granule, before, after, _ = story(f"nbd+unix:///?socket={sock}", str(tmp_path / "kit.meta"),
                                                 lambda: os.stat(backing).st_blocks * 512, ("--granule", "1M"))
        assert freed > 0 and granule == MiB
        assert before - after >= 0.9 * freed * granule, (before, after, freed)
    finally:
        os.kill(int(pid.read_text()), 15)


@needs_libnbd
def test_programs_run_on_an_export_through_the_shim(qemu_nbd, tmp_path):
    uri, _ = qemu_nbd
    meta = str(tmp_path / "vol.meta")
    cli("mkfs", uri, "--meta", meta)
    r = subprocess.run([sys.executable, "-m", "pyfalloc.cli.main", "run", uri, "--meta", meta, "--",
                        "sh", "-c", "echo on-nbd > /pyfalloc/f && cat /pyfalloc/f && fallocate -l 1M /pyfalloc/g"],
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT), timeout=120)
    assert r.returncode == 0 and r.stdout == "on-nbd\n", r.stderr
    with Volume(uri, meta=meta) as v:
        assert v.read_file("/f") == b"on-nbd\n" and v.stat("/g").st_size == MiB


@needs_libnbd
def test_a_second_host_is_refused_until_the_claim_is_broken(qemu_nbd, tmp_path):
    uri, _ = qemu_nbd
    meta = str(tmp_path / "vol.meta")
    cli("mkfs", uri, "--meta", meta)
    import nbd
    h = nbd.NBD()
    h.connect_uri(uri)                  # another host's claim, as it sits in block 0
    h.pwrite(b"PYFAOWNR" + b"elsewhere".ljust(64, b"\0") + bytes(16), 320)
    h.flush()
    h.shutdown()
    with pytest.raises(FsError) as e:
        Volume(uri, meta=meta)
    assert e.value.errno == 16 and "elsewhere" in e.value.detail       # EBUSY
    assert "elsewhere" in cli("unlock", uri, "--meta", meta)
    with Volume(uri, meta=meta) as v:
        v.write_file("/after", b"ok")
    with Volume(uri, meta=meta, readonly=True) as v:
        assert v.read_file("/after") == b"ok"


def test_an_export_without_meta_is_refused_by_name():
    with pytest.raises(FsError) as e:
        Volume("nbd+unix:///vol?socket=/nonexistent.sock")
    assert e.value.errno == 22 and "--meta" in e.value.detail


@needs_libnbd
def test_an_unreachable_export_is_named_with_the_errno_libnbd_gives(tmp_path):
    with pytest.raises(FsError) as e:
        Volume(f"nbd+unix:///vol?socket={tmp_path}/none.sock", meta=str(tmp_path / "m.meta"))
    assert e.value.errno == 2 and "none.sock" in e.value.detail      # ENOENT, not a traceback
