// SPDX-License-Identifier: MIT
/*
 * Under a Type=notify unit systemd waits for READY=1 before it counts
 * cowguardd as started (and starts what is ordered after it), shows
 * STATUS= in `systemctl status`, and learns from STOPPING=1 that the
 * daemon is going down on purpose.  The test plays systemd: a datagram
 * socket named by $NOTIFY_SOCKET, as a path and in the abstract
 * namespace ('@'), which is what systemd hands a service in a container.
 *
 * Bugs this catches: no sd_notify at all (systemd would time the start
 * out), READY=1 before the socket listens, a STATUS= that never follows
 * the clients, no STOPPING=1 on SIGTERM, an abstract name sent with its
 * '@' (or a NUL) as part of the address.
 */
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"

#define WAIT_MS 5000

struct manager {
	int fd;			/* the notify socket, as systemd's */
	char dir[32];
	char sock[64];		/* the daemon's listening socket */
	char notify[108];	/* $NOTIFY_SOCKET */
	char seen[8192];	/* every message so far, one after another */
	size_t from;		/* where the next wait looks from */
};

static void manager_open(struct manager *m, bool abstract)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t len;

	snprintf(m->dir, sizeof(m->dir), "/tmp/cgnotify.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(m->dir));
	snprintf(m->sock, sizeof(m->sock), "%s/cowguardd.sock", m->dir);
	if (abstract)
		snprintf(m->notify, sizeof(m->notify), "@cowguard-test-notify-%d",
			 (int)getpid());
	else
		snprintf(m->notify, sizeof(m->notify), "%s/notify", m->dir);
	memcpy(sa.sun_path, m->notify, strlen(m->notify));
	if (abstract)
		sa.sun_path[0] = 0;
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(m->notify));
	m->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(m->fd, 0);
	ck_assert_msg(bind(m->fd, (struct sockaddr *)&sa, len) == 0, "bind %s: %s",
		      m->notify, strerror(errno));
	m->seen[0] = 0;
	m->from = 0;
}

static void manager_close(struct manager *m)
{
	char cmd[64];

	close(m->fd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", m->dir);
	if (system(cmd))
		fprintf(stderr, "could not remove %s\n", m->dir);
}

/*
 * Read messages until line (a whole line) comes, for up to WAIT_MS.  Each
 * wait looks after what the one before it found: they come in that order.
 */
static bool manager_wait(struct manager *m, const char *line)
{
	for (int waited = 0; waited < WAIT_MS; waited += 50) {
		struct pollfd p = { .fd = m->fd, .events = POLLIN };
		char msg[1024], want[256], *at;
		ssize_t n;

		snprintf(want, sizeof(want), "\n%s\n", line);
		at = strstr(m->seen + m->from, want);
		if (at) {
			m->from = (size_t)(at - m->seen) + strlen(want) - 1;
			return true;
		}
		if (poll(&p, 1, 50) != 1)
			continue;
		n = recv(m->fd, msg, sizeof(msg) - 1, 0);
		if (n <= 0)
			continue;
		msg[n] = 0;
		/* Each line between newlines, so a prefix never matches. */
		snprintf(m->seen + strlen(m->seen), sizeof(m->seen) - strlen(m->seen),
			 "\n%s\n", msg);
	}
	return false;
}

static pid_t start_notified(struct manager *m)
{
	pid_t pid;

	setenv("NOTIFY_SOCKET", m->notify, 1);
	pid = h_daemon_start(m->sock);
	unsetenv("NOTIFY_SOCKET");
	ck_assert_msg(pid > 0, "cowguardd did not start");
	return pid;
}

/* _i: 0 a path, 1 an abstract name. */
START_TEST(the_daemon_says_ready_once_it_listens_and_stopping_on_sigterm)
{
	struct manager m;
	pid_t pid;
	int status;

	if (!h_have_own_daemon("starts cowguardd with $NOTIFY_SOCKET"))
		return;
	manager_open(&m, _i);
	pid = start_notified(&m);
	ck_assert_msg(manager_wait(&m, "READY=1"), "NOTIFY_SOCKET=%s: no READY=1 "
		      "within %d ms; got: %s", m.notify, WAIT_MS, m.seen);
	/* h_daemon_start() returned once the socket answered: it listens. */
	ck_assert_msg(manager_wait(&m, "STATUS=serving 0 clients (0 connections)"),
		      "no first STATUS=; got: %s", m.seen);
	status = h_daemon_stop(pid);
	ck_assert_int_eq(status, 0);
	ck_assert_msg(manager_wait(&m, "STOPPING=1"), "NOTIFY_SOCKET=%s: no "
		      "STOPPING=1 after SIGTERM; got: %s", m.notify, m.seen);
	manager_close(&m);
}
END_TEST

/* A connection that has not said hello yet: counted, not yet a client. */
static int raw_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

START_TEST(the_daemon_status_follows_its_connections)
{
	struct manager m;
	pid_t pid;
	int fd;

	if (!h_have_own_daemon("starts cowguardd with $NOTIFY_SOCKET"))
		return;
	manager_open(&m, false);
	pid = start_notified(&m);
	ck_assert(manager_wait(&m, "READY=1"));
	fd = raw_connect(m.sock);
	ck_assert_msg(manager_wait(&m, "STATUS=serving 0 clients (1 connection)"),
		      "STATUS= does not show the connection; got: %s", m.seen);
	close(fd);
	ck_assert_msg(manager_wait(&m, "STATUS=serving 0 clients (0 connections)"),
		      "STATUS= does not show the connection go; got: %s", m.seen);
	ck_assert_int_eq(h_daemon_stop(pid), 0);
	manager_close(&m);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("daemon tells systemd when it is ready and stopping");
	TCase *tc = tcase_create("notify");

	h_timeout(tc, 30);
	h_add_loop(tc, the_daemon_says_ready_once_it_listens_and_stopping_on_sigterm, 2);
	h_add(tc, the_daemon_status_follows_its_connections);
	suite_add_tcase(s, tc);
	return h_main(s, 0);
}
