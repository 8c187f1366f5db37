"""`pyfalloc run`: start an unmodified program with libpyfalloc preloaded, so paths under
the mount prefix are files of the image."""
import errno
import os
import shutil
import signal
import sys
import sysconfig

from pyfalloc.device.image import is_device_uri
from pyfalloc.errors import FsError
from pyfalloc.fs.paths import DEFAULT_MOUNT

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


def environment(image, mount=DEFAULT_MOUNT, base=None, meta=None):
    env = dict(os.environ if base is None else base)
    if meta is not None:
        env["PYFALLOC_META"] = os.path.abspath(meta)
    if is_device_uri(image):
        # the C half cannot read an export's superblock to name the runtime directory
        from pyfalloc.api.volume import Volume
        with Volume(image, meta=meta, readonly=True) as v:
            env["PYFALLOC_RUNTIME"] = v.fs.meta.runtime_dir()
    else:
        image = os.path.abspath(image)
    preload = [library()] + [p for p in env.get("LD_PRELOAD", "").split(":") if p]
    env.update({"LD_PRELOAD": ":".join(preload), "PYFALLOC_IMAGE": image,
                "PYFALLOC_MOUNT": mount, "PYFALLOC_PYTHONHOME": sys.base_prefix,
                "PYFALLOC_PYTHONPATH": os.pathsep.join(python_path())})
    return env


def python_path():
    """Where the embedded interpreter finds pyfalloc and what it imports: it starts without
    the site step (the shim asks for that: the base installation's .pth files cost tens of
    ms), so the directories that hold the package and its dependencies are named here."""
    import _cffi_backend
    dirs = [ROOT, sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"],
            os.path.dirname(_cffi_backend.__file__)]
    # of their .pth files only the directory lines count (the link to python3-libnbd): the
    # code lines (an editable install's finder) serve nothing there. Read here once, not
    # by every process the shim starts in.
    for p in list(dirs):
        for pth in sorted(n for n in (os.listdir(p) if os.path.isdir(p) else ()) if n.endswith(".pth")):
            with open(os.path.join(p, pth)) as f:
                for line in f:
                    d = os.path.join(p, line.strip())
                    if line.strip() and not line.startswith(("#", "import ", "import\t")) and os.path.isdir(d):
                        dirs.append(d)
    return list(dict.fromkeys(dirs))


def run(image, command, mount=DEFAULT_MOUNT, meta=None):
    if not command:
        raise FsError(22, "no command given (pyfalloc run IMAGE -- COMMAND ...)")
    env = environment(image, mount, meta=meta)
    # Python ignores SIGPIPE and SIGXFSZ, and exec keeps what is ignored: `cmd | head`
    # must end cmd as it would outside pyfalloc
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    try:
        os.execvpe(command[0], command, env)
    except FileNotFoundError:
        raise FsError(2, f"{command[0]}: command not found") from None
    except OSError as e:
        if e.errno != errno.ENOEXEC:
            raise
    # a file without a #! line or a binary format: execvp(3) hands it to the shell, and so
    # does this (env, xargs and shells behave the same)
    path = command[0] if "/" in command[0] else shutil.which(command[0], path=env.get("PATH"))
    os.execve("/bin/sh", ["/bin/sh", path] + list(command[1:]), env)
