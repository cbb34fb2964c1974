// SPDX-License-Identifier: MIT
/*
 * Write tracking: the units written since the last collect, reported and
 * reset in one step (cg_track_collect()).
 *
 * The engine already keeps what a checkpoint needs: CG_ST_DIRTY on every
 * unit written (or maybe written) since it was registered, learned from
 * write faults on the fault path, from PAGEMAP_SCAN with asynchronous
 * protection, and by learning a page that appeared where a hole was (a
 * write there raises no fault).  A collect hands out the dirty runs and
 * arms them again, protected and clean, all before it answers: a write
 * that lands before the protection is in this report (the caller reads
 * the page after the call), one after it faults, or reads as written to
 * the scan, for the next.  Units are whole: a THP chunk's PMD is protected or
 * not as one, a hugetlb page is one.
 *
 * What is reported that was not written (bench/track, docs/benchmarks.md): on
 * the fault path a write fault unprotects the exclusive pages of its
 * window with it, all reported; pages a pin unshared by a move or a fill;
 * and every page of a read-write pin at every collect, since its consumer
 * writes behind the page tables' back.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"
#include "kernel/compat.h"
#include "kernel/kernel.h"
#include "kernel/procfs.h"
#include "pins.h"
#include "wire/protocol.h"

struct collect {
	struct cg__mm *mm;
	struct cg__region *r;
	struct cg__track_range *out;
	size_t max, n;
	uint64_t from;		/* the caller's start: units widened below it */
	uint64_t next;		/* where the report stopped, or 0 */
	uint64_t wp[2];		/* the span to protect, one chunk's at most */
	uint64_t written_from;	/* async: nothing the kernel resolved before */
	uint64_t present_from;	/* nothing present before, in the kernel */
};

/*
 * Whether a pin holds [start, start+len) that the page tables do not see
 * written: a read-write pin's consumer writes behind them, and before 5.19
 * every pinned page stays unprotected (a write to a protected page a
 * consumer holds would copy it away): reported at every collect.
 */
bool cg__mm_written_behind(struct cg__mm *mm, uint64_t start, uint64_t len)
{
	bool all = !cg__kernel_read_pin_unshares();
	uint64_t lo, hi;

	/* Left unprotected as a pin's pages are (pins.c). */
	if (cg__mm_write_in_flight(mm, &lo, &hi) && lo < start + len && start < hi)
		return true;
	/* The pins' merged spans first: most runs are under no pin at all. */
	if (!cg__mm_pinned(mm, start, len))
		return false;
	for (size_t i = 0; i < mm->npins; i++) {
		const struct cg__pin *p = mm->pins[i];

		if ((all || (p->flags & CG_PIN_RW)) && p->start < start + len &&
		    start < p->start + p->len)
			return true;
	}
	return false;
}

static void report(struct collect *c, uint64_t start, uint64_t len)
{
	struct cg__track_range *last = c->n ? &c->out[c->n - 1] : NULL;

	if (last && last->addr + last->len == start)
		last->len += len;
	else
		c->out[c->n++] = (struct cg__track_range){ start, len };
}

/*
 * Protect the span gathered: one ioctl for the dirty runs of a chunk
 * (1024 runs of a page cost 2 ms one by one), the pages between them
 * protected already (a page unprotected is dirty: it is one of the runs).
 */
static int wp_flush(struct collect *c)
{
	int ret = 0;

	if (c->wp[1] > c->wp[0])
		ret = cg__mm_ioctl_wp(c->mm, c->wp[0], c->wp[1] - c->wp[0], true);
	/* Not armed after all: dirty again, for the next collect. */
	if (ret)
		cg__region_update(c->r, c->wp[0], c->wp[1] - c->wp[0], CG_ST_WP,
				  CG_ST_DIRTY);
	c->wp[0] = c->wp[1] = 0;
	return ret;
}

static int wp_add(struct collect *c, uint64_t start, uint64_t len)
{
	int ret = 0;

	if (c->wp[1] && (c->wp[0] >> CG_PMD_SHIFT) !=
				((start + len - 1) >> CG_PMD_SHIFT))
		ret = wp_flush(c);
	if (!c->wp[1])
		c->wp[0] = start;
	c->wp[1] = start + len;
	return ret;
}

/* Arm one dirty run again (protected by the next wp_flush), report it. */
static int rearm(struct collect *c, const struct cg__run *run)
{
	bool absent = !(run->state & CG_ST_PRESENT);
	bool behind = cg__mm_written_behind(c->mm, run->start, run->len);
	int ret = 0;

	if (c->n == c->max && !(c->out[c->n - 1].addr + c->out[c->n - 1].len ==
				run->start)) {
		c->next = run->start;
		return 1;
	}
	/*
	 * A dropped page reads as zeros: nothing to protect until it is
	 * back.  Pages a pin keeps unprotected never join a span.
	 */
	if (behind)
		ret = wp_flush(c);
	else if (!absent && !(run->state & CG_ST_WP))
		ret = wp_add(c, run->start, run->len);
	if (!ret && !behind)
		ret = cg__region_update(c->r, run->start, run->len, CG_ST_DIRTY,
					absent ? 0 : CG_ST_WP);
	if (!ret)
		report(c, run->start, run->len);
	return ret;
}

