// SPDX-License-Identifier: MIT
/*
 * Live snapshot, the engine's half (cg_snapshot() is the other): every
 * page of the registered regions as it was at one instant, saved while
 * the program runs.  A write to a page not saved yet waits until it is.
 *
 * Begin freezes the regions: every populated page is write-protected, and
 * a bit per page (per hugetlb page) says "not saved yet".  A write fault on
 * such a page is not resolved but parked, its address queued as urgent; a
 * step takes the span the client saved, clears its bits and wakes the
 * span: a parked thread faults again and is served as usual.  Each step
 * answers the next window to save, urgent units first.  What is saved is
 * made clean (CG_ST_DIRTY cleared, the page still protected): from then
 * on the record of writes is relative to this snapshot, which an
 * incremental one saves only the written units of, naming the others
 * kept (present and clean at the freeze: a second bitmap, told once).
 *
 * The instant.  A write to a hole raises no fault on the fault path, and
 * a hole filled while begin learns and protects, after the learning went
 * past it, could hold a write that a page frozen later depends on.  So
 * begin learns and protects every region again until a pass finds no new
 * page: a page filled during that last pass was filled after the pass
 * went past it, and a write that followed it either met a frozen page
 * (and waits) or filled a hole the pass had not reached (and the pass
 * would have found it).  Such pages are holes in the image: zeros, their
 * writes after the instant.  A program that fills holes faster than the
 * passes go gets -EAGAIN after FREEZE_PASSES.
 *
 * What cannot wait: a page dropped, unmapped or moved before it was saved
 * (a REMOVE event is complete once read) tears the snapshot (-ESTALE at
 * the next step); a page under a read-write pin, or any pinned page
 * before 5.19, is not protected (its consumer writes behind the page
 * tables) and is saved as it is when saved; asynchronous protection
 * resolves writes in the kernel, so there is nothing to wait on
 * (-EOPNOTSUPP).  While a snapshot runs, pins neither move nor fill
 * (content would pass through a hole), and a pin that would lift the
 * protection of a page not saved yet fails with -EBUSY.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kernel/uffd.h"
#include "pins.h"
#include "wire/protocol.h"

#define URGENT_MAX 16
/*
 * A waiting write's 4 KiB page is saved with those around it, within
 * this aligned span: a writer going through memory waits once a span,
 * not once a page (bench/snapshot).
 */
#define URGENT_SPAN (64 * 1024)
#define FREEZE_PASSES 8

/* One region as begin found it: a bit per granule not saved yet. */
struct area {
	uint64_t start, len;
	uint32_t kind;		/* enum cg_page_kind */
	unsigned shift;		/* granule: 4 KiB, or the hugetlb page */
	uint64_t *unsaved;
	/* Incremental: present, not written since the parent; not yet told. */
	uint64_t *kept;
	bool announced;		/* a step has named it to the client */
};

struct cg__snap {
	struct area *areas;
	size_t nareas;
	size_t cur;		/* the area the walk is in */
	uint64_t cursor;	/* and where in it */
	uint64_t urgent[URGENT_MAX];	/* parked faults' addresses, a ring */
	unsigned urgent_head, nurgent;
	uint64_t waits;
	bool torn;
};

static uint64_t granules(const struct area *a)
{
	return a->len >> a->shift;
}

static bool bit_get(const uint64_t *map, uint64_t i)
{
	return map[i / 64] >> (i % 64) & 1;
}

static void bit_set(uint64_t *map, uint64_t i)
{
	map[i / 64] |= 1ULL << (i % 64);
}

