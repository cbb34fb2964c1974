// SPDX-License-Identifier: MIT
/*
 * Learning populated pages from pagemap.  A first touch raises no event
 * (we install no markers: they would cost a fault per first write and keep
 * THP from forming), so the engine asks pagemap whenever it matters.
 *
 * A page we never saw populated that pagemap maps once (bit 56) is a fresh
 * anonymous page: forks are followed, so it cannot carry COW history.  One
 * mapped more than once, or the zero page, may be shared.  At registration
 * the history is unknown, so pages mapped once are unshared to make it so.
 */
#include <errno.h>
#include <stdlib.h>

#include "compat.h"
#include "mm_internal.h"
#include "procfs.h"

#define CHUNK_PAGES (CG_PMD_SIZE >> CG_PAGE_SHIFT)

/* Per-call scratch: what the chunk walk decided. */
struct learned {
	uint64_t unshare[CHUNK_PAGES];
	size_t nunshare;
	uint64_t protect_start, protect_len;	/* one pending run */
};

static int any_unseen(const struct cg__run *run, void *arg)
{
	(void)arg;
	return !(run->state & CG_ST_PRESENT);
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

/* Decide one unit (a page, or a whole huge page) from its pagemap entry. */
static int learn_unit(struct cg__mm *mm, struct cg__region *r,
		      struct learned *l, uint64_t addr, uint64_t size,
		      uint64_t pme, bool history_unknown)
{
	unsigned st = cg__region_get(r, addr);
	bool excl = pme & PM_MMAP_EXCLUSIVE;
	unsigned next;

	if ((st & CG_ST_PRESENT) && !history_unknown)
		return 0;
	if (!kernel_present(pme))
		return history_unknown ? cg__region_update(r, addr, size, CG_ST_ALL, 0)
				       : 0;
	next = CG_ST_PRESENT | (excl ? CG_ST_EXCL : 0);
	/* Populated after registration by a write: dirty. */
	if (!history_unknown && excl)
		next |= CG_ST_DIRTY;
	if (excl && history_unknown)
		l->unshare[l->nunshare++] = addr;
	if (history_unknown || !excl) {
		next |= CG_ST_WP;
		if (protect_add(mm, l, addr, size))
			next &= ~CG_ST_WP;
	}
	return cg__region_update(r, addr, size, CG_ST_ALL, next);
}

/* The PMD-mapped THP chunks among [cs, cs+2M), from PAGEMAP_SCAN. */
static bool chunk_pmd_mapped(struct cg__mm *mm, const struct cg__region *r,
			     uint64_t cs)
{
	uint64_t mask;

	if (r->kind != CG_RK_THP || !mm->has_scan ||
	    cg__pmd_mapped(mm->pagemap_fd, cs, CG_PMD_SIZE, &mask))
		return false;
	return mask & 1;
}

static int learn_chunk(struct cg__mm *mm, struct cg__region *r,
		       struct learned *l, uint64_t lo, uint64_t hi,
		       bool history_unknown)
{
	uint64_t pme[CHUNK_PAGES];
	uint64_t unit = 1ULL << r->unit_shift;
	size_t n = (hi - lo) >> CG_PAGE_SHIFT;
	bool huge = chunk_pmd_mapped(mm, r, lo & ~(CG_PMD_SIZE - 1));
	int ret;

	if (r->kind == CG_RK_HUGETLB || huge)
		n = 1;	/* one entry speaks for the whole huge page */
	ret = cg__pagemap_read(mm->pagemap_fd, lo, n, pme);
	if (ret)
		return ret;
	if (r->kind == CG_RK_THP && cg__region_is_huge(r, lo) != huge) {
		ret = cg__region_set_huge(r, lo, huge,
					  huge ? cg__region_get(r, lo) : 0);
		if (ret)
			return ret;
		if (huge)
			history_unknown = true;	/* collapsed behind our back */
	}
	if (r->kind == CG_RK_HUGETLB || huge) {
		if (huge)
			unit = CG_PMD_SIZE;
		return learn_unit(mm, r, l, lo, unit, pme[0], history_unknown);
	}
	for (size_t i = 0; i < n && !ret; i++)
		ret = learn_unit(mm, r, l, lo + (i << CG_PAGE_SHIFT),
				 CG_PAGE_SIZE, pme[i], history_unknown);
	return ret;
}

int cg__mm_learn(struct cg__mm *mm, struct cg__region *r, uint64_t start,
		 uint64_t len, bool history_unknown)
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
	while (start < end && !ret) {
		uint64_t hi = (start & ~(step - 1)) + step;

		if (hi > end)
			hi = end;
		if (history_unknown ||
		    cg__region_walk(r, start, hi - start, any_unseen, NULL))
			ret = learn_chunk(mm, r, l, start, hi, history_unknown);
		if (!ret && l->nunshare) {
			ret = cg__unshare(mm, l->unshare, l->nunshare);
			l->nunshare = 0;
		}
		start = hi;
	}
	if (!ret)
		ret = protect_flush(mm, l);
	free(l);
	return ret;
}

/* Protect the present, unprotected pages of r (after a fork, say). */
int cg__mm_protect_present(struct cg__mm *mm, struct cg__region *r)
{
	struct cg__runs runs;
	int ret;

	ret = cg__region_collect(r, r->start, r->len, CG_ST_PRESENT | CG_ST_WP,
				 CG_ST_PRESENT, &runs);
	for (size_t i = 0; i < runs.n && !ret; i++) {
		ret = cg__mm_ioctl_wp(mm, runs.v[i].start, runs.v[i].len, true);
		if (!ret)
			ret = cg__region_update(r, runs.v[i].start, runs.v[i].len,
						0, CG_ST_WP);
	}
	cg__runs_free(&runs);
	return ret;
}

int cg__mm_learn_and_protect_all(struct cg__mm *mm)
{
	int ret = 0;

	for (size_t i = 0; i < mm->nregions && !ret; i++) {
		struct cg__region *r = mm->regions[i];

		ret = cg__mm_learn(mm, r, r->start, r->len, false);
		if (!ret)
			ret = cg__mm_protect_present(mm, r);
	}
	return ret;
}
