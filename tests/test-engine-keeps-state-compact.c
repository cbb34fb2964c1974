// SPDX-License-Identifier: MIT
/*
 * The page-state engine (lib/engine/pagestate.h), alone: no kernel, no handle.  It
 * keeps a nibble per 4 KiB page only where pages differ, so that a uniform
 * region costs 16 bytes per 2 MiB and a fully diverged one 4 bits per page,
 * and it keeps the kernel's units: a hugetlb page is never cut, a
 * PMD-mapped THP is split by any partial operation.
 *
 * Bugs this catches: state lost or smeared onto neighbours by update,
 * clipping, extract (mremap) or clone; a chunk that diverges without need
 * or never collapses back (memory growing with every fault); a hugetlb unit
 * updated in part; a partial operation leaving a THP chunk "PMD-mapped";
 * splits miscounted; walks that do not merge, or merge different states.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/pagestate.h"
#include "harness.h"

#define PG CG_PAGE_SIZE
#define P CG_ST_PRESENT
#define E CG_ST_EXCL
#define D CG_ST_DIRTY
#define W CG_ST_WP

/* Somewhere chunk aligned, far from zero, like a real mapping. */
#define BASE 0x7f0000000000ULL

static struct cg__region *new_region(uint64_t start, uint64_t len,
				     enum cg__rkind kind, unsigned shift)
{
	struct cg__region *r = cg__region_new(start, len, kind, shift);

	ck_assert_ptr_nonnull(r);
	return r;
}

static size_t overhead(const struct cg__region *r)
{
	return sizeof(*r);
}

/* Bytes of state beyond the region header, per chunk. */
static size_t per_chunk(const struct cg__region *r)
{
	return (cg__region_footprint(r) - overhead(r)) / r->nchunks;
}

/* A state that differs from page to page, covering all 16 values. */
static unsigned pattern(uint64_t i)
{
	return (unsigned)((i * 7 + 3) & CG_ST_ALL);
}

struct runs {
	struct cg__run v[64];
	size_t n;
	int stop_after;		/* return 1 after this many runs; 0: never */
};

static int record(const struct cg__run *run, void *arg)
{
	struct runs *rs = arg;

	ck_assert_uint_lt(rs->n, 64);
	rs->v[rs->n++] = *run;
	return rs->stop_after && (int)rs->n == rs->stop_after;
}

static void assert_run(const struct runs *rs, size_t i, uint64_t start,
		       uint64_t len, unsigned state, bool huge)
{
	ck_assert_uint_gt(rs->n, i);
	ck_assert_msg(rs->v[i].start == start && rs->v[i].len == len &&
			      rs->v[i].state == state && rs->v[i].huge == huge,
		      "run %zu: %#llx+%#llx state %#x huge %d; want %#llx+%#llx "
		      "state %#x huge %d", i, (unsigned long long)rs->v[i].start,
		      (unsigned long long)rs->v[i].len, rs->v[i].state,
		      rs->v[i].huge, (unsigned long long)start,
		      (unsigned long long)len, state, huge);
}

START_TEST(a_new_region_is_one_uniform_empty_chunk_per_2_mib)
{
	struct cg__region *r = new_region(BASE + PG, 3 * CG_PMD_SIZE, CG_RK_4K, 12);

	/* Unaligned: [2M chunk 0 from 4K] [chunk 1] [chunk 2] [chunk 3 to 4K]. */
	ck_assert_uint_eq(r->base, BASE);
	ck_assert_uint_eq(r->nchunks, 4);
	ck_assert_uint_eq(r->chunk_shift, 21);
	for (uint64_t a = r->start; a < r->start + r->len; a += 64 * PG)
		ck_assert_uint_eq(cg__region_get(r, a), 0);
	ck_assert(cg__region_contains(r, BASE + PG, 3 * CG_PMD_SIZE));
	ck_assert(cg__region_contains(r, BASE + 3 * CG_PMD_SIZE, PG));
	ck_assert(!cg__region_contains(r, BASE, PG));
	ck_assert(!cg__region_contains(r, BASE + 3 * CG_PMD_SIZE + PG, PG));
	ck_assert(!cg__region_contains(r, BASE + 3 * CG_PMD_SIZE, 2 * PG));
	ck_assert(!cg__region_contains(r, BASE + 2 * PG, UINT64_MAX - PG));
	ck_assert_str_eq(cg__rkind_name(r), "4 KiB");
	ck_assert_uint_le(per_chunk(r), 16);
	cg__region_free(r);
}
END_TEST

