/* Descriptors passed between processes over UNIX sockets (SCM_RIGHTS): a shadow that arrives
 * is adopted as an image file, as one inherited across exec is, instead of reading as the
 * empty file it stands for. */
#include "interpose.h"
#include <sys/socket.h>

REAL(ssize_t, recvmsg, int, struct msghdr *, int)
REAL(int, recvmmsg, int, struct mmsghdr *, unsigned int, int, struct timespec *)

static void adopt_rights(struct msghdr *msg)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        int *fds = (int *)CMSG_DATA(c);
        for (size_t i = 0; i < n; i++)
            adopt_received(fds[i]);
    }
}

ssize_t recvmsg(int sock, struct msghdr *msg, int flags)
{
    load_recvmsg();
    ssize_t r = real_recvmsg(sock, msg, flags);
    if (r >= 0 && msg && msg->msg_controllen && !in_py)
        adopt_rights(msg);
    return r;
}

int recvmmsg(int sock, struct mmsghdr *v, unsigned int n, int flags, struct timespec *timeout)
{
    load_recvmmsg();
    int r = real_recvmmsg(sock, v, n, flags, timeout);
    for (int i = 0; i < r && !in_py; i++)
        if (v[i].msg_hdr.msg_controllen)
            adopt_rights(&v[i].msg_hdr);
    return r;
}
