// SPDX-License-Identifier: MIT
/* Children and time: forks that wait, clocks, what a bound on time means here. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "client.h"
#include "harness.h"
#include "harness-internal.h"
#include "kernel/compat.h"
#include "kernel/kernel.h"
#include "kernel/procfs.h"
#include "kernel/uffd.h"

struct waiter_arg {
	int rd;
	const volatile char *check;
	char expect;
};

pid_t h_fork(int (*fn)(void *arg), void *arg)
{
	pid_t pid = fork();

	ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0)
		_exit(fn(arg));
	return pid;
}

int h_wait(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

bool h_time_bounds(const char *what)
{
#ifdef __SANITIZE_ADDRESS__
	const char *why = "in a sanitizers' build";
#else
	const char *why = getenv("CG_VM") ? "in an emulated guest" : NULL;
#endif

	if (why)
		printf("NOTE: %s: no bound on time %s\n", what, why);
	return !why;
}

double h_now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

void h_sleep_ms(int ms)
{
	struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&t, NULL);
}

static int waiter_main(void *arg)
{
	struct waiter_arg *w = arg;
	char go;

	if (read(w->rd, &go, 1) != 1)
		return 2;
	return !w->check || *w->check == w->expect ? 0 : 3;
}

struct h_waiter h_fork_waiting(const volatile char *check, char expect)
{
	struct waiter_arg arg = { .check = check, .expect = expect };
	struct h_waiter w;
	int fds[2];

	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	arg.rd = fds[0];
	w.pid = h_fork(waiter_main, &arg);
	w.go = fds[1];
	close(fds[0]);
	return w;
}

int h_release(struct h_waiter *w)
{
	int status;

	ck_assert_int_eq(write(w->go, "g", 1), 1);
	close(w->go);
	status = h_wait(w->pid);
	w->pid = -1;
	return status;
}

bool h_fork_safe_allocator(const char *what)
{
#ifdef __SANITIZE_ADDRESS__
	h_skip("%s: AddressSanitizer's allocator is not fork-safe with another "
	       "thread allocating (GCC 12); the lanes without it run this", what);
	return false;
#else
	(void)what;
	return true;
#endif
}

void h_timeout(TCase *tc, double seconds)
{
	/* Check scales this by CK_TIMEOUT_MULTIPLIER itself. */
	tcase_set_timeout(tc, seconds);
}