/* The dirty runs of [lo, hi), one chunk of r: rearmed and reported. */
static int collect_chunk(struct collect *c, uint64_t lo, uint64_t hi)
{
	struct cg__runs runs = { 0 };
	int ret = 0;

	/*
	 * Writes the kernel resolved itself are learned now, in the scan
	 * that protects them again.  An unnamed child has no pagemap yet:
	 * its pages stay as protected.
	 */
	if (c->mm->wp_async && c->mm->pagemap_fd >= 0 && hi > c->written_from)
		ret = cg__mm_collect_protecting(c->mm, c->r, lo, hi);
	if (!ret)
		ret = cg__region_collect(c->r, lo, hi - lo, CG_ST_DIRTY,
					 CG_ST_DIRTY, &runs);

	for (size_t i = 0; !ret && i < runs.n; i++) {
		/*
		 * A chunk handed over for a move is the client's meanwhile;
		 * runs of a split THP before the caller's start, a previous
		 * call's (the widening is for a PMD's sake).
		 */
		if (cg__mm_move_holds(c->mm, runs.v[i].start))
			ret = wp_flush(c);
		else if (runs.v[i].start + runs.v[i].len > c->from)
			ret = rearm(c, &runs.v[i]);
	}
	cg__runs_free(&runs);
	/* Protected before anything is reported: the caller reads after. */
	if (ret >= 0) {
		int wret = wp_flush(c);

		ret = wret ? wret : ret;
	}
	return ret;
}

/* Where the kernel shows the first page written in [lo, hi): written_from. */
static int next_written(struct collect *c, uint64_t lo, uint64_t hi)
{
	uint64_t at = hi;
	int n = cg__pagemap_first_written(c->mm->pagemap_fd, lo, hi, &at);

	if (n < 0)
		return n;
	c->written_from = n ? at : hi;
	return 0;
}

/*
 * Where the kernel shows the first page present in [lo, hi): present_from.
 * Learning a chunk at a time is what a collect that stops early wants
 * (learning the rest of a 64 MiB range at each of 64 replies made a
 * collect 9-15 ms), but a call a chunk over empty memory is what it does
 * not (an empty 256 GiB took 130 ms): one scan skips to the next present
 * page.  Without PAGEMAP_SCAN every chunk is learned.
 */
static void next_present(struct collect *c, uint64_t lo, uint64_t hi)
{
	uint64_t at = hi;
	int n = c->mm->has_scan ? cg__pagemap_first_present(c->mm->pagemap_fd,
							    lo, hi, &at)
				: -EOPNOTSUPP;

	c->present_from = n < 0 ? lo : n ? at : hi;
}

/*
 * A chunk at a time, so that a call that fills its out early walks no
 * further (a collect of a 64 MiB region in replies of 16 ranges walked
 * all of it for each: 2 ms).
 */
static int collect_region(struct collect *c, uint64_t lo, uint64_t hi)
{
	int ret = 0;

	while (!ret && lo < hi) {
		uint64_t step = 1ULL << c->r->chunk_shift;
		uint64_t e = (lo & ~(step - 1)) + step;

		if (e > hi)
			e = hi;
		/*
		 * A write to a hole raises no fault (no marker without
		 * WP_UNPOPULATED): learning finds the page, ours and dirty.
		 */
		if (c->present_from < e)
			next_present(c, lo, hi);
		if (c->present_from < e)
			ret = cg__mm_learn(c->mm, c->r, lo, e - lo, CG_LEARN_NEW);
		/*
		 * Asynchronous protection: a scan a chunk is a system call a
		 * chunk (a collect of 256 GiB took 150 ms).  One read-only
		 * scan finds the next page written; the chunks before it
		 * need none.
		 */
		if (!ret && c->mm->wp_async && c->mm->pagemap_fd >= 0 &&
		    c->written_from < e)
			ret = next_written(c, lo, hi);
		if (!ret)
			ret = collect_chunk(c, lo, e);
		lo = e;
	}
	return ret;
}

/* [start, end), which may cross regions, dirty again. */
static void dirty_again(struct cg__mm *mm, uint64_t start, uint64_t end)
{
	while (start < end) {
		struct cg__region *r = cg__mm_find(mm, start);

		if (!r)
			return;
		cg__region_update(r, start, end - start, 0, CG_ST_DIRTY);
		start = r->start + r->len;
	}
}

int cg__mm_track_collect(struct cg__mm *mm, uint64_t addr, uint64_t len,
			 struct cg__track_range *out, size_t max, size_t *n,
			 uint64_t *next)
{
	struct collect c = { .mm = mm, .out = out, .max = max, .from = addr };
	uint64_t end = addr + len;
	int ret = 0;

	*n = 0;
	*next = end;
	if (!len || end < addr || !max)
		return -EINVAL;
	/* What was written since the last snapshot is no longer all dirty. */
	mm->snap_parent = false;
	for (size_t i = 0; !ret && i < mm->nregions; i++) {
		struct cg__region *r = mm->regions[i];
		uint64_t lo = addr, hi = end;

		if (r->start >= end || r->start + r->len <= addr)
			continue;
		cg__mm_whole_units(r, &lo, &hi);
		c.r = r;
		c.present_from = c.written_from = 0;
		ret = collect_region(&c, lo, hi);
	}
	/*
	 * Failed part-way: what was armed and not told is dirty again, for
	 * the next collect (the reply carries only the error).
	 */
	for (size_t i = 0; ret < 0 && i < c.n; i++)
		dirty_again(mm, out[i].addr, out[i].addr + out[i].len);
	*n = ret < 0 ? 0 : c.n;
	if (ret == 1) {
		*next = c.next;
		ret = 0;
	}
	return ret;
}
