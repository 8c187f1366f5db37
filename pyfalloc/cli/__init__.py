"""The `pyfalloc` command (main.py), its granule pictures (mapview.py) and progress bars
(progress.py)."""
