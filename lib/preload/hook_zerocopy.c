// SPDX-License-Identifier: MIT
/*
 * MSG_ZEROCOPY sends: on a socket with SO_ZEROCOPY the kernel keeps plain
 * references to the sent pages until the data has left, then queues a
 * completion on the socket's error queue naming the sends it covers by
 * number (each zero-copy send call on a socket gets the next number, from
 * 0).  The pages are pinned before the send and the pin held until the
 * program reads that completion (recvmsg with MSG_ERRQUEUE).
 */
#include <errno.h>
#include <time.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "cowguard.h"
#include "kernel/compat.h"
#include "preload.h"

#ifndef SO_EE_ORIGIN_ZEROCOPY
#define SO_EE_ORIGIN_ZEROCOPY 5
#endif

#define MAX_SOCKETS 1024

/* The next send's number, per socket fd (-1: not known yet). */
static struct {
	pthread_mutex_t lock;
	int fd[MAX_SOCKETS];
	uint64_t next[MAX_SOCKETS];
	size_t n;
} numbers = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* Whether a send with these flags on fd leaves references behind. */
static bool zerocopy(int fd, int flags)
{
	int on = 0;
	socklen_t len = sizeof(on);

	return (flags & MSG_ZEROCOPY) &&
	       !getsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, &on, &len) && on;
}

/* Take fd's next send number. */
static uint64_t next_number(int fd)
{
	uint64_t seq = 0;
	size_t i;

	pthread_mutex_lock(&numbers.lock);
	for (i = 0; i < numbers.n && numbers.fd[i] != fd; i++)
		;
	if (i == numbers.n && numbers.n < MAX_SOCKETS) {
		numbers.fd[i] = fd;
		numbers.next[i] = 0;
		numbers.n++;
	}
	if (i < numbers.n)
		seq = numbers.next[i]++;
	pthread_mutex_unlock(&numbers.lock);
	return seq;
}

/* Around one send of msg's iovecs; send() and sendto() make a msghdr. */
static ssize_t send_pinned(int fd, const struct msghdr *msg, int flags,
			   ssize_t (*call)(int, const struct msghdr *, int,
					   const void *),
			   const void *arg)
{
	struct cg_pin *pin = NULL;
	struct cg *cg;
	ssize_t n;

	if (!zerocopy(fd, flags) || !cg__shim_enter(CG__HOOK_ZEROCOPY, &cg))
		return call(fd, msg, flags, arg);
	pin = cg__protect_msg(CG__HOOK_ZEROCOPY, cg, msg, CG_PIN_RO);
	n = call(fd, msg, flags, arg);
	if (n >= 0 && pin)
		cg__held_add(pin, CG__HELD_ZEROCOPY, fd, next_number(fd));
	else if (n >= 0)
		next_number(fd);
	else
		cg__unprotect(pin);
	cg__shim_leave();
	return n;
}

typedef ssize_t sendmsg_fn(int fd, const struct msghdr *msg, int flags);
typedef ssize_t sendto_fn(int fd, const void *buf, size_t len, int flags,
			  const struct sockaddr *to, socklen_t tolen);
typedef ssize_t recvmsg_fn(int fd, struct msghdr *msg, int flags);

static ssize_t call_sendmsg(int fd, const struct msghdr *msg, int flags,
			    const void *arg)
{
	static sendmsg_fn *real;

	(void)arg;
	if (!real)
		real = (sendmsg_fn *)cg__real("sendmsg");
	return real(fd, msg, flags);
}

static ssize_t call_sendto(int fd, const struct msghdr *msg, int flags,
			   const void *arg)
{
	static sendto_fn *real;

	(void)arg;
	if (!real)
		real = (sendto_fn *)cg__real("sendto");
	return real(fd, msg->msg_iov[0].iov_base, msg->msg_iov[0].iov_len,
		    flags, msg->msg_name, msg->msg_namelen);
}

CG__HOOK ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	return send_pinned(fd, msg, flags, call_sendmsg, NULL);
}

CG__HOOK ssize_t sendto(int fd, const void *buf, size_t len, int flags,
			const struct sockaddr *to, socklen_t tolen)
{
	struct iovec iov = { (void *)buf, len };
	struct msghdr msg = { .msg_name = (void *)to, .msg_namelen = tolen,
			      .msg_iov = &iov, .msg_iovlen = 1 };

	return send_pinned(fd, &msg, flags, call_sendto, NULL);
}

CG__HOOK ssize_t send(int fd, const void *buf, size_t len, int flags)
{
	return sendto(fd, buf, len, flags, NULL, 0);
}

typedef int sendmmsg_fn(int fd, struct mmsghdr *v, unsigned int n, int flags);

/*
 * sendmmsg: each message is a send of its own, with its own number; the
 * pins of the messages not sent end at once.
 */
CG__HOOK int sendmmsg(int fd, struct mmsghdr *v, unsigned int n, int flags)
{
	static sendmmsg_fn *real;
	struct cg_pin *pins[64] = { NULL };
	struct cg *cg;
	int sent;

	if (!real)
		real = (sendmmsg_fn *)cg__real("sendmmsg");
	if (!zerocopy(fd, flags) || !cg__shim_enter(CG__HOOK_ZEROCOPY, &cg))
		return real(fd, v, n, flags);
	/* The kernel sends at most UIO_MAXIOV; we pin the first 64. */
	n = n > 64 ? 64 : n;
	for (unsigned i = 0; i < n; i++)
		pins[i] = cg__protect_msg(CG__HOOK_ZEROCOPY, cg, &v[i].msg_hdr,
					  CG_PIN_RO);
	sent = real(fd, v, n, flags);
	for (unsigned i = 0; i < n; i++) {
		if ((int)i < sent && pins[i])
			cg__held_add(pins[i], CG__HELD_ZEROCOPY, fd,
				     next_number(fd));
		else if ((int)i < sent)
			next_number(fd);
		else
			cg__unprotect(pins[i]);
	}
	cg__shim_leave();
	return sent;
}

/* The completions in an error queue message: their pins end. */
static void completions(int fd, const struct msghdr *msg)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)msg); c;
	     c = CMSG_NXTHDR((struct msghdr *)msg, c)) {
		const struct sock_extended_err *ee;

		if (!((c->cmsg_level == SOL_IP && c->cmsg_type == IP_RECVERR) ||
		      (c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_RECVERR)))
			continue;
		ee = (const struct sock_extended_err *)CMSG_DATA(c);
		if (ee->ee_errno == 0 && ee->ee_origin == SO_EE_ORIGIN_ZEROCOPY)
			cg__held_release_seq(CG__HELD_ZEROCOPY, fd, ee->ee_info,
					     ee->ee_data);
	}
}

/* Descriptors passed with SCM_RIGHTS: they may be O_DIRECT. */
static bool received_fds(struct msghdr *msg)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			return true;
	return false;
}

CG__HOOK ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	static recvmsg_fn *real;
	ssize_t n;

	if (!real)
		real = (recvmsg_fn *)cg__real("recvmsg");
	n = real(fd, msg, flags);
	if (n >= 0 && received_fds(msg))
		cg__odirect_fd_seen();
	if (n >= 0 && (flags & MSG_ERRQUEUE) && !cg__shim_inside()) {
		int saved = errno;

		completions(fd, msg);
		errno = saved;
	}
	return n;
}
