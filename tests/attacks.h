/* SPDX-License-Identifier: MIT */
/*
 * The attacks of issue 11's table, as a hostile local client makes them:
 * each runs in a child against the daemon at attack_socket until it is
 * killed.  For the tests that run a daemon through each of them.  They
 * speak the protocol by hand, through tests/wire.h.
 */
#ifndef CG_TESTS_ATTACKS_H
#define CG_TESTS_ATTACKS_H

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "kernel/uffd.h"
#include "wire.h"
#include "wire/protocol.h"

#define LEN (64 * 4096)

static const char *attack_socket;	/* the daemon attacked */
/* Where an attack with a long setup says it is ready (attack_start()). */
static int attack_ready_fd = -1;

static void attack_ready(void)
{
	if (attack_ready_fd >= 0 && write(attack_ready_fd, "r", 1) != 1)
		_exit(5);
}

static char *fresh(size_t len)
{
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		_exit(2);
	return p;
}

/*
 * A fresh LEN mapping, its pages populated, registered by a client of its
 * own (its uffd to *uffd_out, or closed when NULL): the socket.  The
 * child _exit()s where that fails.
 */
static int populated_client(char **p, int *uffd_out)
{
	int s;

	*p = fresh(LEN);
	memset(*p, 1, LEN);
	s = wire_client(attack_socket, *p, LEN, uffd_out);
	if (s < 0)
		_exit(3);
	return s;
}

/* [p, p+len) populated and registered by a client of its own: the socket. */
static int populated_at(char *p, size_t len)
{
	int s;

	memset(p, 1, len);
	s = wire_client(attack_socket, p, len, NULL);
	if (s < 0)
		_exit(3);
	return s;
}

/* Forks a child that exits at once, and waits for it, without end. */
static void forks_without_end(void)
{
	for (;;) {
		pid_t c = fork();

		if (c == 0)
			_exit(0);
		waitpid(c, NULL, 0);
	}
}

/* A read-only PIN of [p, p+len): its reply, or the child pauses. */
static struct cg__rep pin_or_pause(int s, void *p, size_t len)
{
	struct cg__req req;
	struct cg__rep rep;

	cg__req_init(&req, CG_OP_PIN);
	req.addr = (uintptr_t)p;
	req.len = len;
	req.flags = CG_PIN_RO;
	if (wire_call(s, &req, -1, &rep))
		pause();
	return rep;
}

/* UNPIN of pin id, or the child pauses. */
static void unpin_or_pause(int s, uint64_t id)
{
	struct cg__req req;
	struct cg__rep rep;

	cg__req_init(&req, CG_OP_UNPIN);
	req.id = id;
	if (wire_call(s, &req, -1, &rep))
		pause();
}

/* ---- the attacks: each runs in a child until it is killed ----------- */

/* Row 1: a client that execs, its connection kept open across. */
static void execs_with_its_connection(void)
{
	char *p;
	int s = populated_client(&p, NULL);

	fcntl(s, F_SETFD, 0);
	execl("/bin/sleep", "sleep", "60", (char *)NULL);
}

/* Row 3: asks for STATUS without end and reads no reply. */
static void asks_and_never_reads(void)
{
	int s = wire_connect(attack_socket);
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
		if (wire_connect(attack_socket) < 0)
			break;
	pause();
}

/* Row 6: the biggest registration at hand, then forks in a row. */
static void registers_huge_and_forks(void)
{
	size_t len = 64ULL << 30;
	char *p = fresh(len);

	if (wire_client(attack_socket, p, len, NULL) < 0)
		_exit(3);
	forks_without_end();
}

/* Row 6: overlapping pins, as many as are taken. */
static void pins_without_end(void)
{
	char *p;
	int s = populated_client(&p, NULL);

	for (;;)
		pin_or_pause(s, p, LEN);
}

static void *write_page(void *p)
{
	*(volatile char *)p = 2;
	return NULL;
}

/*
 * Row 6: pins of a huge registration never populated, without end.  Each
 * read a pagemap entry per page and took memory for each (2 s and 395 MB
 * a pin of 64 GiB) before the hole was seen.
 */
