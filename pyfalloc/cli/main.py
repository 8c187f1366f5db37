"""The `pyfalloc` command: image first, in the spirit of mtools and debugfs."""
import argparse
import errno
import json
import os
import stat as st
import sys
import time

from pyfalloc import uapi
from pyfalloc.api.volume import Volume
from pyfalloc.cli import mapview
from pyfalloc.cli.progress import progress
from pyfalloc.errors import FsError, errno_name
from pyfalloc.tools import age
from pyfalloc.tools.compact import STRATEGIES, Compactor
from pyfalloc.tools.relocate import relocate
from pyfalloc.units import format_size, parse_size


def _size(text):
    try:
        return parse_size(text)
    except FsError as e:
        raise argparse.ArgumentTypeError(e.detail) from None


def _json(obj):
    print(json.dumps(obj, indent=2))


def _type(mode):
    if st.S_ISDIR(mode):
        return "dir"
    if st.S_ISREG(mode):
        return "file"
    return "other"


# ---- commands --------------------------------------------------------------------------------
def cmd_mkfs(a):
    with Volume.mkfs(a.image, a.size, a.block_size, a.granule, a.group_size, force=a.force) as v:
        print(f"{a.image}: {format_size(v.size)} in {v.fs.nblocks} blocks of {v.block_size}, "
              f"granule {format_size(v.granule)}, {v.fs.ngroups} groups of {format_size(a.group_size)}")


def _walk(v, path, recursive):
    for name in sorted(v.listdir(path)):
        child = path.rstrip("/") + "/" + name
        s = v.stat(child)
        yield child, s
        if recursive and st.S_ISDIR(s.st_mode):
            yield from _walk(v, child, True)


def cmd_ls(a):
    with Volume(a.image) as v:
        s = v.stat(a.path)
        entries = list(_walk(v, a.path, a.recursive)) if st.S_ISDIR(s.st_mode) else [(a.path, s)]
        if a.json:
            return _json([{"path": p, "type": _type(x.st_mode), "size": x.st_size, "ino": x.st_ino,
                           "blocks": x.st_blocks} for p, x in entries])
        for p, x in entries:
            name = p if a.recursive or not st.S_ISDIR(s.st_mode) else os.path.basename(p)
            if a.long:
                when = time.strftime("%Y-%m-%d %H:%M", time.localtime(x.st_mtime))
                print(f"{st.filemode(x.st_mode)} {x.st_nlink:3d} {x.st_uid:5d} {x.st_gid:5d} "
                      f"{x.st_size:12d} {when} {name}")
            else:
                print(name + ("/" if st.S_ISDIR(x.st_mode) else ""))


def cmd_mkdir(a):
    with Volume(a.image) as v:
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
    with Volume(a.image) as v:
        if not v.fs.split(a.path):         # as rm's --preserve-root: nothing is removed
            raise FsError(errno.EBUSY, "refusing to remove the root directory")
        _remove(v, a.path, a.recursive)


def cmd_put(a):
    src = sys.stdin.buffer if a.local == "-" else open(a.local, "rb")
    with src, Volume(a.image) as v:
        fd = v.open(a.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        pos = 0
        while chunk := src.read(1 << 20):
            pos += v.pwrite(fd, chunk, pos)
        v.close(fd)


def cmd_cat(a):
    with Volume(a.image) as v:
        fd = v.open(a.path)
        pos = 0
        while chunk := v.pread(fd, 1 << 20, pos):
            sys.stdout.buffer.write(chunk)
            pos += len(chunk)
        v.close(fd)
        sys.stdout.buffer.flush()


def cmd_stat(a):
    with Volume(a.image) as v:
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
    with Volume(a.image) as v:
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
    with Volume(a.image) as v:
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


def cmd_move(a):
    with Volume(a.image) as v:
        fd = v.open(a.path, os.O_RDWR)
        try:
            t0 = time.monotonic()
            moved = relocate(v, fd, a.offset, a.length, a.physical)
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
    with Volume(a.image) as v:
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
    with Volume(a.image) as v:
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
          + ("" if a.dry_run else f" of {r['files_moved']} files in {r['seconds']:.1f} s"))
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
    Volume(a.image).umount()            # refuse a bad image here, with the usual message
    run(a.image, a.command, a.mount)


