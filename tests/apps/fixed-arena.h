/* SPDX-License-Identifier: MIT */
/*
 * An arena at an address of its own choosing, the kind of state
 * `cowguard-run --restore` brings back: where it lies, what each page of
 * it holds for a seed, and which pages are holes (never written: zeros).
 * Shared by tests/apps/fixed-arena.c and the test that snapshots it.
 */
#ifndef CG_TESTS_APPS_FIXED_ARENA_H
#define CG_TESTS_APPS_FIXED_ARENA_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define ARENA_ADDR ((void *)0x2c0000000000ULL)	/* far from mmap's base */
#define ARENA_LEN (8UL << 20)
#define ARENA_PAGE 4096UL

static inline bool arena_hole(uint64_t page)
{
	return page % 8 == 5;
}

static inline void arena_fill(char *p, uint64_t seed)
{
	for (uint64_t page = 0; page < ARENA_LEN / ARENA_PAGE; page++) {
		char *x = p + page * ARENA_PAGE;

		if (arena_hole(page))
			continue;
		memset(x, (int)((page * 7 + seed) & 0xff), ARENA_PAGE);
		memcpy(x, &(uint64_t){ page ^ seed }, sizeof(uint64_t));
	}
}

/* The first page that differs from arena_fill()'s, or -1. */
static inline long arena_differs(const char *p, uint64_t seed)
{
	static char want[ARENA_PAGE];

	for (uint64_t page = 0; page < ARENA_LEN / ARENA_PAGE; page++) {
		memset(want, arena_hole(page) ? 0 : (int)((page * 7 + seed) & 0xff),
		       ARENA_PAGE);
		if (!arena_hole(page))
			memcpy(want, &(uint64_t){ page ^ seed }, sizeof(uint64_t));
		if (memcmp(p + page * ARENA_PAGE, want, ARENA_PAGE))
			return (long)page;
	}
	return -1;
}

#endif
