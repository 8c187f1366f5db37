"""Programs that rely on more than open/read/write, each run in a host ext4 directory and on
the image in the same test, with the results compared: SQLite (the sqlite3 shell and Python's
sqlite3 module, linked with the libsqlite3 the shim must not share), advisory locks between
processes (flock, POSIX, OFD, flock(1)), pwritev2/preadv2 with RWF flags, copy_file_range and splice."""
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

import pytest
from conftest import ROOT, compile_prog
from pyfalloc import Volume
from pyfalloc.store import shm_path
from test_shim_oracle import under_shim

from pyfalloc.shim.run import environment

SQL = """create table t(a integer primary key, b text);
insert into t(b) values ('one'), ('two'), ('three');
create index tb on t(b);
update t set b = b || '!' where a = 2;
delete from t where a = 1;
select * from t order by a;
pragma integrity_check;
"""

PYSQL = """
import sqlite3, sys
c = sqlite3.connect(sys.argv[1] + "/py.db")
c.execute("create table u(x, y)")
c.executemany("insert into u values (?, ?)", [(i, str(i) * 50) for i in range(2000)])
c.commit()
c.execute("delete from u where x % 3 = 0")
c.commit()
c.execute("vacuum")
print(c.execute("select count(*), sum(x), sum(length(y)) from u").fetchone())
print(c.execute("pragma integrity_check").fetchone())
"""


def both(image, host_dir, cmd):
    """cmd with {} for the directory, run on the host and on the image. The image's run
    starts in an empty host directory that must stay empty: nothing lands on the host."""
    host = subprocess.run([a.replace("{}", host_dir) for a in cmd], capture_output=True, text=True, timeout=120)
    cwd = tempfile.mkdtemp(prefix="pyfalloc-cwd-")
    try:
        img = under_shim(image, [a.replace("{}", "/pyfalloc") for a in cmd], cwd=cwd)
        assert os.listdir(cwd) == [], f"{cmd[0]} left files in the host working directory"
    finally:
        shutil.rmtree(cwd, ignore_errors=True)
    return host, img


@pytest.mark.skipif(not shutil.which("sqlite3"), reason="the sqlite3 shell is not installed (apt sqlite3)")
def test_the_sqlite3_shell_works_on_the_image_as_on_ext4(image, host_dir):
    host, img = both(image, host_dir, ["sqlite3", "{}/shell.db", SQL])
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    assert img.stdout == host.stdout
    assert "ok" in img.stdout.splitlines()


def test_python_sqlite3_works_on_the_image_as_on_ext4(image, host_dir):
    host, img = both(image, host_dir, [sys.executable, "-c", PYSQL, "{}"])
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    assert img.stdout == host.stdout and "('ok',)" in img.stdout


@pytest.mark.skipif(not shutil.which("flock"), reason="flock(1) is not installed (util-linux)")
def test_locks_conflict_between_processes_and_rwf_flags_match_ext4(image, host_dir):
    script = os.path.join(ROOT, "tests", "progs", "locks_rwf.py")
    host, img = both(image, host_dir, [sys.executable, script, "{}"])
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    assert "flock held: flock LOCK_EX|LOCK_NB: EAGAIN" in host.stdout     # the oracle itself conflicts
    assert img.stdout.splitlines() == host.stdout.splitlines()


def test_hard_links_as_on_ext4(image, host_dir):
    """link and linkat, their errors in order, counts, data through both names, unlink and
    rename among links, O_TMPFILE named by AT_EMPTY_PATH, protected hard links."""
    host, img = both(image, host_dir, [sys.executable, os.path.join(ROOT, "tests", "progs", "hardlinks.py"), "{}"])
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    assert "nlink a, sub: [3, 2]" in host.stdout and "link a directory: EPERM" in host.stdout
    assert img.stdout.splitlines() == host.stdout.splitlines()
    from pyfalloc import Volume
    with Volume(image) as vol:
        assert vol.fsck() == []             # every inode's count equals its entries


@pytest.mark.skipif(not shutil.which("tar"), reason="tar is not installed")
def test_extended_attributes_as_on_ext4(image, host_dir):
    """user.*, trusted.* and security.*: set, get, list and remove with their flags and
    errors, the namespace and permission rules for root and for nobody, an immutable file,
    and cp --preserve=xattr and tar --xattrs keeping them."""
    host, img = both(image, host_dir, [sys.executable, os.path.join(ROOT, "tests", "progs", "xattrs.py"), "{}"])
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    assert "create user.a again: EEXIST" in host.stdout and "nobody: get trusted.t: ENODATA" in host.stdout
    assert img.stdout.splitlines() == host.stdout.splitlines()
    from pyfalloc import Volume
    with Volume(image) as vol:
        assert vol.fsck() == []
        assert vol.getxattr("/xa/untar/f", "trusted.t") == b"root's"


def test_names_ending_in_a_slash_as_on_ext4(image, host_dir):
    """"name/" must be a directory for every call (an unlink of "f/" removed f, a create of
    "n/" made a file); the working directory keeps no trailing slash."""
    host, img = both(image, host_dir, [sys.executable, os.path.join(ROOT, "tests", "progs", "trailing_slash.py"),
                                       "{}"])
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    assert "unlink f/: ENOTDIR" in host.stdout and "creat n/: EISDIR" in host.stdout
    assert img.stdout.splitlines() == host.stdout.splitlines()


def test_names_relative_to_a_descriptor_as_on_ext4(image, host_dir):
    """A directory renamed while open is searched under its new name: a create by its
    descriptor went to the old path, into whatever directory took that name. A removed
    directory holds no names; a file's descriptor gives ENOTDIR, "." and ".." and an
    unlinked file's included (stress-ng's io-uring statx met ENOENT); "" is ENOENT."""
    host, img = both(image, host_dir, [sys.executable, os.path.join(ROOT, "tests", "progs", "dirfd_lookups.py"),
                                       "{}"])
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    assert "in a/c: ['w', 'x', 'y', 'z']" in host.stdout
    assert "stat '..' under an unlinked file: ENOTDIR" in host.stdout
    assert img.stdout.splitlines() == host.stdout.splitlines()


def test_descriptor_links_in_proc_as_on_ext4(image, host_dir):
    """readlink of /proc/self/fd/N, /proc/PID/fd/N, /proc/thread-self/fd/N and /dev/fd/N of an
    image file gives its path, as the kernel's d_path: it gave the shadow's name under
    /dev/shm."""
    host, img = both(image, host_dir, [sys.executable, os.path.join(ROOT, "tests", "progs", "fd_links.py"), "{}"])
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    assert "after a rename: 'TOP/g'" in host.stdout and "unlinked: 'TOP/u (deleted)'" in host.stdout
    assert img.stdout.splitlines() == host.stdout.splitlines()


def test_programs_stored_on_the_image_run_as_on_ext4(image, host_dir):
    """A binary, scripts (with an argument, nested, without "#!") and PATH searches on the
    image run by subprocess (a vfork child), posix_spawn, execv after fork, fexecve and the
    shell, and the refusals give the kernel's errno: before, the kernel looked for the image
    path on the host (ENOENT, "required file not found"). libc's system() and popen() start
    their shell in the image working directory: before, glibc's own exec inside them lost it
    (the shell's getcwd failed and its relative names missed)."""
    host, img = both(image, host_dir, [sys.executable, os.path.join(ROOT, "tests", "progs", "exec_image.py"), "{}"])
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    assert "ELF by subprocess: (0, 'elf args\\n', '')" in host.stdout
    assert "script as interpreter: (0, 'inner -x ./outer o\\n', '')" in host.stdout
    assert "by spawnp" in host.stdout and "no #!: 'ENOEXEC'" in host.stdout
    assert img.stdout.splitlines() == host.stdout.splitlines()


def test_symbolic_links_as_on_ext4(image, host_dir):
    """Links made, read and followed by every call as on ext4: lstat and readlink, O_NOFOLLOW
    (ELOOP), O_PATH of the link, O_CREAT through a dangling link, a trailing slash, chmod,
    lchown and utime of the link, hard links of it, user.* on it (EPERM), loops and namei's
    40, getcwd after a chdir through one; before, symlink gave EPERM."""
    host, img = both(image, host_dir, [sys.executable, os.path.join(ROOT, "tests", "progs", "symlinks.py"), "{}"])
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    assert "41 links: ELOOP" in host.stdout and "read upward: b'file f\\n'" in host.stdout
    assert img.stdout.splitlines() == host.stdout.splitlines()
    with Volume(image) as vol:
        assert vol.readlink("/sy/abs") == "/pyfalloc/sy/d/e/f"
        assert vol.fsck() == []


def test_symbolic_links_out_of_the_image_as_on_ext4(image, host_dir, tmp_path):
    """A link whose target is elsewhere on the host: reads, writes, creates, removals,
    attributes, listings, chdir, realpath and exec go on there as the kernel's calls do,
    and a rename or hard link between the two is EXDEV (the outside directory is on tmpfs,
    another filesystem for the ext4 run too)."""
    out = tempfile.mkdtemp(prefix="pyfalloc-outside-", dir="/dev/shm")
    try:
        host, img = both(image, host_dir, [sys.executable, os.path.join(ROOT, "tests", "progs", "links_out.py"), "{}",
                                           out])
    finally:
        shutil.rmtree(out, ignore_errors=True)
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    assert "mkdir: True" in host.stdout and "rename across: EXDEV" in host.stdout
    assert img.stdout.splitlines() == host.stdout.splitlines()


