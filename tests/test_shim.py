"""The LD_PRELOAD shim with unmodified programs: util-linux fallocate, filefrag, coreutils,
a shell, and Python itself; contents and placement checked through the Volume."""
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

from pyfalloc import Volume, uapi
from pyfalloc.shim.run import environment

pytestmark = pytest.mark.skipif(not shutil.which("filefrag") or not shutil.which("fallocate"),
                                reason="needs util-linux fallocate and e2fsprogs filefrag")


def sh(image, *cmd, env=None, **kw):
    e = environment(image)
    e.update(env or {})
    return subprocess.run(list(cmd), env=e, capture_output=True, text=True, **kw)


def test_coreutils_and_a_shell_read_and_write_image_files(image, tmp_path):
    payload = os.urandom(300_000)
    (tmp_path / "src").write_bytes(payload)
    assert sh(image, "cp", str(tmp_path / "src"), "/pyfalloc/copy").returncode == 0
    assert sh(image, "cmp", str(tmp_path / "src"), "/pyfalloc/copy").returncode == 0
    r = sh(image, "sh", "-c", "echo one > /pyfalloc/r && echo two >> /pyfalloc/r && cat /pyfalloc/r")
    assert r.stdout == "one\ntwo\n", r.stderr
    assert sh(image, "dd", "if=/pyfalloc/copy", "of=/pyfalloc/dd", "bs=64k", "status=none").returncode == 0
    st = sh(image, "stat", "-c", "%s %b", "/pyfalloc/dd").stdout.split()
    with Volume(image) as vol:
        assert vol.read_file("/copy") == payload == vol.read_file("/dd")
        assert vol.read_file("/r") == b"one\ntwo\n"
        assert st == [str(len(payload)), str(vol.stat("/dd").st_blocks)]
        assert vol.fsck() == []
    missing = sh(image, "cat", "/pyfalloc/nope")
    assert missing.returncode == 1 and "No such file or directory" in missing.stderr


def test_util_linux_fallocate_and_filefrag_see_the_image(image):
    assert sh(image, "fallocate", "-l", "1M", "/pyfalloc/a").returncode == 0
    assert sh(image, "fallocate", "-p", "-o", "0", "-l", "64K", "/pyfalloc/a").returncode == 0
    out = sh(image, "filefrag", "-v", "/pyfalloc/a").stdout
    with Volume(image) as vol:
        ext = vol.fiemap_path("/a")
        assert vol.stat("/a").st_size == 1 << 20
    assert len(ext) == 1 and ext[0].logical == 64 << 10 and ext[0].flags & uapi.FIEMAP_EXTENT_UNWRITTEN
    first = ext[0].physical // 4096
    assert f"{first}..{first + ext[0].length // 4096 - 1}" in out.replace(" ", "") or str(first) in out
    assert "unwritten" in out and "1 extent found" in out
    bad = sh(image, "fallocate", "-c", "-o", "0", "-l", "2M", "/pyfalloc/a")     # collapse past EOF
    assert bad.returncode == 1 and "Invalid argument" in bad.stderr
    assert sh(image, "fallocate", "-n", "-o", "1M", "-l", "256K", "/pyfalloc/a").returncode == 0   # --keep-size
    assert sh(image, "fallocate", "-x", "-l", "12K", "/pyfalloc/x").returncode == 0                # --posix
    with Volume(image) as vol:
        assert vol.stat("/a").st_size == 1 << 20
        assert sum(e.length for e in vol.fiemap_path("/a")) == (1 << 20) - (64 << 10) + (256 << 10)
        assert vol.stat("/x").st_size == 12 << 10 and vol.stat("/x").st_blocks == 24


