// SPDX-License-Identifier: MIT
/*
 * Descriptors the shim cannot lose while the program runs: a lazy
 * restore's uffd and image (restore.c).  Programs that daemonize close
 * every descriptor they did not open; the restore's uffd closed so takes
 * its registrations with it, and the pages the fill had not reached yet
 * read as zeros: the program's memory lost without a word.  So close(),
 * close_range(), closefrom(), dup2() and dup3() of the program leave a
 * guarded descriptor open (close: -EBADF, as for one never opened; dup2
 * and dup3 onto it: -EBUSY), and the log says so.  The shim's
 * own threads (inside cowguard) close them, which ends the guard.
 * syscall(SYS_close, ...) and its kin come here too (hook_syscall.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "preload.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define GUARD_MAX 4

static int guarded[GUARD_MAX] = { -1, -1, -1, -1 };

int cg__shim_guard(int fd)
{
	for (int i = 0; i < GUARD_MAX; i++) {
		int none = -1;

		if (__atomic_compare_exchange_n(&guarded[i], &none, fd, false,
						__ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
			return 0;
	}
	return -ENOSPC;
}

void cg__shim_unguard(int fd)
{
	for (int i = 0; i < GUARD_MAX; i++) {
		int was = fd;

		__atomic_compare_exchange_n(&guarded[i], &was, -1, false,
					    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
	}
}

/* A child is not restoring (a fork waits for the fill): nothing to keep. */
void cg__shim_unguard_all(void)
{
	for (int i = 0; i < GUARD_MAX; i++)
		__atomic_store_n(&guarded[i], -1, __ATOMIC_SEQ_CST);
}

/* Whether the program, not the shim, is about to lose fd. */
static bool kept(long fd)
{
	if (fd < 0 || cg__shim_inside())
		return false;
	for (int i = 0; i < GUARD_MAX; i++)
		if (__atomic_load_n(&guarded[i], __ATOMIC_SEQ_CST) == fd) {
			cg__shim_log("the program closes or replaces fd %ld, "
				     "which the restore still needs: kept open",
				     fd);
			return true;
		}
	return false;
}

/* The guarded descriptors in [first, last], in order; their count. */
static int guarded_in(unsigned first, unsigned last, unsigned *out)
{
	int n = 0;

	for (int i = 0; i < GUARD_MAX; i++) {
		int fd = __atomic_load_n(&guarded[i], __ATOMIC_SEQ_CST);

		if (fd >= 0 && (unsigned)fd >= first && (unsigned)fd <= last)
			out[n++] = (unsigned)fd;
	}
	for (int i = 1; i < n; i++)
		for (int k = i; k > 0 && out[k - 1] > out[k]; k--) {
			unsigned t = out[k];

			out[k] = out[k - 1];
			out[k - 1] = t;
		}
	return n;
}

typedef long syscall_fn(long nr, ...);

/* syscall(2) past our own hook of it (hook_syscall.c), which sends here. */
static long raw(long nr, long a, long b, long c)
{
	static syscall_fn *real;

	if (!real)
		real = (syscall_fn *)cg__real("syscall");
	if (!real) {
		errno = ENOSYS;
		return -1;
	}
	return real(nr, a, b, c);
}

static long raw_close_range(unsigned first, unsigned last, unsigned flags)
{
	return raw(SYS_close_range, first, last, flags);
}

/* close_range() of [first, last] around the guarded descriptors. */
long cg__shim_close_range(unsigned first, unsigned last, unsigned flags)
{
	unsigned keep[GUARD_MAX], lo = first;
	int n;

	/* Marked close-on-exec only: ours are already, and stay open. */
	if (cg__shim_inside() || (flags & CLOSE_RANGE_CLOEXEC) || first > last)
		return raw_close_range(first, last, flags);
	n = guarded_in(first, last, keep);
	for (int i = 0; i < n; i++) {
		kept(keep[i]);
		if (keep[i] > lo && raw_close_range(lo, keep[i] - 1, flags))
			return -1;
		lo = keep[i] + 1;
		if (lo == 0)
			return 0;	/* the last descriptor there is was ours */
	}
	return lo <= last ? raw_close_range(lo, last, flags) : 0;
}

long cg__shim_close(long fd)
{
	static int (*real)(int);

	if (kept(fd)) {
		errno = EBADF;
		return -1;
	}
	/* The shim closing one of its own: the number is the program's again. */
	if (cg__shim_inside())
		cg__shim_unguard((int)fd);
	if (!real)
		real = (int (*)(int))cg__real("close");
	return real ? real((int)fd) : raw(SYS_close, fd, 0, 0);
}

CG__HOOK int close(int fd)
{
	return (int)cg__shim_close(fd);
}

CG__HOOK int close_range(unsigned first, unsigned last, int flags)
{
	return (int)cg__shim_close_range(first, last, (unsigned)flags);
}

/* Without close_range (before 5.9), one close() a descriptor to the limit. */
CG__HOOK void closefrom(int lowfd)
{
	struct rlimit rl;

	if (lowfd < 0)
		lowfd = 0;
	if (!cg__shim_close_range((unsigned)lowfd, ~0U, 0) || errno != ENOSYS)
		return;
	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur > 1 << 20)
		rl.rlim_cur = 1 << 20;
	for (long fd = lowfd; fd < (long)rl.rlim_cur; fd++)
		cg__shim_close(fd);
}

long cg__shim_dup3(long oldfd, long newfd, int flags)
{
	if (oldfd != newfd && kept(newfd)) {
		errno = EBUSY;
		return -1;
	}
	return raw(SYS_dup3, oldfd, newfd, flags);
}

CG__HOOK int dup2(int oldfd, int newfd)
{
	/* dup3() refuses oldfd == newfd; dup2() checks it is open. */
	if (oldfd == newfd)
		return fcntl(oldfd, F_GETFD) < 0 ? -1 : newfd;
	return (int)cg__shim_dup3(oldfd, newfd, 0);
}

CG__HOOK int dup3(int oldfd, int newfd, int flags)
{
	if (oldfd == newfd) {
		errno = EINVAL;
		return -1;
	}
	return (int)cg__shim_dup3(oldfd, newfd, flags);
}
