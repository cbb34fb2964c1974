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
#include <string.h>

#include "internal.h"
#include "kernel/clock.h"
#include "kernel/compat.h"
#include "kernel/kernel.h"
#include "kernel/procfs.h"
#include "pins.h"

#define CHUNK_PAGES (CG_PMD_SIZE >> CG_PAGE_SHIFT)
/* Present runs asked of PAGEMAP_SCAN at a time. */
#define PRESENT_RUNS 64
/*
 * Without PAGEMAP_SCAN, pagemap entries read ahead at a time over a long
 * range (256 KiB): a read per 2 MiB chunk was half of registering a huge
 * sparse region, most of it the system call's own cost in a VM (perf).
 */
#define AHEAD_PAGES (64 * CHUNK_PAGES)

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
	/* PAGEMAP_SCAN's present runs ahead of the walk (present_from()). */
	struct page_region runs[PRESENT_RUNS];
	int nruns, run;
	uint64_t scanned_to;
	bool scan_failed;
	uint64_t *ahead;	/* AHEAD_PAGES entries, or NULL: read each chunk */
	uint64_t ahead_start, ahead_n, end;
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

/* Modes that pass over the pages the engine has seen present. */
static bool seen_only(enum cg__learn mode)
{
	return mode == CG_LEARN_NEW || mode == CG_LEARN_UNKNOWN ||
	       mode == CG_LEARN_FORKED;
}

/* Modes that learn a page as one populated since the engine last looked. */
static bool since_looked(enum cg__learn mode)
{
	return mode == CG_LEARN_NEW || mode == CG_LEARN_FORKED;
}

