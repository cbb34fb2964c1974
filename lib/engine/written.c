// SPDX-License-Identifier: MIT
/*
 * Asynchronous write protection (UFFD_FEATURE_WP_ASYNC, 6.7): the kernel
 * resolves a write to a protected page itself, clearing its uffd-wp bit,
 * and nobody waits for us.  What was written is learned afterwards with
 * PAGEMAP_SCAN: the runs whose bit is clear.
 *
 * A page the engine protected and finds written is exclusive: the write
 * either reused it (ours alone) or replaced it with a copy of its own.
 * Only pages the engine holds protected are judged so; one it holds
 * unprotected tells nothing by its bit (written before, or never
 * protected).  Only a fork shares a page again, and a fork still comes as
 * an event (or through cg__mm_fork_parent()), handled by
 * cg__mm_protect_forked() below.  The zero page is left out: a read maps it
 * unprotected where no marker was left.
 *
 * Written pages are left unprotected, as the fault path leaves them, so the
 * state a collect leaves is what the synchronous engine makes of the same
 * writes, without a round trip per fault.  The kernel reports them again
 * at every later collect, coalesced into runs, at no change of state.
 */
#include <errno.h>

#include "internal.h"
#include "kernel/compat.h"
#include "kernel/procfs.h"
#include "pagestate.h"

/* Runs asked of one PAGEMAP_SCAN. */
#define SCAN_RUNS 64

#define KNOWN_WRITTEN (CG_ST_PRESENT | CG_ST_EXCL | CG_ST_DIRTY)
#define PROTECTED (CG_ST_PRESENT | CG_ST_WP)

/* The protected pages of a range: how many, and whether any was shared. */
struct news {
	const struct cg__region *r;
	uint64_t units;		/* as faults count them: hugetlb pages whole */
	uint64_t shared;	/* 4 KiB pages held maybe-shared until now */
};

static int count_news(const struct cg__run *run, void *arg)
{
	struct news *n = arg;
	unsigned shift = n->r->kind == CG_RK_HUGETLB ? n->r->unit_shift
						      : CG_PAGE_SHIFT;

	if ((run->state & PROTECTED) != PROTECTED)
		return 0;
	n->units += run->len >> shift;
	if (!(run->state & CG_ST_EXCL))
		n->shared += run->len >> CG_PAGE_SHIFT;
	return 0;
}

/*
 * Clear, then set, state bits on the pages of [start, end) in r whose
 * (state & mask) == value.
 */
static int update_where(struct cg__region *r, uint64_t start, uint64_t end,
			unsigned mask, unsigned value, unsigned clear,
			unsigned set)
{
	struct cg__runs runs = { 0 };
	int ret = cg__region_collect(r, start, end - start, mask, value, &runs);

	for (size_t i = 0; !ret && i < runs.n; i++)
		ret = cg__region_update(r, runs.v[i].start, runs.v[i].len,
					clear, set);
	cg__runs_free(&runs);
	return ret;
}

/*
 * The pages of [start, hi), within one chunk of r, were written since the
 * kernel last protected them: those the engine holds protected become
 * exclusive, dirty and unprotected.  Pages it has not seen populated are
 * learning's to judge (lib/engine/learn.c), with the kernel's PMD mapping
 * and what a removal left.  A THP write split the PMD first (the kernel
 * does so for a protected PMD in asynchronous mode): followed.
 */
static int written_in_chunk(struct cg__mm *mm, struct cg__region *r,
			    uint64_t start, uint64_t hi)
{
	struct news n = { .r = r };
	int ret;

	cg__region_walk(r, start, hi - start, count_news, &n);
	if (!n.units)
		return 0;
	mm->stats.wp_faults += n.units;
	mm->stats.pages_made_exclusive += n.shared;
	ret = cg__mm_follow_split(mm, r, start);
	return ret ? ret : update_where(r, start, hi, PROTECTED, PROTECTED,
					CG_ST_WP, KNOWN_WRITTEN);
}

static int written_forked(struct cg__mm *mm, struct cg__region *r,
			  uint64_t start, uint64_t end);

