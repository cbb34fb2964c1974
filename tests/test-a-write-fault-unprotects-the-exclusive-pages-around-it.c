// SPDX-License-Identifier: MIT
/*
 * On the fault path a write fault on a 4 KiB page unprotects with it the
 * pages around it, in its aligned 64 KiB window (COWGUARD_WP_AROUND), that
 * a write would only reuse: known exclusive, protected, not pinned.  They
 * are called dirty (a write there is no longer seen).  A sequential writer
 * then faults once a window instead of once a page (bench/wp-fault).
 *
 * Bugs this catches: a shared page unprotected with its neighbour (its
 * copy-on-write then unseen: the engine would go on calling it shared, or
 * worse, the pin of a page whose write replaced it unseen), a pinned page
 * unprotected (the pin's promise is that it stays protected), a page
 * unprotected but called clean, a window that reaches past its alignment
 * or its region, a writer never woken where the window crosses two VMAs
 * (before 6.5), and COWGUARD_WP_AROUND=4 not going back to one page.
 */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define PG 4096UL
#define WINDOW (64 * KIB)
#define WPAGES (WINDOW / PG)

static uint64_t wp_faults(struct cg *cg)
{
	struct cg_stats s;

	ck_assert_int_eq(cg_stats(cg, &s, sizeof(s)), 0);
	return s.wp_faults;
}

/* Engine and kernel agree: unprotected and dirty, or protected and clean. */
static void assert_page(struct cg *cg, const char *p, bool open, bool excl,
			const char *what)
{
	struct cg_page_info info;

	ck_assert_int_eq(cg_query(cg, p, &info, sizeof(info)), 0);
	ck_assert_msg(info.present && info.exclusive == excl &&
			      info.wp == !open && info.dirty == open,
		      "%s %p: exclusive %d wp %d dirty %d, want %d %d %d", what,
		      (void *)p, info.exclusive, info.wp, info.dirty, excl,
		      !open, open);
	if (h_pagemap_shows_uffd_wp())
		ck_assert_msg(h_kpage(p).uffd_wp == !open, "%s %p: the kernel's "
			      "uffd-wp bit is %d", what, (void *)p,
			      h_kpage(p).uffd_wp);
}

/* The first window-aligned address in [p, p + len) with room for two. */
static char *window_in(char *p)
{
	return (char *)(((uintptr_t)p + WINDOW - 1) & ~(uintptr_t)(WINDOW - 1));
}

/* The window a daemon uses is its own environment's: the default here. */
static bool default_window(void)
{
	if (!getenv("COWGUARD_WP_AROUND"))
		return true;
	h_skip("COWGUARD_WP_AROUND is set: the window is not the default");
	return false;
}

/*
 * Whether a case can run here, else skipped saying why: the default
 * window (window), the fault path, pinned pages kept protected (pins).
 */
static bool runs_here(struct cg *cg, bool window, bool pins)
{
	return (!window || default_window()) &&
	       !h_skip_if_async(cg, "the kernel resolves writes without a fault") &&
	       (!pins || h_read_pins_unshare("before 5.19 a pinned page is "
					     "unprotected"));
}

static void done(struct cg *cg, char *p, size_t len)
{
	cg_close(cg);
	munmap(p, len);
}

START_TEST(a_write_unprotects_the_exclusive_pages_of_its_window_and_calls_them_dirty)
{
	size_t len = 4 * WINDOW;
	char *p = h_map(H_4K, len, 'A'), *w = window_in(p);
	struct cg *cg = h_open(_i);
	uint64_t faults;

	if (!runs_here(cg, true, false)) {
		done(cg, p, len);
		return;
	}
	ck_assert_int_eq(cg_register(cg, p, len, 0), 0);
	faults = wp_faults(cg);
	w[5 * PG] = 'B';
	ck_assert_uint_eq(wp_faults(cg) - faults, 1);
	for (char *q = p; q < p + len; q += PG) {
		bool in = q >= w && q < w + WINDOW;

		assert_page(cg, q, in, true, in ? "in the window" : "outside");
		ck_assert_int_eq(*q, q == w + 5 * PG ? 'B' : 'A');
	}
	/* Unprotected with it: no fault there; the next window faults once. */
	w[9 * PG] = 'C';
	ck_assert_uint_eq(wp_faults(cg) - faults, 1);
	w[WINDOW + 3 * PG] = 'D';
	ck_assert_uint_eq(wp_faults(cg) - faults, 2);
	assert_page(cg, w + WINDOW, true, true, "the next window");
	h_audit_clean(cg, p, len);
	done(cg, p, len);
}
END_TEST

