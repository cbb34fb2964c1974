/* SPDX-License-Identifier: MIT */
/*
 * The frame of each pinned unit, recorded once however many pins cover it
 * (root's clients only: others see no frames), so that overlapping pins
 * cost no memory per page beyond the first.  Kept by 2 MiB chunk: 4 bytes
 * a unit (the frames' upper bits once per chunk), and a table of chunks
 * small enough to grow in one go (a table of units was rehashed whole as
 * it grew: 1M entries, a pin of 4 GiB, held the daemon 90-180 ms at once).
 *
 * No count of the pins that hold a unit is kept: a unit is let go when no
 * pin is left on it, which the caller knows from its pins' spans.
 */
#ifndef CG_FRAMES_H
#define CG_FRAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cg__frame_chunk;

struct cg__frames {
	struct cg__frame_chunk **v;	/* open-addressed by chunk address */
	size_t n, cap;			/* cap: 0 or a power of two */
	size_t wide;			/* chunks keeping whole frames */
	size_t small;			/* chunks of one slot */
};

/*
 * Hold the unit at addr (its first byte), mapping frame, for a pin; *t is
 * allocated on first use.  *replaced: it was held at another frame (the
 * page of the pins holding it was replaced), and it now records frame.
 * 0 or -ENOMEM.
 */
int cg__frames_hold(struct cg__frames **t, uint64_t addr, uint64_t frame,
		    bool *replaced);
/* Let go of every unit that starts in [start, end). */
void cg__frames_forget(struct cg__frames *t, uint64_t start, uint64_t end);
/* Whether the unit at addr is held, and at which frame. */
bool cg__frames_frame(const struct cg__frames *t, uint64_t addr,
		      uint64_t *frame);
size_t cg__frames_footprint(const struct cg__frames *t);
void cg__frames_free(struct cg__frames **t);

#endif
