/* SPDX-License-Identifier: MIT */
/*
 * The daemon's protocol by hand, below lib/client.c, for the tests that
 * speak it as a hostile or odd client would: a connection, one request
 * and its reply, a client registered through them.  Header-only, static
 * inline, like verbs-util.h; tests/attacks.h is built on it.
 */
#ifndef CG_TESTS_WIRE_H
#define CG_TESTS_WIRE_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "kernel/uffd.h"
#include "wire/protocol.h"

/* A connection to the daemon at path (close-on-exec): its socket, or -1. */
static inline int wire_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (s >= 0 && connect(s, (struct sockaddr *)&sa, sizeof(sa))) {
		close(s);
		return -1;
	}
	return s;
}

/* req on s, fd passed with it (-1: none), its reply into rep: 0 or -EPIPE. */
static inline int wire_call(int s, const struct cg__req *req, int fd,
			    struct cg__rep *rep)
{
	if (cg__send(s, req, sizeof(*req), fd) ||
	    cg__recv(s, rep, sizeof(*rep), NULL))
		return -EPIPE;
	return 0;
}

/* One request on s, fd passed with it (-1: none): the reply's status, or -EPIPE. */
static inline int wire_request(int s, enum cg__op op, uint64_t addr,
			       uint64_t len, int fd)
{
	struct cg__req req;
	struct cg__rep rep;

	cg__req_init(&req, op);
	req.addr = addr;
	req.len = len;
	return wire_call(s, &req, fd, &rep) ? -EPIPE : rep.status;
}

/*
 * A registered client of the daemon at path, by the wire: HELLO with a
 * fresh uffd, then [p, p+len) registered.  Its socket, or -1.  The uffd
 * goes to *uffd_out, or is closed when uffd_out is NULL.
 */
static inline int wire_client(const char *path, void *p, size_t len,
			      int *uffd_out)
{
	int s = wire_connect(path), uffd = cg__uffd_create();

	if (s < 0 || uffd < 0 || wire_request(s, CG_OP_HELLO, 0, 0, uffd) ||
	    wire_request(s, CG_OP_REGISTER, (uintptr_t)p, len, -1)) {
		if (s >= 0)
			close(s);
		if (uffd >= 0)
			close(uffd);
		return -1;
	}
	if (uffd_out)
		*uffd_out = uffd;
	else
		close(uffd);
	return s;
}

#endif
