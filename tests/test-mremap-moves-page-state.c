// SPDX-License-Identifier: MIT
/*
 * mremap() of a registered region moves its page state with it: the pages
 * at the new address have the states the old ones had (present, exclusive
 * or maybe-shared, dirty, write-protected), the old address is no longer
 * tracked, and a write at the new address is seen.
 *
 * Bugs these catch: a REMAP event dropped or applied to the wrong range
 * (state left at the old address, the new one untracked: a write to a
 * maybe-shared page there goes unseen or is called exclusive without an
 * unshare); state shifted by the offset between the two addresses' 2 MiB
 * grids; the remainder of a partial move lost or misplaced; a PMD-mapped
 * THP chunk cut by the move still called PMD-mapped, or one moved whole
 * called split.  1 GiB hugetlb is left out: moving it needs a 1 GiB aligned
 * hole and the COW copies need more gigantic pages than the pool has.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"

/* Four quarters: 4 KiB kind 1 MiB each, huge kinds one 2 MiB unit each. */
static size_t quarter(enum h_kind kind)
{
	return kind == H_4K ? MIB : 2 * MIB;
}

/*
 * An empty hole of len bytes, aligned to 2 MiB plus skew, for MREMAP_FIXED.
 * The hole is PROT_NONE and unregistered: replacing it raises no event.
 */
static char *hole(size_t len, size_t skew)
{
	size_t span = len + 4 * MIB;
	char *p = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *q;

	ck_assert(p != MAP_FAILED);
	q = (char *)(((uintptr_t)p + 2 * MIB - 1) & ~(uintptr_t)(2 * MIB - 1)) + skew;
	if (q > p)
		munmap(p, (size_t)(q - p));
	munmap(q + len, (size_t)(p + span - (q + len)));
	return q;
}

/*
 * Register 4 quarters filled with 'A', then give them different histories
 * (copies: how many units the test's writes after the fork copy in all):
 *   quarters 0 and 1: one page each written before the fork (dirty, then
 *   shared; a THP chunk is dirtied whole, so two chunks agree: one run of
 *   state across the 2 MiB boundary, which a partial move cuts);
 *   quarter 2: one page written after the fork (copied: exclusive, dirty);
 *   quarter 3: untouched since registration, then shared by fork.
 * The child keeps everything shared until released; it checks that the
 * parent's post-fork write did not reach it.
 */
static char *setup(struct cg *cg, enum h_kind kind, size_t len,
		   struct h_waiter *child, size_t copies)
{
	size_t q = quarter(kind), small = kind == H_HUGETLB_2M ? 0 : 4096;
	char *p = h_map(kind, len, 'A');
	struct cg_page_info info;

	if (!p)
		return NULL;
	/* The post-fork writes copy a unit each, the parent owning the pool. */
	if (!h_hugetlb_room(kind, copies)) {
		munmap(p, len);
		return NULL;
	}
	if (kind == H_THP && !h_thp_pmd_mapped(p, 2 * MIB)) {
		munmap(p, len);
		return NULL;
	}
	ck_assert_int_eq(cg_register(cg, p, len, 0), 0);
	p[7 * small] = 'B';
	p[q + 7 * small] = 'B';
	*child = h_fork_waiting(&p[2 * q + 5 * small], 'A');
	p[2 * q + 5 * small] = 'B';

	/* The histories must differ, or the comparisons prove little. */
	ck_assert_int_eq(cg_query(cg, p + q + 7 * small, &info, sizeof(info)), 0);
	ck_assert(info.present && !info.exclusive && info.dirty && info.wp);
	ck_assert_int_eq(cg_query(cg, p + 2 * q + 5 * small, &info, sizeof(info)), 0);
	ck_assert(info.present && info.dirty);
	ck_assert(info.exclusive || !h_write_after_fork_is_known_ours(cg, p));
	ck_assert_int_eq(cg_query(cg, p + 3 * q, &info, sizeof(info)), 0);
	ck_assert(info.present && !info.exclusive && !info.dirty && info.wp);
	return p;
}

static void finish(struct cg *cg, struct h_waiter *child)
{
	ck_assert_int_eq(h_release(child), 0);
	cg_close(cg);
}

/* Audit clean, and every page the engine calls present is present. */
static void audit(struct cg *cg, void *addr, size_t len)
{
	struct cg_audit_report a = h_audit_clean(cg, addr, len);

	ck_assert_msg(a.presence == 0, "audit: %llu presence mismatches",
		      (unsigned long long)a.presence);
	/* Without root a page mapped once is unknowable: none may be exact. */
	if (a.truth == CG_TRUTH_KPAGEFLAGS)
		ck_assert_uint_gt(a.exact, 0);
}

