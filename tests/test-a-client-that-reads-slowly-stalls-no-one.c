// SPDX-License-Identifier: MIT
/*
 * One event loop serves every client, so a client that reads its replies
 * slowly must not slow anyone else down.  A cowguardctl connection asks for
 * STATUS again and again and reads a few packets every 0.9 s (the reader
 * that once held the daemon in a 1 s wait for room, over and over); while
 * it does, another process, a registered client, writes to its protected
 * pages and queries them.  Its write faults and queries must stay fast, and
 * the slow reader, over its queue bound, must be dropped (each time it
 * comes back).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "harness.h"
#include "protocol.h"

#define PAGES 400		/* one write fault and one query each */
#define VICTIM_MAX_MS 8000	/* it stops there, done or not */
#define MIN_DONE 200		/* queries it must have done to judge */
#define P99_MAX_MS 50.0
#define BURST_EVERY_MS 900	/* the slow reader's rhythm */
#define BURST_PACKETS 8

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void sleep_ms(int ms)
{
	struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&t, NULL);
}

/* ---- the victim: another process, a registered client ---------------- */

struct victim_result {
	int error;		/* 0, or where it failed (a line number) */
	int done;		/* pages written and queried */
	double write_p99, write_max, query_p99, query_max;	/* ms */
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void percentiles(double *v, int n, double *p99, double *max)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	*p99 = n ? v[n * 99 / 100] : 0;
	*max = n ? v[n - 1] : 0;
}

/* Write and query each page in turn, timing both, until done or out of time. */
static void victim_measure(struct cg *cg, volatile char *p,
			   struct victim_result *r)
{
	static double writes[PAGES], queries[PAGES];
	double start = now_ms();
	struct cg_page_info info;

	for (r->done = 0; r->done < PAGES && now_ms() - start < VICTIM_MAX_MS;
	     r->done++) {
		volatile char *page = p + (size_t)r->done * 4096;
		double t0 = now_ms(), t1, t2;

		*page = 'W';
		t1 = now_ms();
		if (cg_query(cg, (const void *)page, &info, sizeof(info)) ||
		    !info.dirty) {
			r->error = __LINE__;
			return;
		}
		t2 = now_ms();
		writes[r->done] = t1 - t0;
		queries[r->done] = t2 - t1;
		sleep_ms(2);
	}
	percentiles(writes, r->done, &r->write_p99, &r->write_max);
	percentiles(queries, r->done, &r->query_p99, &r->query_max);
}

/* In the child: no ck_assert; the result goes back through out. */
static int victim_main(int ready, int go, int out)
{
	struct cg_options o = { CG_MODE_DAEMON, h_socket() };
	struct victim_result r = { 0 };
	size_t len = (size_t)PAGES * 4096;
	struct cg *cg = NULL;
	char *p, b;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0);
	if (p == MAP_FAILED)
		r.error = __LINE__;
	else
		memset(p, 'V', len);
	if (!r.error && (cg_open(&o, sizeof(o), &cg) || cg_register(cg, p, len, 0)))
		r.error = __LINE__;
	if (write(ready, "r", 1) != 1 || read(go, &b, 1) != 1)
		return 2;
	if (!r.error)
		victim_measure(cg, p, &r);
	cg_close(cg);
	return write(out, &r, sizeof(r)) == sizeof(r) ? 0 : 3;
}

struct victim {
	pid_t pid;
	int go, result;		/* write end; read end */
};

static struct victim victim_start(void)
{
	int ready[2], go[2], res[2];
	struct victim v;
	char b;

	ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(res, O_CLOEXEC), 0);
	v.pid = fork();
	ck_assert_int_ge(v.pid, 0);
	if (v.pid == 0)
		_exit(victim_main(ready[1], go[0], res[1]));
	close(ready[1]);
	close(go[0]);
	close(res[1]);
	ck_assert_int_eq(read(ready[0], &b, 1), 1);
	close(ready[0]);
	v.go = go[1];
	v.result = res[0];
	return v;
}

/* ---- the slow reader -------------------------------------------------- */

struct slow {
	int sock;		/* -1 between connections */
	double next_burst;	/* when it reads a few packets next */
	int sent, drops;
};

