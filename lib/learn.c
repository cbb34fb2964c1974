// SPDX-License-Identifier: MIT
/*
 * Learning populated pages from pagemap.  A first touch raises no event
 * (we install no markers: they would cost a fault per first write and keep
 * THP from forming), so the engine asks pagemap whenever it matters.
 *
 * A page we never saw populated that pagemap maps once (bit 56) is a fresh
 * anonymous page: forks are followed, so it cannot carry COW history.  One
 * mapped more than once, or the zero page, may be shared.  At registration
 * the history is unknown, so every populated page is unshared, the way a
 * read-only pin would: afterwards only the zero page can still be shared.
 * A child re-registering after fork knows its history: all shared.
 */
#include <errno.h>
#include <stdlib.h>

#include "compat.h"
#include "kernel.h"
#include "mm_internal.h"
#include "pin.h"
#include "procfs.h"

#define CHUNK_PAGES (CG_PMD_SIZE >> CG_PAGE_SHIFT)

struct unit {
	uint64_t addr, len;
};

/* Per-call scratch: what the chunk walk decided. */
struct learned {
	uint64_t unshare[CHUNK_PAGES];
	size_t nunshare;
	struct unit recheck[CHUNK_PAGES];
	size_t nrecheck;
	bool hugetlb_none_shared;	/* smaps: no hugetlb page of r is */
	bool hugetlb_room;	/* the pool can take a copy of this unit */
	uint64_t protect_start, protect_len;	/* one pending run */
};

static int any_unseen(const struct cg__run *run, void *arg)
{
	(void)arg;
	return !(run->state & CG_ST_PRESENT);
}

static int any_seen(const struct cg__run *run, void *arg)
{
	(void)arg;
	return run->state & CG_ST_PRESENT;
}

static bool kernel_present(uint64_t pme)
{
	return pme & (PM_PRESENT | PM_SWAPPED);
}

/* Write-protect in runs, so that contiguous pages cost one ioctl. */
static int protect_add(struct cg__mm *mm, struct learned *l, uint64_t start,
		       uint64_t len)
{
	int ret = 0;

	if (l->protect_len && l->protect_start + l->protect_len == start) {
		l->protect_len += len;
		return 0;
	}
	if (l->protect_len)
		ret = cg__mm_ioctl_wp(mm, l->protect_start, l->protect_len, true);
	l->protect_start = start;
	l->protect_len = len;
	return ret;
}

static int protect_flush(struct cg__mm *mm, struct learned *l)
{
	int ret = 0;

	if (l->protect_len)
		ret = cg__mm_ioctl_wp(mm, l->protect_start, l->protect_len, true);
	l->protect_len = 0;
	return ret;
}

/* Nothing shared (smaps can tell; bit 56 cannot for 1 GiB): no copy. */
static bool hugetlb_none_shared(const struct cg__mm *mm,
				const struct cg__region *r)
{
	struct cg__vma_kind k;

	return !cg__vma_probe(mm->smaps_fd, r->start, r->len, &k) &&
	       !k.shared_hugetlb_kb;
}

/*
 * Whether unsharing the next hugetlb unit at registration is safe: with the
 * pool short, unsharing a shared private hugetlb page takes the page from
 * the other process, which then dies of SIGBUS or reads zeros.  Safe when
 * no page is shared (unsharing then reuses), or when the pool has a page
 * for this unit's copy.  Asked unit by unit, just before its unshare: a
 * unit that turns out exclusive is reused and leaves the spare page for the
 * next, so one spare page lets every exclusive unit be proven so (smaps
 * sometimes counts a fresh private 1 GiB page as shared on 6.18, and
 * without root nothing else tells).
 */
static bool hugetlb_room(const struct learned *l, const struct cg__region *r)
{
	return l->hugetlb_none_shared || cg__hugetlb_spare(r->unit_shift) >= 1;
}

/*
 * Whether the kernel says the page is PageAnonExclusive (root only).  For a
 * hugetlb page that is exact, and smaps is not: on 6.18 a fresh private
 * 1 GiB page is counted as Shared_Hugetlb in about 1 forked child of 5
 * (measured; its PageAnonExclusive is 1).
 */
