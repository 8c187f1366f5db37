"""The device layer: the image file read and written at physical offsets (image.py),
through host files whose writes and syncs a recorder can see (hostio.py)."""
from pyfalloc.device.image import Device, check_geometry

__all__ = ["Device", "check_geometry"]
