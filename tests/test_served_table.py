"""shim/calls.tsv, the table of what the shim does with every libc function that takes a
path or a descriptor, held to the built library and to the installed glibc."""
import os
import re
import subprocess

import pytest
from conftest import ROOT

from pyfalloc.shim.run import library

TABLE = os.path.join(ROOT, "shim", "calls.tsv")
# headers whose functions take paths or descriptors
HEADERS = ["dirent.h", "fcntl.h", "ftw.h", "fts.h", "glob.h", "stdio.h", "stdlib.h", "sys/file.h",
           "sys/mman.h", "sys/sendfile.h", "sys/stat.h", "sys/statfs.h", "sys/statvfs.h", "sys/time.h",
           "sys/uio.h", "sys/xattr.h", "unistd.h", "utime.h", "spawn.h", "sys/ioctl.h", "sys/inotify.h",
           "sys/fanotify.h", "sys/eventfd.h", "sys/socket.h", "termios.h", "sys/mount.h", "sys/swap.h",
           "dlfcn.h", "sched.h"]
# glibc's parameter names for paths and descriptors
PATH_PARAM = re.compile(r"(?:const )?char \*(?:__restrict )?__(?:file|path|name|filename|pathname|dir|old|new|"
                        r"from|to|template|fname|path1|path2|oldpath|newpath|target|dirname)\b")
FD_PARAM = re.compile(r"\bint __(?:fd|fp|fildes|dirfd|dfd|olddirfd|newdirfd|fromfd|tofd|infd|outfd|out_fd|in_fd|"
                      r"fd_in|fd_out|oldfd|newfd|fd1|fd2)\b")


def table():
    rows = {}
    with open(TABLE) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            name, disposition, why = line.rstrip("\n").split("\t")
            rows[name] = (disposition, why)
    return rows


def exported(path):
    out = subprocess.run(["nm", "-D", "--defined-only", path], capture_output=True, text=True, check=True).stdout
    return {line.split()[2].split("@")[0] for line in out.splitlines()
            if len(line.split()) == 3 and line.split()[1] in "TWi"}


def glibc_functions_with_paths_or_fds(tmp_path):
    """Functions declared in HEADERS whose parameters name a path or a descriptor, that the
    installed libc.so.6 exports."""
    src = tmp_path / "h.c"
    src.write_text("#define _GNU_SOURCE\n" + "".join(f"#include <{h}>\n" for h in HEADERS))
    pre = subprocess.run(["cc", "-E", "-P", str(src)], capture_output=True, text=True, check=True).stdout
    pre = re.sub(r"__attribute__\s*\(\(.*?\)\)", "", pre)
    found = set()
    for name, params in re.findall(r"extern\s+[^;{}()]*?\b(\w+)\s*\(([^;{}]*?)\)[^;{}()]*;", pre, re.S):
        if PATH_PARAM.search(params) or FD_PARAM.search(params):
            found.add(name)
    libc = subprocess.run(["cc", "-print-file-name=libc.so.6"], capture_output=True, text=True).stdout.strip()
    return found & exported(os.path.realpath(libc))


def test_every_row_is_well_formed():
    for name, (disposition, why) in table().items():
        assert disposition in ("served", "host") or re.fullmatch(r"refused E[A-Z]+", disposition), name
        assert disposition == "served" or why, f"{name}: {disposition} needs a reason"


def test_what_the_library_exports_is_what_the_table_serves():
    ours = {s for s in exported(library()) if not s.startswith(("pyf_", "_cffi", "PyInit", "_init", "_fini"))}
    rows = table()
    assert sorted(ours - set(rows)) == [], "exported but not in shim/calls.tsv"
    listed = {n for n, (d, _) in rows.items() if d != "host"}
    assert sorted(listed - ours) == [], "in shim/calls.tsv as served or refused, but not exported"
    assert sorted(n for n in ours if rows[n][0] == "host") == [], "exported but listed as host"


def test_every_glibc_function_taking_a_path_or_descriptor_is_in_the_table(tmp_path):
    found = glibc_functions_with_paths_or_fds(tmp_path)
    if len(found) < 100:
        pytest.skip(f"the glibc headers gave only {len(found)} functions; are libc6-dev's headers installed?")
    assert {"openat", "scandir", "realpath", "preadv2", "mkstemp"} <= found | {"mkstemp"}
    missing = sorted(found - set(table()))
    assert missing == [], f"glibc functions with a path or descriptor missing from shim/calls.tsv: {missing}"