START_TEST(update_clears_then_sets_bits_on_exactly_the_pages_given)
{
	struct cg__region *r = new_region(BASE, 16 * PG, CG_RK_4K, 12);
	uint64_t s, l;

	ck_assert_int_eq(cg__region_update(r, BASE, 16 * PG, 0, P | E | W), 0);
	/* Clear first, then set: a bit in both ends up set. */
	ck_assert_int_eq(cg__region_update(r, BASE + 3 * PG, 2 * PG, W | E, D | E), 0);
	for (int i = 0; i < 16; i++) {
		unsigned want = i == 3 || i == 4 ? (P | E | D) : (P | E | W);

		ck_assert_msg(cg__region_get(r, BASE + i * PG) == want,
			      "page %d: %#x, want %#x", i,
			      cg__region_get(r, BASE + i * PG), want);
	}
	/* Any address in a page speaks for the page. */
	ck_assert_uint_eq(cg__region_get(r, BASE + 3 * PG + 123), P | E | D);
	/* Clipped to the region: outside it nothing happens. */
	ck_assert_int_eq(cg__region_update(r, BASE - 4 * PG, 5 * PG, CG_ST_ALL, D), 0);
	ck_assert_uint_eq(cg__region_get(r, BASE), D);
	ck_assert_uint_eq(cg__region_get(r, BASE + PG), P | E | W);
	ck_assert_int_eq(cg__region_update(r, BASE + 15 * PG, 8 * PG, CG_ST_ALL, 0), 0);
	ck_assert_uint_eq(cg__region_get(r, BASE + 15 * PG), 0);
	ck_assert_uint_eq(cg__region_get(r, BASE + 14 * PG), P | E | W);
	cg__region_unit(r, BASE + 5 * PG + 7, &s, &l);
	ck_assert_uint_eq(s, BASE + 5 * PG);
	ck_assert_uint_eq(l, PG);
	ck_assert(!cg__region_is_huge(r, BASE));
	ck_assert_int_eq(cg__region_set_huge(r, BASE, true, P), -EINVAL);
	cg__region_free(r);
}
END_TEST

START_TEST(a_uniform_1_gib_region_costs_16_bytes_per_2_mib)
{
	struct cg__region *r = new_region(BASE, GIB, CG_RK_4K, 12);
	size_t empty;

	ck_assert_uint_eq(r->nchunks, 512);
	empty = cg__region_footprint(r);
	ck_assert_msg(per_chunk(r) <= 16, "%zu bytes per 2 MiB chunk", per_chunk(r));
	/* Whole-region and whole-chunk updates keep every chunk uniform. */
	ck_assert_int_eq(cg__region_update(r, BASE, GIB, 0, P | E | W), 0);
	ck_assert_int_eq(cg__region_update(r, BASE + 6 * CG_PMD_SIZE,
					   10 * CG_PMD_SIZE, W, D), 0);
	ck_assert_uint_eq(cg__region_footprint(r), empty);
	/* So does a partial update that changes nothing. */
	ck_assert_int_eq(cg__region_update(r, BASE + PG, PG, 0, P), 0);
	ck_assert_uint_eq(cg__region_footprint(r), empty);
	ck_assert_uint_eq(cg__region_get(r, BASE + 7 * CG_PMD_SIZE), P | E | D);
	ck_assert_uint_eq(cg__region_get(r, BASE + 16 * CG_PMD_SIZE), P | E | W);
	cg__region_free(r);
}
END_TEST

