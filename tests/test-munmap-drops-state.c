// SPDX-License-Identifier: MIT
/*
 * munmap() of registered memory drops its state: unmapped whole, the
 * region is gone (no region, no registered bytes, queries fail); unmapped
 * in the middle, it becomes two regions that keep their pages' states; and
 * the freed range, mapped again, can be registered again.
 *
 * Bugs these catch: an UNMAP event ignored (a stale region that refuses a
 * new registration with -EEXIST, or hands the old pages' exclusive state
 * to whatever is mapped there next); byte and region counts that drift; a
 * middle cut that drops or shifts the state on either side, or leaves a
 * THP chunk it cut in two called PMD-mapped.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"

/* Modes × 4 KiB, THP, hugetlb 2 MiB. */

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << MAP_HUGE_SHIFT)
#endif

/* Four quarters: 4 KiB kind 1 MiB each, huge kinds one 2 MiB unit each. */
static size_t quarter(enum h_kind kind)
{
	return kind == H_4K ? MIB : 2 * MIB;
}

/* Audit clean, and every page the engine calls present is present. */
static void audit(struct cg *cg, void *addr, size_t len)
{
	struct cg_audit_report a = h_audit_clean(cg, addr, len);
	struct cg_page_info q;

	ck_assert_msg(a.presence == 0, "audit: %llu presence mismatches",
		      (unsigned long long)a.presence);
	ck_assert_int_eq(cg_query(cg, addr, &q, sizeof(q)), 0);
	/*
	 * Without root a page mapped once is unknowable: none may be exact.
	 * Nor a THP page mapped once without PAGEMAP_SCAN (6.1): PMD- or
	 * PTE-mapped, nothing says which of kpageflags' two readings holds.
	 */
	if (a.truth == CG_TRUTH_KPAGEFLAGS &&
	    !((q.kind == CG_PAGE_THP || q.kind == CG_PAGE_THP_PTE) &&
	      h_pmd_mapped(addr) < 0))
		ck_assert_uint_gt(a.exact, 0);
}

/* Map [addr, addr+len) again, as kind, filled with fill. */
static void remap_at(enum h_kind kind, char *addr, size_t len, int fill)
{
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE;
	char *p;

	if (kind == H_HUGETLB_2M)
		flags |= MAP_HUGETLB | MAP_HUGE_2MB;
	p = mmap(addr, len, PROT_READ | PROT_WRITE, flags, -1, 0);
	ck_assert_msg(p == addr, "mmap at %p: %s", addr, strerror(errno));
	if (kind == H_THP)
		ck_assert_int_eq(madvise(p, len, MADV_HUGEPAGE), 0);
	if (kind == H_4K)
		ck_assert_int_eq(madvise(p, len, MADV_NOHUGEPAGE), 0);
	memset(p, fill, len);
}

/* Freshly registered: every page present, exclusive, write-protected. */
static void assert_fresh(struct cg *cg, char *p, size_t len)
{
	for (size_t off = 0; off < len; off += 4096) {
		struct cg_page_info info;

		ck_assert_int_eq(cg_query(cg, p + off, &info, sizeof(info)), 0);
		ck_assert_msg(info.present && info.exclusive && !info.dirty && info.wp,
			      "re-registered page %zu: present %d exclusive %d "
			      "dirty %d wp %d", off / 4096, info.present,
			      info.exclusive, info.dirty, info.wp);
	}
}

START_TEST(munmap_of_the_whole_region_drops_it_and_the_range_can_be_registered_again)
{
	enum h_kind kind = H_KIND(_i);
	size_t len = 4 * quarter(kind);
	struct h_region r;
	struct cg_page_info info;
	struct cg_stats before, after;

	if (!h_region_open(&r, H_MODE(_i), kind, len, 'A', 0))
		return;
	r.p[4096 * 5] = 'B';
	ck_assert_int_eq(cg_stats(r.cg, &before, sizeof(before)), 0);
	ck_assert_uint_eq(before.regions, 1);
	ck_assert_uint_eq(before.registered_bytes, len);

	ck_assert_int_eq(munmap(r.p, len), 0);

	ck_assert_int_eq(cg_stats(r.cg, &after, sizeof(after)), 0);
	ck_assert_uint_eq(after.unmaps, before.unmaps + 1);
	ck_assert_uint_eq(after.regions, 0);
	ck_assert_uint_eq(after.registered_bytes, 0);
	ck_assert_int_eq(cg_query(r.cg, r.p, &info, sizeof(info)), -ENOENT);
	ck_assert_int_eq(cg_query(r.cg, r.p + len / 2, &info, sizeof(info)), -ENOENT);
	ck_assert_int_eq(cg_query(r.cg, r.p + len - 4096, &info, sizeof(info)), -ENOENT);
	ck_assert_int_eq(cg_unregister(r.cg, r.p, len), -ENOENT);

	/* Mapped again: new pages, nothing of the old ones' state. */
	remap_at(kind, r.p, len, 'C');
	ck_assert_int_eq(cg_query(r.cg, r.p, &info, sizeof(info)), -ENOENT);
	ck_assert_int_eq(cg_register(r.cg, r.p, len, 0), 0);
	ck_assert_int_eq(cg_stats(r.cg, &after, sizeof(after)), 0);
	ck_assert_uint_eq(after.regions, 1);
	ck_assert_uint_eq(after.registered_bytes, len);
	assert_fresh(r.cg, r.p, len);
	audit(r.cg, r.p, len);

	/* And it is followed: a write is seen. */
	ck_assert_int_eq(cg_stats(r.cg, &before, sizeof(before)), 0);
	r.p[4096 * 5] = 'D';
	ck_assert_int_eq(cg_stats(r.cg, &after, sizeof(after)), 0);
	ck_assert_uint_eq(after.wp_faults, before.wp_faults + 1);
	ck_assert_int_eq(cg_query(r.cg, r.p + 4096 * 5, &info, sizeof(info)), 0);
	ck_assert(info.present && info.exclusive && info.dirty);
	audit(r.cg, r.p, len);

	ck_assert_int_eq(cg_unregister(r.cg, r.p, len), 0);
	h_region_close(&r);
}
END_TEST

