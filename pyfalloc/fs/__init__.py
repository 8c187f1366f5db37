"""The filesystem layer: files and directories (filesystem.py) over extent maps
(extents.py), per-inode locks (locks.py), relocation (move.py), who owns the physical
space (spacemap.py) and the consistency check (fsck.py)."""
from pyfalloc.fs.filesystem import FileSystem

__all__ = ["FileSystem"]
