// SPDX-License-Identifier: MIT
/*
 * cowguardctl gives up on a daemon that does not answer.  With cowguardd
 * stopped (SIGSTOP: the kernel still queues connections, nothing answers)
 * every command returns within its --timeout, fractions allowed, exits 2,
 * and says on one line which socket did not answer within how long;
 * `metrics` still writes cowguard_up 0 for the collector.  Without
 * --timeout it gives up after the default 5 s.  A --timeout that is not a
 * number of seconds is a usage error; 0 waits as before.
 *
 * Bugs this catches (issue 9): cowguardctl waiting on a stopped daemon for
 * 30 s per answer, or forever once its backlog is full; a timeout message
 * that does not name the socket or the time; metrics that say nothing when
 * the daemon is down.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

/* A second daemon beside the suite's, stopped until stopped_end(). */
struct stopped {
	pid_t pid;
	char path[256];
};

static bool is_stopped(pid_t pid)
{
	char path[64], buf[512], *state;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	state = strrchr(buf, ')');	/* the name may hold anything */
	return state && state[1] == ' ' && state[2] == 'T';
}

static void stopped_start(struct stopped *s)
{
	struct timespec pause = { 0, 1000 * 1000 };
	const char *suite = h_socket();
	struct h_run *r = malloc(sizeof(*r));

	ck_assert_ptr_nonnull(r);
	snprintf(s->path, sizeof(s->path), "%.*s/stopped.sock",
		 (int)(strrchr(suite, '/') - suite), suite);
	s->pid = h_daemon_start(s->path);
	ck_assert_int_gt(s->pid, 0);
	/*
	 * It listens before it handles SIGTERM: an answer says its loop
	 * runs, so that stopped_end()'s SIGTERM is handled, not fatal.
	 */
	h_run_cmd(r, "%s --socket '%s' status >/dev/null", h_ctl_path(), s->path);
	ck_assert_int_eq(r->status, 0);
	free(r);
	ck_assert_int_eq(kill(s->pid, SIGSTOP), 0);
	for (int i = 0; i < 2000 && !is_stopped(s->pid); i++)
		nanosleep(&pause, NULL);
	ck_assert_msg(is_stopped(s->pid), "cowguardd %d did not stop", (int)s->pid);
}

