// SPDX-License-Identifier: MIT
/*
 * The daemon reads a client's /proc/PID/smaps to register a range, and
 * such a read costs every VMA of the process up to it: a client that cut
 * its memory into 65 000 VMAs held the loop 1.5 s (docs/security.md).
 * --max-client-vmas bounds the VMAs one read takes: past it, -EMLINK.  An
 * engine in the process reads its own smaps, without that bound.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "harness.h"

#define BOUND 1024
#define CUT_PAGES 4096		/* 2048 VMAs cut out, 4096 in all */
#define FEW_PAGES 64		/* 64 VMAs */

/* len bytes of pages, every other one cut into its own VMA. */
static char *cut_region(size_t pages)
{
	char *p = mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ck_assert_ptr_ne(p, MAP_FAILED);
	memset(p, 1, pages * 4096);
	for (size_t i = 0; i < pages; i += 2)
		ck_assert_int_eq(madvise(p + i * 4096, 4096, MADV_DONTFORK), 0);
	return p;
}

static struct cg *open_at(int mode, const char *path)
{
	struct cg_options o = {
		.mode = mode,
		.socket_path = path,
	};
	struct cg *cg = NULL;

	ck_assert_int_eq(cg_open(&o, sizeof(o), &cg), 0);
	return cg;
}

START_TEST(a_registration_past_the_bound_is_refused_and_one_within_it_is_not)
{
	char path[160], arg[16];
	char *many, *few;
	struct cg *cg;
	int ret;
	pid_t d;

	if (!h_have_own_daemon("starts a daemon with a VMA bound"))
		return;
	snprintf(path, sizeof(path), "%s.vmas", h_socket());
	snprintf(arg, sizeof(arg), "%d", BOUND);
	d = h_daemon_start_opt(path, "--max-client-vmas", arg);
	ck_assert_int_gt(d, 0);
	cg = open_at(CG_MODE_DAEMON, path);
	many = cut_region(CUT_PAGES);
	ret = cg_register(cg, many, CUT_PAGES * 4096, 0);
	ck_assert_msg(ret == -EMLINK, "a region of %d VMAs, bound %d: %d (%s)",
		      CUT_PAGES, BOUND, ret, cg_strerror(ret));
	munmap(many, CUT_PAGES * 4096);
	few = cut_region(FEW_PAGES);
	ret = cg_register(cg, few, FEW_PAGES * 4096, 0);
	ck_assert_msg(ret == 0, "a region of %d VMAs, bound %d: %d (%s)",
		      FEW_PAGES, BOUND, ret, cg_strerror(ret));
	cg_close(cg);
	munmap(few, FEW_PAGES * 4096);
	ck_assert_int_eq(h_daemon_stop(d), 0);
	ck_assert_int_eq(h_log_lines(path, "more VMAs than --max-client-vmas"), 1);
}
END_TEST

START_TEST(an_embedded_engine_reads_its_own_vmas_without_the_bound)
{
	struct cg *cg = open_at(CG_MODE_EMBEDDED, NULL);
	char *many = cut_region(CUT_PAGES);
	int ret = cg_register(cg, many, CUT_PAGES * 4096, 0);

	ck_assert_msg(ret == 0, "embedded, %d VMAs: %d (%s)", CUT_PAGES, ret,
		      cg_strerror(ret));
	cg_close(cg);
	munmap(many, CUT_PAGES * 4096);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("a client of too many VMAs is refused at the "
				"daemon's bound");
	TCase *tc = tcase_create("vmas");

	h_timeout(tc, 60);
	h_add(tc, a_registration_past_the_bound_is_refused_and_one_within_it_is_not);
	h_add(tc, an_embedded_engine_reads_its_own_vmas_without_the_bound);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
