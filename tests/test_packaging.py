"""`pip install .` ships the shim: the wheel pip builds holds libpyfalloc.so beside
pyfalloc/shim/run.py, where `pyfalloc run` looks first."""
import os
import subprocess
import sys
import zipfile

from conftest import ROOT


def test_the_wheel_carries_the_built_shim(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                        "-w", str(tmp_path), ROOT], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    wheel = next(p for p in os.listdir(tmp_path) if p.endswith(".whl"))
    names = zipfile.ZipFile(tmp_path / wheel).namelist()
    assert "pyfalloc/shim/libpyfalloc.so" in names
    assert "pyfalloc/shim/run.py" in names
