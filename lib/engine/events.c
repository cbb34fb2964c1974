// SPDX-License-Identifier: MIT
/*
 * Servicing a userfaultfd: one dispatch over the message types, one small
 * function each (the shape of CRIU's handle_uffd_event()).
 *
 * Within a batch, events are applied before faults.  The kernel hands out
 * pending faults before events, so a fault read together with a fork event
 * may have hit a page the fork already shared: resolving it after the fork
 * is applied unshares that page instead of trusting pre-fork state.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "kernel/clock.h"
#include "kernel/kernel.h"
#include "kernel/procfs.h"
#include "kernel/uffd.h"
#include "pins.h"

#define BATCH 64
#define BATCHES_PER_SERVICE 16	/* then yield to other clients */
#define SERVICE_NS (1000 * 1000)	/* or after the batch that ends past it */

struct range {
	uint64_t start, len;
};

static int cut(struct cg__mm *mm, uint64_t start, uint64_t len, uint64_t dst,
	       bool keep);

/*
 * A range to unprotect (and so wake) once the batch is decided, and the
 * faulting unit in it: the range is wider where the fault took its
 * neighbours along (resolve_around()).
 */
struct resolved {
	struct range r, unit;
	uint32_t stamp;	/* the lifts when it was read (cg__mm_lift_stamp()) */
};

struct resolution {
	struct resolved v[BATCH];
	size_t n;
};

static void resolve_add(struct resolution *res, const struct uffd_msg *msg,
			uint64_t start, uint64_t len, uint64_t ustart,
			uint64_t ulen)
{
	res->v[res->n++] = (struct resolved){ { start, len }, { ustart, ulen },
					      msg->reserved3 };
}

static int cmp_resolved(const void *a, const void *b)
{
	const struct resolved *x = a, *y = b;

	return x->r.start < y->r.start ? -1 : x->r.start > y->r.start;
}

/*
 * The merged range [start, end) of v[first, last) was refused.  Before
 * 6.5 UFFDIO_WRITEPROTECT takes a range within one VMA (find_dst_vma();
 * -ENOENT), and a pin's MADV_DONTFORK or any madvise cuts VMAs inside a
 * region: a window, or faults on both sides of such a cut, crossed one,
 * and the writers were never woken (a stress test's daemon cases hung in
 * the 6.1 guest).  Each range is tried alone, a window refused still is
 * narrowed to its faulting unit, and every writer in the range is woken
 * whatever happened: one still protected faults again.
 */
static int resolve_apart(struct cg__mm *mm, const struct resolved *v,
			 size_t first, size_t last, uint64_t start, uint64_t end)
{
	for (size_t k = first; k < last; k++) {
		const struct resolved *x = &v[k];
		int ret = cg__mm_ioctl_wp(mm, x->r.start, x->r.len, false);

		if (ret && ret != -ETIME && x->r.len != x->unit.len)
			cg__mm_ioctl_wp(mm, x->unit.start, x->unit.len, false);
	}
	return cg__uffd_wake(mm->uffd, start, end - start);
}

static int resolve_flush(struct cg__mm *mm, struct resolution *res)
{
	size_t i = 0;
	int ret = 0;

	qsort(res->v, res->n, sizeof(*res->v), cmp_resolved);
	while (i < res->n) {
		size_t first = i;
		uint64_t start = res->v[i].r.start, end = start + res->v[i].r.len;
		int r;

		for (i++; i < res->n && res->v[i].r.start <= end; i++)
			if (res->v[i].r.start + res->v[i].r.len > end)
				end = res->v[i].r.start + res->v[i].r.len;
		r = cg__mm_ioctl_wp(mm, start, end - start, false);
		for (size_t k = first; !r && k < i; k++)
			r = cg__mm_ioctl_unprotect_faulted(mm, res->v[k].unit.start,
							   res->v[k].unit.len,
							   res->v[k].stamp);
		/*
		 * Events kept coming: wake the writers all the same.  Still
		 * protected, they fault again, and we try again then.
		 */
		if (r == -ETIME)
			r = cg__uffd_wake(mm->uffd, start, end - start);
		else if (r)
			r = resolve_apart(mm, res->v, first, i, start, end);
		ret = ret ? ret : r;
	}
	res->n = 0;
	return ret;
}

