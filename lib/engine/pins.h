/* SPDX-License-Identifier: MIT */
/*
 * Pins: ranges handed to a consumer that reads (or writes) them by DMA or
 * by page reference.  Kept per tracked mm, O(pins) memory.
 */
#ifndef CG_PINS_H
#define CG_PINS_H

#include <stdbool.h>
#include <stdint.h>

#include "engine.h"

#define CG_CONSUMER_LEN 16

struct cg__pin {
	uint64_t id;
	uint64_t start, len;
	unsigned flags;			/* CG_PIN_* */
	char consumer[CG_CONSUMER_LEN];
	uint64_t created_ms;		/* CLOCK_BOOTTIME */
	/*
	 * Its units' frames are in the mm's frame table (struct cg__frames),
	 * shared with every other pin of the same page: false without PFNs.
	 */
	bool framed;
	uint64_t violated;		/* a page seen replaced, or 0 */
};

/* What pinning did, for counters and the caller. */
struct cg__pin_result {
	uint64_t id;
	uint64_t bad_addr;		/* the page that failed, on error */
	uint64_t bad_len;		/* -EAGAIN: the span to write-unshare */
	uint64_t move_len;		/* -EAGAIN: [bad_addr, +move_len) to move */
};

/*
 * Pin [start, start+len): make every page exclusive (unsharing the
 * maybe-shared ones, as a read-only FOLL_PIN would) and record the pin.
 * Every page must be populated already (the library populates).  Returns 0,
 * -ENOENT (not all registered), -EINVAL (flags), -EDQUOT (pin quota),
 * -ENOMEM (the hugetlb pool cannot take the copies), -EAGAIN with
 * res->bad_addr: a page is not populated (bad_len 0: populate it and
 * retry; also when forks or unmaps there kept the pin from being made),
 * or [bad_addr, bad_addr+bad_len) holds pages only a write fault in the
 * process can unshare (the zero page; before 5.19, every page).  Their
 * write protection is lifted: write each page there that pagemap does not
 * show write-protected, without changing it, and retry.  Or, with
 * res->move_len, [bad_addr, bad_addr+move_len) holds THP chunks armed to
 * be unshared whole (lib/engine/move.c): copy them into scratch THPs,
 * drop them, hand the copy's address to cg__mm_move_finish(), and retry.
 * While chunks are armed, a pin is refused (-EBUSY).
 */
int cg__mm_pin(struct cg__mm *mm, uint64_t start, uint64_t len, unsigned flags,
	       const char *consumer, struct cg__pin_result *res);

/*
 * Drop pin id and check it: every page still exclusive and, where frames
 * were recorded, still the same frame.  Returns 0, -ENOENT (no such pin) or
 * -ENOTRECOVERABLE with res->bad_addr: the consumer may have read a stale
 * page.  The pin is dropped in every case but -ENOENT.
 */
int cg__mm_unpin(struct cg__mm *mm, uint64_t id, struct cg__pin_result *res);

/*
 * The same, in steps, for a daemon that must not hold its other clients
 * for a pin of much memory.  A start checks what can be checked at once
 * and returns 0 (cg__mm_pin_step() goes on), or the answer as above.
 * Each step walks 2 MiB windows (1 GiB pages) up to the first past
 * until_ns (CLOCK_MONOTONIC; 0: to the end) and returns 1 while more is
 * left, or the answer.  One pin or unpin at a time: -EBUSY.
 */
int cg__mm_pin_start(struct cg__mm *mm, uint64_t start, uint64_t len,
		     unsigned flags, const char *consumer,
		     struct cg__pin_result *res);
int cg__mm_unpin_start(struct cg__mm *mm, uint64_t id,
		       struct cg__pin_result *res);
int cg__mm_pin_step(struct cg__mm *mm, struct cg__pin_result *res,
		    uint64_t until_ns);
/*
 * An event (fork: all of memory; remap, remove, unmap: their range) may
 * have changed what the windows of the pin in progress showed.
 */
void cg__mm_pin_disturbed(struct cg__mm *mm, uint64_t start, uint64_t len);
/*
 * Before 5.19: the write a pin asked for, if it overlaps [start,
 * start+len), may have been undone (an event; a page unprotected, which
 * 5.10 leaves read-only): trust none of it, and the next walk asks again.
 */
void cg__mm_write_distrust(struct cg__mm *mm, uint64_t start, uint64_t len);

/*
 * A write fault at addr is about to be resolved: if a pin covers it and the
 * kernel maps the page shared (a fork we did not follow), the write will
 * replace the pinned page: remember the violation for the unpin.
 */
void cg__mm_pin_fault(struct cg__mm *mm, uint64_t addr);

/*
 * The pinned pages of [start, start+len) are replaced, or will be by the
 * next touch, while the consumer keeps the old ones, and nothing else
 * shows it without page frames: remember the violation for the unpin.
 * Either the range was dropped (UFFD_EVENT_REMOVE: MADV_DONTNEED,
 * MADV_REMOVE, or MADV_FREE, which the event does not tell apart), or,
 * before 5.19, a pinned page was found write-protected (ioctl.c).
 */
void cg__mm_pins_violated(struct cg__mm *mm, uint64_t start, uint64_t len);

/* Pins covering the page at addr. */
uint32_t cg__mm_pin_count(const struct cg__mm *mm, uint64_t addr);

/* Whether a pin covers any of [start, start+len). */
bool cg__mm_pinned(struct cg__mm *mm, uint64_t start, uint64_t len);

/*
 * The first part [*lo, *hi) of [start, end) that no pin covers, and where
 * the next such part may start: *hi.  *lo == *hi == end when none is left.
 */
void cg__mm_unpinned_span(struct cg__mm *mm, uint64_t start, uint64_t end,
			  uint64_t *lo, uint64_t *hi);

/*
 * Before 5.19, the span the client was asked to write-unshare for a pin
 * not made yet (from the answer until that pin's next walk is over): like
 * a pin's, its pages must be neither protected nor unprotected, or the
 * write there would not be the last before the consumer takes them
 * (pins.c, write_may_replace()).  Returns whether there is one.
 */
bool cg__mm_write_in_flight(const struct cg__mm *mm, uint64_t *lo,
			    uint64_t *hi);

/*
 * As cg__mm_unpinned_span(), with the write in flight left out too: what
 * a write-protect ioctl may touch before 5.19.
 */
void cg__mm_unheld_span(struct cg__mm *mm, uint64_t start, uint64_t end,
			uint64_t *lo, uint64_t *hi);

/*
 * What the pins cover, as disjoint spans in address order: searched, not
 * walked, so that a client holding thousands of pins costs a fork or a
 * fault a few steps (a search of every pin for each gap made a fork of
 * 4096 pins take 20 ms).  Valid until the next pin or unpin.
 */
struct cg__span {
	uint64_t start, end;
};
const struct cg__span *cg__mm_pin_spans(struct cg__mm *mm, size_t *n);

void cg__mm_pins_free(struct cg__mm *mm);

/* Bytes the pins of mm hold: records, the one in progress, the frame table. */
size_t cg__mm_pins_footprint(const struct cg__mm *mm);

#endif
