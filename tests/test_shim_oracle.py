"""The shim against the kernel: the same unmodified programs run once in a directory of a host
ext4 and once in the image under `pyfalloc run`; their output and the files they leave must
be the same, byte for byte."""
import os
import shutil
import stat
import subprocess
import sys

import pytest
from conftest import ROOT, compile_prog

from pyfalloc import Volume
from pyfalloc.shim.run import environment


def under_shim(image, cmd, **kw):
    return subprocess.run(cmd, env=environment(image), capture_output=True, text=True, timeout=120, **kw)


def tree(root):
    """name -> bytes of every regular file under root, and the directories."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root) + "/"] = None
        for f in filenames:
            with open(os.path.join(dirpath, f), "rb") as fh:
                out[os.path.relpath(os.path.join(dirpath, f), root)] = fh.read()
    return out


def image_tree(image):
    with Volume(image) as vol:
        out = {}

        def walk(d):
            for name in vol.listdir(d):
                p = f"{d.rstrip('/')}/{name}"
                if stat.S_ISDIR(vol.stat(p).st_mode):
                    out[p[1:] + "/"] = None
                    walk(p)
                else:
                    out[p[1:]] = vol.read_file(p)
        walk("/")
        assert vol.fsck() == []
        return out


def test_descriptor_semantics_match_the_kernel(image, host_dir, tmp_path):
    """dup/fork/exec position sharing, O_APPEND with pwrite, F_GETFL/F_SETFL, FD_CLOEXEC
    across exec, lseek edges, readv/writev, sendfile, fadvise, errno of bad calls, stdio on an
    inherited stdout, and the descriptor numbers a program gets."""
    exe = compile_prog(tmp_path, "descriptors", "-Wall", "-Werror")
    host = subprocess.run([exe, host_dir], capture_output=True, text=True, timeout=60)
    img = under_shim(image, [exe, "/pyfalloc"])
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    assert "exec'd child on fd 3" in host.stdout and "child write fd 5: -1 EBADF" in host.stdout
    assert img.stdout.splitlines() == host.stdout.splitlines()
    assert image_tree(image) == tree(host_dir)


def test_files_opened_again_while_nothing_changed_behave_as_on_the_kernel(image, host_dir, tmp_path):
    """Each open in tests/progs/reopen.c follows the same open and close, so on the image the
    shim answers it without Python; every call on such a descriptor (read, offsets shared by
    dup, fcntl, flock, mmap, writes, O_APPEND, *at calls and fchdir through a directory, kept
    errors, a child reading a file unlinked under it) must give what the kernel gives."""
    exe = compile_prog(tmp_path, "reopen", "-Wall", "-Werror")
    host = subprocess.run([exe, host_dir], capture_output=True, text=True, timeout=60)
    img = under_shim(image, [exe, "/pyfalloc"])
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    assert "child read 12: line CHANGED" in host.stdout and "gone: -1 No such file" in host.stdout
    assert img.stdout.splitlines() == host.stdout.splitlines()
    assert image_tree(image) == tree(host_dir)


SCRIPT = r"""
set -e
cd "$D"
echo builtin > a                               # a built-in's stdio output (bash's echo)
printf 'x\ny\n' > b; sed s/x/X/ b > c          # an exec'd program writing an inherited stdout
exec 3> d                                      # a descriptor the shell holds
echo one >&3
( echo two >&3 )                               # a forked subshell moves the shared position
sh -c 'echo three >&3'                         # so does an exec'd child
echo four >&3
exec 3>&-
sort -r c b >> a                               # stdio on an O_APPEND stdout
wc -l < b > e                                  # stdin inherited from the shell
mkdir sub; cd sub
echo inside > f; ls > listing; pwd > ../pwd; cat ../c ./../b; cd ..
cat "$D/./sub/../c" "$D//sub/f"
cat sub/f sub/listing
seq 1 3000 | tee g | tail -1
head -c 5 g; echo
cp g h; cmp g h && echo same
mv h i; ls
touch -d '2001-02-03 04:05:06' i; stat -c '%y %s' i
chmod 640 i; stat -c '%a' i
truncate -s 10 i; stat -c '%s' i
dd if=g of=j bs=100 count=3 skip=1 status=none; wc -c < j
mkdir src; echo s > src/f; chmod 640 src/f; touch -d '2002-01-01 00:00:00' src/f
cp -a src copy; stat -c '%n %a %Y' copy/f        # cp -a: modes and times kept, xattrs refused
mkdir untar; tar cf - -C src . | tar xf - -C untar; stat -c '%n %a %Y' untar/f
"$PY" -c 'import shutil; shutil.copytree("src", "pycopy")'; stat -c '%n %a %Y' pycopy/f
rm -r sub; ls
"""


def test_a_shell_script_matches_the_kernel(image, host_dir):
    if not shutil.which("bash"):
        pytest.skip("needs bash")
    host = subprocess.run(["bash", "-c", SCRIPT], env=dict(os.environ, D=host_dir, PY=sys.executable),
                          capture_output=True, text=True, timeout=60)
    img = subprocess.run(["bash", "-c", SCRIPT], env=dict(environment(image), D="/pyfalloc", PY=sys.executable),
                         capture_output=True, text=True, timeout=120)
    assert host.returncode == 0, host.stderr
    assert img.returncode == 0, img.stderr
    host_out = host.stdout.replace(host_dir, "/D")
    assert img.stdout.replace("/pyfalloc", "/D") == host_out
    expected = {k: v.replace(host_dir.encode(), b"/D") if v else v for k, v in tree(host_dir).items()}
    got = {k: v.replace(b"/pyfalloc", b"/D") if v else v for k, v in image_tree(image).items()}
    assert got == expected
    assert got["d"] == b"one\ntwo\nthree\nfour\n"


XFS_IO = ["-c", "falloc 0 1m", "-c", "pwrite -S 0x61 0 8k", "-c", "fiemap -v", "-c", "falloc -k 1m 64k",
          "-c", "fpunch 4k 4k", "-c", "fzero 16k 8k", "-c", "fcollapse 64k 64k", "-c", "finsert 128k 4k",
          "-c", "fiemap -v", "-c", "seek -a -r 0", "-c", "fsync", "-c", "truncate 100k", "-c", "fiemap -v",
          "-c", "stat"]


def layout(out):
    """xfs_io's output with each `fiemap -v` table turned into the state of every 512-byte
    sector (written, unwritten, hole): extent boundaries and physical places are the
    allocator's business, the file's layout is not. Timing lines and inode numbers go."""
    lines, sectors = [], None
    for line in out.splitlines():
        if line.startswith(" EXT:"):
            sectors = []
            lines.append(sectors)
            continue
        if sectors is not None and line.strip()[:1].isdigit() and "[" in line:
            span = line.split("[")[1].split("]")[0]
            a, b = (int(x) for x in span.split(".."))
            state = "hole" if "hole" in line else ("unwritten" if int(line.split()[-1], 16) & 0x800 else "data")
            sectors.extend([state] * (b - a + 1))
            continue
        sectors = None
        # ext4 counts an extent-tree block in st_blocks once a file has more than four
        # extents; the image keeps extents in its metadata, so only data blocks count
        if "ops;" in line or line.startswith(("stat.ino", "stat.blocks", "fd.path")) or line.endswith(":"):
            continue
        lines.append(line)
    return lines


@pytest.mark.skipif(not shutil.which("xfs_io"), reason="needs xfsprogs' xfs_io")
def test_xfs_io_sees_the_layout_the_kernel_gives(image, host_dir):
    """xfs_io falloc / fpunch / fzero / fcollapse / finsert / truncate, then fiemap, seek and
    stat: per sector the same written, unwritten and hole states as ext4."""
    host = subprocess.run(["xfs_io", "-f", *XFS_IO, os.path.join(host_dir, "x")], capture_output=True,
                          text=True, timeout=60)
    img = under_shim(image, ["xfs_io", "-f", *XFS_IO, "/pyfalloc/x"])
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    assert not img.stderr, img.stderr
    got, want = layout(img.stdout), layout(host.stdout)
    assert got == want
    assert sum(isinstance(x, list) for x in got) == 3 and "stat.size = 102400" in got
    final_map = [x for x in got if isinstance(x, list)][-1]
    assert f"stat.blocks = {sum(state != 'hole' for state in final_map)}" in img.stdout
    with Volume(image) as vol:
        assert vol.read_file("/x") == open(os.path.join(host_dir, "x"), "rb").read()