/* Exclusive, protected, unpinned: unprotecting it hides no shared page. */
static bool around_ok(struct cg__mm *mm, const struct cg__region *r,
		      uint64_t addr)
{
	unsigned want = CG_ST_PRESENT | CG_ST_EXCL | CG_ST_WP;

	return (cg__region_get(r, addr) & want) == want &&
	       !cg__mm_pinned(mm, addr, CG_PAGE_SIZE) &&
	       !cg__mm_snap_unsaved(mm, addr, CG_PAGE_SIZE);
}

/*
 * Widen the resolution of a write fault on the 4 KiB page [*start, +*len)
 * to the pages around it, within mm->wp_around, that a write would only
 * reuse: known exclusive, protected and unpinned.  They are unprotected
 * and called dirty (maybe written: a write there is no longer seen).  A
 * sequential writer then faults once a window; a shared page, a pinned
 * one, a hole or another region ends the widening, so what a write there
 * would change is still seen.
 */
static int resolve_around(struct cg__mm *mm, struct cg__region *r,
			  uint64_t *start, uint64_t *len)
{
	uint64_t lo = *start & ~(mm->wp_around - 1), hi = lo + mm->wp_around;
	uint64_t a = *start, b = *start + *len;
	int ret = 0;

	if (mm->wp_around <= CG_PAGE_SIZE || *len != CG_PAGE_SIZE)
		return 0;
	lo = lo > r->start ? lo : r->start;
	hi = hi < r->start + r->len ? hi : r->start + r->len;
	while (a > lo && around_ok(mm, r, a - CG_PAGE_SIZE))
		a -= CG_PAGE_SIZE;
	while (b < hi && around_ok(mm, r, b))
		b += CG_PAGE_SIZE;
	if (a < *start)
		ret = cg__region_update(r, a, *start - a, CG_ST_WP, CG_ST_DIRTY);
	if (!ret && b > *start + *len)
		ret = cg__region_update(r, *start + *len, b - *start - *len,
					CG_ST_WP, CG_ST_DIRTY);
	if (ret)
		return ret;
	*start = a;
	*len = b - a;
	return 0;
}

static int handle_fault(struct cg__mm *mm, const struct uffd_msg *msg,
			struct resolution *res)
{
	uint64_t addr = msg->arg.pagefault.address & ~(CG_PAGE_SIZE - 1);
	struct cg__region *r = cg__mm_find(mm, addr);
	uint64_t ustart, ulen, wstart, wlen;
	unsigned st;
	int ret;

	mm->stats.wp_faults++;
	if (!r) {
		/* Registered by the kernel but not by us: just let it go. */
		resolve_add(res, msg, addr, CG_PAGE_SIZE, addr, CG_PAGE_SIZE);
		return 0;
	}
	/* Not saved yet: woken, to fault again, once it is. */
	if (cg__mm_snap_parks(mm, r, addr))
		return 0;
	ret = cg__mm_follow_split(mm, r, addr);
	if (ret)
		return ret;
	st = cg__region_get(r, addr);
	cg__mm_pin_fault(mm, addr);
	/* Before 5.19 the read does nothing: the write itself will copy. */
	if (!(st & CG_ST_EXCL) && cg__kernel_read_pin_unshares()) {
		ret = cg__unshare(mm, &addr, 1);
		if (ret && ret != -ESRCH)
			return ret;
		/* Unsharing a shared PMD-mapped THP splits it: follow. */
		ret = cg__mm_follow_split(mm, r, addr);
		if (ret)
			return ret;
	} else if (!(st & CG_ST_EXCL) && r->kind == CG_RK_THP &&
		   cg__region_is_huge(r, addr)) {
		/*
		 * The write will copy one 4 KiB page of a THP still shared,
		 * after splitting its PMD: only that page becomes exclusive
		 * (conservative where the kernel reuses the THP whole).
		 * Marking the whole unit lied under COWGUARD_KERNEL=pre-5.19
		 * on 6.18 (511 unsafe pages in the audit).
		 */
		ret = cg__region_set_huge(r, addr, false, st);
		if (ret)
			return ret;
	}
	cg__region_unit(r, addr, &ustart, &ulen);
	if (!(st & CG_ST_EXCL))
		mm->stats.pages_made_exclusive += ulen >> CG_PAGE_SHIFT;
	ret = cg__region_update(r, ustart, ulen, CG_ST_WP,
				CG_ST_PRESENT | CG_ST_EXCL | CG_ST_DIRTY);
	wstart = ustart;
	wlen = ulen;
	if (!ret)
		ret = resolve_around(mm, r, &wstart, &wlen);
	if (ret)
		return ret;
	resolve_add(res, msg, wstart, wlen, ustart, ulen);
	return 0;
}

