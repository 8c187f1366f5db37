"""The volume on a Ceph RBD image (4 MiB objects) of a throwaway single-host cluster
(tests/ceph/up.sh: one mon, one mgr, one OSD on a file): mkfs takes the object size as its
granule; age, defrag --strategy exact and trim give back at least 90 % of the granules
freed in `rbd du`'s own figure; fsck clean, every file's bytes unchanged."""
import json
import os
import shutil
import subprocess
import tempfile

import pytest

from test_thin_devices import MiB, cli, digests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

try:
    import rados  # noqa: F401
    import rbd  # noqa: F401
    HAVE_BINDINGS = True
except ImportError:
    HAVE_BINDINGS = False


@pytest.fixture(scope="module")
def cluster():
    if not all(shutil.which(c) for c in ("ceph-mon", "ceph-osd", "ceph-mgr", "rbd", "monmaptool")):
        pytest.skip("Ceph is not installed (apt ceph-mon ceph-osd ceph-mgr ceph-common)")
    if not HAVE_BINDINGS:
        pytest.skip("Ceph's Python bindings are missing (apt python3-rbd python3-rados)")
    d = tempfile.mkdtemp(prefix="pyfalloc-ceph-")
    up = subprocess.run([os.path.join(ROOT, "tests", "ceph", "up.sh"), d], capture_output=True, text=True,
                        timeout=300)
    if up.returncode:
        subprocess.run([os.path.join(ROOT, "tests", "ceph", "down.sh"), d])
        pytest.fail(f"the throwaway cluster did not start: {up.stderr[-2000:]}")
    old = os.environ.get("CEPH_CONF")
    os.environ["CEPH_CONF"] = os.path.join(d, "ceph.conf")
    yield d
    if old is None:
        del os.environ["CEPH_CONF"]
    else:
        os.environ["CEPH_CONF"] = old
    subprocess.run([os.path.join(ROOT, "tests", "ceph", "down.sh"), d])


def rbd_used(spec):
    out = subprocess.run(["rbd", "du", "--format", "json", spec], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["images"][0]["used_size"]


def test_rbd_image_gives_back_the_objects_defrag_frees(cluster, tmp_path):
    subprocess.run(["rbd", "create", "--size", "512M", "--object-size", "4M", "rbd/story"], check=True)
    uri, meta = "rbd:rbd/story", str(tmp_path / "story.meta")
    out = cli("mkfs", uri, "--meta", meta)
    assert "granule 4M" in out, out                     # the object size
    cli("age", uri, "--meta", meta, "--churn", "2", "--json")
    files = digests(uri, meta)
    before = rbd_used("rbd/story")
    r = json.loads(cli("defrag", uri, "--meta", meta, "--strategy", "exact", "--json"))
    cli("trim", uri, "--meta", meta)
    after = rbd_used("rbd/story")
    assert r["granules_freed"] > 0
    assert before - after >= 0.9 * r["granules_freed"] * 4 * MiB, (before, after, r["granules_freed"])
    assert json.loads(cli("fsck", uri, "--meta", meta, "--json"))["clean"]
    assert digests(uri, meta) == files


def test_the_shim_and_the_ceph_options_on_rbd(cluster, tmp_path):
    subprocess.run(["rbd", "create", "--size", "64M", "--object-size", "4M", "rbd/shim"], check=True)
    conf = os.environ.pop("CEPH_CONF")
    try:                                                # the cluster named by option only
        meta = str(tmp_path / "shim.meta")
        cli("mkfs", "rbd:rbd/shim", "--meta", meta, "--ceph-conf", conf)
        out = cli("run", "rbd:rbd/shim", "--meta", meta, "--ceph-conf", conf, "--", "sh", "-c",
                  "echo on-rbd > /pyfalloc/f && cat /pyfalloc/f")
        assert out == "on-rbd\n"
        assert cli("cat", f"rbd:rbd/shim:conf={conf}", "--meta", meta, "/f") == "on-rbd\n"
    finally:
        os.environ["CEPH_CONF"] = conf
