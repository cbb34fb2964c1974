/* SPDX-License-Identifier: MIT */
/*
 * Write tracking in tests: one pass of cg_track_collect() over a range,
 * as an incremental checkpoint makes it.
 */
#ifndef CG_TESTS_TRACK_UTIL_H
#define CG_TESTS_TRACK_UTIL_H

#include <string.h>

#include "harness.h"

/*
 * Collect [p, p+len) once through, a reply of 16 ranges at a time; each
 * range reported is copied into shadow (the same offsets) unless it is
 * NULL.  Returns the bytes reported.
 */
static inline size_t tu_collect(struct cg *cg, char *p, size_t len,
				char *shadow)
{
	struct cg_range r[16];
	size_t bytes = 0;
	void *next = p;

	while ((char *)next < p + len) {
		char *at = next;
		int n = cg_track_collect(cg, at, p + len - at, r, 16, &next);

		ck_assert_msg(n >= 0, "cg_track_collect: %s", cg_strerror(n));
		for (int i = 0; i < n; i++) {
			char *a = r[i].addr;

			ck_assert(a >= p && a + r[i].len <= p + len);
			if (shadow)
				memcpy(shadow + (a - p), a, r[i].len);
			bytes += r[i].len;
		}
	}
	return bytes;
}

#endif
