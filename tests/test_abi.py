"""The 32-bit ABI: lo/hi halves, the RFC's i386 compat entry, what a real i386 syscall can
carry, the portable struct form (fallocate3), and the public header's numbers."""
import ctypes
import errno
import os
import subprocess
import sys

import pytest
from conftest import ROOT
from hypothesis import given
from hypothesis import strategies as hs

import pyfalloc
from pyfalloc import Volume, abi, uapi
from pyfalloc.shim.run import environment

GIB = 1 << 30


@given(hs.integers(min_value=-(1 << 63), max_value=(1 << 64) - 1))
def test_split_then_join_gives_the_u64_back(value):
    lo, hi = abi.split(value)
    assert 0 <= lo < 1 << 32 and 0 <= hi < 1 << 32
    assert abi.join(lo, hi) == value % (1 << 64)


def test_fallocate2_needs_eight_words_and_i386_carries_six():
    words = abi.compat_words(3, 1, 4 * GIB + 8192, 65536, 5 * GIB)
    assert words == (3, 1, 8192, 1, 65536, 0, GIB, 1)
    carried, lost = abi.i386_delivery(words)
    assert list(carried) == ["ebx", "ecx", "edx", "esi", "edi", "ebp"]
    assert lost == ("physical_lo", "physical_hi")
    # plain fallocate's six words all fit
    assert abi.i386_delivery(abi.compat_words(3, 1, 0, 4096)[:6])[1] == ()
    assert abi.FALLOCATE_HOW_SIZE_VER0 == 32


def big_image(tmp_path):
    path = str(tmp_path / "big.img")
    Volume.mkfs(path, "8G").umount()            # sparse: offsets and goals above 4 GiB
    return path