/* Let it go and end it: before any assertion, so no daemon stays stopped. */
static int stopped_end(struct stopped *s)
{
	kill(s->pid, SIGCONT);
	return h_daemon_stop(s->pid);
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* What one command did against the stopped daemon. */
struct outcome {
	double secs;
	int status;
	char err[1024];		/* its stderr */
	char out[1024];		/* its stdout */
};

/*
 * Run cowguardctl OPTS CMD against s, once: stdout through the pipe,
 * stderr through a file beside the socket.  timeout(1) bounds a
 * cowguardctl that would wait too long, so the case fails, not hangs.
 */
static void run(struct outcome *o, const struct stopped *s, const char *opts,
		const char *cmd)
{
	struct h_run *r = malloc(sizeof(*r));
	char err_path[300];
	double t0 = now();
	FILE *f;
	size_t n = 0;

	ck_assert_ptr_nonnull(r);
	snprintf(err_path, sizeof(err_path), "%s.err", s->path);
	h_run_cmd(r, "timeout -k 1 15 %s --socket '%s' %s %s 2>'%s'",
		  h_ctl_path(), s->path, opts, cmd, err_path);
	o->secs = now() - t0;
	o->status = r->status;
	snprintf(o->out, sizeof(o->out), "%.1000s", r->out);
	f = fopen(err_path, "r");
	if (f) {
		n = fread(o->err, 1, sizeof(o->err) - 1, f);
		fclose(f);
	}
	o->err[n] = 0;
	unlink(err_path);
	free(r);
}

/* Check's own factor for slow runs (sanitizers, an emulated guest). */
static double slack(void)
{
	const char *m = getenv("CK_TIMEOUT_MULTIPLIER");
	double v = m ? atof(m) : 1;

	return v >= 1 ? v : 1;
}

/* Exit 2, in time, one line naming the socket and the timeout. */
static void assert_gave_up(const struct outcome *o, const struct stopped *s,
			   const char *cmd, const char *secs, double bound)
{
	char want[512];

	ck_assert_msg(o->status == 2, "%s: exit %d, stderr: %s", cmd, o->status,
		      o->err);
	bound *= slack();
	ck_assert_msg(o->secs < bound, "%s: took %.2f s (bound %.1f s)", cmd,
		      o->secs, bound);
	snprintf(want, sizeof(want),
		 "cowguardctl: no answer from cowguardd at %s within %s s",
		 s->path, secs);
	ck_assert_msg(!strncmp(o->err, want, strlen(want)),
		      "%s: stderr is not '%s...':\n%s", cmd, want, o->err);
	ck_assert_msg(strchr(o->err, '\n') == o->err + strlen(o->err) - 1,
		      "%s: not one line:\n%s", cmd, o->err);
}

START_TEST(every_command_gives_up_on_a_stopped_daemon_within_its_timeout)
{
	char audit[32], pins[32];
	const char *cmds[] = { "status", audit, pins, "metrics" };
	struct outcome got[4];
	struct stopped s;
	int end;

	if (!h_have_own_daemon("stops a daemon of its own"))
		return;
	snprintf(audit, sizeof(audit), "audit %d", (int)getpid());
	snprintf(pins, sizeof(pins), "pins %d", (int)getpid());
	stopped_start(&s);
	for (int i = 0; i < 4; i++)
		run(&got[i], &s, "--timeout 0.5", cmds[i]);
	end = stopped_end(&s);

	for (int i = 0; i < 4; i++)
		assert_gave_up(&got[i], &s, cmds[i], "0.5", 3.0);
	/* The collector gets a file that says the daemon is down. */
	ck_assert_msg(strstr(got[3].out, "\ncowguard_up{socket=\""),
		      "no cowguard_up in:\n%s", got[3].out);
	ck_assert_msg(strstr(got[3].out, "\"} 0\n"), "cowguard_up is not 0:\n%s",
		      got[3].out);
	ck_assert_msg(!got[0].out[0], "status printed:\n%s", got[0].out);
	ck_assert_int_eq(end, 0);
}
END_TEST

START_TEST(without_a_timeout_option_it_gives_up_after_five_seconds)
{
	struct outcome got;
	struct stopped s;
	int end;

	if (!h_have_own_daemon("stops a daemon of its own"))
		return;
	stopped_start(&s);
	run(&got, &s, "", "status");
	end = stopped_end(&s);

	assert_gave_up(&got, &s, "status", "5", 8.0);
	ck_assert_msg(got.secs > 4.5, "gave up after %.2f s, not 5", got.secs);
	ck_assert_int_eq(end, 0);
}
END_TEST

START_TEST(a_timeout_that_is_not_seconds_is_refused)
{
	const char *bad[] = { "abc", "-1", "nan", "inf", "1e9", "5s", "" };
	struct h_run *r = malloc(sizeof(*r));

	ck_assert_ptr_nonnull(r);
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		h_run_cmd(r, "%s --socket '%s' --timeout '%s' status 2>&1",
			  h_ctl_path(), h_socket(), bad[i]);
		ck_assert_msg(r->status == 2, "--timeout '%s': exit %d", bad[i],
			      r->status);
		ck_assert_msg(strstr(r->out, "cowguardctl: --timeout: "),
			      "--timeout '%s': unclear: %s", bad[i], r->out);
	}
	/* A daemon that answers: a short timeout, or none, is no error. */
	h_run_cmd(r, "%s --socket '%s' --timeout 0.25 status 2>&1", h_ctl_path(),
		  h_socket());
	ck_assert_msg(r->status == 0, "--timeout 0.25: exit %d: %s", r->status,
		      r->out);
	h_run_cmd(r, "%s --socket '%s' -t 0 status 2>&1", h_ctl_path(), h_socket());
	ck_assert_msg(r->status == 0, "-t 0: exit %d: %s", r->status, r->out);
	free(r);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cowguardctl gives up on a stopped daemon");
	TCase *tc = tcase_create("cowguardctl");

	h_timeout(tc, 40);
	h_add(tc, every_command_gives_up_on_a_stopped_daemon_within_its_timeout);
	h_add(tc, without_a_timeout_option_it_gives_up_after_five_seconds);
	h_add(tc, a_timeout_that_is_not_seconds_is_refused);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
