/* capget(2) for the Python half: the capability sets a permission check needs at that
 * instant. Through ctypes it cost a served process about 9 ms (the import) at its first
 * access(). */
#include "interpose.h"

struct cap_header { unsigned int version; int pid; };
struct cap_data { unsigned int effective, permitted, inheritable; };
extern int capget(struct cap_header *header, struct cap_data *data);

int pyf_capget(unsigned long long *sets)
{
    struct cap_header h = { 0x20080522, 0 };    /* _LINUX_CAPABILITY_VERSION_3 */
    struct cap_data d[2];
    if (capget(&h, d) < 0)
        return -1;
    sets[0] = d[0].effective | (unsigned long long)d[1].effective << 32;
    sets[1] = d[0].permitted | (unsigned long long)d[1].permitted << 32;
    return 0;
}
