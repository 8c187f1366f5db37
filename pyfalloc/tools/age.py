"""Deterministic filesystem aging: create files with sizes from a published distribution,
delete at random, refill, for a number of churn rounds at a fill level.

The history is a list of ops, written out one per line so it can be replayed on any
directory (a real kernel filesystem, for comparison):
    mkdir DIR
    create PATH SIZE
    delete PATH
"""
import bisect
import errno
import math
import os
import random

from pyfalloc.errors import FsError
from pyfalloc.units import round_up

# Geriatrix's "agrawal" profile: file sizes from Agrawal et al., "A Five-Year Study of
# File-System Metadata" (FAST '07), as (bucket size in bytes, weight).
AGRAWAL = [(8, 1), (32, 7), (128, 16), (512, 40), (2048, 50), (8192, 46), (32768, 35),
           (131072, 20), (524288, 10), (2097152, 4), (8388608, 1)]
# Impressions (Agrawal et al., FAST '09): ln(bytes) ~ N(9.48, 2.46) for the body, with a
# Pareto tail (alpha 0.91) above 512 MiB for a small share of files.
IMPRESSIONS_MU, IMPRESSIONS_SIGMA = 9.48, 2.46
PARETO_ALPHA, PARETO_FROM, PARETO_SHARE = 0.91, 512 << 20, 0.001
DIRS = 16


def size_sampler(profile, rng, cap):
    if profile == "agrawal":
        total = sum(w for _, w in AGRAWAL)
        cum = []
        acc = 0
        for _, w in AGRAWAL:
            acc += w
            cum.append(acc)

        def draw():
            size = AGRAWAL[bisect.bisect_right(cum, rng.randrange(total))][0]
            # spread inside the bucket (buckets are a factor 4 apart): log-uniform over [s/2, 2s)
            return max(1, int(size * 2 ** rng.uniform(-1, 1)))
    elif profile == "impressions":
        def draw():
            if rng.random() < PARETO_SHARE:
                return int(PARETO_FROM * rng.paretovariate(PARETO_ALPHA))
            return max(1, int(math.exp(rng.gauss(IMPRESSIONS_MU, IMPRESSIONS_SIGMA))))
    else:
        raise FsError(errno.EINVAL, f"unknown profile {profile!r} (agrawal or impressions)")
    return lambda: min(draw(), cap)


def history(capacity, bs, seed=1, profile="agrawal", fill=0.8, churn=4, churn_share=0.25, used=0):
    """The op list for a device of `capacity` bytes with `bs`-byte blocks, `used` of them
    already taken (the history fills the rest up to `fill`)."""
    if not 0 < fill < 1:
        raise FsError(errno.EINVAL, "fill must be between 0 and 1")
    rng = random.Random(seed)
    draw = size_sampler(profile, rng, cap=capacity // 64)
    target = int(capacity * fill) - used
    if target <= 0:
        raise FsError(errno.ENOSPC, f"the volume is already {used / capacity:.0%} full, above --fill {fill}")
    ops = [("mkdir", f"d{i}") for i in range(DIRS)]
    live = {}                               # path -> size
    names = []                              # live paths, for O(1) random deletion
    used = 0
    serial = 0

    def on_disk(size):
        return round_up(size, bs)

    def refill():
        nonlocal used, serial
        while True:
            size = draw()
            if used + on_disk(size) > target:
                return
            path = f"d{rng.randrange(DIRS)}/s{seed}f{serial}"
            serial += 1
            ops.append(("create", path, size))
            live[path] = size
            names.append(path)
            used += on_disk(size)

    refill()
    for _ in range(churn):
        goal = used * (1 - churn_share)
        while used > goal and names:
            i = rng.randrange(len(names))
            names[i], names[-1] = names[-1], names[i]
            path = names.pop()
            used -= on_disk(live.pop(path))
            ops.append(("delete", path))
        refill()
    return ops


def content(path, size):
    """What aging writes into a file: its name repeated, so any byte can be checked."""
    unit = (path + "\n").encode()
    return (unit * (size // len(unit) + 1))[:size]


def write_log(ops, path):
    with open(path, "w") as f:
        for op in ops:
            f.write(" ".join(map(str, op)) + "\n")


def read_log(path):
    ops = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "mkdir" and len(parts) == 2 or parts[0] == "delete" and len(parts) == 2:
                ops.append((parts[0], parts[1]))
            elif parts[0] == "create" and len(parts) == 3 and parts[2].isdigit():
                ops.append(("create", parts[1], int(parts[2])))
            else:
                raise FsError(errno.EINVAL, f"{path}:{n}: not an aging op: {line.strip()!r}")
    return ops


def apply_volume(vol, ops, progress=None):
    """Replay ops on a pyfalloc volume; returns (files created, files deleted, bytes written)."""
    created = deleted = written = 0
    for op in ops:
        if op[0] == "mkdir":
            try:
                vol.mkdir("/" + op[1])
            except FsError as e:        # a second history on the same volume shares the dirs
                if e.errno != errno.EEXIST:
                    raise
        elif op[0] == "create":
            data = content(op[1], op[2])
            vol.write_file("/" + op[1], data)
            created += 1
            written += len(data)
        else:
            vol.unlink("/" + op[1])
            deleted += 1
        if progress:
            progress()
    return created, deleted, written


def apply_directory(root, ops):
    """Replay ops on a host directory (e.g. a mounted ext4), with the same contents."""
    for op in ops:
        path = os.path.join(root, op[1])
        if op[0] == "mkdir":
            os.makedirs(path, exist_ok=True)
        elif op[0] == "create":
            with open(path, "wb") as f:
                f.write(content(op[1], op[2]))
        else:
            os.unlink(path)