/* The first area ending past addr (areas are the regions, in order). */
static size_t area_from(const struct cg__snap *s, uint64_t addr)
{
	size_t lo = 0, hi = s->nareas;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->areas[mid].start + s->areas[mid].len <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static struct area *area_of(const struct cg__snap *s, uint64_t addr)
{
	size_t i = area_from(s, addr);

	return i < s->nareas && addr >= s->areas[i].start ? &s->areas[i] : NULL;
}

/*
 * The first granule in [i, n) not saved (or, pending, not saved or kept
 * and not yet told), or n.  A fault asks about a page: its search stops
 * there, not at the end of the area.
 */
static uint64_t next_bit_before(const struct area *a, uint64_t i, uint64_t n,
				bool pending)
{
	while (i < n) {
		uint64_t w = (a->unsaved[i / 64] |
			      (pending ? a->kept[i / 64] : 0)) >> (i % 64);

		if (w)
			return i + (uint64_t)__builtin_ctzll(w) < n
				       ? i + (uint64_t)__builtin_ctzll(w)
				       : n;
		i = (i / 64 + 1) * 64;
	}
	return n;
}

static uint64_t next_bit(const struct area *a, uint64_t i, bool pending)
{
	return next_bit_before(a, i, granules(a), pending);
}

/* Whether a bit of [start, start+len) ∩ a is set. */
static bool area_unsaved(const struct area *a, uint64_t start, uint64_t len)
{
	uint64_t lo = start > a->start ? start : a->start;
	uint64_t hi = start + len < a->start + a->len ? start + len
						       : a->start + a->len;
	uint64_t i, last;

	if (lo >= hi)
		return false;
	i = (lo - a->start) >> a->shift;
	last = (hi - 1 - a->start) >> a->shift;
	return next_bit_before(a, i, last + 1, false) <= last;
}

/* Whether a granule is left to save, or a kept one to tell. */
static bool any_pending(const struct cg__snap *s)
{
	for (size_t i = 0; i < s->nareas; i++)
		if (next_bit(&s->areas[i], 0, true) < granules(&s->areas[i]))
			return true;
	return false;
}

bool cg__mm_snap_unsaved(const struct cg__mm *mm, uint64_t start,
			 uint64_t len)
{
	const struct cg__snap *s = mm->snap;

	for (size_t i = s ? area_from(s, start) : 0;
	     s && i < s->nareas && s->areas[i].start < start + len; i++)
		if (area_unsaved(&s->areas[i], start, len))
			return true;
	return false;
}

bool cg__mm_snap_parks(struct cg__mm *mm, const struct cg__region *r,
		       uint64_t addr)
{
	struct cg__snap *s = mm->snap;
	uint64_t ustart, ulen;

	if (!s)
		return false;
	cg__region_unit(r, addr, &ustart, &ulen);
	if (!cg__mm_snap_unsaved(mm, ustart, ulen))
		return false;
	s->waits++;
	if (s->nurgent < URGENT_MAX) {
		s->urgent[(s->urgent_head + s->nurgent) % URGENT_MAX] = addr;
		s->nurgent++;
	}
	return true;
}

void cg__mm_snap_disturbed(struct cg__mm *mm, uint64_t start, uint64_t len)
{
	if (cg__mm_snap_unsaved(mm, start, len))
		mm->snap->torn = true;
}

static void snap_free(struct cg__snap *s)
{
	for (size_t i = 0; s && i < s->nareas; i++) {
		free(s->areas[i].unsaved);
		free(s->areas[i].kept);
	}
	if (s)
		free(s->areas);
	free(s);
}

static uint32_t area_kind(const struct cg__region *r)
{
	if (r->kind == CG_RK_HUGETLB)
		return r->unit_shift == CG_PUD_SHIFT ? CG_PAGE_HUGETLB_1G
						     : CG_PAGE_HUGETLB_2M;
	return r->kind == CG_RK_THP ? CG_PAGE_THP : CG_PAGE_4K;
}

/* Set a granule bit in map for each page of the runs of r matching. */
static int mark_runs(struct area *a, uint64_t *map, const struct cg__region *r,
		     unsigned mask, unsigned value)
{
	struct cg__runs runs = { 0 };
	int ret = cg__region_collect(r, r->start, r->len, mask, value, &runs);

	for (size_t i = 0; !ret && i < runs.n; i++) {
		uint64_t g = (runs.v[i].start - a->start) >> a->shift;
		uint64_t end = (runs.v[i].start + runs.v[i].len - a->start +
				(1ULL << a->shift) - 1) >> a->shift;

		for (; g < end; g++)
			bit_set(map, g);
	}
	cg__runs_free(&runs);
	return ret;
}

/*
 * What begin found present: all of it to save, or (incremental) what was
 * written since the parent to save, the rest kept.  A pin's consumer
 * writes unseen: its units are saved every time.
 */
static int area_fill(struct cg__mm *mm, struct area *a,
		     const struct cg__region *r, bool incremental)
{
	uint64_t n = granules(a);

	if (!incremental)
		return mark_runs(a, a->unsaved, r, CG_ST_PRESENT, CG_ST_PRESENT);
	int ret = mark_runs(a, a->unsaved, r, CG_ST_PRESENT | CG_ST_DIRTY,
			    CG_ST_PRESENT | CG_ST_DIRTY);

	if (!ret)
		ret = mark_runs(a, a->kept, r, CG_ST_PRESENT | CG_ST_DIRTY,
				CG_ST_PRESENT);
	for (uint64_t g = 0; !ret && mm->npins && g < n; g++)
		if (bit_get(a->kept, g) &&
		    cg__mm_written_behind(mm, a->start + (g << a->shift),
					  1ULL << a->shift)) {
			a->kept[g / 64] &= ~(1ULL << (g % 64));
			bit_set(a->unsaved, g);
		}
	return ret;
}

static int areas_build(struct cg__mm *mm, struct cg__snap *s,
		       bool incremental)
{
	s->areas = calloc(mm->nregions ? mm->nregions : 1, sizeof(*s->areas));
	if (!s->areas)
		return -ENOMEM;
	for (size_t i = 0; i < mm->nregions; i++) {
		const struct cg__region *r = mm->regions[i];
		struct area *a = &s->areas[s->nareas++];

		a->start = r->start;
		a->len = r->len;
		a->kind = area_kind(r);
		a->shift = r->kind == CG_RK_HUGETLB ? r->unit_shift
						    : CG_PAGE_SHIFT;
		a->unsaved = calloc((granules(a) + 63) / 64, sizeof(uint64_t));
		a->kept = calloc((granules(a) + 63) / 64, sizeof(uint64_t));
		if (!a->unsaved || !a->kept)
			return -ENOMEM;
		int ret = area_fill(mm, a, r, incremental);

		if (ret)
			return ret;
	}
	return 0;
}

static uint64_t present_pages(const struct cg__mm *mm)
{
	struct cg__mm_counts c;

	cg__mm_counts(mm, &c);
	return c.present;
}

/*
 * Learn every region and protect what is populated, until a pass learns
 * nothing new (learning new pages only ever adds present ones).
 */
static int freeze(struct cg__mm *mm, struct cg__snap *s, bool incremental)
{
	for (int pass = 0; pass < FREEZE_PASSES; pass++) {
		uint64_t before = present_pages(mm);
		int ret = cg__mm_learn_and_protect_all(mm);

		/*
		 * Memory unmapped or moved away meanwhile (-ENOENT from the
		 * protection), its event not read yet: take it again.
		 */
		if (ret)
			return ret == -ENOENT ? -ESTALE : ret;
		if (present_pages(mm) == before)
			return areas_build(mm, s, incremental);
	}
	return -EAGAIN;
}

int cg__mm_snap_begin(struct cg__mm *mm, unsigned flags)
{
	bool incremental = flags & CG__SNAP_INCREMENTAL;
	struct cg__snap *s;
	int ret;

	if (flags & ~CG__SNAP_INCREMENTAL)
		return -EINVAL;
	if (mm->snap || mm->pin_job || cg__mm_move_armed(mm))
		return -EBUSY;
	if (incremental && !mm->snap_parent)
		return -ENOENT;
	if (mm->wp_async)
		return -EOPNOTSUPP;
	if (mm->pagemap_fd < 0)
		return -ESRCH;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	/* Saving clears CG_ST_DIRTY: no parent until this one is written. */
	mm->snap_parent = false;
	ret = freeze(mm, s, incremental);
	if (ret) {
		snap_free(s);
		return ret;
	}
	mm->snap = s;
	return 0;
}

/* The span saved: whole granules of one area.  Clear them, wake them. */
/*
 * Saved, and still protected since the freeze: from now on CG_ST_DIRTY
 * says written since this snapshot (what an incremental one saves), but
 * where a pin's consumer writes unseen.
 */
static void clean(struct cg__mm *mm, uint64_t start, uint64_t len)
{
	struct cg__region *r = cg__mm_find(mm, start);

	if (r && !cg__mm_written_behind(mm, start, len))
		cg__region_update(r, start, len, CG_ST_DIRTY, 0);
}

static int saved(struct cg__mm *mm, uint64_t start, uint64_t len)
{
	struct area *a = area_of(mm->snap, start);
	uint64_t mask = a ? (1ULL << a->shift) - 1 : 0;

	if (!len)
		return 0;
	if (!a || (start | len) & mask || len > a->start + a->len - start)
		return -EINVAL;
	for (uint64_t g = (start - a->start) >> a->shift,
		      end = g + (len >> a->shift); g < end; g++)
		a->unsaved[g / 64] &= ~(1ULL << (g % 64));
	clean(mm, start, len);
	return cg__uffd_wake(mm->uffd, start, len);
}

/*
 * Describe the granules of [start, start + n << shift) of a into w: those
 * to save, and those kept, which are told once.
 */
static void window_take(struct area *a, uint64_t start, uint64_t n,
			struct cg__snap_window *w)
{
	uint64_t g0 = (start - a->start) >> a->shift;

	w->area_start = a->start;
	w->area_len = a->len;
	w->kind = a->kind;
	w->shift = a->shift;
	w->start = start;
	w->nbits = (uint32_t)n;
	for (uint64_t i = 0; i < n; i++) {
		if (bit_get(a->unsaved, g0 + i))
			bit_set(w->bits, i);
		if (bit_get(a->kept, g0 + i))
			bit_set(w->kept, i);
	}
	for (uint64_t i = 0; i < n; i++)
		a->kept[(g0 + i) / 64] &= ~(1ULL << ((g0 + i) % 64));
}

/* A parked write's unit, if one is still waiting. */
static bool urgent_window(struct cg__mm *mm, struct cg__snap_window *w)
{
	struct cg__snap *s = mm->snap;

	while (s->nurgent) {
		uint64_t addr = s->urgent[s->urgent_head];
		const struct cg__region *r = cg__mm_find(mm, addr);
		struct area *a = area_of(s, addr);
		uint64_t ustart, ulen;

		s->urgent_head = (s->urgent_head + 1) % URGENT_MAX;
		s->nurgent--;
		if (!r || !a)
			continue;
		cg__region_unit(r, addr, &ustart, &ulen);
		if (ustart < a->start || ulen > a->start + a->len - ustart ||
		    !area_unsaved(a, ustart, ulen))
			continue;
		if (ulen < URGENT_SPAN) {
			uint64_t end = (ustart | (URGENT_SPAN - 1)) + 1;

			ustart &= ~(uint64_t)(URGENT_SPAN - 1);
			ustart = ustart > a->start ? ustart : a->start;
			end = end < a->start + a->len ? end : a->start + a->len;
			ulen = end - ustart;
		}
		window_take(a, ustart, ulen >> a->shift, w);
		w->flags |= CG__SNAP_URGENT;
		/*
		 * The walk goes on from there: a writer going through memory
		 * writes next where the walk saves next, and waits no more.
		 * What it skipped is found by the sweep after the last area.
		 */
		s->cur = (size_t)(a - s->areas);
		s->cursor = (ustart + ulen - a->start) >> a->shift;
		return true;
	}
	return false;
}

/* From the walk's place to the end of the last area: the next window. */
static bool walk_on(struct cg__mm *mm, struct cg__snap_window *w)
{
	struct cg__snap *s = mm->snap;

	for (; s->cur < s->nareas; s->cur++, s->cursor = 0) {
		struct area *a = &s->areas[s->cur];
		uint64_t g = next_bit(a, s->cursor, true), start, end;

		if (g >= granules(a)) {
			if (a->announced)
				continue;
			a->announced = true;
			window_take(a, a->start, 0, w);
			return true;
		}
		start = a->start + (g << a->shift);
		end = start + (1ULL << a->shift);
		if (a->shift == CG_PAGE_SHIFT) {
			end = (start | (CG_PMD_SIZE - 1)) + 1;
			start &= ~(CG_PMD_SIZE - 1);
			start = start > a->start ? start : a->start;
			end = end < a->start + a->len ? end : a->start + a->len;
		}
		a->announced = true;
		s->cursor = (end - a->start) >> a->shift;
		window_take(a, start, (end - start) >> a->shift, w);
		return true;
	}
	return false;
}

/*
 * The next window in address order from the walk's place: the 2 MiB chunk
 * of the next granule not saved (a THP is one run), or its hugetlb page;
 * past the last area, from the first again while any is left (an urgent
 * window moved the walk on past it).  Every area is named once, even one
 * with nothing to save.
 */
static bool next_window(struct cg__mm *mm, struct cg__snap_window *w)
{
	struct cg__snap *s = mm->snap;

	if (walk_on(mm, w))
		return true;
	for (size_t i = 0; i < s->nareas; i++)
		if (!s->areas[i].announced ||
		    next_bit(&s->areas[i], 0, true) < granules(&s->areas[i])) {
			s->cur = i;
			s->cursor = 0;
			return walk_on(mm, w);
		}
	return false;
}

int cg__mm_snap_step(struct cg__mm *mm, uint64_t start, uint64_t len,
		     struct cg__snap_window *w)
{
	struct cg__snap *s = mm->snap;
	int ret;

	memset(w, 0, sizeof(*w));
	if (!s)
		return -ENOENT;
	if (s->torn)
		return -ESTALE;
	ret = saved(mm, start, len);
	if (ret)
		return ret;
	w->waits = s->waits;
	if (!urgent_window(mm, w))
		next_window(mm, w);
	w->waits = s->waits;
	return 0;
}

int cg__mm_snap_end(struct cg__mm *mm, unsigned flags)
{
	struct cg__snap *s = mm->snap;

	if (!s)
		return -ENOENT;
	mm->snap = NULL;
	mm->snap_parent = !(flags & (CG__SNAP_FAILED | CG__SNAP_NOT_OURS)) &&
			  !s->torn && !any_pending(s);
	/* What still waits faults again, and is served as any write. */
	for (size_t i = 0; i < s->nareas; i++)
		if (area_unsaved(&s->areas[i], s->areas[i].start,
				 s->areas[i].len))
			cg__uffd_wake(mm->uffd, s->areas[i].start,
				      s->areas[i].len);
	snap_free(s);
	return 0;
}

void cg__mm_snap_free(struct cg__mm *mm)
{
	snap_free(mm->snap);
	mm->snap = NULL;
}

size_t cg__mm_snap_footprint(const struct cg__mm *mm)
{
	const struct cg__snap *s = mm->snap;
	size_t bytes = s ? sizeof(*s) + s->nareas * sizeof(*s->areas) : 0;

	for (size_t i = 0; s && i < s->nareas; i++)
		bytes += 2 * ((granules(&s->areas[i]) + 63) / 64) * sizeof(uint64_t);
	return bytes;
}
