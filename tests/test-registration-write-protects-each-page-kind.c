// SPDX-License-Identifier: MIT
/*
 * Registration write-protects every populated unit of every page kind, so
 * that the first write to each is seen, once; unregistration lifts it.
 *
 * Bugs this catches: a kind whose pages are left writable at registration
 * (writes missed, "clean" pages that are not), a unit reported with the
 * wrong kind or size (a THP taken for 4 KiB pages, a 1 GiB page for 2 MiB),
 * a write that unprotects or dirties its neighbours (but for 4 KiB pages
 * unprotected with it, which must then be dirty), a fault counted twice
 * or not at all, unpopulated pages claimed present, a first touch the
 * engine never learns, and stale uffd-wp bits after cg_unregister().
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "kernel/procfs.h"

static enum cg_page_kind expected_kind(enum h_kind kind)
{
	static const enum cg_page_kind k[] = { CG_PAGE_4K, CG_PAGE_THP,
					       CG_PAGE_HUGETLB_2M,
					       CG_PAGE_HUGETLB_1G };

	return k[kind];
}

/* How many units to map: several, but 1 GiB pages are scarce here. */
static size_t units_for(enum h_kind kind)
{
	switch (kind) {
	case H_4K:
		return 16;
	case H_THP:
	case H_HUGETLB_2M:
		return 4;
	case H_HUGETLB_1G:
		/*
		 * Pools here hold two or three.  Leave one spare: without root
		 * registration proves a 1 GiB page exclusive by unsharing it
		 * (smaps may count a fresh one as shared on 6.18, and bit 56
		 * never tells), which it does only with a page for a copy.
		 */
		return cg__hugetlb_spare(30) >= 3 ? 2 : 1;
	}
	return 1;
}

static uint64_t wp_faults(struct cg *cg)
{
	struct cg_stats s;

	ck_assert_int_eq(cg_stats(cg, &s, sizeof(s)), 0);
	return s.wp_faults;
}

/* Both ends of a unit (each 4 KiB page for small pages) carry uffd-wp. */
static void assert_kernel_wp(const char *p, size_t page, bool want,
			     const char *when)
{
	const char *ends[2] = { p, p + page - 4096 };

	if (!h_pagemap_shows_uffd_wp())
		return;	/* 5.10: only the effects tell (wp_faults, below) */
	for (int e = 0; e < 2; e++)
		ck_assert_msg(h_kpage(ends[e]).uffd_wp == want,
			      "%s: pagemap uffd-wp bit of %p is %d, want %d",
			      when, (void *)ends[e], h_kpage(ends[e]).uffd_wp, want);
}

static void assert_unit(struct cg *cg, const char *u, enum h_kind kind,
			bool dirty, const char *when)
{
	size_t page = h_page_size(kind);
	struct cg_page_info info;

	/* Any address inside the unit answers for the whole unit. */
	ck_assert_int_eq(cg_query(cg, u + page / 2 + 123, &info, sizeof(info)), 0);
	ck_assert_msg(info.addr == (uintptr_t)u && info.size == page &&
			      info.kind == expected_kind(kind),
		      "%s: unit %p: addr %#llx size %llu kind %d, want %p %zu %d",
		      when, (void *)u, (unsigned long long)info.addr,
		      (unsigned long long)info.size, info.kind, (void *)u, page,
		      expected_kind(kind));
	ck_assert_msg(info.present && info.exclusive && info.dirty == dirty &&
			      info.wp == !dirty,
		      "%s: unit %p: present %d exclusive %d dirty %d wp %d, "
		      "want 1 1 %d %d", when, (void *)u, info.present,
		      info.exclusive, info.dirty, info.wp, dirty, !dirty);
	assert_kernel_wp(u, page, !dirty, when);
}

/*
 * Asynchronous write protection: the kernel split the THP at the first
 * write (KERNEL-FACTS), so each end is a 4 KiB page written on its own,
 * and the engine followed: both ours and dirty, the rest of the THP ours,
 * clean and protected, the audit clean.
 */
static void assert_thp_split_by_write(struct cg *cg, const char *u,
				      uint64_t faults)
{
	struct cg_page_info info;

	ck_assert_uint_eq(wp_faults(cg) - faults, 2);
	for (size_t off = 0; off < 2 * MIB; off += 4096) {
		bool end = off == 0 || off == 2 * MIB - 4096;

		ck_assert_int_eq(cg_query(cg, u + off, &info, sizeof(info)), 0);
		ck_assert_msg(info.kind == CG_PAGE_THP_PTE && info.present &&
				      info.exclusive && info.dirty == end &&
				      info.wp == !end,
			      "split THP, page %zu: kind %d present %d exclusive "
			      "%d dirty %d wp %d", off / 4096, info.kind,
			      info.present, info.exclusive, info.dirty, info.wp);
	}
	h_audit_clean(cg, (void *)u, 2 * MIB);
}

