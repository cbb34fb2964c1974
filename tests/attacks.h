/* SPDX-License-Identifier: MIT */
/*
 * The attacks of issue 11's table, as a hostile local client makes them:
 * each runs in a child against the daemon at attack_socket until it is
 * killed.  For the tests that run a daemon through each of them.
 */
#ifndef CG_TESTS_ATTACKS_H
#define CG_TESTS_ATTACKS_H

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "protocol.h"
#include "uffd.h"

#define LEN (64 * 4096)

static const char *attack_socket;	/* the daemon attacked */

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int connect_daemon(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int s = socket(AF_UNIX, SOCK_SEQPACKET, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", attack_socket);
	if (s >= 0 && connect(s, (struct sockaddr *)&sa, sizeof(sa))) {
		close(s);
		return -1;
	}
	return s;
}

static int request(int s, enum cg__op op, uint64_t addr, uint64_t len, int fd)
{
	struct cg__req req;
	struct cg__rep rep;

	cg__req_init(&req, op);
	req.addr = addr;
	req.len = len;
	if (cg__send(s, &req, sizeof(req), fd) ||
	    cg__recv(s, &rep, sizeof(rep), NULL))
		return -EPIPE;
	return rep.status;
}

/* A registered client of its own, by the wire: its socket, or -1. */
static int client(void *p, size_t len, int *uffd_out)
{
	int s = connect_daemon(), uffd = cg__uffd_create();

	if (s < 0 || uffd < 0 || request(s, CG_OP_HELLO, 0, 0, uffd) ||
	    request(s, CG_OP_REGISTER, (uintptr_t)p, len, -1))
		return -1;
	if (uffd_out)
		*uffd_out = uffd;
	else
		close(uffd);
	return s;
}

static char *fresh(size_t len)
{
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		_exit(2);
	return p;
}

/* ---- the attacks: each runs in a child until it is killed ----------- */

/* Row 1: a client that execs, its connection kept open across. */
static void execs_with_its_connection(void)
{
	char *p = fresh(LEN);
	int s;

	memset(p, 1, LEN);
	s = client(p, LEN, NULL);
	if (s < 0)
		_exit(3);
	fcntl(s, F_SETFD, 0);
	execl("/bin/sleep", "sleep", "60", (char *)NULL);
}

/* Row 3: asks for STATUS without end and reads no reply. */
static void asks_and_never_reads(void)
{
	int s = connect_daemon();
	struct cg__req req;

	cg__req_init(&req, CG_OP_CTL_HELLO);
	if (s < 0 || cg__send(s, &req, sizeof(req), -1))
		_exit(3);
	cg__req_init(&req, CG_OP_STATUS);
	for (;;)
		if (cg__send(s, &req, sizeof(req), -1))
			pause();	/* dropped: stay */
}

/* Rows 4 and 5: connections until nothing more is taken. */
static void takes_every_connection(void)
{
	for (int i = 0; i < 4096; i++)
		if (connect_daemon() < 0)
			break;
	pause();
}

/* Row 6: the biggest registration at hand, then forks in a row. */
static void registers_huge_and_forks(void)
{
	size_t len = 64ULL << 30;
	char *p = fresh(len);

	if (client(p, len, NULL) < 0)
		_exit(3);
	for (;;) {
		pid_t c = fork();

		if (c == 0)
			_exit(0);
		waitpid(c, NULL, 0);
	}
}

/* Row 6: overlapping pins, as many as are taken. */
static void pins_without_end(void)
{
	char *p = fresh(LEN);
	int s;

	memset(p, 1, LEN);
	s = client(p, LEN, NULL);
	if (s < 0)
		_exit(3);
	for (;;) {
		struct cg__req req;
		struct cg__rep rep;

		cg__req_init(&req, CG_OP_PIN);
		req.addr = (uintptr_t)p;
		req.len = LEN;
		req.flags = CG_PIN_RO;
		if (cg__send(s, &req, sizeof(req), -1) ||
		    cg__recv(s, &rep, sizeof(rep), NULL))
			pause();
	}
}

static void *write_page(void *p)
{
	*(volatile char *)p = 2;
	return NULL;
}

/* A client that makes the uffd it shares with the daemon blocking. */
static void makes_its_uffd_blocking(void)
{
	char *p = fresh(LEN);
	pthread_t t;
	int uffd, s;

	memset(p, 1, LEN);
	s = client(p, LEN, &uffd);
	if (s < 0)
		_exit(3);
	fcntl(uffd, F_SETFL, 0);
	pthread_create(&t, NULL, write_page, p);
	pause();
}

/* Row 2: MODE_MISSING added through the uffd it kept, then a fault. */
static void registers_missing_through_its_uffd(void)
{
	char *p = fresh(LEN);
	pthread_t t;
	int uffd, s;

	memset(p, 1, LEN);
	s = client(p, LEN, &uffd);
	if (s < 0 || cg__uffd_register_mode(uffd, (uintptr_t)p, LEN,
					    UFFDIO_REGISTER_MODE_MISSING |
					    UFFDIO_REGISTER_MODE_WP))
		_exit(3);
	madvise(p, LEN, MADV_DONTNEED);
	pthread_create(&t, NULL, write_page, p);
	pause();
}

static void *drop_without_pause(void *p)
{
	for (;;)
		madvise(p, LEN, MADV_DONTNEED);
	return NULL;
}

/*
 * Row 12: events without pause (a REMOVE each), which make every ioctl on
 * its uffd fail with EAGAIN, while it asks for work that needs ioctls.
 */
static void raises_events_without_pause(void)
{
	char *p = fresh(LEN), *q = fresh(LEN);
	pthread_t t;
	int s;

	memset(p, 1, LEN);
	s = client(p, LEN, NULL);
	if (s < 0)
		_exit(3);
	pthread_create(&t, NULL, drop_without_pause, p);
	for (;;) {
		memset(q, 1, LEN);
		request(s, CG_OP_REGISTER, (uintptr_t)q, LEN, -1);
		request(s, CG_OP_UNREGISTER, (uintptr_t)q, LEN, -1);
	}
}

/* Random packets, some with an fd, on connections that come and go. */
static void sends_garbage(void)
{
	unsigned seed = 1;

	for (;;) {
		int s = connect_daemon();
		char buf[512];

		if (s < 0)
			continue;
		for (int i = 0; i < 64; i++) {
			size_t n = (size_t)rand_r(&seed) % sizeof(buf);

			for (size_t j = 0; j < n; j++)
				buf[j] = (char)rand_r(&seed);
			if (cg__send(s, buf, n, i % 7 ? -1 : 0))
				break;
		}
		close(s);
	}
}

struct attack {
	const char *name;
	void (*run)(void);
	rlim_t nofile;		/* the daemon's RLIMIT_NOFILE; 0 = as is */
};

static const struct attack attacks[] = {
	{ "a client that execs with its connection", execs_with_its_connection, 0 },
	{ "a control connection that never reads", asks_and_never_reads, 0 },
	{ "connections without end", takes_every_connection, 0 },
	{ "connections until the daemon has no fd", takes_every_connection, 64 },
	{ "a huge registration and forks", registers_huge_and_forks, 0 },
	{ "pins without end", pins_without_end, 0 },
	{ "a uffd made blocking", makes_its_uffd_blocking, 0 },
	{ "missing faults through the uffd it kept",
	  registers_missing_through_its_uffd, 0 },
	{ "events without pause", raises_events_without_pause, 0 },
	{ "random packets", sends_garbage, 0 },
};


/* A daemon of its own at path, with the fd limit the attack asks for. */
static pid_t attack_daemon_start(const struct attack *a, const char *path)
{
	struct rlimit old, low;
	pid_t pid;

	getrlimit(RLIMIT_NOFILE, &old);
	low = old;
	if (a->nofile)
		low.rlim_cur = a->nofile;
	setrlimit(RLIMIT_NOFILE, &low);
	pid = h_daemon_start(path);
	setrlimit(RLIMIT_NOFILE, &old);
	return pid;
}

#endif