START_TEST(a_fully_diverged_chunk_costs_4_bits_per_page_and_collapses_back)
{
	const size_t pages = CG_PMD_SIZE / PG;	/* one chunk */
	struct cg__region *r = new_region(BASE, 4 * CG_PMD_SIZE, CG_RK_4K, 12);
	size_t uniform = cg__region_footprint(r), diverged;

	for (size_t i = 0; i < pages; i++)
		ck_assert_int_eq(cg__region_update(r, BASE + CG_PMD_SIZE + i * PG,
						   PG, CG_ST_ALL, pattern(i)), 0);
	diverged = cg__region_footprint(r);
	ck_assert_msg(diverged - uniform <= pages / 2,
		      "a diverged chunk costs %zu bytes more, want <= %zu",
		      diverged - uniform, pages / 2);
	ck_assert_uint_gt(diverged, uniform);
	for (size_t i = 0; i < pages; i++)
		ck_assert_uint_eq(cg__region_get(r, BASE + CG_PMD_SIZE + i * PG),
				  pattern(i));
	/* The neighbouring chunks are untouched. */
	ck_assert_uint_eq(cg__region_get(r, BASE + CG_PMD_SIZE - PG), 0);
	ck_assert_uint_eq(cg__region_get(r, BASE + 2 * CG_PMD_SIZE), 0);

	/* Page by page back to one state: the nibbles go. */
	for (size_t i = 0; i < pages; i++)
		ck_assert_int_eq(cg__region_update(r, BASE + CG_PMD_SIZE + i * PG,
						   PG, CG_ST_ALL, P | W), 0);
	ck_assert_uint_eq(cg__region_footprint(r), uniform);
	ck_assert_uint_eq(cg__region_get(r, BASE + CG_PMD_SIZE + 77 * PG), P | W);

	/* Diverged again, then one update over the whole chunk. */
	ck_assert_int_eq(cg__region_update(r, BASE + CG_PMD_SIZE + 9 * PG, PG, 0, D), 0);
	ck_assert_uint_gt(cg__region_footprint(r), uniform);
	ck_assert_int_eq(cg__region_update(r, BASE + CG_PMD_SIZE, CG_PMD_SIZE, 0, D), 0);
	ck_assert_uint_eq(cg__region_footprint(r), uniform);
	ck_assert_uint_eq(cg__region_get(r, BASE + CG_PMD_SIZE + 9 * PG), P | W | D);
	cg__region_free(r);
}
END_TEST

START_TEST(a_fully_diverged_1_gib_region_costs_4_bits_per_page_plus_chunks)
{
	struct cg__region *r = new_region(BASE, GIB, CG_RK_4K, 12);
	const uint64_t pages = GIB / PG;
	size_t bytes;

	for (uint64_t i = 0; i < pages; i++)
		ck_assert_int_eq(cg__region_update(r, BASE + i * PG, PG, CG_ST_ALL,
						   pattern(i)), 0);
	bytes = cg__region_footprint(r) - overhead(r);
	ck_assert_msg(bytes <= pages / 2 + 16 * r->nchunks,
		      "%zu bytes for %llu pages", bytes, (unsigned long long)pages);
	for (uint64_t i = 0; i < pages; i += 511)
		ck_assert_uint_eq(cg__region_get(r, BASE + i * PG), pattern(i));
	cg__region_free(r);
}
END_TEST

START_TEST(a_region_starting_mid_chunk_collapses_back_when_its_pages_agree)
{
	/* Pages outside the region share its first and last chunks. */
	struct cg__region *r = new_region(BASE + 5 * PG, CG_PMD_SIZE, CG_RK_4K, 12);
	size_t uniform = cg__region_footprint(r);

	ck_assert_uint_eq(r->nchunks, 2);
	ck_assert_int_eq(cg__region_update(r, BASE + 8 * PG, PG, 0, P), 0);
	ck_assert_uint_gt(cg__region_footprint(r), uniform);
	/* Now every page of the region is present: one state again. */
	ck_assert_int_eq(cg__region_update(r, r->start, r->len, 0, P), 0);
	ck_assert_uint_eq(cg__region_get(r, r->start), P);
	ck_assert_uint_eq(cg__region_get(r, r->start + r->len - PG), P);
	ck_assert_msg(cg__region_footprint(r) == uniform,
		      "footprint %zu, uniform %zu: a chunk did not collapse",
		      cg__region_footprint(r), uniform);
	cg__region_free(r);
}
END_TEST

