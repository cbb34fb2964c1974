// SPDX-License-Identifier: MIT
/*
 * cg_track_collect() reports the units written since the last collect,
 * each whole, and arms them again: a write before a collect is in it, a
 * write after it in the next, and a unit not written since is in
 * neither.  Per mode and kind: collect until nothing is left (what
 * registration left unknown), write one byte in a unit, collect: the unit
 * is reported, whole, and at most the fault path's window of 4 KiB pages
 * with it (the pages a fault unprotects around it); collect again:
 * nothing; the same after a write to a hole, which raises no fault.
 * Then a read-write pin's units are reported at every collect
 * (its consumer writes unseen), and a collect too small for what is
 * written says where to go on, and loses nothing.
 *
 * Bugs this catches: a unit reported but left unprotected (the next write
 * would be missed: the third collect reports nothing), a report not
 * cleared (the third collect repeats it), a write to a hole missed, a THP or hugetlb page reported
 * in part, a full out array that drops the rest, a read-write pin's
 * units reported once only.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "pin-util.h"
#include "track-util.h"

#define MAX 64

/* One collect of [p, p+len): one range, whole units, covering w. */
static void reported_once(struct cg *cg, char *p, size_t len, char *w,
			  size_t unit, size_t most)
{
	struct cg_range r[MAX];
	void *next = NULL;
	int n = cg_track_collect(cg, p, len, r, MAX, &next);
	char *a;

	ck_assert_int_eq(n, 1);
	ck_assert_ptr_eq(next, p + len);
	a = r[0].addr;
	ck_assert_msg(a <= w && a + r[0].len > w && r[0].len <= most &&
		      ((uintptr_t)a & (unit - 1)) == 0 && r[0].len % unit == 0,
		      "a write at +%#zx reported as [+%#zx, +%#zx): not its "
		      "unit (%#zx), whole, within %#zx", (size_t)(w - p),
		      (size_t)(a - p), (size_t)(a + r[0].len - p), unit, most);
}

/*
 * The unit the engine tracks at w, as it says (a THP is tracked as 4 KiB
 * pages where it is followed as split: before 6.7, or once a write split
 * it), and the most a write there may have reported: a 4 KiB fault
 * unprotects its 64 KiB window on the fault path, and a THP the engine
 * follows as split may still be one PMD in the kernel, unprotected whole.
 */
static void unit_at(struct cg *cg, char *w, enum h_kind kind, size_t *unit,
		    size_t *most)
{
	*unit = ph_query(cg, w).size;
	*most = kind == H_THP ? 2 * MIB : *unit == PG ? 64 * KIB : *unit;
}

START_TEST(a_collect_reports_each_write_once_and_then_no_more)
{
	enum h_kind kind = H_KIND(_i);
	size_t page = h_page_size(kind), len = kind == H_4K ? 4 * MIB : 4 * page;
	size_t unit = page, most, step;
	char *p = h_map(kind, len, 'A'), *w;
	struct cg_pin *pin = NULL;
	struct cg *cg;
	int ret;

	if (!p)
		return;
	cg = h_open(H_MODE(_i));
	ret = cg_register(cg, p, len, 0);
	if (ret == -EOPNOTSUPP && page > PG) {
		h_skip("hugetlb is not tracked on this kernel (5.19+)");
		goto out;
	}
	ck_assert_int_eq(ret, 0);
	tu_collect(cg, p, len, NULL);
	ck_assert_uint_eq(tu_collect(cg, p, len, NULL), 0);

	w = p + len / 2 + PG;
	*(volatile char *)w = 'B';
	unit_at(cg, w, kind, &unit, &most);
	reported_once(cg, p, len, w, unit, most);
	ck_assert_uint_eq(tu_collect(cg, p, len, NULL), 0);
	/* Armed again: the next write is seen. */
	*(volatile char *)w = 'C';
	reported_once(cg, p, len, w, unit, most);
	ck_assert_uint_eq(tu_collect(cg, p, len, NULL), 0);

	/* A write to a hole raises no fault: it is reported all the same. */
	ck_assert_int_eq(madvise((char *)((uintptr_t)w & ~(uintptr_t)(page - 1)),
				 page, MADV_DONTNEED), 0);
	tu_collect(cg, p, len, NULL);
	*(volatile char *)w = 'H';
	unit_at(cg, w, kind, &unit, &most);
	reported_once(cg, p, len, w, unit, most);
	ck_assert_uint_eq(tu_collect(cg, p, len, NULL), 0);

	/* A read-write pin's units, at every collect. */
	ck_assert_int_eq(cg_pin(cg, p, page, CG_PIN_RW, &pin), 0);
	ck_assert_uint_ge(tu_collect(cg, p, len, NULL), page);
	ck_assert_uint_ge(tu_collect(cg, p, len, NULL), page);
	ck_assert_int_eq(cg_unpin(pin), 0);
	tu_collect(cg, p, len, NULL);
	ck_assert_uint_eq(tu_collect(cg, p, len, NULL), 0);

	/* Out of room: one range a call, every unit still reported. */
	step = 2 * (page > 64 * KIB ? page : 64 * KIB);
	for (size_t off = 0; off < len; off += step)
		*(volatile char *)(p + off) = 'D';
	{
		struct cg_range r[1];
		size_t calls = 0, bytes = 0, writes = 0;
		void *next = p;

		for (size_t off = 0; off < len; off += step)
			writes++;
		while ((char *)next < p + len) {
			char *at = next;
			int n = cg_track_collect(cg, at, p + len - at, r, 1, &next);

			ck_assert_int_ge(n, 0);
			ck_assert_int_le(n, 1);
			bytes += n ? r[0].len : 0;
			calls++;
		}
		ck_assert_uint_ge(calls, writes);
		ck_assert_uint_ge(bytes, writes * PG);
	}
	ck_assert_uint_eq(tu_collect(cg, p, len, NULL), 0);
out:
	cg_close(cg);
	munmap(p, len);
}
END_TEST

START_TEST(bad_arguments_are_refused)
{
	struct cg *cg = h_open(_i);
	struct cg_range r[1];
	void *next;
	char *p = h_map(H_4K, 64 * KIB, 'A');

	ck_assert_int_eq(cg_register(cg, p, 64 * KIB, 0), 0);
	ck_assert_int_eq(cg_track_collect(NULL, p, PG, r, 1, &next), -EINVAL);
	ck_assert_int_eq(cg_track_collect(cg, p, 0, r, 1, &next), -EINVAL);
	ck_assert_int_eq(cg_track_collect(cg, p, PG, r, 0, &next), -EINVAL);
	ck_assert_int_eq(cg_track_collect(cg, p, PG, NULL, 1, &next), -EINVAL);
	ck_assert_int_eq(cg_track_collect(cg, p, PG, r, 1, NULL), -EINVAL);
	ck_assert_int_eq(cg_track_collect(cg, (void *)-PG, 2 * PG, r, 1, &next),
			 -EINVAL);
	/* Not registered: nothing to report. */
	ck_assert_int_eq(cg_track_collect(cg, p + 64 * KIB, PG, r, 1, &next), 0);
	ck_assert_ptr_eq(next, p + 64 * KIB + PG);
	cg_close(cg);
	munmap(p, 64 * KIB);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("a collect reports each write once");
	TCase *tc = tcase_create("track");

	h_timeout(tc, 120);
	h_add_test(tc, a_collect_reports_each_write_once_and_then_no_more,
		   H_MODES, H_KINDS_SHARED);
	h_add_modes(tc, bad_arguments_are_refused);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
