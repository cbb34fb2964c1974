// SPDX-License-Identifier: MIT
/*
 * A uffd gives whoever holds it control over the memory it covers, so the
 * client hands one only to a server it trusts: root, its own user, or the
 * user $COWGUARD_DAEMON_USER names.  A socket served by another,
 * unprivileged user (here nobody, through a forked child that setresuid()s
 * and listens) is refused with -EACCES before anything is sent, whether
 * $COWGUARD_DAEMON_USER is unset, names someone else or names no user; in
 * CG_MODE_AUTO the client goes on embedded, again sending nothing.  Named
 * by $COWGUARD_DAEMON_USER (by name or by uid), the same server gets the
 * uffd: that shows the fake server would have seen one.
 *
 * Bugs this catches: no SO_PEERCRED check, or one made after the uffd was
 * sent; trusting the socket file's owner instead of the listener; an
 * unknown name in $COWGUARD_DAEMON_USER read as uid 0 (or as anybody).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"

#define FOREIGN "nobody"
#define WAIT_MS 5000

/* What the fake server saw on its one connection. */
struct seen {
	int accepted;	/* a client connected */
	int packets;	/* packets received before the client hung up */
	int fds;	/* file descriptors among them (SCM_RIGHTS) */
	int uffds;	/* of which userfaultfds */
};

struct server {
	pid_t pid;
	int report_rd;
	char dir[32];
	char path[64];
};

static bool readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 1;
}

static bool is_uffd(int fd)
{
	char link[64], target[64];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		return false;
	target[n] = 0;
	return strcmp(target, "anon_inode:[userfaultfd]") == 0;
}

/* Count the packets and fds of one connection until the client hangs up. */
static void take_one(int lfd, struct seen *s)
{
	union {
		char buf[CMSG_SPACE(16 * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	char data[4096];
	int c;

	if (!readable(lfd, WAIT_MS))
		return;
	c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0)
		return;
	s->accepted = 1;
	/* A client that sent its uffd waits for a reply: hang up on it. */
	while (readable(c, s->fds ? 200 : WAIT_MS)) {
		struct iovec iov = { data, sizeof(data) };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
				    .msg_control = ctl.buf,
				    .msg_controllen = sizeof(ctl.buf) };
		ssize_t n = recvmsg(c, &m, MSG_CMSG_CLOEXEC);

		if (n <= 0)
			break;
		s->packets++;
		for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h)) {
			if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
				continue;
			for (size_t i = 0; i < (h->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
				int fd;

				memcpy(&fd, CMSG_DATA(h) + i * sizeof(int), sizeof(fd));
				s->fds++;
				s->uffds += is_uffd(fd);
				close(fd);
			}
		}
	}
	close(c);
}

/* The fake server: become the foreign user, listen, report what came. */
static int serve_as(const struct passwd *pw, const char *path, int ready_wr,
		    int report_wr)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct seen s = { 0 };
	int lfd;

	if (setgroups(0, NULL) || setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) ||
	    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) || getuid() == 0)
		return 2;
	/* SO_PEERCRED names whoever called listen(): do it as that user. */
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    chmod(path, 0666) || listen(lfd, 4))
		return 3;
	if (write(ready_wr, "r", 1) != 1)
		return 4;
	take_one(lfd, &s);
	return write(report_wr, &s, sizeof(s)) == sizeof(s) ? 0 : 5;
}

/* Start the fake server, or skip (and return false). */
static bool server_start(struct server *srv)
{
	struct passwd *pw;
	int ready[2], report[2];
	char c;

	if (!h_have_root("becomes " FOREIGN " to serve a socket"))
		return false;
	pw = getpwnam(FOREIGN);
	if (!pw || pw->pw_uid == 0) {
		h_skip("no unprivileged user %s", FOREIGN);
		return false;
	}
	snprintf(srv->dir, sizeof(srv->dir), "/tmp/cgforeign.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(srv->dir));
	ck_assert_int_eq(chown(srv->dir, pw->pw_uid, pw->pw_gid), 0);
	snprintf(srv->path, sizeof(srv->path), "%s/cowguardd.sock", srv->dir);
	ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(report, O_CLOEXEC), 0);
	srv->pid = fork();
	ck_assert_int_ge(srv->pid, 0);
	if (srv->pid == 0)
		_exit(serve_as(pw, srv->path, ready[1], report[1]));
	close(ready[1]);
	close(report[1]);
	srv->report_rd = report[0];
	ck_assert_msg(readable(ready[0], WAIT_MS) && read(ready[0], &c, 1) == 1,
		      "the fake server as %s did not come up (status %d)", FOREIGN,
		      h_wait(srv->pid));
	close(ready[0]);
	return true;
}

