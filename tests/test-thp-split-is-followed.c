// SPDX-License-Identifier: MIT
/*
 * A PMD-mapped THP changes shape without a userfaultfd event: a partial
 * mprotect() splits the PMD into PTEs, and a write after fork either splits
 * it (the child still maps it: one 4 KiB page is copied) or reuses it whole
 * (the child is gone: the whole 2 MiB becomes exclusive again).  The engine
 * must follow each: after the split, a write makes exactly that 4 KiB page
 * exclusive and reports the chunk as PTE-mapped; after a whole reuse, all
 * 2 MiB are exclusive and still one PMD.
 *
 * Bugs these catch: a chunk still treated as one unit after a silent
 * split, so one write marks 2 MiB exclusive while 511 pages stay shared
 * with the child (unsafe); the split not counted; a whole-PMD reuse
 * followed as if only 4 KiB were copied (conservative), or as a split.
 * The audit cannot read exclusivity of PTE-mapped THP pages mapped once
 * (kpageflags speaks for the folio): those must be counted unknowable,
 * not as mismatches.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"

#define LEN (4 * MIB)	/* two chunks: the second stays PMD-mapped */

/* Map two PMD-mapped THP chunks filled with 'A', or skip. */
static char *map_thp(void)
{
	char *p = h_map(H_THP, LEN, 'A');

	if (p && !h_thp_pmd_mapped(p, 4 * MIB)) {
		munmap(p, LEN);
		return NULL;
	}
	return p;
}

static struct cg_page_info query(struct cg *cg, const char *p)
{
	struct cg_page_info info;
	int ret = cg_query(cg, p, &info, sizeof(info));

	ck_assert_msg(ret == 0, "cg_query(%p): %s", p, cg_strerror(ret));
	return info;
}

static void assert_page(struct cg *cg, const char *p, bool exclusive,
			enum cg_page_kind kind, const char *what)
{
	struct cg_page_info info = query(cg, p);

	ck_assert_msg(info.present && info.exclusive == exclusive &&
			      info.kind == kind,
		      "%s: present %d exclusive %d kind %d, want exclusive %d "
		      "kind %d (kernel: exclusive %d, mapped once %d, PMD %d)",
		      what, info.present, info.exclusive, info.kind, exclusive,
		      kind, h_kpage(p).anon_exclusive, h_kpage(p).mapped_once,
		      h_pmd_mapped(p));
}

START_TEST(after_a_partial_mprotect_split_a_write_after_fork_makes_only_its_page_exclusive)
{
	char *p = map_thp(), *w;
	struct cg_stats before, after;
	struct cg_audit_report a;
	struct h_waiter child;
	struct cg *cg;

	if (!p)
		return;
	cg = h_open(_i);
	ck_assert_int_eq(cg_register(cg, p, LEN, 0), 0);
	assert_page(cg, p + 5 * 4096, true, CG_PAGE_THP, "registered");
	ck_assert_int_eq(cg_stats(cg, &before, sizeof(before)), 0);

	/* Split the first PMD behind the engine's back: no uffd event. */
	ck_assert_int_eq(mprotect(p + 5 * 4096, 4096, PROT_READ), 0);
	ck_assert_int_eq(mprotect(p + 5 * 4096, 4096, PROT_READ | PROT_WRITE), 0);
	ck_assert_int_eq(h_pmd_mapped(p), 0);
	ck_assert_int_eq(h_pmd_mapped(p + 2 * MIB), 1);
	ck_assert_int_eq(cg_stats(cg, &after, sizeof(after)), 0);
	ck_assert_uint_eq(after.remaps + after.removals + after.unmaps,
			  before.remaps + before.removals + before.unmaps);
	h_audit_clean(cg, p, LEN);

	child = h_fork_waiting(p + 7 * 4096, 'A');
	for (size_t off = 0; off < LEN; off += 4096)
		ck_assert_msg(!query(cg, p + off).exclusive,
			      "page %zu exclusive after fork", off / 4096);
	h_audit_clean(cg, p, LEN);

	/* One 4 KiB write: copied alone, the rest of the THP stays shared. */
	w = p + 7 * 4096;
	ck_assert_int_eq(cg_stats(cg, &before, sizeof(before)), 0);
	*w = 'B';
	ck_assert_int_eq(cg_stats(cg, &after, sizeof(after)), 0);
	ck_assert_uint_eq(after.wp_faults, before.wp_faults + 1);
	ck_assert_uint_eq(after.thp_splits, before.thp_splits + 1);
	ck_assert_int_ne(h_kpage(w).anon_exclusive, 0);	/* -1: no root */
	assert_page(cg, w, true, CG_PAGE_THP_PTE, "the written page");
	ck_assert(query(cg, w).dirty);
	ck_assert_uint_eq(query(cg, w).size, 4096);
	assert_page(cg, w - 4096, false, CG_PAGE_THP_PTE, "the page before");
	assert_page(cg, w + 4096, false, CG_PAGE_THP_PTE, "the page after");
	assert_page(cg, p, false, CG_PAGE_THP_PTE, "the chunk's first page");
	assert_page(cg, p + 2 * MIB - 4096, false, CG_PAGE_THP_PTE,
		    "the chunk's last page");
	assert_page(cg, p + 2 * MIB, false, CG_PAGE_THP, "the other chunk");
	/*
	 * With the child alive the THP pages are mapped twice: all exact.
	 * Without root the written page, a copy mapped once, is unknowable.
	 */
	a = h_audit_clean(cg, p, LEN);
	ck_assert_uint_eq(a.exact, LEN / 4096 - (a.truth == CG_TRUTH_KPAGEFLAGS ? 0 : 1));

	/*
	 * The child gone, the THP's pages are mapped once but still not
	 * exclusive; kpageflags shows the folio, so for the 511 PTE-mapped
	 * ones the kernel's answer is unknowable, not a mismatch.
	 */
	ck_assert_int_eq(h_release(&child), 0);
	a = h_audit_clean(cg, p, LEN);
	if (a.truth == CG_TRUTH_KPAGEFLAGS)
		ck_assert_uint_eq(a.unknowable, 511);
	ck_assert_uint_eq(a.exact + a.unknowable, LEN / 4096);
	assert_page(cg, w - 4096, false, CG_PAGE_THP_PTE, "the page before, "
		    "the child gone");

	cg_close(cg);
	munmap(p, LEN);
}
END_TEST