def test_the_compat_example_places_above_4g_and_a_real_i386_syscall_joins_six_registers(tmp_path):
    exe = str(tmp_path / "compat")
    cc = subprocess.run(["cc", "-Wall", "-Werror", "-I", os.path.join(ROOT, "cdefs"), "-o", exe,
                         os.path.join(ROOT, "examples", "compat.c"), "-ldl"], capture_output=True, text=True)
    assert cc.returncode == 0, cc.stderr
    image, host = big_image(tmp_path), str(tmp_path / "host")
    offset, length, physical = 4 * GIB + 8192, 65536, 4 * GIB + (64 << 20)
    r = subprocess.run([exe, "/pyfalloc/a", "/pyfalloc/b", host, str(offset), str(length), str(physical)],
                       env=environment(image), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "fd=0x3 mode=0 offset_lo=0x2000 offset_hi=0x1 len_lo=0x10000 len_hi=0 " \
                       "physical_lo=0x4000000 physical_hi=0x1"
    assert lines[1] == f"compat: logical {offset} physical {physical} length {length}"
    assert lines[2] == f"fallocate3: logical {offset} physical {physical + length} length {length}"
    assert lines[3].endswith("len_hi ebp, physical_lo no register, physical_hi no register")
    if "no i386 entry" in lines[4]:
        pytest.skip("this kernel runs no i386 syscalls (CONFIG_IA32_EMULATION off)")
    # the kernel rebuilt offset from edx (lo) and esi (hi): the file ends at offset + len
    assert lines[4] == f"i386 fallocate: ok, size {offset + length}"
    assert os.path.getsize(host) == offset + length
    with Volume(image) as vol:
        assert [(e.logical, e.physical) for e in vol.fiemap_path("/a")] == [(offset, physical)]
        assert vol.fsck() == []


PY = """
import errno, os, pyfalloc
def err(f, *a, **k):
    try:
        f(*a, **k)
        return "ok"
    except OSError as e:
        return "EOPNOTSUPP" if e.errno == errno.EOPNOTSUPP else errno.errorcode[e.errno]
fd = os.open("/pyfalloc/f", os.O_RDWR | os.O_CREAT, 0o644)
G = 1 << 30
out = [err(pyfalloc.compat_fallocate2, fd, 0, 0, 8192, 6 * G),
       err(pyfalloc.compat_fallocate2, fd, 0, 8192, 4096, 6 * G + 4096 + 1),
       err(pyfalloc.fallocate3, fd, 0, 16384, 4096, 7 * G, size=24),
       err(pyfalloc.fallocate3, fd, 0, 16384, 4096, 7 * G, size=40, tail=b"\\0" * 7 + b"x"),
       err(pyfalloc.fallocate3, fd, 0, 16384, 4096, 7 * G, size=8192),
       err(pyfalloc.fallocate3, fd, 0, 16384, 4096, 7 * G, reserved=1),
       err(pyfalloc.fallocate3, fd, 2, 16384, 4096, 7 * G),
       err(pyfalloc.fallocate3, fd, 0, 16384, 4096, 7 * G, size=40),
       err(pyfalloc.fallocate3, fd, 0, 20480, 4096, size=32)]
host = os.open(os.environ["HOSTFILE"], os.O_RDWR | os.O_CREAT, 0o644)
out += [err(pyfalloc.fallocate3, host, 0, 0, 4096, 0), err(pyfalloc.fallocate3, host, 0, 0, 4096)]
print(" ".join(out))
"""


def test_python_reaches_the_compat_entry_and_fallocate3_checks_its_struct_as_openat2(tmp_path):
    image = big_image(tmp_path)
    r = subprocess.run([sys.executable, "-c", PY], env=dict(environment(image), HOSTFILE=str(tmp_path / "h")),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [
        "ok",            # 8 halves joined: 6 GiB is above what 32 bits hold
        "EINVAL",        # an unaligned goal, after the join
        "EINVAL",        # size below FALLOCATE_HOW_SIZE_VER0
        "E2BIG",         # a nonzero byte past the fields this version knows
        "E2BIG",         # larger than a page
        "EINVAL",        # reserved must be zero
        "EOPNOTSUPP",    # a hint with PUNCH_HOLE (mode 2)
        "ok",            # a larger struct with a zero tail is accepted
        "ok",            # no hint: plain fallocate
        "EOPNOTSUPP",    # a host file cannot place blocks
        "ok"]            # ... but takes fallocate3 without a hint
    with Volume(image) as vol:
        ext = {e.logical: e.physical for e in vol.fiemap_path("/f")}
        assert ext[0] == 6 * GIB and ext[16384] == 7 * GIB


def test_without_the_shim_both_forms_are_enosys(tmp_path):
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        for call in (pyfalloc.fallocate3, pyfalloc.compat_fallocate2, pyfalloc.fallocate2):
            with pytest.raises(OSError) as e:
                call(fd, 0, 0, 4096, 0)
            assert e.value.errno == errno.ENOSYS
    finally:
        os.close(fd)


HEADER_PROGRAM = r"""
#include <stdio.h>
#include "fallocate2.h"
int main(void) {
    printf("%d %d %#lx %#lx %#lx %d %zu %zu %#llx %#x\n", SYS_fallocate2, SYS_fallocate3,
           (unsigned long)EXT4_IOC_MOVE_EXT, (unsigned long)FS_IOC_FIEMAP, (unsigned long)FS_IOC_GETFSMAP,
           FALLOCATE_HOW_SIZE_VER0, sizeof(struct fallocate_how), sizeof(struct move_extent),
           (unsigned long long)FALLOCATE2_NO_HINT, FALLOC_FL_WRITE_ZEROES);
    return 0;
}
"""


def test_the_public_header_has_the_numbers_the_python_side_uses(tmp_path):
    src, exe = tmp_path / "h.c", str(tmp_path / "h")
    src.write_text(HEADER_PROGRAM)
    cc = subprocess.run(["cc", "-Wall", "-Werror", "-I", os.path.join(ROOT, "cdefs"), "-o", exe, str(src)],
                        capture_output=True, text=True)
    assert cc.returncode == 0, cc.stderr
    out = subprocess.run([exe], capture_output=True, text=True).stdout.split()
    assert out == [str(uapi.SYS_fallocate2), str(uapi.SYS_fallocate3), hex(uapi.EXT4_IOC_MOVE_EXT),
                   hex(uapi.FS_IOC_FIEMAP), hex(uapi.FS_IOC_GETFSMAP), "32", str(ctypes.sizeof(abi.FallocateHow)),
                   "40", hex(uapi.NO_HINT), hex(uapi.FALLOC_FL_WRITE_ZEROES)]


def test_the_python_api_decodes_fallocate_how_as_the_shim(vol):
    """Volume.fallocate3 goes through the same decoder (pyfalloc.syscalls.abi) as syscall 487."""
    fd = vol.open("/f", os.O_RDWR | os.O_CREAT)
    how = bytes(abi.FallocateHow(0, 8192, 64 << 20, 0, 0))

    def err(raw, size):
        try:
            vol.fallocate3(fd, raw, size)
            return "ok"
        except OSError as e:
            return errno.errorcode[e.errno]
    assert [err(how[:24], 24), err(how + b"\0" * 7 + b"x", 40), err(how, 8192),
            err(bytes(abi.FallocateHow(0, 8192, 64 << 20, 0, 1)), 32), err(how + bytes(8), 40)] == \
        ["EINVAL", "E2BIG", "E2BIG", "EINVAL", "ok"]
    assert [(e.logical, e.physical) for e in vol.fiemap(fd)] == [(0, 64 << 20)]