/*
 * Quarters 0 and 1 have a page written before a fork (dirty, shared),
 * quarter 2 one written after it (exclusive), quarter 3 none.  The middle
 * (quarters 1 and 2, shifted by half a THP or 3 pages so that cuts fall
 * inside PMD-mapped chunks and off the 2 MiB grid) is unmapped.
 */
START_TEST(munmap_of_a_middle_part_leaves_two_regions_that_keep_their_state)
{
	enum h_kind kind = H_KIND(_i);
	size_t q = quarter(kind), len = 4 * q;
	size_t small = kind == H_HUGETLB_2M ? 0 : 4096;
	size_t shift = kind == H_THP ? MIB : kind == H_4K ? 3 * 4096 : 0;
	size_t from = q + shift, n = 2 * q, rest = len - from - n;
	struct h_region r;
	struct cg_page_info *was, info;
	struct cg_stats before, after;
	struct h_waiter child;

	/* Writes after the fork copy a unit each. */
	if (!h_region_open(&r, H_MODE(_i), kind, len, 'A', 4))
		return;
	r.p[7 * small] = 'B';
	r.p[q + 7 * small] = 'B';
	child = h_fork_waiting(&r.p[2 * q + 5 * small], 'A');
	r.p[2 * q + 5 * small] = 'B';
	was = h_states(r.cg, r.p, len);
	ck_assert(was[(q + 7 * small) / 4096].dirty &&
		  !was[(q + 7 * small) / 4096].exclusive);
	ck_assert(was[(2 * q + 5 * small) / 4096].dirty);
	if (h_write_after_fork_is_known_ours(r.cg, r.p))
		ck_assert(was[(2 * q + 5 * small) / 4096].exclusive);
	ck_assert(!was[3 * q / 4096].dirty && !was[3 * q / 4096].exclusive);
	ck_assert_int_eq(cg_stats(r.cg, &before, sizeof(before)), 0);

	ck_assert_int_eq(munmap(r.p + from, n), 0);

	ck_assert_int_eq(cg_stats(r.cg, &after, sizeof(after)), 0);
	ck_assert_uint_eq(after.unmaps, before.unmaps + 1);
	ck_assert_uint_eq(after.regions, 2);
	ck_assert_uint_eq(after.registered_bytes, len - n);
	ck_assert_int_eq(cg_query(r.cg, r.p + from, &info, sizeof(info)), -ENOENT);
	ck_assert_int_eq(cg_query(r.cg, r.p + from + n - 4096, &info, sizeof(info)), -ENOENT);
	h_assert_states(r.cg, was, r.p, from, "the part before the hole");
	h_assert_states(r.cg, was + (from + n) / 4096, r.p + from + n, rest,
			"the part after the hole");
	audit(r.cg, r.p, from);
	audit(r.cg, r.p + from + n, rest);
	/* Each part is a region of its own now. */
	ck_assert_int_eq(cg_unregister(r.cg, r.p, len), -ENOENT);

	/* Both parts are still followed. */
	ck_assert_int_eq(cg_stats(r.cg, &before, sizeof(before)), 0);
	r.p[11 * 4096] = 'C';
	r.p[len - 4096] = 'C';
	ck_assert_int_eq(cg_stats(r.cg, &after, sizeof(after)), 0);
	ck_assert_uint_eq(after.wp_faults, before.wp_faults + 2);
	ck_assert_int_eq(cg_query(r.cg, r.p + 11 * 4096, &info, sizeof(info)), 0);
	ck_assert(info.present && info.exclusive && info.dirty);
	ck_assert_int_eq(cg_query(r.cg, r.p + len - 4096, &info, sizeof(info)), 0);
	ck_assert(info.present && info.exclusive && info.dirty);
	audit(r.cg, r.p, from);
	audit(r.cg, r.p + from + n, rest);

	/* The hole, mapped again, registers as a third region. */
	remap_at(kind, r.p + from, n, 'E');
	ck_assert_int_eq(cg_register(r.cg, r.p + from, n, 0), 0);
	ck_assert_int_eq(cg_stats(r.cg, &after, sizeof(after)), 0);
	ck_assert_uint_eq(after.regions, 3);
	ck_assert_uint_eq(after.registered_bytes, len);
	assert_fresh(r.cg, r.p + from, n);
	audit(r.cg, r.p, len);

	ck_assert_int_eq(h_release(&child), 0);
	audit(r.cg, r.p, len);
	h_region_close(&r);
	free(was);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("munmap drops state");
	TCase *tc = tcase_create("munmap");

	h_timeout(tc, 30);
	h_add_test(tc, munmap_of_the_whole_region_drops_it_and_the_range_can_be_registered_again, H_MODES, H_KINDS_SHARED);
	h_add_test(tc, munmap_of_a_middle_part_leaves_two_regions_that_keep_their_state, H_MODES, H_KINDS_SHARED);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON | H_NEED_HUGETLB);
}
