// SPDX-License-Identifier: MIT
/*
 * MADV_FREE raises the same UFFD_EVENT_REMOVE as MADV_DONTNEED, but frees
 * nothing at once: the pages stay mapped, with their data, their uffd-wp
 * bits and their COW history, until reclaim takes them.  The engine must
 * not mistake such a page, seen again, for a fresh one.
 *
 * Bugs these catch: a REMOVE event taken as "these pages are new from now
 * on", so a page still COW-shared with (or inherited from) a child that
 * has exited, mapped once again, is learned as exclusive while the kernel
 * says it is not (unsafe: its next write would go unshared and unseen), an
 * exclusive clean page is called dirty, or a protected one unprotected.
 * Hugetlb is left out: MADV_FREE does not apply to it (EINVAL).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "harness.h"

#ifndef MADV_FREE
#define MADV_FREE 8
#endif

/* Modes × 4 KiB, THP. */

static int exit_at_once(void *arg)
{
	(void)arg;
	return 0;
}

/* Audit clean, and every page the engine calls present is present. */
static void audit(struct cg *cg, void *addr, size_t len)
{
	struct cg_audit_report a = h_audit_clean(cg, addr, len);

	ck_assert_msg(a.presence == 0, "audit: %llu presence mismatches",
		      (unsigned long long)a.presence);
}

/*
 * Where pagemap cannot show the uffd-wp bit (5.10) a page that MADV_FREE
 * left and one a write populated since look alike: the engine calls a page
 * mapped once exclusive and dirty (lib/engine/learn.c), and protects every such
 * page again (one written before was not protected any more).  Its
 * claims stay true; the dirty bit is conservative there.
 */
static void conservative_after_free(struct cg_page_info *was, const char *p,
				    size_t len)
{
	for (size_t off = 0; off < len; off += 4096) {
		was[off / 4096].wp = 1;	/* protected again, either way */
		if (h_kpage(p + off).mapped_once) {
			was[off / 4096].exclusive = 1;
			was[off / 4096].dirty = 1;
		}
	}
}

/*
 * Two units (4 KiB kind: 32 pages; THP: two chunks), optionally shared
 * with a child that has already exited (mapped once again, still not
 * exclusive), one page written (exclusive, dirty); then MADV_FREE on the
 * first unit and on half of the second: every page keeps its state.
 */
static void free_keeps_state(int mode, enum h_kind kind, bool forked)
{
	size_t unit = kind == H_4K ? 16 * 4096 : 2 * MIB, len = 2 * unit;
	char *p = h_map(kind, len, 'A');
	struct cg_page_info *was;
	struct cg_stats before, after;
	struct cg *cg;

	if (!p)
		return;
	cg = h_open(mode);
	ck_assert_int_eq(cg_register(cg, p, len, 0), 0);
	if (forked)
		ck_assert_int_eq(h_wait(h_fork(exit_at_once, NULL)), 0);
	p[unit + 3 * 4096] = 'B';
	was = h_states(cg, p, len);
	ck_assert(was[0].exclusive == !forked && !was[0].dirty && was[0].wp);
	ck_assert(was[(unit + 3 * 4096) / 4096].exclusive);
	ck_assert_int_eq(cg_stats(cg, &before, sizeof(before)), 0);

	ck_assert_int_eq(madvise(p, unit, MADV_FREE), 0);
	ck_assert_int_eq(madvise(p + unit, unit / 2, MADV_FREE), 0);

	ck_assert_int_eq(cg_stats(cg, &after, sizeof(after)), 0);
	ck_assert_uint_eq(after.removals, before.removals + 2);
	/* Not freed yet: the data is there, and so is the engine's state. */
	ck_assert_int_eq(p[5 * 4096], 'A');
	if (!h_pagemap_shows_uffd_wp())
		conservative_after_free(was, p, unit + unit / 2);
	h_assert_states(cg, was, p, len, "after MADV_FREE");
	audit(cg, p, len);

	/* A write to a maybe-shared page is still seen and unshared. */
	ck_assert_int_eq(cg_stats(cg, &before, sizeof(before)), 0);
	p[5 * 4096] = 'C';
	ck_assert_int_eq(cg_stats(cg, &after, sizeof(after)), 0);
	if (forked)
		ck_assert_uint_eq(after.wp_faults, before.wp_faults + 1);
	{
		struct cg_page_info info;

		ck_assert_int_eq(cg_query(cg, p + 5 * 4096, &info, sizeof(info)), 0);
		ck_assert(info.present && info.exclusive && info.dirty);
	}
	audit(cg, p, len);

	cg_close(cg);
	munmap(p, len);
	free(was);
}

