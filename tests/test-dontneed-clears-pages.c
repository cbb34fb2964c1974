// SPDX-License-Identifier: MIT
/*
 * MADV_DONTNEED on part of a registered region empties those pages: the
 * engine must call them not present, leave every other page as it was,
 * and see them come back when they are written again (present, exclusive,
 * dirty).  On a PMD-mapped THP a DONTNEED of part of a chunk splits the
 * PMD: the rest of the chunk is then PTE-mapped and must be reported so.
 *
 * Bugs these catch: a REMOVE event ignored (pages still called present, or
 * their old exclusive/dirty state applied to whatever is faulted in next);
 * a removal that spills over the pages around it; a re-populated page left
 * not present, or called maybe-shared or clean after its writing fault; a
 * THP chunk still called PMD-mapped after the kernel split it, or the split
 * not counted; a hugetlb unit treated as divisible.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"

/* Modes × 4 KiB, THP, hugetlb 2 MiB. */

/* Audit clean, and every page the engine calls present is present. */
static struct cg_audit_report audit(struct cg *cg, void *addr, size_t len)
{
	struct cg_audit_report a = h_audit_clean(cg, addr, len);

	ck_assert_msg(a.presence == 0, "audit: %llu presence mismatches",
		      (unsigned long long)a.presence);
	return a;
}

static void assert_absent(struct cg *cg, const char *p, size_t len)
{
	for (size_t off = 0; off < len; off += 4096) {
		struct cg_page_info info;

		ck_assert_int_eq(cg_query(cg, p + off, &info, sizeof(info)), 0);
		ck_assert_msg(!info.present && !info.exclusive && !info.dirty,
			      "removed page %zu: present %d exclusive %d dirty %d "
			      "(kernel present %d)", off / 4096, info.present,
			      info.exclusive, info.dirty, h_kpage(p + off).present);
		ck_assert_int_eq(h_kpage(p + off).present, 0);
	}
}

/* A removed page written again is present, exclusive and dirty. */
static void assert_back(struct cg *cg, char *page)
{
	struct cg_page_info info;
	int pmd;

	ck_assert_int_eq(cg_query(cg, page, &info, sizeof(info)), 0);
	ck_assert_msg(info.present && info.exclusive && info.dirty,
		      "rewritten page: present %d exclusive %d dirty %d (kernel: "
		      "present %d exclusive %d)", info.present, info.exclusive,
		      info.dirty, h_kpage(page).present,
		      h_kpage(page).anon_exclusive);
	ck_assert_int_ne(h_kpage(page).anon_exclusive, 0);	/* -1: no root */
	pmd = h_pmd_mapped(page);
	if ((info.kind == CG_PAGE_THP || info.kind == CG_PAGE_THP_PTE) && pmd >= 0)
		ck_assert_msg(info.kind == (pmd ? CG_PAGE_THP : CG_PAGE_THP_PTE),
			      "rewritten page: kind %d, PMD-mapped %d", info.kind,
			      pmd);
}

/*
 * Four units (4 KiB kind: 64 pages), the first written (exclusive, dirty,
 * no longer write-protected), the others exclusive and protected; the
 * second is removed.  A hugetlb or THP unit goes whole.
 */
START_TEST(dontneed_makes_the_pages_not_present_and_a_write_brings_one_back)
{
	enum h_kind kind = H_KIND(_i);
	size_t unit = kind == H_4K ? 16 * 4096 : 2 * MIB, len = 4 * unit;
	struct h_region r;
	struct cg_page_info *was, info;
	struct cg_stats before, after;
	struct h_waiter child;

	/* The fork at the end shares the rewritten unit; the write copies it. */
	if (!h_region_open(&r, H_MODE(_i), kind, len, 'A', 1))
		return;
	r.p[5] = 'B';
	was = h_states(r.cg, r.p, len);
	ck_assert(was[0].dirty && !was[unit / 4096].dirty);
	ck_assert_int_eq(cg_stats(r.cg, &before, sizeof(before)), 0);

	ck_assert_int_eq(madvise(r.p + unit, unit, MADV_DONTNEED), 0);

	ck_assert_int_eq(cg_stats(r.cg, &after, sizeof(after)), 0);
	ck_assert_uint_eq(after.removals, before.removals + 1);
	ck_assert_uint_eq(after.regions, 1);
	ck_assert_uint_eq(after.registered_bytes, len);
	assert_absent(r.cg, r.p + unit, unit);
	h_assert_states(r.cg, was, r.p, unit, "the unit before the removed one");
	h_assert_states(r.cg, was + 2 * unit / 4096, r.p + 2 * unit, 2 * unit,
			"the units after the removed one");
	audit(r.cg, r.p, len);

	/* Zeros now; written, the page is fresh and ours alone. */
	ck_assert_int_eq(r.p[unit + 3 * 4096], 0);
	r.p[unit + 3 * 4096 + 1] = 'C';
	assert_back(r.cg, r.p + unit + 3 * 4096);
	h_assert_states(r.cg, was, r.p, unit, "the unit before, after the rewrite");
	h_assert_states(r.cg, was + 2 * unit / 4096, r.p + 2 * unit, 2 * unit,
			"the units after, after the rewrite");
	/* Following the rewrite must not split a PMD nobody touched. */
	for (size_t off = 2 * unit; off < len; off += unit)
		if (was[off / 4096].kind == CG_PAGE_THP)
			ck_assert_msg(h_pmd_mapped(r.p + off) == 1,
				      "chunk %zu no longer PMD-mapped", off / unit);
	audit(r.cg, r.p, len);

	/* Still followed: a fork shares it, a write after is seen. */
	ck_assert_int_eq(cg_stats(r.cg, &before, sizeof(before)), 0);
	child = h_fork_waiting(r.p + unit + 3 * 4096 + 1, 'C');
	ck_assert_int_eq(cg_query(r.cg, r.p + unit + 3 * 4096, &info, sizeof(info)), 0);
	ck_assert(info.present && !info.exclusive);
	audit(r.cg, r.p, len);
	r.p[unit + 3 * 4096 + 1] = 'D';
	ck_assert_int_eq(cg_stats(r.cg, &after, sizeof(after)), 0);
	ck_assert_uint_eq(after.wp_faults, before.wp_faults + 1);
	assert_back(r.cg, r.p + unit + 3 * 4096);
	audit(r.cg, r.p, len);
	ck_assert_int_eq(h_release(&child), 0);
	h_region_close(&r);
	free(was);
}
END_TEST