/*
 * Pages 0-7 of a window made exclusive by a pin (protected still), 8-15
 * shared with a child, page 2 pinned: a write to page 5 unprotects 3-7
 * alone.  The child's copy is untouched.
 */
START_TEST(a_shared_page_and_a_pinned_one_stay_protected_in_the_window)
{
	size_t len = 2 * WINDOW;
	char *p = h_map(H_4K, len, 'A'), *w = window_in(p);
	struct cg *cg = h_open(_i);
	struct h_check check = { .at = { w }, .len = WINDOW, .unit = PG,
				 .expect = 'A', .written = 'B' };
	struct cg_pin *made, *held;
	struct h_waiter child;

	if (!runs_here(cg, true, true)) {
		done(cg, p, len);
		return;
	}
	ck_assert_int_eq(cg_register(cg, p, len, 0), 0);
	child = h_fork_checking(&check);
	ck_assert_int_eq(cg_pin(cg, w, 8 * PG, CG_PIN_RO, &made), 0);
	ck_assert_int_eq(cg_unpin(made), 0);
	ck_assert_int_eq(cg_pin(cg, w + 2 * PG, PG, CG_PIN_RO, &held), 0);
	w[5 * PG] = 'B';
	for (size_t i = 0; i < WPAGES; i++)
		assert_page(cg, w + i * PG, i >= 3 && i < 8, i < 8,
			    i == 2 ? "pinned" : i < 8 ? "made ours" : "shared");
	ck_assert_int_eq(cg_unpin(held), 0);
	h_audit_clean(cg, p, len);
	ck_assert_int_eq(h_release(&child), 0);
	done(cg, p, len);
}
END_TEST

/*
 * A window across a cut between two VMAs of the region (MADV_DONTFORK on
 * part of it, as a pin makes): before 6.5 the kernel refuses to unprotect
 * a range over two VMAs, and the writer must be woken all the same, its
 * write landing (in the 6.1 guest the daemon's writers hung for good).
 */
START_TEST(a_write_next_to_a_vma_cut_lands)
{
	size_t len = 2 * WINDOW;
	char *p = h_map(H_4K, len, 'A'), *w = window_in(p);
	struct cg *cg = h_open(_i);

	if (!runs_here(cg, true, false)) {
		done(cg, p, len);
		return;
	}
	ck_assert_int_eq(cg_register(cg, p, len, 0), 0);
	/* Pages 8-15 of the window become a VMA of their own. */
	ck_assert_int_eq(madvise(w + 8 * PG, 8 * PG, MADV_DONTFORK), 0);
	w[7 * PG] = 'B';
	w[8 * PG] = 'C';
	ck_assert_int_eq(w[7 * PG], 'B');
	ck_assert_int_eq(w[8 * PG], 'C');
	assert_page(cg, w + 7 * PG, true, true, "written, before the cut");
	assert_page(cg, w + 8 * PG, true, true, "written, after the cut");
	h_audit_clean(cg, p, len);
	done(cg, p, len);
}
END_TEST

START_TEST(cowguard_wp_around_4_unprotects_the_faulting_page_alone)
{
	size_t len = 2 * WINDOW;
	char *p = h_map(H_4K, len, 'A'), *w = window_in(p);
	struct cg *cg;
	uint64_t faults;

	/* Read when the embedded engine starts. */
	setenv("COWGUARD_WP_AROUND", "4", 1);
	cg = h_open(H_EMBEDDED);
	unsetenv("COWGUARD_WP_AROUND");
	if (!runs_here(cg, false, false)) {
		done(cg, p, len);
		return;
	}
	ck_assert_int_eq(cg_register(cg, p, len, 0), 0);
	faults = wp_faults(cg);
	w[5 * PG] = 'B';
	w[6 * PG] = 'B';
	ck_assert_uint_eq(wp_faults(cg) - faults, 2);
	for (size_t i = 0; i < WPAGES; i++)
		assert_page(cg, w + i * PG, i == 5 || i == 6, true, "page");
	h_audit_clean(cg, p, len);
	done(cg, p, len);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("a write fault unprotects the exclusive pages "
				"around it");
	TCase *tc = tcase_create("around");

	h_timeout(tc, 30);
	h_add_modes(tc, a_write_unprotects_the_exclusive_pages_of_its_window_and_calls_them_dirty);
	h_add_modes(tc, a_shared_page_and_a_pinned_one_stay_protected_in_the_window);
	h_add_modes(tc, a_write_next_to_a_vma_cut_lands);
	h_add(tc, cowguard_wp_around_4_unprotects_the_faulting_page_alone);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
