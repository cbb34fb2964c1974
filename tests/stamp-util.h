/* SPDX-License-Identifier: MIT */
/*
 * Writers that stamp every page round a range, and the check that an
 * image holds the memory of one instant of them: for each writer, a
 * prefix of its writes (tests/test-a-snapshot-is-the-memory-of-one-instant.c
 * says why that is the test).
 *
 * Writer id stamps a word of its own (the (1 + id)th of each 4 KiB page),
 * page after page, with the count of its writes so far.
 */
#ifndef CG_TESTS_STAMP_UTIL_H
#define CG_TESTS_STAMP_UTIL_H

#include <check.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "pin-util.h"

struct writer {
	char *p;
	size_t pages;
	unsigned id;
	_Atomic bool stop;
	_Atomic uint64_t done;	/* writes finished */
};

/* Writer id's word of page. */
static inline volatile uint64_t *word(char *p, size_t page, unsigned id)
{
	return (volatile uint64_t *)(p + page * PG) + 1 + id;
}

static inline void *writer_main(void *arg)
{
	struct writer *w = arg;

	for (uint64_t k = atomic_load(&w->done); !atomic_load(&w->stop); k++) {
		*word(w->p, k % w->pages, w->id) = k + 1;
		atomic_store(&w->done, k + 1);
	}
	return NULL;
}

/*
 * Writer id's prefix in img: every page as its first m writes left it,
 * m between before (writes done when the snapshot was asked for) and
 * after (done when it returned).
 */
static inline void check_prefix(char *img, size_t pages, unsigned id,
				uint64_t before, uint64_t after)
{
	uint64_t m = 0;

	for (size_t page = 0; page < pages; page++)
		if (*word(img, page, id) > m)
			m = *word(img, page, id);
	ck_assert_msg(m >= before && m <= after + 1,
		      "writer %u: the image holds its write %llu, but %llu were "
		      "done before the call and %llu when it returned", id,
		      (unsigned long long)m, (unsigned long long)before,
		      (unsigned long long)after);
	for (size_t page = 0; page < pages; page++) {
		/* The last write k < m with k % pages == page, stamped k + 1. */
		uint64_t want = m > page ? m - (m - 1 - page) % pages : 0;

		ck_assert_msg(*word(img, page, id) == want,
			      "writer %u, page %zu: the image holds stamp %llu, "
			      "the instant of stamp %llu held %llu", id, page,
			      (unsigned long long)*word(img, page, id),
			      (unsigned long long)m, (unsigned long long)want);
	}
}

#endif