/* Shared by fork: [start, end) of r, which no pin covers. */
static int share_range(struct cg__mm *mm, struct cg__region *r, uint64_t start,
		       uint64_t end)
{
	struct cg__runs runs;
	int ret;

	if (start >= end)
		return 0;
	ret = cg__region_collect(r, start, end - start, CG_ST_PRESENT,
				 CG_ST_PRESENT, &runs);
	for (size_t i = 0; !ret && i < runs.n; i++)
		mm->stats.pages_shared_by_fork += runs.v[i].len >> CG_PAGE_SHIFT;
	cg__runs_free(&runs);
	return ret ? ret : cg__region_update(r, start, end - start, CG_ST_EXCL, 0);
}

/*
 * After a fork every populated page may be shared, on both sides, except
 * pinned ones: a pin's consumer holds a FOLL_PIN (fork copies those pages
 * for the child) or its range is MADV_DONTFORK (the child gets none).
 * Pages not seen yet are learned later, as shared (lib/engine/learn.c).  Regions
 * and the pins' spans are walked together, once.
 */
static int mark_shared(struct cg__mm *mm)
{
	size_t npinned, k = 0;
	const struct cg__span *pinned = cg__mm_pin_spans(mm, &npinned);
	int ret = 0;

	for (size_t i = 0; i < mm->nregions && !ret; i++) {
		struct cg__region *r = mm->regions[i];
		uint64_t a = r->start, end = r->start + r->len;

		cg__mm_unlearn_forked(r);
		while (k < npinned && pinned[k].end <= a)
			k++;
		for (size_t j = k; !ret && a < end; j++) {
			bool in = j < npinned && pinned[j].start < end;

			ret = share_range(mm, r, a, in ? pinned[j].start : end);
			a = !in ? end : pinned[j].end > a ? pinned[j].end : a;
		}
	}
	return ret;
}

/* After a fork: every page the kernel maps, seen yet or not. */
static int protect_all(struct cg__mm *mm)
{
	int ret = 0;

	for (size_t i = 0; i < mm->nregions && !ret; i++)
		ret = cg__mm_protect_mapped(mm, mm->regions[i]);
	return ret;
}

/*
 * The parent after a fork.  With asynchronous protection, pages written
 * since the last collect are judged in the same scan that protects them
 * (lib/engine/written.c).
 */
static int protect_parent(struct cg__mm *mm)
{
	int ret = 0;

	if (!mm->wp_async || mm->pagemap_fd < 0)
		return protect_all(mm);
	for (size_t i = 0; i < mm->nregions && !ret; i++)
		ret = cg__mm_protect_forked(mm, mm->regions[i]);
	return ret;
}

static struct cg__mm *clone_child(struct cg__mm *parent, int ufd)
{
	struct cg__mm *child = calloc(1, sizeof(*child));

	if (!child)
		return NULL;
	cg__mm_init(child, ufd, parent->features, 0, -1, parent->kpageflags_fd);
	child->limits = parent->limits;
	child->ioctl_patience_ns = parent->ioctl_patience_ns;
	for (size_t i = 0; i < parent->nregions; i++) {
		struct cg__region *r = cg__region_clone(parent->regions[i]);

		if (!r || cg__mm_insert(child, r)) {
			cg__region_free(r);
			cg__mm_destroy(child);
			free(child);
			return NULL;
		}
	}
	return child;
}

