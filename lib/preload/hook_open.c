// SPDX-License-Identifier: MIT
/*
 * Whether this program may hold an O_DIRECT descriptor at all: until it
 * does, a write cannot be direct I/O, and the O_DIRECT hooks ask no fcntl
 * (lib/preload/hook_odirect.c).  A descriptor becomes O_DIRECT when it is
 * opened so or fcntl(F_SETFL) says so; the shim watches:
 *  - open, open64, openat, openat64 and their _FORTIFY_SOURCE forms;
 *  - fcntl and fcntl64 with F_SETFL;
 *  - syscall() with SYS_open, SYS_openat, SYS_openat2 or SYS_fcntl
 *    (lib/preload/hook_syscall.c), an io_uring OPENAT at submission
 *    (lib/preload/hook_uring_submit.c), and descriptors received with
 *    SCM_RIGHTS (lib/preload/hook_zerocopy.c's recvmsg): those count as
 *    O_DIRECT whatever they are;
 *  - the descriptors the program inherited, once at start.
 * Not seen: a descriptor opened by an inline system call, or by an
 * io_uring the shim does not follow (docs/preload.md).
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "preload.h"

static bool seen;

void cg__odirect_fd_seen(void)
{
	__atomic_store_n(&seen, true, __ATOMIC_RELAXED);
}

bool cg__odirect_fds_seen(void)
{
	return __atomic_load_n(&seen, __ATOMIC_RELAXED);
}

/* What an open's (or F_SETFL's) flags say. */
static void opened(int flags)
{
	if (flags & O_DIRECT)
		cg__odirect_fd_seen();
}

/* The inherited descriptors, read with raw system calls (no malloc). */
void cg__odirect_scan_inherited(void)
{
	char buf[4096];
	int dir = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/fd",
			       O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	long n;

	if (dir < 0) {
		cg__odirect_fd_seen();	/* cannot tell: as if */
		return;
	}
	while ((n = syscall(SYS_getdents64, dir, buf, sizeof(buf))) > 0)
		for (long off = 0; off < n;) {
			struct dirent64 *d = (struct dirent64 *)(buf + off);
			int fd = atoi(d->d_name), fl;

			off += d->d_reclen;
			if (d->d_name[0] < '0' || d->d_name[0] > '9' || fd == dir)
				continue;
			fl = (int)syscall(SYS_fcntl, fd, F_GETFL);
			if (fl >= 0 && (fl & O_DIRECT))
				cg__odirect_fd_seen();
		}
	syscall(SYS_close, dir);
}

typedef int open_fn(const char *path, int flags, ...);
typedef int openat_fn(int dirfd, const char *path, int flags, ...);
typedef int open2_fn(const char *path, int flags);
typedef int openat2_fn(int dirfd, const char *path, int flags);
typedef int fcntl_fn(int fd, int cmd, ...);

static bool has_mode(int flags)
{
	return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;
}

/* open's mode argument, there only when the flags say so. */
#define MODE_ARG(mode, flags)                                                \
	do {                                                                   \
		va_list ap;                                                    \
                                                                               \
		if (has_mode(flags)) {                                         \
			va_start(ap, flags);                                   \
			mode = va_arg(ap, mode_t);                             \
			va_end(ap);                                            \
		}                                                              \
	} while (0)

#define OPEN_HOOK(name)                                                      \
	CG__HOOK int name(const char *path, int flags, ...)                    \
	{                                                                      \
		static open_fn *real;                                          \
		mode_t mode = 0;                                               \
                                                                               \
		MODE_ARG(mode, flags);                                         \
		if (!real)                                                     \
			real = (open_fn *)cg__real(#name);                     \
		opened(flags);                                                 \
		return real(path, flags, mode);                                \
	}

#define OPENAT_HOOK(name)                                                    \
	CG__HOOK int name(int dirfd, const char *path, int flags, ...)         \
	{                                                                      \
		static openat_fn *real;                                        \
		mode_t mode = 0;                                               \
                                                                               \
		MODE_ARG(mode, flags);                                         \
		if (!real)                                                     \
			real = (openat_fn *)cg__real(#name);                   \
		opened(flags);                                                 \
		return real(dirfd, path, flags, mode);                         \
	}

OPEN_HOOK(open)
OPEN_HOOK(open64)
OPENAT_HOOK(openat)
OPENAT_HOOK(openat64)

/* _FORTIFY_SOURCE's forms, for flags without O_CREAT known at build. */
#define OPEN2_HOOK(name)                                                     \
	CG__HOOK int name(const char *path, int flags)                         \
	{                                                                      \
		static open2_fn *real;                                         \
                                                                               \
		if (!real)                                                     \
			real = (open2_fn *)cg__real(#name);                    \
		opened(flags);                                                 \
		return real(path, flags);                                      \
	}

#define OPENAT2_HOOK(name)                                                   \
	CG__HOOK int name(int dirfd, const char *path, int flags)              \
	{                                                                      \
		static openat2_fn *real;                                       \
                                                                               \
		if (!real)                                                     \
			real = (openat2_fn *)cg__real(#name);                  \
		opened(flags);                                                 \
		return real(dirfd, path, flags);                               \
	}

OPEN2_HOOK(__open_2)
OPEN2_HOOK(__open64_2)
OPENAT2_HOOK(__openat_2)
OPENAT2_HOOK(__openat64_2)

/*
 * fcntl's third argument is an int or a pointer by cmd; either is passed
 * on as the word it arrived in, as glibc's own wrapper does.
 */
#define FCNTL_HOOK(name)                                                     \
	CG__HOOK int name(int fd, int cmd, ...)                                \
	{                                                                      \
		static fcntl_fn *real;                                         \
		void *arg;                                                     \
		va_list ap;                                                    \
                                                                               \
		va_start(ap, cmd);                                             \
		arg = va_arg(ap, void *);                                      \
		va_end(ap);                                                    \
		if (!real)                                                     \
			real = (fcntl_fn *)cg__real(#name);                    \
		if (cmd == F_SETFL)                                            \
			opened((int)(intptr_t)arg);                            \
		return real(fd, cmd, arg);                                     \
	}

FCNTL_HOOK(fcntl)
FCNTL_HOOK(fcntl64)
