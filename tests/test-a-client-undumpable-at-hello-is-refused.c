// SPDX-License-Identifier: MIT
/*
 * What the daemon opens of a client's, its /proc/PID/{pagemap,smaps}, a
 * process that is not root may open itself only while dumpable: undumpable
 * (PR_SET_DUMPABLE 0, a setuid(), a set-user-ID exec), its /proc files
 * are root's, mode 0400.  The daemon, which could open them anyway, must
 * make the kernel's check for it: such a client's hello is refused with
 * -EPERM, and it learns nothing the kernel keeps from it.
 *
 * Root's clients pass that check whatever their dumpability, so this runs
 * in the unprivileged lane and skips as root, saying so.
 *
 * Bug this catches: the daemon opening, with its own privileges, /proc
 * files its client could not (issue 11, "opens with the client's
 * credentials").
 */
#include <errno.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "harness.h"

START_TEST(a_client_undumpable_at_hello_is_refused)
{
	struct cg_options o = { .mode = CG_MODE_DAEMON, .socket_path = h_socket() };
	struct cg *cg = NULL;
	int pipefd[2], ret = 0;
	pid_t pid;

	if (geteuid() == 0) {
		h_skip("root's /proc files are root's anyway: needs another user "
		       "(the unprivileged lane)");
		return;
	}
	ck_assert_int_eq(pipe(pipefd), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(pipefd[0]);
		ret = prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) ? -errno
							  : cg_open(&o, sizeof(o), &cg);
		_exit(write(pipefd[1], &ret, sizeof(ret)) == sizeof(ret) ? 0 : 2);
	}
	close(pipefd[1]);
	ck_assert_int_eq(read(pipefd[0], &ret, sizeof(ret)), (ssize_t)sizeof(ret));
	close(pipefd[0]);
	ck_assert_int_eq(h_wait(pid), 0);
	ck_assert_msg(ret == -EPERM, "cg_open while undumpable: %d (%s), not "
		      "-EPERM", ret, cg_strerror(ret));
	/* Dumpable, the same process would be served: the control. */
	ck_assert_int_eq(cg_open(&o, sizeof(o), &cg), 0);
	cg_close(cg);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("a client undumpable at hello is refused");
	TCase *tc = tcase_create("undumpable");

	h_timeout(tc, 20);
	h_add(tc, a_client_undumpable_at_hello_is_refused);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