/*
 * The child's state, cloned from ours after mark_shared(): without what the
 * parent kept MADV_DONTFORK while pinned (the child has no mapping there),
 * with every present page write-protected.  NULL when any step failed: a
 * child we cannot vouch for is not tracked at all.
 */
static struct cg__mm *fork_child(struct cg__mm *mm, int ufd, int *err)
{
	struct cg__mm *child = clone_child(mm, ufd);
	int ret = child ? 0 : -ENOMEM;

	for (size_t i = 0; !ret && i < mm->npins; i++)
		if (!(mm->pins[i]->flags & CG_PIN_FOLL_PIN))
			ret = cut(child, mm->pins[i]->start, mm->pins[i]->len,
				  0, false);
	/* The child's page tables kept the uffd-wp bits the parent had. */
	if (!ret)
		ret = protect_all(child);
	if (ret && child) {
		child->uffd = -1;	/* the caller closes it */
		cg__mm_destroy(child);
		free(child);
		child = NULL;
	}
	*err = ret;
	return child;
}

static int handle_fork(struct cg__mm *mm, const struct uffd_msg *msg)
{
	int ufd = (int)msg->arg.fork.ufd;
	struct cg__mm *child = NULL;
	int ret, pret;

	mm->stats.fork_events++;
	/*
	 * The child's uffd takes the flags its parent's was created with, not
	 * ones set later by fcntl: make sure a read never blocks our loop.
	 */
	fcntl(ufd, F_SETFL, fcntl(ufd, F_GETFL) | O_NONBLOCK);
	ret = mark_shared(mm);
	/*
	 * The child copies our state before the writes since the last look
	 * are judged (which page was copied for whom is ours to learn), but
	 * after they are counted dirty.
	 */
	if (!ret)
		ret = cg__mm_mark_written_dirty(mm);
	/* Over its owner's bounds: the child goes untracked, uncopied. */
	if (!ret && (!mm->may_adopt || !mm->may_adopt(mm, mm->adopt_arg)))
		child = fork_child(mm, ufd, &ret);
	if (!child) {
		/*
		 * Closing the child's uffd unregisters its memory: the child
		 * runs on untracked, and claims nothing.
		 */
		close(ufd);
	} else {
		child->stats.fork_events = 0;
		child->stats.pages_shared_by_fork = mm->stats.pages_shared_by_fork;
		if (mm->adopt) {
			mm->adopt(mm, child, mm->adopt_arg);
		} else {
			cg__mm_destroy(child);
			free(child);
		}
	}
	pret = protect_parent(mm);
	return ret ? ret : pret;
}

/* Regions taken out by an mremap, put back at their new place at the end. */
struct moved {
	struct cg__region **v;
	size_t n, cap;
};

static int moved_add(struct moved *m, struct cg__region *r)
{
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 16;
		struct cg__region **v = realloc(m->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		m->v = v;
		m->cap = cap;
	}
	m->v[m->n++] = r;
	return 0;
}

/*
 * Put the moved regions back.  Each lands where the kernel moved its pages;
 * one that finds a region there already (which the kernel could not have
 * left) or no memory is dropped: its pages are then untracked, which the
 * error returned says.
 */
static int moved_insert(struct cg__mm *mm, struct moved *m)
{
	int ret = 0;

	for (size_t i = 0; i < m->n; i++) {
		struct cg__region *r = m->v[i];

		if (cg__mm_find(mm, r->start)) {
			cg__region_free(r);
			ret = ret ? ret : -EEXIST;
		} else if (cg__mm_insert(mm, r)) {
			cg__region_free(r);
			ret = ret ? ret : -ENOMEM;
		}
	}
	free(m->v);
	return ret;
}

/* Insert a piece kept from a cut region; a failure drops its state. */
static int keep_piece(struct cg__mm *mm, struct cg__region *piece)
{
	if (!piece)
		return -ENOMEM;
	if (cg__mm_insert(mm, piece)) {
		cg__region_free(piece);
		return -ENOMEM;
	}
	return 0;
}

