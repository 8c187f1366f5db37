"""A descriptor passed over a UNIX socket (SCM_RIGHTS) reads the file it names, position
included.

    python pass_fd.py DIR
"""
import os, socket, sys
d = sys.argv[1]
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
with open(d + "/passed", "w") as f:
    f.write("through the socket\n")
pid = os.fork()
if pid == 0:
    fd = os.open(d + "/passed", os.O_RDONLY)
    socket.send_fds(a, [b"x"], [fd])
    os._exit(0)
os.waitpid(pid, 0)
msg, fds, _, _ = socket.recv_fds(b, 1, 1)
print(os.pread(fds[0], 100, 0).decode(), end="")
os.lseek(fds[0], 8, 0)
print(os.read(fds[0], 100).decode(), end="")