START_TEST(registration_protects_every_unit_and_one_write_unprotects_only_its_own)
{
	enum h_kind kind = H_KIND(_i);
	size_t page = h_page_size(kind), units = units_for(kind);
	size_t len = units * page, hit = units > 1 ? 1 : 0;
	struct cg_page_info info;
	struct cg_stats st;
	uint64_t faults;
	struct h_region r;

	if (!h_region_open(&r, H_MODE(_i), kind, len, 'A', 0))
		return;
	ck_assert_int_eq(cg_stats(r.cg, &st, sizeof(st)), 0);
	ck_assert_uint_eq(st.regions, 1);
	ck_assert_uint_eq(st.registered_bytes, len);
	ck_assert_int_eq(h_vma_flag(r.p, "uw"), 1);
	if (kind == H_THP && !h_thp_pmd_mapped(r.p, len))
		goto out;
	for (size_t u = 0; kind == H_THP && u < units; u++) {
		ck_assert_int_eq(cg_query(r.cg, r.p + u * page, &info, sizeof(info)), 0);
		if (info.kind != CG_PAGE_THP) {
			h_skip("THP: unit %zu is not PMD-mapped after populating "
			       "(cg_query kind %d; no free huge page?)", u,
			       info.kind);
			goto out;
		}
	}
	for (size_t u = 0; u < units; u++)
		assert_unit(r.cg, r.p + u * page, kind, false, "after registration");
	h_audit_clean(r.cg, r.p, len);

	faults = wp_faults(r.cg);
	/* Both ends of one unit: one fault unprotects the whole unit. */
	r.p[hit * page] = 'B';
	r.p[hit * page + page - 1] = 'b';
	if (kind == H_THP && h_wp_async(r.cg))
		assert_thp_split_by_write(r.cg, r.p + hit * page, faults);
	else {
		ck_assert_uint_eq(wp_faults(r.cg) - faults, 1);
		assert_unit(r.cg, r.p + hit * page, kind, true, "written unit");
	}
	for (size_t u = 0; u < units; u++) {
		/*
		 * A 4 KiB page known exclusive may be unprotected with its
		 * neighbour's fault (test-a-write-fault-unprotects-the-
		 * exclusive-pages-around-it.c), then called dirty: either way
		 * the engine and the kernel agree.
		 */
		bool around = kind == H_4K &&
			      cg_query(r.cg, r.p + u * page, &info, sizeof(info)) == 0 &&
			      info.dirty;

		if (u != hit)
			assert_unit(r.cg, r.p + u * page, kind, around, "neighbour");
	}
	if (units == 1)
		h_skip("%s: only one page free when mapped, no neighbour to "
		       "check", h_kind_name(kind));
	ck_assert_int_eq(r.p[hit * page], 'B');
	ck_assert_int_eq(r.p[hit * page + page - 1], 'b');
	ck_assert_int_eq(r.p[hit * page + 1], 'A');
	if (units > 1)
		ck_assert_int_eq(r.p[(hit ^ 1) * page], 'A');
	h_audit_clean(r.cg, r.p, len);
	/* Reads and a second write to the same unit raise nothing. */
	r.p[hit * page + 2] = 'C';
	ck_assert_uint_eq(wp_faults(r.cg) - faults,
			  kind == H_THP && h_wp_async(r.cg) ? 2 : 1);
out:
	h_region_close(&r);
}
END_TEST

