/* SPDX-License-Identifier: MIT */
/*
 * The frame of each pinned unit, recorded once however many pins cover it
 * (root's clients only: others see no frames), so that overlapping pins
 * cost no memory per page beyond the first.  Kept by 2 MiB chunk: 16
 * bytes a unit, and a table of chunks small enough to grow in one go (a
 * table of units was rehashed whole as it grew: 1M entries, a pin of 4
 * GiB, held the daemon 90-180 ms at once).
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
};

/*
 * Hold the unit at addr (2^shift bytes), mapping frame, for one more pin;
 * *t is allocated on first use.  *replaced: other pins held it at another
 * frame (their page was replaced), and it now records frame.  0 or -ENOMEM.
 */
int cg__frames_hold(struct cg__frames **t, uint64_t addr, unsigned shift,
		    uint64_t frame, bool *replaced);
/*
 * Let go of the unit at addr for one pin.  Returns the bytes to step to
 * the next unit: the unit's size, or 4 KiB where none was held.
 */
uint64_t cg__frames_release(struct cg__frames *t, uint64_t addr);
/* Whether the unit at addr is held, and at which frame. */
bool cg__frames_frame(const struct cg__frames *t, uint64_t addr,
		      uint64_t *frame);
size_t cg__frames_footprint(const struct cg__frames *t);
void cg__frames_free(struct cg__frames **t);

#endif