static void pins_a_sparse_registration(void)
{
	size_t len = 64ULL << 30;
	char *p = fresh(len);
	int s = wire_client(attack_socket, p, len, NULL);

	if (s < 0)
		_exit(3);
	for (;;)
		pin_or_pause(s, p, len);
}

/*
 * Row 6: pins of 256 MiB it shares with a child each time, without end:
 * each unshares (copies) every page.  A pin of 1 GiB shared so held the
 * daemon 3.6 s at once before it was cut in windows.
 */
static void pins_memory_shared_with_a_child(void)
{
	size_t len = 256ULL << 20;
	char *p = fresh(len);
	int s = populated_at(p, len);

	for (;;) {
		pid_t child = fork();

		if (child == 0) {
			pause();
			_exit(0);
		}
		unpin_or_pause(s, pin_or_pause(s, p, len).u.pinned.id);
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
	}
}

/*
 * Row 6: as many pins as a client may hold, one a page, then forks
 * without end.  A fork walks its regions around every pin, and copies to
 * the child all but what is pinned.
 */
static void pins_every_page_and_forks(void)
{
	size_t len = 4096UL * 4096;	/* --max-pins: 4096 a client */
	char *p = fresh(len);
	int s = populated_at(p, len);

	for (size_t off = 0; off < len; off += 4096)
		if (pin_or_pause(s, p + off, 4096).status)
			break;	/* over the user's bound: enough */
	attack_ready();
	forks_without_end();
}

/*
 * Row 6: pins of 4 GiB of its own (1 GiB in a guest), each unpinned,
 * without end.  Nothing to unshare: the work is the walk itself.  Before
 * pins were walked in windows, the commit of each and its unpin held the
 * daemon 22-35 ms a GiB at once.
 */
static void pins_much_memory_of_its_own(void)
{
	size_t len = (getenv("CG_VM") ? 1ULL : 4ULL) << 30;
	char *p = fresh(len);
	int s;

	madvise(p, len, MADV_HUGEPAGE);	/* populated sooner */
	s = populated_at(p, len);
	attack_ready();
	for (;;)
		unpin_or_pause(s, pin_or_pause(s, p, len).u.pinned.id);
}

/*
 * Row 6: a snapshot begun and never saved: a thread of its own writes to
 * the frozen memory and waits for good, and the client asks for windows
 * without end, saving nothing.  Only its own writes may wait.
 */
static void snapshots_and_never_saves(void)
{
	char *p;
	int s = populated_client(&p, NULL);
	pthread_t t;

	if (wire_request(s, CG_OP_SNAPSHOT_BEGIN, 0, 0, -1))
		_exit(4);
	pthread_create(&t, NULL, write_page, p + LEN / 2);
	for (;;)
		if (wire_request(s, CG_OP_SNAPSHOT_STEP, 0, 0, -1) == -EPIPE)
			pause();
}

/*
 * Row 6: snapshots of 1 GiB of populated 4 KiB pages (256 MiB in a
 * guest), each begun and ended without saving, without end: the freeze
 * learns and protects all of it in one request, as a fork's preparation
 * does.
 */
static void freezes_without_end(void)
{
	size_t len = (getenv("CG_VM") ? 256ULL : 1024ULL) << 20;
	char *p = fresh(len);
	int s;

	madvise(p, len, MADV_NOHUGEPAGE);
	s = populated_at(p, len);
	attack_ready();
	for (;;) {
		wire_request(s, CG_OP_SNAPSHOT_BEGIN, 0, 0, -1);
		if (wire_request(s, CG_OP_SNAPSHOT_END, 0, 0, -1) == -EPIPE)
			pause();
	}
}

/*
 * Row 6: audits of a huge registration, of the range and of the whole
 * client (AUDIT_PID), without end.  An audit of 64 GiB held the daemon
 * 100 ms at once before it was cut in slices.
 */
static void audits_a_huge_registration(void)
{
	size_t len = 64ULL << 30;
	char *p = fresh(len);
	int s = wire_client(attack_socket, p, len, NULL);
	struct cg__req req;
	struct cg__rep rep;

	if (s < 0)
		_exit(3);
	memset(p, 1, LEN);
	for (;;) {
		if (wire_request(s, CG_OP_AUDIT, (uintptr_t)p, len, -1) == -EPIPE)
			pause();
		cg__req_init(&req, CG_OP_AUDIT_PID);
		req.pid = getpid();
		if (cg__send(s, &req, sizeof(req), -1))
			pause();
		do
			if (cg__recv(s, &rep, sizeof(rep), NULL))
				pause();
		while (rep.rec != CG_REC_END);
	}
}

