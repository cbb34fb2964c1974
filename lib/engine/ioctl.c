// SPDX-License-Identifier: MIT
/* uffd ioctls on a tracked mm, retried across pending events. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "kernel/clock.h"
#include "kernel/compat.h"
#include "kernel/kernel.h"
#include "kernel/procfs.h"
#include "kernel/uffd.h"
#include "pins.h"

/* An event's originator runs on after we read it; give it that long. */
#define RETRY_LIMIT_NS (2ULL * 1000 * 1000 * 1000)

static int backlog_push(struct cg__mm *mm, const struct uffd_msg *msgs,
			size_t n)
{
	if (mm->nbacklog + n > mm->backlog_cap) {
		size_t cap = (mm->backlog_cap + n) * 2;
		struct uffd_msg *b = realloc(mm->backlog, cap * sizeof(*b));

		if (!b)
			return -ENOMEM;
		mm->backlog = b;
		mm->backlog_cap = cap;
	}
	memcpy(&mm->backlog[mm->nbacklog], msgs, n * sizeof(*msgs));
	mm->nbacklog += n;
	return 0;
}

/* Read what is pending; returns messages read or -errno. */
static int drain(struct cg__mm *mm)
{
	struct uffd_msg msgs[16];
	ssize_t n = cg__uffd_read(mm->uffd, msgs, sizeof(msgs));
	int ret;

	if (n == -EPERM)
		mm->tampered = CG__TAMPERED_BLOCKING;
	if (n <= 0)
		return (int)n;
	cg__mm_lift_stamp(mm, msgs, (size_t)n / sizeof(*msgs));
	ret = backlog_push(mm, msgs, (size_t)n / sizeof(*msgs));
	return ret ? ret : (int)(n / (ssize_t)sizeof(*msgs));
}

enum op { OP_REGISTER, OP_UNREGISTER, OP_PROTECT, OP_UNPROTECT };

static int op_once(int fd, enum op op, uint64_t start, uint64_t len)
{
	switch (op) {
	case OP_REGISTER:
		return cg__uffd_register(fd, start, len);
	case OP_UNREGISTER:
		return cg__uffd_unregister(fd, start, len);
	case OP_PROTECT:
		return cg__uffd_wp(fd, start, len, true);
	case OP_UNPROTECT:
		return cg__uffd_wp(fd, start, len, false);
	}
	return -EINVAL;
}


/*
 * By the clock, not by the sleeps: a client that raises events without
 * pause would otherwise keep us reading them here for good.  -ETIME then:
 * nothing was changed, the caller may try again (the client library does).
 */
static int with_retry(struct cg__mm *mm, enum op op, uint64_t start,
		      uint64_t len)
{
	const struct timespec pause = { 0, 20 * 1000 };
	uint64_t patience = mm->ioctl_patience_ns ? mm->ioctl_patience_ns
						  : RETRY_LIMIT_NS;
	uint64_t now = cg__now_ns(), deadline = now + patience;
	int ret;

	/*
	 * A request makes many ioctls: once one ran out of time, the next
	 * ones get no more for a while, or one request would wait for each.
	 */
	if (now < mm->ioctl_impatient_until)
		deadline = now;
	for (;;) {
		ret = op_once(mm->uffd, op, start, len);
		if (ret != -EAGAIN)
			return ret;
		ret = drain(mm);
		if (ret < 0)
			return ret;
		now = cg__now_ns();
		if (now >= deadline) {
			mm->ioctl_impatient_until = now + patience;
			return -ETIME;
		}
		if (ret == 0)
			nanosleep(&pause, NULL);
	}
}

int cg__mm_ioctl_register(struct cg__mm *mm, uint64_t start, uint64_t len)
{
	return with_retry(mm, OP_REGISTER, start, len);
}

int cg__mm_ioctl_unregister(struct cg__mm *mm, uint64_t start, uint64_t len)
{
	return with_retry(mm, OP_UNREGISTER, start, len);
}

/* Runs asked of PAGEMAP_SCAN at a time. */
#define PRESENT_RUNS 64

static int protect_runs(struct cg__mm *mm, const struct cg__runs *runs)
{
	int ret = 0;

	for (size_t i = 0; !ret && i < runs->n; i++)
		ret = with_retry(mm, OP_PROTECT, runs->v[i].start, runs->v[i].len);
	return ret;
}

