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
#include <unistd.h>

#include "client.h"
#include "harness.h"
#include "victim.h"
#include "wire.h"
#include "wire/protocol.h"

#define PAGES 400		/* one write fault and one query each */
#define VICTIM_MAX_MS 8000	/* it stops there, done or not */
#define MIN_DONE 200		/* queries it must have done to judge */
#define P99_MAX_MS 50.0
#define BURST_EVERY_MS 900	/* the slow reader's rhythm */
#define BURST_PACKETS 8

/* ---- the slow reader -------------------------------------------------- */

struct slow {
	int sock;		/* -1 between connections */
	double next_burst;	/* when it reads a few packets next */
	int sent, drops;
};

static void slow_connect(struct slow *s)
{
	struct cg__req req;
	struct cg__rep rep;
	struct pollfd p;

	s->sock = wire_connect(h_socket());
	ck_assert_int_ge(s->sock, 0);
	cg__req_init(&req, CG_OP_CTL_HELLO);
	ck_assert_int_eq(cg__send(s->sock, &req, sizeof(req), -1), 0);
	p = (struct pollfd){ .fd = s->sock, .events = POLLIN };
	ck_assert_int_eq(poll(&p, 1, 5000), 1);
	ck_assert_int_eq(cg__recv(s->sock, &rep, sizeof(rep), NULL), 0);
	ck_assert_int_eq(rep.status, 0);
	s->next_burst = h_now_ms() + BURST_EVERY_MS;
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
	s->next_burst = h_now_ms() + BURST_EVERY_MS;
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
		int wait = s->sock < 0 ? 100 : (int)(s->next_burst - h_now_ms());

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
		if (h_now_ms() >= s->next_burst && !slow_burst(s))
			continue;
		if ((p[1].revents & POLLOUT) &&
		    send(s->sock, &req, sizeof(req), MSG_DONTWAIT | MSG_NOSIGNAL) ==
			    sizeof(req))
			s->sent++;
	}
}

START_TEST(a_client_that_reads_its_replies_slowly_stalls_no_other_client)
{
	/* Each page once, 2 ms apart; the slow reader runs until it reports. */
	const struct victim_spec spec = {
		.socket = h_socket(), .pages = PAGES, .turns = PAGES,
		.max_ms = VICTIM_MAX_MS, .pause_ms = 2,
	};
	struct victim_result r;
	struct slow s = { .sock = -1 };
	struct victim v = victim_start(&spec);

	slow_connect(&s);
	victim_go(&v);
	slow_run(&s, v.result);
	r = victim_finish(&v);
	if (s.sock >= 0)
		close(s.sock);
	printf("slow reader: %d STATUS requests sent, dropped %d times; victim: "
	       "%d pages, write p99 %.1f ms (max %.1f), query p99 %.1f ms "
	       "(max %.1f)\n", s.sent, s.drops, r.done, r.write.p99, r.write.max,
	       r.query.p99, r.query.max);
	fflush(stdout);
	victim_assert_enough(&r, &spec, MIN_DONE, NULL);
	ck_assert_msg(r.query.p99 < P99_MAX_MS, "query p99 %.1f ms", r.query.p99);
	ck_assert_msg(r.write.p99 < P99_MAX_MS, "write fault p99 %.1f ms",
		      r.write.p99);
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
			h_sleep_ms(20);
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
	start = h_now_ms();
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
	ms = h_now_ms() - start;
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
	h_add(tc, a_client_that_reads_its_replies_slowly_stalls_no_other_client);
	h_add(tc, a_long_reply_reaches_a_reader_that_takes_its_time_whole);
	h_add(tc, a_client_that_never_reads_is_dropped_at_its_queue_bound);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
