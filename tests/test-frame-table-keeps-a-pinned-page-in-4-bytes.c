// SPDX-License-Identifier: MIT
/*
 * The frame table of pinned units (lib/engine/frames.h), alone: no
 * kernel, no handle.  It keeps a pinned 4 KiB page's frame in 4 bytes (the
 * upper bits once per 2 MiB), so that a region with pins stays within
 * issue 14's 4 bits a page (bench/engine-memory), and it keeps no count of
 * the pins on a unit: the caller lets go of what no pin covers any more.
 *
 * Bugs this catches: a frame truncated to 32 bits where frames of one
 * chunk differ above them (a page replaced unseen on a machine of more
 * than 16 TiB), a replacement not reported or reported for the same
 * frame, a forget that reaches past its range or leaves a chunk behind,
 * a hugetlb page held anywhere but at its first byte.
 */
#include <stdlib.h>

#include "engine/frames.h"
#include "engine/pagestate.h"
#include "harness.h"

#define PG CG_PAGE_SIZE
#define UNITS (CG_PMD_SIZE / PG)
#define BASE 0x7f0000000000ULL

static void hold(struct cg__frames **t, uint64_t addr, uint64_t frame,
		 bool want_replaced)
{
	bool replaced = !want_replaced;

	ck_assert_int_eq(cg__frames_hold(t, addr, frame, &replaced), 0);
	ck_assert_msg(replaced == want_replaced, "hold of %#llx at frame %#llx: "
		      "replaced %d", (unsigned long long)addr,
		      (unsigned long long)frame, replaced);
}

static uint64_t frame_of(const struct cg__frames *t, uint64_t addr)
{
	uint64_t frame = 0;

	ck_assert_msg(cg__frames_frame(t, addr, &frame), "%#llx is not held",
		      (unsigned long long)addr);
	return frame;
}

/* The footprint of *t made and emptied: its table, with no chunk. */
static size_t empty_footprint(struct cg__frames **t)
{
	hold(t, BASE, 0x1000, false);
	cg__frames_forget(*t, BASE, BASE + PG);
	return cg__frames_footprint(*t);
}

START_TEST(a_chunk_of_pinned_pages_costs_4_bytes_a_page)
{
	struct cg__frames *t = NULL;
	size_t empty = empty_footprint(&t), full;

	for (size_t i = 0; i < 4 * UNITS; i++)
		hold(&t, BASE + i * PG, 0x123400 + i * 7, false);
	full = cg__frames_footprint(t);
	ck_assert_msg((full - empty) / 4 <= UNITS * 4 + 128, "a chunk costs "
		      "%zu bytes", (full - empty) / 4);
	for (size_t i = 0; i < 4 * UNITS; i++)
		ck_assert_uint_eq(frame_of(t, BASE + i * PG), 0x123400 + i * 7);
	cg__frames_free(&t);
	ck_assert_ptr_null(t);
}
END_TEST

START_TEST(frames_that_differ_above_32_bits_are_kept_whole)
{
	struct cg__frames *t = NULL;
	uint64_t low = 0x00000000fffff000ULL, high = 0x000000ab00001000ULL;

	hold(&t, BASE, low, false);
	hold(&t, BASE + PG, high, false);
	hold(&t, BASE + 2 * PG, high + 1, false);
	ck_assert_uint_eq(frame_of(t, BASE), low);
	ck_assert_uint_eq(frame_of(t, BASE + PG), high);
	ck_assert_uint_eq(frame_of(t, BASE + 2 * PG), high + 1);
	/* Same low bits, other high bits: a replacement, not the same page. */
	hold(&t, BASE, low | 1ULL << 32, true);
	ck_assert_uint_eq(frame_of(t, BASE), low | 1ULL << 32);
	cg__frames_free(&t);
}
END_TEST

START_TEST(a_unit_held_again_reports_only_another_frame)
{
	struct cg__frames *t = NULL;

	hold(&t, BASE + 5 * PG, 0x42, false);
	hold(&t, BASE + 5 * PG, 0x42, false);
	hold(&t, BASE + 5 * PG, 0x43, true);
	ck_assert_uint_eq(frame_of(t, BASE + 5 * PG), 0x43);
	cg__frames_free(&t);
}
END_TEST