/* One written run of r, [start, end), a chunk at a time. */
static int written(struct cg__mm *mm, struct cg__region *r, uint64_t start,
		   uint64_t end)
{
	while (start < end) {
		uint64_t chunk_end = ((start >> r->chunk_shift) + 1) << r->chunk_shift;
		uint64_t hi = chunk_end < end ? chunk_end : end;
		int ret = written_in_chunk(mm, r, start, hi);

		if (ret)
			return ret;
		start = hi;
	}
	return 0;
}

/* What to make of a written run of r, [start, end). */
typedef int (*written_fn)(struct cg__mm *mm, struct cg__region *r,
			  uint64_t start, uint64_t end);
typedef int (*scan_fn)(int fd, uint64_t start, uint64_t end,
		       struct page_region *vec, size_t nvec, uint64_t *walk_end);

/*
 * Walk [start, end) of r with one kind of scan (collect or protect), a
 * vector at a time, handing each written run that is not the zero page to
 * fn.
 */
static int scan_region(struct cg__mm *mm, struct cg__region *r, scan_fn scan,
		       written_fn fn, uint64_t start, uint64_t end)
{
	struct page_region v[SCAN_RUNS];

	while (start < end) {
		uint64_t walk_end = end;
		int n = scan(mm->pagemap_fd, start, end, v, SCAN_RUNS, &walk_end);

		if (n < 0)
			return n;
		for (int i = 0; i < n; i++) {
			int ret = 0;

			if ((v[i].categories & PAGE_IS_WRITTEN) &&
			    !(v[i].categories & PAGE_IS_PFNZERO))
				ret = fn(mm, r, v[i].start, v[i].end);
			if (ret)
				return ret;
		}
		/* A full vector stops the walk at the first run left out. */
		if (walk_end <= start)
			return -EIO;
		start = walk_end;
	}
	return 0;
}

/*
 * [*start, *end) within r, widened to whole units: a THP's chunk (the
 * kernel would split a PMD scanned in part), a hugetlb page, 4 KiB.
 */
void cg__mm_whole_units(const struct cg__region *r, uint64_t *start,
			uint64_t *end)
{
	unsigned shift = r->kind == CG_RK_THP ? r->chunk_shift : r->unit_shift;
	uint64_t mask = (1ULL << shift) - 1;
	uint64_t r_end = r->start + r->len;
	uint64_t lo = *start > r->start ? *start : r->start;
	uint64_t hi = *end < r_end ? *end : r_end;

	lo &= ~mask;
	hi = (hi + mask) & ~mask;
	*start = lo > r->start ? lo : r->start;
	*end = hi < r_end ? hi : r_end;
}

int cg__mm_collect(struct cg__mm *mm, uint64_t addr, uint64_t len)
{
	uint64_t end = addr + len;

	/* An unnamed child has no pagemap yet: its pages stay as protected. */
	if (!mm->wp_async || mm->pagemap_fd < 0)
		return 0;
	for (size_t i = 0; i < mm->nregions; i++) {
		struct cg__region *r = mm->regions[i];
		uint64_t lo = addr, hi = end;
		int ret;

		if (r->start >= end || r->start + r->len <= addr)
			continue;
		cg__mm_whole_units(r, &lo, &hi);
		ret = scan_region(mm, r, cg__pagemap_written,
				  r->wp_unsure ? written_forked : written, lo, hi);
		if (ret)
			return ret;
	}
	return 0;
}

int cg__mm_collect_all(struct cg__mm *mm)
{
	return cg__mm_collect(mm, 0, UINT64_MAX);
}

/*
 * Whether the kernel shows the unit of pme ours alone: PageAnonExclusive,
 * read in kpageflags (root).  Nothing else will do.  Mapped once (pagemap
 * bit 56) is not it: a page the fork shared is mapped once again when the
 * child exits, and a write there while a consumer holds it copies it away
 * (measured: a pin's unpin then found its page replaced).  And kpageflags
 * shows a THP mapped by PTEs with its head's flag for every page
 * (KERNEL-FACTS), so only a whole PMD-mapped unit is judged there.
 */
