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

int cg__send_fds(int sock, const void *buf, size_t len, const int *fds,
		 size_t n)
{
	union {
		char buf[CMSG_SPACE(CG__MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { (void *)buf, len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t sent;

	if (n > CG__MAX_FDS)
		return -EINVAL;
	if (n) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.buf;
		msg.msg_controllen = CMSG_SPACE(n * sizeof(int));
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(n * sizeof(int));
		memcpy(CMSG_DATA(c), fds, n * sizeof(int));
	}
	do
		sent = sendmsg(sock, &msg, MSG_NOSIGNAL);
	while (sent < 0 && errno == EINTR);
	if (sent < 0)
		return -errno;
	return (size_t)sent == len ? 0 : -EPROTO;
}

int cg__send(int sock, const void *buf, size_t len, int fd)
{
	return cg__send_fds(sock, buf, len, &fd, fd >= 0);
}

/* Keep the first max fds of a control message in fds, close the rest. */
static size_t take_fds(struct msghdr *msg, int *fds, size_t max)
{
	size_t kept = 0;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
		size_t n;
		int got[16];

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		if (n > 16)
			n = 16;
		memcpy(got, CMSG_DATA(c), n * sizeof(int));
		for (size_t i = 0; i < n; i++) {
			if (kept < max)
				fds[kept++] = got[i];
			else
				close(got[i]);
		}
	}
	return kept;
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

int cg__recv_fds(int sock, void *buf, size_t len, int *fds, size_t max,
		 size_t *n)
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
	ssize_t got;

	*n = 0;
	do
		got = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (got < 0 && errno == EINTR);
	if (got < 0)
		return -errno;
	*n = take_fds(&msg, fds, max);
	/*
	 * A packet of any other size is refused, and the fds it carried
	 * closed: a zero-length one too, which a SOCK_SEQPACKET peer may send
	 * with fds and which reads like the end of the connection (found by
	 * tests/test-protocol-fuzzing-leaves-the-daemon-serving.c).
	 */
	if ((size_t)got != len || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
		while (*n)
			close(fds[--*n]);
		if (got == 0)
			return -ECONNRESET;
		return foreign_major(buf, got) ? -EPROTONOSUPPORT : -EPROTO;
	}
	return 0;
}

int cg__recv(int sock, void *buf, size_t len, int *fd)
{
	int kept = -1;
	size_t n;
	int ret = cg__recv_fds(sock, buf, len, &kept, fd ? 1 : 0, &n);

	if (fd)
		*fd = n ? kept : -1;
	return ret;
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