static int exit_at_once(void *arg)
{
	(void)arg;
	return 0;
}

START_TEST(after_the_child_exits_a_write_reuses_the_whole_pmd_and_all_of_it_is_exclusive)
{
	char *p = map_thp();
	struct cg_stats before, after;
	struct cg_audit_report a;
	struct cg *cg;

	if (!p)
		return;
	cg = h_open(_i);
	if (h_skip_if_async(cg, "a protected PMD-mapped THP is split by its first write (the kernel's doing in that mode): no whole-PMD reuse to see")) {
		cg_close(cg);
		munmap(p, LEN);
		return;
	}
	ck_assert_int_eq(cg_register(cg, p, LEN, 0), 0);
	ck_assert_int_eq(h_wait(h_fork(exit_at_once, NULL)), 0);

	/* Mapped once again, but not exclusive until a write reuses it. */
	assert_page(cg, p, false, CG_PAGE_THP, "after fork");
	ck_assert_int_ne(h_kpage(p).anon_exclusive, 1);
	h_audit_clean(cg, p, LEN);

	ck_assert_int_eq(cg_stats(cg, &before, sizeof(before)), 0);
	p[100] = 'B';
	ck_assert_int_eq(cg_stats(cg, &after, sizeof(after)), 0);
	ck_assert_uint_eq(after.wp_faults, before.wp_faults + 1);
	ck_assert_uint_eq(after.thp_splits, before.thp_splits);
	ck_assert_int_eq(h_pmd_mapped(p), 1);
	ck_assert_int_ne(h_kpage(p + 300 * 4096).anon_exclusive, 0);
	for (size_t off = 0; off < 2 * MIB; off += 4096) {
		struct cg_page_info info = query(cg, p + off);

		ck_assert_msg(info.present && info.exclusive && info.dirty &&
				      info.kind == CG_PAGE_THP &&
				      info.addr == (uintptr_t)p &&
				      info.size == 2 * MIB,
			      "page %zu: present %d exclusive %d dirty %d kind %d "
			      "unit %#llx+%#llx", off / 4096, info.present,
			      info.exclusive, info.dirty, info.kind,
			      (unsigned long long)info.addr,
			      (unsigned long long)info.size);
	}
	assert_page(cg, p + 2 * MIB, false, CG_PAGE_THP, "the other chunk");
	a = h_audit_clean(cg, p, LEN);
	if (a.truth == CG_TRUTH_KPAGEFLAGS)
		ck_assert_uint_eq(a.exact, LEN / 4096);	/* PMD-mapped: exact */

	cg_close(cg);
	munmap(p, LEN);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("THP split is followed");
	TCase *tc = tcase_create("thp");

	h_timeout(tc, 30);
	h_add_modes(tc, after_a_partial_mprotect_split_a_write_after_fork_makes_only_its_page_exclusive);
	h_add_modes(tc, after_the_child_exits_a_write_reuses_the_whole_pmd_and_all_of_it_is_exclusive);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
