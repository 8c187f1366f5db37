"""A random create/write/truncate/fallocate/fallocate2/unlink/rename workload on one
directory of a volume, checked against a byte model of every file.

Run as a script it works on IMAGE DIR SEED STEPS (for the multi-process test)."""
import errno
import hashlib
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pyfalloc import FsError, Volume, uapi  # noqa: E402

BS = 4096
MODES = [0, 0x1, 0x3, 0x10, 0x11, 0x8, 0x20, 0x40, 0x80]


def apply_model(data, mode, off, length):
    end = off + length
    op = mode & ~uapi.FALLOC_FL_KEEP_SIZE
    keep = mode & uapi.FALLOC_FL_KEEP_SIZE
    if op in (0, 0x40):
        if not keep and end > len(data):
            data.extend(bytes(end - len(data)))
    elif op == 0x2:
        stop = min(end, len(data))
        if off < stop:
            data[off:stop] = bytes(stop - off)
    elif op in (0x10, 0x80):
        stop = min(end, len(data))
        if off < stop:
            data[off:stop] = bytes(stop - off)
        if not keep and end > len(data):
            data.extend(bytes(end - len(data)))
    elif op == 0x8:
        del data[off:end]
    elif op == 0x20:
        data[off:off] = bytes(length)


def run(vol, top, seed, steps, check_each=True):
    rng = random.Random(seed)
    model = {}
    fds = {}
    if top not in vol.listdir("/"):
        vol.mkdir("/" + top)

    def path(name):
        return f"/{top}/{name}"

    for step in range(steps):
        names = sorted(model)
        op = rng.choice(["create", "write", "write", "write", "truncate", "fallocate", "fallocate2",
                         "unlink", "rename", "reopen"])
        try:
            if op == "create" or not names:
                name = f"f{rng.randrange(1000)}"
                if name in model:
                    continue
                fds[name] = vol.open(path(name), os.O_RDWR | os.O_CREAT | os.O_EXCL)
                model[name] = bytearray()
                continue
            name = rng.choice(names)
            fd, data = fds[name], model[name]
            if op == "write":
                off = rng.randrange(0, len(data) + 3 * BS + 1)
                chunk = rng.randbytes(rng.choice([1, 100, BS, 3 * BS + 7, 40 * BS]))
                n = vol.pwrite(fd, chunk, off)
                if off > len(data):
                    data.extend(bytes(off - len(data)))
                data[off:off + n] = chunk[:n]
            elif op == "truncate":
                size = rng.randrange(0, len(data) + 2 * BS + 1)
                vol.ftruncate(fd, size)
                del data[size:]
                data.extend(bytes(size - len(data)))
            elif op in ("fallocate", "fallocate2"):
                mode = rng.choice(MODES) if op == "fallocate" else rng.choice([0, 1])
                aligned = mode in (0x8, 0x20)
                off = rng.randrange(0, len(data) + BS + 1)
                length = rng.randrange(1, 12 * BS)
                if aligned:
                    off, length = off // BS * BS, max(BS, length // BS * BS)
                if op == "fallocate2":
                    phys = rng.randrange(1, vol.fs.nblocks) * BS
                    vol.fallocate2(fd, mode, off, length, phys)
                else:
                    vol.fallocate(fd, mode, off, length)
                apply_model(data, mode, off, length)
            elif op == "unlink":
                vol.unlink(path(name))
                if rng.random() < 0.5:       # an unlinked file stays readable through its fd
                    assert vol.pread(fd, len(data), 0) == bytes(data)
                vol.close(fd)
                del model[name], fds[name]
            elif op == "rename":
                new = f"f{rng.randrange(1000)}"
                if new in model and new != name:
                    vol.close(fds.pop(new))
                    del model[new]
                vol.rename(path(name), path(new))
                model[new] = model.pop(name)
                fds[new] = fds.pop(name)
            elif op == "reopen":
                vol.close(fd)
                fds[name] = vol.open(path(name), os.O_RDWR)
        except FsError as e:
            if e.errno == errno.ENOSPC or e.errno == errno.EEXIST and op == "fallocate2":
                # allocation stopped part way (no space, or fallocate2 met a block mapped
                # elsewhere): ext4 keeps what was placed and moves the size with it
                size = vol.fstat(fds[name]).st_size
                data = model[name]
                data.extend(bytes(max(0, size - len(data))))
            elif e.errno == errno.EINVAL and op in ("fallocate", "fallocate2"):
                pass
            else:
                raise
        if check_each:
            for n2, d in model.items():
                got = vol.pread(fds[n2], len(d) + 1, 0)
                assert got == bytes(d), f"step {step} ({op}): {n2} differs from its model"
            problems = vol.fsck()
            assert problems == [], f"step {step} ({op}): {problems}"
    for name, fd in fds.items():
        assert vol.pread(fd, len(model[name]) + 1, 0) == bytes(model[name]), name
        vol.close(fd)
    return {name: bytes(d) for name, d in model.items()}


if __name__ == "__main__":
    image, top, seed, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    v = Volume(image)
    final = run(v, top, seed, steps, check_each=False)
    v.umount()
    print(json.dumps({name: hashlib.sha256(data).hexdigest() for name, data in final.items()}))
