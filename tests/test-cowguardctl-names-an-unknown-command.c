// SPDX-License-Identifier: MIT
/*
 * A cowguardctl command line that is wrong says what is wrong, on one
 * line, and where to read more (--help) on the next; it exits 2 and
 * prints nothing on stdout.  An unknown command is named (its control
 * bytes escaped); a missing or extra argument, or an unknown option, is
 * said as such.  --help alone prints the whole usage, on stdout.
 *
 * Bugs this catches (issue 9): the whole usage printed for a typo without
 * a word on what was wrong; a command name written raw to the terminal;
 * --help missing a command or an option.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define HINT "Try 'cowguardctl --help' for more information.\n"

/* cowguardctl ARGS: stderr must be exactly want, stdout empty, exit 2. */
static void assert_refused(const char *args, const char *want)
{
	struct h_run *r = malloc(sizeof(*r));

	ck_assert_ptr_nonnull(r);
	h_run_cmd(r, "%s %s 2>&1 >/dev/null", h_ctl_path(), args);
	ck_assert_msg(r->status == 2, "%s: exit %d", args, r->status);
	ck_assert_msg(!strcmp(r->out, want), "%s: stderr is\n%s\nnot\n%s", args,
		      r->out, want);
	h_run_cmd(r, "%s %s 2>/dev/null", h_ctl_path(), args);
	ck_assert_msg(!r->out[0], "%s: stdout is\n%s", args, r->out);
	free(r);
}

START_TEST(an_unknown_command_is_named_with_a_hint_and_exits_two)
{
	assert_refused("frobnicate",
		       "cowguardctl: unknown command 'frobnicate'\n" HINT);
	assert_refused("--json stauts",
		       "cowguardctl: unknown command 'stauts'\n" HINT);
}
END_TEST

START_TEST(an_unknown_command_reaches_the_terminal_escaped)
{
	/* ESC [ 2 J would clear the screen; 0xff is no UTF-8. */
	assert_refused("\"$(printf '\\033[2J\\377x')\"",
		       "cowguardctl: unknown command '\\x1b[2J\\xffx'\n" HINT);
}
END_TEST

START_TEST(a_missing_or_extra_argument_is_said_as_such)
{
	assert_refused("", "cowguardctl: no command given\n" HINT);
	assert_refused("pins", "cowguardctl: pins needs one PID\n" HINT);
	assert_refused("audit 1 2", "cowguardctl: audit needs one PID\n" HINT);
	assert_refused("audit x", "cowguardctl: not a pid: 'x'\n" HINT);
	assert_refused("status now",
		       "cowguardctl: status takes no argument\n" HINT);
	assert_refused("metrics x",
		       "cowguardctl: metrics takes no argument\n" HINT);
}
END_TEST

START_TEST(an_unknown_option_gets_the_hint_not_the_whole_usage)
{
	struct h_run *r = malloc(sizeof(*r));

	ck_assert_ptr_nonnull(r);
	h_run_cmd(r, "%s --frob status 2>&1 >/dev/null", h_ctl_path());
	ck_assert_int_eq(r->status, 2);
	/* getopt's own line names the option; ours only points on. */
	ck_assert_msg(strstr(r->out, "'--frob'") && strstr(r->out, HINT),
		      "unclear: %s", r->out);
	ck_assert_msg(!strstr(r->out, "Usage:"), "whole usage: %s", r->out);
	free(r);
}
END_TEST

START_TEST(help_prints_the_whole_usage_on_stdout)
{
	const char *want[] = { "Usage:", " status", " audit PID", " pins PID",
			       " metrics", "--socket PATH", "--timeout SECONDS",
			       "--json", "--version", "Exit status:" };
	struct h_run *r = malloc(sizeof(*r));

	ck_assert_ptr_nonnull(r);
	h_run_cmd(r, "%s --help 2>/dev/null", h_ctl_path());
	ck_assert_int_eq(r->status, 0);
	for (size_t i = 0; i < sizeof(want) / sizeof(*want); i++)
		ck_assert_msg(strstr(r->out, want[i]), "no '%s' in:\n%s", want[i],
			      r->out);
	free(r);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cowguardctl names an unknown command");
	TCase *tc = tcase_create("cowguardctl");

	h_timeout(tc, 15);
	h_add(tc, an_unknown_command_is_named_with_a_hint_and_exits_two);
	h_add(tc, an_unknown_command_reaches_the_terminal_escaped);
	h_add(tc, a_missing_or_extra_argument_is_said_as_such);
	h_add(tc, an_unknown_option_gets_the_hint_not_the_whole_usage);
	h_add(tc, help_prints_the_whole_usage_on_stdout);
	suite_add_tcase(s, tc);
	return h_main(s, 0);
}