static void slow_connect(struct slow *s)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct cg__req req;
	struct cg__rep rep;
	struct pollfd p;

	s->sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(s->sock, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", h_socket());
	ck_assert_int_eq(connect(s->sock, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cg__req_init(&req, CG_OP_CTL_HELLO);
	ck_assert_int_eq(cg__send(s->sock, &req, sizeof(req), -1), 0);
	p = (struct pollfd){ .fd = s->sock, .events = POLLIN };
	ck_assert_int_eq(poll(&p, 1, 5000), 1);
	ck_assert_int_eq(cg__recv(s->sock, &rep, sizeof(rep), NULL), 0);
	ck_assert_int_eq(rep.status, 0);
	s->next_burst = now_ms() + BURST_EVERY_MS;
}

static void slow_dropped(struct slow *s)
{
	close(s->sock);
	s->sock = -1;
	s->drops++;
}

/* A few packets, as a slow reader takes them; false once it was dropped. */
static bool slow_burst(struct slow *s)
{
	struct cg__rep rep;

	for (int i = 0; i < BURST_PACKETS; i++) {
		ssize_t n = recv(s->sock, &rep, sizeof(rep), MSG_DONTWAIT);

		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			slow_dropped(s);
			return false;
		}
	}
	s->next_burst = now_ms() + BURST_EVERY_MS;
	return true;
}

/*
 * Ask for STATUS whenever the socket takes it, read a burst on time, until
 * the victim reports (its result fd readable).  Dropped, come back after a
 * pause (the pause keeps its own CPU use from being what slows the victim).
 */
static void slow_run(struct slow *s, int victim_result)
{
	struct cg__req req;

	cg__req_init(&req, CG_OP_STATUS);
	for (;;) {
		struct pollfd p[2] = {
			{ .fd = victim_result, .events = POLLIN },
			{ .fd = s->sock, .events = POLLOUT },
		};
		int wait = s->sock < 0 ? 100 : (int)(s->next_burst - now_ms());

		if (poll(p, s->sock < 0 ? 1 : 2, wait < 0 ? 0 : wait) < 0)
			continue;
		if (p[0].revents)
			return;
		if (s->sock < 0) {
			slow_connect(s);
			continue;
		}
		if (p[1].revents & (POLLHUP | POLLERR)) {
			slow_dropped(s);
			continue;
		}
		if (now_ms() >= s->next_burst && !slow_burst(s))
			continue;
		if ((p[1].revents & POLLOUT) &&
		    send(s->sock, &req, sizeof(req), MSG_DONTWAIT | MSG_NOSIGNAL) ==
			    sizeof(req))
			s->sent++;
	}
}

START_TEST(a_client_that_reads_its_replies_slowly_stalls_no_other_client)
{
	struct victim_result r;
	struct slow s = { .sock = -1 };
	struct victim v = victim_start();

	slow_connect(&s);
	ck_assert_int_eq(write(v.go, "g", 1), 1);
	slow_run(&s, v.result);
	ck_assert_int_eq(read(v.result, &r, sizeof(r)), sizeof(r));
	ck_assert_int_eq(h_wait(v.pid), 0);
	if (s.sock >= 0)
		close(s.sock);
	close(v.go);
	close(v.result);
	printf("slow reader: %d STATUS requests sent, dropped %d times; victim: "
	       "%d pages, write p99 %.1f ms (max %.1f), query p99 %.1f ms "
	       "(max %.1f)\n", s.sent, s.drops, r.done, r.write_p99, r.write_max,
	       r.query_p99, r.query_max);
	fflush(stdout);
	ck_assert_msg(r.error == 0, "the victim failed at line %d", r.error);
	ck_assert_msg(r.done >= MIN_DONE, "the victim did only %d of %d pages in "
		      "%d ms", r.done, PAGES, VICTIM_MAX_MS);
	ck_assert_msg(r.query_p99 < P99_MAX_MS, "query p99 %.1f ms", r.query_p99);
	ck_assert_msg(r.write_p99 < P99_MAX_MS, "write fault p99 %.1f ms",
		      r.write_p99);
	ck_assert_msg(s.drops >= 1, "the slow reader was never dropped (%d "
		      "requests sent)", s.sent);
}
END_TEST

/* ---- a long reply still goes out whole -------------------------------- */

#define REGIONS 600		/* records: far more than socket and queue hold */

struct tally {
	int clients, regions, ends, end_status;
};

/* Read one streamed reply to its END, pausing now and then like a slow reader. */
static void read_stream(int sock, pid_t pid, struct tally *t)
{
	struct cg__rep rep;

	for (int n = 0;; n++) {
		struct pollfd p = { .fd = sock, .events = POLLIN };

		if (n % 50 == 49)
			sleep_ms(20);
		ck_assert_int_eq(poll(&p, 1, 5000), 1);
		ck_assert_int_eq(cg__recv(sock, &rep, sizeof(rep), NULL), 0);
		if (rep.rec == CG_REC_END) {
			t->ends++;
			t->end_status = rep.status;
			return;
		}
		t->clients += rep.rec == CG_REC_CLIENT && rep.u.client.pid == pid;
		t->regions += rep.rec == CG_REC_REGION && rep.u.region.pid == pid;
	}
}

/*
 * Two STATUS requests sent at once, each a stream of hundreds of records
 * that the daemon makes as the reader takes them; meanwhile another
 * client comes and goes.  Both streams arrive whole, in order.
 */
START_TEST(a_long_reply_reaches_a_reader_that_takes_its_time_whole)
{
	struct cg *cg = h_open(H_DAEMON), *other;
	size_t len = (size_t)REGIONS * 2 * 4096;
	struct tally first = { 0 }, second = { 0 };
	struct slow s = { .sock = -1 };
	struct cg__req req;
	char *p = h_map(H_4K, len, 'L');

	for (int i = 0; i < REGIONS; i++)
		ck_assert_int_eq(cg_register(cg, p + (size_t)i * 2 * 4096, 4096, 0), 0);
	slow_connect(&s);
	cg__req_init(&req, CG_OP_STATUS);
	ck_assert_int_eq(cg__send(s.sock, &req, sizeof(req), -1), 0);
	ck_assert_int_eq(cg__send(s.sock, &req, sizeof(req), -1), 0);
	other = h_open(H_DAEMON);
	read_stream(s.sock, getpid(), &first);
	cg_close(other);
	read_stream(s.sock, getpid(), &second);
	/* The other client has our pid and no regions: listed or not. */
	ck_assert_int_eq(first.end_status, 0);
	ck_assert(first.clients == 1 || first.clients == 2);
	ck_assert_int_eq(first.regions, REGIONS);
	ck_assert_int_eq(second.end_status, 0);
	ck_assert(second.clients == 1 || second.clients == 2);
	ck_assert_int_eq(second.regions, REGIONS);
	close(s.sock);
	cg_close(cg);
	munmap(p, len);
}
END_TEST

/* ---- a client that never reads ---------------------------------------- */

#define NEVER_READS_MAX_MS 500	/* the old daemon waited 1 s per reply */

/* The daemon's log holds text (our own daemon only). */
static bool logged(const char *text)
{
	char path[256], *line = NULL;
	size_t cap = 0;
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "%s.log", h_socket());
	f = fopen(path, "re");
	ck_assert(f != NULL);
	while (!found && getline(&line, &cap, f) > 0)
		found = strstr(line, text) != NULL;
	free(line);
	fclose(f);
	return found;
}

