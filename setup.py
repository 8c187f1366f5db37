"""`pip install .` builds the LD_PRELOAD shim (shim/build.py, cffi embedding mode) and ships
it inside the package, so `pyfalloc run` works without the checkout."""
import os
import shutil
import sys
import tempfile

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


class BuildWithShim(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return                      # an editable install uses the checkout's build/ (make)
        sys.path.insert(0, os.path.join(HERE, "shim"))
        import build as shim_build
        with tempfile.TemporaryDirectory() as tmp:
            built = shim_build.build(tmp)
            shutil.copy(built, os.path.join(self.build_lib, "pyfalloc", "shim", "libpyfalloc.so"))


setup(cmdclass={"build_py": BuildWithShim})