/*
 * Take [start, start+len) out of every region.  With keep, the taken
 * state is re-inserted at dst (mremap); otherwise it is dropped (munmap).
 * Every region is cut even after a failure: the range is gone from the
 * kernel either way.  Returns the first error: state that could not be
 * kept (-ENOMEM), so that the caller knows pages went untracked.
 */
static int cut(struct cg__mm *mm, uint64_t start, uint64_t len, uint64_t dst,
	       bool keep)
{
	struct moved moved = { 0 };
	uint64_t end = start + len;
	int ret = 0, r2;

	for (;;) {
		struct cg__region *r = NULL, *m;
		uint64_t lo, hi;

		for (size_t i = 0; i < mm->nregions; i++)
			if (mm->regions[i]->start < end &&
			    mm->regions[i]->start + mm->regions[i]->len > start) {
				r = mm->regions[i];
				break;
			}
		if (!r)
			break;
		lo = r->start > start ? r->start : start;
		hi = r->start + r->len < end ? r->start + r->len : end;
		cg__mm_remove(mm, r);
		if (lo > r->start) {
			r2 = keep_piece(mm, cg__region_extract(r, r->start,
							       lo - r->start,
							       r->start));
			ret = ret ? ret : r2;
		}
		if (hi < r->start + r->len) {
			r2 = keep_piece(mm, cg__region_extract(r, hi,
							       r->start + r->len - hi,
							       hi));
			ret = ret ? ret : r2;
		}
		if (keep) {
			m = cg__region_extract(r, lo, hi - lo, lo - start + dst);
			r2 = m ? moved_add(&moved, m) : -ENOMEM;
			if (r2)
				cg__region_free(m);
			ret = ret ? ret : r2;
		}
		cg__region_free(r);
	}
	r2 = moved_insert(mm, &moved);
	return ret ? ret : r2;
}

/*
 * A protection aimed at the old place while the move was pending missed
 * its pages, and asynchronous protection would read such a page as
 * written (lib/engine/written.c): at the new place, what was written is
 * judged by the kernel, and the rest protected again.
 */
static int protect_moved(struct cg__mm *mm, uint64_t to, uint64_t len)
{
	int ret = 0;

	if (mm->pagemap_fd < 0)
		return 0;
	for (size_t i = 0; i < mm->nregions && !ret; i++) {
		struct cg__region *r = mm->regions[i];

		if (r->start < to + len && r->start + r->len > to)
			ret = cg__mm_judge_moved(mm, r, to, len);
	}
	return ret;
}

static int handle_remap(struct cg__mm *mm, const struct uffd_msg *msg)
{
	uint64_t from = msg->arg.remap.from, to = msg->arg.remap.to;
	int ret;

	mm->stats.remaps++;
	if (from == to)
		return 0;
	ret = cut(mm, from, msg->arg.remap.len, to, true);
	if (!ret && mm->wp_async)
		ret = protect_moved(mm, to, msg->arg.remap.len);
	return ret;
}

static int handle_remove(struct cg__mm *mm, const struct uffd_msg *msg)
{
	uint64_t start = msg->arg.remove.start, end = msg->arg.remove.end;
	int ret = 0;

	mm->stats.removals++;
	cg__mm_pins_violated(mm, start, end - start);
	for (size_t i = 0; i < mm->nregions && !ret; i++) {
		struct cg__region *r = mm->regions[i];
		uint64_t splits = r->splits;

		/*
		 * MADV_FREE raises this event too and leaves the pages mapped
		 * until reclaim: keep what we knew of them (exclusive, dirty)
		 * for learning, should they be seen again (lib/engine/learn.c).
		 */
		if (r->start < end && r->start + r->len > start)
			ret = cg__region_removed(r, start, end - start);
		/* Removing part of a PMD-mapped THP splits it: followed. */
		mm->stats.thp_splits += r->splits - splits;
	}
	return ret;
}

