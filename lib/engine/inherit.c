// SPDX-License-Identifier: MIT
/*
 * What a child inherits in embedded mode.  There the kernel sends no fork
 * event: it unregisters the child's memory, and the child's library starts
 * a new engine (lib/fork.c).  The parent's engine, as the child's copy of
 * it stands, says what to track again: every region, less the ranges
 * MADV_DONTFORK pins kept out of the child, every page maybe-shared; and
 * the ranges under FOLL_PIN pins, which fork copied for the child.
 */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"
#include "kernel/compat.h"
#include "kernel/procfs.h"
#include "pins.h"

struct cg__bequest {
	uint64_t *ranges;	/* start, length: to register again */
	size_t n;
	uint64_t *pinned;	/* start, length: under FOLL_PIN pins */
	size_t npinned;
};

/* The start of the first MADV_DONTFORK pin in [a, end), or end. */
static uint64_t next_dontfork(const struct cg__mm *mm, uint64_t a, uint64_t end,
			      uint64_t *pin_end)
{
	uint64_t best = end;

	for (size_t i = 0; i < mm->npins; i++) {
		const struct cg__pin *p = mm->pins[i];

		if (!(p->flags & CG_PIN_FOLL_PIN) && p->start < best &&
		    p->start + p->len > a) {
			best = p->start > a ? p->start : a;
			*pin_end = p->start + p->len;
		}
	}
	return best;
}

/*
 * What a child can re-register: our regions less the MADV_DONTFORK pinned
 * ranges, which the child does not map.  Pairs of start, length.
 */
static uint64_t *child_ranges(const struct cg__mm *mm, size_t *n)
{
	size_t cap = 2 * (mm->nregions + mm->npins) + 2;
	uint64_t *v = malloc(cap * sizeof(*v));

	*n = 0;
	for (size_t i = 0; v && i < mm->nregions; i++) {
		uint64_t a = mm->regions[i]->start;
		uint64_t end = a + mm->regions[i]->len;

		while (a < end) {
			uint64_t pin_end = end;
			uint64_t stop = next_dontfork(mm, a, end, &pin_end);

			if (stop > a && *n + 2 <= cap) {
				v[(*n)++] = a;
				v[(*n)++] = stop - a;
			}
			a = stop < end ? pin_end : end;
		}
	}
	*n /= 2;
	return v;
}

/*
 * The ranges of pins whose consumer holds a kernel FOLL_PIN: fork copied
 * those pages for the child instead of sharing them.  Pairs, as above.
 */
static uint64_t *foll_pin_ranges(const struct cg__mm *mm, size_t *n)
{
	uint64_t *v = malloc((2 * mm->npins + 1) * sizeof(*v));

	*n = 0;
	for (size_t i = 0; v && i < mm->npins; i++)
		if (mm->pins[i]->flags & CG_PIN_FOLL_PIN) {
			v[2 * *n] = mm->pins[i]->start;
			v[2 * (*n)++ + 1] = mm->pins[i]->len;
		}
	return v;
}

/*
 * Whether the kernel shows the page of pme ours alone: PageAnonExclusive
 * where kpageflags can be read, else mapped once (never trusted for a
 * 1 GiB page: bit 56 reads 0 there, or 1 when shared, on 6.18).
 */
static bool ours_alone(const struct cg__mm *mm, uint64_t pme, bool gigantic)
{
	if (!(pme & PM_PRESENT))
		return false;
	if (mm->kpageflags_fd >= 0 && mm->pfn_visible && (pme & PM_PFN_MASK))
		return cg__kernel_exclusive(mm, pme);
	return !gigantic && (pme & PM_MMAP_EXCLUSIVE);
}

/*
 * The child's pages under a parent's CG_PIN_FOLL_PIN pin: fork copied for
 * the child what a kernel pin held, so they are not shared with the
 * parent.  The claim is not trusted: only what the kernel shows ours alone
 * is marked exclusive; what a claimed but absent pin let fork share stays
 * maybe-shared.  Nothing is unshared here: that would race with the
 * parent's next write and hide the violation its unpin must report.
 */
static int learn_foll_pinned(struct cg__mm *mm, uint64_t start, uint64_t len)
{
	uint64_t pme[64];
	int ret = 0;

	for (uint64_t a = start; a < start + len && !ret;) {
		struct cg__region *r = cg__mm_find(mm, a);
		uint64_t ustart, ulen, stop;
		size_t n;

		if (!r) {
			a += CG_PAGE_SIZE;
			continue;
		}
		cg__region_unit(r, a, &ustart, &ulen);
		if (ulen > CG_PAGE_SIZE) {
			/* A huge unit (hugetlb, PMD-mapped THP): one entry. */
			ret = cg__pagemap_read(mm->pagemap_fd, ustart, 1, pme);
			if (!ret && ours_alone(mm, pme[0], ulen == 1ULL << CG_PUD_SHIFT))
				ret = cg__region_update(r, ustart, ulen, 0, CG_ST_EXCL);
			a = ustart + ulen;
			continue;
		}
		stop = r->start + r->len < start + len ? r->start + r->len
						       : start + len;
		n = (stop - a) >> CG_PAGE_SHIFT;
		n = n < 64 ? n : 64;
		ret = cg__pagemap_read(mm->pagemap_fd, a, n, pme);
		for (size_t i = 0; !ret && i < n; i++, a += CG_PAGE_SIZE)
			if (ours_alone(mm, pme[i], false))
				ret = cg__region_update(r, a, CG_PAGE_SIZE, 0,
							CG_ST_EXCL);
	}
	return ret;
}

struct cg__bequest *cg__mm_bequest(const struct cg__mm *parent)
{
	struct cg__bequest *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->ranges = child_ranges(parent, &b->n);
	b->pinned = foll_pin_ranges(parent, &b->npinned);
	if (!b->ranges || !b->pinned) {
		cg__bequest_free(b);
		return NULL;
	}
	return b;
}

int cg__mm_inherit(struct cg__mm *child, const struct cg__bequest *b)
{
	int ret = 0;

	for (size_t i = 0; !ret && i < b->n; i++)
		ret = cg__mm_register_as(child, b->ranges[2 * i],
					 b->ranges[2 * i + 1],
					 CG_LEARN_INHERITED);
	for (size_t i = 0; !ret && i < b->npinned; i++)
		ret = learn_foll_pinned(child, b->pinned[2 * i],
					b->pinned[2 * i + 1]);
	return ret;
}

void cg__bequest_free(struct cg__bequest *b)
{
	if (!b)
		return;
	free(b->ranges);
	free(b->pinned);
	free(b);
}
