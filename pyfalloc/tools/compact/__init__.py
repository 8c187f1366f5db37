"""The thin-provisioning compactor: free whole discard granules by moving the live bytes of
the cheapest ones into holes of granules that stay, then discard.

It sees the volume only as a tool sees a kernel filesystem: GETFSMAP for who owns each
byte, the directory tree and stat for names and ages, FIEMAP to re-check a placement; it
acts only through fallocate2, EXT4_IOC_MOVE_EXT and FITRIM. Three strategies:

  exact     the proposal: per granule one donor, fallocate2'd exactly into the holes, then MOVE_EXT
  donor     one large donor fallocated without a hint, whole files moved into it
  keepsize  KEEP_SIZE blocks at the end of the file before a hole, used as the donor
"""
from pyfalloc.tools.compact.plan import HolePool, cheapest_costs, lower_bound, plan_exact
from pyfalloc.tools.compact.strategies import STRATEGIES, Compactor
from pyfalloc.tools.compact.survey import Granule, PathIndex, Snapshot, fsmap_all, occupancy, snapshot, walk

__all__ = ["STRATEGIES", "Compactor", "Granule", "HolePool", "PathIndex", "Snapshot", "cheapest_costs",
           "fsmap_all", "lower_bound", "occupancy", "plan_exact", "snapshot", "walk"]
