// SPDX-License-Identifier: MIT
/*
 * Pins, forks and writes all at once lose no write.  Three writer threads
 * keep writing into a registered 8 MiB region while the main thread, for a
 * few hundred iterations, pins and unpins random sub-ranges (read-only or
 * read-write; a consumer holds plain references, vmsplice()'s into a
 * pipe, so each pin is MADV_DONTFORK while it lasts) and every few
 * iterations forks a child that checks its snapshot and exits while the
 * writers go on.
 *
 * Each writer owns one 8-byte word per page and, before each write, reads
 * it back: its own last write must be there.  It writes with a single
 * aligned store: (its sequence number << 32) | a checksum of sequence,
 * page and writer.  A snapshot (the child's) therefore never holds a torn
 * word: every word is 0 or checks out for its page and writer.  Each
 * writer remembers, outside the region, the last sequence number it wrote
 * to each page.  At the end every word must hold exactly that: a write
 * lost, or left in a page that was replaced under it (an unshare done as
 * copy-then-swap, say), shows as an older sequence number.  And no unpin
 * may report a violation, nor the audit a mismatch.
 *
 * Bounded in time: the loop stops after 300 iterations or 5 s.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "pin-util.h"

#define LEN (8 * MIB)
#define NPAGES (LEN / PG)
#define WRITERS 3
#define ITERATIONS 300
#define SECONDS 5.0
#define FORK_EVERY 8
#define MAX_PIN_PAGES 128	/* 512 KiB */

static uint32_t checksum(uint32_t seq, size_t page, unsigned writer)
{
	uint64_t x = ((uint64_t)seq << 24) ^ ((uint64_t)page << 2) ^ writer;

	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return (uint32_t)x | 1;	/* never 0: a written word is never 0 */
}

static uint64_t word(uint32_t seq, size_t page, unsigned writer)
{
	return (uint64_t)seq << 32 | checksum(seq, page, writer);
}

