"""Programs stored in the directory, run by every way of starting one, printed so a run in a
host directory and a run on the image can be compared line by line: an ELF binary, scripts
("#!" with an argument, a script as another's interpreter, no "#!" at all), a PATH search,
fexecve, and the refusals (no execute bit, a directory, a missing interpreter), each by an
exec in a forked child: a child of vfork (subprocess, dash) starts an image program through
a shell, so its failures show as the shell's exit status, not as the errno.

    python exec_image.py DIR
"""
import ctypes
import errno
import os
import shutil
import subprocess
import sys

import oracle
from oracle import show, workdir

top = workdir(sys.argv[1], "ex")
shutil.copy("/bin/echo", "echo2")
os.chmod("echo2", 0o755)


def script(name, text, mode=0o755):
    with open(name, "w") as f:
        f.write(text)
    os.chmod(name, mode)


script("s.sh", "#!/bin/sh -eu\necho \"script $0 $*\"\n")
script("inner", "#!/bin/sh\necho \"inner $*\"\n")
script("outer", f"#!{top}/inner -x\nbody\n")
script("bare", "echo \"bare $0\"\n")
script("noexec.sh", "#!/bin/sh\necho no\n", 0o644)
script("missing", "#!/nonexistent/interp\n")
script("c0", "#!/bin/sh\necho \"end of the chain $*\"\n")
for i in range(1, 7):                   # each the interpreter of the next
    script(f"c{i}", f"#!{top}/c{i - 1}\n")
os.mkdir("bin")
shutil.copy("echo2", "bin/echo3")


def out(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    return r.returncode, r.stdout.replace(top, "TOP"), r.stderr.replace(top, "TOP")[:60]


def spawn(path, args):
    pid = os.posix_spawn(path, args, os.environ)
    return os.waitpid(pid, 0)[1] >> 8


def forked(fn):
    """fn() in a forked child (a process of its own, not vfork's); its exit status, or the
    name of the errno its exec failed with"""
    pid = os.fork()
    if pid == 0:
        try:
            fn()
        except OSError as e:
            os._exit(200 + e.errno)
        finally:
            os._exit(99)
    status = os.waitpid(pid, 0)[1] >> 8
    return errno.errorcode[status - 200] if status > 200 else status


def refused(path):
    return forked(lambda: os.execv(path, [path]))


show("ELF by subprocess", lambda: out(["./echo2", "elf", "args"]))
show("ELF by absolute path", lambda: out([f"{top}/echo2", "abs"]))
show("ELF by posix_spawn", lambda: spawn("./echo2", ["echo2", "spawned"]))
show("ELF by execv after fork", lambda: forked(lambda: os.execv("./echo2", ["x", "forked"])))
show("fexecve", lambda: forked(lambda: os.execve(os.open("echo2", os.O_RDONLY), ["y", "by fd"], os.environ)))
show("script with an argument", lambda: out(["./s.sh", "a", "b"]))
show("script by a shell", lambda: out(["sh", "-c", "./s.sh c"]))
show("script as interpreter", lambda: out(["./outer", "o"]))
show("no #!", lambda: refused("./bare"))
show("no #! by a shell", lambda: out(["sh", "-c", "./bare"]))
show("no execute bit", lambda: refused("./noexec.sh"))
show("no execute bit by a shell", lambda: out(["sh", "-c", "./noexec.sh"])[0])
show("a directory", lambda: refused("./bin"))
show("missing interpreter", lambda: refused("./missing"))
show("PATH search", lambda: out(["echo3", "found"], env=dict(os.environ, PATH=f"/nonexistent:{top}/bin")))
show("PATH search by a shell", lambda: out(["sh", "-c", "echo3 sh"], env=dict(os.environ, PATH=f"{top}/bin:/bin")))


def spawnp(name, args):
    """posix_spawnp searches the caller's PATH"""
    saved = os.environ["PATH"]
    os.environ["PATH"] = f"/nonexistent:{top}/bin"
    try:
        return os.waitpid(os.posix_spawnp(name, args, os.environ), 0)[1] >> 8
    finally:
        os.environ["PATH"] = saved


show("PATH search by spawnp", lambda: spawnp("echo3", ["e", "by spawnp"]))
show("PATH search by spawnp, missing", lambda: spawnp("echo4", ["e"]))
show("missing program", lambda: refused("./nothing"))
show("five scripts deep", lambda: out(["./c4"]))
show("six scripts deep", lambda: refused("./c5"))


def by_system(cmd):
    """libc's system(), whose shell glibc starts by an exec no interposed call sees; the
    shell writes into the working directory, which the caller reads back"""
    status = oracle.libc.system(f"{{ {cmd}; }} > sys.out 2>&1".encode())
    with open("sys.out") as f:
        return status >> 8, f.read().replace(top, "TOP")


def by_popen(cmd):
    """libc's popen() (not Python's, which is subprocess): the first line of its output"""
    libc = oracle.libc
    libc.popen.restype = libc.fgets.restype = ctypes.c_void_p
    libc.popen.argtypes, libc.pclose.argtypes = [ctypes.c_char_p, ctypes.c_char_p], [ctypes.c_void_p]
    libc.fgets.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p]
    fp = libc.popen(cmd.encode(), b"r")
    buf = ctypes.create_string_buffer(4096)
    line = buf.value.decode().replace(top, "TOP") if libc.fgets(buf, len(buf), fp) else None
    return line, libc.pclose(fp) >> 8


show("system() in the working directory", lambda: by_system("pwd; ls -d bin; ./echo2 by system"))
show("popen() in the working directory", lambda: by_popen("pwd"))
show("popen() runs an image program", lambda: by_popen("./echo2 by popen"))
