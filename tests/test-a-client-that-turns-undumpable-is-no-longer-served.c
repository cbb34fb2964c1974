// SPDX-License-Identifier: MIT
/*
 * A client is bound to its process as it was at hello: as dumpable, with
 * the same effective ids.  A process that becomes undumpable (here
 * PR_SET_DUMPABLE 0; setuid() or a set-user-ID exec do the same) holds
 * what its user may no longer read, and whoever shares its connection
 * (a raw fork child keeps it) must not learn it through the daemon.  So
 * every request then gets -EPERM, while its uffd is still served: its
 * writes to protected memory never wait.  Dumpable again, with the same
 * ids, it is the client it was and is served again, as the kernel would
 * let its user read it again.
 *
 * The kernel shows dumpability as the owner of /proc/PID/stat (root once
 * undumpable, the euid:egid otherwise), which is what the daemon compares
 * (lib/kernel/process.c).  Root's files are root's either way, so as root the
 * client first takes another egid (and makes itself dumpable again, which
 * the change of ids undid): its files are then 0:65534, and 0:0 once
 * undumpable.
 *
 * Bug this catches: a client served the same after it became undumpable
 * (issue 11, row 1).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "harness.h"

#define LEN (4 * 4096)
#define NOGROUP 65534

enum step { OK, NO_IDS, NO_OPEN, NO_REGISTER, NO_QUERY, SERVED_UNDUMPABLE,
	    PIN_SERVED, NOT_SERVED_AGAIN };

struct result {
	enum step step;
	int status;
};

static const char *step_name(enum step s)
{
	static const char *const names[] = {
		"ok", "taking another egid", "cg_open", "cg_register",
		"cg_query before", "cg_query while undumpable",
		"cg_pin while undumpable", "cg_query dumpable again",
	};
	return names[s];
}

static enum step undumpable(struct cg *cg, char *p, int *status)
{
	struct cg_page_info info;
	struct cg_pin *pin = NULL;

	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0))
		return NO_IDS;
	*status = cg_query(cg, p, &info, sizeof(info));
	if (*status != -EPERM)
		return SERVED_UNDUMPABLE;
	*status = cg_pin(cg, p, LEN, CG_PIN_RO, &pin);
	if (*status != -EPERM)
		return PIN_SERVED;
	/* Its writes are still served: this must not wait. */
	memset(p, 'B', LEN);
	if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0))
		return NO_IDS;
	*status = cg_query(cg, p, &info, sizeof(info));
	return *status ? NOT_SERVED_AGAIN : OK;
}

/* The client, in a child of the test: which step failed, and its status. */
static enum step client(int *status)
{
	struct cg_options o = { .mode = CG_MODE_DAEMON, .socket_path = h_socket() };
	struct cg_page_info info;
	struct cg *cg = NULL;
	char *p;
	enum step s;

	if (geteuid() == 0 && (setresgid(NOGROUP, NOGROUP, NOGROUP) ||
			       prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)))
		return NO_IDS;
	*status = cg_open(&o, sizeof(o), &cg);
	if (*status)
		return NO_OPEN;
	p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0);
	if (p == MAP_FAILED)
		return NO_REGISTER;
	memset(p, 'A', LEN);
	*status = cg_register(cg, p, LEN, 0);
	if (*status)
		return NO_REGISTER;
	*status = cg_query(cg, p, &info, sizeof(info));
	if (*status)
		return NO_QUERY;
	s = undumpable(cg, p, status);
	cg_close(cg);
	return s;
}

START_TEST(a_client_that_turns_undumpable_is_no_longer_served)
{
	struct result r = { NO_OPEN, 0 };
	int pipefd[2];
	pid_t pid;

	ck_assert_int_eq(pipe(pipefd), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(pipefd[0]);
		r.step = client(&r.status);
		_exit(write(pipefd[1], &r, sizeof(r)) == sizeof(r) ? 0 : 2);
	}
	close(pipefd[1]);
	ck_assert_int_eq(read(pipefd[0], &r, sizeof(r)), (ssize_t)sizeof(r));
	close(pipefd[0]);
	ck_assert_int_eq(h_wait(pid), 0);
	ck_assert_msg(r.step == OK, "at %s: %d (%s)", step_name(r.step), r.status,
		      cg_strerror(r.status));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("a client that turns undumpable is no longer served");
	TCase *tc = tcase_create("undumpable");

	h_timeout(tc, 20);
	h_add(tc, a_client_that_turns_undumpable_is_no_longer_served);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