def test_fifos_sockets_and_device_nodes_as_on_ext4(image, host_dir):
    """mknod and mkfifo make FIFOs, sockets and device nodes (they were EPERM), with the
    umask, device numbers, do_mknodat's errno order and CAP_MKNOD; a FIFO carries bytes
    between two processes (the shim opens a host FIFO that stands for it), O_NONBLOCK
    writers without a reader get ENXIO, and a socket's open is ENXIO."""
    host, img = both(image, host_dir, [sys.executable, os.path.join(ROOT, "tests", "progs", "special_files.py"), "{}"])
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    assert "read what the other process wrote: b'through the fifo\\n'" in host.stdout
    assert img.stdout.splitlines() == host.stdout.splitlines()
    with Volume(image) as vol:
        assert vol.fsck() == []


VENV = """set -e
cd /pyfalloc
"$1" -m venv v
v/bin/python -c 'import pip, sys; print(pip.__file__); print(sys.prefix)'
v/bin/pip --version | cut -d" " -f1-2
if v/bin/python -c 'import hypothesis' 2>/dev/null; then echo "hypothesis lent"; fi
readlink v/lib64
"""


def test_a_python_venv_made_on_the_image_has_its_own_pip_and_links(image):
    """python -m venv on the image: its links (lib64, bin/python to the host's Python) work,
    and ensurepip installs pip into it. Before, a Python program under the shim had the
    package's environment on its path: ensurepip found pip there and installed none, and
    any module of that environment (hypothesis here) was lent to the program."""
    r = under_shim(image, ["bash", "-c", VENV, "venv", sys.executable])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:2] == ["/pyfalloc/v/lib/python%d.%d/site-packages/pip/__init__.py" % sys.version_info[:2],
                         "/pyfalloc/v"]
    assert lines[2].startswith("pip ") and lines[3:] == ["lib"]
    with Volume(image) as vol:
        assert vol.fsck() == []


EDITS = """set -e
cd {}
printf 'alpha\\nbeta\\n' > f
sed -i s/alpha/ALPHA/ f
perl -pi -e 's/beta/BETA/' f
cat f
t=$(mktemp tmp.XXXXXX) && test -f "$t" && echo made file
d=$(mktemp -d dir.XXXXXX) && test -d "$d" && echo made dir
ls -la . | awk '{print substr($1, 1, 1), $NF}' | grep -E ' \\.\\.?$'
"""


@pytest.mark.skipif(not shutil.which("perl"), reason="perl is not installed")
def test_temp_files_and_in_place_edits_work_as_on_ext4(image, host_dir, tmp_path):
    """sed -i, perl -pi and mktemp create their files through glibc's mkstemp family, which
    calls the kernel from inside glibc; ls -la of the mount root shows its '..'."""
    host, img = both(image, host_dir, ["bash", "-c", EDITS])
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    assert img.stdout.splitlines()[:4] == ["ALPHA", "BETA", "made file", "made dir"]
    assert img.stdout.splitlines()[4:] == ["d .", "d .."]
    assert img.stdout == host.stdout


