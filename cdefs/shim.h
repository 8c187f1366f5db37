/* What the interposer (the C files in shim/) asks of the embedded Python side
 * (pyfalloc/shim/serve.py). Every call returns a value >= 1 on success (the result + 1) or
 * -errno on failure: cffi answers 0 when Python could not start, and 0 must never look
 * like fd 0 or "0 bytes". */
/* opens path as descriptor fd (a new file's mode has the umask applied); out receives the
 * inode (it names the shadow) and 1 when the inode's last close has nothing to do (no
 * preallocation to drop, not unlinked) */
long long pyf_open(const char *path, int flags, int mode, int umask, int fd, long long *out);
/* the shim let go of its last hold on ino, which had work left for its last close */
long long pyf_release(long long ino);
long long pyf_close(int fd);
/* the file position lives in the shadow descriptor: C passes it in and moves it after */
long long pyf_read(int fd, char *buf, long long n, long long off);
/* the extent of fd holding off, for reads in C (shim/fastread.c): out = epoch, tail, released,
 * size, lblk, len, pblk, unwritten, block size, inode, mtime (a double's bits), flags;
 * 1 when an extent holds off, else 0 */
long long pyf_extent(int fd, long long off, long long *out);
/* off < 0: append (O_APPEND) at the end, atomically; *end receives where the write ended */
long long pyf_write(int fd, const char *buf, long long n, long long off, long long *end);
/* the new position from the current one, pos */
long long pyf_lseek(int fd, long long off, int whence, long long pos);
/* fd < 0: by path (-1; -2 for a last symbolic link itself, as lstat) */
long long pyf_stat(int fd, const char *path, long long *out);
long long pyf_fallocate(int fd, int mode, long long off, long long len, unsigned long long physical);
/* fallocate3's struct checked and decoded into out: mode, offset, len, physical (any fd) */
long long pyf_decode_how(const char *how, long long size, long long *out);
long long pyf_fadvise(int fd, long long off, long long len, int advice);
long long pyf_ftruncate(int fd, const char *path, long long len);
long long pyf_fsync(int fd);                       /* fd < 0: sync, syncfs */
/* the process exits: its changes become durable */
long long pyf_exit(void);
long long pyf_ioctl(int fd, unsigned long request, char *arg, long long size);
long long pyf_unlink(const char *path, int rmdir);
long long pyf_mkdir(const char *path, int mode, int umask);
long long pyf_access(const char *path, int mode, int flags);
long long pyf_rename(const char *from, const char *to, unsigned int flags);
/* extended attributes: op 0 get, 1 set, 2 list, 3 remove; by path (fd -2: a last link itself),
 * or by fd when path is NULL */
long long pyf_xattr(int op, int fd, const char *path, const char *name, char *value, long long size, int flags);
/* linkat(2); fd >= 0: AT_EMPTY_PATH's descriptor (from is then empty) */
long long pyf_link(const char *from, const char *to, int flags, int fd);
long long pyf_dup(int oldfd, int newfd);
/* attr: mode, uid, gid, atime ns, mtime ns; -1 leaves one as it is (fd < 0: by path; -2: a
 * last symbolic link itself) */
long long pyf_setattr(int fd, const char *path, long long *attr);
/* mknod(2): a FIFO, socket, device node or regular file (mode with the umask applied) */
long long pyf_mknod(const char *path, int mode, long long dev, int umask);
/* symlink(2); readlink(2) into buf (the bytes put, at most size); realpath(3) into buf */
long long pyf_symlink(const char *target, const char *path);
long long pyf_readlink(const char *path, char *buf, long long size);
long long pyf_realpath(const char *path, char *buf, long long size);
/* the entries of a directory open as fd, "." and ".." first, each as "INO DTYPE NAME\0";
 * with size 0 (or too small) it answers the size needed */
long long pyf_listdir(int fd, char *buf, long long size);
/* bsize, blocks, bfree, bavail, files, ffree, namelen, the mount flags (ST_*) */
long long pyf_statfs(long long *out);
/* the path inside the image of the file open as fd (a directory adopted across exec) */
long long pyf_path(int fd, char *buf, long long size);
/* where names relative to fd are looked up: a directory's path now (ENOTDIR for a file) */
long long pyf_dir_path(int fd, char *buf, long long size);
/* a shadow of inode ino received as fd (SCM_RIGHTS): an image file of this process */
long long pyf_adopt(int fd, long long ino, int flags);
/* mmap(MAP_SHARED) of fd (writable: PROT_WRITE asked): a descriptor of the file's copy
 * (pyfalloc/fs/mapped.py) to map and then close, holding the lock that marks it mapped;
 * ino receives the inode */
long long pyf_map_shared(int fd, int writable, long long *ino);
/* a shared mapping of ino was unmapped, or msync'd (durable: MS_SYNC) */
long long pyf_unmapped(long long ino, int durable);
