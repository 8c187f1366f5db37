"""Path resolution held to the kernel: the same calls with the same awkward paths on a
host ext4 directory (os.*) and on the volume (the API, which the shim and the CLI share)."""
import errno
import os

import pytest

LONG_NAME = "n" * 256
LONG_PATH = "/".join(["d"] * 2049)          # 4097 bytes
CASES = [
    ("open", "f/", os.O_RDONLY), ("open", "f/", os.O_WRONLY | os.O_CREAT), ("open", "new/", os.O_WRONLY | os.O_CREAT),
    ("open", "d/.", os.O_RDONLY | os.O_CREAT), ("open", "d/..", os.O_RDONLY), ("open", "f/x", os.O_RDONLY),
    ("open", "d//f2", os.O_RDONLY), ("open", "d/../f", os.O_RDONLY), ("open", "d/./f2/", os.O_RDONLY),
    ("open", LONG_NAME, os.O_RDONLY), ("open", LONG_NAME[:255], os.O_WRONLY | os.O_CREAT), ("open", LONG_PATH, os.O_RDONLY),
    ("open", "", os.O_RDONLY), ("open", "a\0b", os.O_RDONLY), ("open", b"\xff\xfe", os.O_WRONLY | os.O_CREAT),
    ("stat", "f/",), ("stat", "f/.",), ("stat", "d/",), ("stat", "..",), ("stat", "d/f2/..",),
    ("mkdir", "d/."), ("mkdir", "d/.."), ("mkdir", "m/"), ("mkdir", "f/x"), ("mkdir", LONG_NAME),
    ("rmdir", "d/."), ("rmdir", "d/.."), ("rmdir", "f"), ("rmdir", "e/"), ("rmdir", "d"),
    ("unlink", "f/"), ("unlink", "d/"), ("unlink", "d/."), ("unlink", "d/.."), ("unlink", "nope/"), ("unlink", "d"),
    ("rename", "f/", "g"), ("rename", "f", "g/"), ("rename", "d/.", "x"), ("rename", "f", "d/.."),
    ("rename", "e/", "e2/"), ("rename", "d", "d/f2/x"), ("rename", "d", "d/sub"),
    ("truncate", "f/"), ("truncate", "d"), ("listdir", "f"), ("listdir", "d/f2/.."),
]


def _kernel(base, call, path, *args):
    full = os.path.join(os.fsencode(base), os.fsencode(path)) if path else b""
    try:
        if call == "open":
            os.close(os.open(full, args[0], 0o644))
        elif call == "rename":
            os.rename(full, os.path.join(os.fsencode(base), os.fsencode(args[0])))
        elif call == "truncate":
            os.truncate(full, 0)
        elif call == "listdir":
            os.listdir(full)
        else:
            getattr(os, call)(full)
    except ValueError:                  # Python refuses a NUL before the kernel could
        return "EINVAL"
    except OSError as e:
        return errno.errorcode[e.errno]
    return "ok"


def _volume(vol, call, path, *args):
    full = b"/" + os.fsencode(path) if path else b""
    try:
        if call == "open":
            vol.close(vol.open(full, args[0], 0o644))
        elif call == "rename":
            vol.rename(full, b"/" + os.fsencode(args[0]))
        elif call == "truncate":
            vol.truncate(full, 0)
        else:
            getattr(vol, call)(full)
    except OSError as e:
        return errno.errorcode[e.errno]
    return "ok"


def _layout(make_dir, make_file):
    make_dir("d")
    make_dir("e")
    make_file("f")
    make_file("d/f2")


def test_paths_resolve_and_fail_as_the_kernels_do(vol, host_dir):
    _layout(lambda p: os.mkdir(os.path.join(host_dir, p)), lambda p: open(os.path.join(host_dir, p), "w").close())
    _layout(lambda p: vol.mkdir("/" + p), lambda p: vol.write_file("/" + p, b""))
    got = [(case, _kernel(host_dir, *case), _volume(vol, *case)) for case in CASES]
    assert {k for _, k, _ in got} >= {"ok", "ENOTDIR", "EISDIR", "EINVAL", "ENAMETOOLONG", "EBUSY", "EEXIST",
                                      "ENOTEMPTY", "ENOENT"}, "the oracle exercises every kind of refusal"
    assert [(c, v) for c, _, v in got] == [(c, k) for c, k, _ in got]


def test_bytes_names_round_trip_and_list_as_bytes(vol):
    name = b"caf\xe9-\xff"                   # Latin-1, not UTF-8
    vol.write_file(b"/" + name, b"x")
    assert vol.listdir(b"/") == [name]
    assert os.fsencode(vol.listdir("/")[0]) == name
    assert vol.read_file(b"/" + name) == b"x"


@pytest.mark.parametrize("bad", ["a\0b", b"a\0b"])
def test_a_nul_in_a_name_is_einval_and_creates_nothing(vol, bad):
    with pytest.raises(OSError) as e:
        vol.write_file(b"/" + os.fsencode(bad) if isinstance(bad, str) else b"/" + bad, b"")
    assert e.value.errno == errno.EINVAL
    assert vol.listdir("/") == []
