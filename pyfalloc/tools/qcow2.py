"""A qcow2 disk served by qemu-nbd on a UNIX socket, discards passed down (--discard=unmap):
the thin device the demo, the benchmarks and the tests put a volume on, and qemu-img's
figure of what the disk holds."""
import contextlib
import json
import os
import shutil
import subprocess
import time


def available():
    """qemu-utils installed, and libnbd's Python binding to reach the export."""
    try:
        import nbd  # noqa: F401
    except ImportError:
        return False
    return bool(shutil.which("qemu-nbd") and shutil.which("qemu-img"))


@contextlib.contextmanager
def served(directory, size, cluster="1M"):
    """A new qcow2 of size in directory, exported as "vol": yields (URI, the disk's path)."""
    disk, sock, pid = (os.path.join(directory, n) for n in ("disk.qcow2", "nbd.sock", "nbd.pid"))
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", f"cluster_size={cluster}", disk, str(size)],
                   check=True)
    subprocess.run(["qemu-nbd", "--discard=unmap", "-f", "qcow2", f"--socket={sock}", "-x", "vol", "--persistent",
                    "--shared=0", "--fork", f"--pid-file={pid}", disk], check=True)
    for _ in range(100):
        if os.path.exists(pid):
            break
        time.sleep(0.05)
    try:
        yield f"nbd+unix:///vol?socket={sock}", disk
    finally:
        with open(pid) as f:
            os.kill(int(f.read()), 15)


def actual_size(disk):
    """The bytes the qcow2's host file holds (qemu-img info's actual-size)."""
    out = subprocess.run(["qemu-img", "info", "-U", "--output=json", disk], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out)["actual-size"]
