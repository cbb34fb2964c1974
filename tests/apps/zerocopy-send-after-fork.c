// SPDX-License-Identifier: MIT
/*
 * A program that knows nothing of cowguard: it fills a buffer, forks (the
 * child keeps a copy and waits), sends the buffer over a loopback TCP
 * connection with MSG_ZEROCOPY, reads what arrives, and (unless told not
 * to) reads the send's completion from the socket's error queue.
 *
 *   zerocopy-send-after-fork [--no-completion] [--sendmmsg | --uring]
 *     --sendmmsg  the buffer in two messages of one sendmmsg call
 *     --uring     an io_uring SEND_ZC through liburing: its completion is
 *                 the notification CQE; after it the program submits a
 *                 NOP, as one that goes on would, and it exits without
 *                 io_uring_queue_exit()
 *
 * Over loopback the kernel copies the data on the way (the completion
 * says SO_EE_CODE_ZEROCOPY_COPIED), so this program shows the pin's life,
 * not a stale read.  Exit status: 0 the data arrived and the completion
 * was read, 2 error, 3 the child's copy changed, 4 no completion came,
 * 77 this kernel has no SEND_ZC.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <time.h>
#include <linux/errqueue.h>
#include <liburing.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "waiting-child.h"

#ifndef SO_EE_ORIGIN_ZEROCOPY
#define SO_EE_ORIGIN_ZEROCOPY 5
#endif

#define LEN (16 * 4096)

static int fail(const char *what)
{
	fprintf(stderr, "zerocopy-send-after-fork: %s: %s\n", what,
		strerror(errno));
	return 2;
}

/* A connected pair over 127.0.0.1: *tx sends, *rx receives. */
static int connect_pair(int *tx, int *rx)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int one = 1, l = socket(AF_INET, SOCK_STREAM, 0);

	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&a, &len))
		return -1;
	*tx = socket(AF_INET, SOCK_STREAM, 0);
	if (*tx < 0 || setsockopt(*tx, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one)) ||
	    connect(*tx, (struct sockaddr *)&a, sizeof(a)))
		return -1;
	*rx = accept(l, NULL, NULL);
	close(l);
	return *rx < 0 ? -1 : 0;
}

/* Wait for the completions of sends 0 .. last on the error queue: 0, or 4. */
static int completion(int fd, unsigned last)
{
	long seen = -1;

	char control[128];
	struct msghdr msg = { .msg_control = control,
			      .msg_controllen = sizeof(control) };
	struct pollfd p = { .fd = fd, .events = 0 };

	for (int tries = 0; tries < 100; tries++) {
		poll(&p, 1, 50);
		if (recvmsg(fd, &msg, MSG_ERRQUEUE) >= 0) {
			struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
			struct sock_extended_err *ee =
				c ? (struct sock_extended_err *)CMSG_DATA(c) : NULL;

			if (!ee || ee->ee_origin != SO_EE_ORIGIN_ZEROCOPY ||
			    ee->ee_info != (unsigned)(seen + 1))
				return 4;
			seen = ee->ee_data;
			if (seen >= (long)last)
				return 0;
		}
		msg.msg_controllen = sizeof(control);
	}
	return 4;
}

/* Wait for the CQE of ring with flag (or, with flag 0, the first). */
static int cqe_with(struct io_uring *ring, unsigned flag, int *res)
{
	struct io_uring_cqe *cqe;
	unsigned flags;

	do {
		if (io_uring_wait_cqe(ring, &cqe))
			return -1;
		flags = cqe->flags;
		*res = cqe->res;
		io_uring_cqe_seen(ring, cqe);
	} while (flag && !(flags & flag));
	return (int)flags;
}

/*
 * SEND_ZC of [p, p+len) on tx through a ring; with completion, wait for
 * its notification and submit a NOP.  0, 77 (no SEND_ZC), or 2.
 */
static int uring_send(int tx, const char *p, size_t len, bool completion)
{
	struct io_uring ring;
	int flags, res;

	if (io_uring_queue_init(4, &ring, 0))
		return fail("io_uring_queue_init");
	io_uring_prep_send_zc(io_uring_get_sqe(&ring), tx, p, len, 0, 0);
	if (io_uring_submit(&ring) != 1)
		return fail("io_uring_submit");
	flags = cqe_with(&ring, 0, &res);
	if (flags >= 0 && res == -EINVAL) {
		printf("no SEND_ZC on this kernel\n");
		return 77;
	}
	if (flags < 0 || res != (int)len)
		return fail("send_zc");
	if (!completion || !(flags & IORING_CQE_F_MORE))
		return 0;
	if (cqe_with(&ring, IORING_CQE_F_NOTIF, &res) < 0)
		return 4;
	io_uring_prep_nop(io_uring_get_sqe(&ring));
	if (io_uring_submit(&ring) != 1 || cqe_with(&ring, 0, &res) < 0)
		return fail("nop");
	return 0;
}

int main(int argc, char **argv)
{
	bool wait_completion = true, mmsg = false, uring = false;
	char *p = mmap(NULL, LEN, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *got = malloc(LEN);
	int tx, rx, status, ret = 0;
	size_t have = 0;
	struct waiting_child child;

	for (int i = 1; i < argc; i++) {
		wait_completion &= !!strcmp(argv[i], "--no-completion");
		mmsg |= !strcmp(argv[i], "--sendmmsg");
		uring |= !strcmp(argv[i], "--uring");
	}
	if (p == MAP_FAILED || !got || connect_pair(&tx, &rx))
		return fail("setup");
	memset(p, 'A', LEN);
	child = waiting_child_start(p, LEN);
	if (child.pid < 0)
		return fail("fork");
	if (uring) {
		ret = uring_send(tx, p, LEN, wait_completion);
		if (ret)
			return ret;
	} else if (mmsg) {
		struct iovec iov[2] = { { p, LEN / 2 }, { p + LEN / 2, LEN / 2 } };
		struct mmsghdr v[2] = {
			{ .msg_hdr = { .msg_iov = &iov[0], .msg_iovlen = 1 } },
			{ .msg_hdr = { .msg_iov = &iov[1], .msg_iovlen = 1 } },
		};

		if (sendmmsg(tx, v, 2, MSG_ZEROCOPY) != 2 ||
		    v[0].msg_len + v[1].msg_len != LEN)
			return fail("sendmmsg");
	} else if (send(tx, p, LEN, MSG_ZEROCOPY) != LEN) {
		return fail("send");
	}
	while (have < LEN) {
		ssize_t n = recv(rx, got + have, LEN - have, 0);

		if (n <= 0)
			return fail("recv");
		have += (size_t)n;
	}
	if (wait_completion && !uring)
		ret = completion(tx, mmsg ? 1 : 0);
	status = waiting_child_end(&child);
	if (status < 0)
		return fail("child");
	printf("received %zu bytes ('%c'); completion %s\n", have, got[0],
	       !wait_completion ? "not asked" : ret ? "missing" : "read");
	if (status)
		return 3;
	return ret;
}