/* The word of writer w in page i: one cache line apart per writer. */
static volatile uint64_t *slot(char *p, size_t i, unsigned w)
{
	return (volatile uint64_t *)(p + i * PG + 64 * w);
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

struct writer {
	pthread_t thread;
	char *p;
	unsigned id;
	atomic_bool *stop;
	uint32_t last[NPAGES];	/* last sequence written to each page */
	uint64_t writes;
	uint64_t seed;
	/* Reads of our own word that did not find our last write there. */
	uint64_t lost, lost_page, lost_got, lost_want;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	uint64_t want, got;
	uint32_t seq = 0;

	while (!atomic_load_explicit(w->stop, memory_order_relaxed)) {
		size_t i = rnd(&w->seed) % NPAGES;

		/* Our own last write to this word must still be there. */
		want = w->last[i] ? word(w->last[i], i, w->id) : 0;
		got = *slot(w->p, i, w->id);
		if (got != want && !w->lost++) {
			w->lost_page = i;
			w->lost_got = got;
			w->lost_want = want;
		}
		seq++;
		*slot(w->p, i, w->id) = word(seq, i, w->id);
		w->last[i] = seq;
		w->writes++;
	}
	return NULL;
}

/* Every word the snapshot maps is 0 or well formed.  Run in the child. */
struct snapshot {
	char *p;
	uint64_t skip_start, skip_len;	/* the range pinned at fork: unmapped */
};

static int check_snapshot(void *arg)
{
	struct snapshot *s = arg;

	for (size_t i = 0; i < NPAGES; i++) {
		uint64_t a = (uintptr_t)s->p + i * PG;

		if (a >= s->skip_start && a - s->skip_start < s->skip_len)
			continue;
		for (unsigned w = 0; w < WRITERS; w++) {
			uint64_t v = *slot(s->p, i, w);

			if (v && (uint32_t)v != checksum(v >> 32, i, w))
				return 3;
		}
	}
	return 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * What a consumer of plain references holds while a pin lasts: the range
 * vmsplice()d into a pipe, drained after the unpin.  Without it nothing
 * kept the kernel from migrating a pinned page (once in the 5.10 guest a
 * pinned THP was found replaced at unpin), and that is the case the pins
 * are for: there a write to a write-protected page a consumer holds copies
 * it away from the consumer.
 */
struct consumer {
	int fd[2];
};

static void consumer_open(struct consumer *c)
{
	ck_assert_int_eq(pipe2(c->fd, O_CLOEXEC), 0);
	ck_assert_int_ge(fcntl(c->fd[1], F_SETPIPE_SZ, 2 * MAX_PIN_PAGES * PG), 0);
}

static void consumer_take(struct consumer *c, char *p, size_t len)
{
	for (size_t done = 0; done < len;) {
		struct iovec iov = { p + done, len - done };
		ssize_t n = vmsplice(c->fd[1], &iov, 1, 0);

		ck_assert_msg(n > 0, "vmsplice: %s", strerror(errno));
		done += (size_t)n;
	}
}

static void consumer_drop(struct consumer *c, size_t len)
{
	static char sink[MAX_PIN_PAGES * PG];

	for (size_t done = 0; done < len;) {
		ssize_t n = read(c->fd[0], sink, len - done);

		ck_assert_msg(n > 0, "pipe read: %s", strerror(errno));
		done += (size_t)n;
	}
}

static void consumer_close(struct consumer *c)
{
	close(c->fd[0]);
	close(c->fd[1]);
}

/* Pin a random sub-range, check it, unpin: returns pins taken (0 or 1). */
static int pin_one(struct cg *cg, char *p, uint64_t *seed, char **pinned,
		   size_t *plen, struct cg_pin **pin)
{
	size_t n = 1 + rnd(seed) % MAX_PIN_PAGES;
	size_t first = rnd(seed) % (NPAGES - n + 1);
	unsigned flags = rnd(seed) % 4 ? CG_PIN_RO : CG_PIN_RW;
	int ret;

	*pinned = p + first * PG;
	*plen = n * PG;
	/* -EAGAIN: the range kept changing under the pin; documented. */
	for (int tries = 0; tries < 5; tries++) {
		ret = cg_pin(cg, *pinned, *plen, flags, pin);
		if (ret != -EAGAIN)
			break;
	}
	ck_assert_msg(ret == 0, "cg_pin(page %zu, %zu pages): %s", first, n,
		      cg_strerror(ret));
	/* Ours in the engine and the kernel, at both ends. */
	for (size_t off = 0; off < *plen; off += *plen - PG) {
		struct cg_page_info q = ph_query(cg, *pinned + off);

		ck_assert_msg(q.exclusive && q.pins == 1 &&
			      h_kpage(*pinned + off).mapped_once,
			      "pinned page %zu: exclusive %d pins %u, mapped once "
			      "%d", first + off / PG, q.exclusive, q.pins,
			      h_kpage(*pinned + off).mapped_once);
		if (*plen == PG)
			break;
	}
	return 1;
}

START_TEST(writes_racing_pins_and_forks_all_land)
{
	enum h_kind kind = H_KIND(_i);
	struct writer *w = calloc(WRITERS, sizeof(*w));
	atomic_bool stop = false;
	uint64_t seed = (uint64_t)time(NULL) * 2654435761u + (uint64_t)_i + 1;
	pid_t children[ITERATIONS / FORK_EVERY + 1];
	size_t nchildren = 0, iterations = 0, pins = 0;
	struct cg_audit_report a;
	struct cg_stats s0, s1;
	struct consumer consumer;
	char *p = h_map(kind, LEN, 0);
	double t0 = now_s();
	struct cg *cg;

	ck_assert_ptr_nonnull(w);
	if (!p || (H_MODE(_i) == H_EMBEDDED &&
		   !h_fork_safe_allocator("embedded: forks while the handler "
					  "thread runs")))
		goto out_free;
	printf("stress %s %s: seed %#llx\n", h_mode_name(H_MODE(_i)),
	       h_kind_name(kind), (unsigned long long)seed);
	/* Said now: a failed cell's buffered output is lost. */
	fflush(stdout);
	consumer_open(&consumer);
	cg = h_open(H_MODE(_i));
	ck_assert_int_eq(cg_register(cg, p, LEN, 0), 0);
	s0 = ph_stats(cg);
	for (unsigned i = 0; i < WRITERS; i++) {
		w[i] = (struct writer){ .p = p, .id = i, .stop = &stop,
					.seed = rnd(&seed) | 1 };
		ck_assert_int_eq(pthread_create(&w[i].thread, NULL, writer_main,
						&w[i]), 0);
	}

	for (; iterations < ITERATIONS && now_s() - t0 < SECONDS; iterations++) {
		struct cg_pin *pin;
		char *pinned;
		size_t plen;

		pins += pin_one(cg, p, &seed, &pinned, &plen, &pin);
		consumer_take(&consumer, pinned, plen);
		if (iterations % FORK_EVERY == 0) {
			/* The child keeps the rest shared while the writers go on. */
			struct snapshot snap = { p, (uintptr_t)pinned, plen };

			children[nchildren++] = h_fork(check_snapshot, &snap);
		}
		ck_assert_int_eq(cg_unpin(pin), 0);
		consumer_drop(&consumer, plen);
		/* Reap the child forked last time; the new one runs on. */
		if (iterations % FORK_EVERY == FORK_EVERY / 2 && nchildren)
			ck_assert_msg(h_wait(children[nchildren - 1]) == 0,
				      "a child saw a torn or foreign word");
	}
	atomic_store(&stop, true);
	for (unsigned i = 0; i < WRITERS; i++)
		pthread_join(w[i].thread, NULL);
	for (size_t i = 0; i < nchildren; i++) {
		int status;

		/* Those reaped in the loop are gone (ECHILD). */
		if (waitpid(children[i], &status, 0) == children[i])
			ck_assert_msg(WIFEXITED(status) && !WEXITSTATUS(status),
				      "child %zu: status %#x", i, status);
	}

	for (unsigned t = 0; t < WRITERS; t++)
		ck_assert_msg(!w[t].lost, "writer %u found %llu of its writes "
			      "gone, first in page %llu: sequence %llu, want %llu",
			      t, (unsigned long long)w[t].lost,
			      (unsigned long long)w[t].lost_page,
			      (unsigned long long)(w[t].lost_got >> 32),
			      (unsigned long long)(w[t].lost_want >> 32));
	/* Every word holds the last write of its writer. */
	for (size_t i = 0; i < NPAGES; i++)
		for (unsigned t = 0; t < WRITERS; t++) {
			uint64_t want = w[t].last[i] ? word(w[t].last[i], i, t) : 0;
			uint64_t got = *slot(p, i, t);

			ck_assert_msg(got == want, "page %zu, writer %u: sequence "
				      "%u (checksum %s), want %u: a write was lost",
				      i, t, (unsigned)(got >> 32),
				      (uint32_t)got == checksum(got >> 32, i, t)
					      ? "good" : "bad",
				      w[t].last[i]);
		}
	s1 = ph_stats(cg);
	ck_assert_uint_eq(s1.pin_violations, s0.pin_violations);
	ck_assert_uint_eq(s1.pins, 0);
	ck_assert_uint_gt(s1.fork_events, s0.fork_events);
	ck_assert_int_eq(cg_audit(cg, p, LEN, &a, sizeof(a)), 0);
	ck_assert_msg(a.unsafe == 0, "%llu pages exclusive for the engine are "
		      "shared in the kernel", (unsigned long long)a.unsafe);
	if (a.conservative) {
		/*
		 * Known (README, "Known, counted conservative cases"): a write
		 * racing fork() in another thread can be resolved before the
		 * fork is applied (embedded: before the parent's atfork handler;
		 * daemon: a fault read a batch before the fork event), then be
		 * marked shared although the kernel copied the page.  Measured:
		 * none when the writers pause around each fork.  Never unsafe
		 * (asserted above), and a pin of the whole range makes the
		 * engine exact again.
		 */
		struct cg_pin *all;

		printf("stress %s %s: %llu conservative pages (writes racing "
		       "fork)\n", h_mode_name(H_MODE(_i)), h_kind_name(kind),
		       (unsigned long long)a.conservative);
		ck_assert_int_eq(cg_pin(cg, p, LEN, CG_PIN_RO, &all), 0);
		ck_assert_int_eq(cg_unpin(all), 0);
	}
	h_audit_clean(cg, p, LEN);
	printf("stress %s %s: %zu iterations, %zu pins, %zu forks, %llu+%llu+%llu "
	       "writes, %llu WP faults, %llu pages copied by pins, %.1f s\n",
	       h_mode_name(H_MODE(_i)), h_kind_name(kind), iterations, pins,
	       nchildren, (unsigned long long)w[0].writes,
	       (unsigned long long)w[1].writes, (unsigned long long)w[2].writes,
	       (unsigned long long)(s1.wp_faults - s0.wp_faults),
	       (unsigned long long)(s1.unshare_copies - s0.unshare_copies),
	       now_s() - t0);
	cg_close(cg);
	consumer_close(&consumer);
	munmap(p, LEN);
out_free:
	free(w);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pin stress keeps every write");
	TCase *tc = tcase_create("stress");

	h_timeout(tc, 20);
	/* _i: mode * 2 + (0: 4 KiB, 1: THP) */
	h_add_test(tc, writes_racing_pins_and_forks_all_land, H_MODES, H_KINDS_SMALL);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