START_TEST(walk_reports_maximal_runs_and_collect_merges_what_matches)
{
	struct cg__region *r = new_region(BASE, 3 * CG_PMD_SIZE, CG_RK_4K, 12);
	struct runs rs = { 0 };
	struct cg__runs got;

	ck_assert_int_eq(cg__region_update(r, BASE, 3 * CG_PMD_SIZE, 0, P | W), 0);
	ck_assert_int_eq(cg__region_update(r, BASE + 3 * PG, 3 * PG, W, D), 0);
	ck_assert_int_eq(cg__region_update(r, BASE + 6 * PG, 2 * PG, 0, D), 0);
	/* Across chunk boundaries, equal states merge into one run. */
	ck_assert_int_eq(cg__region_walk(r, BASE, 3 * CG_PMD_SIZE, record, &rs), 0);
	ck_assert_uint_eq(rs.n, 4);
	assert_run(&rs, 0, BASE, 3 * PG, P | W, false);
	assert_run(&rs, 1, BASE + 3 * PG, 3 * PG, P | D, false);
	assert_run(&rs, 2, BASE + 6 * PG, 2 * PG, P | W | D, false);
	assert_run(&rs, 3, BASE + 8 * PG, 3 * CG_PMD_SIZE - 8 * PG, P | W, false);
	/* Clipped to the range asked, and to the region. */
	rs.n = 0;
	ck_assert_int_eq(cg__region_walk(r, BASE + 4 * PG, 3 * PG, record, &rs), 0);
	ck_assert_uint_eq(rs.n, 2);
	assert_run(&rs, 0, BASE + 4 * PG, 2 * PG, P | D, false);
	assert_run(&rs, 1, BASE + 6 * PG, PG, P | W | D, false);
	rs.n = 0;
	ck_assert_int_eq(cg__region_walk(r, BASE - PG, 2 * PG, record, &rs), 0);
	ck_assert_uint_eq(rs.n, 1);
	assert_run(&rs, 0, BASE, PG, P | W, false);
	/* A callback's non-zero return stops the walk and is returned. */
	rs = (struct runs){ .stop_after = 2 };
	ck_assert_int_eq(cg__region_walk(r, BASE, 3 * CG_PMD_SIZE, record, &rs), 1);
	ck_assert_uint_eq(rs.n, 2);

	/* Present and unprotected: pages 3-5, one run. */
	ck_assert_int_eq(cg__region_collect(r, BASE, 3 * CG_PMD_SIZE, P | W, P, &got), 0);
	ck_assert_uint_eq(got.n, 1);
	ck_assert_uint_eq(got.v[0].start, BASE + 3 * PG);
	ck_assert_uint_eq(got.v[0].len, 3 * PG);
	cg__runs_free(&got);
	/* Present at all: different states, adjacent, merged into one. */
	ck_assert_int_eq(cg__region_collect(r, BASE, 3 * CG_PMD_SIZE, P, P, &got), 0);
	ck_assert_uint_eq(got.n, 1);
	ck_assert_uint_eq(got.v[0].len, 3 * CG_PMD_SIZE);
	cg__runs_free(&got);
	/* Dirty: pages 3-7, across two states. */
	ck_assert_int_eq(cg__region_collect(r, BASE, 3 * CG_PMD_SIZE, D, D, &got), 0);
	ck_assert_uint_eq(got.n, 1);
	ck_assert_uint_eq(got.v[0].start, BASE + 3 * PG);
	ck_assert_uint_eq(got.v[0].len, 5 * PG);
	cg__runs_free(&got);
	ck_assert_int_eq(cg__region_collect(r, BASE, 3 * CG_PMD_SIZE, E, E, &got), 0);
	ck_assert_uint_eq(got.n, 0);
	cg__runs_free(&got);
	cg__region_free(r);
}
END_TEST

