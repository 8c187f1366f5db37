"""`pyfalloc run`: start an unmodified program with libpyfalloc preloaded, so paths under
the mount prefix are files of the image."""
import os
import signal
import sys
import sysconfig

from pyfalloc.errors import FsError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))   # the checkout


def library():
    """The built shim: PYFALLOC_SHIM, else the one `pip install` put beside this module,
    else the checkout's build/ (make builds it there), built there when missing."""
    installed = os.path.join(os.path.dirname(os.path.abspath(__file__)), "libpyfalloc.so")
    path = os.environ.get("PYFALLOC_SHIM") or (installed if os.path.exists(installed) else
                                               os.path.join(ROOT, "build", "libpyfalloc.so"))
    if not os.path.exists(path):
        sys.path.insert(0, os.path.join(ROOT, "shim"))
        try:
            import build as shim_build
            path = shim_build.build(os.path.dirname(path))
        except Exception as e:
            raise FsError(2, f"libpyfalloc.so is missing and could not be built: {e}") from None
    return os.path.abspath(path)


def environment(image, mount="/pyfalloc", base=None):
    env = dict(os.environ if base is None else base)
    preload = [library()] + [p for p in env.get("LD_PRELOAD", "").split(":") if p]
    env.update({"LD_PRELOAD": ":".join(preload), "PYFALLOC_IMAGE": os.path.abspath(image),
                "PYFALLOC_MOUNT": mount, "PYFALLOC_PYTHONHOME": sys.base_prefix,
                "PYFALLOC_PYTHONPATH": os.pathsep.join([ROOT, sysconfig.get_paths()["purelib"]])})
    return env


def run(image, command, mount="/pyfalloc"):
    if not command:
        raise FsError(22, "no command given (pyfalloc run IMAGE -- COMMAND ...)")
    env = environment(image, mount)
    # Python ignores SIGPIPE and SIGXFSZ, and exec keeps what is ignored: `cmd | head`
    # must end cmd as it would outside pyfalloc
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    try:
        os.execvpe(command[0], command, env)
    except FileNotFoundError:
        raise FsError(2, f"{command[0]}: command not found") from None
