// SPDX-License-Identifier: MIT
/*
 * cowguardctl connections need no uffd and a hello ends their timer, so
 * one user could hold every --max-clients slot and keep everyone out,
 * root included.  A user other than root is bounded by
 * --max-conns-per-user, the last slots are root's, and each refusal is a
 * specific errno in the reply to the hello, logged once a second at most.
 * The user here is nobody (65534), in a forked child.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "harness.h"

#define NOBODY 65534
#define PER_USER 4
#define MAX_CLIENTS 12		/* of which the last 3 (a quarter) are root's */
#define REFUSALS 200		/* a flood of them, for the log */

struct user_result {
	int error;		/* 0, or where it failed (a line number) */
	int opened;		/* connections it had before the refusal */
	int refusal;		/* the status of the next hello */
	int refusals;		/* how many of the flood were refused so */
};

/*
 * In the child, as nobody: open ctl connections to the daemon at path
 * while they are accepted (at most want + 1), then try REFUSALS more,
 * report, and hold them until told.
 */
static int user_main(const char *path, int want, int out, int go)
{
	struct cg__client *c = calloc((size_t)want + 1, sizeof(*c));
	struct user_result r = { 0 };
	char b;

	if (!c || setgroups(0, NULL) || setresgid(NOBODY, NOBODY, NOBODY) ||
	    setresuid(NOBODY, NOBODY, NOBODY))
		r.error = __LINE__;
	while (!r.error && r.opened < want + 1) {
		int ret = cg__client_open_ctl(&c[r.opened], path);

		if (ret) {
			r.refusal = ret;
			break;
		}
		r.opened++;
	}
	for (int i = 0; !r.error && i < REFUSALS; i++) {
		struct cg__client extra = { .sock = -1 };

		r.refusals += cg__client_open_ctl(&extra, path) == r.refusal;
		cg__client_close(&extra);
	}
	if (write(out, &r, sizeof(r)) != sizeof(r))
		return 2;
	return read(go, &b, 1) == 1 ? 0 : 3;
}

struct user {
	pid_t pid;
	int go;
	struct user_result r;
};

/*
 * Start the child on the daemon at path and wait for its report; it holds
 * its connections until user_end().
 */
static void user_start_at(struct user *u, const char *path, int want)
{
	int res[2], go[2];
	struct pollfd p;

	ck_assert_int_eq(pipe2(res, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
	u->pid = fork();
	ck_assert_int_ge(u->pid, 0);
	if (u->pid == 0)
		_exit(user_main(path, want, res[1], go[0]));
	close(res[1]);
	close(go[0]);
	u->go = go[1];
	p = (struct pollfd){ .fd = res[0], .events = POLLIN };
	ck_assert_int_eq(poll(&p, 1, 20000), 1);
	ck_assert_int_eq(read(res[0], &u->r, sizeof(u->r)), sizeof(u->r));
	close(res[0]);
	ck_assert_msg(u->r.error == 0, "the user's child failed at line %d",
		      u->r.error);
}

static void user_end(struct user *u)
{
	ck_assert_int_eq(write(u->go, "g", 1), 1);
	ck_assert_int_eq(h_wait(u->pid), 0);
	close(u->go);
}

/* Root's ctl connection and a tracked client of root's. */
static void root_still_connects(const char *path)
{
	struct cg_options o = { CG_MODE_DAEMON, path };
	struct cg__client c = { .sock = -1 };
	struct cg *cg = NULL;

	ck_assert_int_eq(cg__client_open_ctl(&c, path), 0);
	ck_assert_int_eq(cg_open(&o, sizeof(o), &cg), 0);
	cg_close(cg);
	cg__client_close(&c);
}

static bool own_root_daemon(void)
{
	return h_have_root("becomes nobody in a child") &&
	       h_have_own_daemon("starts daemons with connection bounds");
}

START_TEST(a_user_over_its_connection_bound_is_refused_and_root_still_connects)
{
	char path[160], arg[16];
	double t0, secs;
	struct user u;
	int lines;
	pid_t d;

	if (!own_root_daemon())
		return;
	snprintf(path, sizeof(path), "%s.per-user", h_socket());
	snprintf(arg, sizeof(arg), "%d", PER_USER);
	d = h_daemon_start_opt(path, "--max-conns-per-user", arg);
	ck_assert_int_gt(d, 0);
	u = (struct user){ 0 };
	t0 = h_now_ms();
	user_start_at(&u, path, PER_USER);
	ck_assert_int_eq(u.r.opened, PER_USER);
	ck_assert_msg(u.r.refusal == -EUSERS, "hello %d of the user: %d (%s)",
		      PER_USER + 1, u.r.refusal, cg_strerror(u.r.refusal));
	ck_assert_int_eq(u.r.refusals, REFUSALS);
	root_still_connects(path);
	user_end(&u);
	ck_assert_int_ge(h_log_lines(path, "refusing a connection: uid 65534 has "
				     "4 already"), 1);
	/*
	 * A flood of refusals is a line a second (and the first), not
	 * hundreds: a slow guest takes more seconds for it.
	 */
	lines = h_log_lines(path, "refusing a connection");
	secs = (h_now_ms() - t0) / 1000;
	ck_assert_msg(lines <= 2 + (int)secs, "%d lines for refusals over %.1f "
		      "s", lines, secs);
	ck_assert_int_eq(h_daemon_stop(d), 0);
}
END_TEST

START_TEST(the_last_slots_are_kept_for_root)
{
	char path[160], arg[16];
	struct user u;
	pid_t d;

	if (!own_root_daemon())
		return;
	snprintf(path, sizeof(path), "%s.root-slots", h_socket());
	snprintf(arg, sizeof(arg), "%d", MAX_CLIENTS);
	d = h_daemon_start_opt(path, "--max-clients", arg);
	ck_assert_int_gt(d, 0);
	u = (struct user){ 0 };
	user_start_at(&u, path, MAX_CLIENTS);
	ck_assert_msg(u.r.opened == MAX_CLIENTS - MAX_CLIENTS / 4, "the user "
		      "opened %d of %d slots", u.r.opened, MAX_CLIENTS);
	ck_assert_msg(u.r.refusal == -EAGAIN, "the user's next hello: %d (%s)",
		      u.r.refusal, cg_strerror(u.r.refusal));
	root_still_connects(path);
	user_end(&u);
	ck_assert_int_ge(h_log_lines(path, "slots are root's"), 1);
	ck_assert_int_eq(h_daemon_stop(d), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("one user cannot take every connection");
	TCase *tc = tcase_create("bounds");

	h_timeout(tc, 60);
	h_add(tc, a_user_over_its_connection_bound_is_refused_and_root_still_connects);
	h_add(tc, the_last_slots_are_kept_for_root);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