def test_the_shim_exports_plain_and_64_bit_names():
    from pyfalloc.shim.run import library
    nm = subprocess.run(["nm", "-D", "--defined-only", library()], capture_output=True, text=True)
    if nm.returncode:
        pytest.skip("needs binutils' nm")
    names = {line.split()[-1] for line in nm.stdout.splitlines() if " T " in line}
    for base in ("open", "openat", "creat", "pread", "pwrite", "lseek", "fstat", "stat", "lstat", "fstatat",
                 "truncate", "ftruncate", "fallocate", "posix_fallocate", "fopen", "freopen", "readdir",
                 "statfs", "fstatfs", "statvfs", "mmap", "posix_fadvise", "sendfile", "__xstat", "__fxstat"):
        assert base in names and base + "64" in names, base
    for name in ("__open_2", "__open64_2", "__openat_2", "fallocate2", "fallocate3", "compat_sys_x86_fallocate2",
                 "syscall", "ioctl", "close_range", "readv", "writev", "dup3", "fcntl", "fdopen", "fileno",
                 "copy_file_range", "statx", "execve", "posix_spawn", "utimensat", "fsetxattr"):
        assert name in names, name


PY = """
import errno, os, pyfalloc
fd = os.open("/pyfalloc/p", os.O_RDWR | os.O_CREAT, 0o644)
pyfalloc.fallocate2(fd, 0, 0, 8192, physical=64 << 20)       # syscall 486 through ctypes
os.write(fd, b"placed")
os.close(fd)
v = os.open("/pyfalloc/v", os.O_RDWR | os.O_CREAT, 0o644)
assert os.writev(v, [b"ab", b"cd", b"ef"]) == 6 and os.lseek(v, 0, os.SEEK_SET) == 0
a, b = bytearray(3), bytearray(10)
assert os.readv(v, [a, b]) == 6 and (a, b[:3]) == (b"abc", b"def")
host = os.open(os.environ["HOSTFILE"], os.O_RDWR | os.O_CREAT, 0o644)
try:
    pyfalloc.fallocate2(host, 0, 0, 4096, physical=0)
except OSError as e:
    print("EOPNOTSUPP" if e.errno == errno.EOPNOTSUPP else e.errno)
"""


def test_python_under_the_shim_places_blocks_with_syscall_486(image, tmp_path):
    r = sh(image, sys.executable, "-c", PY, env={"HOSTFILE": str(tmp_path / "host")})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "EOPNOTSUPP"          # a host file's kernel cannot place blocks
    with Volume(image) as vol:
        assert vol.read_file("/p") == b"placed" + bytes(8192 - 6)      # mode 0 set the size
        assert vol.fiemap_path("/p")[0].physical == 64 << 20
        assert vol.read_file("/v") == b"abcdef"


def test_a_python_that_cannot_start_is_reported(image):
    r = sh(image, "cat", "/pyfalloc/x", env={"PYFALLOC_PYTHONPATH": "/nonexistent", "PYTHONNOUSERSITE": "1"})
    assert r.returncode == 1
    assert "embedded Python did not start" in r.stderr
    assert "Function not implemented" in r.stderr


@pytest.mark.parametrize("theirs", ["/the/programs/own", None])
def test_the_programs_pythonpath_is_its_own_after_the_embedded_start(image, theirs):
    """The embedded interpreter starts with the package's directories as PYTHONPATH; the
    program and what it starts see their own value (or none) afterwards."""
    env = environment(image)
    env.pop("PYTHONPATH", None)
    if theirs:
        env["PYTHONPATH"] = theirs
    script = 'test -e /pyfalloc/nothing; echo "[${PYTHONPATH-unset}]"; sh -c \'echo "[${PYTHONPATH-unset}]"\''
    r = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [f"[{theirs or 'unset'}]"] * 2


def test_ls_mkdir_mv_find_and_rm_walk_the_image(image, tmp_path):
    r = sh(image, "sh", "-c", "umask 022 && mkdir /pyfalloc/d && echo x > /pyfalloc/d/f && "
                              "mv /pyfalloc/d/f /pyfalloc/d/g && ls -l /pyfalloc/d && ls -R /pyfalloc")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "total 4"
    assert lines[1].startswith("-rw-r--r-- 1 ") and lines[1].endswith(" g")    # umask applied
    assert lines[2:] == ["/pyfalloc:", "d", "", "/pyfalloc/d:", "g"]
    (tmp_path / "host").write_text("from the host\n")
    assert sh(image, "mv", str(tmp_path / "host"), "/pyfalloc/d/h").returncode == 0     # EXDEV: copy + unlink
    assert not (tmp_path / "host").exists()
    assert sh(image, "find", "/pyfalloc").stdout.split() == ["/pyfalloc", "/pyfalloc/d", "/pyfalloc/d/g",
                                                             "/pyfalloc/d/h"]
    assert sh(image, "rm", "-r", "/pyfalloc/d").returncode == 0
    with Volume(image) as vol:
        assert vol.listdir("/") == []
        assert vol.fsck() == []


