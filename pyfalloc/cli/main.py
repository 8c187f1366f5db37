"""The `pyfalloc` command: image first, in the spirit of mtools and debugfs."""
import argparse
import contextlib
import errno
import json
import os
import re
import signal
import stat as st
import sys
import threading
import time
from importlib import metadata

from pyfalloc import uapi
from pyfalloc.api.volume import Volume
from pyfalloc.cli import copy, mapview
from pyfalloc.cli.progress import progress
from pyfalloc.errors import FsError, errno_name
from pyfalloc.fs import paths
from pyfalloc.store import interrupt_between_changes
from pyfalloc.tools import age
from pyfalloc.tools.compact import STRATEGIES, Compactor
from pyfalloc.tools.relocate import relocate
from pyfalloc.units import format_size, parse_size


LOFF_MAX = (1 << 63) - 1


def _size(text):
    try:
        value = parse_size(text)
    except FsError as e:
        raise argparse.ArgumentTypeError(e.detail) from None
    if value > LOFF_MAX:
        raise argparse.ArgumentTypeError(f"{text!r} is past the largest offset (2^63 - 1)")
    return value


def _number(parse, ok, what):
    """An argparse type: parse(text), refused unless ok(value), named as what it must be."""
    def convert(text):
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value
    return convert


_fraction = _number(float, lambda v: 0 < v <= 1, "a number in (0, 1]")
_count = _number(lambda t: int(t, 0), lambda v: v >= 0, "an integer, 0 or more")
_seconds = _number(float, lambda v: 0 <= v < float("inf"), "a number of seconds, 0 or more")


def _physical(text):
    return "auto" if text == "auto" else _size(text)


def _json(obj):
    print(json.dumps(obj, indent=2))


def _type(mode):
    if st.S_ISDIR(mode):
        return "dir"
    if st.S_ISREG(mode):
        return "file"
    return "other"


# ---- commands --------------------------------------------------------------------------------
def _volume(a):
    """The volume a command names: IMAGE, with its --meta."""
    return Volume(a.image, meta=a.meta)


def cmd_mkfs(a):
    if a.size is not None and a.size <= 0:
        raise FsError(errno.EINVAL, "--size must be positive")
    with Volume.mkfs(a.image, a.size, a.block_size, a.granule, a.group_size, force=a.force, meta=a.meta) as v:
        print(f"{a.image}: {format_size(v.size)} in {v.fs.nblocks} blocks of {v.block_size}, "
              f"granule {format_size(v.granule)}, {v.fs.ngroups} groups of {format_size(a.group_size)}; "
              f"metadata {v.meta}")


def _walk(v, path, recursive):
    for name in sorted(v.listdir(path)):
        child = path.rstrip("/") + "/" + name
        s = v.stat(child)
        yield child, s
        if recursive and st.S_ISDIR(s.st_mode):
            yield from _walk(v, child, True)


def cmd_ls(a):
    with _volume(a) as v:
        s = v.stat(a.path)
        entries = list(_walk(v, a.path, a.recursive)) if st.S_ISDIR(s.st_mode) else [(a.path, s)]
        if a.json:
            return _json([{"path": p, "type": _type(x.st_mode), "size": x.st_size, "ino": x.st_ino,
                           "blocks": x.st_blocks} for p, x in entries])
        for p, x in entries:
            name = paths.printable(p if a.recursive or not st.S_ISDIR(s.st_mode) else os.path.basename(p))
            if a.long:
                when = time.strftime("%Y-%m-%d %H:%M", time.localtime(x.st_mtime))
                print(f"{st.filemode(x.st_mode)} {x.st_nlink:3d} {x.st_uid:5d} {x.st_gid:5d} "
                      f"{x.st_size:12d} {when} {name}")
            else:
                print(name + ("/" if st.S_ISDIR(x.st_mode) else ""))


