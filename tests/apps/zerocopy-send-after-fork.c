// SPDX-License-Identifier: MIT
/*
 * A program that knows nothing of cowguard: it fills a buffer, forks (the
 * child keeps a copy and waits), sends the buffer over a loopback TCP
 * connection with MSG_ZEROCOPY, reads what arrives, and (unless told not
 * to) reads the send's completion from the socket's error queue.
 *
 *   zerocopy-send-after-fork [--no-completion] [--sendmmsg]
 *     --sendmmsg  the buffer in two messages of one sendmmsg call
 *
 * Over loopback the kernel copies the data on the way (the completion
 * says SO_EE_CODE_ZEROCOPY_COPIED), so this program shows the pin's life,
 * not a stale read.  Exit status: 0 the data arrived and the completion
 * was read, 2 error, 3 the child's copy changed, 4 no completion came.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <time.h>
#include <linux/errqueue.h>
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

int main(int argc, char **argv)
{
	bool wait_completion = true, mmsg = false;
	char *p = mmap(NULL, LEN, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *got = malloc(LEN);
	int tx, rx, status, ret = 0;
	size_t have = 0;
	struct waiting_child child;

	for (int i = 1; i < argc; i++) {
		wait_completion &= !!strcmp(argv[i], "--no-completion");
		mmsg |= !strcmp(argv[i], "--sendmmsg");
	}
	if (p == MAP_FAILED || !got || connect_pair(&tx, &rx))
		return fail("setup");
	memset(p, 'A', LEN);
	child = waiting_child_start(p, LEN);
	if (child.pid < 0)
		return fail("fork");
	if (mmsg) {
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
	if (wait_completion)
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