/* Without a pagemap (a child not named yet): what the engine holds present. */
static int protect_known_present(struct cg__mm *mm, uint64_t start,
				 uint64_t end)
{
	int ret = 0;

	for (size_t i = 0; !ret && i < mm->nregions; i++) {
		const struct cg__region *r = mm->regions[i];
		uint64_t lo = r->start > start ? r->start : start;
		uint64_t hi = r->start + r->len < end ? r->start + r->len : end;
		struct cg__runs runs = { 0 };

		if (lo >= hi)
			continue;
		ret = cg__region_collect(r, lo, hi - lo, CG_ST_PRESENT,
					 CG_ST_PRESENT, &runs);
		if (!ret)
			ret = protect_runs(mm, &runs);
		cg__runs_free(&runs);
	}
	return ret;
}

/*
 * Asynchronous write protection turns the kernel's WP_UNPOPULATED on with
 * it (fs/userfaultfd.c): protecting a hole puts a marker in each of its
 * PTEs, allocating page tables for all of it (4 KiB per 2 MiB: 512 MiB for
 * a 256 GiB registration, a fork of it measured at 13 s), and pagemap then
 * shows each marker as a swapped page.  So there only what the kernel maps
 * is protected, run by run.  A page populated later is a new one, which
 * learning judges (lib/engine/learn.c).
 */
static int protect_mapped_only(struct cg__mm *mm, uint64_t start, uint64_t len)
{
	struct page_region v[PRESENT_RUNS];
	uint64_t end = start + len;

	if (mm->pagemap_fd < 0)
		return protect_known_present(mm, start, end);
	while (start < end) {
		uint64_t walk_end = end;
		int n = cg__pagemap_present(mm->pagemap_fd, start, end, v,
					    PRESENT_RUNS, &walk_end);

		if (n < 0)
			return n;
		for (int i = 0; i < n; i++) {
			int ret = with_retry(mm, OP_PROTECT, v[i].start,
					     v[i].end - v[i].start);

			if (ret)
				return ret;
		}
		if (walk_end <= start)
			return -EIO;
		start = walk_end;
	}
	return 0;
}

void cg__mm_wp_unsure(struct cg__mm *mm, uint64_t start, uint64_t len)
{
	for (size_t i = 0; i < mm->nregions; i++) {
		struct cg__region *r = mm->regions[i];

		if (r->start < start + len && start < r->start + r->len)
			r->wp_unsure = true;
	}
}

/*
 * Where [start, start+len) may be halved: the middle, on a 2 MiB line while
 * it spans more (a THP is not split for nothing), on the region's unit
 * (a hugetlb VMA is cut on its pages only).  0: it cannot be.
 */
static uint64_t halving_point(const struct cg__mm *mm, uint64_t start,
			      uint64_t len)
{
	const struct cg__region *r = cg__mm_find(mm, start);
	uint64_t unit = r && r->kind == CG_RK_HUGETLB ? 1ULL << r->unit_shift
						      : CG_PAGE_SIZE;
	uint64_t align = len > CG_PMD_SIZE && unit < CG_PMD_SIZE ? CG_PMD_SIZE : unit;
	uint64_t mid = (start + len / 2) & ~(align - 1);

	if (mid <= start)
		mid = (start + align) & ~(align - 1);
	return mid < start + len ? mid : 0;
}

/*
 * Before 6.5 UFFDIO_WRITEPROTECT takes a range within one VMA (its
 * find_dst_vma(): -ENOENT), and a pin's MADV_DONTFORK, an mprotect() or
 * any madvise cuts the VMAs of a region: registering [a, b) with a cut in
 * it failed so on 6.1 and 5.10.  Then a protect is halved until each part
 * lies in one VMA.  It used to go by the VMAs smaps showed, but the
 * client's other threads cut and merge them while we look (a pin's
 * MADV_DONTFORK comes before the engine is asked): a region re-registered
 * by the handler thread while the application pinned part of it was
 * forgotten so in the 6.1 and 5.10 guests.  A unit always lies in one VMA,
 * so only a unit refused is not registered; and a part over 2 MiB
 * refused where smaps shows no uffd-wp VMA is not halved further (gone,
 * or never ours: every page of a GiB would be an ioctl).
 */
static int wp_halving(struct cg__mm *mm, enum op op, uint64_t start,
		      uint64_t len)
{
	int ret = with_retry(mm, op, start, len), uw;
	uint64_t mid;

	if (ret != -ENOENT || !(mid = halving_point(mm, start, len)))
		return ret;
	uw = len > CG_PMD_SIZE ? cg__vma_flag(mm->smaps_fd, start, "uw") : 1;
	if (uw == -EMLINK)
		return uw;
	if (uw != 1)
		return -ENOENT;
	ret = wp_halving(mm, op, start, mid - start);
	return ret ? ret : wp_halving(mm, op, mid, start + len - mid);
}

