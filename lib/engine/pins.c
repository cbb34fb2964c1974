// SPDX-License-Identifier: MIT
/*
 * Pinning: the user-space counterpart of the kernel's FAULT_FLAG_UNSHARE.
 *
 * Before a range goes to a consumer, every page that may be shared is made
 * exclusive with its content kept and its write protection left in place,
 * so that a later write in this process reuses the page the consumer holds
 * instead of replacing it.  From 5.19 the unshare is a read-only FOLL_PIN
 * (process_vm_readv, see unshare.c): the kernel copies a page still shared
 * and reuses one we turn out to map alone.  What such a pin cannot unshare
 * (the zero page; before 5.19, everything) is handed back to the client to
 * write-fault (ask_write_unshare(), lib/write_unshare.c), unprotected
 * first; before 5.19 pinned pages then stay unprotected while pinned.  A
 * PMD-mapped THP still shared is copied whole and moved into place where
 * the uffd can move (6.8+, lib/engine/move.c): it stays one PMD.  Elsewhere
 * it is split, as the kernel's own unshare does.  Measured (bench/unshare,
 * 64 MiB, child alive, 2026-11-25): split by this unshare 1.7-2.6 us per
 * 4 KiB page (daemon, embedded), MADV_POPULATE_WRITE 2.1; copying each
 * 2 MiB into a fresh scratch THP, MADV_DONTNEED and UFFDIO_MOVE in one
 * thread 0.95-1.0.  A hugetlb page is copied at
 * its own size, but only when the pool can take the copy: short of it, the
 * kernel would take the page from the other process instead.
 *
 * Unpinning checks what the kernel's unpin_user_pages() checks: every page
 * still exclusive, and still the frame that was pinned where frames can be
 * read.  A write fault on a pinned page that the kernel maps shared means a
 * fork shared it behind our back: the pin is marked violated there.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "frames.h"
#include "internal.h"
#include "kernel/clock.h"
#include "kernel/compat.h"
#include "kernel/kernel.h"
#include "kernel/procfs.h"
#include "pins.h"
#include "wire/protocol.h"

#define PIN_FLAGS (CG_PIN_RO | CG_PIN_RW | CG_PIN_FOLL_PIN)
#define BATCH 512
/* A pin's window over 2 MiB hugetlb pages (window_end()). */
#define HUGETLB_WINDOW (4 * CG_PMD_SIZE)
/* THP chunks armed for a move at a time: the client's scratch is as big. */
#define MOVE_CHUNKS 16
/* pin_window(): stop the walk here, the chunks armed are handed over. */
#define WALK_STOP 1

/* A unit of a pinned range: a 4 KiB page, or a whole hugetlb page. */
struct unit {
	uint64_t addr;
	uint64_t pme;
	unsigned shift;
};

struct units {
	struct unit *v;
	size_t n, cap;
};

static uint64_t boottime_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Hugetlb pages are pinned whole: the range must not cut one. */
static bool hugetlb_aligned(const struct cg__mm *mm, uint64_t start,
			    uint64_t len)
{
	const struct cg__region *first = cg__mm_find(mm, start);
	const struct cg__region *last = cg__mm_find(mm, start + len - 1);

	if (first->kind == CG_RK_HUGETLB &&
	    start & ((1ULL << first->unit_shift) - 1))
		return false;
	return last->kind != CG_RK_HUGETLB ||
	       !((start + len) & ((1ULL << last->unit_shift) - 1));
}

