// SPDX-License-Identifier: MIT
/* Children and time: forks that wait, clocks, what a bound on time means here. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

struct waiter_arg {
	int rd;
	const struct h_check *check;
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
	const struct waiter_arg *w = arg;
	const struct h_check *c = w->check;
	size_t unit = c->unit ? c->unit : 1;
	char go;

	if (read(w->rd, &go, 1) != 1)
		return 2;
	for (int r = 0; r < 2; r++)
		for (size_t off = 0; c->at[r] && off < c->len; off += unit) {
			char first = c->at[r][off], last = c->at[r][off + unit - 1];

			if (first != c->expect || last != c->expect)
				return !c->written || first == c->written ||
				       last == c->written ? 3 : 4;
		}
	return 0;
}

/* A fork that runs no atfork handler: cowguard's library does not see it. */
static pid_t raw_fork(int (*fn)(void *), void *arg)
{
	pid_t pid = (pid_t)syscall(SYS_fork);

	ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0)
		_exit(fn(arg));
	return pid;
}

struct h_waiter h_fork_checking(const struct h_check *check)
{
	struct waiter_arg arg = { .check = check };
	struct h_waiter w;
	int fds[2];

	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	arg.rd = fds[0];
	w.pid = check->raw ? raw_fork(waiter_main, &arg)
			   : h_fork(waiter_main, &arg);
	w.go = fds[1];
	close(fds[0]);
	return w;
}

struct h_waiter h_fork_waiting(const volatile char *check, char expect)
{
	return h_fork_checking(&(struct h_check){ .at = { check },
						  .len = check ? 1 : 0,
						  .expect = expect });
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
