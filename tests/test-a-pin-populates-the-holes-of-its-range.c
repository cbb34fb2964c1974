// SPDX-License-Identifier: MIT
/*
 * cg_pin() of a range with holes populates them first (a consumer must
 * find every page there), by a write fault that changes no byte, on the
 * runs its pagemap shows absent; a hole left behind is found by the
 * engine, a page at a time, and a pin that has to ask for more than a few
 * gives up (-EAGAIN).
 *
 * Checked: a range of 1024 pages populated in runs of 3 with holes of 3
 * between them (171 runs and as many holes) pins,
 * every page is then present and exclusive in the kernel's eyes where it
 * can tell, what was written reads as written and every hole as zeros,
 * and the pin unpins clean.
 *
 * Bugs this catches: holes left behind (the pin refused, or a page
 * missing), a present page written over, a run computed from the wrong
 * end.
 */
#include <string.h>
#include <sys/mman.h>

#include "harness.h"

#define PG 4096UL
#define PAGES 1024
#define RUN 3

static bool written(size_t i)
{
	return (i / RUN) % 2 == 0;
}

START_TEST(a_pin_populates_every_hole_of_its_range_and_keeps_every_byte)
{
	char *p = h_map(H_4K, PAGES * PG, -1);
	struct cg *cg = h_open(_i);
	struct cg_pin *pin;

	for (size_t i = 0; i < PAGES; i++)
		if (written(i))
			memset(p + i * PG, 'A', PG);
	ck_assert_int_eq(cg_register(cg, p, PAGES * PG, 0), 0);
	ck_assert_int_eq(cg_pin(cg, p, PAGES * PG, CG_PIN_RO, &pin), 0);
	for (size_t i = 0; i < PAGES; i++) {
		struct h_kpage k = h_kpage(p + i * PG);

		ck_assert_msg(k.present, "page %zu is not present after the pin", i);
		ck_assert_msg(k.anon_exclusive != 0, "page %zu is not exclusive", i);
		ck_assert_int_eq(p[i * PG], written(i) ? 'A' : 0);
		ck_assert_int_eq(p[i * PG + PG - 1], written(i) ? 'A' : 0);
	}
	h_audit_clean(cg, p, PAGES * PG);
	ck_assert_int_eq(cg_unpin(pin), 0);
	cg_close(cg);
	munmap(p, PAGES * PG);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("a pin populates the holes of its range");
	TCase *tc = tcase_create("holes");

	h_timeout(tc, 30);
	h_add_modes(tc, a_pin_populates_every_hole_of_its_range_and_keeps_every_byte);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
