"""Names that end in a slash, printed so a run in a host directory and a run on the image
can be compared line by line: "name/" must name a directory, for every call that takes a
path, and the working directory and a descriptor's directory keep no trailing slash.

    python trailing_slash.py DIR
"""
import os
import sys

from oracle import show

os.chdir(sys.argv[1])
os.makedirs("sl/d")
os.chdir("sl")
open("f", "w").close()

show("stat f/", lambda: os.stat("f/").st_size)
show("stat d/", lambda: os.stat("d/").st_nlink)
show("open f/", lambda: os.close(os.open("f/", os.O_RDONLY)))
show("open d/", lambda: os.close(os.open("d/", os.O_RDONLY)))
show("creat n/", lambda: os.close(os.open("n/", os.O_CREAT | os.O_WRONLY, 0o644)))
show("unlink f/", lambda: os.unlink("f/"))
show("rename f/ g", lambda: os.rename("f/", "g"))
show("rename f g/", lambda: os.rename("f", "g/"))
show("rename d/ e/", lambda: os.rename("d/", "e/"))
show("mkdir m/", lambda: os.mkdir("m/"))
show("rmdir m/", lambda: os.rmdir("m/"))
show("access f/", lambda: os.access("f/", os.F_OK))
show("chmod f/", lambda: os.chmod("f/", 0o600))
show("truncate f/", lambda: os.truncate("f/", 0))
show("utime f/", lambda: os.utime("f/"))
show("link f g/", lambda: os.link("f", "g/"))
show("link f/ g", lambda: os.link("f/", "g"))
show("listdir e/", lambda: os.listdir("e/"))
show("entries", lambda: sorted(os.listdir(".")))
top = os.getcwd()
os.chdir("e/")
show("getcwd after chdir e/", lambda: os.path.relpath(os.getcwd(), top))
fd = os.open(top + "/e/", os.O_RDONLY)
os.chdir(top)
os.fchdir(fd)
show("getcwd after fchdir of e/", lambda: os.path.relpath(os.getcwd(), top))