/* What the server saw, once the client is done with it. */
static struct seen server_stop(struct server *srv)
{
	struct seen s = { 0 };
	ssize_t n = -1;
	int status;

	if (readable(srv->report_rd, 2 * WAIT_MS))
		n = read(srv->report_rd, &s, sizeof(s));
	close(srv->report_rd);
	status = h_wait(srv->pid);
	unlink(srv->path);
	rmdir(srv->dir);
	ck_assert_msg(n == sizeof(s) && status == 0,
		      "no report from the fake server (status %d)", status);
	return s;
}

/* $COWGUARD_DAEMON_USER values that must not make nobody trusted. */
static const char *const untrusting[] = { NULL, "daemon", "1",
					  "no-such-user-of-cowguard", "" };
#define N_UNTRUSTING (sizeof(untrusting) / sizeof(*untrusting))

START_TEST(a_socket_served_by_another_unprivileged_user_is_refused_and_gets_no_uffd)
{
	const char *env = untrusting[_i % N_UNTRUSTING];
	bool auto_mode = _i >= (int)N_UNTRUSTING;
	struct server srv;
	struct cg_options o = { .mode = auto_mode ? CG_MODE_AUTO : CG_MODE_DAEMON };
	struct cg *cg = NULL;
	struct seen s;
	int ret;

	if (!server_start(&srv))
		return;
	if (env)
		setenv("COWGUARD_DAEMON_USER", env, 1);
	else
		unsetenv("COWGUARD_DAEMON_USER");
	o.socket_path = srv.path;
	ret = cg_open(&o, sizeof(o), &cg);
	s = server_stop(&srv);
	ck_assert_msg(s.accepted, "the client never connected (cg_open: %s)",
		      cg_strerror(ret));
	ck_assert_msg(s.fds == 0 && s.packets == 0,
		      "COWGUARD_DAEMON_USER=%s: the %s's server got %d packets, "
		      "%d fds (%d uffds)", env ? env : "(unset)", FOREIGN,
		      s.packets, s.fds, s.uffds);
	if (auto_mode) {
		ck_assert_msg(ret == 0, "auto mode: %s", cg_strerror(ret));
		ck_assert_int_eq(cg_mode(cg), CG_MODE_EMBEDDED);
		cg_close(cg);
	} else {
		ck_assert_msg(ret == -EACCES, "COWGUARD_DAEMON_USER=%s: cg_open "
			      "returned %d (%s), want -EACCES", env ? env : "(unset)",
			      ret, cg_strerror(ret));
	}
}
END_TEST

START_TEST(the_user_cowguard_daemon_user_names_is_trusted_with_the_uffd)
{
	struct server srv;
	struct cg_options o = { .mode = CG_MODE_DAEMON };
	struct cg *cg = NULL;
	char uid[16];
	struct seen s;
	int ret;

	if (!server_start(&srv))
		return;
	snprintf(uid, sizeof(uid), "%u", (unsigned)getpwnam(FOREIGN)->pw_uid);
	setenv("COWGUARD_DAEMON_USER", _i ? uid : FOREIGN, 1);
	o.socket_path = srv.path;
	ret = cg_open(&o, sizeof(o), &cg);
	s = server_stop(&srv);
	/*
	 * It sent its hello, its uffd and its own pagemap and smaps
	 * (CG_HELLO_PROCFS); the fake server hung up on it.
	 */
	ck_assert_msg(ret != 0 && ret != -EACCES, "cg_open: %d (%s)", ret,
		      cg_strerror(ret));
	ck_assert_msg(s.accepted && s.packets == 1 && s.fds == 3 && s.uffds == 1,
		      "COWGUARD_DAEMON_USER=%s: the server got %d packets, %d fds "
		      "(%d uffds), want the hello with one uffd and two /proc "
		      "files",
		      _i ? uid : FOREIGN, s.packets, s.fds, s.uffds);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("foreign server is refused");
	TCase *tc = tcase_create("foreign");

	h_timeout(tc, 30);
	/* Each value of untrusting[], in daemon mode then in auto mode. */
	h_add_loop(tc, a_socket_served_by_another_unprivileged_user_is_refused_and_gets_no_uffd, 2 * N_UNTRUSTING);
	/* By name, then by uid. */
	h_add_loop(tc, the_user_cowguard_daemon_user_names_is_trusted_with_the_uffd, 2);
	suite_add_tcase(s, tc);
	return h_main(s, 0);
}