bool cg__kernel_exclusive(const struct cg__mm *mm, uint64_t pme)
{
	uint64_t pfn = pme & PM_PFN_MASK, kpf;

	if (mm->kpageflags_fd < 0 || !mm->pfn_visible || !pfn ||
	    cg__kpageflags_read(mm->kpageflags_fd, pfn, &kpf))
		return false;
	return (kpf & (1ULL << KPF_ANON_BIT)) &&
	       (kpf & (1ULL << KPF_ANON_EXCLUSIVE_BIT));
}

/* Queue a unit for write protection and return its new state. */
static unsigned protected(struct cg__mm *mm, struct learned *l, uint64_t addr,
			  uint64_t size, unsigned state)
{
	return protect_add(mm, l, addr, size) ? state : state | CG_ST_WP;
}

/*
 * Decide one unit (a page, or a whole huge page) from its pagemap entry.
 * Hugetlb has no zero page, so a hugetlb page we did not see appear is a
 * fresh one: bit 56 is not trusted there (it reads 0 for every 1 GiB page
 * on 6.18, mapped once or not).
 */
static int learn_unit(struct cg__mm *mm, struct cg__region *r,
		      struct learned *l, uint64_t addr, uint64_t size,
		      uint64_t pme, enum cg__learn mode)
{
	unsigned st = cg__region_get(r, addr);
	bool hugetlb = r->kind == CG_RK_HUGETLB;
	bool once = pme & PM_MMAP_EXCLUSIVE;
	unsigned next;

	if ((st & CG_ST_PRESENT) && mode == CG_LEARN_NEW)
		return 0;
	if (!kernel_present(pme))
		return mode == CG_LEARN_NEW ? 0
			: cg__region_update(r, addr, size, CG_ST_ALL, 0);
	switch (mode) {
	case CG_LEARN_NEW:
		/*
		 * Still carrying the uffd-wp bit we set (no marker survives a
		 * zap of anonymous memory): a page a REMOVE event did not free
		 * (MADV_FREE).  It keeps the history the event left in st;
		 * mapped more than once, it cannot be exclusive.
		 */
		if (!hugetlb && (pme & PM_UFFD_WP))
			next = CG_ST_PRESENT | CG_ST_WP | (st & CG_ST_DIRTY) |
			       (once ? st & CG_ST_EXCL : 0);
		/*
		 * Where pagemap cannot show the bit (5.10), such a page and
		 * one populated since look alike.  Mapped once, it may be a
		 * page a write populated with no fault (no marker survives a
		 * zap): exclusive, and called dirty.  Otherwise it is the zero
		 * page or such a page still shared: its own history.  Either
		 * way protect it, so that the claim is true.
		 */
		else if (!hugetlb && !cg__kernel_pagemap_shows_uffd_wp())
			next = protected(mm, l, addr, size, CG_ST_PRESENT |
					 (once ? CG_ST_EXCL | CG_ST_DIRTY
					       : st & CG_ST_DIRTY));
		/* Populated after registration by a write: exclusive, dirty. */
		else if (hugetlb || once)
			next = CG_ST_PRESENT | CG_ST_EXCL | CG_ST_DIRTY;
		else
			next = protected(mm, l, addr, size, CG_ST_PRESENT);
		break;
	case CG_LEARN_REGISTER:
		/* An exclusive page is reused, not copied: no room needed. */
		if (hugetlb && !once && !l->hugetlb_room &&
		    !cg__kernel_exclusive(mm, pme)) {
			next = protected(mm, l, addr, size, CG_ST_PRESENT);
			break;
		}
		/* Unshare whatever it is; only the zero page stays shared. */
		l->unshare[l->nunshare++] = addr;
		if (!once && !hugetlb)
			l->recheck[l->nrecheck++] = (struct unit){ addr, size };
		next = protected(mm, l, addr, size, CG_ST_PRESENT | CG_ST_EXCL);
		break;
	case CG_LEARN_INHERITED:
	default:
		next = protected(mm, l, addr, size, CG_ST_PRESENT);
		break;
	}
	return cg__region_update(r, addr, size, CG_ST_ALL, next);
}