/*
 * Two PMD-mapped THP chunks; the first written (dirty, unprotected); 256
 * KiB in the middle of each chunk removed: each PMD is split, the rest of
 * each chunk keeps its state as PTE-mapped pages.
 */
START_TEST(dontneed_of_part_of_a_pmd_mapped_thp_splits_it)
{
	size_t len = 4 * MIB, cut = 512 * KIB, n = 256 * KIB;
	char *p = h_map(H_THP, len, 'A');
	struct cg_page_info *was, info;
	struct cg_stats before, after;
	struct cg_audit_report a;
	struct cg *cg;

	if (!p)
		return;
	if (!h_thp_pmd_mapped(p, 4 * MIB)) {
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
	p[5] = 'B';
	was = h_states(cg, p, len);
	ck_assert(was[0].kind == CG_PAGE_THP && was[0].dirty && !was[0].wp);
	ck_assert(was[512].kind == CG_PAGE_THP && !was[512].dirty && was[512].wp);
	ck_assert_int_eq(cg_stats(cg, &before, sizeof(before)), 0);

	ck_assert_int_eq(madvise(p + cut, n, MADV_DONTNEED), 0);
	ck_assert_int_eq(madvise(p + 2 * MIB + cut, n, MADV_DONTNEED), 0);

	ck_assert_int_eq(cg_stats(cg, &after, sizeof(after)), 0);
	ck_assert_uint_eq(after.removals, before.removals + 2);
	ck_assert_int_eq(h_pmd_mapped(p), 0);
	ck_assert_int_eq(h_pmd_mapped(p + 2 * MIB), 0);
	ck_assert_uint_eq(after.thp_splits, before.thp_splits + 2);
	assert_absent(cg, p + cut, n);
	assert_absent(cg, p + 2 * MIB + cut, n);
	for (size_t c = 0; c < len; c += 2 * MIB) {
		h_assert_states(cg, was + c / 4096, p + c, cut, "before the hole");
		h_assert_states(cg, was + (c + cut + n) / 4096, p + c + cut + n,
				2 * MIB - cut - n, "after the hole");
		ck_assert_int_eq(cg_query(cg, p + c + 2 * MIB - 4096, &info, sizeof(info)), 0);
		ck_assert_int_eq(info.kind, CG_PAGE_THP_PTE);
		ck_assert_uint_eq(info.size, 4096);
	}
	/* PTE-mapped THP pages mapped once: exclusivity cannot be read. */
	a = audit(cg, p, len);
	ck_assert_uint_eq(a.unknowable, (len - 2 * n) / 4096);

	ck_assert_int_eq(p[cut + 4096], 0);
	p[cut + 4096] = 'C';
	assert_back(cg, p + cut + 4096);
	ck_assert_int_eq(cg_query(cg, p + cut + 4096, &info, sizeof(info)), 0);
	ck_assert_int_eq(info.kind, CG_PAGE_THP_PTE);
	audit(cg, p, len);

	cg_close(cg);
	munmap(p, len);
	free(was);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("MADV_DONTNEED clears pages");
	TCase *tc = tcase_create("dontneed");

	h_timeout(tc, 30);
	h_add_test(tc, dontneed_makes_the_pages_not_present_and_a_write_brings_one_back, H_MODES, H_KINDS_SHARED);
	h_add_modes(tc, dontneed_of_part_of_a_pmd_mapped_thp_splits_it);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON | H_NEED_HUGETLB);
}