/* Modes that unshare what they learn: its history is unknown. */
static bool unshares(enum cg__learn mode)
{
	return mode == CG_LEARN_REGISTER || mode == CG_LEARN_UNKNOWN;
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

/*
 * Queue a unit for write protection and return its new state.  Before
 * 5.19 a held page is left unprotected (ioctl.c): its writes go unseen,
 * so it is dirty, not protected, or a later collect would miss them.
 */
static unsigned protected(struct cg__mm *mm, struct learned *l, uint64_t addr,
			  uint64_t size, unsigned state)
{
	uint64_t lo, hi;

	if (!cg__kernel_read_pin_unshares()) {
		cg__mm_unheld_span(mm, addr, addr + size, &lo, &hi);
		if (lo != addr || hi != addr + size)
			return state | CG_ST_DIRTY;
	}
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
	bool hugetlb = r->kind == CG_RK_HUGETLB;
	bool once = pme & PM_MMAP_EXCLUSIVE;
	unsigned st, next;

	/* Most of a huge sparse region: decided without a look at our state. */
	if (!kernel_present(pme) && since_looked(mode))
		return 0;
	st = cg__region_get(r, addr);
	if ((st & CG_ST_PRESENT) && seen_only(mode))
		return 0;
	if (!kernel_present(pme))
		return st ? cg__region_update(r, addr, size, CG_ST_ALL, 0) : 0;
	switch (mode) {
	case CG_LEARN_NEW:
	case CG_LEARN_FORKED:
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
		/*
		 * Populated before a fork we have not learned up to: mapped
		 * once now or not, a page the fork shared (pins were learned
		 * before it, so this is none of theirs).
		 */
		if (mode == CG_LEARN_FORKED)
			next &= ~CG_ST_EXCL;
		break;
	case CG_LEARN_REGISTER:
	case CG_LEARN_UNKNOWN:
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

/*
 * n entries from lo, from what was read ahead.  An entry read ahead may be
 * a few chunks old: a page populated since is learned at its next look,
 * as one populated after this pass would be.
 */
static int learn_read(struct cg__mm *mm, struct learned *l, uint64_t lo,
		      size_t n, uint64_t *pme)
{
	uint64_t want;
	int ret;

	if (!l->ahead)
		return cg__pagemap_read(mm->pagemap_fd, lo, n, pme);
	if (lo < l->ahead_start ||
	    ((lo - l->ahead_start) >> CG_PAGE_SHIFT) + n > l->ahead_n) {
		want = (l->end - lo) >> CG_PAGE_SHIFT;
		if (want > AHEAD_PAGES)
			want = AHEAD_PAGES;
		if (want < n)
			want = n;
		ret = cg__pagemap_read(mm->pagemap_fd, lo, want, l->ahead);
		if (ret)
			return ret;
		l->ahead_start = lo;
		l->ahead_n = want;
	}
	memcpy(pme, l->ahead + ((lo - l->ahead_start) >> CG_PAGE_SHIFT),
	       n * sizeof(*pme));
	return 0;
}

static bool none_present(const uint64_t *pme, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (kernel_present(pme[i]))
			return false;
	return true;
}

static int any_state(const struct cg__run *run, void *arg)
{
	(void)arg;
	return run->state != 0;
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
	ret = learn_read(mm, l, lo, n, pme);
	if (ret)
		return ret;
	/*
	 * Nothing there and nothing known there: each page would be passed
	 * over (learn_unit()).  Most chunks of a huge sparse region.
	 */
	if (r->kind != CG_RK_HUGETLB && !huge && none_present(pme, n) &&
	    !cg__region_remove_split(r, lo) && !cg__region_is_huge(r, lo) &&
	    (since_looked(mode) || !cg__region_walk(r, lo, hi - lo, any_state,
						     NULL)))
		return 0;
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
		if (collapsed && seen_only(mode))
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

/*
 * Where the first present or swapped page at or after from lies, below end
 * (end: none), from PAGEMAP_SCAN's runs, asked a window at a time.  Without
 * PAGEMAP_SCAN (before 6.7), or when it fails, from itself: every chunk is
 * then read.  What is skipped is absent, and learning an absent page
 * changes nothing in a region made for this registration or already
 * learned (learn_unit()), so skipping it is exact, and a registration or
 * fork costs what is populated, not what is mapped.
 */
static uint64_t present_from(struct cg__mm *mm, struct learned *l,
			     uint64_t from, uint64_t end)
{
	uint64_t walk_end;
	int n;

	for (;;) {
		while (l->run < l->nruns && l->runs[l->run].end <= from)
			l->run++;
		if (l->run < l->nruns)
			return l->runs[l->run].start > from ? l->runs[l->run].start
							    : from;
		if (l->scanned_to >= end)
			return end;
		if (!mm->has_scan || l->scan_failed)
			return from;
		if (l->scanned_to < from)
			l->scanned_to = from;
		n = cg__pagemap_present(mm->pagemap_fd, l->scanned_to, end,
					l->runs, PRESENT_RUNS, &walk_end);
		if (n < 0 || walk_end <= l->scanned_to) {
			l->scan_failed = true;
			return from;
		}
		l->nruns = n;
		l->run = 0;
		l->scanned_to = walk_end;
	}
}

/*
 * The chunks skipped as absent: in CG_LEARN_NEW, one a REMOVE event split
 * is still looked at, as before (learn_chunk() settles what the kernel
 * did with it).  Returns 0 or -errno.
 */
static int skip_absent(struct cg__mm *mm, struct cg__region *r,
		       struct learned *l, uint64_t from, uint64_t to,
		       uint64_t step, enum cg__learn mode)
{
	int ret = 0;

	if (r->kind != CG_RK_THP || !seen_only(mode))
		return 0;
	for (uint64_t a = from; a < to && !ret; a = (a & ~(step - 1)) + step)
		if (cg__region_remove_split(r, a))
			ret = learn_chunk(mm, r, l, a,
					  (a & ~(step - 1)) + step < to
						  ? (a & ~(step - 1)) + step : to,
					  mode);
	return ret;
}

static int learn_range(struct cg__mm *mm, struct cg__region *r, uint64_t start,
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
	l->scanned_to = start;
	if (start < r->start)
		start = r->start;
	if (end > r->start + r->len)
		end = r->start + r->len;
	l->end = end;
	/* Worth its 256 KiB only over many chunks, and where no scan skips. */
	if (!mm->has_scan && r->kind != CG_RK_HUGETLB &&
	    end - start > 4 * CG_PMD_SIZE)
		l->ahead = malloc(AHEAD_PAGES * sizeof(*l->ahead));
	l->hugetlb_none_shared = r->kind == CG_RK_HUGETLB &&
				 unshares(mode) && hugetlb_none_shared(mm, r);
	while (start < end && !ret) {
		uint64_t hi, next = present_from(mm, l, start, end);

		/* Absent up to the chunk of next: nothing to learn there. */
		if (next > start && (next & ~(step - 1)) > start) {
			uint64_t to = next & ~(step - 1);

			ret = skip_absent(mm, r, l, start, to, step, mode);
			start = to;
			if (start >= end || ret)
				break;
		}
		hi = (start & ~(step - 1)) + step;
		if (hi > end)
			hi = end;
		l->hugetlb_room = r->kind == CG_RK_HUGETLB &&
				  unshares(mode) && hugetlb_room(l, r);
		if (!seen_only(mode) || cg__region_remove_split(r, start) ||
		    cg__region_walk(r, start, hi - start, any_unseen, NULL))
			ret = learn_chunk(mm, r, l, start, hi, mode);
		if (!ret && l->nunshare) {
			ret = cg__unshare(mm, l->unshare, l->nunshare);
			l->nunshare = 0;
		}
		if (!ret && l->nrecheck)
			ret = recheck(mm, r, l);
		start = hi;
		/* Out of time: the rest of a pending span waits (learn_pending). */
		if (mm->learn_until && start < end && cg__now_ns() > mm->learn_until) {
			mm->learn_stopped = start;
			break;
		}
	}
	if (!ret)
		ret = protect_flush(mm, l);
	free(l->ahead);
	free(l);
	return ret;
}

/*
 * Past r->unlearned a lazy registration has not looked yet: what is seen
 * there for the first time has an unknown history, as at registration.
 * Or a fork has not: what is seen there for the first time was shared by
 * it.  Learned from its start on, the span is learned for good.
 */
int cg__mm_learn(struct cg__mm *mm, struct cg__region *r, uint64_t start,
		 uint64_t len, enum cg__learn mode)
{
	enum cg__learn past = r->unlearned_forked ? CG_LEARN_FORKED
						  : CG_LEARN_UNKNOWN;
	uint64_t end = start + len, cut;
	int ret = 0;

	if (mode != CG_LEARN_NEW || end <= r->unlearned)
		return learn_range(mm, r, start, len, mode);
	cut = start > r->unlearned ? start : r->unlearned;
	if (cut > start)
		ret = learn_range(mm, r, start, cut - start, CG_LEARN_NEW);
	/* Out of time before the unlearned part: it waits whole. */
	if (!ret && !mm->learn_stopped)
		ret = learn_range(mm, r, cut, end - cut, past);
	if (mm->learn_stopped)
		end = mm->learn_stopped;
	if (!ret && cut == r->unlearned && end > cut && mm->pagemap_fd >= 0)
		r->unlearned = end < r->start + r->len ? end : r->start + r->len;
	return ret;
}

/*
 * A fork shared every page of r: those not seen present yet are learned
 * later, a slice at a time, as shared (CG_LEARN_FORKED).  Reading a pagemap
 * entry of each page at the fork is what held the daemon a second for a
 * 4 GiB region where the kernel has no PAGEMAP_SCAN.
 */
void cg__mm_unlearn_forked(struct cg__region *r)
{
	r->unlearned = r->start;
	r->unlearned_forked = true;
}

/*
 * How much of r to learn from r->unlearned for a slice of span: up to the
 * first present page at least, since absent memory costs one PAGEMAP_SCAN
 * however large.  Without it each 2 MiB is a pagemap read: a span worth
 * the read-ahead buffer.
 */
static uint64_t pending_span(struct cg__mm *mm, const struct cg__region *r,
			     uint64_t span)
{
	uint64_t end = r->start + r->len, first = end;
	int n;

	if (!mm->has_scan)
		return span > AHEAD_PAGES * CG_PAGE_SIZE ? span
							 : AHEAD_PAGES * CG_PAGE_SIZE;
	/*
	 * One page, not its run: the run of a region all present goes to
	 * its end, and walking it cost every VMA there at every slice.
	 */
	n = cg__pagemap_first_present(mm->pagemap_fd, r->unlearned, end, &first);
	if (n < 0)
		return span;
	first &= ~(CG_PMD_SIZE - 1);
	return first > r->unlearned + span ? first - r->unlearned : span;
}

int cg__mm_learn_pending(struct cg__mm *mm, uint64_t span, uint64_t until_ns)
{
	for (size_t i = 0; i < mm->nregions; i++) {
		struct cg__region *r = mm->regions[i];
		uint64_t end = r->start + r->len;

		/* Not to be learned before the process is known. */
		if (r->unlearned >= end || mm->pagemap_fd < 0)
			continue;
		int ret;

		span = pending_span(mm, r, span);
		if (span > end - r->unlearned)
			span = end - r->unlearned;
		mm->learn_until = until_ns;
		mm->learn_stopped = 0;
		ret = cg__mm_learn(mm, r, r->unlearned, span, CG_LEARN_NEW);
		mm->learn_until = mm->learn_stopped = 0;
		return ret ? ret : cg__mm_learn_left(mm);
	}
	return 0;
}

bool cg__mm_learn_left(const struct cg__mm *mm)
{
	if (mm->pagemap_fd < 0)
		return false;
	for (size_t i = 0; i < mm->nregions; i++)
		if (mm->regions[i]->unlearned < mm->regions[i]->start +
						    mm->regions[i]->len)
			return true;
	return false;
}

/*
 * Protect [start, start+len) (unless the kernel has) and record it in r
 * (unless r is NULL).
 */
static int protect_span(struct cg__mm *mm, struct cg__region *r,
			uint64_t start, uint64_t len, bool kernel_done)
{
	int ret = kernel_done ? 0 : cg__mm_ioctl_wp(mm, start, len, true);

	return ret || !r ? ret : cg__region_update(r, start, len, 0, CG_ST_WP);
}

/*
 * Before 5.19 a pinned page stays unprotected while pinned: a write fault
 * on a write-protected page that its consumer holds would copy it
 * (lib/engine/pins.c), as would one a pin being made asked the client to
 * write.  Protect [a, end) but for such pages.
 */
static int protect_unpinned(struct cg__mm *mm, struct cg__region *r,
			    uint64_t a, uint64_t end, bool kernel_done)
{
	uint64_t lo, hi;
	int ret = 0;

	if (cg__kernel_read_pin_unshares() ||
	    (!mm->npins && !cg__mm_write_in_flight(mm, &lo, &hi)))
		return protect_span(mm, r, a, end - a, kernel_done);
	for (; !ret && a < end; a = hi) {
		cg__mm_unheld_span(mm, a, end, &lo, &hi);
		if (lo < hi)
			ret = protect_span(mm, r, lo, hi - lo, kernel_done);
	}
	return ret;
}

static int protect_present(struct cg__mm *mm, struct cg__region *r,
			   bool kernel_done)
{
	struct cg__runs runs;
	int ret;

	ret = cg__region_collect(r, r->start, r->len, CG_ST_PRESENT | CG_ST_WP,
				 CG_ST_PRESENT, &runs);
	for (size_t i = 0; i < runs.n && !ret; i++)
		ret = protect_unpinned(mm, r, runs.v[i].start,
				       runs.v[i].start + runs.v[i].len,
				       kernel_done);
	cg__runs_free(&runs);
	return ret;
}

int cg__mm_protect_present(struct cg__mm *mm, struct cg__region *r)
{
	return protect_present(mm, r, false);
}

/*
 * One ioctl over all of r protects what the kernel maps there, seen or
 * not, at the cost of what is populated: the kernel skips empty page
 * tables (with asynchronous protection, one per run mapped: ioctl.c).
 * Then what we saw present is recorded protected.
 */
int cg__mm_protect_mapped(struct cg__mm *mm, struct cg__region *r)
{
	int ret = protect_unpinned(mm, NULL, r->start, r->start + r->len, false);

	return ret ? ret : protect_present(mm, r, true);
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
