// SPDX-License-Identifier: MIT
/*
 * A range whose VMAs were cut before it is registered (MADV_DONTFORK, as
 * a pin leaves it) registers and is tracked whole.  Before 6.5 UFFDIO_WRITEPROTECT takes a range within one
 * VMA: registration failed there with -ENOENT (found on 6.1 and 5.10 by
 * an embedded engine restarting after a CRIU restore, with a pin's cut in
 * a region), and the engine now protects such a range a VMA at a time.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
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

static bool in_ranges(const struct cg_range *out, int n, const char *page)
{
	for (int i = 0; i < n; i++)
		if ((char *)out[i].addr <= page && page < (char *)out[i].addr + out[i].len)
			return true;
	return false;
}

static bool reported(struct cg *cg, char *p, const char *page)
{
	struct cg_range out[PAGES];
	void *next;
	int n = cg_track_collect(cg, p, LEN, out, PAGES, &next);

	ck_assert_int_ge(n, 0);
	return in_ranges(out, n, page);
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

struct cutter {
	char *p;
	atomic_bool stop;
};

/* Cut pages [40, 48) out and merge them back, as pins and unpins do. */
static void *cut_and_merge(void *arg)
{
	struct cutter *c = arg;

	while (!atomic_load(&c->stop)) {
		madvise(c->p + 40 * PG, 8 * PG, MADV_DONTFORK);
		madvise(c->p + 40 * PG, 8 * PG, MADV_DOFORK);
	}
	return NULL;
}

/*
 * Another thread of the client cuts and merges the VMAs of a registered
 * range while the engine protects it again, run after run: a VMA read
 * from smaps before 6.5 may be two by the protect.  Every collect
 * succeeds and reports every write.  Before the engine looked again, a
 * region re-registered so was forgotten (6.1 and 5.10 guests).
 */
START_TEST(a_range_cut_and_merged_while_it_is_protected_stays_tracked)
{
	struct cg *cg = h_open(_i);
	struct cutter c = { .p = h_map(H_4K, LEN, 'm') };
	const size_t at[] = { 3, 39, 44, 48 };
	pthread_t t;

	ck_assert_int_eq(cg_register(cg, c.p, LEN, 0), 0);
	reported(cg, c.p, c.p);
	ck_assert_int_eq(pthread_create(&t, NULL, cut_and_merge, &c), 0);
	for (int round = 0; round < 200; round++) {
		struct cg_range out[PAGES];
		void *next;
		int n;

		for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++)
			c.p[at[i] * PG] = (char)round;
		n = cg_track_collect(cg, c.p, LEN, out, PAGES, &next);
		ck_assert_msg(n >= 0, "round %d: %s", round, cg_strerror(n));
		for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++)
			ck_assert_msg(in_ranges(out, n, c.p + at[i] * PG),
				      "round %d: the write to page %zu was not seen",
				      round, at[i]);
	}
	atomic_store(&c.stop, true);
	pthread_join(t, NULL);
	cg_close(cg);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("a region cut into VMAs is tracked whole");
	TCase *tc = tcase_create("cut");

	h_timeout(tc, 60);
	h_add_modes(tc, a_range_cut_into_vmas_registers_and_every_part_is_tracked);
	h_add_modes(tc, a_range_cut_and_merged_while_it_is_protected_stays_tracked);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
