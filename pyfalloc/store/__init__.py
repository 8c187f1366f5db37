"""The metadata layer: tables (tables.py) shared by the processes of the machine through a
log in memory (shared.py), made durable in a checkpoint and a journal (journal.py) by the
engine (store.py); open files as locks (handles.py); and, at fork, what a child redoes (pyfalloc/forks.py)."""
from pyfalloc.store.handles import Handles
from pyfalloc.store.journal import journal_path, meta_path, volume_files
from pyfalloc.store.shared import shm_path
from pyfalloc.store.store import Store, interrupt_between_changes
from pyfalloc.store.tables import Tables

__all__ = ["Handles", "Store", "Tables", "interrupt_between_changes", "journal_path", "meta_path", "shm_path",
           "volume_files"]
