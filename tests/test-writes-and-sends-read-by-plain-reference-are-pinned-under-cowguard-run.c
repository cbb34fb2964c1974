// SPDX-License-Identifier: MIT
/*
 * What the kernel reads from a program's memory by plain reference, seen
 * at the call (tests/apps/ programs, which know nothing of cowguard):
 *  - an O_DIRECT write (write, pwrite, writev, pwritev, pwritev2, io_uring
 *    WRITE and WRITEV) of pages a fork left shared.  Without the shim the program says what the
 *    kernel did (lib/kernel/odirect.c): every page its own after the write
 *    where the kernel unshares for it (6.2-6.3 on), none where it reads
 *    the shared page (6.1, 5.10).  Under cowguard-run every page is the
 *    program's own, and the shim pinned exactly where the kernel would not
 *    have: what cowguard-run learned at start must agree with the kernel's
 *    own behaviour.  Where nothing was learned (COWGUARD_ODIRECT empty),
 *    and with the older handling asked for (COWGUARD_KERNEL=pre-5.19), it
 *    pins on every kernel, which exercises the pinning path on this one
 *    too; an io_uring request's pin then ends at its completion.
 *  - an io_uring zero-copy send (SEND_ZC, plain references everywhere),
 *    pinned at submission and held until the shim sees its notification.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define PAGES 16

struct odirect {
	const char *args;	/* the app's */
	const char *counter;	/* the shim's count for it */
};

static const struct odirect by_write = { "--write", "odirect" };
static const struct odirect by_pwrite = { "", "odirect" };
static const struct odirect by_writev = { "--writev", "odirect" };
static const struct odirect by_pwritev = { "--pwritev", "odirect" };
static const struct odirect by_pwritev2 = { "--pwritev2", "odirect" };
static const struct odirect by_uring = { "--uring", "uring" };
/* A descriptor the program did not open: the exec'd image inherited it. */
static const struct odirect inherited = { "--inherited", "odirect" };
static const struct odirect inherited_uring = { "--inherited --uring",
						"uring" };
static const struct odirect by_uring_writev = { "--uring-writev", "uring" };

/* Pages mapped alone after the write, as the app said; -1 after a skip. */
static int after_write(const struct h_app *r, struct h_run *out)
{
	int before = -1, after = -1;
	const char *said;

	if (!h_app_checked(r, out))
		return -1;
	said = strstr(out->out, "before the write:");
	ck_assert_msg(said && sscanf(said, "before the write: %d, after: %d",
				     &before, &after) == 2,
		      "%s %s said: %s", r->app, r->args, out->out);
	ck_assert_msg(before == 0, "%s: %d pages were not shared after the "
		      "fork: the case proves nothing", r->args, before);
	return after;
}

/*
 * Under cowguard-run with run: every page the program's own after the
 * write, pinned (or unshared, without a daemon) exactly where plain, and
 * the shim's log holds also (when not NULL).
 */
static void written(const struct odirect *c, const char *run, bool plain,
		    const char *also)
{
	struct h_run *out = malloc(sizeof(*out));
	char counted[64], unshared[64];
	bool daemon = !strcmp(run, "--mode daemon");
	struct h_app r = { "odirect-write-after-fork", c->args, run, 0,
			   { counted, unshared, also } };

	ck_assert_ptr_nonnull(out);
	snprintf(counted, sizeof(counted), "%s %d", c->counter,
		 plain && daemon);
	snprintf(unshared, sizeof(unshared), "unshared without a daemon %d",
		 plain && !daemon);
	if (after_write(&r, out) >= 0)
		ck_assert_msg(strstr(out->out, "after: 16 of 16"), "%s under "
			      "cowguard-run %s: %s", c->args, run, out->out);
	free(out);
}

