"""Build libpyfalloc.so: cffi in embedding mode, the interposer (shim/*.c) compiled beside it.

    python shim/build.py OUTDIR
"""
import glob
import os
import sys
import sysconfig

import cffi

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def build(outdir):
    ffi = cffi.FFI()
    with open(os.path.join(ROOT, "cdefs", "shim.h")) as f:
        ffi.embedding_api(f.read())
    with open(os.path.join(ROOT, "cdefs", "shim_c.h")) as f:
        ffi.cdef(f.read())
    libdir = sysconfig.get_config_var("LIBDIR")
    ffi.set_source("libpyfalloc", '#include "shim.h"\n#include "shim_c.h"',
                   sources=sorted(glob.glob(os.path.join(HERE, "*.c"))),
                   include_dirs=[os.path.join(ROOT, "cdefs"), HERE], libraries=["dl", "pthread"],
                   # the preloaded library finds libpython without LD_LIBRARY_PATH; its calls
                   # of its own functions stay its own (syscall() routes a number to the
                   # wrapper of the same name: a program's own renameat2 over syscall(), as
                   # gnulib builds into patch, would otherwise be called back without end)
                   extra_link_args=["-Wl,-Bsymbolic-functions"] + ([f"-Wl,-rpath,{libdir}"] if libdir else []))
    ffi.embedding_init_code("""
        # The interpreter started without its site step, with the package's directories
        # (and those their .pth files name: pyfalloc/shim/run.py) as its path.
        # No cyclic collection while the modules load: they make only what lives as long
        # as the process, which a collection would traverse for nothing (a millisecond).
        # pyfalloc.collector's decorator would import the package first, collector on.
        import gc
        collecting = gc.isenabled()
        gc.disable()
        try:
            from libpyfalloc import ffi, lib
            from pyfalloc.shim import serve
            serve.bind(ffi, lib)
        finally:
            if collecting:
                gc.enable()
    """)
    os.makedirs(outdir, exist_ok=True)
    return ffi.compile(tmpdir=outdir, target="libpyfalloc.so", verbose=False)


if __name__ == "__main__":
    print(build(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build")))
