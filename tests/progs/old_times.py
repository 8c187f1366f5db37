"""lutimes, futimesat, futimes and remove (glibc runs them through utimensat, unlink and
rmdir from inside itself), printed so a host directory and the image compare.

    python old_times.py DIR
"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
class TV(ctypes.Structure): _fields_=[("s",ctypes.c_long),("us",ctypes.c_long)]
d=sys.argv[1]; p=(d+"/lt").encode()
open(p,"w").close()
tv=(TV*2)(TV(1000000000,5),TV(1200000000,7))
print("lutimes", libc.lutimes(p, tv), os.stat(p).st_mtime)
dfd=os.open(d, os.O_RDONLY|os.O_DIRECTORY)
tv2=(TV*2)(TV(1100000000,0),TV(1300000000,0))
print("futimesat", libc.futimesat(dfd, b"lt", tv2), os.stat(p).st_mtime)
print("futimes", libc.futimes(os.open(p, os.O_RDONLY), tv), os.stat(p).st_mtime)
os.mkdir(d + "/rmdir-me")
print("remove a file", libc.remove(p), os.path.exists(p))
print("remove a directory", libc.remove((d + "/rmdir-me").encode()), os.path.exists(d + "/rmdir-me"))
print("remove a missing name", libc.remove(p), ctypes.get_errno())
