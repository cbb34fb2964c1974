// SPDX-License-Identifier: MIT
/*
 * cowguardd runs as root; whatever started it (a shell, a script, a
 * supervisor) may have left it fds it never asked for: a terminal, a pipe,
 * an open secret.  It closes every fd above 2 at start, so it neither
 * holds them for its lifetime nor acts on them by mistake.  (Under socket
 * activation the fds systemd passes stay: see
 * test-socket-activation-is-served-and-named-in-the-log.c.)
 *
 * Bug this catches: no close at start (the memfd below stays open in the
 * daemon for as long as it runs).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

#define LEAK_NAME "leaked-into-cowguardd"

/* Whether any fd of pid is the memfd we leaked. */
static bool holds_leak(pid_t pid)
{
	for (int n = 0; n < 256; n++) {
		char link[64], target[256];
		ssize_t got;

		snprintf(link, sizeof(link), "/proc/%d/fd/%d", (int)pid, n);
		got = readlink(link, target, sizeof(target) - 1);
		if (got <= 0)
			continue;
		target[got] = 0;
		if (strstr(target, LEAK_NAME))
			return true;
	}
	return false;
}

START_TEST(an_fd_left_open_by_whoever_started_the_daemon_is_closed)
{
	char dir[32] = "/tmp/cgleak.XXXXXX", sock[64], cmd[64];
	int leak;
	pid_t pid;

	if (!h_have_own_daemon("starts a cowguardd of its own"))
		return;
	ck_assert_ptr_nonnull(mkdtemp(dir));
	chmod(dir, 0755);
	snprintf(sock, sizeof(sock), "%s/cowguardd.sock", dir);
	/* Not O_CLOEXEC: inherited through h_daemon_start()'s exec. */
	leak = memfd_create(LEAK_NAME, 0);
	ck_assert_int_ge(leak, 0);
	pid = h_daemon_start(sock);
	close(leak);
	ck_assert_int_gt(pid, 0);
	ck_assert_msg(!holds_leak(pid), "cowguardd (pid %d) still holds the "
		      "memfd it inherited", (int)pid);
	ck_assert_int_eq(h_daemon_stop(pid), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd))
		fprintf(stderr, "could not remove %s\n", dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("daemon closes the fds it inherits");
	TCase *tc = tcase_create("fds");

	h_timeout(tc, 30);
	h_add(tc, an_fd_left_open_by_whoever_started_the_daemon_is_closed);
	suite_add_tcase(s, tc);
	return h_main(s, 0);
}
