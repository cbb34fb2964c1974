// SPDX-License-Identifier: MIT
/*
 * cowguardd takes a uffd to track only from root and from members of the
 * group /dev/userfaultfd is opened to (daemon/gate.c).  Anybody else can
 * make a user-mode-only uffd (UFFD_USER_MODE_ONLY: the kernel grants it to
 * all), and a daemon that took it would negotiate fork events for them
 * with its own CAP_SYS_PTRACE, which the kernel refuses that user, and
 * would track memory in which the kernel's own accesses fault with EFAULT.
 *
 * A child that is nobody, with no supplementary group, sends such a uffd
 * in a hello by hand: the reply is -EPERM, the daemon logs why, and keeps
 * serving others.
 *
 * Bug this catches: the daemon negotiating EVENT_FORK and tracking for a
 * user outside the group (issue 11, row 7).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"
#include "kernel/compat.h"
#include "wire/protocol.h"

#define NOBODY 65534
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

/* In the child, as nobody: the hello's status, or 100 + the failed step. */
static int outsider_hello(void *arg)
{
	const char *path = arg;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct cg__req req;
	struct cg__rep rep;
	int sock, uffd;

	if (setgroups(0, NULL) || setresgid(NOBODY, NOBODY, NOBODY) ||
	    setresuid(NOBODY, NOBODY, NOBODY))
		return 101;
	uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
	/* 5.10 has no such flag, and gives everybody a full uffd instead. */
	if (uffd < 0)
		uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
	if (uffd < 0)
		return 102;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (sock < 0 || connect(sock, (struct sockaddr *)&sa, sizeof(sa)))
		return 103;
	cg__req_init(&req, CG_OP_HELLO);
	if (cg__send(sock, &req, sizeof(req), uffd))
		return 104;
	if (read(sock, &rep, sizeof(rep)) < (ssize_t)offsetof(struct cg__rep, u))
		return 105;
	return rep.status == -EPERM ? 0 : rep.status == 0 ? 1 : 2;
}

START_TEST(a_user_outside_the_group_cannot_hand_over_a_uffd)
{
	struct h_run *r = malloc(sizeof(*r));
	int status;

	ck_assert_ptr_nonnull(r);
	if (!h_have_root("to become nobody") ||
	    !h_have_own_daemon("its log, to read the refusal")) {
		free(r);
		return;
	}
	status = h_wait(h_fork(outsider_hello, (void *)h_socket()));
	ck_assert_msg(status == 0, "nobody's hello with a user-mode-only uffd: "
		      "%s (child status %d)", status == 1 ? "accepted" :
		      status == 2 ? "refused, but not with -EPERM" : "the child "
		      "could not try", status);
	ck_assert_msg(h_log_lines(h_socket(), "refused: not root, nor in group") +
		      h_log_lines(h_socket(), "refused: only root may say hello") >= 1,
		      "the daemon logged no reason");
	/* Root is still served. */
	cg_close(h_open(H_DAEMON));
	free(r);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("a user outside the group cannot hand over a uffd");
	TCase *tc = tcase_create("gate");

	h_timeout(tc, 20);
	h_add(tc, a_user_outside_the_group_cannot_hand_over_a_uffd);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
