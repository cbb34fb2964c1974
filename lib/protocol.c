// SPDX-License-Identifier: MIT
/* Packets and fd passing over the daemon's SOCK_SEQPACKET socket. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "protocol.h"

const char *cg__op_name(unsigned op)
{
	static const char *const names[] = {
#define X(name, str, ...) [CG_OP_##name] = str,
		CG_OP_MAP(X)
#undef X
	};

	if (op >= CG_OP_MAX || !names[op])
		return "unknown";
	return names[op];
}

int cg__send(int sock, const void *buf, size_t len, int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { (void *)buf, len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (fd >= 0) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.buf;
		msg.msg_controllen = sizeof(ctl.buf);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	do
		n = sendmsg(sock, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EPROTO;
}

/* Close every fd of a control message but the first, which *fd gets. */
static void take_fds(struct msghdr *msg, int *fd)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
		size_t n;
		int fds[16];

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		if (n > 16)
			n = 16;
		memcpy(fds, CMSG_DATA(c), n * sizeof(int));
		for (size_t i = 0; i < n; i++) {
			if (fd && *fd < 0)
				*fd = fds[i];
			else
				close(fds[i]);
		}
	}
}

/*
 * A packet of another size may be of another major version, whose layouts
 * differ: every version begins with magic, op and major (the first 8 bytes
 * of struct cg__req and struct cg__rep), so that much can always be told.
 */
static bool foreign_major(const void *buf, ssize_t n)
{
	const struct cg__req *h = buf;

	return n >= (ssize_t)offsetof(struct cg__req, minor) &&
	       h->magic == CG_PROTO_MAGIC && h->major != CG_PROTO_MAJOR;
}

int cg__recv(int sock, void *buf, size_t len, int *fd)
{
	union {
		char buf[CMSG_SPACE(16 * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { buf, len };
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = ctl.buf,
		.msg_controllen = sizeof(ctl.buf),
	};
	ssize_t n;

	if (fd)
		*fd = -1;
	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	take_fds(&msg, fd);
	/*
	 * A packet of any other size is refused, and the fd it carried
	 * closed: a zero-length one too, which a SOCK_SEQPACKET peer may send
	 * with fds and which reads like the end of the connection (found by
	 * tests/test-protocol-fuzzing-leaves-the-daemon-serving.c).
	 */
	if ((size_t)n != len || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
		if (fd && *fd >= 0) {
			close(*fd);
			*fd = -1;
		}
		if (n == 0)
			return -ECONNRESET;
		return foreign_major(buf, n) ? -EPROTONOSUPPORT : -EPROTO;
	}
	return 0;
}

void cg__req_init(struct cg__req *req, enum cg__op op)
{
	memset(req, 0, sizeof(*req));
	req->magic = CG_PROTO_MAGIC;
	req->op = (uint16_t)op;
	req->major = CG_PROTO_MAJOR;
	req->minor = CG_PROTO_MINOR;
}

void cg__rep_init(struct cg__rep *rep, const struct cg__req *req)
{
	memset(rep, 0, sizeof(*rep));
	rep->magic = CG_PROTO_MAGIC;
	rep->op = req->op;
	rep->major = CG_PROTO_MAJOR;
	rep->minor = CG_PROTO_MINOR;
}