static bool kernel_says_ours(const struct cg__mm *mm, uint64_t pme,
			     bool whole_unit)
{
	uint64_t pfn = pme & PM_PFN_MASK, kpf;

	if (!(pme & PM_PRESENT) || mm->kpageflags_fd < 0 || !mm->pfn_visible ||
	    !pfn || cg__kpageflags_read(mm->kpageflags_fd, pfn, &kpf))
		return false;
	if ((kpf & (1ULL << KPF_THP_BIT)) && !whole_unit)
		return false;
	return (kpf & (1ULL << KPF_ANON_BIT)) &&
	       (kpf & (1ULL << KPF_ANON_EXCLUSIVE_BIT));
}

/* Pagemap entries read at a time for a written run after a fork. */
#define PME_BATCH 512

/*
 * A run written after the last collect, found at a fork, in one chunk of
 * r: before the fork (now shared, unless the child let go of it) or after
 * (a copy of our own).  The kernel tells which, page by page, where it can
 * (root); elsewhere such a page stays maybe-shared.  Dirty either way.
 */
static int written_forked_chunk(struct cg__mm *mm, struct cg__region *r,
				uint64_t start, uint64_t hi)
{
	uint64_t pme[PME_BATCH];
	int ret = 0;

	for (uint64_t a = start; !ret && a < hi; a += PME_BATCH * CG_PAGE_SIZE) {
		size_t n = (hi - a) >> CG_PAGE_SHIFT;

		n = n < PME_BATCH ? n : PME_BATCH;
		ret = cg__pagemap_read(mm->pagemap_fd, a, n, pme);
		for (size_t i = 0; !ret && i < n; i++) {
			uint64_t at = a + i * CG_PAGE_SIZE, ustart, ulen;
			unsigned st = cg__region_get(r, at), set = KNOWN_WRITTEN;

			/* A huge unit is judged once, by its first page. */
			cg__region_unit(r, at, &ustart, &ulen);
			if (at != ustart && at != start)
				continue;
			/* Protected until now: a write seen, as a fault would be. */
			if ((st & PROTECTED) == PROTECTED)
				mm->stats.wp_faults++;
			/*
			 * Held exclusive still (a pin the fork did not share,
			 * a page the move did not): stays so.
			 */
			if (st & CG_ST_EXCL)
				;
			else if (!kernel_says_ours(mm, pme[i], ulen > CG_PAGE_SIZE))
				set &= ~CG_ST_EXCL;
			else
				mm->stats.pages_made_exclusive += ulen >> CG_PAGE_SHIFT;
			ret = cg__region_update(r, ustart, ulen,
						CG_ST_EXCL | CG_ST_WP, set);
		}
	}
	return ret;
}

static int written_forked(struct cg__mm *mm, struct cg__region *r,
			  uint64_t start, uint64_t end)
{
	while (start < end) {
		uint64_t chunk_end = ((start >> r->chunk_shift) + 1) << r->chunk_shift;
		uint64_t hi = chunk_end < end ? chunk_end : end;
		int ret = cg__mm_follow_split(mm, r, start);

		if (!ret)
			ret = written_forked_chunk(mm, r, start, hi);
		if (ret)
			return ret;
		start = hi;
	}
	return 0;
}

static int record_protected(struct cg__region *r, uint64_t start,
			    uint64_t end)
{
	return update_where(r, start, end, CG_ST_PRESENT, CG_ST_PRESENT, 0,
			    CG_ST_WP);
}

static int dirty_only(struct cg__mm *mm, struct cg__region *r, uint64_t start,
		      uint64_t end)
{
	int ret = 0;

	/* A THP written in asynchronous mode was split by the kernel first. */
	for (uint64_t a = start; !ret && a < end;
	     a = ((a >> r->chunk_shift) + 1) << r->chunk_shift)
		ret = cg__mm_follow_split(mm, r, a);
	return ret ? ret : update_where(r, start, end, CG_ST_PRESENT,
					CG_ST_PRESENT, 0, CG_ST_DIRTY);
}

int cg__mm_mark_written_dirty(struct cg__mm *mm)
{
	int ret = 0;

	if (!mm->wp_async || mm->pagemap_fd < 0)
		return 0;
	for (size_t i = 0; i < mm->nregions && !ret; i++) {
		struct cg__region *r = mm->regions[i];

		ret = scan_region(mm, r, cg__pagemap_written, dirty_only,
				  r->start, r->start + r->len);
	}
	return ret;
}