def cmd_mkdir(a):
    with _volume(a) as v:
        if a.parents:
            path = ""
            for part in v.fs.split(a.path):
                path += "/" + part
                try:
                    v.mkdir(path)
                except FsError as e:
                    if e.errno != errno.EEXIST or not st.S_ISDIR(v.stat(path).st_mode):
                        raise
        else:
            v.mkdir(a.path)


def _remove(v, path, recursive):
    if st.S_ISDIR(v.stat(path).st_mode):
        if not recursive:
            raise FsError(errno.EISDIR, f"{path} is a directory (use -r)")
        for name in v.listdir(path):
            _remove(v, path.rstrip("/") + "/" + name, True)
        v.rmdir(path)
    else:
        v.unlink(path)


def cmd_rm(a):
    p = paths.parse(a.path)
    if p.kind in (paths.DOT, paths.DOTDOT):             # as rm(1), before touching anything
        raise FsError(errno.EINVAL, f"refusing to remove '.' or '..' directory: skipping {paths.printable(a.path)}")
    with _volume(a) as v:
        if p.kind == paths.ROOT or v.fs.resolve(a.path) == v.fs.resolve("/"):   # --preserve-root
            raise FsError(errno.EBUSY, "refusing to remove the root directory")
        _remove(v, a.path, a.recursive)


def cmd_put(a):
    with _volume(a) as v:
        copy.put(v, a.local, a.path, a.recursive, a.preserve)


def cmd_get(a):
    with _volume(a) as v:
        copy.get(v, a.path, a.local, a.recursive, a.preserve)


def cmd_cat(a):
    with _volume(a) as v:
        fd = v.open(a.path)
        pos = 0
        while chunk := v.pread(fd, 1 << 20, pos):
            sys.stdout.buffer.write(chunk)
            pos += len(chunk)
        v.close(fd)
        sys.stdout.buffer.flush()


def cmd_stat(a):
    with _volume(a) as v:
        s = v.stat(a.path)
        info = {"path": a.path, "type": _type(s.st_mode), "ino": s.st_ino, "mode": oct(st.S_IMODE(s.st_mode)),
                "size": s.st_size, "blocks": s.st_blocks, "blksize": s.st_blksize, "nlink": s.st_nlink,
                "uid": s.st_uid, "gid": s.st_gid, "atime": s.st_atime, "mtime": s.st_mtime, "ctime": s.st_ctime}
        if a.json:
            return _json(info)
        print(f"  File: {a.path}\n  Size: {s.st_size:<12d} Blocks: {s.st_blocks:<8d} IO Block: {s.st_blksize}  "
              f"{info['type']}\n Inode: {s.st_ino:<12d} Links: {s.st_nlink}\nAccess: ({info['mode']}/"
              f"{st.filemode(s.st_mode)})  Uid: {s.st_uid}  Gid: {s.st_gid}")
        for label, t in (("Access", s.st_atime), ("Modify", s.st_mtime), ("Change", s.st_ctime)):
            print(f"{label}: {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(t))}")


def cmd_fallocate(a):
    picked = [f for f in ("punch_hole", "zero_range", "collapse_range", "insert_range", "write_zeroes",
                          "unshare_range", "posix") if getattr(a, f)]
    if len(picked) > 1:
        raise FsError(errno.EINVAL, "only one of " + ", ".join("--" + p.replace("_", "-") for p in picked))
    mode = {"punch_hole": uapi.FALLOC_FL_PUNCH_HOLE | uapi.FALLOC_FL_KEEP_SIZE,
            "zero_range": uapi.FALLOC_FL_ZERO_RANGE, "collapse_range": uapi.FALLOC_FL_COLLAPSE_RANGE,
            "insert_range": uapi.FALLOC_FL_INSERT_RANGE, "write_zeroes": uapi.FALLOC_FL_WRITE_ZEROES,
            "unshare_range": uapi.FALLOC_FL_UNSHARE_RANGE, "posix": 0}.get(picked[0] if picked else "", 0)
    if a.keep_size:
        mode |= uapi.FALLOC_FL_KEEP_SIZE
    if a.posix and (a.keep_size or a.physical is not None):
        raise FsError(errno.EINVAL, "--posix takes no other mode and no --physical")
    with _volume(a) as v:
        fd = v.open(a.path, os.O_RDWR | os.O_CREAT)
        try:
            if a.posix:
                err = v.posix_fallocate(fd, a.offset, a.length)
                if err:
                    raise FsError(err)
            else:
                v.fallocate2(fd, mode, a.offset, a.length, uapi.NO_HINT if a.physical is None else a.physical)
        finally:
            v.close(fd)


