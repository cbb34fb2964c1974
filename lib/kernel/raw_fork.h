/* SPDX-License-Identifier: MIT */
/*
 * fork() without glibc, for the probes that learn what the kernel does
 * (lib/kernel/kernel.c, lib/kernel/odirect.c): exit signal 0, so no
 * SIGCHLD reaches the caller's event loop and only __WALL waits see the
 * child; no atfork handler runs and no glibc lock is taken.  The child
 * must make system calls only, then _exit().
 */
#ifndef CG_RAW_FORK_H
#define CG_RAW_FORK_H

#include <errno.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static inline pid_t cg__raw_fork(void)
{
	return (pid_t)syscall(SYS_clone, 0UL, NULL, NULL, NULL, 0UL);
}

/* The child's exit status, or -1 (killed, or not ours). */
static inline int cg__raw_wait(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, __WALL) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/*
 * A holder: a child that keeps every page of ours shared copy-on-write
 * until cg__raw_release_holder(), then exits.  Its pid (and in *release
 * the pipe's write end that lets it go), or -1.
 */
static inline pid_t cg__raw_fork_holder(int *release)
{
	int go[2];
	char byte;
	pid_t pid;

	if (pipe2(go, O_CLOEXEC))
		return -1;
	pid = cg__raw_fork();
	if (pid == 0) {
		close(go[1]);
		while (read(go[0], &byte, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	close(go[0]);
	if (pid < 0)
		close(go[1]);
	else
		*release = go[1];
	return pid;
}

/*
 * A byte, not only the close: a fork by another thread meanwhile holds a
 * copy of the write end, and the holder would wait for its EOF forever.
 */
static inline void cg__raw_release_holder(pid_t holder, int release)
{
	while (write(release, "", 1) < 0 && errno == EINTR)
		;
	close(release);
	cg__raw_wait(holder);
}

#endif
