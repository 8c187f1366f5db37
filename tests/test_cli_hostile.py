"""Bad input and host faults through the command: Linux's answer, the tool's one error
format (`pyfalloc: CMD: strerror (ERRNO)`, exit 1), never a traceback, nothing lost."""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from pyfalloc.cli.main import build_parser

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAPLESS = ["setpriv", "--bounding-set=-all", "--inh-caps=-all"]


def cli(*args, stdin=None, prefix=(), cwd=None):
    r = subprocess.run([*prefix, sys.executable, "-m", "pyfalloc.cli.main", *args], capture_output=True, env=dict(os.environ, PYTHONPATH=ROOT), input=stdin, cwd=cwd)
    assert b"Traceback" not in r.stderr, r.stderr.decode()
    return r


def fails(r, cmd, name):
    """The error format, with errno NAME, exit status 1."""
    first = r.stderr.decode(errors="replace").splitlines()[0]
    assert r.returncode == 1 and first.startswith(f"pyfalloc: {cmd}: ") and first.endswith(f"({name})"), r.stderr
    return r.stderr.decode(errors="replace")


def listing(img):
    return json.loads(cli("ls", img, "/", "-R", "--json").stdout)


@pytest.fixture
def img(tmp_path):
    path = str(tmp_path / "cli.img")
    assert cli("mkfs", path, "--size", "64M").returncode == 0
    (tmp_path / "x").write_bytes(b"payload")
    for args in (("mkdir", path, "/d"), ("put", path, str(tmp_path / "x"), "/d/f"), ("mkdir", path, "/d/sub")):
        assert cli(*args).returncode == 0
    return path


@pytest.mark.parametrize("operand,name", [("/..", "EINVAL"), ("/d/..", "EINVAL"), ("/d/.", "EINVAL"),
                                          ("/", "EBUSY"), ("//", "EBUSY"), ("/d/sub/../..", "EINVAL")])
def test_rm_refuses_dot_dotdot_and_root_and_removes_nothing(img, operand, name):
    before = listing(img)
    fails(cli("rm", img, operand, "-r"), "rm", name)
    assert listing(img) == before


def test_trailing_slash_on_a_file_and_long_paths(img, tmp_path):
    x = str(tmp_path / "x")
    fails(cli("put", img, x, "/g/"), "put", "EISDIR")
    fails(cli("cat", img, "/d/f/"), "cat", "ENOTDIR")
    fails(cli("put", img, x, "/" + "n" * 256), "put", "ENAMETOOLONG")
    fails(cli("put", img, x, "/d" * 2049), "put", "ENAMETOOLONG")
    assert {e["path"] for e in listing(img)} == {"/d", "/d/f", "/d/sub"}


def test_a_name_that_is_not_utf8_goes_in_lists_escaped_and_comes_back(img, tmp_path):
    name = b"/caf\xe9\n\xff"
    assert cli("put", img, str(tmp_path / "x"), name).returncode == 0
    assert cli("ls", img, "/").stdout.splitlines() == [b"caf\\351\\n\\377", b"d/"]
    out = tmp_path / "back"
    assert cli("get", img, name, str(out)).returncode == 0
    assert out.read_bytes() == b"payload"


def test_missing_image_bad_numbers_and_usage_errors(tmp_path, img):
    assert "does not exist" in fails(cli("ls", str(tmp_path / "missing.img")), "ls", "ENOENT")
    assert "--size" in fails(cli("mkfs", str(tmp_path / "n.img"), "--size", "-1G"), "mkfs", "EINVAL")
    assert "--length" in fails(cli("fallocate", img, "/a", "-l", "1" + "0" * 20), "fallocate", "EINVAL")
    assert "--fill" in fails(cli("age", img, "--fill", "-0.5"), "age", "EINVAL")
    assert "-F" in fails(cli("mkfs", img, "--size", "64M"), "mkfs", "EEXIST")
    r = cli()
    assert r.returncode == 1 and b"(EINVAL)" in r.stderr
    assert not (tmp_path / "n.img").exists()


def test_version_and_every_option_described():
    r = cli("--version")
    assert r.returncode == 0 and r.stdout.startswith(b"pyfalloc ")
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "cmd")
    for name, p in sub.choices.items():
        for action in p._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no description"


def test_relative_mount_prefix_is_made_absolute(img, tmp_path):
    r = cli("run", img, "--mount", "mnt", "--", "cat", "mnt/d/f", cwd=str(tmp_path))
    assert r.returncode == 0 and r.stdout == b"payload", r.stderr