static void o_direct_write(const void *arg, int mode, enum h_kind kind)
{
	const struct odirect *c = arg;
	const struct h_app without = { "odirect-write-after-fork", c->args,
				       NULL, 0, { NULL } };
	struct h_run *out = malloc(sizeof(*out));
	int after;

	(void)mode;
	(void)kind;
	ck_assert_ptr_nonnull(out);
	after = after_write(&without, out);
	free(out);
	if (after < 0)
		return;
	ck_assert_msg(after == 0 || after == PAGES, "without the shim %d of "
		      "%d pages were unshared", after, PAGES);
	written(c, "--mode daemon", after == 0, NULL);
	written(c, "--mode embedded", after == 0, NULL);
	/* Nothing learned at start: every O_DIRECT write is pinned. */
	setenv("COWGUARD_ODIRECT", "", 1);
	written(c, "--mode daemon", true, "pinned before each");
	unsetenv("COWGUARD_ODIRECT");
}

static void o_direct_write_pre_5_19(const void *arg, int mode,
				    enum h_kind kind)
{
	(void)mode;
	(void)kind;
	setenv("COWGUARD_KERNEL", "pre-5.19", 1);
	written(arg, "--mode daemon", true, "pins held at exit 0");
	written(arg, "--mode embedded", true, NULL);
	unsetenv("COWGUARD_KERNEL");
}

static const struct h_app send_zc = {
	"zerocopy-send-after-fork", "--uring", "--mode daemon", 0,
	{ "uring 1,", "pins held at exit 0", "replaced while pinned 0;" },
};
static const struct h_app send_zc_pending = {
	"zerocopy-send-after-fork", "--uring --no-completion", "--mode daemon",
	0, { "uring 1,", "pins held at exit 1", NULL },
};

static const struct h_case cases[] = {
	H_CASE_AS(an_o_direct_write_after_fork_reads_pages_the_program_maps_alone,
		  o_direct_write, &by_write, 0, 0),
	H_CASE_AS(an_o_direct_pwrite_after_fork_reads_pages_the_program_maps_alone,
		  o_direct_write, &by_pwrite, 0, 0),
	H_CASE_AS(an_o_direct_writev_after_fork_reads_pages_the_program_maps_alone,
		  o_direct_write, &by_writev, 0, 0),
	H_CASE_AS(an_o_direct_pwritev_after_fork_reads_pages_the_program_maps_alone,
		  o_direct_write, &by_pwritev, 0, 0),
	H_CASE_AS(an_o_direct_pwritev2_after_fork_reads_pages_the_program_maps_alone,
		  o_direct_write, &by_pwritev2, 0, 0),
	H_CASE_AS(an_io_uring_o_direct_write_after_fork_reads_pages_the_program_maps_alone,
		  o_direct_write, &by_uring, 0, 0),
	H_CASE_AS(an_io_uring_o_direct_writev_after_fork_reads_pages_the_program_maps_alone,
		  o_direct_write, &by_uring_writev, 0, 0),
	H_CASE_AS(an_o_direct_write_to_an_inherited_descriptor_is_followed,
		  o_direct_write, &inherited, 0, 0),
	H_CASE_AS(an_io_uring_o_direct_write_to_an_inherited_descriptor_is_followed,
		  o_direct_write, &inherited_uring, 0, 0),
	H_CASE_AS(with_the_older_handling_every_o_direct_pwrite_is_pinned,
		  o_direct_write_pre_5_19, &by_pwrite, 0, 0),
	H_CASE_AS(with_the_older_handling_every_io_uring_o_direct_write_is_pinned,
		  o_direct_write_pre_5_19, &by_uring, 0, 0),
	H_CASE_AS(an_io_uring_zero_copy_send_is_pinned_until_its_notification_is_seen,
		  h_app_runs_as_said, &send_zc, 0, 0),
	H_CASE_AS(an_io_uring_zero_copy_send_whose_notification_is_never_seen_keeps_its_pin,
		  h_app_runs_as_said, &send_zc_pending, 0, 0),
};

int main(void)
{
	Suite *s = suite_create("writes and sends read by plain reference are "
				"pinned under cowguard-run");
	TCase *tc = tcase_create("plain references");

	h_timeout(tc, 60);
	H_ADD_CASES(tc, cases);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
