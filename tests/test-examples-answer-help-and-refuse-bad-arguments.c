// SPDX-License-Identifier: MIT
/*
 * Every example answers -h and --help with its usage on stdout and exit
 * status 0, doing nothing else, and refuses an option it does not know with
 * the usage on stderr and exit status 2.
 *
 * Bug this catches: an example that takes --help for an argument
 * (uring_odirect took it for a directory and wrote files there), or that
 * runs its whole job when asked for help.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static const char *const examples[] = {
	"fork_share", "splice_stale_read", "uring_odirect", "verbs_reg_mr",
};
#define NEXAMPLES (sizeof(examples) / sizeof(examples[0]))

static const char *builddir(void)
{
	const char *dir = getenv("CG_BUILDDIR");

	return dir ? dir : "build";
}

START_TEST(an_example_asked_for_help_prints_its_usage_and_does_nothing_else)
{
	const char *name = examples[_i / 2], *flag = _i % 2 ? "-h" : "--help";
	struct h_run *r = malloc(sizeof(*r));

	ck_assert_ptr_nonnull(r);
	/* In an empty directory: an example that runs anyway leaves files. */
	h_run_cmd(r, "d=$(mktemp -d) && cd \"$d\" && %s/examples/%s %s; s=$?; "
		  "n=$(ls -A \"$d\" | wc -l); rm -rf \"$d\"; echo \"files=$n\"; "
		  "exit $s", builddir(), name, flag);
	ck_assert_msg(r->status == 0, "%s %s: exit status %d", name, flag,
		      r->status);
	ck_assert_msg(strstr(r->out, "sage") != NULL,
		      "%s %s printed no usage on stdout: %.200s", name, flag,
		      r->out);
	ck_assert_msg(strstr(r->out, "files=0") != NULL,
		      "%s %s left files behind: %.200s", name, flag, r->out);
	free(r);
}
END_TEST

START_TEST(an_example_refuses_an_option_it_does_not_know)
{
	const char *name = examples[_i];
	struct h_run *r = malloc(sizeof(*r));

	ck_assert_ptr_nonnull(r);
	h_run_cmd(r, "d=$(mktemp -d) && cd \"$d\" && "
		  "%s/examples/%s --no-such-option 2>&1 >/dev/null; s=$?; "
		  "rm -rf \"$d\"; exit $s", builddir(), name);
	ck_assert_msg(r->status == 2, "%s --no-such-option: exit status %d",
		      name, r->status);
	ck_assert_msg(strstr(r->out, "sage") != NULL,
		      "%s --no-such-option: no usage on stderr: %.200s", name,
		      r->out);
	free(r);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("examples answer help and refuse bad arguments");
	TCase *tc = tcase_create("examples");

	h_timeout(tc, 30);
	h_add_loop(tc, an_example_asked_for_help_prints_its_usage_and_does_nothing_else, 2 * NEXAMPLES);
	h_add_loop(tc, an_example_refuses_an_option_it_does_not_know, NEXAMPLES);
	suite_add_tcase(s, tc);
	return h_main(s, 0);
}
