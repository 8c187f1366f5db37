/* fallocate2(2) as proposed (Kirill Tkhai, 2020): fallocate with a physical placement hint.
 * physical == FALLOCATE2_NO_HINT places as fallocate(2) does; otherwise logical block L of
 * the range lands on block physical/bs + (L - offset/bs), or the call fails (ENOSPC busy,
 * EINVAL outside the device or unaligned, EEXIST mapped elsewhere, EPERM without CAP_FOWNER,
 * EOPNOTSUPP with a mode other than 0 or FALLOC_FL_KEEP_SIZE). */
#ifndef PYFALLOC_FALLOCATE2_H
#define PYFALLOC_FALLOCATE2_H
#include <stdint.h>
#include <sys/types.h>

#define SYS_fallocate2 486
#define FALLOCATE2_NO_HINT ((uint64_t)-1)

/* Exported by libpyfalloc.so; on a plain kernel use syscall(SYS_fallocate2, ...). */
int fallocate2(int fd, int mode, off_t offset, off_t len, uint64_t physical);

#endif