def _flag_names(flags):
    return [name for bit, name in sorted(uapi.FIEMAP_FLAG_NAMES.items()) if flags & bit]


def cmd_fiemap(a):
    with _volume(a) as v:
        ext = v.fiemap_path(a.path)
        if a.json:
            return _json({"extents": _extents_json(ext)})
        _print_extents(a.path, ext, v.block_size)


def _print_extents(path, ext, bs):
    print(f"File {path}, blocksize {bs}, {len(ext)} extent{'s' if len(ext) != 1 else ''}")
    print(" ext:     logical_offset:        physical_offset: length:   flags:")
    for i, e in enumerate(ext):
        lo, po, n = e.logical // bs, e.physical // bs, e.length // bs
        print(f"{i:4d}: {lo:10d}..{lo + n - 1:10d}: {po:10d}..{po + n - 1:10d}: {n:6d}:   "
              + ",".join(_flag_names(e.flags)))


def _extents_json(ext):
    return [{"logical": e.logical, "physical": e.physical, "length": e.length, "flags": _flag_names(e.flags)}
            for e in ext]


def _nearest_free(v, fd, offset, length):
    """The free range nearest the range's present place that holds it whole."""
    ext = [e for e in v.fiemap(fd) if e.logical + e.length > offset]
    need = (length if length is not None else v.fstat(fd).st_size - offset)
    need = -(-max(need, 0) // v.block_size) * v.block_size
    if not ext or need <= 0:
        raise FsError(errno.EINVAL, "nothing mapped to move in that range")
    here = ext[0].physical + max(0, offset - ext[0].logical)
    fits = [p for p, n in v.free_extents() if n >= need]
    if not fits:
        raise FsError(errno.ENOSPC, f"no free range of {format_size(need)} on the device")
    return min(fits, key=lambda p: abs(p - here))


def cmd_move(a):
    with _volume(a) as v:
        fd = v.open(a.path, os.O_RDWR)
        try:
            if a.physical == "auto":
                a.physical = _nearest_free(v, fd, a.offset, a.length)
            t0 = time.monotonic()
            span = (a.length if a.length is not None else v.fstat(fd).st_size - a.offset)
            with progress(span, "move", not a.json and span >= 64 << 20) as advance:
                moved = relocate(v, fd, a.offset, a.length, a.physical, advance)
            seconds = time.monotonic() - t0
            ext = v.fiemap(fd)
        finally:
            v.close(fd)
        trimmed = v.trim() if a.trim else None
    if a.json:
        out = {"path": a.path, "physical": a.physical, "offset": a.offset, "moved_bytes": moved,
               "seconds": round(seconds, 6), "extents": _extents_json(ext)}
        if trimmed is not None:
            out["trim"] = trimmed
        return _json(out)
    print(f"{a.path}: moved {format_size(moved)} ({moved} bytes) to physical {a.physical} in {seconds:.3f} s")
    _print_extents(a.path, ext, v.block_size)
    if trimmed is not None:
        print(f"trimmed {trimmed['granules']} granules, host released {trimmed['released_bytes']} bytes")


def cmd_age(a):
    with _volume(a) as v:
        if a.replay_log:
            ops = age.read_log(a.replay_log)
        else:
            sf = v.statfs()
            ops = age.history(v.size, v.block_size, seed=a.seed, profile=a.profile, fill=a.fill, churn=a.churn,
                              used=(sf["f_blocks"] - sf["f_bfree"]) * sf["f_bsize"])
        if a.write_log:
            age.write_log(ops, a.write_log)
        t0 = time.monotonic()
        with progress(len(ops), "aging", not a.json) as advance:
            created, deleted, written = age.apply_volume(v, ops, advance)
        summary = v.granules()
    out = {"ops": len(ops), "files_created": created, "files_deleted": deleted, "bytes_written": written,
           "files": created - deleted, "seconds": round(time.monotonic() - t0, 3),
           "granules": summary["granules"], "granules_free": summary["free"],
           "granules_partial": summary["partial"], "granules_full": summary["full"]}
    if a.json:
        return _json(out)
    print(f"{a.image}: {len(ops)} ops, {created} files created, {deleted} deleted, "
          f"{format_size(written)} written in {out['seconds']:.1f} s")
    print(f"{summary['granules']} granules: {summary['free']} free, {summary['partial']} partly used, "
          f"{summary['full']} full")


def cmd_defrag(a):
    with _volume(a) as v:
        c = Compactor(v, a.strategy, budget=a.budget, min_age=a.min_age, progress=not a.json)
        r = c.run(dry_run=a.dry_run)
        before, after = r.pop("_used_before"), r.pop("_used_after")
        if a.png:
            g, total = v.granule, v.size
            mapview.png(a.png, [mapview.summarize(before, g, total), mapview.summarize(after, g, total)],
                        [f"{a.image} before", f"after defrag --strategy {a.strategy}"])
    if a.json:
        return _json(r)
    b = r["bound"]
    verb = "would move" if a.dry_run else "moved"
    bytes_ = r["planned_bytes"] if a.dry_run else r["bytes_moved"]
    print(f"{a.image}: strategy {a.strategy}: {verb} {format_size(bytes_)} ({bytes_} bytes)"
          + ("" if a.dry_run else f" of {r['files_moved']} files in {r['seconds']:.1f} s ("
                                  + ", ".join(f"{k} {v:.1f}" for k, v in r["phases"].items()) + ")"))
    if a.dry_run:
        print(f"plan: free {r['planned_granules']} granules of {format_size(r['granule'])}")
    else:
        print(f"granules wholly free: {r['granules_free_before']} -> {r['granules_free_after']} "
              f"({r['granules_freed']:+d}); host released {format_size(r['released_bytes'])}")
    print(f"bound: at most {b['k_max']} granules can be freed, moving at least {format_size(b['bytes_for_k_max'])}"
          + ("" if a.dry_run else f"; freeing {r['granules_freed']} needs at least {format_size(b['bytes_for_freed'])}"))
    for why, n in r["unplaced_bytes"].items():
        print(f"not placed: {format_size(n)}: {why}")
    skipped = {k: n for k, n in r["skipped_files"].items() if n}
    if skipped:
        print("files left alone: " + ", ".join(f"{n} {k}" for k, n in skipped.items()))


def cmd_run(a):
    from pyfalloc.shim.run import run
    _volume(a).umount()            # refuse a bad image here, with the usual message
    run(a.image, a.command, a.mount, a.meta)


def cmd_unlock(a):
    """Break a claim another host left on a shared device (that host must be gone)."""
    hosts = Volume.unlock(a.image)
    print(f"{a.image}: " + (f"claim of host {', '.join(hosts)} broken" if hosts else "no host holds it"))


def _owner_name(rec):
    if not rec.flags & uapi.FMR_OF_SPECIAL_OWNER:
        return f"inode {rec.owner}"
    return {uapi.FMR_OWN_FREE: "free space", uapi.FMR_OWN_FS: "superblock",
            uapi.PYFALLOC_FMR_OWN_PREALLOC: "preallocation"}.get(rec.owner, hex(rec.owner))


def cmd_fsmap(a):
    with _volume(a) as v:
        if a.free:
            runs = [(p, n) for p, n in v.free_extents() if n >= a.min]
            if a.json:
                return _json({"free": [{"physical": p, "length": n} for p, n in runs]})
            for p, n in runs:
                print(f"{p:16d} {n:16d}")
            return
        recs = v.getfsmap()
        if a.json:
            return _json({"records": [{"physical": r.physical, "length": r.length, "owner": _owner_name(r),
                                       "offset": r.offset, "unwritten": bool(r.flags & uapi.FMR_OF_PREALLOC)}
                                      for r in recs]})
        print(" EXT: PHYSICAL BYTES                       OWNER             FILE OFFSET")
        for i, r in enumerate(recs):
            off = f"{r.offset}..{r.offset + r.length - 1}" if not r.flags & uapi.FMR_OF_SPECIAL_OWNER else ""
            print(f"{i:4d}: {r.physical:>14d}..{r.physical + r.length - 1:<14d} {_owner_name(r):<17s} {off}")


def cmd_map(a):
    with _volume(a) as v:
        summary = v.granules()
        if a.png:
            mapview.png(a.png, [summary], [a.image])
        if a.json:
            return _json({"granule_size": summary["granule"], "granules": summary["granules"],
                          "free": summary["free"], "partial": summary["partial"], "full": summary["full"],
                          "used_bytes": summary["used_bytes"]})
        print(mapview.terminal(summary))
        print(f"{summary['granules']} granules of {format_size(summary['granule'])}: {summary['free']} free, "
              f"{summary['partial']} partly used, {summary['full']} full")


def cmd_trim(a):
    with _volume(a) as v:
        r = v.trim(a.offset, a.length, a.minimum)
        if a.json:
            return _json(r)
        print(f"{a.image}: {format_size(r['trimmed_bytes'])} ({r['trimmed_bytes']} bytes) trimmed in "
              f"{r['granules']} granules, host released {r['released_bytes']} bytes")


def cmd_fsck(a):
    with _volume(a) as v:
        problems = v.fsck()
    if a.json:
        _json({"clean": not problems, "problems": problems})
    else:
        for p in problems:
            print(p)
        print(f"{a.image}: {'clean' if not problems else f'{len(problems)} problems'}")
    return 1 if problems else 0


# ---- parser -----------------------------------------------------------------------------------
class _UsageError(Exception):
    def __init__(self, cmd, message):
        super().__init__(message)
        self.cmd = cmd


class _Parser(argparse.ArgumentParser):
    """argparse that reports in the tool's format, and takes "-1G" as a value (to refuse
    it by name) rather than as an unknown option."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self._negative_number_matcher = re.compile(r"^-\d")

    def error(self, message):
        cmd = self.prog.split()[1] if len(self.prog.split()) > 1 else ""
        raise _UsageError(cmd, f"{message} (see {self.prog} --help)")


def _version():
    try:
        return metadata.version("pyfalloc")
    except metadata.PackageNotFoundError:
        return "unknown"


def build_parser():
    p = _Parser(prog="pyfalloc", description="A filesystem in a sparse image file whose allocator honours "
                "fallocate2's physical placement hint, and the tools built on it.")
    p.add_argument("--version", action="version", version=f"pyfalloc {_version()}")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND", parser_class=_Parser)
    json_help = "print the result as JSON (sizes in bytes)"

    def cmd(name, func, help_):
        c = sub.add_parser(name, help=help_, description=help_)
        c.add_argument("image", metavar="IMAGE", help="the image file, an NBD export (nbd://HOST[:PORT]/EXPORT, "
                       "nbd+unix:///EXPORT?socket=PATH) or a Ceph RBD image (rbd:POOL/IMAGE[:conf=PATH][:id=NAME])")
        c.add_argument("--ceph-conf", metavar="PATH", help="for rbd: the cluster's ceph.conf (default: CEPH_CONF, "
                       "then /etc/ceph/ceph.conf)")
        c.add_argument("--id", metavar="NAME", help="for rbd: the Ceph client id (default: admin)")
        c.add_argument("--meta", metavar="PATH", help="the metadata file (default IMAGE.meta beside an image "
                       "file; required for an NBD export or an RBD image)")
        c.set_defaults(func=func)
        return c

    c = cmd("mkfs", cmd_mkfs, "create a sparse image with an empty filesystem")
    c.add_argument("--size", type=_size, help="device size (K/M/G/T suffixes); for an export, default all of it")
    c.add_argument("--block-size", type=_size, default=4096, help="filesystem block size (default 4K)")
    c.add_argument("--granule", type=_size, default=None,
                   help="discard granule of the device (default: 1M for an image file; for an export, its "
                        "preferred block size or allocation unit, e.g. the qcow2 cluster)")
    c.add_argument("--group-size", type=_size, default=128 << 20, help="block group size (default 128M)")
    c.add_argument("-F", "--force", action="store_true", help="overwrite an existing image")
    c = cmd("ls", cmd_ls, "list a directory")
    c.add_argument("path", nargs="?", default="/", help="directory or file in the image (default /)")
    c.add_argument("-l", dest="long", action="store_true", help="long listing: mode, links, owner, size, time")
    c.add_argument("-R", dest="recursive", action="store_true", help="list subdirectories too")
    c.add_argument("--json", action="store_true", help=json_help)
    c = cmd("mkdir", cmd_mkdir, "make a directory")
    c.add_argument("path", help="directory to make")
    c.add_argument("-p", "--parents", action="store_true", help="make parents as needed; no error if it exists")
    c = cmd("rm", cmd_rm, "remove a file (or a tree with -r)")
    c.add_argument("path", help="file or directory to remove")
    c.add_argument("-r", "--recursive", action="store_true", help="remove a directory and what it holds")
    c = cmd("put", cmd_put, "copy a host file or tree (or - for stdin) into the image, as cp(1)")
    c.add_argument("local", help="host file, directory (with -r) or - for stdin")
    c.add_argument("path", help="image path; an existing directory receives LOCAL under its own name")
    c.add_argument("-r", "--recursive", action="store_true", help="copy directories recursively")
    c.add_argument("-p", "--preserve", action="store_true", help="keep mode and times (and owner, for root)")
    c = cmd("get", cmd_get, "copy a file or tree of the image to the host (or - for stdout), as cp(1)")
    c.add_argument("path", help="image file, or directory with -r")
    c.add_argument("local", help="host path; an existing directory receives PATH under its own name")
    c.add_argument("-r", "--recursive", action="store_true", help="copy directories recursively")
    c.add_argument("-p", "--preserve", action="store_true", help="keep mode and times (and owner, for root)")
    c = cmd("cat", cmd_cat, "write a file of the image to stdout")
    c.add_argument("path", help="file in the image")
    c = cmd("stat", cmd_stat, "show an inode")
    c.add_argument("path", help="file or directory in the image")
    c.add_argument("--json", action="store_true", help=json_help)
    c = cmd("fallocate", cmd_fallocate, "fallocate(2) / fallocate2 on a file, flags as util-linux fallocate(1)")
    c.add_argument("path", help="file in the image (created if missing)")
    c.add_argument("-l", "--length", type=_size, required=True, help="length of the range in bytes")
    c.add_argument("-o", "--offset", type=_size, default=0, help="file offset of the range (default 0)")
    c.add_argument("--physical", type=_size, help="fallocate2 placement: byte offset on the device")
    c.add_argument("-n", "--keep-size", action="store_true", help="do not change the file size")
    c.add_argument("-p", "--punch-hole", action="store_true", help="deallocate the range (implies --keep-size)")
    c.add_argument("-z", "--zero-range", action="store_true", help="make the range read as zeros, allocated")
    c.add_argument("-c", "--collapse-range", action="store_true", help="remove the range, shifting the rest down")
    c.add_argument("-i", "--insert-range", action="store_true", help="insert a hole, shifting the rest up")
    c.add_argument("-w", "--write-zeroes", action="store_true", help="write zeros into the range (written blocks)")
    c.add_argument("--unshare-range", action="store_true", help="unshare shared blocks (none are shared here)")
    c.add_argument("-x", "--posix", action="store_true", help="posix_fallocate(3)")
    c = cmd("fiemap", cmd_fiemap, "show a file's extents (as filefrag -v)")
    c.add_argument("path", help="file in the image")
    c.add_argument("--json", action="store_true", help=json_help)
    c = cmd("move", cmd_move, "relocate a file's range to a physical place (donor + MOVE_EXT)")
    c.add_argument("path", help="file in the image")
    c.add_argument("--physical", type=_physical, required=True,
                   help="device byte offset the range moves to, or auto: the free range nearest its "
                        "present place that holds it")
    c.add_argument("-o", "--offset", type=_size, default=0, help="file offset (block aligned)")
    c.add_argument("-l", "--length", type=_size, default=None, help="bytes to move (default: to the end)")
    c.add_argument("--trim", action="store_true", help="then discard the granules the move freed")
    c.add_argument("--json", action="store_true", help=json_help)
    c = cmd("age", cmd_age, "age the filesystem: create and delete files from a published size profile")
    c.add_argument("--seed", type=_count, default=1, help="random seed (default 1)")
    c.add_argument("--profile", choices=("agrawal", "impressions"), default="agrawal",
                   help="file size distribution (default agrawal)")
    c.add_argument("--fill", type=_fraction, default=0.8, help="fraction of the device kept full (default 0.8)")
    c.add_argument("--churn", type=_count, default=4, help="rounds of deleting a quarter and refilling (default 4)")
    c.add_argument("--replay-log", metavar="FILE", help="replay this op log instead of generating one")
    c.add_argument("--write-log", metavar="FILE", help="write the op log (replayable on any directory)")
    c.add_argument("--json", action="store_true", help=json_help)
    c = cmd("defrag", cmd_defrag, "free whole discard granules by packing data into holes, then discard")
    c.add_argument("--strategy", choices=STRATEGIES, default="exact",
                   help="exact: the fewest bytes for the most granules; donor and keepsize: simpler plans")
    c.add_argument("--dry-run", action="store_true", help="plan and report, move nothing")
    c.add_argument("--budget", type=_size, default=None, help="move at most this many bytes")
    c.add_argument("--min-age", type=_seconds, default=0.0, metavar="SECONDS",
                   help="leave files modified within this many seconds")
    c.add_argument("--png", metavar="FILE", help="granule occupancy before and after")
    c.add_argument("--json", action="store_true", help=json_help)
    c = cmd("run", cmd_run, "run a program with the image under --mount (LD_PRELOAD shim): "
                            "pyfalloc run IMAGE [--mount PREFIX] -- COMMAND [ARGS...]")
    c.usage = "pyfalloc run IMAGE [--mount PREFIX] -- COMMAND [ARGS...]"
    c.description = ("COMMAND runs with libpyfalloc preloaded: paths under PREFIX are files of IMAGE, for it "
                     "and for every program it starts; fallocate(2), syscall 486 (fallocate2), FIEMAP, "
                     "GETFSMAP and EXT4_IOC_MOVE_EXT on them reach the image's allocator.")
    c.add_argument("--mount", default=paths.DEFAULT_MOUNT, metavar="PREFIX", help="path prefix the image appears "
                   f"under, made absolute (default {paths.DEFAULT_MOUNT})")
    c.set_defaults(command=[])          # main() hands it everything after "--"
    c = cmd("fsmap", cmd_fsmap, "show who owns the physical space (GETFSMAP)")
    c.add_argument("--free", action="store_true", help="free extents only")
    c.add_argument("--min", type=_size, default=0, metavar="LEN", help="with --free: only extents of LEN or more")
    c.add_argument("--json", action="store_true", help=json_help)
    c = cmd("map", cmd_map, "discard-granule occupancy")
    c.add_argument("--png", metavar="FILE", help="write the map as a PNG picture")
    c.add_argument("--json", action="store_true", help=json_help)
    c = cmd("trim", cmd_trim, "discard wholly free granules (as fstrim)")
    c.add_argument("-m", "--minimum", type=_size, default=0, help="minimum free extent length")
    c.add_argument("-o", "--offset", type=_size, default=0, help="device offset to start at")
    c.add_argument("-l", "--length", type=_size, default=None, help="bytes of the device to look at")
    c.add_argument("--json", action="store_true", help=json_help)
    c = cmd("unlock", cmd_unlock, "break the claim a gone host left on a shared device")
    c = cmd("fsck", cmd_fsck, "check every invariant; exit 1 when not clean")
    c.add_argument("--json", action="store_true", help=json_help)
    return p


def main(argv=None):
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, interrupt_between_changes)
    argv = list(sys.argv[1:] if argv is None else argv)
    command = []
    if argv[:1] == ["run"] and "--" in argv:
        # argparse mangles "--" inside a subcommand; the program's own options follow it
        cut = argv.index("--")
        argv, command = argv[:cut], argv[cut + 1:]
    try:
        args = build_parser().parse_args(argv)
    except _UsageError as e:
        return fail(e.cmd, errno.EINVAL, str(e))
    # the Ceph options travel as the environment, to the shim's programs too
    if getattr(args, "ceph_conf", None):
        os.environ["CEPH_CONF"] = os.path.abspath(args.ceph_conf)
    if getattr(args, "id", None):
        os.environ["PYFALLOC_CEPH_ID"] = args.id
    if args.cmd == "run":
        args.command = command
        args.mount = os.path.abspath(args.mount)       # the shim matches absolute paths
    try:
        return args.func(args) or 0
    except BrokenPipeError:                 # `pyfalloc cat ... | head` is not an error
        _quiet_stdout()
        return 0
    except FsError as e:
        return fail(args.cmd, e.errno, e.detail)
    except OSError as e:
        where = e.filename if e.filename else ""
        return fail(args.cmd, e.errno or errno.EIO, f"{where}: {e.strerror}" if where else "")
    except KeyboardInterrupt:
        return fail(args.cmd, errno.EINTR, "interrupted: the changes made before stay, the one under way "
                                            "was undone; the volume is consistent")
    except (MemoryError, RecursionError) as e:
        return fail(args.cmd, errno.ENOMEM, type(e).__name__)
    except Exception as e:                  # a bug: said plainly, the traceback only on request
        if os.environ.get("PYFALLOC_DEBUG"):
            raise
        return fail(args.cmd, errno.EIO, f"internal error {type(e).__name__}: {e} (PYFALLOC_DEBUG=1 shows where)")


def fail(cmd, code, detail=""):
    """The one error format: `pyfalloc: CMD: strerror (ERRNO)`, a second line saying why; exit 1."""
    lead = f"pyfalloc: {cmd}: " if cmd else "pyfalloc: "
    print(f"{lead}{os.strerror(code)} ({errno_name(code)})", file=sys.stderr)
    if detail:
        print(f"{lead}{paths.printable(detail) if isinstance(detail, str) else detail}".replace("\\ ", " "),
              file=sys.stderr)
    return 1


def _quiet_stdout():
    """The reader went away: let interpreter shutdown not flush into the closed pipe."""
    with contextlib.suppress(OSError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
