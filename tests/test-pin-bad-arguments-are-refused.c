// SPDX-License-Identifier: MIT
/*
 * cg_pin() and cg_unpin() refuse bad arguments with the errno
 * include/cowguard.h documents, and a refused pin changes nothing: no pin
 * counted or reported by cg_query(), no MADV_DONTFORK left on the range,
 * no page copied, *out untouched.  The pin quota of a daemon started with
 * --max-pins is enforced with -EDQUOT, and an unpin makes room again.
 *
 * Bugs this catches: a check missing or in the wrong order (a wrapping
 * length taken for a huge one, a range running past its region pinned), a
 * generic errno where a specific one is promised, a refused pin that
 * leaves the range MADV_DONTFORK (a child would then segfault on memory
 * that is not pinned) or a pin half-recorded, and a quota not enforced.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "pin-util.h"

#define LEN (16 * PG)
/* A page-aligned length that makes any user address wrap. */
#define WRAPPING_LEN ((size_t)0 - 16 * PG)

static struct cg_pin *const SENTINEL = (struct cg_pin *)(uintptr_t)0x5a5a5000;

/* cg_pin must fail with err and leave everything as it was. */
static void refused(struct cg *cg, void *base, void *addr, size_t len,
		    unsigned flags, int err, const char *what)
{
	struct cg_pin *out = SENTINEL;
	struct cg_stats s0 = ph_stats(cg), s1;
	int ret = cg_pin(cg, addr, len, flags, &out);

	ck_assert_msg(ret == err, "%s: %d (%s), want %d (%s)", what, ret,
		      cg_strerror(ret), err, cg_strerror(err));
	ck_assert_msg(out == SENTINEL, "%s: *out written on failure", what);
	s1 = ph_stats(cg);
	ck_assert_msg(s1.pins == 0 && s1.unshare_copies == s0.unshare_copies &&
		      s1.unshare_reuses == s0.unshare_reuses,
		      "%s: pins %llu, copies %llu -> %llu after a refused pin",
		      what, (unsigned long long)s1.pins,
		      (unsigned long long)s0.unshare_copies,
		      (unsigned long long)s1.unshare_copies);
	ck_assert_msg(ph_query(cg, base).pins == 0, "%s: a pin left", what);
	ck_assert_msg(h_vma_flag(base, "dc") != 1, "%s: MADV_DONTFORK left "
		      "on the range", what);
}

START_TEST(bad_pin_arguments_are_refused_and_change_nothing)
{
	char *p = h_map(H_4K, 2 * LEN, 'A');
	struct cg_pin *pin;
	struct cg *cg = h_open(_i);

	/* Only the first half is registered. */
	ck_assert_int_eq(cg_register(cg, p, LEN, 0), 0);

	ck_assert_int_eq(cg_pin(NULL, p, LEN, CG_PIN_RO, &pin), -EINVAL);
	ck_assert_int_eq(cg_pin(cg, p, LEN, CG_PIN_RO, NULL), -EINVAL);
	refused(cg, p, p, LEN, 0, -EINVAL, "no mode");
	refused(cg, p, p, LEN, CG_PIN_FOLL_PIN, -EINVAL, "FOLL_PIN, no mode");
	refused(cg, p, p, LEN, CG_PIN_RO | CG_PIN_RW, -EINVAL, "RO and RW");
	refused(cg, p, p, LEN, CG_PIN_RO | 1u << 7, -EINVAL, "unknown flag");
	refused(cg, p, p + 1, PG, CG_PIN_RO, -EINVAL, "unaligned address");
	refused(cg, p, p, PG + 1, CG_PIN_RO, -EINVAL, "unaligned length");
	refused(cg, p, p, 0, CG_PIN_RO, -EINVAL, "zero length");
	refused(cg, p, p + PG, WRAPPING_LEN, CG_PIN_RO, -EOVERFLOW,
		"wrapping length");
	refused(cg, p, p + LEN, PG, CG_PIN_RO, -ENOENT, "not registered");
	refused(cg, p, p + LEN - PG, 2 * PG, CG_PIN_RO, -ENOENT,
		"running past the region");
	refused(cg, p, p, 2 * LEN, CG_PIN_RO | CG_PIN_FOLL_PIN, -ENOENT,
		"running past the region, FOLL_PIN");

	ck_assert_int_eq(cg_unpin(NULL), -EINVAL);
	/* The arguments were the trouble, not the handle: a pin works. */
	ck_assert_int_eq(cg_pin(cg, p, LEN, CG_PIN_RO, &pin), 0);
	ck_assert_int_eq(ph_stats(cg).pins, 1);
	ck_assert_int_eq(cg_unpin(pin), 0);
	cg_close(cg);
	munmap(p, 2 * LEN);
}
END_TEST

START_TEST(a_pin_that_cuts_a_hugetlb_page_is_refused)
{
	size_t huge = 2 * MIB;
	struct h_region r;

	if (!h_region_open(&r, _i, H_HUGETLB_2M, huge, 'A', 0))
		return;
	refused(r.cg, r.p, r.p, PG, CG_PIN_RO, -EINVAL, "first 4 KiB of a huge page");
	refused(r.cg, r.p, r.p + huge - PG, PG, CG_PIN_RO, -EINVAL,
		"last 4 KiB of a huge page");
	h_region_close(&r);
}
END_TEST

START_TEST(the_pin_quota_is_enforced)
{
	char path[160];
	struct cg_options o = { .mode = CG_MODE_DAEMON, .socket_path = path };
	struct cg_pin *a, *b, *c = SENTINEL;
	char *p = h_map(H_4K, LEN, 'A');
	struct cg *cg;
	pid_t d;

	if (!h_have_own_daemon("starts a daemon with --max-pins 2")) {
		munmap(p, LEN);
		return;
	}
	snprintf(path, sizeof(path), "%s.quota", h_socket());
	d = h_daemon_start_opt(path, "--max-pins", "2");
	ck_assert_int_gt(d, 0);
	ck_assert_int_eq(cg_open(&o, sizeof(o), &cg), 0);
	ck_assert_int_eq(cg_register(cg, p, LEN, 0), 0);
	ck_assert_int_eq(cg_pin(cg, p, PG, CG_PIN_RO, &a), 0);
	ck_assert_int_eq(cg_pin(cg, p + PG, PG, CG_PIN_RW, &b), 0);
	ck_assert_int_eq(cg_pin(cg, p + 2 * PG, PG, CG_PIN_RO, &c), -EDQUOT);
	ck_assert_ptr_eq(c, SENTINEL);
	ck_assert_uint_eq(ph_stats(cg).pins, 2);
	ck_assert_int_eq(h_vma_flag(p + 2 * PG, "dc"), 0);
	ck_assert_uint_eq(ph_query(cg, p + 2 * PG).pins, 0);
	/* An unpin makes room. */
	ck_assert_int_eq(cg_unpin(a), 0);
	ck_assert_int_eq(cg_pin(cg, p + 2 * PG, PG, CG_PIN_RO, &c), 0);
	ck_assert_int_eq(cg_unpin(b), 0);
	ck_assert_int_eq(cg_unpin(c), 0);
	cg_close(cg);
	ck_assert_int_eq(h_daemon_stop(d), 0);
	munmap(p, LEN);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pin bad arguments are refused");
	TCase *tc = tcase_create("arguments");

	h_timeout(tc, 15);
	h_add_modes(tc, bad_pin_arguments_are_refused_and_change_nothing);
	h_add_modes(tc, a_pin_that_cuts_a_hugetlb_page_is_refused);
	h_add(tc, the_pin_quota_is_enforced);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON | H_NEED_HUGETLB);
}
