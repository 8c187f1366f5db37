"""The native baseline of the benchmarks: kernel ext4 on a loop device over a sparse file."""
import contextlib
import os
import subprocess


@contextlib.contextmanager
def ext4(directory, size):
    """A fresh ext4 of size bytes mounted under directory: yields the mount point."""
    backing, mnt = os.path.join(directory, "ext4.img"), os.path.join(directory, "mnt")
    os.mkdir(mnt)
    with open(backing, "wb") as f:
        f.truncate(size)
    subprocess.run(["mkfs.ext4", "-q", "-F", backing], check=True)
    subprocess.run(["mount", "-o", "loop", backing, mnt], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", mnt], check=False)