static int handle_unmap(struct cg__mm *mm, const struct uffd_msg *msg)
{
	mm->stats.unmaps++;
	return cut(mm, msg->arg.remove.start,
		   msg->arg.remove.end - msg->arg.remove.start, 0, false);
}

/* What an event may have changed of a pin in progress (lib/engine/pins.c). */
static void disturb_pin_job(struct cg__mm *mm, const struct uffd_msg *msg)
{
	switch (msg->event) {
	case UFFD_EVENT_FORK:
		cg__mm_pin_disturbed(mm, 0, UINT64_MAX);
		break;
	case UFFD_EVENT_REMAP:
		cg__mm_pin_disturbed(mm, msg->arg.remap.from, msg->arg.remap.len);
		cg__mm_pin_disturbed(mm, msg->arg.remap.to, msg->arg.remap.len);
		break;
	case UFFD_EVENT_REMOVE:
	case UFFD_EVENT_UNMAP:
		cg__mm_pin_disturbed(mm, msg->arg.remove.start,
				     msg->arg.remove.end - msg->arg.remove.start);
		break;
	}
}

/* Memory a snapshot has not saved yet, gone or moved, tears it. */
static void disturb_snapshot(struct cg__mm *mm, const struct uffd_msg *msg)
{
	if (msg->event == UFFD_EVENT_REMAP)
		cg__mm_snap_disturbed(mm, msg->arg.remap.from,
				      msg->arg.remap.len);
	else if (msg->event == UFFD_EVENT_REMOVE ||
		 msg->event == UFFD_EVENT_UNMAP)
		cg__mm_snap_disturbed(mm, msg->arg.remove.start,
				      msg->arg.remove.end -
					      msg->arg.remove.start);
}

static int handle_event(struct cg__mm *mm, const struct uffd_msg *msg)
{
	disturb_pin_job(mm, msg);
	disturb_snapshot(mm, msg);
	switch (msg->event) {
	case UFFD_EVENT_FORK:
		return handle_fork(mm, msg);
	case UFFD_EVENT_REMAP:
		return handle_remap(mm, msg);
	case UFFD_EVENT_REMOVE:
		return handle_remove(mm, msg);
	case UFFD_EVENT_UNMAP:
		return handle_unmap(mm, msg);
	}
	return 0;
}

/*
 * A fault we could not follow: wake its thread anyway, and claim nothing
 * for the page (maybe-shared, unprotected), so no write there is trusted.
 */
static void fault_failed(struct cg__mm *mm, const struct uffd_msg *msg,
			 struct resolution *res)
{
	uint64_t addr = msg->arg.pagefault.address & ~(CG_PAGE_SIZE - 1);
	struct cg__region *r = cg__mm_find(mm, addr);
	uint64_t ustart = addr, ulen = CG_PAGE_SIZE;

	if (r) {
		cg__region_unit(r, addr, &ustart, &ulen);
		cg__region_update(r, ustart, ulen, CG_ST_EXCL | CG_ST_WP, 0);
	}
	resolve_add(res, msg, ustart, ulen, ustart, ulen);
}

static int handle_batch(struct cg__mm *mm, const struct uffd_msg *msgs,
			size_t n)
{
	struct resolution res = { .n = 0 };
	int ret = 0, r;

	/*
	 * Every message is handled whatever failed before it: these were read
	 * off the uffd, and a fault left unresolved is a thread blocked for
	 * good.  The first error is returned.
	 */
	for (size_t i = 0; i < n; i++)
		if (msgs[i].event != UFFD_EVENT_PAGEFAULT) {
			r = handle_event(mm, &msgs[i]);
			ret = ret ? ret : r;
		}
	for (size_t i = 0; i < n; i++)
		if (msgs[i].event == UFFD_EVENT_PAGEFAULT &&
		    cg__mm_move_holds(mm, msgs[i].arg.pagefault.address)) {
			/*
			 * Read before its chunk was handed over for a move;
			 * the handover woke the thread.  Nothing there is ours
			 * to resolve: an unprotect would aim at the protection
			 * the client's own uffd puts there while it copies,
			 * and a write would land in the page it then drops.
			 */
		} else if (msgs[i].event == UFFD_EVENT_PAGEFAULT &&
		    !(msgs[i].arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP)) {
			/*
			 * cowguard registers MODE_WP only: the client added
			 * modes through the uffd it kept.  Resolving such a
			 * fault as ours would only raise it again, forever.
			 */
			mm->tampered = CG__TAMPERED_MODES;
		} else if (msgs[i].event == UFFD_EVENT_PAGEFAULT) {
			r = handle_fault(mm, &msgs[i], &res);
			if (r)
				fault_failed(mm, &msgs[i], &res);
			ret = ret ? ret : r;
		}
	/* Always wake what was decided, even after an error. */
	if (res.n) {
		int wret = resolve_flush(mm, &res);

		ret = ret ? ret : wret;
	}
	return ret;
}

