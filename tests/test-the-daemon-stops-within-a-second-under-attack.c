// SPDX-License-Identifier: MIT
/*
 * Whatever a client does, the daemon must still be able to stop: a loop
 * thread stuck on a client (a read of its memory, a blocking uffd, a full
 * socket) would leave SIGTERM unanswered, and systemd would SIGKILL it
 * after 90 s with every client's faults waiting.  Each case starts a
 * daemon of its own, lets one attack of issue 11's table run against it
 * for a moment, then sends SIGTERM: it must exit, cleanly, within a second.
 *
 * Bug this catches: any attack that wedges the event loop.
 */
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>

#include "attacks.h"
#include "harness.h"

#define ATTACK_MS 400		/* how long the attack runs before SIGTERM */
#define STOP_MAX_MS 1000.0

/* ms until pid exits (status in *status), or -1 after 5 s. */
static double exit_within(pid_t pid, int *status)
{
	double t0 = h_now_ms();
	struct timespec pause = { 0, 2 * 1000 * 1000 };

	while (h_now_ms() - t0 < 5000) {
		if (waitpid(pid, status, WNOHANG) == pid)
			return h_now_ms() - t0;
		nanosleep(&pause, NULL);
	}
	return -1;
}

START_TEST(the_daemon_stops_within_a_second_under_attack)
{
	const struct attack *a = &attacks[_i];
	char path[108];
	struct timespec run = { ATTACK_MS / 1000, (ATTACK_MS % 1000) * 1000000L };
	pid_t daemon, attacker;
	int status = 0;
	double took;

	if (!h_have_own_daemon("it stops its daemon"))
		return;
	snprintf(path, sizeof(path), "%s.%d", h_socket(), _i);
	attack_socket = path;
	daemon = attack_daemon_start(a, path);
	ck_assert_int_gt(daemon, 0);
	attacker = attack_start(a);
	ck_assert_int_gt(attacker, 0);
	nanosleep(&run, NULL);
	kill(daemon, SIGTERM);
	took = exit_within(daemon, &status);
	if (took < 0)
		kill(daemon, SIGKILL), waitpid(daemon, NULL, 0);
	kill(attacker, SIGKILL);
	waitpid(attacker, NULL, 0);
	ck_assert_msg(took >= 0, "%s: the daemon did not stop in 5 s", a->name);
	ck_assert_msg(took < STOP_MAX_MS, "%s: the daemon took %.0f ms to stop",
		      a->name, took);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "%s: the daemon ended with status %#x", a->name, status);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("the daemon stops within a second under attack");
	TCase *tc = tcase_create("attacks");

	h_timeout(tc, 30);
	h_add_loop(tc, the_daemon_stops_within_a_second_under_attack, (int)(sizeof(attacks) / sizeof(*attacks)));
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