START_TEST(hugetlb_units_are_indivisible)
{
	struct cg__region *r = new_region(BASE, 3 * CG_PMD_SIZE, CG_RK_HUGETLB, 21);
	struct cg__region *g = new_region(BASE, 2 * GIB, CG_RK_HUGETLB, 30);
	size_t uniform = cg__region_footprint(r);
	struct runs rs = { 0 };
	uint64_t s, l;

	ck_assert_str_eq(cg__rkind_name(r), "hugetlb 2 MiB");
	ck_assert_str_eq(cg__rkind_name(g), "hugetlb 1 GiB");
	ck_assert_int_eq(cg__region_update(r, BASE, 3 * CG_PMD_SIZE, 0, P | E | W), 0);
	/* One 4 KiB page of the middle unit: the whole unit changes. */
	ck_assert_int_eq(cg__region_update(r, BASE + CG_PMD_SIZE + 5 * PG, PG, W, D), 0);
	ck_assert_uint_eq(cg__region_get(r, BASE + CG_PMD_SIZE), P | E | D);
	ck_assert_uint_eq(cg__region_get(r, BASE + 2 * CG_PMD_SIZE - PG), P | E | D);
	ck_assert_uint_eq(cg__region_get(r, BASE + CG_PMD_SIZE - PG), P | E | W);
	ck_assert_uint_eq(cg__region_get(r, BASE + 2 * CG_PMD_SIZE), P | E | W);
	ck_assert_uint_eq(cg__region_footprint(r), uniform);
	/* Straddling a boundary takes both units whole. */
	ck_assert_int_eq(cg__region_update(r, BASE + CG_PMD_SIZE - PG, 2 * PG, E, 0), 0);
	ck_assert_uint_eq(cg__region_get(r, BASE), P | W);
	ck_assert_uint_eq(cg__region_get(r, BASE + CG_PMD_SIZE), P | D);
	ck_assert_uint_eq(cg__region_get(r, BASE + 2 * CG_PMD_SIZE), P | E | W);
	ck_assert_uint_eq(cg__region_footprint(r), uniform);
	ck_assert(cg__region_is_huge(r, BASE + 7 * PG));
	cg__region_unit(r, BASE + CG_PMD_SIZE + 9 * PG, &s, &l);
	ck_assert_uint_eq(s, BASE + CG_PMD_SIZE);
	ck_assert_uint_eq(l, CG_PMD_SIZE);
	ck_assert_int_eq(cg__region_walk(r, BASE, 3 * CG_PMD_SIZE, record, &rs), 0);
	ck_assert_uint_eq(rs.n, 3);
	assert_run(&rs, 1, BASE + CG_PMD_SIZE, CG_PMD_SIZE, P | D, true);
	ck_assert_int_eq(cg__region_set_huge(r, BASE, false, 0), -EINVAL);
	ck_assert(cg__region_is_huge(r, BASE));

	/* 1 GiB: one chunk per unit, 16 bytes each, never split. */
	ck_assert_uint_eq(g->nchunks, 2);
	ck_assert_uint_le(per_chunk(g), 16);
	uniform = cg__region_footprint(g);
	ck_assert_int_eq(cg__region_update(g, BASE + GIB + 3 * CG_PMD_SIZE, PG, 0, P | E), 0);
	ck_assert_uint_eq(cg__region_get(g, BASE + GIB), P | E);
	ck_assert_uint_eq(cg__region_get(g, BASE + 2 * GIB - PG), P | E);
	ck_assert_uint_eq(cg__region_get(g, BASE + GIB - PG), 0);
	ck_assert_uint_eq(cg__region_footprint(g), uniform);
	cg__region_unit(g, BASE + GIB + 12345 * PG, &s, &l);
	ck_assert_uint_eq(s, BASE + GIB);
	ck_assert_uint_eq(l, GIB);
	ck_assert_uint_eq(r->splits + g->splits, 0);
	cg__region_free(r);
	cg__region_free(g);
}
END_TEST

