/* What the Python half (pyfalloc/shim/serve.py) asks of the C half: descriptors the shim
 * opened without Python (shim/openfast.c). */
/* a descriptor Python was never told of: its flags (-1: none such) and *ino its inode;
 * the shim keeps its hold on the inode until pyf_unhold */
int pyf_claim(int fd, long long *ino);
void pyf_unhold(long long ino);
/* the program's RLIMIT_FSIZE soft limit (-1: none), for the checks the kernel makes: the
 * process's own limit is lifted while Python writes the volume's files (shim/fsize.c) */
long long pyf_fsize_limit(void);
/* the program's call earned a SIGXFSZ: sent to the calling thread as the call returns */
void pyf_xfsz(void);
/* the program's limit lifted while Python writes the volume's files outside a served call
 * (a Python program's finalization), and put back */
void pyf_fsize_lift(void);
void pyf_fsize_restore(void);
/* a look-up that a symbolic link took out of the image goes on at this host path: the call
 * that answers EXDEV next is made by the host (shim/fdtable.c, left_image) */
void pyf_leaves_image(const char *host);
/* the gates of the Python half's mapping of the shared log (pyfalloc/store/gates.py): take
 * (0 or an errno; a dead holder's mutex made consistent), give, and make `slots` of them */
int pyf_gate_take(unsigned long long at);
void pyf_gate_give(unsigned long long at);
int pyf_gates_init(unsigned long long at, int slots);
/* the calling thread's effective and permitted capability sets (capget(2)); -1 if it fails */
int pyf_capget(unsigned long long *sets);