def test_a_c_program_places_blocks_and_uses_stdio(image, tmp_path):
    exe = tmp_path / "place"
    cc = subprocess.run(["cc", "-Wall", "-Werror", "-I", os.path.join(ROOT, "cdefs"), "-o", str(exe),
                         os.path.join(ROOT, "examples", "place.c")], capture_output=True, text=True)
    assert cc.returncode == 0, cc.stderr
    r = sh(image, str(exe), "/pyfalloc/c", "96M", "8192")
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"logical 0 physical {96 << 20} length 8192 flags 0x801\n"    # UNWRITTEN | LAST
    busy = sh(image, str(exe), "/pyfalloc/c2", "96M", "4096")
    assert busy.returncode == 1 and "No space left on device" in busy.stderr
    fs = sh(image, "stat", "-f", "-c", "%t %S %b", "/pyfalloc")
    assert fs.stdout.split() == ["50594641", "4096", str(256 << 20 >> 12)]          # "PYFA", statfs
    assert sh(image, "sh", "-c", "test -e /pyfalloc/c && test ! -e /pyfalloc/nope").returncode == 0
    with Volume(image) as vol:
        assert vol.read_file("/c").startswith(f"placed at {96 << 20}\n".encode())
        assert vol.fsck() == []


def test_pyfalloc_run_takes_a_mount_prefix_and_the_command_after_double_dash(image):
    env = dict(os.environ, PYTHONPATH=ROOT)
    run = [sys.executable, "-m", "pyfalloc.cli.main", "run", image, "--mount", "/mnt/img/", "--"]
    r = subprocess.run(run + ["sh", "-c", "echo hi > /mnt/img/f && ls -l /mnt/img && cat /mnt/img/f"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[1].endswith(" f") and r.stdout.endswith("hi\n")
    none = subprocess.run(run[:-3] + ["--"], capture_output=True, text=True, env=env)
    assert none.returncode == 1 and "no command given" in none.stderr
    with Volume(image) as vol:
        assert vol.read_file("/f") == b"hi\n"


PY_FORK = """
import ctypes, errno, mmap, os, subprocess
fd = os.open("/pyfalloc/f", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, b"parent ")
pid = os.fork()
if pid == 0:
    os.write(fd, b"child ")
    os._exit(0)
os.waitpid(pid, 0)
os.write(fd, b"again")
print(os.lseek(fd, 0, os.SEEK_CUR))
print(mmap.mmap(fd, 8)[:6].decode())
st = ctypes.create_string_buffer(144)           # struct stat: st_size at offset 48
print(ctypes.CDLL(None).__xstat(1, b"/pyfalloc/f", st), int.from_bytes(st.raw[48:56], "little"))
os.close(fd)
print(subprocess.run(["cat", "/pyfalloc/f"], capture_output=True, text=True).stdout)
"""


def test_python_forks_maps_and_old_stat_abi_under_the_shim(image):
    """os.fork shares the file position; a shared mapping shows the bytes both wrote;
    __xstat (what binaries built against glibc < 2.33 call) reaches the image."""
    r = sh(image, sys.executable, "-c", PY_FORK)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n") == ["18", "parent", "0 18", "parent child again", ""]


STAT_AFTER_OTHERS = r"""
import os, subprocess, sys
p, q = "/pyfalloc/s", "/pyfalloc/later"
open(p, "wb").write(b"12345")
seen = [os.stat(p).st_size, os.stat(p).st_size]
try:
    os.stat(q)
except FileNotFoundError:
    seen.append("absent")
try:
    os.stat(q)
except FileNotFoundError:
    seen.append("absent")
# another process changes both; this one's answers must follow
subprocess.run(["sh", "-c", "printf 1234567890 > /pyfalloc/s; : > /pyfalloc/later"], check=True)
seen += [os.stat(p).st_size, os.path.exists(q)]
print(seen)
"""


def test_repeated_stats_follow_changes_made_by_other_processes(image):
    """stat answers are kept while nothing changes; a change by another process shows at once."""
    r = subprocess.run([sys.executable, "-c", STAT_AFTER_OTHERS], env=environment(image), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[5, 5, 'absent', 'absent', 10, True]"


LISTING_AFTER_OTHERS = r"""
import os, subprocess
d = "/pyfalloc/dir"
os.mkdir(d)
for i in range(3):
    open(f"{d}/f{i}", "w").close()
seen = [sorted(os.listdir(d)), sorted(os.listdir(d))]
subprocess.run(["sh", "-c", f"rm {d}/f1; : > {d}/g; mv {d}/f0 {d}/h"], check=True)
seen.append(sorted(os.listdir(d)))
with os.scandir(d) as it:
    seen.append(sorted((e.name, e.is_file(), e.inode() == os.stat(e.path).st_ino) for e in it))
print(seen)
"""


def test_repeated_listings_follow_changes_made_by_other_processes(image):
    """A listing is kept while nothing changes on the volume; entries another process adds,
    removes or renames show in the next one, with their types and inode numbers."""
    r = subprocess.run([sys.executable, "-c", LISTING_AFTER_OTHERS], env=environment(image),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str([["f0", "f1", "f2"]] * 2 + [["f2", "g", "h"]]
                                   + [[("f2", True, True), ("g", True, True), ("h", True, True)]])


HELD_OPENS = r"""
import os, subprocess, sys
p, q = "/pyfalloc/held", "/pyfalloc/kept"
free = lambda: os.statvfs("/pyfalloc").f_bfree
before = free()
for name in (p, q):
    with open(name, "wb") as f:
        f.write(name.encode() * 4096)
for name in (p, q):
    os.close(os.open(name, os.O_RDONLY))    # Python answers; the next opens are the shim's
a, b = os.open(p, os.O_RDONLY), os.open(q, os.O_RDONLY)
pid = os.fork()
if pid == 0:                                # the child holds its copies after the parent's close
    import time
    while os.path.exists(p) or os.path.exists(q):
        time.sleep(0.01)
    os._exit(0 if os.pread(a, len(p), 0) == p.encode() and os.pread(b, len(q), 0) == q.encode() else 1)
os.close(a)
os.close(b)
subprocess.run(["rm", p, q], check=True)    # another process unlinks both while the child holds them
_, status = os.waitpid(pid, 0)
child_read = os.waitstatus_to_exitcode(status) == 0
# the child's exit let go of both, a freed inode's blocks come back
c = os.open("/pyfalloc/third", os.O_CREAT | os.O_WRONLY, 0o644)
os.write(c, b"x" * 4096 * 8)
os.close(c)
for _ in range(2):      # the first last close drops the preallocation: the log moves once
    os.close(os.open("/pyfalloc/third", os.O_RDONLY))
d = os.open("/pyfalloc/third", os.O_RDONLY)     # the shim's open
subprocess.run(["rm", "/pyfalloc/third"], check=True)
os.close(d)                                     # the last close frees it, with no Python call before
print(child_read, os.path.exists(p), before - free())
"""


def test_files_opened_without_python_stay_held_and_are_freed_at_their_last_close(image):
    """An open answered in C holds its inode like any other: a forked child reads files
    another process unlinked after the parent closed its copies, and the last close of an
    unlinked file gives its blocks back; fsck finds nothing owned twice or leaked."""
    r = subprocess.run([sys.executable, "-c", HELD_OPENS], env=environment(image), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "False", "0"]
    with Volume(image) as v:
        assert v.fsck() == []


SPAWN_KEEPS = r"""
import os, subprocess
fd = os.open("/pyfalloc/open", os.O_CREAT | os.O_RDWR, 0o644)
os.write(fd, b"y" * 32768)
subprocess.run(["true"], check=True)     # vfork; the child closes every inherited descriptor
print(len(os.pread(fd, 65536, 0)), os.fstat(fd).st_size, os.stat("/pyfalloc/open").st_size)
"""


def test_a_spawned_child_closing_inherited_image_files_leaves_the_parents_alone(image):
    """Python's subprocess starts children with vfork: until it execs, the child runs in the
    parent's memory and closes the descriptors it inherited. Those closes must not reach the
    parent's interpreter or tables: the parent's open file keeps its bytes and size."""
    r = subprocess.run([sys.executable, "-c", SPAWN_KEEPS], env=environment(image), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["32768"] * 3
    with Volume(image) as v:
        assert v.read_file("/open") == b"y" * 32768
        assert v.fsck() == []


MASKS = r"""
import ctypes, os, subprocess, sys
d = sys.argv[1]
libc = ctypes.CDLL(None, use_errno=True)
modes = []
os.umask(0o077)
os.close(os.open(f"{d}/a", os.O_CREAT | os.O_WRONLY, 0o666))
libc.syscall(95, 0o002)                                   # SYS_umask, raw
os.mkdir(f"{d}/b", 0o777)
subprocess.run(["true"], check=True, umask=0o777)          # the child's mask, not this one's
os.close(os.open(f"{d}/c", os.O_CREAT | os.O_WRONLY, 0o666))
print([oct(os.stat(f"{d}/{n}").st_mode & 0o7777) for n in "abc"])
"""


def test_new_files_get_the_umask_as_the_kernel_applies_it(image, tmp_path):
    """The mask set by umask(), by a raw syscall, and left alone by a child that set its own,
    gives image files the modes the kernel gives host files in the same sequence."""
    kernel = subprocess.run([sys.executable, "-c", MASKS, str(tmp_path)], capture_output=True, text=True,
                            timeout=60)
    shim = subprocess.run([sys.executable, "-c", MASKS, "/pyfalloc"], env=environment(image),
                          capture_output=True, text=True, timeout=60)
    assert kernel.returncode == 0 and shim.returncode == 0, kernel.stderr + shim.stderr
    assert kernel.stdout == "['0o600', '0o775', '0o664']\n"
    assert shim.stdout == kernel.stdout


STDOUT_ON_IMAGE = r"""
import subprocess, sys
print("parent", flush=True)
subprocess.run(["echo", "child"], check=True)
subprocess.run(["sh", "-c", "echo piped"], check=True, stdout=subprocess.PIPE)
print("parent again")
"""


def test_a_python_program_whose_stdout_is_an_image_file_starts_and_shares_it(image):
    """`python prog > /pyfalloc/out`: the program's interpreter checks its standard streams
    while it starts, before Python can serve them, and its children write to the same file."""
    r = sh(image, "sh", "-c", f'"{sys.executable}" -c "$0" > /pyfalloc/out && cat /pyfalloc/out',
           STDOUT_ON_IMAGE, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "parent\nchild\nparent again\n"


@pytest.mark.parametrize("python", sorted({os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
                                            "/usr/bin/python3"}))
def test_a_python_without_the_package_installed_reaches_the_image(image, python):
    """An interpreter outside the project's environment (the venv's base, the system's),
    with neither pyfalloc nor cffi on its path, runs on the image like any program: the
    shim lends it the package's directories, and its own start keeps its own standard
    library."""
    if not os.path.exists(python):
        pytest.skip(f"no {python}")
    base = python
    code = "import os, sys; print(sys.prefix == sys.base_prefix, sorted(os.listdir('/pyfalloc')))"
    r = sh(image, "sh", "-c", f'"{base}" -c "$0" > /pyfalloc/out && cat /pyfalloc/out', code, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "True ['out']\n"


SHADOWS_FREED = r"""
import os
from pyfalloc.shim import serve          # this program's interpreter is the shim's too
for i in range(40):
    with open(f"/pyfalloc/t{i}", "w") as f:
        f.write("x")
    os.unlink(f"/pyfalloc/t{i}")
held = open("/pyfalloc/held", "w")
os.unlink("/pyfalloc/held")              # still open: its shadow stays until the close
runtime = serve.volume().fs.meta.runtime_dir()
before = len(os.listdir(runtime))
held.close()
print(before, len(os.listdir(runtime)))
"""


def test_a_freed_inode_takes_its_shadow_with_it(image):
    """Every file the shim opens has a shadow in the volume's runtime directory; a freed
    inode's shadow goes when the inode does, or a create-and-remove loop would leave one
    file in /dev/shm per file it ever made."""
    r = subprocess.run([sys.executable, "-c", SHADOWS_FREED], env=environment(image), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1", "0"]