/*
 * A tracked client that sends QUERY after QUERY and reads nothing: its
 * replies fill its socket, then its queue, and it is dropped there, at
 * once, not after a wait that would hold everyone else.
 */
START_TEST(a_client_that_never_reads_is_dropped_at_its_queue_bound)
{
	struct cg__client c = { .sock = -1 };
	struct cg__req req;
	double start, ms;
	int sent = 0;

	ck_assert_int_eq(cg__client_open(&c, h_socket()), 0);
	cg__req_init(&req, CG_OP_QUERY);
	req.addr = 4096;	/* in no region: -ENOENT, a reply all the same */
	start = now_ms();
	for (;;) {
		struct pollfd p = { .fd = c.sock, .events = POLLOUT };

		ck_assert_msg(poll(&p, 1, 3000) == 1, "not dropped after %d "
			      "requests", sent);
		if (p.revents & (POLLHUP | POLLERR))
			break;
		if (send(c.sock, &req, sizeof(req), MSG_DONTWAIT | MSG_NOSIGNAL) ==
		    sizeof(req))
			sent++;
	}
	ms = now_ms() - start;
	printf("never reads: dropped after %d requests, %.0f ms\n", sent, ms);
	fflush(stdout);
	cg__client_close(&c);
	ck_assert_msg(ms < NEVER_READS_MAX_MS, "dropped after %.0f ms", ms);
	if (h_daemon_pid() > 0)
		ck_assert(logged("its queue is full"));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("a client that reads slowly stalls no one");
	TCase *tc = tcase_create("slow reader");

	h_timeout(tc, 60);
	tcase_add_test(tc, a_client_that_reads_its_replies_slowly_stalls_no_other_client);
	tcase_add_test(tc, a_long_reply_reaches_a_reader_that_takes_its_time_whole);
	tcase_add_test(tc, a_client_that_never_reads_is_dropped_at_its_queue_bound);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
