"""Processes for the relocation tests: writers with a replayable model, a mover, a reader.

    movers.py writer IMAGE NAME SEED OPS LOG     # ops on /NAME; after each: fsync, log its number
    movers.py mover IMAGE SEED NAMES... [--no-lock] [--until FILE]
    movers.py reader IMAGE NAMES... [--until FILE]

Every writer op is positional and whole-block, so it can be replayed from the seed (the
model) and redone after a crash without changing its result.
"""
import contextlib
import errno
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pyfalloc import FsError, Volume  # noqa: E402
from pyfalloc.tools.relocate import relocate  # noqa: E402

B = 4096
START_BLOCKS = 24
MAX_BLOCKS = 64


def ops(seed):
    """The writer's endless op sequence: (kind, block, count, byte)."""
    rng = random.Random(seed)
    n = START_BLOCKS
    yield ("write", 0, n, 1)
    while True:
        r = rng.random()
        v = rng.randrange(1, 256)
        if r < 0.55:
            i = rng.randrange(n)
            yield ("write", i, rng.randint(1, min(8, n - i)), v)
        elif r < 0.8 and n < MAX_BLOCKS:
            k = rng.randint(1, 4)
            yield ("write", n, k, v)
            n += k
        elif n > 2:
            n = rng.randint(n // 2, n - 1)
            yield ("truncate", n, 0, 0)


def model(seed, count):
    """Block values after the first `count` ops."""
    blocks = []
    for _, (kind, i, k, v) in zip(range(count), ops(seed)):
        if kind == "write":
            blocks[i:i + k] = [v] * k
        else:
            del blocks[i:]
    return blocks


def logged(log):
    try:
        with open(log) as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def apply(vol, fd, op):
    kind, i, k, v = op
    if kind == "write":
        vol.pwrite(fd, bytes([v]) * (k * B), i * B)
    else:
        vol.ftruncate(fd, i * B)
    vol.fsync(fd)


def tables_as_left(image):
    """The metadata as the killed processes left it, before an opener frees anything."""
    from pyfalloc.device.image import Device
    from pyfalloc.store import Store, meta_path
    dev = Device.open(image)
    store = Store(meta_path(image), dev.uuid, dev.group_size // dev.block_size, dev)
    tables = store.t
    store.close()
    dev.close()
    return tables


def writer(image, name, seed, count, log):
    vol = Volume(image)
    fd = vol.open("/" + name, os.O_RDWR | os.O_CREAT)
    done = logged(log)
    with open(log, "a") as out:
        # op `done` may have been cut short by a crash: redo it (ops are idempotent), then go on
        for n, op in zip(range(count), ops(seed)):
            if n < done:
                continue
            apply(vol, fd, op)
            out.write(f"{n}\n")
            out.flush()
    vol.close(fd)
    vol.umount()


def _stop(until):
    return until is not None and os.path.exists(until)


def mover(image, seed, names, until, lock=True):
    rng = random.Random(seed)
    vol = Volume(image)
    if not lock:                # the mutation the concurrency test must catch
        vol.fs.locks.inode = vol.fs.locks.data = lambda *inos: contextlib.nullcontext()
    moves = 0
    while not _stop(until):
        name = rng.choice(names)
        try:
            fd = vol.open("/" + name, os.O_RDWR)
        except FsError:
            continue
        try:
            blocks = -(-vol.fstat(fd).st_size // B)
            if blocks == 0:
                continue
            first = rng.randrange(blocks)
            n = rng.randint(1, blocks - first)
            runs = [(p, ln) for p, ln in vol.free_extents() if ln >= n * B]
            if not runs:
                continue
            p, ln = rng.choice(runs)
            target = p + rng.randrange((ln - n * B) // B + 1) * B
            if relocate(vol, fd, first * B, n * B, target):
                moves += 1
        except FsError as e:
            # the writers change sizes and take free space under our feet: these are expected
            if e.errno not in (errno.ENOSPC, errno.EINVAL, errno.ENODATA):
                raise
        finally:
            vol.close(fd)
    print(moves)
    vol.umount()


def reader(image, names, until):
    """Every block a reader sees was written whole by one op: one byte value, never zero."""
    vol = Volume(image)
    reads = 0
    while not _stop(until):
        for name in names:
            try:
                data = vol.read_file("/" + name)
            except FsError:
                continue
            for off in range(0, len(data), B):
                blk = data[off:off + B]
                if blk.count(blk[0]) != len(blk) or blk[0] == 0:
                    print(f"/{name} block {off // B}: torn or zeroed read", file=sys.stderr)
                    sys.exit(3)
            reads += 1
    print(reads)
    vol.umount()


def main(argv):
    role, image = argv[0], argv[1]
    until = argv[argv.index("--until") + 1] if "--until" in argv else None
    rest = [a for i, a in enumerate(argv[2:], 2) if not a.startswith("--") and argv[i - 1] != "--until"]
    if role == "writer":
        writer(image, rest[0], int(rest[1]), int(rest[2]), rest[3])
    elif role == "mover":
        mover(image, int(rest[0]), rest[1:], until, lock="--no-lock" not in argv)
    else:
        reader(image, rest, until)


if __name__ == "__main__":
    main(sys.argv[1:])