static int units_add(struct units *u, uint64_t addr, unsigned shift)
{
	if (u->n == u->cap) {
		size_t cap = u->cap ? u->cap * 2 : 256;
		struct unit *v = realloc(u->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		u->v = v;
		u->cap = cap;
	}
	u->v[u->n++] = (struct unit){ addr, 0, shift };
	return 0;
}

/*
 * The region of addr: r again while it holds addr.  A walk asks unit
 * after unit, and the regions do not change under it (an ioctl's wait
 * only queues messages).
 */
static struct cg__region *region_of(const struct cg__mm *mm,
				    struct cg__region *r, uint64_t addr)
{
	if (r && addr >= r->start && addr - r->start < r->len)
		return r;
	return cg__mm_find(mm, addr);
}

/* Hugetlb pages whole, everything else (THP included) by 4 KiB page. */
static int collect_units(const struct cg__mm *mm, uint64_t start, uint64_t len,
			 struct units *u)
{
	struct cg__region *r = NULL;
	int ret = 0;

	for (uint64_t a = start; a < start + len && !ret;) {
		unsigned shift;

		r = region_of(mm, r, a);
		if (!r)
			return -ENOENT;	/* unmapped since it was pinned */
		shift = r->kind == CG_RK_HUGETLB ? r->unit_shift : CG_PAGE_SHIFT;
		a &= ~((1ULL << shift) - 1);
		ret = units_add(u, a, shift);
		a += 1ULL << shift;
	}
	return ret;
}

/*
 * Read the pagemap entry of every unit, in batches of contiguous pages.  A
 * hugetlb page is read alone, its first entry: all 512 of its entries cost
 * the kernel about a system call of their own, and 2.5 times that cold (a
 * struct page each; measured right after a fork's copies).
 */
static int read_units(const struct cg__mm *mm, struct units *u)
{
	uint64_t pme[BATCH];
	size_t i = 0;

	while (i < u->n) {
		size_t k = 1;
		int ret;

		while (i + k < u->n && k < BATCH && u->v[i + k].shift == CG_PAGE_SHIFT &&
		       u->v[i].shift == CG_PAGE_SHIFT &&
		       u->v[i + k].addr == u->v[i].addr + k * CG_PAGE_SIZE)
			k++;
		ret = cg__pagemap_read(mm->pagemap_fd, u->v[i].addr, k, pme);
		if (ret)
			return ret;
		for (size_t j = 0; j < k; j++)
			u->v[i + j].pme = pme[j];
		i += k;
	}
	return 0;
}

/* The first absent unit of r's part of [a, end) by pagemap reads, or end. */
static int hole_by_reads(const struct cg__mm *mm, const struct cg__region *r,
			 uint64_t a, uint64_t end, uint64_t *hole)
{
	uint64_t step = r->kind == CG_RK_HUGETLB ? 1ULL << r->unit_shift
						  : CG_PAGE_SIZE;
	uint64_t pme[BATCH];

	for (a &= ~(step - 1); a < end;) {
		/* A huge page's one entry speaks for it; 4 KiB pages in batches. */
		size_t n = step > CG_PAGE_SIZE ? 1
			   : (end - a) / step < BATCH ? (size_t)((end - a) / step)
						      : BATCH;
		int ret = cg__pagemap_read(mm->pagemap_fd, a, n, pme);

		if (ret)
			return ret;
		for (size_t i = 0; i < n; i++, a += step)
			if (!(pme[i] & PM_PRESENT)) {
				*hole = a;
				return 0;
			}
	}
	*hole = end;
	return 0;
}

/*
 * The first unit of [start, start+len) that is not present, or 0 when
 * none is: asked before anything is learned or allocated, so that a pin
 * of memory never populated costs what was populated, not what was
 * mapped (a raw pin of a 64 GiB sparse registration held the daemon 2 s
 * and grew it by 395 MB).  One PAGEMAP_SCAN where the kernel has it.
 */
static int first_hole(const struct cg__mm *mm, uint64_t start, uint64_t len,
		      uint64_t *hole)
{
	const struct cg__region *r;
	int ret;

	*hole = 0;
	if (mm->has_scan) {
		ret = cg__pagemap_first_absent(mm->pagemap_fd, start,
					       start + len, hole);
		if (ret >= 0) {
			r = cg__mm_find(mm, *hole);
			if (ret && r && r->kind == CG_RK_HUGETLB)
				*hole &= ~((1ULL << r->unit_shift) - 1);
			return 0;
		}
	}
	for (uint64_t a = start; a < start + len;) {
		uint64_t end;

		r = cg__mm_find(mm, a);
		end = r->start + r->len < start + len ? r->start + r->len
						      : start + len;
		ret = hole_by_reads(mm, r, a, end, hole);
		if (ret || *hole < end)
			return ret;
		a = end;
	}
	*hole = 0;
	return 0;
}

/* Exclusive in the kernel's eyes, as far as pagemap can say. */
static bool mapped_alone(const struct unit *u)
{
	/* Bit 56 reads 0 for every 1 GiB page on 6.18: unshare vouches. */
	return (u->pme & PM_PRESENT) &&
	       (u->shift == CG_PUD_SHIFT || (u->pme & PM_MMAP_EXCLUSIVE));
}

static uint64_t pfn_of(const struct unit *u)
{
	return u->pme & PM_PFN_MASK;
}

/*
 * Whether a write fault could still replace the unit's page.  Before 5.19
 * a write fault on a page that a consumer holds copies it, whoever maps
 * it: a pinned page must be written once (made writable) before the
 * consumer takes it, and stay unprotected while it holds it.  Not only
 * the write-protected ones: 5.10's unprotect leaves a page read-only until
 * its next write (change_pte_range() leaves the write bit to the fault),
 * and nothing tells us from user space which PTEs are writable.  Seen: a
 * page a fault's window had unprotected, pinned unwritten, then copied
 * away from the pipe that held it by the next write.  So the first walk
 * asks the client to write every unit, and the walk after its writes
 * takes those it asked (the write in flight, which no ioctl touches
 * meanwhile: cg__mm_unheld_span()).
 */
static bool asked_by_this_pin(const struct cg__mm *mm);

static bool write_may_replace(const struct cg__mm *mm, const struct unit *x)
{
	uint64_t lo, hi;

	if (cg__kernel_read_pin_unshares())
		return false;
	return !cg__mm_write_in_flight(mm, &lo, &hi) || x->addr < lo ||
	       x->addr >= hi;
}

bool cg__mm_write_in_flight(const struct cg__mm *mm, uint64_t *lo,
			    uint64_t *hi)
{
	/* Asked and not walked again yet, or being walked again now. */
	const uint64_t *w = mm->wu_asked[1]	    ? mm->wu_asked
			    : asked_by_this_pin(mm) ? mm->wu_counted
						    : NULL;

	if (cg__kernel_read_pin_unshares() || !w || !w[1])
		return false;
	*lo = w[0];
	*hi = w[0] + w[1];
	return true;
}

/* The units that are not exclusive yet; -EAGAIN on a hole. */
static int plan_unshare(struct cg__mm *mm, const struct units *u,
			uint64_t *todo, size_t *ntodo, unsigned long *huge_copies,
			uint64_t *bad)
{
	struct cg__region *r = NULL;

	*ntodo = 0;
	for (size_t i = 0; i < u->n; i++) {
		const struct unit *x = &u->v[i];

		r = region_of(mm, r, x->addr);
		if (!(x->pme & PM_PRESENT)) {
			*bad = x->addr;
			return -EAGAIN;
		}
		/* Trust, but verify: the kernel must map it alone too. */
		if ((cg__region_get(r, x->addr) & CG_ST_EXCL) && mapped_alone(x) &&
		    !write_may_replace(mm, x))
			continue;
		todo[(*ntodo)++] = x->addr;
		/* An exclusive hugetlb page is reused; a shared one copied. */
		if (x->shift == CG_PUD_SHIFT && !cg__kernel_exclusive(mm, x->pme))
			huge_copies[1]++;	/* bit 56 cannot tell: count it */
		else if (x->shift == CG_PMD_SHIFT && !mapped_alone(x))
			huge_copies[0]++;
	}
	return 0;
}

static int pool_check(const unsigned long *huge_copies)
{
	if (huge_copies[0] && cg__hugetlb_spare(CG_PMD_SHIFT) < (long)huge_copies[0])
		return -ENOMEM;
	if (huge_copies[1] && cg__hugetlb_spare(CG_PUD_SHIFT) < (long)huge_copies[1])
		return -ENOMEM;
	return 0;
}

/* Count copies and reuses by comparing frames (or bit 56) before and after. */
static void count_unshares(struct cg__mm *mm, const struct unit *before,
			   const struct unit *after, const struct cg__region *r)
{
	uint64_t pages = 1ULL << (after->shift - CG_PAGE_SHIFT);

	if (cg__region_get(r, after->addr) & CG_ST_EXCL)
		return;
	/* Written by the client since the last call, and counted then. */
	if (after->addr >= mm->wu_counted[0] &&
	    after->addr - mm->wu_counted[0] < mm->wu_counted[1])
		return;
	if (mm->pfn_visible && pfn_of(before) ? pfn_of(before) != pfn_of(after)
					      : !mapped_alone(before))
		mm->stats.unshare_copies += pages;
	else
		mm->stats.unshare_reuses += pages;
	mm->stats.pages_made_exclusive += pages;
}


/* Whether a unit needs a write to be ours: shared, or maybe replaced. */
static bool write_needed(const struct cg__mm *mm, const struct unit *x)
{
	return !mapped_alone(x) || write_may_replace(mm, x);
}

/* Whether a write ask_write_unshare() asks lands where no snapshot saved. */
static bool write_unsaved(const struct cg__mm *mm, const struct units *u)
{
	for (size_t i = 0; mm->snap && i < u->n; i++) {
		const struct unit *x = &u->v[i];

		if (write_needed(mm, x) &&
		    cg__mm_snap_unsaved(mm, x->addr, 1ULL << x->shift))
			return true;
	}
	return false;
}

/*
 * Units a read-only pin cannot make exclusive: the zero page (not an
 * anonymous page: a pin takes it as it is) on every kernel, and before
 * 5.19 every unit still shared or still write-protected.  Those need a
 * write fault, which only the client's own process can take (the daemon
 * cannot write into it): lift their write protection first, so that the
 * client's writes cost no round trip to the handler, mark them dirty
 * (the write-unshare writes, and a concurrent write there would go
 * unseen), and add them to wu, the span [first, end) the client is handed
 * to write when the walk is over.  *asked: some unit of u was.
 */
static int ask_write_unshare(struct cg__mm *mm, const struct units *u,
			     uint64_t *wu, bool *asked)
{
	uint64_t lift = 0, lift_end = 0;
	struct cg__region *r = NULL;
	int ret = 0;

	*asked = false;
	if (write_unsaved(mm, u))
		return -EBUSY;
	for (size_t i = 0; !ret && i < u->n; i++) {
		const struct unit *x = &u->v[i];
		uint64_t size = 1ULL << x->shift;

		if (!write_needed(mm, x))
			continue;
		r = region_of(mm, r, x->addr);
		*asked = true;
		if (!wu[1])
			wu[0] = x->addr;
		wu[1] = x->addr + size;
		/* The write copies what someone else maps, and reuses the rest. */
		if (!(cg__region_get(r, x->addr) & CG_ST_EXCL)) {
			*(mapped_alone(x) ? &mm->stats.unshare_reuses
					  : &mm->stats.unshare_copies) += size >> CG_PAGE_SHIFT;
			mm->stats.pages_made_exclusive += size >> CG_PAGE_SHIFT;
		}
		/* Protection is lifted by runs: an ioctl a page was 200 ms a GiB. */
		if (cg__region_get(r, x->addr) & CG_ST_WP) {
			if (lift_end != x->addr) {
				if (lift_end)
					ret = cg__mm_ioctl_lift(mm, lift,
								lift_end - lift);
				lift = x->addr;
			}
			lift_end = x->addr + size;
		}
		if (!ret)
			ret = cg__region_update(r, x->addr, size, CG_ST_WP,
						CG_ST_DIRTY);
	}
	if (!ret && lift_end)
		ret = cg__mm_ioctl_lift(mm, lift, lift_end - lift);
	return ret;
}

/* Count the unshares of units found exclusive, then mark them so. */
static int mark_pinned(struct cg__mm *mm, const struct units *before,
		       const struct units *after, unsigned flags)
{
	unsigned set = CG_ST_PRESENT | CG_ST_EXCL |
		       (flags & CG_PIN_RW ? CG_ST_DIRTY : 0);
	struct cg__region *r = NULL;
	int ret = 0;

	/*
	 * Count before marking anything: marking a THP whole makes the rest
	 * of its 4 KiB units look exclusive already, and uncounted.
	 */
	for (size_t i = 0; i < after->n; i++) {
		r = region_of(mm, r, after->v[i].addr);
		count_unshares(mm, &before->v[i], &after->v[i], r);
	}
	/*
	 * Mark by runs of adjacent units of one region: an update per 4 KiB
	 * page rescans its chunk each time, 1/3 of a 64 MiB pin (perf).
	 */
	for (size_t i = 0; !ret && i < after->n;) {
		uint64_t start, end, ustart, ulen;

		r = region_of(mm, r, after->v[i].addr);
		/* A THP still PMD-mapped was reused whole: mark it whole. */
		cg__region_unit(r, after->v[i].addr, &start, &ulen);
		end = start + ulen;
		for (i++; i < after->n && after->v[i].addr >= start &&
			  after->v[i].addr <= end &&
			  region_of(mm, r, after->v[i].addr) == r; i++) {
			cg__region_unit(r, after->v[i].addr, &ustart, &ulen);
			if (ustart + ulen > end)
				end = ustart + ulen;
		}
		ret = cg__region_update(r, start, end - start, 0, set);
	}
	return ret;
}

/* A THP unshared while shared was split by the kernel: follow it. */
static void sync_thp_chunks(struct cg__mm *mm, uint64_t start, uint64_t len)
{
	for (uint64_t c = start & ~(CG_PMD_SIZE - 1); c < start + len;
	     c += CG_PMD_SIZE) {
		struct cg__region *r = cg__mm_find(mm, c < start ? start : c);

		if (r)
			cg__mm_follow_split(mm, r, c);
	}
}

/*
 * Put back the uffd-wp bit the unshare dropped.  6.1 loses it when a
 * read-only pin copies a shared hugetlb page (measured in the 6.1 guest:
 * new frame, pagemap bit 57 clear; 4 KiB and THP pages keep it, and 6.18
 * keeps it everywhere): the engine still calls the unit write-protected,
 * and the next write would go unseen.  after's entries were just read.
 */
static int reprotect_dropped(struct cg__mm *mm, const struct units *after)
{
	int ret = 0;

	/* 6.7+ keeps the bit; and a clear bit there means a write: keep it. */
	if (mm->wp_async)
		return 0;
	for (size_t i = 0; !ret && i < after->n; i++) {
		const struct unit *x = &after->v[i];
		const struct cg__region *r = cg__mm_find(mm, x->addr);

		if (r && (x->pme & PM_PRESENT) && !(x->pme & PM_UFFD_WP) &&
		    (cg__region_get(r, x->addr) & CG_ST_WP))
			ret = cg__mm_ioctl_wp(mm, x->addr, 1ULL << x->shift, true);
	}
	return ret;
}

/*
 * Whether copy and fill may unshare u (fill.c): a 4 KiB page of a 4 KiB
 * region that the kernel shows mapped shared and protected.  Never a page
 * mapped once: a consumer outside cowguard may hold it, and a drop would
 * leave it the old page (a shared page it cannot hold: fork copies a
 * pinned page, and a read-only pin unshares first).
 */
static bool fillable(const struct cg__region *r, const struct unit *u)
{
	return r->kind == CG_RK_4K && u->shift == CG_PAGE_SHIFT &&
	       (u->pme & PM_PRESENT) && !(u->pme & PM_MMAP_EXCLUSIVE) &&
	       (u->pme & PM_UFFD_WP);
}

/* A fill's fixed cost (a dozen system calls) is a read-only pin's of ~16 pages. */
#define FILL_MIN_PAGES 32

/* Take the addresses in [lo, hi) out of todo. */
static void todo_drop(uint64_t *todo, size_t *ntodo, uint64_t lo, uint64_t hi)
{
	size_t k = 0;

	for (size_t i = 0; i < *ntodo; i++)
		if (todo[i] < lo || todo[i] >= hi)
			todo[k++] = todo[i];
	*ntodo = k;
}

/*
 * Unshare by copy and fill each run of FILL_MIN_PAGES or more fillable
 * pages of u, no pin of ours on it, and take them out of todo (ascending,
 * as u); a run the fill fails stays there for the read-only pin.
 */
static void fill_runs(struct cg__mm *mm, const struct units *u, uint64_t *todo,
		      size_t *ntodo)
{
	const struct cg__region *r = u->n ? cg__mm_find(mm, u->v[0].addr) : NULL;

	for (size_t i = 0; r && i < u->n;) {
		size_t j = i;
		uint64_t lo = u->v[i].addr, len;

		while (j < u->n && fillable(r, &u->v[j]) &&
		       u->v[j].addr == lo + (j - i) * CG_PAGE_SIZE)
			j++;
		len = (j - i) * CG_PAGE_SIZE;
		if (j - i >= FILL_MIN_PAGES && !cg__mm_pinned(mm, lo, len) &&
		    !cg__mm_fill(mm, lo, len))
			todo_drop(todo, ntodo, lo, lo + len);
		i = j > i ? j : i + 1;
	}
}

/* Unshare todo by read-only pins, and read what [lo, hi) holds after. */
static int unshare_window(struct cg__mm *mm, const uint64_t *todo,
			  size_t ntodo, uint64_t lo, uint64_t hi,
			  struct units *after)
{
	int ret = ntodo ? cg__unshare(mm, todo, ntodo) : 0;

	/* Follow the kernel's splits first, so marking does not split more. */
	if (!ret)
		sync_thp_chunks(mm, lo, hi - lo);
	if (!ret)
		ret = collect_units(mm, lo, hi - lo, after);
	if (!ret)
		ret = read_units(mm, after);
	if (!ret)
		ret = reprotect_dropped(mm, after);
	return ret;
}

/* ---- pins, their frames, their list ------------------------------------ */

/*
 * The pins that hold [addr, addr+size) had a page there that is gone: the
 * new pin found another frame.  Their consumers may hold the old page.
 */
static void frame_replaced(struct cg__mm *mm, uint64_t addr, uint64_t size)
{
	for (size_t i = 0; i < mm->npins; i++) {
		struct cg__pin *p = mm->pins[i];

		if (p->framed && p->start < addr + size &&
		    addr < p->start + p->len && !p->violated)
			p->violated = addr > p->start ? addr : p->start;
	}
}

/* Hold each unit's frame for the pin being made: all of u, or none. */
static int frames_take(struct cg__mm *mm, const struct units *u)
{
	bool replaced;
	size_t i;
	int ret = 0;

	for (i = 0; !ret && i < u->n; i++) {
		const struct unit *x = &u->v[i];

		ret = cg__frames_hold(&mm->frames, x->addr, pfn_of(x),
				      &replaced);
		if (!ret && replaced)
			frame_replaced(mm, x->addr, 1ULL << x->shift);
	}
	/* The pin is not recorded yet: a unit no other pin holds goes. */
	for (size_t k = 0; ret && k + 1 < i; k++) {
		uint64_t size = 1ULL << u->v[k].shift;

		if (!cg__mm_pinned(mm, u->v[k].addr, size))
			cg__frames_forget(mm->frames, u->v[k].addr,
					  u->v[k].addr + size);
	}
	return ret;
}

static int pins_add(struct cg__mm *mm, struct cg__pin *p)
{
	if (mm->npins == mm->pins_cap) {
		size_t cap = mm->pins_cap ? mm->pins_cap * 2 : 8;
		struct cg__pin **v = realloc(mm->pins, cap * sizeof(*v));
		struct cg__span *spans;

		if (!v)
			return -ENOMEM;
		mm->pins = v;
		/* Rebuilding the spans then never fails. */
		spans = realloc(mm->pin_spans, cap * sizeof(*spans));
		if (!spans)
			return -ENOMEM;
		mm->pin_spans = spans;
		mm->pins_cap = cap;
	}
	p->id = ++mm->next_pin_id;
	p->created_ms = boottime_ms();
	mm->pins[mm->npins++] = p;
	mm->stats.pins = mm->npins;
	mm->pin_spans_stale = true;
	return 0;
}

static void pins_remove(struct cg__mm *mm, const struct cg__pin *p)
{
	for (size_t i = 0; i < mm->npins; i++)
		if (mm->pins[i] == p) {
			mm->pins[i] = mm->pins[--mm->npins];
			break;
		}
	mm->stats.pins = mm->npins;
	mm->pin_spans_stale = true;
}

static ssize_t pin_index(const struct cg__mm *mm, uint64_t id)
{
	for (size_t i = 0; i < mm->npins; i++)
		if (mm->pins[i]->id == id)
			return (ssize_t)i;
	return -1;
}

static int check_pin_args(const struct cg__mm *mm, uint64_t start,
			  uint64_t len, unsigned flags)
{
	if ((flags & ~(PIN_FLAGS | CG__PIN_NO_MOVE)) ||
	    !(flags & (CG_PIN_RO | CG_PIN_RW)) ||
	    (flags & CG_PIN_RO && flags & CG_PIN_RW))
		return -EINVAL;
	if (!len || (start | len) & (CG_PAGE_SIZE - 1))
		return -EINVAL;
	if (start + len < start)
		return -EOVERFLOW;
	if (!cg__mm_covered(mm, start, len))
		return -ENOENT;
	if (!hugetlb_aligned(mm, start, len))
		return -EINVAL;
	if (mm->limits.max_pins && mm->npins >= mm->limits.max_pins)
		return -EDQUOT;
	return mm->pagemap_fd < 0 ? -ESRCH : 0;
}

/* ---- a pin or an unpin, a window at a time ----------------------------- */

/*
 * A pin walks its range a window at a time (2 MiB, or one 1 GiB page):
 * learn, unshare what may be shared, verify, mark, hold the frames.  An
 * unpin walks it to verify, then lets the frames go.  A daemon serves its
 * other clients between windows: in one go, a pin of 1 GiB shared with a
 * child held it 3.6 s, and the commit of a pin, or its unpin, 22-35 ms a
 * GiB.  What a window showed holds until an event that can change it (a
 * fork, or a remap, removal or unmap there) comes between two turns: the
 * walk then starts over, JOB_WALKS times at most.
 */
#define JOB_WALKS 4
/* Chunks of frames let go between two looks at the clock. */
#define RELEASE_CHUNKS 8

enum job_phase { JOB_PIN, JOB_VERIFY, JOB_RELEASE };

struct cg__pin_job {
	enum job_phase phase;
	bool disturbed;		/* an event hit the range since the walk began */
	bool again;		/* once the frames are let go, walk again */
	bool owns_p;		/* p is not (or no longer) in mm->pins */
	bool no_move;		/* CG__PIN_NO_MOVE */
	bool scouting;		/* looking for chunks to move, verifying none */
	unsigned walks;
	uint64_t start, end, pos;
	uint64_t held;		/* the pin being made holds frames up to here */
	uint64_t wu[2];		/* the span to write-unshare: first, end */
	int status;		/* the answer, once known */
	struct cg__pin_result res;
	struct cg__pin *p;	/* the pin being made, or dropped */
};

/* Whether the pin being made is the one that asked what was written. */
static bool asked_by_this_pin(const struct cg__mm *mm)
{
	const struct cg__pin_job *j = mm->pin_job;

	return j && j->start == mm->wu_pin[0] && j->end == mm->wu_pin[1];
}

static bool past(uint64_t until_ns)
{
	return until_ns && cg__now_ns() > until_ns;
}

/*
 * Where the window of [a, end) that starts at a ends: 2 MiB, a 1 GiB page,
 * or HUGETLB_WINDOW of 2 MiB hugetlb pages.  A window costs a learn (a
 * PAGEMAP_SCAN, its scratch) and a time check; 2 MiB of hugetlb is one
 * page, and a window each made those half of a pin of exclusive hugetlb
 * memory.  Four copies of 2 MiB cost about what one window of 4 KiB pages
 * does.
 */
static uint64_t window_end(const struct cg__mm *mm, uint64_t a, uint64_t end)
{
	const struct cg__region *r = cg__mm_find(mm, a);
	uint64_t w = !r || r->kind != CG_RK_HUGETLB ? CG_PMD_SIZE
		     : r->unit_shift > CG_PMD_SHIFT ? 1ULL << r->unit_shift
						    : HUGETLB_WINDOW;
	uint64_t hi = (a & ~(w - 1)) + w;

	if (r && hi > r->start + r->len)
		hi = r->start + r->len;
	return hi < end ? hi : end;
}

/* Whether the pin may have the client move THP chunks in (move.c). */
static bool may_move(const struct cg__mm *mm, const struct cg__pin_job *j)
{
	return !j->no_move && cg__mm_move_usable(mm);
}

/* Begin the walk again: an event came between two windows. */
static int walk_again(struct cg__mm *mm, struct cg__pin_job *j)
{
	if (++j->walks > JOB_WALKS)
		return -EAGAIN;
	if (!cg__mm_covered(mm, j->start, j->end - j->start))
		return -ENOENT;
	j->pos = j->start;
	j->disturbed = false;
	j->scouting = may_move(mm, j);
	j->wu[0] = j->wu[1] = 0;
	return 0;
}

/*
 * The answer is known.  Over (true) at once, or once the frames the pin
 * being made holds are let go.
 */
static bool job_answer(struct cg__pin_job *j, int status)
{
	j->status = status;
	j->again = false;
	j->phase = JOB_RELEASE;
	j->pos = j->start;
	return j->held == j->start;
}

/*
 * Whether the window [lo, hi) is a THP chunk to unshare by a move: one
 * chunk, mapped by one PMD, no pin of ours on it, and shared in the
 * kernel's eyes (a THP we map alone is reused in place, no copy).  One PMD
 * maps it, so its first pagemap entry speaks for all.
 */
static bool move_wanted(struct cg__mm *mm, const struct cg__pin_job *j,
			const struct cg__region *r, uint64_t lo, uint64_t hi)
{
	uint64_t pme;

	if (!may_move(mm, j) || r->kind != CG_RK_THP ||
	    (lo & (CG_PMD_SIZE - 1)) || hi - lo != CG_PMD_SIZE ||
	    cg__mm_move_armed(mm) >= MOVE_CHUNKS * CG_PMD_SIZE ||
	    !cg__region_is_huge(r, lo) || cg__mm_pinned(mm, lo, hi - lo))
		return false;
	/* Mapped once, the common case of a pin asked again: one read. */
	return !cg__pagemap_read(mm->pagemap_fd, lo, 1, &pme) &&
	       (pme & PM_PRESENT) && !(pme & PM_MMAP_EXCLUSIVE) &&
	       cg__mm_pmd_mapped(mm, lo);
}

/*
 * Pin [lo, hi): unshare what may be shared; mark what is exclusive then,
 * unless some unit needs the client's write (j->wu), and hold its frames.
 */
static int pin_window(struct cg__mm *mm, struct cg__pin_job *j, uint64_t lo,
		      uint64_t hi)
{
	struct cg__region *r = cg__mm_find(mm, lo);
	struct units before = { 0 }, after = { 0 }, *now = &before;
	unsigned long huge_copies[2] = { 0, 0 };
	uint64_t *todo = NULL;
	size_t ntodo = 0;
	bool asked = false;
	int ret = r ? cg__mm_learn(mm, r, lo, hi - lo, CG_LEARN_NEW) : -ENOENT;

	/* Chunks armed for a move are handed over before anything else. */
	if (!ret && move_wanted(mm, j, r, lo, hi))
		return cg__mm_move_arm(mm, lo);
	if (!ret && cg__mm_move_armed(mm))
		return WALK_STOP;
	if (!ret)
		ret = collect_units(mm, lo, hi - lo, &before);
	if (!ret)
		ret = read_units(mm, &before);
	if (!ret && !(todo = malloc(before.n * sizeof(*todo))))
		ret = -ENOMEM;
	if (!ret)
		ret = plan_unshare(mm, &before, todo, &ntodo, huge_copies,
				   &j->res.bad_addr);
	if (!ret && ntodo)
		ret = pool_check(huge_copies);
	if (!ret && ntodo && cg__kernel_read_pin_unshares()) {
		now = &after;
		if (cg__mm_fill_usable(mm))
			fill_runs(mm, &before, todo, &ntodo);
		ret = unshare_window(mm, todo, ntodo, lo, hi, now);
	}
	free(todo);
	if (!ret && now->n != before.n) {
		j->res.bad_addr = lo;	/* the regions changed under us */
		ret = -EAGAIN;
	}
	if (!ret)
		ret = ask_write_unshare(mm, now, j->wu, &asked);
	if (!ret && !asked)
		ret = mark_pinned(mm, &before, now, j->p->flags);
	/* A pin that will ask for writes is not recorded: no frames. */
	if (!ret && j->p->framed && !j->wu[1]) {
		ret = frames_take(mm, now);
		j->held = ret ? j->held : hi;
	}
	free(before.v);
	free(after.v);
	return ret;
}

/*
 * Scouting, the walk's first pass where chunks can be moved: arm the
 * window if it is to be moved, but learn, verify, mark and hold nothing
 * yet.  A pin answered with a run to move is asked again once the
 * client has moved it, and walks from its start: verified there and then,
 * every run moved before would be walked again at every later handover (a
 * pin of N runs walked N * N / 2 of them).  Scouted, the windows are
 * verified once, by the walk that follows the last move.
 */
static int scout_window(struct cg__mm *mm, struct cg__pin_job *j, uint64_t lo,
			uint64_t hi)
{
	struct cg__region *r = cg__mm_find(mm, lo);

	if (!r)
		return -ENOENT;
	/*
	 * Not learned here: the walk learns each window once.  A chunk not
	 * learned yet (a lazy registration) is armed by the walk instead.
	 */
	if (move_wanted(mm, j, r, lo, hi))
		return cg__mm_move_arm(mm, lo);
	return cg__mm_move_armed(mm) ? WALK_STOP : 0;
}

/*
 * The walk is over: record the pin, or hand the client the chunks to copy
 * for a move, or else what to write.
 */
static bool pin_over(struct cg__mm *mm, struct cg__pin_job *j, int ret)
{
	if (!ret && cg__mm_move_armed(mm)) {
		/* Counted when handed back: not again by the next walk. */
		j->res.bad_addr = mm->wu_asked[0] = mm->move.start;
		j->res.move_len = mm->wu_asked[1] = cg__mm_move_armed(mm);
		ret = cg__mm_move_hand_over(mm);
		return job_answer(j, ret ? ret : -EAGAIN);
	}
	cg__mm_move_settle(mm);
	if (!ret && j->wu[1]) {
		uint64_t lo, hi;

		/*
		 * Before 5.19 what the last ask had written stays in flight
		 * with what is asked now: trusted by the next walk, untouched.
		 */
		if (cg__mm_write_in_flight(mm, &lo, &hi)) {
			j->wu[0] = lo < j->wu[0] ? lo : j->wu[0];
			j->wu[1] = hi > j->wu[1] ? hi : j->wu[1];
		}
		j->res.bad_addr = mm->wu_asked[0] = j->wu[0];
		j->res.bad_len = mm->wu_asked[1] = j->wu[1] - j->wu[0];
		mm->wu_pin[0] = j->start;
		mm->wu_pin[1] = j->end;
		mm->stats.unshare_writes += j->res.bad_len >> CG_PAGE_SHIFT;
		ret = -EAGAIN;
	}
	if (!ret)
		ret = pins_add(mm, j->p);
	if (!ret) {
		j->owns_p = false;
		j->res.id = j->p->id;
		j->held = j->start;	/* the pin's own now */
	}
	return job_answer(j, ret);
}

static bool pin_some(struct cg__mm *mm, struct cg__pin_job *j,
		     uint64_t until_ns)
{
	int ret = 0;

	if (j->disturbed) {
		/* Let go of what the walk held, then walk again. */
		cg__mm_move_settle(mm);
		j->again = true;
		j->phase = JOB_RELEASE;
		j->pos = j->start;
		return false;
	}
	while (!ret && j->pos < j->end) {
		uint64_t hi = window_end(mm, j->pos, j->end);

		ret = j->scouting ? scout_window(mm, j, j->pos, hi)
				  : pin_window(mm, j, j->pos, hi);
		if (ret == WALK_STOP)
			return pin_over(mm, j, 0);
		j->pos = ret ? j->pos : hi;
		if (!ret && j->scouting && j->pos == j->end) {
			if (cg__mm_move_armed(mm))
				return pin_over(mm, j, 0);
			j->scouting = false;	/* nothing to move: verify */
			j->pos = j->start;
		}
		if (past(until_ns))
			break;
	}
	if (!ret && j->pos < j->end)
		return false;
	/*
	 * Events an ioctl read while it waited on them (a fork's, most
	 * likely) are handled before the pin is recorded, not after.
	 */
	if (!ret && mm->nbacklog)
		cg__mm_service_backlog(mm);
	if (!ret && j->disturbed)
		return pin_some(mm, j, until_ns);
	return pin_over(mm, j, ret);
}

/* The first unit of p in [lo, hi) that was replaced or shared, or 0. */
static uint64_t first_violation(struct cg__mm *mm, const struct cg__pin *p,
				uint64_t lo, uint64_t hi)
{
	struct units u = { 0 };
	struct cg__region *r = NULL;
	uint64_t bad = 0;

	if (collect_units(mm, lo, hi - lo, &u) || read_units(mm, &u)) {
		free(u.v);
		return lo;	/* cannot vouch for it */
	}
	for (size_t i = 0; i < u.n && !bad; i++) {
		uint64_t frame;
		/* Recorded at the first pin of the page, shared by the later. */
		bool same = !p->framed ||
			    (cg__frames_frame(mm->frames, u.v[i].addr, &frame) &&
			     frame == pfn_of(&u.v[i]));

		r = region_of(mm, r, u.v[i].addr);
		if (!r || !(cg__region_get(r, u.v[i].addr) & CG_ST_EXCL) ||
		    !mapped_alone(&u.v[i]) || !same)
			bad = u.v[i].addr;
	}
	free(u.v);
	return bad;
}

/* The verdict is in: drop the pin, and let its frames go. */
static bool unpin_over(struct cg__mm *mm, struct cg__pin_job *j, uint64_t bad)
{
	pins_remove(mm, j->p);
	j->owns_p = true;
	j->res.bad_addr = bad;
	j->held = j->p->framed ? j->end : j->start;
	if (bad)
		mm->stats.pin_violations++;
	return job_answer(j, bad ? -ENOTRECOVERABLE : 0);
}

static bool verify_some(struct cg__mm *mm, struct cg__pin_job *j,
			uint64_t until_ns)
{
	uint64_t bad = 0;

	if (j->disturbed && walk_again(mm, j))
		bad = j->start;	/* cannot vouch for it */
	while (!bad && j->pos < j->end) {
		uint64_t hi = window_end(mm, j->pos, j->end);

		bad = first_violation(mm, j->p, j->pos, hi);
		j->pos = hi;
		if (past(until_ns))
			break;
	}
	if (!bad && j->pos < j->end)
		return false;
	return unpin_over(mm, j, bad ? bad : j->p->violated);
}

static bool release_some(struct cg__mm *mm, struct cg__pin_job *j,
			 uint64_t until_ns)
{
	int ret;

	/*
	 * The pin is off the list: what no other pin covers goes, a chunk at
	 * a time.  Pins of hugetlb are whole pages, so a span never cuts one.
	 */
	for (unsigned n = 1; j->pos < j->held; n++) {
		uint64_t lo, hi, chunk_end;

		cg__mm_unpinned_span(mm, j->pos, j->held, &lo, &hi);
		chunk_end = (lo | (CG_PMD_SIZE - 1)) + 1;
		hi = hi < chunk_end ? hi : chunk_end;
		cg__frames_forget(mm->frames, lo, hi);
		j->pos = hi;
		if (!(n % RELEASE_CHUNKS) && past(until_ns))
			return false;
	}
	j->held = j->start;
	if (!j->again)
		return true;
	j->again = false;
	ret = walk_again(mm, j);
	if (ret)
		return job_answer(j, ret);
	j->phase = JOB_PIN;
	return false;
}

static struct cg__pin_job *job_new(struct cg__mm *mm, enum job_phase phase,
				   struct cg__pin *p)
{
	struct cg__pin_job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->phase = phase;
	j->walks = 1;
	j->p = p;
	j->owns_p = phase == JOB_PIN;	/* a pin joins mm->pins when made */
	j->start = j->pos = j->held = p->start;
	j->end = p->start + p->len;
	mm->pin_job = j;
	return j;
}

static void job_free(struct cg__mm *mm)
{
	if (mm->pin_job->owns_p)
		free(mm->pin_job->p);
	free(mm->pin_job);
	mm->pin_job = NULL;
}

size_t cg__mm_pins_footprint(const struct cg__mm *mm)
{
	return mm->pins_cap * (sizeof(*mm->pins) + sizeof(*mm->pin_spans)) +
	       mm->npins * sizeof(struct cg__pin) +
	       (mm->pin_job ? sizeof(*mm->pin_job) + sizeof(struct cg__pin) : 0) +
	       cg__frames_footprint(mm->frames);
}

int cg__mm_pin_start(struct cg__mm *mm, uint64_t start, uint64_t len,
		     unsigned flags, const char *consumer,
		     struct cg__pin_result *res)
{
	struct cg__pin *p;
	int ret;

	memset(res, 0, sizeof(*res));
	/* A run handed over and never handed back is taken back first. */
	if (!mm->pin_job)
		cg__mm_move_settle(mm);
	if (mm->pin_job || cg__mm_move_armed(mm))
		return -EBUSY;
	/* What the last pin asked the client to write is counted. */
	memcpy(mm->wu_counted, mm->wu_asked, sizeof(mm->wu_counted));
	memset(mm->wu_asked, 0, sizeof(mm->wu_asked));
	ret = check_pin_args(mm, start, len, flags);
	/* Its consumer would write where a snapshot has not saved. */
	if (!ret && flags & CG_PIN_RW && cg__mm_snap_unsaved(mm, start, len))
		ret = -EBUSY;
	if (!ret)
		ret = cg__mm_collect(mm, start, len);
	if (!ret)
		ret = first_hole(mm, start, len, &res->bad_addr);
	if (!ret && res->bad_addr)
		return -EAGAIN;
	if (ret)
		return ret;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->start = start;
	p->len = len;
	p->flags = flags & PIN_FLAGS;
	strncpy(p->consumer, consumer ? consumer : "application",
		sizeof(p->consumer) - 1);
	p->framed = mm->pfn_visible;
	if (!job_new(mm, JOB_PIN, p)) {
		free(p);
		return -ENOMEM;
	}
	mm->pin_job->no_move = flags & CG__PIN_NO_MOVE;
	mm->pin_job->scouting = may_move(mm, mm->pin_job);
	return 0;
}

int cg__mm_unpin_start(struct cg__mm *mm, uint64_t id,
		       struct cg__pin_result *res)
{
	ssize_t i = pin_index(mm, id);

	memset(res, 0, sizeof(*res));
	if (mm->pin_job)
		return -EBUSY;
	if (i < 0)
		return -ENOENT;
	if (!job_new(mm, JOB_VERIFY, mm->pins[i]))
		return -ENOMEM;
	mm->pin_job->res.id = id;
	/* Nothing to look with: what the events showed is all there is. */
	if (mm->pagemap_fd < 0)
		mm->pin_job->pos = mm->pin_job->end;
	return 0;
}

int cg__mm_pin_step(struct cg__mm *mm, struct cg__pin_result *res,
		    uint64_t until_ns)
{
	struct cg__pin_job *j = mm->pin_job;
	bool over;
	int ret;

	if (!j)
		return -EINVAL;
	do
		over = j->phase == JOB_PIN      ? pin_some(mm, j, until_ns)
		       : j->phase == JOB_VERIFY ? verify_some(mm, j, until_ns)
						: release_some(mm, j, until_ns);
	while (!over && !past(until_ns));
	if (!over)
		return 1;
	*res = j->res;
	ret = j->status;
	job_free(mm);
	return ret;
}

void cg__mm_pin_disturbed(struct cg__mm *mm, uint64_t start, uint64_t len)
{
	struct cg__pin_job *j = mm->pin_job;

	if (j && start < j->end && (start >= j->start || len > j->start - start))
		j->disturbed = true;
	/* A fork made what the client wrote read-only again, say. */
	cg__mm_write_distrust(mm, start, len);
}

void cg__mm_write_distrust(struct cg__mm *mm, uint64_t start, uint64_t len)
{
	uint64_t lo, hi;

	if (!cg__mm_write_in_flight(mm, &lo, &hi) || start >= hi ||
	    (start < lo && len <= lo - start))
		return;
	mm->wu_asked[1] = 0;
	mm->wu_pin[0] = mm->wu_pin[1] = 0;
}

static int run_job(struct cg__mm *mm, struct cg__pin_result *res)
{
	int ret;

	while ((ret = cg__mm_pin_step(mm, res, 0)) > 0)
		;
	return ret;
}

int cg__mm_pin(struct cg__mm *mm, uint64_t start, uint64_t len, unsigned flags,
	       const char *consumer, struct cg__pin_result *res)
{
	int ret = cg__mm_pin_start(mm, start, len, flags, consumer, res);

	return ret ? ret : run_job(mm, res);
}

int cg__mm_unpin(struct cg__mm *mm, uint64_t id, struct cg__pin_result *res)
{
	int ret = cg__mm_unpin_start(mm, id, res);

	return ret ? ret : run_job(mm, res);
}

/* ---- what faults and events tell of pins -------------------------------- */

/*
 * Whether the kernel maps the page of pme shared, so that a write replaces
 * it.  Bit 56 cannot say for a 1 GiB page: on 6.18 it reads 0 for one
 * mapped once and PageAnonExclusive (measured without cowguard: 8 runs of
 * 40 after an unshare).  There only kpageflags (root) can tell.
 */
static bool kernel_shared(const struct cg__mm *mm, const struct cg__region *r,
			  uint64_t pme)
{
	if (!(pme & PM_PRESENT))
		return false;
	if (r && r->kind == CG_RK_HUGETLB && r->unit_shift == CG_PUD_SHIFT)
		return mm->kpageflags_fd >= 0 && mm->pfn_visible &&
		       (pme & PM_PFN_MASK) && !cg__kernel_exclusive(mm, pme);
	return !(pme & PM_MMAP_EXCLUSIVE);
}

void cg__mm_pin_fault(struct cg__mm *mm, uint64_t addr)
{
	uint64_t pme;

	if (!mm->npins || !cg__mm_pinned(mm, addr, CG_PAGE_SIZE) ||
	    mm->pagemap_fd < 0 ||
	    cg__pagemap_read(mm->pagemap_fd, addr, 1, &pme))
		return;
	/* Mapped shared while pinned: this write will replace the page. */
	if (kernel_shared(mm, cg__mm_find(mm, addr), pme))
		for (size_t i = 0; i < mm->npins; i++) {
			struct cg__pin *p = mm->pins[i];

			if (addr >= p->start && addr - p->start < p->len &&
			    !p->violated)
				p->violated = addr;
		}
}

void cg__mm_pins_violated(struct cg__mm *mm, uint64_t start, uint64_t len)
{
	for (size_t i = 0; i < mm->npins; i++) {
		struct cg__pin *p = mm->pins[i];

		if (p->start < start + len && start < p->start + p->len &&
		    !p->violated)
			p->violated = p->start > start ? p->start : start;
	}
}

uint32_t cg__mm_pin_count(const struct cg__mm *mm, uint64_t addr)
{
	uint32_t n = 0;

	for (size_t i = 0; i < mm->npins; i++)
		if (addr >= mm->pins[i]->start &&
		    addr - mm->pins[i]->start < mm->pins[i]->len)
			n++;
	return n;
}

static int cmp_span(const void *a, const void *b)
{
	const struct cg__span *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

const struct cg__span *cg__mm_pin_spans(struct cg__mm *mm, size_t *n)
{
	struct cg__span *v = mm->pin_spans;
	size_t m = 0;

	if (mm->pin_spans_stale) {
		for (size_t i = 0; i < mm->npins; i++)
			v[i] = (struct cg__span){ mm->pins[i]->start,
						  mm->pins[i]->start +
							  mm->pins[i]->len };
		if (mm->npins)
			qsort(v, mm->npins, sizeof(*v), cmp_span);
		for (size_t i = 0; i < mm->npins; i++) {
			if (m && v[i].start <= v[m - 1].end)
				v[m - 1].end = v[i].end > v[m - 1].end
						       ? v[i].end : v[m - 1].end;
			else
				v[m++] = v[i];
		}
		mm->npin_spans = m;
		mm->pin_spans_stale = false;
	}
	*n = mm->npin_spans;
	return v;
}

/* The index of the first span of mm that ends after addr, or n. */
static size_t span_after(struct cg__mm *mm, uint64_t addr,
			 const struct cg__span **v, size_t *n)
{
	size_t lo = 0, hi;

	*v = cg__mm_pin_spans(mm, n);
	for (hi = *n; lo < hi;) {
		size_t mid = lo + (hi - lo) / 2;

		if ((*v)[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

bool cg__mm_pinned(struct cg__mm *mm, uint64_t start, uint64_t len)
{
	const struct cg__span *v;
	size_t n, i = span_after(mm, start, &v, &n);

	return i < n && v[i].start < start + len;
}

void cg__mm_unpinned_span(struct cg__mm *mm, uint64_t start, uint64_t end,
			  uint64_t *lo, uint64_t *hi)
{
	const struct cg__span *v;
	size_t n, i = span_after(mm, start, &v, &n);
	uint64_t a = start;

	/* Spans are merged: past the one covering a, a is uncovered. */
	if (i < n && v[i].start <= a)
		a = v[i++].end;
	*lo = a < end ? a : end;
	*hi = i < n && v[i].start < end ? v[i].start : end;
	if (*lo == end)
		*hi = end;
}

void cg__mm_unheld_span(struct cg__mm *mm, uint64_t start, uint64_t end,
			uint64_t *lo, uint64_t *hi)
{
	uint64_t f0, f1;
	bool flight = cg__mm_write_in_flight(mm, &f0, &f1);

	for (uint64_t a = start;; a = f1) {
		cg__mm_unpinned_span(mm, a, end, lo, hi);
		if (!flight || *lo >= *hi || f1 <= *lo || *hi <= f0)
			return;
		if (f0 > *lo) {
			*hi = f0;
			return;
		}
		if (f1 >= end) {
			*lo = *hi = end;
			return;
		}
	}
}

void cg__mm_pins_free(struct cg__mm *mm)
{
	if (mm->pin_job)
		job_free(mm);
	for (size_t i = 0; i < mm->npins; i++)
		free(mm->pins[i]);
	free(mm->pins);
	free(mm->pin_spans);
	mm->pin_spans = NULL;
	mm->npin_spans = 0;
	cg__frames_free(&mm->frames);
	mm->pins = NULL;
	mm->npins = mm->pins_cap = 0;
}
