"""O_DIRECT as ext4 takes it, printed so a run in a host directory and a run on the image
can be compared line by line: F_GETFL shows it, F_SETFL sets and clears it, and a read or a
write whose offset, length or buffer address is not a multiple of 512 is EINVAL.

    python odirect.py DIR
"""
import fcntl
import mmap
import os
import sys

from oracle import show, workdir

workdir(sys.argv[1], "od")
fd = os.open("f", os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
page = mmap.mmap(-1, 16384)         # page-aligned buffers
page.write(b"x" * 16384)
buf = memoryview(page)
show("F_GETFL shows O_DIRECT", lambda: bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT))
show("aligned write", lambda: os.pwrite(fd, buf[:4096], 0))
show("write at offset 1", lambda: os.pwrite(fd, buf[:4096], 1))
show("512 bytes at 512", lambda: os.pwrite(fd, buf[:512], 512))
show("100 bytes", lambda: os.pwrite(fd, buf[:100], 8192))
show("from an odd address", lambda: os.pwrite(fd, buf[1:4097], 8192))
show("from 512 bytes into the page", lambda: os.pwrite(fd, buf[512:4608], 8192))
show("writev, one piece misaligned", lambda: os.pwritev(fd, [buf[:4096], buf[:100]], 12288))
show("aligned read", lambda: len(os.preadv(fd, [buf[4096:8192]], 0) and buf[4096:8192]))
show("read at offset 1", lambda: os.preadv(fd, [buf[4096:8192]], 1))
show("read of 100 bytes", lambda: os.preadv(fd, [buf[4096:4196]], 0))
show("read past the end, aligned", lambda: os.preadv(fd, [buf[4096:8192]], 1 << 20))
show("write of 0 bytes at 1", lambda: os.pwrite(fd, b"", 1))
show("size", lambda: os.fstat(fd).st_size)
fcntl.fcntl(fd, fcntl.F_SETFL, 0)
show("F_SETFL cleared it", lambda: bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT))
show("then a write at offset 1", lambda: os.pwrite(fd, b"y" * 10, 1))
fcntl.fcntl(fd, fcntl.F_SETFL, os.O_DIRECT)
show("F_SETFL set it", lambda: bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT))
show("then a write at offset 1", lambda: os.pwrite(fd, b"y" * 10, 1))
dup = os.dup(fd)
show("a dup: write at offset 1", lambda: os.pwrite(dup, b"y" * 10, 1))
show("contents", lambda: os.pread(os.open("f", os.O_RDONLY), 16, 0))

# copies in the kernel: the caller's offsets and length must be aligned, its buffers are
# none of its business (the image's copies go through a buffer of the shim's own)
g = os.open("g", os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
os.pwrite(os.open("g", os.O_WRONLY), b"g" * 100000, 0)      # an unaligned size
for src, dst, n in ((0, 204800, 8192), (512, 204800, 8192), (1, 409600, 4096), (0, 409601, 4096),
                    (0, 204800, 1000), (98304, 307200, 8192), (0, 1 << 20, 131072)):
    show(f"copy_file_range {src} -> {dst}, {n}", lambda: os.copy_file_range(g, g, n, src, dst))
sink = os.open("sink", os.O_WRONLY | os.O_CREAT, 0o644)
for off, n in ((0, 8192), (512, 4096), (1, 4096), (0, 1000), (98304, 8192), (0, 196608)):
    show(f"sendfile from {off}, {n}", lambda: os.sendfile(sink, g, off, n))
r, w = os.pipe()
for off, n in ((0, 8192), (1, 4096), (0, 1000)):
    show(f"splice from {off}, {n} into a pipe", lambda: (os.splice(g, w, n, offset_src=off), os.read(r, 1 << 20))[0])
show("size after the copies", lambda: os.fstat(g).st_size)