/* A write to a maybe-shared page is seen: a fault, then exclusive, dirty. */
static void write_is_seen(struct cg *cg, char *page)
{
	struct cg_stats before, after;
	struct cg_page_info info;

	ck_assert_int_eq(cg_query(cg, page, &info, sizeof(info)), 0);
	ck_assert_msg(info.present && !info.exclusive && info.wp,
		      "before the write: present %d exclusive %d wp %d",
		      info.present, info.exclusive, info.wp);
	ck_assert_int_eq(cg_stats(cg, &before, sizeof(before)), 0);
	*page = 'C';
	ck_assert_int_eq(cg_stats(cg, &after, sizeof(after)), 0);
	ck_assert_uint_eq(after.wp_faults, before.wp_faults + 1);
	ck_assert_int_eq(cg_query(cg, page, &info, sizeof(info)), 0);
	ck_assert_msg(info.present && info.exclusive && info.dirty,
		      "after the write: present %d exclusive %d dirty %d "
		      "(kernel exclusive %d)", info.present, info.exclusive,
		      info.dirty, h_kpage(page).anon_exclusive);
	ck_assert_int_ne(h_kpage(page).anon_exclusive, 0);	/* -1: no root */
}

/*
 * A region of 4 quarters set up as setup() says, whose part [from,
 * from+n) mremap then moved to a hole aligned to 2 MiB plus skew: the
 * states before (was, for all 4 quarters) and the stats after.  The move
 * is checked to have been seen as one.
 */
struct moved {
	struct cg *cg;
	struct h_waiter child;
	char *p, *to;
	size_t len;
	struct cg_page_info *was;
	struct cg_stats after;
};

/* False after a skip; copies as setup() takes it. */
static bool move(struct moved *m, int mode, enum h_kind kind, size_t copies,
		 size_t from, size_t n, size_t skew)
{
	struct cg_stats before;
	char *got;

	*m = (struct moved){ .cg = h_open(mode), .len = 4 * quarter(kind) };
	m->p = setup(m->cg, kind, m->len, &m->child, copies);
	if (!m->p) {
		cg_close(m->cg);
		return false;
	}
	m->to = hole(n, skew);
	m->was = h_states(m->cg, m->p, m->len);
	ck_assert_int_eq(cg_stats(m->cg, &before, sizeof(before)), 0);
	got = mremap(m->p + from, n, n, MREMAP_MAYMOVE | MREMAP_FIXED, m->to);
	ck_assert_msg(got == m->to, "mremap: %s", strerror(errno));
	ck_assert_int_eq(cg_stats(m->cg, &m->after, sizeof(m->after)), 0);
	ck_assert_uint_eq(m->after.remaps, before.remaps + 1);
	return true;
}

/* The child released (its data its own), the handle closed. */
static void moved_done(struct moved *m)
{
	finish(m->cg, &m->child);
	free(m->was);
}

START_TEST(mremap_of_a_whole_region_moves_every_page_state_to_the_new_address)
{
	enum h_kind kind = H_KIND(_i);
	size_t q = quarter(kind), len = 4 * q;
	/* Off the 2 MiB grid for 4 KiB pages: the state must not shift. */
	size_t skew = kind == H_4K ? MIB + 3 * 4096 : 0;
	struct cg_page_info info;
	struct moved m;

	if (!move(&m, H_MODE(_i), kind, 2, 0, len, skew))
		return;
	ck_assert_uint_eq(m.after.regions, 1);
	ck_assert_uint_eq(m.after.registered_bytes, len);
	ck_assert_int_eq(cg_query(m.cg, m.p, &info, sizeof(info)), -ENOENT);
	ck_assert_int_eq(cg_query(m.cg, m.p + len / 2, &info, sizeof(info)), -ENOENT);
	ck_assert_int_eq(cg_query(m.cg, m.p + len - 4096, &info, sizeof(info)),
			 -ENOENT);
	h_assert_states(m.cg, m.was, m.to, len, "after the move");
	audit(m.cg, m.to, len);

	write_is_seen(m.cg, m.to + 3 * q + 9 * 4096);
	audit(m.cg, m.to, len);
	ck_assert_int_eq(m.to[2 * q + 5 * (kind == H_HUGETLB_2M ? 0 : 4096)], 'B');

	moved_done(&m);
	munmap(m.to, len);
}
END_TEST