START_TEST(forget_lets_go_of_exactly_the_units_that_start_in_its_range)
{
	struct cg__frames *t = NULL;
	uint64_t frame;

	/* Three chunks, every page held. */
	for (size_t i = 0; i < 3 * UNITS; i++)
		hold(&t, BASE + i * PG, 0x9000 + i, false);
	/* From the middle of the first chunk to the middle of the third. */
	cg__frames_forget(t, BASE + 100 * PG, BASE + (2 * UNITS + 50) * PG);
	for (size_t i = 0; i < 3 * UNITS; i++) {
		bool gone = i >= 100 && i < 2 * UNITS + 50;

		ck_assert_msg(cg__frames_frame(t, BASE + i * PG, &frame) == !gone,
			      "page %zu held %d", i, !gone);
	}
	/* The second chunk went whole: its memory too. */
	ck_assert_uint_eq(t->n, 2);
	cg__frames_forget(t, BASE, BASE + 3 * CG_PMD_SIZE);
	ck_assert_uint_eq(t->n, 0);
	ck_assert_uint_eq(t->wide, 0);
	cg__frames_free(&t);
}
END_TEST

START_TEST(a_hugetlb_page_is_held_at_its_first_byte_and_forgotten_whole)
{
	struct cg__frames *t = NULL;
	uint64_t gib = 1ULL << 30, frame;

	hold(&t, BASE, 0x40000, false);
	ck_assert_uint_eq(frame_of(t, BASE), 0x40000);
	ck_assert(!cg__frames_frame(t, BASE + CG_PMD_SIZE, &frame));
	/* A forget of another 1 GiB page leaves it. */
	cg__frames_forget(t, BASE + gib, BASE + 2 * gib);
	ck_assert_uint_eq(frame_of(t, BASE), 0x40000);
	cg__frames_forget(t, BASE, BASE + gib);
	ck_assert(!cg__frames_frame(t, BASE, &frame));
	ck_assert_uint_eq(t->n, 0);
	cg__frames_free(&t);
}
END_TEST

/* A hugetlb page holds its chunk's first slot alone: no room for 511 more. */
START_TEST(a_2mib_hugetlb_page_costs_a_chunk_of_one_slot)
{
	struct cg__frames *t = NULL;
	size_t empty = empty_footprint(&t), full;

	for (size_t i = 0; i < 64; i++)
		hold(&t, BASE + i * CG_PMD_SIZE, 0x200000 + i * 512, false);
	full = cg__frames_footprint(t);
	ck_assert_msg((full - empty) / 64 <= 160, "a hugetlb page costs %zu bytes",
		      (full - empty) / 64);
	for (size_t i = 0; i < 64; i++)
		ck_assert_uint_eq(frame_of(t, BASE + i * CG_PMD_SIZE), 0x200000 + i * 512);
	cg__frames_free(&t);
}
END_TEST

/* A chunk begun at its first slot grows when another is held, frames kept. */
START_TEST(a_chunk_begun_at_its_first_page_grows_to_hold_the_others)
{
	struct cg__frames *t = NULL;
	uint64_t high = 0x000000ab00001000ULL;

	hold(&t, BASE, 0x5000, false);
	hold(&t, BASE + 5 * PG, 0x5005, false);
	hold(&t, BASE + (UNITS - 1) * PG, 0x50ff, false);
	ck_assert_uint_eq(frame_of(t, BASE), 0x5000);
	ck_assert_uint_eq(frame_of(t, BASE + 5 * PG), 0x5005);
	ck_assert_uint_eq(frame_of(t, BASE + (UNITS - 1) * PG), 0x50ff);
	/* Kept whole while one slot, then grown. */
	hold(&t, BASE + CG_PMD_SIZE, 0x7000, false);
	hold(&t, BASE + CG_PMD_SIZE, high, true);
	hold(&t, BASE + CG_PMD_SIZE + 3 * PG, high + 3, false);
	ck_assert_uint_eq(frame_of(t, BASE + CG_PMD_SIZE), high);
	ck_assert_uint_eq(frame_of(t, BASE + CG_PMD_SIZE + 3 * PG), high + 3);
	ck_assert_uint_eq(t->small, 0);
	cg__frames_forget(t, BASE, BASE + 2 * CG_PMD_SIZE);
	ck_assert_uint_eq(t->n, 0);
	cg__frames_free(&t);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("frame table keeps a pinned page in 4 bytes");
	TCase *tc = tcase_create("frames");

	h_timeout(tc, 20);
	h_add(tc, a_chunk_of_pinned_pages_costs_4_bytes_a_page);
	h_add(tc, frames_that_differ_above_32_bits_are_kept_whole);
	h_add(tc, a_unit_held_again_reports_only_another_frame);
	h_add(tc, forget_lets_go_of_exactly_the_units_that_start_in_its_range);
	h_add(tc, a_hugetlb_page_is_held_at_its_first_byte_and_forgotten_whole);
	h_add(tc, a_2mib_hugetlb_page_costs_a_chunk_of_one_slot);
	h_add(tc, a_chunk_begun_at_its_first_page_grows_to_hold_the_others);
	suite_add_tcase(s, tc);
	return h_main(s, 0);
}