START_TEST(unpopulated_pages_are_absent_until_a_first_write_that_raises_no_fault)
{
	size_t page = 4096, len = 8 * page;
	struct cg_page_info info;
	struct cg_audit_report a;
	uint64_t faults;
	char *p = h_map(H_4K, len, -1);
	struct cg *cg;

	ck_assert_ptr_nonnull(p);
	memset(p, 'A', 4 * page);	/* pages 0-3 populated, 4-7 not */
	cg = h_open(_i);
	ck_assert_int_eq(cg_register(cg, p, len, 0), 0);
	for (size_t i = 4; i < 8; i++) {
		ck_assert_int_eq(cg_query(cg, p + i * page, &info, sizeof(info)), 0);
		ck_assert_msg(!info.present && info.kind == CG_PAGE_4K &&
				      info.size == page,
			      "page %zu: present %d kind %d size %llu", i,
			      info.present, info.kind,
			      (unsigned long long)info.size);
		ck_assert(!h_kpage(p + i * page).present);
	}
	ck_assert_int_eq(cg_query(cg, p, &info, sizeof(info)), 0);
	ck_assert(info.present && info.exclusive && info.wp && !info.dirty);

	faults = wp_faults(cg);
	p[5 * page] = 'C';	/* no marker: the kernel raises no fault */
	ck_assert_uint_eq(wp_faults(cg) - faults, 0);
	ck_assert_int_eq(cg_query(cg, p + 5 * page, &info, sizeof(info)), 0);
	ck_assert_msg(info.present && info.exclusive && info.dirty,
		      "after first write: present %d exclusive %d dirty %d",
		      info.present, info.exclusive, info.dirty);
	/* Whatever the engine says about protection, the kernel agrees. */
	if (h_pagemap_shows_uffd_wp())
		ck_assert_int_eq(info.wp, h_kpage(p + 5 * page).uffd_wp);
	ck_assert_int_eq(cg_query(cg, p + 6 * page, &info, sizeof(info)), 0);
	ck_assert(!info.present);
	a = h_audit_clean(cg, p, len);
	ck_assert_uint_eq(a.pages, 8);
	ck_assert_uint_eq(a.present, 5);
	ck_assert_uint_eq(a.presence, 0);
	ck_assert_int_eq(p[5 * page], 'C');
	ck_assert_int_eq(p[0], 'A');
	cg_close(cg);
	munmap(p, len);
}
END_TEST

START_TEST(unregister_lifts_write_protection_and_a_second_unregister_is_enoent)
{
	enum h_kind kind = H_KIND(_i);
	size_t page = h_page_size(kind);
	size_t units = kind == H_HUGETLB_1G ? 1 : kind == H_4K ? 16 : 2;
	size_t len = units * page;
	struct cg_page_info info;
	struct cg_stats st;
	uint64_t faults;
	struct h_region r;

	if (!h_region_open(&r, H_MODE(_i), kind, len, 'A', 0))
		return;
	for (size_t u = 0; u < units; u++)
		assert_kernel_wp(r.p + u * page, page, true, "registered");
	ck_assert_int_eq(cg_unregister(r.cg, r.p, len), 0);
	ck_assert_int_eq(cg_unregister(r.cg, r.p, len), -ENOENT);
	ck_assert_int_eq(cg_query(r.cg, r.p, &info, sizeof(info)), -ENOENT);
	ck_assert_int_eq(cg_stats(r.cg, &st, sizeof(st)), 0);
	ck_assert_uint_eq(st.regions, 0);
	ck_assert_uint_eq(st.registered_bytes, 0);
	ck_assert_int_eq(h_vma_flag(r.p, "uw"), 0);
	for (size_t u = 0; u < units; u++)
		assert_kernel_wp(r.p + u * page, page, false, "unregistered");

	faults = st.wp_faults;
	for (size_t u = 0; u < units; u++)
		r.p[u * page] = (char)('a' + u);
	ck_assert_uint_eq(wp_faults(r.cg) - faults, 0);
	for (size_t u = 0; u < units; u++) {
		ck_assert_int_eq(r.p[u * page], 'a' + (int)u);
		ck_assert_int_eq(r.p[u * page + 1], 'A');
	}
	/* The range can be registered again, protected afresh. */
	ck_assert_int_eq(cg_register(r.cg, r.p, len, 0), 0);
	assert_kernel_wp(r.p, page, true, "registered again");
	ck_assert_int_eq(cg_unregister(r.cg, r.p, len), 0);
	h_region_close(&r);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("registration write-protects each page kind");
	TCase *reg = tcase_create("register");
	TCase *unpop = tcase_create("unpopulated");
	TCase *unreg = tcase_create("unregister");

	h_timeout(reg, 60);
	h_add_modes_kinds(reg, registration_protects_every_unit_and_one_write_unprotects_only_its_own);
	suite_add_tcase(s, reg);
	h_timeout(unpop, 10);
	h_add_modes(unpop, unpopulated_pages_are_absent_until_a_first_write_that_raises_no_fault);
	suite_add_tcase(s, unpop);
	h_timeout(unreg, 60);
	h_add_modes_kinds(unreg, unregister_lifts_write_protection_and_a_second_unregister_is_enoent);
	suite_add_tcase(s, unreg);
	return h_main(s, H_NEED_DAEMON | H_NEED_HUGETLB);
}