/* After unsharing: what is still not mapped once is the zero page. */
static int recheck(struct cg__mm *mm, struct cg__region *r, struct learned *l)
{
	int ret = 0;

	for (size_t i = 0; i < l->nrecheck && !ret; i++) {
		uint64_t pme;

		ret = cg__pagemap_read(mm->pagemap_fd, l->recheck[i].addr, 1, &pme);
		if (!ret && !(pme & PM_MMAP_EXCLUSIVE))
			ret = cg__region_update(r, l->recheck[i].addr,
						l->recheck[i].len, CG_ST_EXCL, 0);
	}
	l->nrecheck = 0;
	return ret;
}

struct merged {
	unsigned all, any;	/* the AND and the OR of the pages' states */
};

static int merge_run(const struct cg__run *run, void *arg)
{
	struct merged *m = arg;

	m->all &= run->state;
	m->any |= run->state;
	return 0;
}

/*
 * A chunk a REMOVE event split, found PMD-mapped: MADV_FREE gave up on a
 * THP it could not split, and nothing happened to it (or khugepaged has
 * since collapsed it, which it does only over pages all present and none
 * protected).  Its pages kept their history: exclusive if all were; dirty
 * if any was, or if the PMD is not protected (a write needs no fault);
 * present and protected as the PMD is.
 */
static int unsplit(struct cg__mm *mm, struct cg__region *r, uint64_t addr,
		   uint64_t pme)
{
	uint64_t chunk = addr & ~(CG_PMD_SIZE - 1);
	struct merged m = { CG_ST_ALL, 0 };
	bool wp = pme & PM_UFFD_WP;

	cg__region_walk(r, chunk, CG_PMD_SIZE, merge_run, &m);
	if (mm->stats.thp_splits)
		mm->stats.thp_splits--;	/* counted at the event: it was not */
	return cg__region_set_huge(r, chunk, true,
				   (m.all & CG_ST_EXCL) |
				   ((m.any & CG_ST_DIRTY) || !wp ? CG_ST_DIRTY : 0) |
				   (kernel_present(pme) ? CG_ST_PRESENT : 0) |
				   (wp ? CG_ST_WP : 0));
}

static int learn_chunk(struct cg__mm *mm, struct cg__region *r,
		       struct learned *l, uint64_t lo, uint64_t hi,
		       enum cg__learn mode)
{
	uint64_t pme[CHUNK_PAGES];
	uint64_t unit = 1ULL << r->unit_shift;
	size_t n = (hi - lo) >> CG_PAGE_SHIFT;
	bool huge = r->kind == CG_RK_THP && cg__mm_pmd_mapped(mm, lo);
	int ret;

	if (r->kind == CG_RK_HUGETLB || huge)
		n = 1;	/* one entry speaks for the whole huge page */
	ret = cg__pagemap_read(mm->pagemap_fd, lo, n, pme);
	if (ret)
		return ret;
	if (!huge && cg__region_remove_split(r, lo))
		cg__region_set_huge(r, lo, false, 0);	/* the kernel split it */
	if (r->kind == CG_RK_THP && cg__region_is_huge(r, lo) != huge) {
		if (huge && cg__region_remove_split(r, lo))
			return unsplit(mm, r, lo, pme[0]);
		/*
		 * A PMD over pages we saw: collapsed behind our back, its
		 * history is not ours.  Over none (emptied by DONTNEED, say):
		 * a fresh THP, learned like any new page.
		 */
		bool collapsed = huge &&
				 cg__region_walk(r, lo & ~(CG_PMD_SIZE - 1),
						 CG_PMD_SIZE, any_seen, NULL);

		ret = cg__region_set_huge(r, lo, huge,
					  huge ? cg__region_get(r, lo) : 0);
		if (ret)
			return ret;
		if (collapsed && mode == CG_LEARN_NEW)
			mode = CG_LEARN_REGISTER;
	}
	if (r->kind == CG_RK_HUGETLB || huge) {
		if (huge)
			unit = CG_PMD_SIZE;
		/* The whole unit, wherever in it the range began. */
		return learn_unit(mm, r, l, lo & ~(unit - 1), unit, pme[0], mode);
	}
	for (size_t i = 0; i < n && !ret; i++)
		ret = learn_unit(mm, r, l, lo + (i << CG_PAGE_SHIFT),
				 CG_PAGE_SIZE, pme[i], mode);
	return ret;
}