def test_put_r_and_get_r_follow_cp_and_keep_modes_and_times_with_p(img, tmp_path):
    src = tmp_path / "tree"
    (src / "a" / "b").mkdir(parents=True)
    (src / "a" / "b" / "deep").write_bytes(os.urandom(70_000))
    (src / "top").write_bytes(b"top")
    os.chmod(src / "top", 0o640)
    os.utime(src / "top", (1_000_000_000, 1_000_000_000))
    fails(cli("put", img, str(src), "/t"), "put", "EISDIR")         # a directory needs -r, as cp
    assert cli("put", img, "-r", "-p", str(src), "/d").returncode == 0       # into the directory, by name
    st = json.loads(cli("stat", img, "/d/tree/top", "--json").stdout)
    assert st["mode"] == "0o640" and int(st["mtime"]) == 1_000_000_000
    back = tmp_path / "back"
    back.mkdir()
    assert cli("get", img, "-r", "-p", "/d/tree", str(back)).returncode == 0
    for rel in ("a/b/deep", "top"):
        assert (back / "tree" / rel).read_bytes() == (src / rel).read_bytes()
    assert os.stat(back / "tree" / "top").st_mode & 0o777 == 0o640
    assert int(os.stat(back / "tree" / "top").st_mtime) == 1_000_000_000
    assert cli("get", img, "/d/f", "-").stdout == b"payload"


def test_fsmap_min_and_move_to_the_nearest_free_range(img):
    free = json.loads(cli("fsmap", img, "--free", "--min", "8M", "--json").stdout)["free"]
    assert free and all(r["length"] >= 8 << 20 for r in free)
    moved = json.loads(cli("move", img, "/d/f", "--physical", "auto", "--json").stdout)
    assert moved["extents"][0]["physical"] == moved["physical"]
    assert cli("cat", img, "/d/f").stdout == b"payload"


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv(1)")
def test_an_image_the_user_may_only_read_is_listed_read_checked_and_refuses_changes(img, tmp_path):
    for f in os.listdir(tmp_path):
        os.chmod(tmp_path / f, 0o444)
    os.chmod(tmp_path, 0o555)
    try:
        for args in (("ls", img, "/", "-lR"), ("stat", img, "/d/f"), ("fiemap", img, "/d/f"), ("fsmap", img),
                     ("map", img), ("fsck", img), ("get", img, "/d/f", "-")):
            r = cli(*args, prefix=CAPLESS)
            assert r.returncode == 0, (args, r.stderr)
        assert cli("cat", img, "/d/f", prefix=CAPLESS).stdout == b"payload"
        fails(cli("mkdir", img, "/new", prefix=CAPLESS), "mkdir", "EROFS")
        fails(cli("put", img, "-", "/d/f", stdin=b"over", prefix=CAPLESS), "put", "EROFS")
        fails(cli("rm", img, "/d/f", prefix=CAPLESS), "rm", "EROFS")
    finally:
        os.chmod(tmp_path, 0o755)
    assert cli("cat", img, "/d/f").stdout == b"payload"


def test_ctrl_c_in_age_says_so_and_leaves_the_volume_consistent(img):
    p = subprocess.Popen([sys.executable, "-m", "pyfalloc.cli.main", "age", img, "--churn", "400"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=ROOT))
    time.sleep(2.5)
    assert p.poll() is None, "age ended before it could be interrupted"
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert b"Traceback" not in err
    assert p.returncode == 1 and b"(EINTR)" in err and b"consistent" in err, err
    assert cli("fsck", img).returncode == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a small tmpfs (root)")
def test_a_full_host_disk_gives_enospc_and_loses_nothing(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6M", "tmpfs", str(mnt)]).returncode:
        pytest.skip("cannot mount a tmpfs")
    try:
        img = str(mnt / "v.img")
        assert cli("mkfs", img, "--size", "64M").returncode == 0
        assert cli("put", img, "-", "/keep", stdin=b"kept").returncode == 0
        digest = hashlib.sha256(b"kept").hexdigest()
        with open(mnt / "filler", "wb") as f:           # the host is full
            try:
                while True:
                    f.write(b"\1" * (1 << 20))
                    f.flush()
            except OSError:
                pass
        r = cli("put", img, "-", "/big", stdin=os.urandom(8 << 20))
        fails(r, "put", "ENOSPC")
        assert cli("fsck", img).returncode == 0
        shim = cli("run", img, "--", "cat", "/pyfalloc/keep")          # the shim starts while full
        assert shim.returncode == 0 and shim.stdout == b"kept", shim.stderr
        assert hashlib.sha256(cli("cat", img, "/keep").stdout).hexdigest() == digest
        os.unlink(mnt / "filler")
        assert cli("fsck", img).returncode == 0
    finally:
        subprocess.run(["umount", "-l", str(mnt)])