START_TEST(a_partial_update_of_a_pmd_mapped_thp_chunk_splits_it_once)
{
	struct cg__region *r = new_region(BASE, 3 * CG_PMD_SIZE, CG_RK_THP, 12);
	uint64_t c0 = BASE, c1 = BASE + CG_PMD_SIZE, c2 = BASE + 2 * CG_PMD_SIZE;
	uint64_t s, l;

	ck_assert_str_eq(cg__rkind_name(r), "THP");
	for (uint64_t c = c0; c <= c2; c += CG_PMD_SIZE)
		ck_assert_int_eq(cg__region_set_huge(r, c, true, P | E | W), 0);
	ck_assert(cg__region_is_huge(r, c0 + 100 * PG));
	cg__region_unit(r, c1 + 100 * PG, &s, &l);
	ck_assert_uint_eq(s, c1);
	ck_assert_uint_eq(l, CG_PMD_SIZE);

	/* A whole-chunk update keeps the PMD mapping. */
	ck_assert_int_eq(cg__region_update(r, c0, CG_PMD_SIZE, W, D), 0);
	ck_assert(cg__region_is_huge(r, c0));
	ck_assert_uint_eq(r->splits, 0);
	ck_assert_uint_eq(cg__region_get(r, c0 + 300 * PG), P | E | D);

	/* One page of chunk 1: split, only that page changes. */
	ck_assert_int_eq(cg__region_update(r, c1 + 5 * PG, PG, W, D), 0);
	ck_assert(!cg__region_is_huge(r, c1));
	ck_assert_uint_eq(r->splits, 1);
	ck_assert_uint_eq(cg__region_get(r, c1 + 5 * PG), P | E | D);
	ck_assert_uint_eq(cg__region_get(r, c1 + 4 * PG), P | E | W);
	ck_assert_uint_eq(cg__region_get(r, c1 + 6 * PG), P | E | W);
	cg__region_unit(r, c1 + 5 * PG, &s, &l);
	ck_assert_uint_eq(s, c1 + 5 * PG);
	ck_assert_uint_eq(l, PG);
	/* Split once is split: no second count. */
	ck_assert_int_eq(cg__region_update(r, c1 + 7 * PG, PG, W, D), 0);
	ck_assert_uint_eq(r->splits, 1);
	/* The kernel splits a PMD for any partial operation, changed or not. */
	ck_assert_int_eq(cg__region_update(r, c2 + 7 * PG, PG, 0, P), 0);
	ck_assert(!cg__region_is_huge(r, c2));
	ck_assert_uint_eq(r->splits, 2);
	ck_assert(cg__region_is_huge(r, c0));
	/* Explicitly, too; and emptying a chunk is no split. */
	ck_assert_int_eq(cg__region_set_huge(r, c0, false, 0), 0);
	ck_assert_uint_eq(r->splits, 3);
	ck_assert_int_eq(cg__region_set_huge(r, c0, true, P | E), 0);
	ck_assert_int_eq(cg__region_update(r, c0, CG_PMD_SIZE, CG_ST_ALL, 0), 0);
	ck_assert(!cg__region_is_huge(r, c0));
	ck_assert_uint_eq(r->splits, 3);
	/* Collapsed again (khugepaged): one state for the whole chunk. */
	ck_assert_int_eq(cg__region_set_huge(r, c1, true, P | W), 0);
	ck_assert(cg__region_is_huge(r, c1));
	ck_assert_uint_eq(cg__region_get(r, c1 + 5 * PG), P | W);
	cg__region_free(r);
}
END_TEST

/* Every page of dst+[0, len) has the state src+[0, len) had in r. */
static void assert_same_pages(const struct cg__region *r, uint64_t src,
			      const struct cg__region *n, uint64_t dst,
			      uint64_t len)
{
	for (uint64_t off = 0; off < len; off += PG)
		ck_assert_msg(cg__region_get(n, dst + off) ==
				      cg__region_get(r, src + off),
			      "page +%#llx: %#x at the destination, %#x at the source",
			      (unsigned long long)off, cg__region_get(n, dst + off),
			      cg__region_get(r, src + off));
}

