// SPDX-License-Identifier: MIT
/*
 * Pins of pages that are pinned already share what is kept for those
 * pages: the daemon records each pinned page's frame once, however many
 * pins hold it.  Before, every pin kept 8 bytes per page of its own, and
 * 300 pins of one 64 MiB range grew the daemon by 38.8 MB (issue 11, row
 * 6): a client could make it allocate without bound.
 *
 * Checked: the daemon's RSS grows by less than BOUND_MIB over PINS
 * overlapping pins of one 64 MiB range (where it grew by 25 MiB); every one
 * of them still unpins clean; and a page replaced behind cowguard's back
 * (a fork the library never hears of, as in
 * test-pin-violation-is-loud.c) fails every pin that holds it, not only
 * the first.  Frames are recorded for root's clients alone: the RSS case
 * is the daemon's, and needs it as a child of ours to read its RSS.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "sysfile.h"
#include "pin-util.h"

#define RANGE (64 * MIB)
#define PINS 200
#define BOUND_MIB 4	/* 200 pins kept each 8 bytes a page: 25 MiB */

START_TEST(overlapping_pins_of_one_range_grow_the_daemon_by_less_than_a_bound)
{
	struct cg_pin **pins = calloc(PINS, sizeof(*pins));
	struct cg *cg;
	long before, after;
	char *p;

	if (!h_have_own_daemon("reads the daemon's RSS"))
		return;
#ifdef __SANITIZE_ADDRESS__
	/* The daemon of this lane is the sanitizers' build too. */
	h_skip("ASan keeps freed memory in quarantine: the daemon's RSS bounds "
	       "nothing there");
	free(pins);
	return;
#endif
	p = h_map(H_4K, RANGE, 'o');
	cg = h_open(H_DAEMON);
	ck_assert_int_eq(cg_register(cg, p, RANGE, 0), 0);
	/* The first pin records the frames; the others should add nothing. */
	ck_assert_int_eq(cg_pin(cg, p, RANGE, CG_PIN_RO, &pins[0]), 0);
	before = sys_rss_kb(h_daemon_pid());
	for (int i = 1; i < PINS; i++) {
		/* Overlapping, not all equal: every other one starts a page in. */
		size_t off = (i & 1) * 4096;

		ck_assert_int_eq(cg_pin(cg, p + off, RANGE - off, CG_PIN_RO,
					&pins[i]), 0);
	}
	after = sys_rss_kb(h_daemon_pid());
	printf("%d overlapping pins of %llu MiB: daemon RSS %+.1f MiB\n", PINS,
	       RANGE / MIB, (double)(after - before) / 1024);
	fflush(stdout);
	ck_assert_msg(after - before < BOUND_MIB * 1024, "the daemon grew by "
		      "%ld KiB for %d overlapping pins", after - before, PINS);
	for (int i = 0; i < PINS; i++)
		ck_assert_int_eq(cg_unpin(pins[i]), 0);
	free(pins);
	cg_close(cg);
	munmap(p, RANGE);
}
END_TEST

/*
 * Three pins share the page at p; the page is replaced; each of the three
 * fails its unpin, in whatever order, and a fourth pin made after the
 * replacement (of the new page) unpins clean.
 */
START_TEST(a_page_replaced_under_overlapping_pins_fails_every_pin_that_holds_it)
{
	size_t len = 16 * 4096;
	struct cg_pin *pins[3], *later;
	struct cg *cg = h_open(_i);
	char *p = h_map(H_4K, len, 'r');
	pid_t child;
	int go;

	/* Page frames are root's (pagemap), in both modes. */
	if (geteuid() != 0 &&
	    h_skip_if_async(cg, "without page frames no write fault shows the "
			    "replacement (docs/kernels.md)")) {
		cg_close(cg);
		munmap(p, len);
		return;
	}
	ck_assert_int_eq(cg_register(cg, p, len, 0), 0);
	ck_assert_int_eq(cg_pin(cg, p, len, CG_PIN_RO | CG_PIN_FOLL_PIN, &pins[0]), 0);
	ck_assert_int_eq(cg_pin(cg, p, 4096, CG_PIN_RO | CG_PIN_FOLL_PIN, &pins[1]), 0);
	ck_assert_int_eq(cg_pin(cg, p, 2 * 4096, CG_PIN_RO | CG_PIN_FOLL_PIN,
				&pins[2]), 0);
	child = raw_fork_waiting(&go);
	ck_assert_int_ge(child, 0);
	p[0] = 'R';	/* COW: our page is replaced, the pinned one stays */
	ck_assert_int_eq(raw_fork_release(child, go), 0);
	/* The new page, pinned: its frame replaces the old one recorded. */
	ck_assert_int_eq(cg_pin(cg, p, 4096, CG_PIN_RO, &later), 0);
	ck_assert_int_eq(cg_unpin(pins[1]), -ENOTRECOVERABLE);
	ck_assert_int_eq(cg_unpin(pins[0]), -ENOTRECOVERABLE);
	ck_assert_int_eq(cg_unpin(pins[2]), -ENOTRECOVERABLE);
	ck_assert_int_eq(cg_unpin(later), 0);
	cg_close(cg);
	munmap(p, len);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("overlapping pins share their page state");
	TCase *tc = tcase_create("overlapping pins");

	h_timeout(tc, 120);
	h_add(tc, overlapping_pins_of_one_range_grow_the_daemon_by_less_than_a_bound);
	h_add_modes(tc, a_page_replaced_under_overlapping_pins_fails_every_pin_that_holds_it);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
