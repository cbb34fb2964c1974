// SPDX-License-Identifier: MIT
/*
 * A program that knows nothing of cowguard: it fills a buffer, forks (the
 * child keeps a copy and waits), hands the buffer's first page to a pipe
 * with vmsplice, writes the page again, and reads the pipe.  The kernel
 * takes plain references for vmsplice and never unshares them, so without
 * cowguard the pipe reads what the page held before the write.
 *
 *   vmsplice-after-fork [--syscall] [--malloc] [--fork-while-spliced]
 *     --syscall  vmsplice through syscall(SYS_vmsplice), as fio does
 *     --malloc   the buffer from malloc (it shares the heap), not mmap
 *     --linger   when done, wait for a signal (to be looked at meanwhile)
 *     --fork-while-spliced  fork once more while the pipe holds the page
 *                (that child touches the whole buffer, then exits): then
 *                the pipe reads what the page held at that fork, with or
 *                without cowguard
 *
 * Exit status: 0 the pipe read the new data, 1 it read the old, 2 error,
 * 3 the child's copy changed.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "waiting-child.h"

#define LEN (64 * 1024)
#define PG 4096

static int fail(const char *what)
{
	fprintf(stderr, "vmsplice-after-fork: %s: %s\n", what, strerror(errno));
	return 2;
}

int main(int argc, char **argv)
{
	bool raw = false, heap = false, again = false, linger = false;
	int pfd[2], status;
	struct iovec iov;
	char *p, b[PG];
	ssize_t n;
	struct waiting_child child;

	for (int i = 1; i < argc; i++) {
		raw |= !strcmp(argv[i], "--syscall");
		heap |= !strcmp(argv[i], "--malloc");
		again |= !strcmp(argv[i], "--fork-while-spliced");
		linger |= !strcmp(argv[i], "--linger");
	}
	p = heap ? malloc(LEN) : mmap(NULL, LEN, PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!p || p == MAP_FAILED)
		return fail("buffer");
	memset(p, 'A', LEN);
	if (pipe(pfd))
		return fail("pipe");
	child = waiting_child_start(p, LEN);
	if (child.pid < 0)
		return fail("fork");
	/* A page-aligned slice of the buffer, whatever malloc returned. */
	iov.iov_base = (void *)(((uintptr_t)p + PG - 1) & ~(uintptr_t)(PG - 1));
	iov.iov_len = PG;
	n = raw ? syscall(SYS_vmsplice, pfd[1], &iov, 1UL, 0U)
		: vmsplice(pfd[1], &iov, 1, 0);
	if (n != PG)
		return fail("vmsplice");
	if (again) {
		pid_t late = fork();

		if (late == 0) {
			volatile char sum = 0;

			for (size_t i = 0; i < LEN; i++)
				sum += p[i];
			_exit(sum == (char)(LEN * 'A') ? 0 : 3);
		}
		if (late < 0 || waitpid(late, &status, 0) != late ||
		    !WIFEXITED(status) || WEXITSTATUS(status))
			return 3;
	}
	memset(iov.iov_base, 'B', PG);
	if (read(pfd[0], b, PG) != PG)
		return fail("read");
	status = waiting_child_end(&child);
	if (status < 0)
		return fail("child");
	printf("the pipe read '%c' (the page now holds '%c')\n", b[0],
	       ((char *)iov.iov_base)[0]);
	fflush(stdout);
	if (linger)
		pause();
	if (status)
		return 3;
	return b[0] == 'B' && b[PG - 1] == 'B' ? 0 : 1;
}