def test_dotdot_out_of_the_image_names_the_host_file_linux_would(image, tmp_path):
    """From an image working directory, ../../../HOST/leak is HOST/leak on the host (as Linux
    resolves it), not a path relative to the process's hidden real working directory."""
    target = tmp_path / "target"
    target.mkdir()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    up = "../../.." + str(target)
    r = subprocess.run(["bash", "-c", f"mkdir -p /pyfalloc/d/e && cd /pyfalloc/d/e && echo x > {up}/leak "
                                      f"&& cat /pyfalloc/d/../../{str(target)[1:]}/leak"],
                       env=environment(image),
                       cwd=cwd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert (target / "leak").read_text() == "x\n" and r.stdout == "x\n"
    assert os.listdir(cwd) == []                 # nothing landed in the real working directory


GIT = """set -e
cd {}
git init -q repo && cd repo
git config user.email t@example.com && git config user.name t
for i in 1 2 3; do seq $((i * 100)) > f$i; done
git add . && git commit -qm first
echo more >> f1 && git commit -qam second
git mv f2 g2 && git commit -qm third
git log --format=%s
git status --short
git gc -q
git fsck --no-progress 2>&1
git show HEAD~1:f1 | tail -1
git ls-files
"""


@pytest.mark.skipif(not shutil.which("git"), reason="git is not installed")
def test_git_keeps_a_repository_on_the_image(image, host_dir):
    """git reads its objects and index through private mmap: a private copy of the bytes."""
    host, img = both(image, host_dir, ["bash", "-c", GIT])
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    assert img.stdout == host.stdout and "third\nsecond\nfirst\n" in img.stdout


MMAP = """
import mmap, os, sys
path = sys.argv[1] + "/m"
with open(path, "wb") as f:
    f.write(b"abc" * 5000)
fd = os.open(path, os.O_RDWR)
m = mmap.mmap(fd, 8192, flags=mmap.MAP_PRIVATE)
print(m[:6], m[8190:8192])
m[:3] = b"XYZ"                                   # a private copy: the file keeps its bytes
print(m[:6], os.pread(fd, 6, 0))
for flags in (mmap.MAP_SHARED, mmap.MAP_PRIVATE):
    try:
        mmap.mmap(fd, 4096, flags=flags, offset=100)
    except OSError as e:
        print("offset 100:", e.errno)
try:
    mmap.mmap(os.open(path, os.O_WRONLY), 4096, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
except OSError as e:
    print("write-only:", e.errno)
"""


def test_private_mmap_is_a_copy_and_its_errors_match_ext4(image, host_dir):
    host, img = both(image, host_dir, [sys.executable, "-c", MMAP, "{}"])
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    assert img.stdout == host.stdout


LIMITS = """
import errno, os, resource, sys
d = sys.argv[1]
a = os.open(d + "/a", os.O_RDWR | os.O_CREAT)
os.write(a, b"one")
os.closerange(3, 4096)                          # close_range: the shim's own descriptors survive
b = os.open(d + "/b", os.O_RDWR | os.O_CREAT)
print("after closerange:", b, os.write(b, b"two"), os.pread(b, 3, 0))
resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
held = []
try:
    while True:
        held.append(os.open("/dev/null", os.O_RDONLY))
except OSError as e:
    print("full:", errno.errorcode[e.errno])
try:
    os.open(d + "/c", os.O_RDWR | os.O_CREAT)
except OSError as e:
    print("at the limit:", errno.errorcode[e.errno])
for fd in held[:8]:
    os.close(fd)
c = os.open(d + "/c", os.O_RDWR | os.O_CREAT)
print("below it again:", os.write(c, b"three"))
"""


def test_close_range_and_the_descriptor_limit_as_on_ext4(image, host_dir):
    host, img = both(image, host_dir, [sys.executable, "-c", LIMITS, "{}"])
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    assert img.stdout == host.stdout and "at the limit: EMFILE" in img.stdout


def test_rename_flags_ioctls_and_readahead_match_ext4(image, host_dir):
    """renameat2's flags, FS_IOC_GETFLAGS/SETFLAGS, FICLONE, the XFS preallocation ioctls,
    FIONREAD and readahead: the same answers as ext4."""
    script = os.path.join(ROOT, "tests", "progs", "flags_ioctls.py")
    host, img = both(image, host_dir, [sys.executable, script, "{}"])
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    assert "NOREPLACE onto an existing name: EEXIST" in host.stdout
    assert img.stdout.splitlines() == host.stdout.splitlines()


def test_eight_threads_open_write_read_close_at_once(image, host_dir, tmp_path):
    exe = compile_prog(tmp_path, "threads", "-O2", "-pthread")
    host, img = both(image, host_dir, [exe, "{}"])
    assert host.stdout == "errors 0\n"
    assert img.returncode == 0 and img.stdout == "errors 0\n", img.stderr[-2000:]


def test_children_forked_while_other_threads_use_the_image_use_it_too(image, host_dir, tmp_path):
    """Four threads write and stat image files while the main thread forks 50 children that
    each write, read back and unlink a file of their own, with the load of another process
    beside them. Before, every child stopped at its first image call ("thread state already
    initialized": the interpreter's fork state), and once that was mended some hung on a
    cache mutex that a thread of the parent held at the fork."""
    exe = compile_prog(tmp_path, "forkthreads", "-O2", "-pthread")
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        for _ in range(3):
            host, img = both(image, host_dir, [exe, "{}"])
            assert host.stdout == "children failed 0, thread errors 0\n"
            assert img.returncode == 0 and img.stdout == host.stdout, img.stderr[-2000:]
    finally:
        busy.kill()
        busy.wait()


def test_system_calls_by_number_through_libc_reach_the_image(image, host_dir):
    """syscall(SYS_openat, ...) and friends, as fsstress and stress-ng make some calls: the
    same answers as ext4, and nothing created on the host."""
    script = os.path.join(ROOT, "tests", "progs", "raw_syscalls.py")
    host, img = both(image, host_dir, [sys.executable, script, "{}"])
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    assert img.stdout.splitlines() == host.stdout.splitlines()
    assert "left: [b'd']" in img.stdout


DPRINTF = r"""
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/dp", argv[1]);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    dprintf(fd, "%s %d\n", "answer", 42);
    char buf[32] = {0};
    pread(fd, buf, sizeof buf - 1, 0);
    fputs(buf, stdout);
    return 0;
}
"""


def test_dprintf_writes_into_the_image_file(image, host_dir, tmp_path):
    src, exe = tmp_path / "dp.c", str(tmp_path / "dp")
    src.write_text(DPRINTF)
    subprocess.run(["cc", "-o", exe, str(src)], check=True)
    host, img = both(image, host_dir, [exe, "{}"])
    assert host.stdout == "answer 42\n" and img.stdout == host.stdout, img.stderr


def test_realpath_scandir_glob_nftw_and_ftw_walk_the_image_as_ext4(image, host_dir, tmp_path):
    """glibc runs these from inside itself; on the image the shim runs them with the
    interposed calls. Lines are compared sorted: readdir order is the filesystem's own."""
    host, img = both(image, host_dir, [compile_prog(tmp_path, "walk", "-Wall"), "{}"])
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    assert "scandir 3: a.txt b.dat sub" in img.stdout and "glob 0: /w/a.txt" in img.stdout
    assert sorted(img.stdout.splitlines()) == sorted(host.stdout.splitlines())


def test_mknod_and_long_paths_answer_as_ext4(image, host_dir):
    script = os.path.join(ROOT, "tests", "progs", "nodes_names.py")
    host, img = both(image, host_dir, [sys.executable, script, "{}"])
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    assert img.stdout.splitlines() == host.stdout.splitlines()
    assert "open a path over PATH_MAX: ENAMETOOLONG" in img.stdout


def test_fifos_and_device_nodes_are_made_on_the_image_not_on_the_host(image, tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    r = under_shim(image, [sys.executable, "-c", "import os\n"
                           "for f in (lambda: os.mkfifo('/pyfalloc/fifo'), lambda: os.mknod('/pyfalloc/null', 0o20666, 0x103)):\n"
                           "    try: f(); print('made')\n"
                           "    except OSError as e: print(e.errno)"], cwd=cwd)
    assert r.stdout.split() == ["made", "made"], r.stderr
    assert os.listdir(cwd) == []
    with Volume(image) as vol:
        assert stat.S_ISFIFO(vol.stat("/fifo").st_mode) and vol.stat("/null").st_rdev == 0x103


def test_a_call_that_bypasses_libc_cannot_create_a_host_file_from_an_image_cwd(image, tmp_path):
    """While the working directory is on the image, the real one no longer exists: an inline
    system call with a relative name gets ENOENT."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    exe = compile_prog(tmp_path, "inline_syscall", "-Wall")
    r = under_shim(image, ["bash", "-c", f"mkdir -p /pyfalloc/d && {exe} /pyfalloc/d"], cwd=cwd)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["inline openat: ENOENT", "getcwd: /pyfalloc/d"]
    assert os.listdir(cwd) == []


READER = """
import os, sys
fd = os.open("/pyfalloc/r", os.O_RDONLY)
first = os.pread(fd, 4096, 0)             # inside the first extent: served in C from now on
print("read", len(first), flush=True)
sys.stdin.readline()                       # meanwhile the file moves and its old blocks are reused
again = os.pread(fd, 4096, 0)
print("same" if again == first else "DIFFERENT", flush=True)
"""


def test_reads_served_in_c_follow_a_move_and_the_reuse_of_the_old_blocks(image):
    """A reader's cached extent must not outlive the mapping: after the file is relocated and
    its old blocks are freed, released and written by another file, the reader still reads
    the file's own bytes."""
    from pyfalloc import Volume
    from pyfalloc.tools.relocate import relocate
    data = os.urandom(1 << 20)
    with Volume(image) as vol:
        vol.write_file("/r", data)
        old = vol.fiemap_path("/r")[0].physical
    reader = subprocess.Popen([sys.executable, "-c", READER], env=environment(image), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert reader.stdout.readline().strip() == "read 4096"
    with Volume(image) as vol:
        fd = vol.open("/r", os.O_RDWR)
        relocate(vol, fd, 0, None, 200 << 20)
        vol.close(fd)
        vol.sync()                                         # the old blocks become free
        fd = vol.open("/other", os.O_RDWR | os.O_CREAT)
        vol.fallocate2(fd, 0, 0, 1 << 20, physical=old)    # ... and someone else's
        vol.pwrite(fd, b"\xee" * (1 << 20), 0)
        vol.close(fd)
    reader.stdin.write("\n")
    reader.stdin.flush()
    assert reader.stdout.readline().strip() == "same"
    assert reader.wait(timeout=30) == 0


STEPWISE = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
int main(void)
{
    int root = openat(AT_FDCWD, "/", O_RDONLY | O_CLOEXEC | O_PATH | O_DIRECTORY);
    struct stat st;
    int s = fstatat(root, "pyfalloc", &st, AT_SYMLINK_NOFOLLOW);
    int dir = openat(root, "pyfalloc", O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    int sub = openat(dir, "step", O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    int f = openat(sub, "f", O_WRONLY | O_CREAT | O_NOFOLLOW, 0644);
    printf("%d %d %d %d %d\n", s, S_ISDIR(st.st_mode), dir >= 0, sub >= 0, f >= 0);
    return 0;
}
"""


def test_a_walk_from_the_host_root_one_name_at_a_time_reaches_the_image(image, tmp_path):
    """openat of "/" and then of each name (as symlink-safe walkers do) finds the image
    under the directory that holds the mount prefix."""
    src, exe = tmp_path / "step.c", str(tmp_path / "step")
    src.write_text(STEPWISE)
    subprocess.run(["cc", "-o", exe, str(src)], check=True)
    r = under_shim(image, ["bash", "-c", f"mkdir /pyfalloc/step && {exe} && ls /pyfalloc/step"])
    assert r.stdout.splitlines() == ["0 1 1 1 1", "f"], r.stderr


OVERWRITER = """
import os, sys, time
at, size = int(sys.argv[1]), int(sys.argv[2])
fd = os.open("/pyfalloc/w", os.O_RDWR)
print("ready", flush=True)
i, stop = 0, time.time() + 2.0
while time.time() < stop:                  # overwrites, most of them written in C
    i += 1
    data = bytes([i % 251 + 1]) * size
    os.pwrite(fd, data, at)
    if os.pread(fd, size, at) != data:      # a write into blocks a move had taken away
        sys.exit(f"write {i} lost")
print(i % 251 + 1, flush=True)
"""


@pytest.mark.parametrize("size,at,count", [(64 << 10, 0, 4096), (12 << 20, 9 << 20, 4096), (12 << 20, 1 << 20, 1 << 20)],
                         ids=["one-step", "later-step", "long-writes"])
def test_overwrites_written_in_c_follow_moves(image, size, at, count):
    """Overwrites must land in the file's current blocks while another process moves it:
    a writer's cached extent goes stale at each move (even within one clock tick). A move
    of 12 MiB takes three steps, and an overwrite of its third step's range, taken without
    the inode lock the move holds, must be carried by the step that copies it. Overwrites
    of 1 MiB last long enough that one begun before a step would still be landing while the
    step copies, were a step not to wait for it (the gate)."""
    from pyfalloc import Volume
    from pyfalloc.tools.relocate import relocate
    with Volume(image) as vol:
        vol.write_file("/w", b"x" * size)
    writer = subprocess.Popen([sys.executable, "-c", OVERWRITER, str(at), str(count)], env=environment(image),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "ready"
    moves = 0
    with Volume(image) as vol:
        fd = vol.open("/w", os.O_RDWR)
        while writer.poll() is None and moves < 400:
            relocate(vol, fd, 0, None, (100 + 20 * (moves % 2)) << 20)
            moves += 1
        vol.close(fd)
    out, err = writer.communicate(timeout=30)
    assert writer.returncode == 0 and moves >= 10, err
    last = int(out)
    with Volume(image) as vol:
        data = vol.read_file("/w")
    assert data[at:at + count] == bytes([last]) * count
    assert data[:at] + data[at + count:] == b"x" * (size - count)


GATE_HOLDER = """
import os, sys, time
from pyfalloc import Volume
from pyfalloc.store import shm_path
vol = Volume(sys.argv[1])
ino = vol.stat("/w").st_ino
vol.fs.locks.gates.hold([ino])              # as a read in Python holds it
print("holding", flush=True)
time.sleep(60)
"""


def test_a_gate_left_by_a_killed_process_passes_to_the_next(image):
    """A process killed while it holds a file's gate (the mutex that keeps the shim's
    overwrites in C off a read or change in Python) must not stop the file's overwrites
    nor its changes: the gate is robust, and the next taker carries on."""
    from pyfalloc import Volume
    with Volume(image) as vol:
        vol.write_file("/w", b"x" * 8192)
    holder = subprocess.Popen([sys.executable, "-c", GATE_HOLDER, image], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "holding"
    holder.kill()
    holder.wait()
    prog = ("import os\nfd = os.open('/pyfalloc/w', os.O_RDWR)\n"
            "for i in range(50): os.pwrite(fd, b'y' * 4096, 4096)\nprint(os.pread(fd, 4, 4096))")
    r = subprocess.run([sys.executable, "-c", prog], env=environment(image), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "b'yyyy'", r.stderr
    with Volume(image) as vol:
        fd = vol.open("/w", os.O_RDWR)
        vol.fallocate(fd, 0, 8192, 4096)       # a change in Python closes the same gate
        vol.close(fd)
        assert vol.read_file("/w") == b"x" * 4096 + b"y" * 4096 + bytes(4096)


ARCHIVES = """set -e
src=$(mktemp -d)
seq 1 20000 > "$src/a"; mkdir "$src/sub"; printf 'hello\\n' > "$src/sub/b"
cd {}
rsync -a "$src/" rs/                        # rsync walks the destination one name at a time
rsync -a --delete "$src/" rs/
diff -r "$src" rs && echo rsync same
back=$(mktemp -d); rsync -a rs/ "$back/" && diff -r "$src" "$back" && echo rsync back same
(cd "$src" && zip -qr - .) > z.zip
mkdir un && cd un && unzip -q ../z.zip && diff -r "$src" . && echo zip same && cd ..
seq 100000 | sort -rn -T . -S 64K | head -1
rm -rf "$src" "$back"
"""


@pytest.mark.skipif(not all(shutil.which(p) for p in ("rsync", "zip", "unzip")),
                    reason="rsync, zip and unzip are needed (apt rsync zip unzip)")
def test_rsync_zip_and_sort_with_temporary_files_work_as_on_ext4(image, host_dir):
    host, img = both(image, host_dir, ["bash", "-c", ARCHIVES])
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    assert img.stdout == host.stdout == "rsync same\nrsync back same\nzip same\n100000\n"


def test_ctrl_c_stops_tail_f_of_an_image_file_as_on_ext4(image, host_dir):
    """SIGINT ends tail -f as it would on ext4: the program keeps its own disposition across
    the embedded interpreter's start (which would install Python's handler)."""
    outcomes = []
    for target in (host_dir, "/pyfalloc"):
        env = environment(image) if target == "/pyfalloc" else None
        # SIGINT as a terminal gives it, even when the suite itself runs in the background
        # (where the shell hands every command SIGINT ignored)
        p = subprocess.Popen(["bash", "-c", f"seq 10 > {target}/t && exec tail -f {target}/t"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        assert p.stdout.readline() == "1\n"
        time.sleep(0.5)
        p.send_signal(signal.SIGINT)
        outcomes.append(p.wait(timeout=30))
    assert outcomes == [-signal.SIGINT, -signal.SIGINT]


STRESSORS = ["rename", "utime", "open", "dir", "dentry", "fallocate", "fiemap", "lockf", "flock", "readahead",
             "seek", "hdd", "symlink", "link"]


@pytest.mark.skipif(not shutil.which("stress-ng"), reason="stress-ng is not installed (apt stress-ng)")
def test_stress_ng_file_stressors_pass_on_the_image_and_leave_the_host_alone(image, tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    failed = []
    for name in STRESSORS:
        extra = ["--verify"] if name == "hdd" else []
        cmd = ["stress-ng", "--temp-path", "/pyfalloc", f"--{name}", "1", "-t", "2", *extra]
        if name == "open":
            # it also makes and unlinks files named relative to its working directory, by
            # design; one made as the stressor is stopped can stay, so that directory is the
            # image's (created by the shim, from a host working directory)
            cmd = ["bash", "-c", 'mkdir -p /pyfalloc/open && cd /pyfalloc/open && exec "$@"', "sh", *cmd]
        r = under_shim(image, cmd, cwd=cwd)
        if r.returncode != 0 or "successful run completed" not in r.stdout + r.stderr:
            failed.append((name, (r.stdout + r.stderr).strip().splitlines()[-3:]))
    assert failed == []
    assert os.listdir(cwd) == []


@pytest.mark.skipif(not shutil.which("fio"), reason="fio is not installed (apt fio)")
def test_fio_random_writes_verify_on_the_image(image, host_dir):
    job = ["fio", "--name=v", "--directory={}", "--size=8M", "--bs=4k", "--rw=randwrite", "--ioengine=psync",
           "--verify=crc32c", "--do_verify=1", "--verify_state_save=0", "--numjobs=2", "--group_reporting"]
    host, img = both(image, host_dir, job)
    assert host.returncode == 0 and img.returncode == 0, img.stderr[-2000:]
    assert "err= 0" in img.stdout and "verify" not in img.stderr


CMAKE_PROJECT = {"CMakeLists.txt": "cmake_minimum_required(VERSION 3.10)\nproject(tiny C)\nadd_executable(tiny main.c)\n",
                 "main.c": '#include <stdio.h>\nint main(void) { puts("tiny ok"); return 0; }\n'}


@pytest.mark.skipif(not shutil.which("cmake"), reason="cmake is not installed (apt cmake)")
def test_cmake_configures_and_builds_a_project_kept_on_the_image(image, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name, text in CMAKE_PROJECT.items():
        (src / name).write_text(text)
    out = tmp_path / "tiny"
    r = under_shim(image, ["bash", "-c", f"cp -r {src} /pyfalloc/src && cmake -S /pyfalloc/src -B /pyfalloc/build "
                                         f">/dev/null && cmake --build /pyfalloc/build && cp /pyfalloc/build/tiny {out}"])
    assert r.returncode == 0, r.stderr[-2000:]
    os.chmod(out, 0o755)                    # a program stored on the image runs from a host copy
    assert subprocess.run([str(out)], capture_output=True, text=True).stdout == "tiny ok\n"


@pytest.mark.skipif(not shutil.which("dbench"), reason="dbench is not installed (apt dbench)")
def test_dbench_runs_its_workload_on_the_image(image):
    r = under_shim(image, ["dbench", "-D", "/pyfalloc", "-t", "3", "2"])
    assert r.returncode == 0, (r.stdout + r.stderr)[-2000:]
    assert "Throughput" in r.stdout and "ERROR" not in r.stdout.upper().replace("ERRORS", "")


def test_lutimes_futimes_and_futimesat_set_times_as_on_ext4(image, host_dir):
    script = os.path.join(ROOT, "tests", "progs", "old_times.py")
    host, img = both(image, host_dir, [sys.executable, script, "{}"])
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    assert img.stdout == host.stdout


def test_a_descriptor_passed_over_a_unix_socket_reads_its_image_file(image, host_dir):
    script = os.path.join(ROOT, "tests", "progs", "pass_fd.py")
    host, img = both(image, host_dir, [sys.executable, script, "{}"])
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    assert img.stdout == host.stdout == "through the socket\nthe socket\n"


def test_short_lived_processes_racing_on_one_name_see_what_the_kernel_gives(image, host_dir, tmp_path):
    """Four loops of short-lived processes open a file with O_CREAT, create and remove a
    journal next to it and open the directory, as concurrent sqlite3 shells do. On the
    kernel no call fails; on the image neither may: O_CREAT without O_EXCL never gives
    EEXIST when another process made the name first; a file opened just as another process
    unlinks it is held, not freed under the opener (ENOENT on its writes); and the last
    process to leave the volume must not remove the runtime directory a newcomer already
    uses (ENOENT)."""
    exe = compile_prog(tmp_path, "racer", "-O2")
    loops = f'for w in 1 2 3 4; do (for i in $(seq 60); do "{exe}" "$0"; done) & done; wait'
    host, img = both(image, host_dir, ["sh", "-c", loops, "{}"])
    assert host.returncode == 0 and host.stdout == "", host.stdout
    assert img.returncode == 0 and img.stdout == "", img.stdout + img.stderr[-2000:]


@pytest.mark.skipif(not shutil.which("sqlite3"), reason="sqlite3 is not installed (apt sqlite3)")
def test_concurrent_sqlite3_shells_insert_into_one_database(image, host_dir):
    """Three loops of sqlite3 shells insert into one database (rollback journal) at once;
    every insert lands and the database checks out, as on the kernel."""
    loops = ('sqlite3 "$0/c.db" "create table t(a, w);" && '
             'for w in 1 2 3; do (for i in $(seq 30); do sqlite3 -cmd ".timeout 20000" "$0/c.db" '
             '"insert into t values($i, $w);" || echo FAIL; done) & done; wait; '
             'sqlite3 "$0/c.db" "select count(*), sum(a), count(distinct w) from t; pragma integrity_check;"')
    host, img = both(image, host_dir, ["sh", "-c", loops, "{}"])
    assert host.returncode == 0 and host.stdout == "90|1395|3\nok\n", host.stdout + host.stderr
    assert (img.returncode, img.stdout) == (0, host.stdout), img.stderr[-2000:]


def test_a_child_forked_without_fork_handlers_keeps_the_image(image, host_dir, tmp_path):
    """A fork by system call number runs no fork handlers, so the child's pid is not the
    one the shim knows; its memory is its own all the same (not a vfork child's), and its
    image descriptors and working directory stay on the image: nothing lands on the host."""
    exe = compile_prog(tmp_path, "rawfork", "-Wall")
    host, img = both(image, host_dir, [exe, "{}"])
    assert host.stdout == "fchdir: ok\ncreate: ok\nparent sees it: yes\n", host.stdout
    assert img.returncode == 0 and img.stdout == host.stdout, img.stderr


COPY_RANGE = r"""import os, sys, errno
d = sys.argv[1]
a = os.open(d + "/a", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(a, bytes(range(256)) * 400)
b = os.open(d + "/b", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
def tryit(*args, **kw):
    try:
        return os.copy_file_range(*args, **kw)
    except OSError as e:
        return errno.errorcode[e.errno]
print(tryit(a, b, 5000, 100, 7))
print(os.lseek(a, 0, 1), os.lseek(b, 0, 1), os.fstat(b).st_size)
os.lseek(a, 0, 0)
print(tryit(a, b, 1 << 20))           # positions used and moved; short at EOF
print(os.lseek(a, 0, 1), os.lseek(b, 0, 1), os.pread(b, 20, 4990) == os.pread(a, 20, 4990))
print(tryit(a, b, 10, 200000, 0))     # past EOF: 0
print(tryit(a, a, 100, 0, 50))        # overlapping in one file
print(tryit(a, a, 100, 0, 200))
print(os.pread(a, 4, 200), os.pread(a, 4, 0))
ro = os.open(d + "/a", os.O_RDONLY)
ap = os.open(d + "/b", os.O_WRONLY | os.O_APPEND)
print(tryit(a, ro, 10, 0, 0), tryit(a, ap, 10, 0, 0), tryit(ap, a, 10, 0, 0))
dd = os.open(d, os.O_RDONLY)
print(tryit(dd, a, 10, 0, 0), tryit(a, b, 10, -1, 0))
"""


def test_copy_file_range_between_image_files_as_on_ext4(image, host_dir):
    """Positions used and moved, offsets given, short at EOF, 0 past it, overlap in one file,
    the descriptor and type errors, in the kernel's order."""
    host, img = both(image, host_dir, [sys.executable, "-c", COPY_RANGE, "{}"])
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    assert img.stdout == host.stdout
    assert img.stdout.splitlines()[:2] == ["5000", "102400 0 5007"]


SPLICE = r"""import os, sys, errno, fcntl
d = sys.argv[1]
a = os.open(d + "/sa", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(a, bytes(range(256)) * 1000)
b = os.open(d + "/sb", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
r, w = os.pipe()
def t(*args):
    try:
        return os.splice(*args)
    except OSError as e:
        return errno.errorcode[e.errno]
print(t(a, w, 50000, 100))              # from an offset: the pipe takes what it has room for
print(os.lseek(a, 0, 1))
print(t(r, b, 70000, None, 10))          # to an offset
print(os.fstat(b).st_size, os.pread(b, 8, 10) == os.pread(a, 8, 100))
os.lseek(a, 1000, 0)
print(t(a, w, 3000), os.lseek(a, 0, 1))  # from the position, which moves
print(t(r, b, 3000), os.lseek(b, 0, 1))
print(t(a, b, 10), t(a, w, 10, 0, None) if False else "", t(r, b, 10, 0))
fcntl.fcntl(r, fcntl.F_SETFL, os.O_NONBLOCK)
print(t(r, b, 10, None, 0, os.SPLICE_F_NONBLOCK))
print(t(a, w, 0), t(a, w, 10, -1))
ap = os.open(d + "/sb", os.O_WRONLY | os.O_APPEND)
os.write(w, b"xyz")
print(t(r, ap, 10), t(r, a, 10, None, 1 << 20))
print(os.pread(a, 3, 1 << 20))
"""


def test_splice_between_image_files_and_pipes_as_on_ext4(image, host_dir):
    """From and to offsets or positions, the pipe's room, EINVAL without a pipe or onto an
    O_APPEND file, ESPIPE for a pipe's offset, EAGAIN when nonblocking (the shadows alone
    would splice nothing: they are empty)."""
    host, img = both(image, host_dir, [sys.executable, "-c", SPLICE, "{}"])
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    assert img.stdout == host.stdout
    assert img.stdout.splitlines()[2:4] == ["50000", "50010 True"]


FIEMAP_HEADER = r"""import errno, fcntl, os, struct, sys
FS_IOC_FIEMAP = 0xC020660B
p = sys.argv[1] + "/fm"
fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, b"x" * 12288)
os.fsync(fd)
for flags in (0, 1, 2, 3, 4, 5, 7, 8, 0x10 | 2):
    for count in (0, 4):
        buf = bytearray(struct.pack("=QQIII4x", 0, 1 << 40, flags, 0, count) + bytes(56 * count))
        try:
            fcntl.ioctl(fd, FS_IOC_FIEMAP, buf)
            r = "ok"
        except OSError as e:
            r = errno.errorcode[e.errno]
        _, _, fl, mapped, _ = struct.unpack_from("=QQIII", buf)
        print(flags, count, r, fl, mapped)
"""


def test_fiemap_flags_come_back_as_ext4_leaves_them(image, host_dir):
    """FIEMAP_FLAG_XATTR maps nothing (no xattrs) and comes back cleared, ext4's
    FIEMAP_FLAG_CACHE is accepted and cleared, SYNC stays; unknown flags are EBADR with
    fm_flags naming them."""
    host, img = both(image, host_dir, [sys.executable, "-c", FIEMAP_HEADER, "{}"])
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    assert img.stdout == host.stdout
    assert "2 4 ok 0 0" in img.stdout and "8 0 EBADR 8 0" in img.stdout


FSIZE = r"""import ctypes, errno, os, resource, signal, sys
d = sys.argv[1]
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGXFSZ])   # kept pending, looked at after each call
libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
def fallocate(fd, mode, off, n):
    if libc.fallocate(fd, mode, off, n):
        raise OSError(ctypes.get_errno(), "fallocate")
names = "abcdefgh"
F = {n: os.open(f"{d}/{n}", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644) for n in names}
os.pwrite(F["c"], b"c" * 20000, 0)          # written past the limit before it is set
os.ftruncate(F["d"], 20000)
os.pwrite(F["e"], b"e" * 8192, 0)
ap = os.open(f"{d}/f", os.O_WRONLY | os.O_APPEND)
os.write(ap, b"f" * 9999)
resource.setrlimit(resource.RLIMIT_FSIZE, (10000, resource.RLIM_INFINITY))
def t(label, fn, *args):
    try:
        r = fn(*args)
    except OSError as e:
        r = errno.errorcode[e.errno]
    sig = signal.sigtimedwait([signal.SIGXFSZ], 0)
    print(label, r, "SIGXFSZ" if sig else "-", *(os.fstat(F[n]).st_size for n in names))
for i in range(3):                          # the second and third go the shim's fast way
    t("overwrite below", os.pwrite, F["c"], b"1" * 10, 100 + i)
    t("overwrite across", os.pwrite, F["c"], b"1" * 100, 9950)
    t("overwrite past", os.pwrite, F["c"], b"1" * 10, 12000)
t("pwrite across", os.pwrite, F["a"], b"1" * 100, 9950)
t("pwrite at", os.pwrite, F["a"], b"1" * 10, 10000)
t("pwrite 0 past", os.pwrite, F["a"], b"", 20000)
t("pwrite into a hole past", os.pwrite, F["d"], b"1" * 10, 12000)
t("append across", os.write, ap, b"q" * 10)
t("append at", os.write, ap, b"q" * 10)
t("pwritev across", os.pwritev, F["b"], [b"1" * 6000, b"2" * 6000], 0)
t("ftruncate to", os.ftruncate, F["g"], 10000)
t("ftruncate past", os.ftruncate, F["g"], 10001)
t("ftruncate shrinks", os.ftruncate, F["d"], 15000)
t("ftruncate grows past", os.ftruncate, F["d"], 16000)
t("truncate past", os.truncate, f"{d}/g", 20000)
t("posix_fallocate past", os.posix_fallocate, F["h"], 0, 12288)
t("fallocate to", fallocate, F["h"], 0, 0, 10000)
t("fallocate KEEP_SIZE past", fallocate, F["h"], 1, 0, 65536)
t("fallocate inside", fallocate, F["c"], 0, 0, 16384)
t("fallocate grows past", fallocate, F["c"], 0, 16384, 8192)
t("zero range past", fallocate, F["g"], 0x10, 0, 12288)
t("zero range KEEP_SIZE past", fallocate, F["g"], 0x11, 0, 12288)
t("insert range past", fallocate, F["e"], 0x20, 0, 4096)
t("punch past", fallocate, F["b"], 0x03, 0, 65536)
t("copy_file_range across", os.copy_file_range, F["c"], F["h"], 3000, 0, 8000)
t("copy_file_range at", os.copy_file_range, F["c"], F["h"], 0, 0, 10000)
r, w = os.pipe()
os.write(w, b"s" * 3000)
t("splice across", os.splice, r, F["a"], 3000, None, 9000)
print(len(os.read(r, 4000)), "left in the pipe")
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
t("pwrite once raised", os.pwrite, F["a"], b"1" * 10, 10001)
"""


def test_the_file_size_limit_applies_as_on_ext4(image, host_dir):
    """RLIMIT_FSIZE is the program's, for its files: short writes across it, EFBIG and SIGXFSZ
    at or past it (the shim's C overwrites too), truncates and fallocates that would grow a
    file past it refused, KEEP_SIZE and insert range not; the volume's own files are written
    whatever the program's limit (they lie far past it)."""
    host, img = both(image, host_dir, [sys.executable, "-c", FSIZE, "{}"])
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    assert img.stdout == host.stdout
    assert "overwrite past EFBIG SIGXFSZ" in img.stdout and "overwrite across 50 -" in img.stdout
    with Volume(image) as vol:
        assert vol.fsck() == []


def _cap_sys_resource():
    with open("/proc/self/status") as f:
        eff = next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))
    return bool(eff >> 24 & 1)


def test_ulimit_f_in_a_shell_as_on_ext4(image, host_dir):
    """A shell's soft `ulimit -S -f` (1 KiB units in bash): dd stops at the limit, killed by
    the signal as on ext4, and what it wrote is there for the next program."""
    script = "ulimit -S -f 40; dd if=/dev/zero of={}/u bs=4096 count=20 status=none; echo rc=$?; stat -c %s {}/u"
    host, img = both(image, host_dir, ["bash", "-c", script])
    assert img.stdout == host.stdout, (img.stdout, img.stderr)
    assert img.stdout.split() == ["rc=153", "40960"]


def test_a_hard_file_size_limit_the_shim_cannot_lift_fails_cleanly(image, host_dir):
    """bash's plain `ulimit -f` sets the hard limit too, which only CAP_SYS_RESOURCE may raise
    again: with it, as on ext4; without it, the volume's own files (far past 40 KiB) cannot
    be written, so calls fail with EFBIG, and no program is killed by a SIGXFSZ its files
    did not earn."""
    script = "ulimit -f 40; dd if=/dev/zero of={}/h bs=4096 count=20 status=none; echo rc=$?; stat -c %s {}/h; echo rc=$?"
    host, img = both(image, host_dir, ["bash", "-c", script])
    if _cap_sys_resource():
        assert img.stdout == host.stdout, (img.stdout, img.stderr)
        return
    assert host.stdout.split() == ["rc=153", "40960", "rc=0"]
    assert img.stdout.split() == ["rc=1", "rc=1"], img.stderr
    assert "File too large" in img.stderr and "File size limit exceeded" not in img.stderr
    with Volume(image) as vol:
        assert vol.fsck() == []


FSXATTR = r"""import errno, fcntl, os, struct, sys
d = sys.argv[1]
GET, SET, GETFLAGS, SETFLAGS = 0x801C581F, 0x401C5820, 0x80086601, 0x40086602
FSX, INT = struct.Struct("=IIIII8x"), struct.Struct("=i")
f = os.open(f"{d}/fx", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.mkdir(f"{d}/fxd")
dd = os.open(f"{d}/fxd", os.O_RDONLY)
ro = os.open(f"{d}/fx", os.O_RDONLY)
def call(fd, req, st, *v):
    try:
        return st.unpack(fcntl.ioctl(fd, req, st.pack(*v) if v else bytes(st.size)))
    except OSError as e:
        return errno.errorcode[e.errno]
def put(fd, *v):
    r = call(fd, SET, FSX, *v)
    return r if isinstance(r, str) else ("ok", call(fd, GET, FSX), call(fd, GETFLAGS, INT))
print("get", call(f, GET, FSX), call(dd, GET, FSX), call(f, GETFLAGS, INT))
# append-only, immutable, both (an immutable file keeps its other flags), no-atime, no-dump;
# XFS-only flags are ignored, extent size hints are checked against the file type
for xf in (0x10, 0x8, 0x18, 0x48, 0, 0x40, 0x80, 0xC0, 0, 0x1, 0x800, 0x1000, 0x2000, 0x4000, 0x80000000, 0x10000):
    print(hex(xf), put(f, xf, 0, 0, 0, 0))
print("hints", put(f, 0, 4096, 0, 0, 0), put(f, 0x800, 4096, 7, 0, 4096), put(dd, 0x1000, 0, 0, 0, 0), put(dd, 0x800, 0, 0, 0, 0))
print("projid", put(f, 0x10, 0, 0, 7, 0), put(f, 0, 0, 0, 0, 0))
print("dir", put(dd, 0x10, 0, 0, 0, 0), put(dd, 0, 0, 0, 0, 0))
print("read-only descriptor", put(ro, 0x40, 0, 0, 0, 0), put(ro, 0, 0, 0, 0, 0))
print("setflags", call(f, SETFLAGS, INT, 0x80010), call(f, SETFLAGS, INT, 0x80090), call(f, GET, FSX),
      call(f, SETFLAGS, INT, 0x80000), call(f, GETFLAGS, INT))
if os.fork() == 0:
    os.setresuid(1000, 1000, 1000)
    print("another user", call(f, GET, FSX), put(f, 0, 0, 0, 0, 0), call(f, SETFLAGS, INT, 0x80000))
    os._exit(0)
os.wait()
"""


def test_fsxattr_and_inode_flags_as_on_ext4(image, host_dir):
    """FS_IOC_FSGETXATTR/FSSETXATTR (xfs_io's chattr, lsattr and stat use them) and
    FS_IOC_SETFLAGS against ext4: the common flags both ways, the flags kept, XFS-only ones
    ignored, the hint checks, the owner, an immutable file's other flags, no project ids."""
    host, img = both(image, host_dir, [sys.executable, "-c", FSXATTR, "{}"])
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    assert img.stdout == host.stdout
    assert "0x18 EPERM" in img.stdout and "0x1000 EINVAL" in img.stdout


AIO = r"""import ctypes, errno, os, struct, sys
d = sys.argv[1]
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
SYS_io_setup, SYS_io_destroy, SYS_io_getevents, SYS_io_submit = 206, 207, 208, 209
PREAD, PWRITE, FSYNC, FDSYNC, PREADV, PWRITEV = 0, 1, 2, 3, 7, 8
RESFD = 1
def sc(*a):
    r = libc.syscall(*[ctypes.c_long(x) if isinstance(x, int) else x for x in a])
    if r < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return r
ctx = ctypes.c_ulong(0)
sc(SYS_io_setup, 64, ctypes.byref(ctx))
fd = os.open(f"{d}/aio", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
efd = os.eventfd(0)
keep = []
def iocb(data, op, fd, buf, n, off, flags=0, resfd=0):
    b = ctypes.create_string_buffer(struct.pack("=QIIHhIQQqQII", data, 0, 0, op, 0, fd, buf, n, off, 0, flags, resfd), 64)
    keep.append(b)
    return b
def submit(*cbs):
    arr = (ctypes.c_void_p * len(cbs))(*[ctypes.addressof(c) for c in cbs])
    try:
        return sc(SYS_io_submit, ctx, len(cbs), arr)
    except OSError as e:
        return errno.errorcode[e.errno]
def reap(n):
    ev = ctypes.create_string_buffer(32 * n)
    got = sc(SYS_io_getevents, ctx, n, n, ev, None)
    out = []
    for i in range(got):
        data, obj, res, res2 = struct.unpack_from("=QQqq", ev, 32 * i)
        out.append((data, obj in addrs, res))
    return sorted(out)
w1 = ctypes.create_string_buffer(b"A" * 5000)
w2 = [ctypes.create_string_buffer(b"B" * 3000), ctypes.create_string_buffer(b"C" * 1000)]
iov = (ctypes.c_uint64 * 4)(ctypes.addressof(w2[0]), 3000, ctypes.addressof(w2[1]), 1000)
cbs = [iocb(1, PWRITE, fd, ctypes.addressof(w1), 5000, 100),
       iocb(2, PWRITEV, fd, ctypes.addressof(iov), 2, 8000, RESFD, efd),
       iocb(3, FDSYNC, fd, 0, 0, 0)]
addrs = {ctypes.addressof(c) for c in cbs}
print("submit", submit(*cbs))
print("events", reap(3), "eventfd", os.eventfd_read(efd))
print("file", os.fstat(fd).st_size, os.pread(fd, 4, 98), os.pread(fd, 4, 7998), os.pread(fd, 4, 10998))
r1 = ctypes.create_string_buffer(6000)
r2 = [ctypes.create_string_buffer(2500), ctypes.create_string_buffer(2500)]
riov = (ctypes.c_uint64 * 4)(ctypes.addressof(r2[0]), 2500, ctypes.addressof(r2[1]), 2500)
cbs = [iocb(4, PREAD, fd, ctypes.addressof(r1), 6000, 0),
       iocb(5, PREADV, fd, ctypes.addressof(riov), 2, 7000),
       iocb(6, PREAD, fd, ctypes.addressof(r1), 100, 1 << 20)]
addrs = {ctypes.addressof(c) for c in cbs}
print("submit", submit(*cbs))
print("events", reap(3))
print("read", r1.raw[:4], r1.raw[98:102], r1.raw[5098:5102], r2[0].raw[998:1002], r2[1].raw[:4], r2[1].raw[1996:2000])
ro = os.open(f"{d}/aio", os.O_RDONLY)
print("read-only write", submit(iocb(7, PWRITE, ro, ctypes.addressof(w1), 10, 0)))
print("bad fd", submit(iocb(8, PREAD, 999, ctypes.addressof(r1), 10, 0)))
print("second bad", submit(iocb(9, PREAD, fd, ctypes.addressof(r1), 10, 0), iocb(10, PWRITE, ro, ctypes.addressof(w1), 10, 0)))
addrs = {ctypes.addressof(keep[-2])}
print("events", reap(1))
sc(SYS_io_destroy, ctx)
"""


def test_linux_aio_on_image_files_as_on_ext4(image, host_dir):
    """io_submit (libaio's way, through syscall()): writes, vectored writes with an eventfd,
    fdatasync, reads and vectored reads reach the image, and complete in the context with
    the program's data, iocb and result; the submission errors as the kernel gives them.
    Before, the kernel ran them on the empty shadow: fio's libaio engine verified what it
    read back from there while the image kept zeros."""
    host, img = both(image, host_dir, [sys.executable, "-c", AIO, "{}"])
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    assert img.stdout == host.stdout
    with Volume(image) as vol:
        assert vol.read_file("/aio")[100:104] == b"AAAA"


def test_io_uring_through_syscall_on_image_files_as_on_ext4(image, host_dir, tmp_path):
    """A ring driven through libc's syscall() (stress-ng's way): opens, writes, vectored and
    positional writes, fsync, fallocate, reads, statx, rename, splice to a pipe, close and
    unlink on image files and paths complete with the kernel's results on ext4, and what
    was written is in the image. Before, the kernel ran them on the empty shadow or looked
    the paths up on the host."""
    exe = compile_prog(tmp_path, "uring", "-Wall")
    host, img = both(image, host_dir, [exe, "{}"])
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    assert img.stdout == host.stdout
    assert "file      ..AAAA" in img.stdout and "pipe      AAAAAAAAAA" in img.stdout


FITRIM = r"""import errno, fcntl, os, struct, sys
d = sys.argv[1]
FITRIM, R = 0xC0185879, struct.Struct("=QQQ")
fd = os.open(d, os.O_RDONLY)
f = os.open(d + "/tf", os.O_RDWR | os.O_CREAT, 0o644)
def t(label, fd, start, length, minlen):
    try:
        fcntl.ioctl(fd, FITRIM, R.pack(start, length, minlen))
        print(label, "ok")
    except OSError as e:
        print(label, errno.errorcode[e.errno])
t("the mount point", fd, 0, 2**64 - 1, 0)
t("a file", f, 0, 2**64 - 1, 0)
t("start past the end", fd, 2**50, 2**64 - 1, 0)
t("shorter than a block", fd, 0, 100, 0)
t("minlen past a group", fd, 0, 2**64 - 1, 2**40)
if os.fork() == 0:
    os.setresuid(1000, 1000, 1000)
    t("without CAP_SYS_ADMIN", fd, 0, 2**64 - 1, 0)
    os._exit(0)
os.wait()
"""


def test_fitrim_checks_as_on_ext4_and_fstrim_gives_granules_back(image, host_dir):
    """FITRIM's checks in ext4's order (the range, minlen, CAP_SYS_ADMIN) on the mount
    point and on a file; then util-linux fstrim on the image: the granules a deleted file
    held are punched out of the image file, which the host then stores fewer blocks of."""
    host, img = both(image, host_dir, [sys.executable, "-c", FITRIM, "{}"])
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    assert img.stdout == host.stdout
    fill = under_shim(image, ["sh", "-c", "head -c 33554432 /dev/urandom > /pyfalloc/big && sync"])
    assert fill.returncode == 0, fill.stderr
    held = os.stat(image).st_blocks
    trim = under_shim(image, ["sh", "-c", "rm /pyfalloc/big && fstrim -v /pyfalloc"])
    assert trim.returncode == 0, trim.stderr
    trimmed = int(trim.stdout.split("(")[1].split()[0])
    assert trimmed >= 32 << 20, trim.stdout
    # all of it but the granules it shared with what stays (block 0 holds the superblock)
    assert held - os.stat(image).st_blocks >= (30 << 20) // 512
    with Volume(image) as vol:
        assert vol.fsck() == []


def test_a_fortified_program_reaches_the_image_as_ext4(image, host_dir, tmp_path):
    """_FORTIFY_SOURCE turns realpath, read, pread, readlink and getcwd into glibc's __*_chk
    entries, which glibc runs on its internal symbols: before they were served, realpath of
    an image path failed (e4defrag's "Couldn't get full path")."""
    exe = compile_prog(tmp_path, "fortified", "-O2", "-D_FORTIFY_SOURCE=2", "-Wall")
    chk = subprocess.run(["nm", "-D", exe], capture_output=True, text=True).stdout
    assert "__realpath_chk" in chk and "__read_chk" in chk, chk
    host, img = both(image, host_dir, [exe, "{}"])
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    assert img.stdout == host.stdout
    assert "read 15 fortified bytes" in img.stdout and "realpath /fortified" in img.stdout


PATHCONF = r"""import os, sys
d = sys.argv[1]
fd = os.open(d, os.O_RDONLY)
for n in sorted(os.pathconf_names):
    out = []
    for arg in (d, fd, d + "/missing"):
        try:
            out.append(os.pathconf(arg, n))
        except OSError as e:
            out.append(os.strerror(e.errno))
    print(n, *out)
"""


def test_pathconf_answers_ext4s_limits(image, host_dir):
    """pathconf and fpathconf of the image's root, a descriptor of it and a missing path,
    for every name Python knows: ext4's answers, LINK_MAX 65000 among them (glibc answers
    some from the filesystem's statfs, which it made from inside itself, of the host)."""
    host, img = both(image, host_dir, [sys.executable, "-c", PATHCONF, "{}"])
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    assert "PC_LINK_MAX 65000 65000 No such file or directory" in host.stdout.splitlines()
    assert img.stdout.splitlines() == host.stdout.splitlines()
    assert len(img.stdout.splitlines()) > 15


GETDENTS = r"""import ctypes, os, struct, sys
d = sys.argv[1]
os.makedirs(d + "/gd", exist_ok=True)
for i in range(40):
    open(f"{d}/gd/file-{i:03d}-" + "x" * (i % 17), "w").close()
os.makedirs(d + "/gd/sub", exist_ok=True)
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
fd = os.open(d + "/gd", os.O_RDONLY | os.O_DIRECTORY)
def parse(buf, n, old):
    out, off = [], 0
    while off < n:
        if old:
            ino, doff, reclen = struct.unpack_from("=QQH", buf, off)
            name = buf[off + 18:off + reclen - 1].split(b"\0")[0]
            typ = buf[off + reclen - 1]
        else:
            ino, doff, reclen, typ = struct.unpack_from("=QqHB", buf, off)
            name = buf[off + 19:off + reclen].split(b"\0")[0]
        out.append((name.decode(), typ, doff))
        off += reclen
    return out
def run(nr, size, old):
    os.lseek(fd, 0, 0)
    names, calls, offs = [], 0, []
    while True:
        buf = ctypes.create_string_buffer(size)
        n = libc.syscall(nr, fd, buf, size) if nr else libc.getdents64(fd, buf, size)
        if n < 0:
            return "error", os.strerror(ctypes.get_errno())
        if n == 0:
            break
        calls += 1
        got = parse(buf.raw, n, old)
        names += [(a, b) for a, b, _ in got]
        offs.append(got[-1][2])
    return sorted(names), calls > 1
for nr, old in ((217, False), (78, True), (0, False)):
    print(nr, run(nr, 256, old))
print("tiny", run(217, 16, False))
os.lseek(fd, 0, 0)
buf = ctypes.create_string_buffer(300)
n = libc.syscall(217, fd, buf, 300)
first = parse(buf.raw, n, False)
os.lseek(fd, first[2][2], 0)   # resume after the third entry
n = libc.syscall(217, fd, buf, 300)
print("resume", len(parse(buf.raw, n, False)) > 0, parse(buf.raw, n, False)[0][0] not in [f[0] for f in first[:3]])
"""


def test_raw_directory_reads_as_on_ext4(image, host_dir):
    """getdents64 (glibc's and by number), the old getdents by number: the same names and
    types as ext4 over several calls, EINVAL for a buffer that holds no entry, and a d_off
    to lseek to that resumes after its entry. Before, the kernel read the shadow: ENOTDIR."""
    host, img = both(image, host_dir, [sys.executable, "-c", GETDENTS, "{}"])
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    assert img.stdout == host.stdout
    assert "'file-039-" in img.stdout and "tiny ('error', 'Invalid argument')" in img.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root")
def test_a_user_who_cannot_read_the_python_gets_a_clear_error(image, tmp_path):
    """A program that switched to a user who cannot read the Python pyfalloc runs on (su to
    a service user, with the interpreter under root's home) used to die in the
    interpreter's start (no module named 'encodings'); its image calls now fail with the
    errno and one message, and it runs on."""
    hidden = tmp_path / "python-home"
    hidden.mkdir(mode=0o700)
    env = environment(image)
    env["PYFALLOC_PYTHONHOME"] = str(hidden)
    os.chmod(image, 0o666)
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c",
                        "cat /pyfalloc/x; echo cat=$?; echo still here"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.stdout.split() == ["cat=1", "still", "here"], (r.stdout, r.stderr)
    assert "cannot be read by user 65534: Permission denied" in r.stderr
    assert "encodings" not in r.stderr


def test_a_pythonpath_directory_on_the_image_is_imported_from(image):
    """A Python program looks for its PYTHONPATH directories while its interpreter starts,
    before the shim can serve it: one on the image was found missing then and skipped for
    good (ModuleNotFoundError). Its first look at a path once started clears that."""
    made = under_shim(image, ["sh", "-c", "mkdir -p /pyfalloc/lib/pkg && echo 'WHERE = __file__' > /pyfalloc/lib/pkg/__init__.py"])
    assert made.returncode == 0, made.stderr
    env = environment(image)
    env["PYTHONPATH"] = "/pyfalloc/lib"
    r = subprocess.run([sys.executable, "-c", "import pkg; print(pkg.WHERE)"], env=env, capture_output=True,
                       text=True, timeout=60, cwd=tempfile.gettempdir())
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "/pyfalloc/lib/pkg/__init__.py"


def test_telldir_seekdir_and_readdir_r_on_image_directories(image, host_dir, tmp_path):
    """A directory stream of the image is the shim's own: glibc's telldir, seekdir and
    readdir_r read it as theirs and crashed (SIGSEGV); now they are served, as on ext4."""
    exe = compile_prog(tmp_path, "dirstream", "-Wall")
    host, img = both(image, host_dir, [exe, "{}"])
    assert host.returncode == 0 and img.returncode == 0, (img.returncode, img.stderr)
    assert img.stdout == host.stdout
    assert "seekdir back: same entries" in img.stdout and "readdir_r: 14 entries" in img.stdout


def test_a_programs_own_wrapper_over_syscall_is_not_called_back(image, host_dir, tmp_path):
    """GNU patch carries gnulib's renameat2, which calls syscall(SYS_renameat2): the shim's
    syscall() sent the number to the renameat2 the program defines, which called syscall()
    again until the stack ran out (patch died of SIGSEGV on every image file)."""
    exe = compile_prog(tmp_path, "own_wrapper", "-Wall")
    host, img = both(image, host_dir, [exe, "{}"])
    assert host.returncode == 0 and img.returncode == 0, (img.returncode, img.stderr)
    assert img.stdout == host.stdout
    assert img.stdout.splitlines() == ["renameat2 0 ", "moved 0 1", "onto an existing name -1 EEXIST"]
    patched = under_shim(image, ["sh", "-c", "cd /pyfalloc && seq 100 > a && seq 100 | sed s/5/five/ > b && "
                                             "diff -u a b > d; patch -s a < d && cmp a b && echo patched"])
    assert patched.stdout.strip() == "patched", patched.stderr


AIO_FORK = r"""import ctypes, os, struct, sys
d = sys.argv[1]
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def sc(*a):
    r = libc.syscall(*[ctypes.c_long(x) if isinstance(x, int) else x for x in a])
    if r < 0: raise OSError(ctypes.get_errno(), "")
    return r
def work(tag):
    ctx = ctypes.c_ulong(0); sc(206, 64, ctypes.byref(ctx))
    fd = os.open(f"{d}/af-{tag}", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    bad = 0
    for i in range(300):
        data = (tag * 4096)[:4096].encode()
        os.pwrite(fd, data, 0)
        buf = ctypes.create_string_buffer(4096)
        cb = ctypes.create_string_buffer(struct.pack("=QIIHhIQQqQII", i, 0, 0, 0, 0, fd, ctypes.addressof(buf), 4096, 0, 0, 0, 0), 64)
        arr = (ctypes.c_void_p * 1)(ctypes.addressof(cb))
        sc(209, ctx, 1, arr)
        ev = ctypes.create_string_buffer(32); sc(208, ctx, 1, 1, ev, None)
        bad += buf.raw != data
    return bad
work("w")
pid = os.fork()
if pid == 0:
    os._exit(min(work("c"), 100))
b = work("p")
_, st = os.waitpid(pid, 0)
print("parent wrong reads", b, "child wrong reads", os.waitstatus_to_exitcode(st))
"""


def test_linux_aio_in_a_parent_and_its_forked_child_at_once(image):
    """Both processes read image files through io_submit at once after a fork: each
    request's completion is handed over through a scratch memfd, and a child that kept its
    parent's (one description, shared) read the other process's bytes (about 55 of 300)."""
    r = under_shim(image, [sys.executable, "-c", AIO_FORK, "/pyfalloc"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["parent", "wrong", "reads", "0", "child", "wrong", "reads", "0"]


O_SYNC_WRITER = r"""
import fcntl, os, sys
flag = getattr(os, sys.argv[1])
fd = os.open("/pyfalloc/f", os.O_WRONLY | os.O_CREAT | flag, 0o644)
print("F_GETFL shows it:", bool(fcntl.fcntl(fd, fcntl.F_GETFL) & flag))
os.write(fd, b"a" * 4096)       # a new block (Python)
os.pwrite(fd, b"b" * 100, 0)    # an overwrite of a written block (C)
os.write(fd, b"c" * 10)         # past the end
os._exit(0)                     # no close, no exit handler: nothing else commits
"""


@pytest.mark.parametrize("flag", ["O_DSYNC", "O_SYNC"])
def test_each_write_on_an_o_sync_descriptor_is_durable_when_it_returns(image, flag):
    """O_SYNC and O_DSYNC as on ext4: F_GETFL shows them, and a write is durable when it
    returns. A program writes a new block, overwrites it and appends, then ends with _exit;
    then what lived only in memory (the shared log) is lost, as in a power cut: the file
    is there, whole."""
    with Volume(image) as v:
        log = shm_path(v.fs.dev.identity(), v.fs.dev.uuid)
    r = under_shim(image, [sys.executable, "-c", O_SYNC_WRITER, flag])
    assert r.returncode == 0 and r.stdout == "F_GETFL shows it: True\n", r.stderr
    for path in (log, log + ".d"):
        subprocess.run(["rm", "-rf", path], check=True)
    with Volume(image) as v:
        assert v.read_file("/f") == b"b" * 100 + b"a" * 3996 + b"c" * 10


def test_o_direct_alignment_and_flags_as_on_ext4(image, host_dir):
    """O_DIRECT as ext4 takes it: F_GETFL shows it and F_SETFL sets and clears it (dups
    follow); a read or write whose offset, length or buffer address is not a multiple of 512
    is EINVAL, a vector with one such piece moves nothing, and an empty one gives 0. Before,
    the image took every such call and F_GETFL did not show the flag. copy_file_range,
    sendfile and splice from an O_DIRECT file check only the caller's offsets and length:
    before, the shim's unaligned buffer made every one EINVAL (fsx -Z stopped at its first
    copy range)."""
    script = os.path.join(ROOT, "tests", "progs", "odirect.py")
    host, img = both(image, host_dir, [sys.executable, script, "{}"])
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    assert "write at offset 1: EINVAL" in host.stdout and "F_GETFL shows O_DIRECT: True" in host.stdout
    assert img.stdout.splitlines() == host.stdout.splitlines()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a child drops to nobody)")
def test_posix_access_acls_as_on_ext4(image, host_dir):
    """system.posix_acl_access as ext4 keeps it: the value's checks and errno (version
    EOPNOTSUPP, size, order and a missing mask EINVAL), an ACL the mode says all of is not
    kept, a named entry sets the group bits to the mask, chmod rewrites the ACL, a default
    ACL on a file is EACCES, none on a symbolic link; and what it grants another user:
    reads through a named entry, search of a directory, the owning group named by id, and
    nothing once chmod takes the mask away; a directory's default ACL given to the files,
    directories and FIFOs made in it (masked by their mode, the umask not counting) and
    passed on by a subdirectory. Before, every system.* name was EOPNOTSUPP, and `cp -a`/
    `rsync -A` of a file with an ACL failed to keep it. Also a file made under umask 077 and
    opened up by chmod: before, its shadow (made under that umask) refused other users."""
    script = os.path.join(ROOT, "tests", "progs", "acls.py")
    host, img = both(image, host_dir, [sys.executable, script, "{}"])
    assert host.returncode == 0 and img.returncode == 0, img.stderr
    assert "the named user reads: 'secret'" in host.stdout and "after chmod 0600, reads: EACCES" in host.stdout
    assert img.stdout.splitlines() == host.stdout.splitlines()


def test_threads_making_the_first_image_call_at_once_all_get_the_image(image, tmp_path):
    """32 threads released by a barrier each open and write an image file as the process's
    first image call, 30 times over. Before, a thread could enter the embedded Python while
    another was still setting the environment its start needs: the interpreter started
    without the package (every call ENOSYS), or setenv raced a getenv and glibc aborted on
    a corrupt heap — 2 runs in 60 here; 0 in 200 with the start serialized."""
    exe = compile_prog(tmp_path, "start_race", "-O2", "-pthread")
    under_shim(image, ["mkdir", "/pyfalloc/sr"])
    for _ in range(30):
        r = under_shim(image, [exe, "/pyfalloc/sr"])
        assert (r.returncode, r.stdout) == (0, "errors 0\n"), r.stderr[-1000:]