/* Fill msgs from the backlog first, then from the uffd. */
static ssize_t next_batch(struct cg__mm *mm, struct uffd_msg *msgs)
{
	ssize_t n;

	if (mm->nbacklog) {
		size_t k = mm->nbacklog < BATCH ? mm->nbacklog : BATCH;

		memcpy(msgs, mm->backlog, k * sizeof(*msgs));
		memmove(mm->backlog, mm->backlog + k,
			(mm->nbacklog - k) * sizeof(*msgs));
		mm->nbacklog -= k;
		return (ssize_t)k;
	}
	n = cg__uffd_read(mm->uffd, msgs, BATCH * sizeof(*msgs));
	if (n == -EPERM)
		mm->tampered = CG__TAMPERED_BLOCKING;
	if (n <= 0)
		return n;
	cg__mm_lift_stamp(mm, msgs, (size_t)n / sizeof(*msgs));
	return n / (ssize_t)sizeof(*msgs);
}

int cg__mm_service(struct cg__mm *mm)
{
	uint64_t until = cg__now_ns() + SERVICE_NS;
	struct uffd_msg msgs[BATCH];
	int handled = 0, first_err = 0;

	/*
	 * A few batches a call, for 1 ms at most, from the backlog first:
	 * handling one can read more into it (an ioctl retried while a fork
	 * is raised), and a client forking without pause fed it faster than
	 * it was emptied (a victim waited 6.6 s behind one holding 4096 pins,
	 * whose forks take 20 ms each).  What is left waits for the next
	 * call: cg__mm_pending().  A failed batch does not stop the next: the
	 * first error is returned.
	 */
	for (int b = 0; b < BATCHES_PER_SERVICE && (!b || cg__now_ns() < until);
	     b++) {
		ssize_t n = next_batch(mm, msgs);
		int ret;

		if (n < 0 && !first_err)
			first_err = (int)n;
		if (n <= 0)
			break;
		ret = handle_batch(mm, msgs, (size_t)n);
		if (ret < 0 && !first_err)
			first_err = ret;
		handled += (int)n;
	}
	return first_err ? first_err : handled;
}

bool cg__mm_pending(const struct cg__mm *mm)
{
	return mm->nbacklog != 0;
}

void cg__mm_service_backlog(struct cg__mm *mm)
{
	if (mm->nbacklog)
		cg__mm_service(mm);
}

int cg__mm_fork_prepare(struct cg__mm *mm)
{
	int ret = 0;

	if (!mm->wp_async || mm->pagemap_fd < 0)
		return cg__mm_learn_and_protect_all(mm);
	/* Protected in the scan that reads what was written: none is missed. */
	for (size_t i = 0; i < mm->nregions && !ret; i++) {
		struct cg__region *r = mm->regions[i];

		ret = cg__mm_learn(mm, r, r->start, r->len, CG_LEARN_NEW);
		if (!ret)
			ret = cg__mm_protect_collected(mm, r);
	}
	return ret;
}

int cg__mm_fork_parent(struct cg__mm *mm)
{
	int ret;

	mm->stats.fork_events++;
	cg__mm_pin_disturbed(mm, 0, UINT64_MAX);
	ret = mark_shared(mm);
	return ret ? ret : protect_parent(mm);
}