START_TEST(state_survives_extract_to_another_address_aligned_or_not)
{
	struct cg__region *r = new_region(BASE, 4 * CG_PMD_SIZE, CG_RK_4K, 12);
	static const uint64_t dsts[] = { BASE + 64 * GIB,
					 BASE + 64 * GIB + PG,
					 BASE + 64 * GIB + CG_PMD_SIZE - 3 * PG };

	ck_assert_int_eq(cg__region_update(r, BASE, 4 * CG_PMD_SIZE, 0, P | E | W), 0);
	for (uint64_t i = 0; i < 600; i++)	/* chunk 0 and a bit of 1 */
		ck_assert_int_eq(cg__region_update(r, BASE + i * PG, PG, CG_ST_ALL,
						   pattern(i)), 0);
	ck_assert_int_eq(cg__region_update(r, BASE + 3 * CG_PMD_SIZE + 9 * PG,
					   PG, W, D), 0);
	for (size_t d = 0; d < sizeof(dsts) / sizeof(*dsts); d++) {
		/* All of it, and a piece from the middle. */
		struct cg__region *n = cg__region_extract(r, BASE, r->len, dsts[d]);
		struct cg__region *m = cg__region_extract(r, BASE + 500 * PG,
							  CG_PMD_SIZE + 7 * PG,
							  dsts[d]);

		ck_assert_ptr_nonnull(n);
		ck_assert_ptr_nonnull(m);
		ck_assert_uint_eq(n->start, dsts[d]);
		ck_assert_uint_eq(n->len, r->len);
		ck_assert_uint_eq(m->len, CG_PMD_SIZE + 7 * PG);
		assert_same_pages(r, BASE, n, dsts[d], r->len);
		assert_same_pages(r, BASE + 500 * PG, m, dsts[d], m->len);
		/* No worse than the source: a diverged chunk or two more. */
		ck_assert_uint_le(cg__region_footprint(n),
				  cg__region_footprint(r) + 2 * (CG_PMD_SIZE / PG / 2 + 16));
		cg__region_free(n);
		cg__region_free(m);
	}
	cg__region_free(r);
}
END_TEST

START_TEST(a_thp_extracted_to_an_aligned_address_stays_pmd_mapped_and_unaligned_splits)
{
	struct cg__region *r = new_region(BASE, 4 * CG_PMD_SIZE, CG_RK_THP, 12);
	uint64_t to = BASE + 64 * GIB;
	struct cg__region *n;

	ck_assert_int_eq(cg__region_set_huge(r, BASE, true, P | E | W), 0);
	ck_assert_int_eq(cg__region_set_huge(r, BASE + CG_PMD_SIZE, true, P | E | W), 0);
	ck_assert_int_eq(cg__region_set_huge(r, BASE + 2 * CG_PMD_SIZE, true, P | D), 0);
	ck_assert_int_eq(cg__region_update(r, BASE + 3 * CG_PMD_SIZE, CG_PMD_SIZE, 0, P), 0);
	ck_assert_int_eq(cg__region_update(r, BASE + 3 * CG_PMD_SIZE + PG, PG, 0, D), 0);

	/* Aligned: PMD-mapped chunks stay PMD-mapped, the split one split. */
	n = cg__region_extract(r, BASE, r->len, to);
	ck_assert_ptr_nonnull(n);
	assert_same_pages(r, BASE, n, to, r->len);
	for (int c = 0; c < 3; c++)
		ck_assert(cg__region_is_huge(n, to + c * CG_PMD_SIZE));
	ck_assert(!cg__region_is_huge(n, to + 3 * CG_PMD_SIZE));
	cg__region_free(n);

	/* Part of a PMD-mapped chunk moved: that chunk cannot stay one PMD. */
	n = cg__region_extract(r, BASE, CG_PMD_SIZE + CG_PMD_SIZE / 2, to);
	ck_assert_ptr_nonnull(n);
	assert_same_pages(r, BASE, n, to, n->len);
	ck_assert(cg__region_is_huge(n, to));
	ck_assert(!cg__region_is_huge(n, to + CG_PMD_SIZE));
	cg__region_free(n);

	/* Unaligned destination: no PMD can map it, the state stays. */
	n = cg__region_extract(r, BASE, r->len, to + PG);
	ck_assert_ptr_nonnull(n);
	assert_same_pages(r, BASE, n, to + PG, r->len);
	for (int c = 0; c < 4; c++)
		ck_assert(!cg__region_is_huge(n, to + PG + c * CG_PMD_SIZE));
	cg__region_free(n);
	cg__region_free(r);
}
END_TEST

