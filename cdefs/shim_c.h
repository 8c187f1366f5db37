/* What the Python half (pyfalloc/shim/serve.py) asks of the C half: descriptors the shim
 * opened without Python (shim/openfast.c). */
/* a descriptor Python was never told of: its flags (-1: none such) and *ino its inode;
 * the shim keeps its hold on the inode until pyf_unhold */
int pyf_claim(int fd, long long *ino);
void pyf_unhold(long long ino);