int cg__mm_learn(struct cg__mm *mm, struct cg__region *r, uint64_t start,
		 uint64_t len, enum cg__learn mode)
{
	uint64_t step = r->kind == CG_RK_HUGETLB ? 1ULL << r->unit_shift
						  : CG_PMD_SIZE;
	uint64_t end = start + len;
	struct learned *l;
	int ret = 0;

	if (mm->pagemap_fd < 0)
		return 0;	/* an adopted child not yet identified */
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	if (start < r->start)
		start = r->start;
	if (end > r->start + r->len)
		end = r->start + r->len;
	l->hugetlb_none_shared = r->kind == CG_RK_HUGETLB &&
				 mode == CG_LEARN_REGISTER &&
				 hugetlb_none_shared(mm, r);
	while (start < end && !ret) {
		uint64_t hi = (start & ~(step - 1)) + step;

		if (hi > end)
			hi = end;
		l->hugetlb_room = r->kind == CG_RK_HUGETLB &&
				  mode == CG_LEARN_REGISTER && hugetlb_room(l, r);
		if (mode != CG_LEARN_NEW || cg__region_remove_split(r, start) ||
		    cg__region_walk(r, start, hi - start, any_unseen, NULL))
			ret = learn_chunk(mm, r, l, start, hi, mode);
		if (!ret && l->nunshare) {
			ret = cg__unshare(mm, l->unshare, l->nunshare);
			l->nunshare = 0;
		}
		if (!ret && l->nrecheck)
			ret = recheck(mm, r, l);
		start = hi;
	}
	if (!ret)
		ret = protect_flush(mm, l);
	free(l);
	return ret;
}

/* Protect [start, start+len) of r and record it. */
static int protect_span(struct cg__mm *mm, struct cg__region *r,
			uint64_t start, uint64_t len)
{
	int ret = cg__mm_ioctl_wp(mm, start, len, true);

	return ret ? ret : cg__region_update(r, start, len, 0, CG_ST_WP);
}

/*
 * Protect the present, unprotected pages of r (after a fork, say).  Before
 * 5.19 a pinned page stays unprotected while pinned: a write fault on a
 * write-protected page that its consumer holds would copy it (lib/pin.c).
 */
int cg__mm_protect_present(struct cg__mm *mm, struct cg__region *r)
{
	bool skip_pins = !cg__kernel_read_pin_unshares() && mm->npins;
	struct cg__runs runs;
	int ret;

	ret = cg__region_collect(r, r->start, r->len, CG_ST_PRESENT | CG_ST_WP,
				 CG_ST_PRESENT, &runs);
	for (size_t i = 0; i < runs.n && !ret; i++) {
		uint64_t a = runs.v[i].start, end = a + runs.v[i].len, lo, hi;

		if (!skip_pins) {
			ret = protect_span(mm, r, a, end - a);
			continue;
		}
		for (; !ret && a < end; a = hi) {
			cg__mm_unpinned_span(mm, a, end, &lo, &hi);
			if (lo < hi)
				ret = protect_span(mm, r, lo, hi - lo);
		}
	}
	cg__runs_free(&runs);
	return ret;
}

int cg__mm_learn_and_protect_all(struct cg__mm *mm)
{
	int ret = 0;

	for (size_t i = 0; i < mm->nregions && !ret; i++) {
		struct cg__region *r = mm->regions[i];

		ret = cg__mm_learn(mm, r, r->start, r->len, CG_LEARN_NEW);
		if (!ret)
			ret = cg__mm_protect_present(mm, r);
	}
	return ret;
}
