// SPDX-License-Identifier: MIT
/*
 * A range whose VMAs were cut before it is registered (MADV_DONTFORK, as
 * a pin leaves it) registers and is tracked whole.  Before 6.5 UFFDIO_WRITEPROTECT takes a range within one
 * VMA: registration failed there with -ENOENT (found on 6.1 and 5.10 by
 * an embedded engine restarting after a CRIU restore, with a pin's cut in
 * a region), and the engine now protects such a range a VMA at a time.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "harness.h"

#define PG 4096UL
#define PAGES 64
#define LEN (PAGES * PG)

/* Four VMAs, pages [0, 8) and [24, 32) MADV_DONTFORK, as pins leave them. */
static char *cut_range(void)
{
	char *p = h_map(H_4K, LEN, 'c');

	ck_assert_int_eq(madvise(p, 8 * PG, MADV_DONTFORK), 0);
	ck_assert_int_eq(madvise(p + 24 * PG, 8 * PG, MADV_DONTFORK), 0);
	return p;
}

static bool reported(struct cg *cg, char *p, const char *page)
{
	struct cg_range out[PAGES];
	void *next;
	int n = cg_track_collect(cg, p, LEN, out, PAGES, &next);

	ck_assert_int_ge(n, 0);
	for (int i = 0; i < n; i++)
		if ((char *)out[i].addr <= page && page < (char *)out[i].addr + out[i].len)
			return true;
	return false;
}

START_TEST(a_range_cut_into_vmas_registers_and_every_part_is_tracked)
{
	struct cg *cg = h_open(_i);
	char *p = cut_range();
	const size_t at[] = { 3, 12, 24, 40 };
	struct cg_audit_report a;
	struct cg_pin *pin;

	ck_assert_int_eq(cg_register(cg, p, LEN, 0), 0);
	reported(cg, p, p);
	for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
		p[at[i] * PG] = 'w';
		ck_assert_msg(reported(cg, p, p + at[i] * PG),
			      "a write to page %zu was not seen", at[i]);
	}
	ck_assert_int_eq(cg_pin(cg, p, LEN, CG_PIN_RO, &pin), 0);
	ck_assert_int_eq(cg_unpin(pin), 0);
	ck_assert_int_eq(cg_audit(cg, p, LEN, &a, sizeof(a)), 0);
	ck_assert_uint_eq(a.unsafe, 0);
	ck_assert_uint_eq(a.conservative, 0);
	ck_assert_int_eq(cg_unregister(cg, p, LEN), 0);
	cg_close(cg);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("a region cut into VMAs is tracked whole");
	TCase *tc = tcase_create("cut");

	h_timeout(tc, 60);
	h_add_modes(tc, a_range_cut_into_vmas_registers_and_every_part_is_tracked);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
