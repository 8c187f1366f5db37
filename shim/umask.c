/* The process's file mode creation mask, which the kernel applies to the mode of every file
 * it creates: the shim applies it to new image files. Asking the kernel costs a read of
 * /proc/self/status (umask(2) cannot read without writing, and a write would race with the
 * program's other threads creating host files), so the mask is read once and then followed
 * through umask() and syscall(SYS_umask). */
#include "interpose.h"

REAL(mode_t, umask, mode_t)

static int known = -1;              /* the mask, or -1 before it was read */

static int from_status(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    char line[256];
    int mask = 022;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "Umask:", 6)) {
            mask = (int)strtol(line + 6, NULL, 8);
            break;
        }
    if (f)
        fclose(f);
    return mask;
}

mode_t process_umask(void)
{
    if (known < 0)
        known = from_status();
    return (mode_t)known;
}

mode_t umask(mode_t mask)
{
    load_umask();
    mode_t old = real_umask(mask);
    if (own_process())              /* a vfork child shares this memory, not its mask */
        known = (int)(mask & 0777);
    return old;
}
