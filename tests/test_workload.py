"""Random workloads with fsck and a byte model after every step; two processes at once."""
import hashlib
import json
import os
import subprocess
import sys

import pytest
import workload

from pyfalloc import Volume

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.parametrize("seed", range(6))
def test_random_workload_fsck_clean_after_every_step(tmp_path, seed):
    # a small device, so ENOSPC, window discards and fallocate2 collisions all happen
    vol = Volume.mkfs(tmp_path / "w.img", "4M", granule="64K", group_size="1M")
    workload.run(vol, "w", seed, 250)
    assert vol.fsck() == []
    vol.umount()


def test_two_processes_on_one_image(tmp_path):
    image = str(tmp_path / "mp.img")
    Volume.mkfs(image, "64M", group_size="8M").umount()
    procs = [subprocess.Popen([sys.executable, os.path.join(HERE, "workload.py"), image, f"p{i}", str(i), "400"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        reports.append(json.loads(out))
    vol = Volume(image)
    assert vol.fsck() == []
    # each process checked its own model; the image must hold exactly what each one ended with
    for i, expected in enumerate(reports):
        assert expected, "workload ended with no files"
        assert sorted(vol.listdir(f"/p{i}")) == sorted(expected)
        for name, digest in expected.items():
            assert hashlib.sha256(vol.read_file(f"/p{i}/{name}")).hexdigest() == digest
    vol.umount()