static bool gigantic(const struct cg__region *r)
{
	return r->kind == CG_RK_HUGETLB && r->unit_shift == CG_PUD_SHIFT;
}

/*
 * Protect every mapped page of [start, end) in r and hand what was written
 * before to fn, in one scan, so that no write falls between.  Not for
 * 1 GiB pages: 6.18's PAGEMAP_SCAN, when it protects, measures a hugetlb
 * page against HPAGE_SIZE (2 MiB), so it neither reports nor protects a
 * written 1 GiB page and stops there (read in fs/proc/task_mmu.c; this
 * machine has no 1 GiB page to measure it on).  There: read, then
 * protect.  A write between the two is missed as dirty, and the page it
 * made ours is held maybe-shared.
 */
static int protect_scan(struct cg__mm *mm, struct cg__region *r,
			uint64_t start, uint64_t end, written_fn fn)
{
	int ret;

	if (!gigantic(r))
		return scan_region(mm, r, cg__pagemap_protect, fn, start, end);
	ret = scan_region(mm, r, cg__pagemap_written, fn, start, end);
	return ret ? ret : cg__mm_ioctl_wp(mm, start, end - start, true);
}

/* The whole of r protected by protect_scan(), and the state told so. */
static int protect_region(struct cg__mm *mm, struct cg__region *r,
			  written_fn fn)
{
	uint64_t end = r->start + r->len;
	int ret = protect_scan(mm, r, r->start, end, fn);

	if (!ret)
		ret = record_protected(r, r->start, end);
	/* Part of it may be protected, and the state not told: unsure. */
	r->wp_unsure = ret != 0;
	return ret;
}

/*
 * Write tracking's collect (lib/engine/track.c) with asynchronous
 * protection: [start, end) of r, whole units, protected again and read in
 * one scan each, what was written marked so, everything present recorded
 * protected.
 */
int cg__mm_collect_protecting(struct cg__mm *mm, struct cg__region *r,
			      uint64_t start, uint64_t end)
{
	int ret = protect_scan(mm, r, start, end,
			       r->wp_unsure ? written_forked : written);

	if (!ret)
		ret = record_protected(r, start, end);
	if (ret)
		r->wp_unsure = true;
	return ret;
}

/*
 * After a fork marked every page maybe-shared.  The pages written since
 * the last collect were written before the fork or after it, by a thread
 * that ran on while the event was handled: neither their bit nor our state
 * tells which, the kernel does (written_forked_chunk()).  Protecting and
 * reading happen in one scan, so no write falls between.
 */
int cg__mm_protect_forked(struct cg__mm *mm, struct cg__region *r)
{
	return protect_region(mm, r, written_forked);
}

int cg__mm_protect_collected(struct cg__mm *mm, struct cg__region *r)
{
	return protect_region(mm, r, r->wp_unsure ? written_forked : written);
}

/*
 * After a move, whose pages a protection aimed at their old place may have
 * missed: in one scan every page is protected and what was written is
 * judged by the kernel, as after a fork.  Then the pages of our own found
 * written are unprotected again, as the move found them (a write racing
 * that finds them ours and dirty already), and the rest recorded
 * protected.
 */
int cg__mm_judge_moved(struct cg__mm *mm, struct cg__region *r,
		       uint64_t start, uint64_t len)
{
	struct cg__runs ours = { 0 };	/* ours, written: unprotected again */
	uint64_t end = start + len;
	int ret;

	cg__mm_whole_units(r, &start, &end);
	ret = protect_scan(mm, r, start, end, written_forked);
	if (!ret)
		ret = cg__region_collect(r, start, end - start,
					 KNOWN_WRITTEN | CG_ST_WP, KNOWN_WRITTEN,
					 &ours);
	if (!ret)
		ret = record_protected(r, start, end);
	for (size_t i = 0; !ret && i < ours.n; i++) {
		ret = cg__mm_ioctl_wp(mm, ours.v[i].start, ours.v[i].len, false);
		if (!ret)
			ret = cg__region_update(r, ours.v[i].start, ours.v[i].len,
						CG_ST_WP, 0);
	}
	if (ret)
		r->wp_unsure = true;
	cg__runs_free(&ours);
	return ret;
}
