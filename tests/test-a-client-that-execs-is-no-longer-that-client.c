// SPDX-License-Identifier: MIT
/*
 * A client is a process's address space, not its pid.  A client says
 * hello and registers memory, forks a child that keeps its connection,
 * then execs another program (a set-user-ID one, in the attack this
 * stands for).  Through the old connection the child asks to register
 * ranges of the new image: a file mapping, and a hole.  The daemon must
 * answer -ESRCH for both: what it reads of a client stays on the address
 * space it was opened on (lib/kernel/procfs.c), so that errnos cannot map the new
 * program's layout (EINVAL for a file mapping, ENOMEM for a hole, about
 * 200 us a probe: enough to defeat ASLR) and no unshare reads into it.
 *
 * Bug this catches: pid-based reads of /proc/PID/smaps and
 * process_vm_readv(PID) after the client exec'd (issue 11, row 1).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "client.h"
#include "harness.h"
#include "wire/protocol.h"

#define LEN (4 * 4096)
#define HOLE 0x100000000000ULL	/* nothing maps there in a small program */

struct result {
	int step;		/* 0, or which step failed */
	int file_status, hole_status;
};

static int reg(struct cg__client *c, uint64_t addr, uint64_t len)
{
	struct cg__req req;
	struct cg__rep rep;
	int ret;

	cg__req_init(&req, CG_OP_REGISTER);
	req.addr = addr;
	req.len = len;
	ret = cg__client_call(c, &req, &rep);
	return ret ? ret : rep.status;
}

/* A file mapping of pid's program, once pid runs it: its start, or 0. */
static uint64_t file_mapping(pid_t pid, const char *prog)
{
	char path[64], line[512];
	unsigned long lo = 0;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	for (int tries = 0; tries < 500 && !lo; tries++) {
		FILE *f = fopen(path, "re");

		while (f && fgets(line, sizeof(line), f))
			if (strstr(line, prog) && sscanf(line, "%lx-", &lo) == 1)
				break;
		if (f)
			fclose(f);
		if (!lo)
			usleep(10000);
	}
	return lo;
}

/* The child that keeps the connection: probe the parent's new image. */
static void prober(struct cg__client *c, pid_t parent, int out)
{
	struct result r = { 0 };
	uint64_t file = file_mapping(parent, "/sleep");

	if (!file)
		r.step = 4;
	else {
		r.file_status = reg(c, file, 4096);
		r.hole_status = reg(c, HOLE, 4096);
	}
	_exit(write(out, &r, sizeof(r)) == sizeof(r) ? 0 : 2);
}

START_TEST(a_client_that_execs_is_no_longer_that_client)
{
	struct result r = { .step = 9 };
	int pipefd[2];
	pid_t client;

	if (!h_have_own_daemon("a client that execs, on a daemon of our own"))
		return;
	ck_assert_int_eq(pipe(pipefd), 0);
	client = fork();
	ck_assert_int_ge(client, 0);
	if (client == 0) {
		struct cg__client c = { .sock = -1 };
		char *p = mmap(NULL, LEN, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		pid_t child;

		memset(p, 'A', LEN);
		if (cg__client_open(&c, h_socket()) ||
		    reg(&c, (uintptr_t)p, LEN))
			_exit(3);
		child = fork();
		if (child == 0)
			prober(&c, getppid(), pipefd[1]);
		execl("/bin/sleep", "sleep", "30", (char *)NULL);
		_exit(5);
	}
	close(pipefd[1]);
	ck_assert_int_eq(read(pipefd[0], &r, sizeof(r)), (ssize_t)sizeof(r));
	close(pipefd[0]);
	kill(client, SIGKILL);
	h_wait(client);
	ck_assert_msg(r.step == 0, "the prober could not run (step %d)", r.step);
	ck_assert_msg(r.file_status == -ESRCH && r.hole_status == -ESRCH,
		      "registering the new image's file mapping: %d (%s), a hole: "
		      "%d (%s); both should be -ESRCH, told nothing of it",
		      r.file_status, cg_strerror(r.file_status), r.hole_status,
		      cg_strerror(r.hole_status));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("a client that execs is no longer that client");
	TCase *tc = tcase_create("exec");

	h_timeout(tc, 30);
	h_add(tc, a_client_that_execs_is_no_longer_that_client);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
