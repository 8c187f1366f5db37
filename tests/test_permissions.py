"""Permissions as Linux enforces them. The oracle's subject is root stripped of every
capability by setpriv (an unprivileged caller that can still load the interpreter from
root's home) on a tree another user owns: the same coreutils commands run in a host ext4
directory and on the image under the shim, and every exit status and message must match."""
import os
import shutil
import subprocess

import pytest

from pyfalloc.shim.run import environment
from conftest import ROOT

UNPRIVILEGED = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--clear-groups"]
SETUP = os.path.join(ROOT, "tests", "progs", "perms_setup.sh")
USER = os.path.join(ROOT, "tests", "progs", "perms_user.sh")

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="needs root to set up files for another user"),
              pytest.mark.skipif(not shutil.which("setpriv"), reason="setpriv(1) is not installed (util-linux)")]


def _run(cmd, env=None):
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, cwd="/")


def test_unprivileged_user_meets_the_same_permissions_on_the_image_as_on_ext4(image, host_dir):
    env = environment(image)
    for d, e in ((host_dir, None), ("/pyfalloc", env)):
        setup = _run(["bash", SETUP, d], e)
        assert setup.returncode == 0, setup.stderr
    host = _run([*UNPRIVILEGED, "bash", USER, host_dir])
    img = _run([*UNPRIVILEGED, "bash", USER, "/pyfalloc"], env)
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    lines = host.stdout.splitlines()
    # the oracle itself refuses and allows: the script tests something
    assert any(line.startswith("1 cat D/priv/s") and "Permission denied" in line for line in lines)
    assert any(line.startswith("1 rm -f D/sticky/rootfile") and "Operation not permitted" in line for line in lines)
    assert any(line.startswith("0 touch D/pub/w666") for line in lines)
    assert img.stdout.splitlines() == lines, img.stderr


def test_root_passes_permission_bits_through_its_capabilities(vol):
    fd = vol.open("/secret", os.O_WRONLY | os.O_CREAT, 0o000)
    vol.pwrite(fd, b"root reads it", 0)
    vol.close(fd)
    assert vol.read_file("/secret") == b"root reads it"       # CAP_DAC_OVERRIDE
    assert vol.access("/secret", os.R_OK | os.W_OK) is None
    with pytest.raises(OSError) as e:
        vol.access("/secret", os.X_OK)                          # no x bit at all: even root
    assert e.value.errno == 13
