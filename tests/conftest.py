import ctypes
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from pyfalloc import Volume

EXT4_SUPER_MAGIC = 0xEF53
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session", autouse=True)
def no_logs_left_in_dev_shm():
    """The suite kills processes on purpose, and a killed last user leaves its volume's
    shared log and runtime directory in /dev/shm (as a crash leaves a page cache). At the
    end, those the suite made and no process uses go (pre-existing ones stay)."""
    import fcntl
    from pyfalloc.store.shared import USERS, ofd_lock
    before = set(os.listdir("/dev/shm"))
    yield
    for name in sorted(set(os.listdir("/dev/shm")) - before):
        path = os.path.join("/dev/shm", name)
        if not name.startswith("pyfalloc-"):
            continue
        if name.endswith(".d"):
            if not os.path.exists(path[:-2]):      # its log went without it
                shutil.rmtree(path, ignore_errors=True)
            continue
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            if ofd_lock(fd, fcntl.F_WRLCK, USERS, wait=False):
                shutil.rmtree(path + ".d", ignore_errors=True)
                os.unlink(path)
        finally:
            os.close(fd)


@pytest.fixture
def vol(tmp_path):
    v = Volume.mkfs(tmp_path / "disk.img", "256M")
    yield v
    v.umount()


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "disk.img"
    Volume.mkfs(path, "256M").umount()
    return str(path)


def _fs_magic(path):
    class StatFs(ctypes.Structure):
        _fields_ = [("f_type", ctypes.c_long), ("rest", ctypes.c_byte * 120)]
    buf = StatFs()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.statfs(os.fsencode(path), ctypes.byref(buf)) != 0:
        return None
    return buf.f_type & 0xFFFFFFFF


@pytest.fixture(scope="session")
def ext4_dir():
    """A directory on ext4 (the RFC's filesystem): the temp dir if it is ext4, else a
    loop-mounted ext4 image. Skips with the reason when neither can be had."""
    base = tempfile.mkdtemp(prefix="pyfalloc-ext4-")
    if _fs_magic(base) == EXT4_SUPER_MAGIC:
        yield base
        subprocess.run(["rm", "-rf", base])
        return
    img, mnt = base + "/ext4.img", base + "/mnt"
    os.mkdir(mnt)
    with open(img, "wb") as f:
        f.truncate(512 << 20)
    mk = subprocess.run(["mkfs.ext4", "-q", "-F", "-b", "4096", img], capture_output=True)
    mount = subprocess.run(["mount", "-o", "loop", img, mnt], capture_output=True) if mk.returncode == 0 else mk
    if mount.returncode != 0:
        pytest.skip(f"no ext4 to compare with: temp dir is not ext4 and loop mount failed: {mount.stderr!r}")
    yield mnt
    subprocess.run(["umount", mnt])
    subprocess.run(["rm", "-rf", base])


def compile_prog(tmp_path, name, *flags):
    """tests/progs/NAME.c built into tmp_path with cc and flags; the executable's path."""
    exe = str(tmp_path / name)
    cc = subprocess.run(["cc", *flags, "-o", exe, os.path.join(ROOT, "tests", "progs", name + ".c")],
                        capture_output=True, text=True)
    assert cc.returncode == 0, cc.stderr
    return exe


def run_py(code, *args, prefix=(), env=None, **kw):
    """Run Python code in a child process with pyfalloc importable (prefix: a wrapper such as
    setpriv that execs the interpreter)."""
    full_env = dict(os.environ, PYTHONPATH=ROOT)
    full_env.update(env or {})
    return subprocess.run([*prefix, sys.executable, "-c", code, *map(str, args)], env=full_env,
                          capture_output=True, text=True, **kw)


@pytest.fixture
def host_dir(ext4_dir, tmp_path):
    """A directory of its own on the host ext4, the oracle for a test's run on the image."""
    d = os.path.join(ext4_dir, tmp_path.name)
    os.makedirs(d)
    yield d
    shutil.rmtree(d, ignore_errors=True)