/* A client that makes the uffd it shares with the daemon blocking. */
static void makes_its_uffd_blocking(void)
{
	pthread_t t;
	char *p;
	int uffd;

	populated_client(&p, &uffd);
	fcntl(uffd, F_SETFL, 0);
	pthread_create(&t, NULL, write_page, p);
	pause();
}

/* Row 2: MODE_MISSING added through the uffd it kept, then a fault. */
static void registers_missing_through_its_uffd(void)
{
	pthread_t t;
	char *p;
	int uffd;

	populated_client(&p, &uffd);
	if (cg__uffd_register_mode(uffd, (uintptr_t)p, LEN,
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
	char *p, *q = fresh(LEN);
	int s = populated_client(&p, NULL);
	pthread_t t;

	pthread_create(&t, NULL, drop_without_pause, p);
	for (;;) {
		memset(q, 1, LEN);
		wire_request(s, CG_OP_REGISTER, (uintptr_t)q, LEN, -1);
		wire_request(s, CG_OP_UNREGISTER, (uintptr_t)q, LEN, -1);
	}
}

/* Random packets, some with an fd, on connections that come and go. */
static void sends_garbage(void)
{
	unsigned seed = 1;

	for (;;) {
		int s = wire_connect(attack_socket);
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
	/*
	 * A bound on the victim's longest turn too, where the attack's harm
	 * is a few long stalls that a 99th percentile would not see: 0 if
	 * none.
	 */
	double max_ms;
	/* Its setup takes seconds: the attack begins when it says so. */
	bool says_ready;
};

static const struct attack attacks[] = {
	{ .name = "a client that execs with its connection",
	  .run = execs_with_its_connection },
	{ .name = "a control connection that never reads",
	  .run = asks_and_never_reads },
	{ .name = "connections without end", .run = takes_every_connection },
	{ .name = "connections until the daemon has no fd",
	  .run = takes_every_connection, .nofile = 64 },
	{ .name = "a huge registration and forks",
	  .run = registers_huge_and_forks },
	{ .name = "pins without end", .run = pins_without_end },
	{ .name = "pins of a sparse registration",
	  .run = pins_a_sparse_registration },
	{ .name = "audits of a huge registration",
	  .run = audits_a_huge_registration },
	{ .name = "pins of memory shared with a child",
	  .run = pins_memory_shared_with_a_child, .max_ms = 100 },
	{ .name = "pins of every page, then forks",
	  .run = pins_every_page_and_forks, .max_ms = 100, .says_ready = true },
	{ .name = "pins of much memory of its own",
	  .run = pins_much_memory_of_its_own, .max_ms = 100,
	  .says_ready = true },
	{ .name = "a uffd made blocking", .run = makes_its_uffd_blocking },
	{ .name = "missing faults through the uffd it kept",
	  .run = registers_missing_through_its_uffd },
	{ .name = "events without pause", .run = raises_events_without_pause },
	{ .name = "random packets", .run = sends_garbage },
	{ .name = "a snapshot never saved", .run = snapshots_and_never_saves },
	{ .name = "freezes of much memory of its own",
	  .run = freezes_without_end, .max_ms = 100, .says_ready = true },
};


/*
 * The attacker, in a child until it is killed; returned once it has begun
 * (after its setup, where it says when).
 */
static pid_t attack_start(const struct attack *a)
{
	int ready[2] = { -1, -1 };
	pid_t pid;
	char b;

	if (a->says_ready && pipe(ready))
		return -1;
	pid = fork();
	if (pid == 0) {
		attack_ready_fd = ready[1];
		a->run();
		_exit(4);
	}
	if (a->says_ready) {
		close(ready[1]);
		/* An attacker that dies first reads as ready: it is seen later. */
		if (pid > 0 && read(ready[0], &b, 1) < 0)
			pid = -1;
		close(ready[0]);
	}
	return pid;
}

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
