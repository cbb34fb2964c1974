// SPDX-License-Identifier: MIT
/*
 * Pinning a range that is already ours copies nothing, as the kernel's
 * unshare does nothing to a PageAnonExclusive page:
 *  - a range the engine knows exclusive (registration unshared it) is left
 *    as it is: no page copied or even looked at again (unshare_copies and
 *    unshare_reuses unchanged), every frame the same, a THP still one PMD;
 *  - a range fork() shared whose child has since exited is maybe-shared
 *    for the engine but mapped once: the pin finds each page ours and
 *    reuses it in place (unshare_reuses counts it, no copy, same frames,
 *    a THP reused whole and still PMD-mapped).
 *
 * Bugs this catches: an unshare of pages that need none (a copy per pin:
 * cost, and a THP split for nothing), a reuse counted as a copy, the
 * engine's "exclusive" not trusted (or trusted blindly), a THP reused
 * whole but tracked as split.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "kernel/procfs.h"
#include "pin-util.h"

/* Map, fill, register; NULL after a skip. */
static char *setup(enum h_kind kind, size_t len, struct cg **cg, int mode)
{
	char *p = h_map(kind, len, 'A');

	if (!p)
		return NULL;
	if (kind == H_THP && !h_thp_pmd_mapped(p, len)) {
		munmap(p, len);
		return NULL;
	}
	/*
	 * Only COWGUARD_KERNEL=pre-5.19 on a 6.7+ host gets here: a pin
	 * writes each page there, and the engine follows a THP so written
	 * as split, not knowing whether the kernel reused it whole.
	 */
	if (kind == H_THP && !h_read_pins_unshare(NULL)) {
		h_skip("THP: before 5.19 a pin writes every page, and the engine "
		       "calls a THP so written split (lib/engine/events.c)");
		munmap(p, len);
		return NULL;
	}
	*cg = h_open(mode);
	ck_assert_int_eq(cg_register(*cg, p, len, 0), 0);
	return p;
}

static uint64_t *frames(const char *p, enum h_kind kind, size_t len)
{
	uint64_t *f = calloc(len / PG, sizeof(*f));

	ck_assert_ptr_nonnull(f);
	ph_for_each_page(off, kind, len)
		f[off / PG] = ph_pfn(p + off);
	return f;
}

/* Pinned and untouched: same frames, exclusive everywhere, THP whole. */
static void assert_untouched(struct cg *cg, const char *p, enum h_kind kind,
			     size_t len, const uint64_t *was)
{
	ph_for_each_page(off, kind, len) {
		struct cg_page_info q = ph_query(cg, p + off);

		ck_assert_msg(ph_pfn(p + off) == was[off / PG],
			      "page %zu moved from frame %#llx to %#llx", off / PG,
			      (unsigned long long)was[off / PG],
			      (unsigned long long)ph_pfn(p + off));
		ck_assert_msg(ph_kernel_exclusive(p + off, kind) != 0,
			      "page %zu shared in the kernel after the pin", off / PG);
		/* Before 5.19 a pinned page stays unprotected (lib/engine/pins.c). */
		ck_assert_msg(q.exclusive && q.wp == h_read_pins_unshare(NULL) &&
			      q.pins == 1,
			      "page %zu: exclusive %d wp %d pins %u", off / PG,
			      q.exclusive, q.wp, q.pins);
		if (kind == H_THP)
			ck_assert_msg(q.kind == CG_PAGE_THP &&
				      h_pmd_mapped(p + off) == 1,
				      "page %zu: kind %d, PMD-mapped %d: split for "
				      "nothing", off / PG, q.kind,
				      h_pmd_mapped(p + off));
	}
}

