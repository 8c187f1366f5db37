"""The metadata layer: tables (tables.py) shared by the processes of the machine through a
log in memory (shared.py), made durable in a checkpoint and a journal (journal.py) by the
engine (store.py); open files as locks (handles.py); host file I/O with a recorder hook
(hostio.py)."""
from .handles import Handles
from .journal import journal_path, meta_path, volume_files
from .shared import shm_path
from .store import Store
from .tables import Tables

__all__ = ["Handles", "Store", "Tables", "journal_path", "meta_path", "shm_path", "volume_files"]
