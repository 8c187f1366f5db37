"""The Python front: `Volume` for in-process use (volume.py), and os-style functions that
issue the new system calls on kernel descriptors (libc.py)."""
