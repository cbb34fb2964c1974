// SPDX-License-Identifier: MIT
/*
 * One event loop serves every client, so no client may slow the others
 * down, whatever it does.  Each case starts a daemon of its own (in the
 * unprivileged lane it attacks the lane's root daemon as that user) and a
 * victim client (another process, connected first), then lets one attack
 * of issue 11's table run (tests/attacks.h).  Meanwhile the victim writes
 * to its protected pages and queries them: its queries must keep a p99
 * under 50 ms (a bound, not a benchmark), and it must get through enough
 * of them to judge.
 *
 * Bug this catches: any attack that stalls the loop for everyone.
 */
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "attacks.h"
#include "harness.h"
#include "victim.h"

#define VICTIM_MS 1500		/* how long the victim measures */
#define UNTIMED_MS 500		/* where time means nothing: served at all */
#define PAGES 256		/* it writes and queries them round and round */
#define MIN_QUERIES 100
#define P99_MAX_MS 50.0
#define MAX_SAMPLES 100000

START_TEST(others_are_served_while_a_client_attacks)
{
	const struct attack *a = &attacks[_i];
	const bool timed = h_time_bounds(a->name);
	char path[108];
	/*
	 * A turn is a write (the first to a page, a fault) and a query, timed
	 * together; without pause, until time is up.
	 */
	const struct victim_spec spec = {
		.socket = path, .pages = PAGES, .turns = MAX_SAMPLES,
		.max_ms = timed ? VICTIM_MS : UNTIMED_MS,
	};
	pid_t daemon, attacker;
	struct victim_result r;
	struct victim v;

	/*
	 * A daemon of its own where the test may start one; in the
	 * unprivileged lane, the lane's (root's) daemon, attacked by a user.
	 */
	if (h_daemon_pid()) {
		snprintf(path, sizeof(path), "%s.%d", h_socket(), _i);
		daemon = attack_daemon_start(a, path);
		ck_assert_int_gt(daemon, 0);
	} else if (a->nofile) {
		h_skip("%s: needs a daemon of its own, with few fds", a->name);
		return;
	} else {
		snprintf(path, sizeof(path), "%s", h_socket());
		daemon = 0;
	}
	attack_socket = path;
	v = victim_start(&spec);
	attacker = attack_start(a);
	ck_assert_int_gt(attacker, 0);
	victim_go(&v);
	r = victim_finish(&v);
	kill(attacker, SIGKILL);
	/* Killed at it: an attack that gave up early proved nothing. */
	ck_assert_msg(h_wait(attacker) == 128 + SIGKILL, "%s: the attacker "
		      "exited before the victim was done", a->name);
	if (daemon)
		ck_assert_int_eq(h_daemon_stop(daemon), 0);
	printf("%s: %d queries, p99 %.2f ms, max %.2f ms\n", a->name, r.done,
	       r.turn.p99, r.turn.max);
	/* Where time means nothing: served at all, and no memory error. */
	if (!timed) {
		victim_assert_enough(&r, &spec, 1, a->name);
		return;
	}
	victim_assert_enough(&r, &spec, MIN_QUERIES, a->name);
	ck_assert_msg(r.turn.p99 < P99_MAX_MS, "%s: the victim's queries took "
		      "%.1f ms at p99 (max %.1f)", a->name, r.turn.p99, r.turn.max);
	ck_assert_msg(!a->max_ms || r.turn.max < a->max_ms, "%s: the victim "
		      "waited %.1f ms at once (over %.0f)", a->name, r.turn.max,
		      a->max_ms);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("others are served while a client attacks");
	TCase *tc = tcase_create("attacks");

	h_timeout(tc, 30);
	h_add_loop(tc, others_are_served_while_a_client_attacks, (int)(sizeof(attacks) / sizeof(*attacks)));
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