START_TEST(a_clone_is_deep_and_keeps_huge_chunks_and_splits)
{
	struct cg__region *r = new_region(BASE, 2 * CG_PMD_SIZE, CG_RK_THP, 12);
	struct cg__region *c;

	ck_assert_int_eq(cg__region_set_huge(r, BASE, true, P | E | W), 0);
	ck_assert_int_eq(cg__region_set_huge(r, BASE + CG_PMD_SIZE, true, P | E | W), 0);
	ck_assert_int_eq(cg__region_update(r, BASE + CG_PMD_SIZE + 3 * PG, PG, W, D), 0);
	c = cg__region_clone(r);
	ck_assert_ptr_nonnull(c);
	ck_assert_uint_eq(c->start, r->start);
	ck_assert_uint_eq(c->len, r->len);
	ck_assert_int_eq(c->kind, r->kind);
	ck_assert_uint_eq(c->splits, 1);
	ck_assert(cg__region_is_huge(c, BASE));
	ck_assert(!cg__region_is_huge(c, BASE + CG_PMD_SIZE));
	assert_same_pages(r, BASE, c, BASE, r->len);
	/* The child's view changes apart from the parent's. */
	ck_assert_int_eq(cg__region_update(c, BASE, 2 * CG_PMD_SIZE, E, 0), 0);
	ck_assert_int_eq(cg__region_update(c, BASE + CG_PMD_SIZE + 3 * PG, PG, 0, W), 0);
	ck_assert_uint_eq(cg__region_get(r, BASE), P | E | W);
	ck_assert_uint_eq(cg__region_get(r, BASE + CG_PMD_SIZE + 3 * PG), P | E | D);
	ck_assert_uint_eq(cg__region_get(c, BASE + CG_PMD_SIZE + 3 * PG), P | D | W);
	cg__region_free(c);
	cg__region_free(r);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("engine keeps state compact");
	TCase *tc = tcase_create("engine");

	h_timeout(tc, 20);
	h_add(tc, a_new_region_is_one_uniform_empty_chunk_per_2_mib);
	h_add(tc, update_clears_then_sets_bits_on_exactly_the_pages_given);
	h_add(tc, a_uniform_1_gib_region_costs_16_bytes_per_2_mib);
	h_add(tc, a_fully_diverged_chunk_costs_4_bits_per_page_and_collapses_back);
	h_add(tc, a_fully_diverged_1_gib_region_costs_4_bits_per_page_plus_chunks);
	h_add(tc, a_region_starting_mid_chunk_collapses_back_when_its_pages_agree);
	h_add(tc, walk_reports_maximal_runs_and_collect_merges_what_matches);
	h_add(tc, hugetlb_units_are_indivisible);
	h_add(tc, a_partial_update_of_a_pmd_mapped_thp_chunk_splits_it_once);
	h_add(tc, state_survives_extract_to_another_address_aligned_or_not);
	h_add(tc, a_thp_extracted_to_an_aligned_address_stays_pmd_mapped_and_unaligned_splits);
	h_add(tc, a_clone_is_deep_and_keeps_huge_chunks_and_splits);
	suite_add_tcase(s, tc);
	return h_main(s, 0);
}
