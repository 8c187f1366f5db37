"""A device served over NBD (qemu-nbd, nbdkit, ...), through libnbd's Python binding:
reads, writes, flush, trim and write-zeroes are the protocol's own commands.

The interface is hostio.HostFile's (through remote.RemoteFile), so the image layer does not
care where its blocks are.
"""
import errno

from pyfalloc.device.remote import RemoteFile
from pyfalloc.errors import FsError
from pyfalloc.forks import forget_fork

ALLOCATION = "base:allocation"


def _binding():
    try:
        import nbd
    except ImportError:
        raise FsError(errno.EPROTONOSUPPORT, "an NBD device needs libnbd's Python binding "
                                             "(Debian: apt-get install python3-libnbd)") from None
    return nbd


def _os_error(e, what):
    code = getattr(e, "errno", None) or errno.EIO
    if isinstance(code, str):                   # libnbd names it ("ECONNREFUSED")
        code = getattr(errno, code, errno.EIO)
    return FsError(code, f"NBD {what}: {getattr(e, 'string', e)}")


class NbdFile(RemoteFile):
    """One connection to an export; a forked child opens its own."""

    kind = "nbd"

    def _connect(self):
        nbd = _binding()
        self.nbd = nbd
        self._errors = nbd.Error
        h = nbd.NBD()
        try:
            h.add_meta_context(ALLOCATION)
            h.connect_uri(self.path)
        except nbd.Error as e:
            raise _os_error(e, f"connecting to {self.path}") from None
        if not self.readonly and h.is_read_only():
            h.shutdown()
            raise FsError(errno.EROFS, f"{self.path} is exported read-only")
        self.h = h

    # ---- what the export offers ------------------------------------------------------------------
    def size(self):
        return self.h.get_size()

    def identity_key(self):
        return self.path

    def preferred_block_size(self):
        try:
            return max(512, self.h.get_block_size(self.nbd.SIZE_PREFERRED))
        except self.nbd.Error:
            return 4096

    def granule_hint(self, limit):
        """The preferred block size, or the unit allocated for the superblock's write
        (a qcow2 cluster, since qemu-nbd advertises no larger block size), if larger."""
        seen = self.allocation_unit(limit)
        unit = self.preferred_block_size()
        return max(unit, seen) if seen and seen < self.size() else unit

    def allocation_unit(self, limit):
        """The bytes the export allocated for the first write at offset 0 (a qcow2 cluster,
        a sparse file's block): the length of the first allocated run, when the device is
        otherwise empty. None when block status is not offered."""
        if not self.h.can_meta_context(ALLOCATION):
            return None
        runs = self.allocation_runs(0, min(limit, self.size()))
        if not runs or runs[0][0] != 0:
            return None
        return runs[0][1]

    def allocation_runs(self, start, length):
        """(offset, length) of the allocated runs in [start, start+length), by block status."""
        runs = []
        pos, end = start, start + length
        while pos < end:
            seen = []

            def note(context, offset, entries, err):
                if context == ALLOCATION:
                    seen.append((offset, entries))
                return 0
            try:
                self.h.block_status(min(end - pos, 1 << 30), pos, note)
            except self.nbd.Error as e:
                raise _os_error(e, "block status") from None
            if not seen:
                break
            offset, entries = seen[0]
            for i in range(0, len(entries), 2):
                n, flags = entries[i], entries[i + 1]
                if not flags & self.nbd.STATE_HOLE:
                    if runs and runs[-1][0] + runs[-1][1] == offset:
                        runs[-1] = (runs[-1][0], runs[-1][1] + n)
                    else:
                        runs.append((offset, n))
                offset += n
            if offset <= pos:
                break
            pos = offset
        return [(p, min(n, end - p)) for p, n in runs if p < end]

    def allocated_bytes(self):
        """What the export says it holds (base:allocation), or 0 when it cannot say."""
        if not self.h.can_meta_context(ALLOCATION):
            return 0
        return sum(n for _, n in self.allocation_runs(0, self.size()))

    # ---- I/O --------------------------------------------------------------------------------------
    def _error(self, e, what):
        return _os_error(e, what)

    def _read(self, length, pos):
        return self.h.pread(length, pos)

    def _write(self, data, pos):
        self.h.pwrite(data, pos)

    def punch(self, pos, length):
        """Make the range read as zeros, letting the export deallocate it (WRITE_ZEROES
        without NO_HOLE), or write zeros where it offers no such command."""
        if self.h.can_zero():
            self._io(f"write zeroes at {pos}", self.h.zero, length, pos)
            return
        zeros = bytes(min(length, 1 << 20))
        end = pos + length
        while pos < end:
            self.pwrite(zeros[:end - pos], pos)
            pos += min(len(zeros), end - pos)

    def discard(self, pos, length):
        """NBD_CMD_TRIM: the export may forget the range (the filesystem never reads free
        blocks); write-zeroes where trim is not offered."""
        if self.h.can_trim():
            self._io(f"trim at {pos}", self.h.trim, length, pos)
        else:
            self.punch(pos, length)

    def sync(self):
        if self.h.can_flush():
            self._io("flush", self.h.flush)

    def close(self):
        forget_fork(self)
        if self.h is not None:
            try:
                self.h.shutdown()
            except self.nbd.Error:
                pass
            self.h = None
