// SPDX-License-Identifier: MIT
/*
 * syscall(3): programs such as fio issue some system calls through libc's
 * syscall() rather than their wrappers.  Those the shim follows are sent
 * to its hooks (closes and dups too: guard.c), and a fork made this way is
 * counted (cg__shim_forked()); every other one passes through with its six
 * arguments, as the kernel's calling convention reads them whatever the
 * caller passed.
 */
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include "preload.h"

typedef long syscall_fn(long nr, ...);

/* A descriptor that may be O_DIRECT (lib/preload/hook_open.c). */
static void opens(long nr, const long *a)
{
	long flags = -1;

#ifdef SYS_open
	if (nr == SYS_open)
		flags = a[1];
#endif
	if (nr == SYS_openat)
		flags = a[2];
	if (nr == SYS_fcntl && a[1] == F_SETFL)
		flags = a[2];
	/* openat2's flags are behind a pointer. */
	if ((flags >= 0 && (flags & O_DIRECT)) || nr == SYS_openat2)
		cg__odirect_fd_seen();
}

ssize_t vmsplice(int fd, const struct iovec *iov, unsigned long nr,
		 unsigned int flags);
int cg__uring_register(unsigned fd, unsigned opcode, const void *arg,
		       unsigned nr_args);

CG__HOOK long syscall(long nr, ...)
{
	static syscall_fn *real;
	long a[6];
	va_list ap;

	va_start(ap, nr);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (!real)
		real = (syscall_fn *)cg__real("syscall");
	/* clone3's flags are behind a pointer: counted whatever they say. */
	if ((nr == SYS_clone && !(a[0] & CLONE_VM)) || nr == SYS_clone3)
		cg__shim_note_fork();
#ifdef SYS_fork
	if (nr == SYS_fork)
		cg__shim_note_fork();
#endif
	opens(nr, a);
	if (!cg__shim_inside() && nr == SYS_vmsplice)
		return vmsplice((int)a[0], (const struct iovec *)a[1],
				(unsigned long)a[2], (unsigned)a[3]);
	if (!cg__shim_inside() && nr == SYS_io_uring_register)
		return cg__uring_register((unsigned)a[0], (unsigned)a[1],
					  (const void *)a[2], (unsigned)a[3]);
	if (nr == SYS_close)
		return cg__shim_close(a[0]);
	if (nr == SYS_close_range)
		return cg__shim_close_range((unsigned)a[0], (unsigned)a[1],
					    (unsigned)a[2]);
	if (nr == SYS_dup3 && a[0] != a[1])
		return cg__shim_dup3(a[0], a[1], (int)a[2]);
#ifdef SYS_dup2
	if (nr == SYS_dup2 && a[0] != a[1])
		return cg__shim_dup3(a[0], a[1], 0);
#endif
	return real(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}
