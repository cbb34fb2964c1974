// SPDX-License-Identifier: MIT
/*
 * Registering hugetlb memory whose pages a child still shares unshares a
 * unit only while the pool has a page for its copy, unit by unit.
 *
 * Registration unshares every populated page it cannot prove exclusive.
 * For a private hugetlb page shared with a child, the copy needs a free
 * huge page; with none, the kernel gives the page to the owner of the
 * reservation (the parent) and unmaps it from the child, which then dies
 * of SIGBUS or reads zeros.  So cowguard asks the pool before each unit:
 * with one spare page and two shared units, the first is copied (exclusive)
 * and the second stays maybe-shared, and the child keeps both.
 *
 * Bugs this catches: a registration that takes the child's page (child
 * dies), one that asks the pool once for the whole range (with one spare
 * page nothing would be unshared, and a 1 GiB page smaps wrongly counts
 * as shared would stay maybe-shared for good without root), and a unit
 * claimed exclusive that the kernel still shares.
 */
#include <sys/mman.h>

#include "harness.h"
#include "kernel/procfs.h"
#include "pin-util.h"

START_TEST(one_spare_page_unshares_the_first_unit_and_leaves_the_second_shared)
{
	size_t unit = 2 * MIB, len = 2 * unit;
	struct h_waiter w;
	struct cg *cg;
	long before;
	char *p;

	if (!h_have_root("shrinks the hugetlb pool"))
		return;
	p = h_map(H_HUGETLB_2M, len, 'A');
	if (!p)
		return;
	w = h_fork_waiting(p, 'A');
	before = h_hugetlb_pool(H_HUGETLB_2M);
	ck_assert_int_ge(before, 0);
	/* Shrink the pool to the pages in use and one more. */
	ck_assert_int_eq(h_hugetlb_pool_set(H_HUGETLB_2M,
					    before - cg__hugetlb_spare(21) + 1), 0);
	if (cg__hugetlb_spare(21) != 1) {
		ck_assert_int_eq(h_hugetlb_pool_set(H_HUGETLB_2M, before), 0);
		h_skip("could not leave one spare 2 MiB page (%ld)",
		       cg__hugetlb_spare(21));
		ck_assert_int_eq(h_release(&w), 0);
		munmap(p, len);
		return;
	}

	cg = h_open(_i);
	ck_assert_int_eq(cg_register(cg, p, len, 0), 0);
	ck_assert_int_eq(cg__hugetlb_spare(21), 0);
	ck_assert_int_eq(ph_query(cg, p).exclusive, 1);
	ck_assert_int_eq(ph_kernel_exclusive(p, H_HUGETLB_2M), 1);
	ck_assert_int_eq(ph_query(cg, p + unit).exclusive, 0);
	ck_assert_int_eq(ph_kernel_exclusive(p + unit, H_HUGETLB_2M), 0);
	h_audit_clean(cg, p, len);

	ck_assert_int_eq(h_hugetlb_pool_set(H_HUGETLB_2M, before), 0);
	/* The child still maps both units: it reads 'A' and exits 0. */
	ck_assert_int_eq(h_release(&w), 0);
	cg_close(cg);
	munmap(p, len);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("registration with a short pool keeps the child's pages");
	TCase *tc = tcase_create("short pool");

	h_timeout(tc, 30);
	h_add_modes(tc, one_spare_page_unshares_the_first_unit_and_leaves_the_second_shared);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON | H_NEED_HUGETLB);
}