START_TEST(mremap_of_a_middle_part_moves_its_state_and_leaves_the_rest_in_place)
{
	enum h_kind kind = H_KIND(_i);
	size_t q = quarter(kind), len = 4 * q;
	/*
	 * Quarters 1 and 2, shifted by half a THP (cutting two PMD-mapped
	 * chunks: the kernel splits them) or by 3 pages; hugetlb moves whole.
	 */
	size_t shift = kind == H_THP ? MIB : kind == H_4K ? 3 * 4096 : 0;
	size_t from = q + shift, n = 2 * q;
	struct cg_page_info info;
	struct moved m;
	char *p;

	/* The same offset in 2 MiB as the source, so whole PMDs can move. */
	if (!move(&m, H_MODE(_i), kind, 3, from, n, from & (2 * MIB - 1)))
		return;
	p = m.p;
	ck_assert_uint_eq(m.after.regions, 3);
	ck_assert_uint_eq(m.after.registered_bytes, len);
	ck_assert_int_eq(cg_query(m.cg, p + from, &info, sizeof(info)), -ENOENT);
	ck_assert_int_eq(cg_query(m.cg, p + from + n - 4096, &info, sizeof(info)),
			 -ENOENT);
	h_assert_states(m.cg, m.was, p, from, "the part left before the hole");
	h_assert_states(m.cg, m.was + (from + n) / 4096, p + from + n,
			len - from - n, "the part left after the hole");
	h_assert_states(m.cg, m.was + from / 4096, m.to, n, "the moved part");
	audit(m.cg, p, from);
	audit(m.cg, p + from + n, len - from - n);
	audit(m.cg, m.to, n);

	/* Both the moved part and what stayed are still followed. */
	write_is_seen(m.cg, m.to + 9 * 4096);
	write_is_seen(m.cg, p + 11 * 4096);
	audit(m.cg, p, from);
	audit(m.cg, m.to, n);

	moved_done(&m);
	munmap(p, len);
	munmap(m.to, n);
}
END_TEST

START_TEST(mremap_of_a_thp_region_off_the_2mib_grid_splits_it_and_keeps_the_state)
{
	size_t q = quarter(H_THP), len = 4 * q;
	struct cg_page_info info;
	struct moved m;

	/* No PMD can land on a PMD: the kernel splits every one it moves. */
	if (!move(&m, _i, H_THP, 2, 0, len, MIB))
		return;
	ck_assert_int_eq(cg_query(m.cg, m.p, &info, sizeof(info)), -ENOENT);
	for (size_t off = 0; off < len; off += 2 * MIB)
		ck_assert_int_eq(h_pmd_mapped(m.to + off), 0);
	h_assert_states(m.cg, m.was, m.to, len, "after the move off the grid");
	ck_assert_int_eq(cg_query(m.cg, m.to + 3 * q, &info, sizeof(info)), 0);
	ck_assert_int_eq(info.kind, CG_PAGE_THP_PTE);
	audit(m.cg, m.to, len);

	write_is_seen(m.cg, m.to + 3 * q + 9 * 4096);
	audit(m.cg, m.to, len);

	moved_done(&m);
	munmap(m.to, len);
}
END_TEST

/*
 * One mremap over many registered regions (each registered on its own,
 * one VMA for the kernel): the engine once kept at most 64 moved regions
 * and silently dropped the state of the rest.  Every page must arrive
 * tracked, with the state it had (odd regions written before the move:
 * dirty; even ones only populated), and a write there must be seen.
 */
#define MANY 100
#define PG_SIZE 4096UL

START_TEST(mremap_over_a_hundred_registered_regions_moves_the_state_of_each)
{
	size_t len = MANY * 2 * PG_SIZE;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct cg_stats s0, s1;
	struct cg *cg;
	char *q;

	ck_assert(p != MAP_FAILED);
	memset(p, 'A', len);
	cg = h_open(_i);
	for (size_t i = 0; i < MANY; i++)
		ck_assert_int_eq(cg_register(cg, p + i * 2 * PG_SIZE, 2 * PG_SIZE, 0), 0);
	for (size_t i = 1; i < MANY; i += 2)
		p[i * 2 * PG_SIZE] = 'B';
	q = hole(len, 0);
	ck_assert(mremap(p, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, q) == q);
	for (size_t i = 0; i < MANY; i++) {
		struct cg_page_info info;
		int ret = cg_query(cg, q + i * 2 * PG_SIZE, &info, sizeof(info));

		ck_assert_msg(ret == 0, "region %zu of %d: cg_query at the new "
			      "address: %s", i, MANY, cg_strerror(ret));
		ck_assert_msg(info.present && info.exclusive && info.dirty == (i & 1),
			      "region %zu: present %d exclusive %d dirty %d",
			      i, info.present, info.exclusive, info.dirty);
	}
	ck_assert_int_eq(cg_stats(cg, &s0, sizeof(s0)), 0);
	q[(MANY - 2) * 2 * PG_SIZE] = 'C';	/* even: not yet written */
	ck_assert_int_eq(cg_stats(cg, &s1, sizeof(s1)), 0);
	ck_assert_uint_eq(s1.wp_faults, s0.wp_faults + 1);
	h_audit_clean(cg, q, len);
	cg_close(cg);
	munmap(q, len);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("mremap moves page state");
	TCase *tc = tcase_create("mremap");

	h_timeout(tc, 30);
	h_add_test(tc, mremap_of_a_whole_region_moves_every_page_state_to_the_new_address,
		   H_MODES, H_KINDS_SHARED);
	h_add_test(tc, mremap_of_a_middle_part_moves_its_state_and_leaves_the_rest_in_place,
		   H_MODES, H_KINDS_SHARED);
	h_add_modes(tc, mremap_of_a_thp_region_off_the_2mib_grid_splits_it_and_keeps_the_state);
	h_add_modes(tc, mremap_over_a_hundred_registered_regions_moves_the_state_of_each);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON | H_NEED_HUGETLB);
}
