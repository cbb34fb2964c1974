/* SPDX-License-Identifier: MIT */
/*
 * A transaction under an unshare that drops pages and fills them back (a
 * THP moved in, 4 KiB pages copied back): writer threads stamp sequence
 * numbers into a word of every page, a reader checks that no word it reads
 * is ever zero, and the test parks them all around each check.  Shared by
 * the tests that race such unshares; the range is at most TX_PAGES pages.
 */
#ifndef CG_TESTS_TRANSACT_H
#define CG_TESTS_TRANSACT_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "harness.h"
#include "pin-util.h"

#define TX_PAGES (32 * MIB / PG)
#define WRITERS 2
/* The stamped word of each page: byte 0 stays as the child saw it. */
#define SLOT 8

struct shared_state {
	char *_Atomic p;	/* this round's range */
	size_t pages;		/* its length, at most TX_PAGES */
	_Atomic bool go, stop;
	_Atomic unsigned stops;		/* park_all() calls */
	_Atomic unsigned ack[WRITERS + 1];	/* the last seen, per thread */
	_Atomic uint64_t zeros_seen, reads;
	uint64_t last[TX_PAGES];	/* what each page's writer stamped last */
};

struct writer {
	struct shared_state *s;
	unsigned id;
	uint64_t seq;
};

static inline volatile uint64_t *slot(char *p, size_t page)
{
	return (volatile uint64_t *)(p + page * PG + SLOT);
}

/*
 * Whether to make one more access.  The thread first acknowledges the last
 * stop it saw, so that once every thread has acknowledged a stop, each has
 * finished its access and reads go cleared (park_all sets it first).
 */
static inline bool running(struct shared_state *s, unsigned id)
{
	atomic_store(&s->ack[id], atomic_load(&s->stops));
	if (atomic_load(&s->go))
		return true;
	sched_yield();
	return false;
}

/* Nothing is written or read from here until the next go_all. */
static inline void park_all(struct shared_state *s)
{
	unsigned stop;

	atomic_store(&s->go, false);
	stop = atomic_fetch_add(&s->stops, 1) + 1;
	for (unsigned id = 0; id <= WRITERS; id++)
		while (atomic_load(&s->ack[id]) != stop)
			sched_yield();
}

static inline void go_all(struct shared_state *s)
{
	atomic_store(&s->go, true);
}

/* Writer id owns the pages page % WRITERS == id, written in a scattered order. */
static inline void *writer_main(void *arg)
{
	struct writer *w = arg;
	struct shared_state *s = w->s;
	unsigned x = w->id * 7919 + 1;

	while (!atomic_load(&s->stop)) {
		size_t page;

		if (!running(s, w->id))
			continue;
		x = x * 1103515245 + 12345;
		page = ((x >> 8) % (s->pages / WRITERS)) * WRITERS + w->id;
		*slot(s->p, page) = ++w->seq;
		s->last[page] = w->seq;
	}
	return NULL;
}

static inline void *reader_main(void *arg)
{
	struct shared_state *s = arg;
	unsigned x = 4242;

	while (!atomic_load(&s->stop)) {
		if (!running(s, WRITERS))
			continue;
		x = x * 1103515245 + 12345;
		if (!*slot(s->p, (x >> 8) % s->pages))
			atomic_fetch_add(&s->zeros_seen, 1);
		atomic_fetch_add(&s->reads, 1);
	}
	return NULL;
}

/* Every page holds what its writer stamped last. */
static inline void check_no_write_lost(struct shared_state *s, char *p, int round)
{
	for (size_t page = 0; page < s->pages; page++) {
		uint64_t want = s->last[page] ? s->last[page] : 0x4141414141414141ULL;

		ck_assert_msg(*slot(p, page) == want,
			      "round %d: page %zu holds %#llx, its writer stamped "
			      "%#llx last", round, page,
			      (unsigned long long)*slot(p, page),
			      (unsigned long long)want);
	}
}

/* The writers and the reader of one test. */
struct tx_threads {
	struct writer w[WRITERS];
	pthread_t wt[WRITERS], rt;
};

/* Start them, idle until go_all(). */
static inline void tx_start(struct shared_state *s, struct tx_threads *t)
{
	for (unsigned i = 0; i < WRITERS; i++) {
		t->w[i] = (struct writer){ .s = s, .id = i };
		ck_assert_int_eq(pthread_create(&t->wt[i], NULL, writer_main,
						&t->w[i]), 0);
	}
	ck_assert_int_eq(pthread_create(&t->rt, NULL, reader_main, s), 0);
}

/* The writes made so far, while they run. */
static inline uint64_t tx_writes(const struct tx_threads *t)
{
	uint64_t writes = 0;

	for (unsigned i = 0; i < WRITERS; i++)
		writes += __atomic_load_n(&t->w[i].seq, __ATOMIC_RELAXED);
	return writes;
}

/* Stop and join them; the writes they made. */
static inline uint64_t tx_stop(struct shared_state *s, struct tx_threads *t)
{
	atomic_store(&s->stop, true);
	for (unsigned i = 0; i < WRITERS; i++)
		pthread_join(t->wt[i], NULL);
	pthread_join(t->rt, NULL);
	return tx_writes(t);
}

/*
 * Write to the page at each step of [p, p+len) that seen() picks (one
 * cowguard calls protected, say): each write must be seen, a write fault
 * each, so the protection was put back after the unshare.
 */
static inline void tx_writes_are_seen(struct cg *cg, struct shared_state *s,
				      char *p, size_t len, size_t step,
				      bool (*seen)(struct cg *, char *), int round)
{
	struct cg_stats st0 = ph_stats(cg), st1;
	uint64_t written = 0;

	for (size_t off = 0; off < len; off += step) {
		size_t page = off / PG;

		if (!seen(cg, p + off))
			continue;
		written++;
		*slot(p, page) = s->last[page] = 0x5eedULL + page;
	}
	st1 = ph_stats(cg);
	ck_assert_msg(st1.wp_faults - st0.wp_faults >= written,
		      "round %d: %llu writes to protected pages after the pin, "
		      "%llu seen", round, (unsigned long long)written,
		      (unsigned long long)(st1.wp_faults - st0.wp_faults));
}

#endif
