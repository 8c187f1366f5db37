"""The shim's Python half: serving the calls libpyfalloc.so interposes (serve.py), and
starting programs with it preloaded (run.py)."""