/* A protect halved where refused; an unprotect as asked. */
static int wp_range(struct cg__mm *mm, enum op op, uint64_t start,
		    uint64_t len)
{
	/* An unprotect refused so is narrowed by its caller (events.c). */
	if (op != OP_PROTECT)
		return with_retry(mm, op, start, len);
	return wp_halving(mm, op, start, len);
}

/*
 * Before 5.19 no write-protect ioctl may touch a page under a pin, nor one
 * a pin being made asked the client to write (pins.c).  A
 * protect would make its next write copy it away from its consumer; and
 * 5.10 drops the write bit of every PTE an unprotect covers, protected or
 * not (its change_pte_range() leaves the write to a fault), so a pinned
 * page in a fault's window or a neighbour's run was made read-only, and
 * the next write there copied it (measured: a pipe that held the page by
 * vmsplice read the old data; 6.1 keeps it writable).  Pinned pages are
 * never protected there (learn.c, pins.c): leaving them out loses nothing.
 */
enum leave_out { LEAVE_HELD, LEAVE_PINNED };

static bool leaves_out(struct cg__mm *mm, enum leave_out what)
{
	uint64_t lo, hi;

	if (cg__kernel_read_pin_unshares())
		return false;
	return mm->npins ||
	       (what == LEAVE_HELD && cg__mm_write_in_flight(mm, &lo, &hi));
}

static int wp_leaving_out(struct cg__mm *mm, enum op op, uint64_t start,
			  uint64_t len, enum leave_out what)
{
	uint64_t end = start + len, lo, hi;
	int ret = 0;

	if (!leaves_out(mm, what))
		return wp_range(mm, op, start, len);
	for (uint64_t a = start; !ret && a < end; a = hi) {
		if (what == LEAVE_HELD)
			cg__mm_unheld_span(mm, a, end, &lo, &hi);
		else
			cg__mm_unpinned_span(mm, a, end, &lo, &hi);
		if (lo < hi)
			ret = wp_range(mm, op, lo, hi - lo);
	}
	/*
	 * An unprotect wakes the writers of its range: those of the parts
	 * left out too (a fault read before its page was lifted by a pin),
	 * or they would sleep for good.
	 */
	if (!ret && op == OP_UNPROTECT)
		ret = cg__uffd_wake(mm->uffd, start, len);
	return ret;
}

int cg__mm_ioctl_lift(struct cg__mm *mm, uint64_t start, uint64_t len)
{
	int ret;

	if (mm->wp_async)
		return cg__mm_ioctl_wp(mm, start, len, false);
	ret = wp_leaving_out(mm, OP_UNPROTECT, start, len, LEAVE_PINNED);
	/* After: what its retries read was raised before it. */
	mm->lifts++;
	return ret;
}

/*
 * A fault is read with the count of lifts so far.  A lift wakes the
 * writers of its range, and the kernel forgets the fault of a writer it
 * wakes before we read it: a fault read after the last lift was raised
 * after it.  On a held page, which nothing but a lift unprotects, that
 * one really is protected.  One read before (handled after: a backlog,
 * a lift's own retries) may be stale: the lift let its writer go, and the
 * client may have written the page since.
 */
void cg__mm_lift_stamp(const struct cg__mm *mm, struct uffd_msg *msgs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		msgs[i].reserved3 = mm->lifts;
}

int cg__mm_ioctl_unprotect_faulted(struct cg__mm *mm, uint64_t start,
				   uint64_t len, uint32_t stamp)
{
	uint64_t lo, hi;

	if (mm->wp_async || !leaves_out(mm, LEAVE_HELD) || stamp != mm->lifts)
		return 0;
	cg__mm_unheld_span(mm, start, start + len, &lo, &hi);
	if (lo == start && hi == start + len)
		return 0;
	/*
	 * Protected after all: this write copies a pinned page, and one
	 * asked for is to be asked again (unprotected, it is read-only).
	 */
	cg__mm_pins_violated(mm, start, len);
	cg__mm_write_distrust(mm, start, len);
	return wp_range(mm, OP_UNPROTECT, start, len);
}

int cg__mm_ioctl_wp(struct cg__mm *mm, uint64_t start, uint64_t len,
		    bool protect)
{
	int ret;

	if (!mm->wp_async)
		return wp_leaving_out(mm, protect ? OP_PROTECT : OP_UNPROTECT,
				      start, len, LEAVE_HELD);
	ret = protect ? protect_mapped_only(mm, start, len)
		      : with_retry(mm, OP_UNPROTECT, start, len);
	/* Part of it may be done: the state's CG_ST_WP cannot be trusted. */
	if (ret)
		cg__mm_wp_unsure(mm, start, len);
	return ret;
}