START_TEST(madv_free_of_exclusive_pages_keeps_their_state)
{
	free_keeps_state(H_MODE(_i), H_KIND(_i), false);
}
END_TEST

START_TEST(madv_free_of_pages_a_dead_child_shared_keeps_them_maybe_shared)
{
	free_keeps_state(H_MODE(_i), H_KIND(_i), true);
}
END_TEST

/*
 * MADV_FREE of half a PMD-mapped THP splits it, unless it cannot: with an
 * extra reference on the THP (a page of it spliced into a pipe here, a pin
 * elsewhere) the kernel gives up and leaves the whole THP mapped, dirty
 * data and all.  The engine splits its chunk at the event, and must take
 * the PMD it finds afterwards for what it is: the same THP, same history,
 * not one khugepaged made (which would be learned afresh: clean, protected).
 */
START_TEST(madv_free_of_half_a_thp_it_cannot_split_keeps_its_state)
{
	size_t len = 2 * MIB;
	char *p = h_map(H_THP, len, 'A');
	struct cg_page_info *was;
	struct cg_stats before, after;
	struct cg *cg;
	int fds[2];

	if (!p)
		return;
	if (!h_thp_pmd_mapped(p, len)) {
		munmap(p, len);
		return;
	}
	cg = h_open(_i);
	if (h_skip_if_async(cg, "a protected PMD-mapped THP is split by its first write (the kernel's doing in that mode): no written PMD-mapped THP to start from")) {
		cg_close(cg);
		munmap(p, len);
		return;
	}
	ck_assert_int_eq(cg_register(cg, p, len, 0), 0);
	p[3 * 4096] = 'B';
	was = h_states(cg, p, len);
	ck_assert(was[0].exclusive && was[0].dirty && !was[0].wp);
	ck_assert_int_eq(pipe(fds), 0);
	ck_assert_int_eq(vmsplice(fds[1], &(struct iovec){ p, 4096 }, 1, 0), 4096);
	ck_assert_int_eq(cg_stats(cg, &before, sizeof(before)), 0);

	ck_assert_int_eq(madvise(p + len / 2, len / 2, MADV_FREE), 0);
	if (!h_thp_pmd_mapped(p, len)) {
		h_skip("this kernel split the THP despite the spliced page");
		goto out;
	}
	ck_assert_int_eq(p[len / 2], 'A');
	h_assert_states(cg, was, p, len, "after MADV_FREE of half");
	audit(cg, p, len);
	ck_assert_int_eq(cg_stats(cg, &after, sizeof(after)), 0);
	ck_assert_uint_eq(after.removals, before.removals + 1);
	ck_assert_uint_eq(after.thp_splits, before.thp_splits);
	/* Still unprotected and dirty: a write raises nothing. */
	p[len / 2 + 5] = 'C';
	ck_assert_int_eq(cg_stats(cg, &before, sizeof(before)), 0);
	ck_assert_uint_eq(before.wp_faults, after.wp_faults);
	audit(cg, p, len);
out:
	close(fds[0]);
	close(fds[1]);
	free(was);
	cg_close(cg);
	munmap(p, len);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("MADV_FREE keeps page state");
	TCase *tc = tcase_create("free");

	h_timeout(tc, 30);
	h_add_test(tc, madv_free_of_exclusive_pages_keeps_their_state, H_MODES, H_KINDS_SMALL);
	h_add_test(tc, madv_free_of_pages_a_dead_child_shared_keeps_them_maybe_shared, H_MODES, H_KINDS_SMALL);
	h_add_modes(tc, madv_free_of_half_a_thp_it_cannot_split_keeps_its_state);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