START_TEST(pinning_a_range_already_exclusive_copies_nothing)
{
	enum h_kind kind = H_KIND(_i);
	size_t len = ph_len(kind);
	struct cg_stats s0, s1;
	struct cg_pin *pin;
	struct cg *cg;
	uint64_t *was;
	char *p = setup(kind, len, &cg, H_MODE(_i));

	if (!p)
		return;
	was = frames(p, kind, len);
	s0 = ph_stats(cg);
	ck_assert_int_eq(cg_pin(cg, p, len, CG_PIN_RO, &pin), 0);
	s1 = ph_stats(cg);
	ck_assert_uint_eq(s1.unshare_copies, s0.unshare_copies);
	ck_assert_uint_eq(s1.unshare_reuses, s0.unshare_reuses);
	ck_assert_uint_eq(s1.pages_made_exclusive, s0.pages_made_exclusive);
	ck_assert_uint_eq(s1.thp_splits, s0.thp_splits);
	ck_assert_uint_eq(s1.pins, 1);
	assert_untouched(cg, p, kind, len, was);
	ck_assert_int_eq(cg_unpin(pin), 0);

	/* RW pins the same way: nothing to copy. */
	ck_assert_int_eq(cg_pin(cg, p, len, CG_PIN_RW, &pin), 0);
	ck_assert_uint_eq(ph_stats(cg).unshare_copies, s0.unshare_copies);
	ck_assert_uint_eq(ph_stats(cg).unshare_reuses, s0.unshare_reuses);
	ck_assert_int_eq(cg_unpin(pin), 0);
	h_audit_clean(cg, p, len);
	free(was);
	cg_close(cg);
	munmap(p, len);
}
END_TEST

START_TEST(pinning_a_range_whose_child_has_exited_reuses_every_page)
{
	enum h_kind kind = H_KIND(_i);
	size_t len = ph_len(kind), npages = len / PG;
	struct cg_stats s0, s1;
	struct h_waiter w;
	struct cg_pin *pin;
	bool lost;
	int status, ret;
	struct cg *cg;
	uint64_t *was;
	char *p;

	h_stay_on_this_cpu();
	p = setup(kind, len, &cg, H_MODE(_i));
	if (!p)
		return;
	/*
	 * Bit 56 cannot tell a 1 GiB page mapped once (lib/engine/pins.c): the pin
	 * counts a maybe-shared one as a copy and wants a spare page for it.
	 */
	if (!h_hugetlb_room(kind, kind == H_HUGETLB_1G ? 1 : 0)) {
		cg_close(cg);
		munmap(p, len);
		return;
	}
	w = h_fork_waiting(p, 'A');
	/*
	 * Measured on 6.18 without cowguard too: in about 1 fork of 6 a
	 * private 1 GiB page is not shared at all; the parent's stays
	 * PageAnonExclusive and the child maps nothing there (reads zeros).
	 */
	lost = kind == H_HUGETLB_1G && ph_kernel_exclusive(p, kind) == 1;
	status = h_release(&w);
	if (lost || (kind == H_HUGETLB_1G && status && geteuid()))
		h_skip("%s: fork did not share the page (6.18 kernel); child "
		       "status %d not checked", h_kind_name(kind), status);
	else
		ck_assert_int_eq(status, 0);
	/* Maybe-shared for the engine, mapped once in the kernel. */
	ck_assert_int_eq(ph_query(cg, p).exclusive, 0);
	was = frames(p, kind, len);
	h_flush_lru_batch();
	s0 = ph_stats(cg);
	ret = cg_pin(cg, p, len, CG_PIN_RO, &pin);
	if (ret == -ENOMEM && kind == H_HUGETLB_1G) {
		/* Other suites share the pool: it ran short after the check. */
		h_skip("%s: the pool ran short before the pin (%ld spare): "
		       "refused with -ENOMEM", h_kind_name(kind),
		       cg__hugetlb_spare(30));
		goto out;
	}
	ck_assert_msg(ret == 0, "cg_pin: %s", cg_strerror(ret));
	s1 = ph_stats(cg);
	ck_assert_uint_eq(s1.unshare_copies, s0.unshare_copies);
	ck_assert_uint_eq(s1.unshare_reuses - s0.unshare_reuses, npages);
	ck_assert_uint_eq(s1.thp_splits, s0.thp_splits);
	assert_untouched(cg, p, kind, len, was);
	h_audit_clean(cg, p, len);
	ck_assert_int_eq(cg_unpin(pin), 0);
out:
	free(was);
	cg_close(cg);
	munmap(p, len);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pin leaves exclusive pages alone");
	TCase *tc = tcase_create("pin");

	h_timeout(tc, 30);
	h_add_modes_kinds(tc, pinning_a_range_already_exclusive_copies_nothing);
	h_add_modes_kinds(tc, pinning_a_range_whose_child_has_exited_reuses_every_page);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON | H_NEED_HUGETLB);
}
