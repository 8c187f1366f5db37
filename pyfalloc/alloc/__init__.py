"""The allocator layer: policies (policy.py) over the free-space map and preallocation
windows (freespace.py)."""
from pyfalloc.alloc.policy import Allocator, Policy

__all__ = ["Allocator", "Policy"]
