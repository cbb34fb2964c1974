// SPDX-License-Identifier: MIT
/*
 * Under socket activation (cowguardd.socket) systemd makes the listening
 * socket and hands it over as fd 3, with LISTEN_PID and LISTEN_FDS=1.
 * The test plays systemd with a socket at a path of its own: the daemon
 * must serve that socket, name that path in its "listening on" line (not
 * its default, which it never touched), keep fd 3 and close every other
 * fd it was left (here a memfd at fd 4, as a careless parent would leak).
 *
 * Bugs this catches: logging --socket's default whatever was inherited
 * (an administrator reading the journal looks in the wrong place),
 * closing the inherited socket with the leaked fds, keeping the leaks.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define WAIT_MS 5000
#define LEAK_NAME "leaked-into-cowguardd"

struct activated {
	pid_t pid;
	char dir[32];
	char sock[64];
	char log[80];
};

static void sleep_ms(int ms)
{
	struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&t, NULL);
}

static int listening_socket(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(fd, 16), 0);
	return fd;
}

/* The child: fds 3 (and 4) as systemd (and a leaky parent) leave them. */
static void exec_activated(int lfd, int leak, const char *log)
{
	const char *dir = getenv("CG_BUILDDIR");
	char bin[256], pid[16];
	int logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

	/* Out of the way first, so that neither dup2 lands on the other. */
	lfd = fcntl(lfd, F_DUPFD_CLOEXEC, 100);
	leak = leak >= 0 ? fcntl(leak, F_DUPFD_CLOEXEC, 110) : -1;
	if (lfd < 0 || logfd < 0 || dup2(logfd, 2) < 0 || dup2(lfd, 3) != 3 ||
	    (leak >= 0 && dup2(leak, 4) != 4))
		_exit(126);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("LISTEN_PID", pid, 1);
	setenv("LISTEN_FDS", "1", 1);
	snprintf(bin, sizeof(bin), "%s/cowguardd", dir ? dir : "build");
	/* No --socket: the daemon's default is what it must not claim. */
	execl(bin, bin, "--verbose", (char *)NULL);
	_exit(127);
}

/* The daemon's log so far (its first 8 KiB), in a static buffer. */
static const char *log_text(const char *log)
{
	static char buf[8192];
	FILE *f = fopen(log, "re");
	size_t n = 0;

	if (f) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
	}
	buf[n] = 0;
	return buf;
}

static bool log_has(const char *log, const char *text)
{
	return strstr(log_text(log), text) != NULL;
}

static void activated_start(struct activated *a, bool leak)
{
	int lfd, leakfd = -1;

	snprintf(a->dir, sizeof(a->dir), "/tmp/cgactive.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(a->dir));
	chmod(a->dir, 0755);
	snprintf(a->sock, sizeof(a->sock), "%s/activated.sock", a->dir);
	snprintf(a->log, sizeof(a->log), "%s/cowguardd.log", a->dir);
	lfd = listening_socket(a->sock);
	if (leak)
		ck_assert_int_ge(leakfd = memfd_create(LEAK_NAME, 0), 0);
	a->pid = fork();
	ck_assert_int_ge(a->pid, 0);
	if (a->pid == 0)
		exec_activated(lfd, leakfd, a->log);
	close(lfd);
	if (leakfd >= 0)
		close(leakfd);
	for (int ms = 0; ms < WAIT_MS && !log_has(a->log, "listening on"); ms += 10) {
		ck_assert_msg(waitpid(a->pid, NULL, WNOHANG) == 0,
			      "cowguardd exited at start; see %s", a->log);
		sleep_ms(10);
	}
}

static void activated_stop(struct activated *a)
{
	char cmd[64];

	ck_assert_int_eq(h_daemon_stop(a->pid), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", a->dir);
	if (system(cmd))
		fprintf(stderr, "could not remove %s\n", a->dir);
}

/* What the daemon's fd n is, or "" when it has none. */
static const char *fd_target(pid_t pid, int n, char *buf, size_t len)
{
	char link[64];
	ssize_t got;

	snprintf(link, sizeof(link), "/proc/%d/fd/%d", (int)pid, n);
	got = readlink(link, buf, len - 1);
	buf[got > 0 ? got : 0] = 0;
	return buf;
}

/* Whether any fd of the daemon is the memfd we leaked. */
static bool holds_leak(pid_t pid)
{
	char buf[256];

	for (int n = 0; n < 256; n++)
		if (strstr(fd_target(pid, n, buf, sizeof(buf)), LEAK_NAME))
			return true;
	return false;
}

START_TEST(the_log_names_the_inherited_socket_not_the_default_path)
{
	struct activated a;
	char want[128];

	if (!h_have_own_daemon("plays systemd for a cowguardd of its own"))
		return;
	activated_start(&a, false);
	snprintf(want, sizeof(want), "listening on %s\n", a.sock);
	ck_assert_msg(log_has(a.log, want), "the log does not say \"%.*s\"; "
		      "it says:\n%s", (int)strlen(want) - 1, want, log_text(a.log));
	activated_stop(&a);
}
END_TEST

START_TEST(the_inherited_socket_is_served_and_other_inherited_fds_are_closed)
{
	struct h_run *r = malloc(sizeof(*r));
	struct activated a;
	char buf[256];

	if (!h_have_own_daemon("plays systemd for a cowguardd of its own"))
		return;
	ck_assert_ptr_nonnull(r);
	activated_start(&a, true);
	ck_assert_msg(strstr(fd_target(a.pid, 3, buf, sizeof(buf)), "socket:"),
		      "the daemon's fd 3 is \"%s\", not the socket it was handed", buf);
	ck_assert_msg(!holds_leak(a.pid), "the daemon kept the memfd it was "
		      "left at fd 4 (LISTEN_FDS=1)");
	h_run_cmd(r, "%s --socket '%s' status 2>&1", h_ctl_path(), a.sock);
	ck_assert_msg(r->status == 0, "cowguardctl status on the inherited "
		      "socket: exit %d: %s", r->status, r->out);
	activated_stop(&a);
	free(r);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("socket activation is served and named in the log");
	TCase *tc = tcase_create("activation");

	h_timeout(tc, 30);
	h_add(tc, the_log_names_the_inherited_socket_not_the_default_path);
	h_add(tc, the_inherited_socket_is_served_and_other_inherited_fds_are_closed);
	suite_add_tcase(s, tc);
	return h_main(s, 0);
}
