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