def _owner_name(rec):
    if not rec.flags & uapi.FMR_OF_SPECIAL_OWNER:
        return f"inode {rec.owner}"
    return {uapi.FMR_OWN_FREE: "free space", uapi.FMR_OWN_FS: "superblock",
            uapi.PYFALLOC_FMR_OWN_PREALLOC: "preallocation"}.get(rec.owner, hex(rec.owner))


def cmd_fsmap(a):
    with Volume(a.image) as v:
        if a.free:
            runs = v.free_extents()
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
    with Volume(a.image) as v:
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
    with Volume(a.image) as v:
        r = v.trim(a.offset, a.length, a.minimum)
        if a.json:
            return _json(r)
        print(f"{a.image}: {format_size(r['trimmed_bytes'])} ({r['trimmed_bytes']} bytes) trimmed in "
              f"{r['granules']} granules, host released {r['released_bytes']} bytes")


def cmd_fsck(a):
    with Volume(a.image) as v:
        problems = v.fsck()
    if a.json:
        _json({"clean": not problems, "problems": problems})
    else:
        for p in problems:
            print(p)
        print(f"{a.image}: {'clean' if not problems else f'{len(problems)} problems'}")
    return 1 if problems else 0


# ---- parser -----------------------------------------------------------------------------------
def build_parser():
    p = argparse.ArgumentParser(prog="pyfalloc", description="fallocate2 prototype on an image file")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    def cmd(name, func, help_):
        c = sub.add_parser(name, help=help_)
        c.add_argument("image", metavar="IMAGE")
        c.set_defaults(func=func)
        return c

    c = cmd("mkfs", cmd_mkfs, "create a sparse image with an empty filesystem")
    c.add_argument("--size", type=_size, required=True)
    c.add_argument("--block-size", type=_size, default=4096)
    c.add_argument("--granule", type=_size, default=1 << 20, help="discard granule of the device")
    c.add_argument("--group-size", type=_size, default=128 << 20)
    c.add_argument("-F", "--force", action="store_true", help="overwrite an existing image")
    c = cmd("ls", cmd_ls, "list a directory")
    c.add_argument("path", nargs="?", default="/")
    c.add_argument("-l", dest="long", action="store_true")
    c.add_argument("-R", dest="recursive", action="store_true")
    c.add_argument("--json", action="store_true")
    c = cmd("mkdir", cmd_mkdir, "make a directory")
    c.add_argument("path")
    c.add_argument("-p", "--parents", action="store_true")
    c = cmd("rm", cmd_rm, "remove a file (or a tree with -r)")
    c.add_argument("path")
    c.add_argument("-r", "--recursive", action="store_true")
    c = cmd("put", cmd_put, "copy a host file (or - for stdin) into the image")
    c.add_argument("local")
    c.add_argument("path")
    c = cmd("cat", cmd_cat, "write a file of the image to stdout")
    c.add_argument("path")
    c = cmd("stat", cmd_stat, "show an inode")
    c.add_argument("path")
    c.add_argument("--json", action="store_true")
    c = cmd("fallocate", cmd_fallocate, "fallocate(2) / fallocate2 on a file, flags as util-linux fallocate(1)")
    c.add_argument("path")
    c.add_argument("-l", "--length", type=_size, required=True)
    c.add_argument("-o", "--offset", type=_size, default=0)
    c.add_argument("--physical", type=_size, help="fallocate2 placement: byte offset on the device")
    c.add_argument("-n", "--keep-size", action="store_true")
    c.add_argument("-p", "--punch-hole", action="store_true", help="implies --keep-size")
    c.add_argument("-z", "--zero-range", action="store_true")
    c.add_argument("-c", "--collapse-range", action="store_true")
    c.add_argument("-i", "--insert-range", action="store_true")
    c.add_argument("-w", "--write-zeroes", action="store_true")
    c.add_argument("--unshare-range", action="store_true")
    c.add_argument("-x", "--posix", action="store_true", help="posix_fallocate(3)")
    c = cmd("fiemap", cmd_fiemap, "show a file's extents (as filefrag -v)")
    c.add_argument("path")
    c.add_argument("--json", action="store_true")
    c = cmd("move", cmd_move, "relocate a file's range to a physical place (donor + MOVE_EXT)")
    c.add_argument("path")
    c.add_argument("--physical", type=_size, required=True, help="device byte offset the range moves to")
    c.add_argument("-o", "--offset", type=_size, default=0, help="file offset (block aligned)")
    c.add_argument("-l", "--length", type=_size, default=None, help="bytes to move (default: to the end)")
    c.add_argument("--trim", action="store_true", help="then discard the granules the move freed")
    c.add_argument("--json", action="store_true")
    c = cmd("age", cmd_age, "age the filesystem: create and delete files from a published size profile")
    c.add_argument("--seed", type=int, default=1)
    c.add_argument("--profile", choices=("agrawal", "impressions"), default="agrawal")
    c.add_argument("--fill", type=float, default=0.8, help="fraction of the device kept full (default 0.8)")
    c.add_argument("--churn", type=int, default=4, help="rounds of deleting a quarter and refilling")
    c.add_argument("--replay-log", metavar="FILE", help="replay this op log instead of generating one")
    c.add_argument("--write-log", metavar="FILE", help="write the op log (replayable on any directory)")
    c.add_argument("--json", action="store_true")
    c = cmd("defrag", cmd_defrag, "free whole discard granules by packing data into holes, then discard")
    c.add_argument("--strategy", choices=STRATEGIES, default="exact")
    c.add_argument("--dry-run", action="store_true", help="plan and report, move nothing")
    c.add_argument("--budget", type=_size, default=None, help="move at most this many bytes")
    c.add_argument("--min-age", type=float, default=0.0, metavar="SECONDS",
                   help="leave files modified within this many seconds")
    c.add_argument("--png", metavar="FILE", help="granule occupancy before and after")
    c.add_argument("--json", action="store_true")
    c = cmd("run", cmd_run, "run a program with the image under --mount (LD_PRELOAD shim): "
                            "pyfalloc run IMAGE [--mount PREFIX] -- COMMAND [ARGS...]")
    c.usage = "pyfalloc run IMAGE [--mount PREFIX] -- COMMAND [ARGS...]"
    c.description = ("COMMAND runs with libpyfalloc preloaded: paths under PREFIX are files of IMAGE, for it "
                     "and for every program it starts; fallocate(2), syscall 486 (fallocate2), FIEMAP, "
                     "GETFSMAP and EXT4_IOC_MOVE_EXT on them reach the image's allocator.")
    c.add_argument("--mount", default="/pyfalloc", metavar="PREFIX", help="path prefix the image appears under "
                   "(default /pyfalloc)")
    c.set_defaults(command=[])          # main() hands it everything after "--"
    c = cmd("fsmap", cmd_fsmap, "show who owns the physical space (GETFSMAP)")
    c.add_argument("--free", action="store_true", help="free extents only")
    c.add_argument("--json", action="store_true")
    c = cmd("map", cmd_map, "discard-granule occupancy")
    c.add_argument("--png", metavar="FILE")
    c.add_argument("--json", action="store_true")
    c = cmd("trim", cmd_trim, "discard wholly free granules (as fstrim)")
    c.add_argument("-m", "--minimum", type=_size, default=0, help="minimum free extent length")
    c.add_argument("-o", "--offset", type=_size, default=0)
    c.add_argument("-l", "--length", type=_size, default=None)
    c.add_argument("--json", action="store_true")
    c = cmd("fsck", cmd_fsck, "check every invariant; exit 1 when not clean")
    c.add_argument("--json", action="store_true")
    return p


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    command = []
    if argv[:1] == ["run"] and "--" in argv:
        # argparse mangles "--" inside a subcommand; the program's own options follow it
        cut = argv.index("--")
        argv, command = argv[:cut], argv[cut + 1:]
    args = build_parser().parse_args(argv)
    if args.cmd == "run":
        args.command = command
    try:
        return args.func(args) or 0
    except BrokenPipeError:                 # `pyfalloc cat ... | head` is not an error
        return 0
    except FsError as e:
        print(f"pyfalloc: {args.cmd}: {e.strerror} ({errno_name(e.errno)})", file=sys.stderr)
        if e.detail:
            print(f"pyfalloc: {args.cmd}: {e.detail}", file=sys.stderr)
        return 1
    except OSError as e:
        name = f" ({errno_name(e.errno)})" if e.errno else ""
        where = f": {e.filename}" if e.filename else ""
        print(f"pyfalloc: {args.cmd}: {e.strerror or e}{name}{where}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
