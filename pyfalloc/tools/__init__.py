"""Tools built only on the public ABI (fallocate2, MOVE_EXT, GETFSMAP, FIEMAP): aging a
volume (age.py), relocating a file (relocate.py), and the thin-provisioning compactor
(compact.py)."""
