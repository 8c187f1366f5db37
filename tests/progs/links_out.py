"""Symbolic links whose targets leave the directory for another place on the host, printed
so a run in a host directory and a run on the image can be compared line by line: every
call goes on at the target as the kernel's would (reads, writes, creates, removals,
attributes, extended attributes, listings, chdir, realpath, exec), and a rename or hard
link across is EXDEV.

    python links_out.py DIR OUTSIDE     (OUTSIDE: a host directory, emptied first)
"""
import os
import shutil
import subprocess
import sys

from oracle import show, workdir

top = workdir(sys.argv[1], "lo")
out = sys.argv[2]
shutil.rmtree(out, ignore_errors=True)
os.makedirs(out + "/sub")
with open(out + "/f", "w") as f:
    f.write("outside\n")
os.symlink(out, "o")
os.symlink(out + "/f", "of")
os.symlink("/bin/echo", "echo")
T = lambda p: p.replace(out, "OUT").replace(top, "TOP")     # noqa: E731

show("read through a directory link", lambda: open("o/f").read())
show("read a file link", lambda: open("of").read())
show("stat", lambda: (os.stat("o/f").st_size, oct(os.lstat("o").st_mode)))
show("listdir", lambda: sorted(os.listdir("o")))
show("create", lambda: (open("o/new", "w").write("made"), open(out + "/new").read())[1])
show("mkdir", lambda: (os.mkdir("o/d"), os.path.isdir(out + "/d"))[1])
show("chmod", lambda: (os.chmod("o/new", 0o600), oct(os.stat(out + "/new").st_mode))[1])
show("utime", lambda: (os.utime("o/new", (7, 8)), os.stat(out + "/new").st_mtime)[1])
show("truncate", lambda: (os.truncate("o/new", 2), open(out + "/new").read())[1])
show("symlink there", lambda: (os.symlink("f", "o/l"), os.readlink(out + "/l"))[1])
show("readlink there", lambda: os.readlink("o/l"))
show("access", lambda: os.access("o/new", os.W_OK))
show("xattr", lambda: (os.setxattr("o/f", "user.t", b"1"), os.getxattr(out + "/f", "user.t"), os.listxattr("o/f"),
                       os.removexattr("o/f", "user.t"), os.listxattr(out + "/f"))[1:])
show("realpath", lambda: T(os.path.realpath("o/sub")))
show("rename across", lambda: os.rename("o/new", "moved"))
show("rename into", lambda: os.rename("echo", "o/echo"))
show("link across", lambda: os.link("o/f", "hard"))
show("unlink", lambda: (os.unlink("o/new"), os.path.exists(out + "/new"))[1])
show("rmdir", lambda: (os.rmdir("o/d"), os.path.exists(out + "/d"))[1])
show("exec", lambda: subprocess.run(["./echo", "ran"], capture_output=True, text=True).stdout)
os.chdir("o")
show("getcwd after chdir through the link", lambda: T(os.getcwd()))
show("entries there", lambda: sorted(os.listdir(".")))
os.chdir(top)
show("entries here", lambda: sorted(os.listdir(".")))
