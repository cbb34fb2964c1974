// SPDX-License-Identifier: MIT
/*
 * The shim's lines: to COWGUARD_LOG's file, or to stderr.
 *
 * The file's descriptor lives in the program's table, and the program
 * does not know it is there.  A daemon closes every descriptor it did not
 * open and opens its own, and may get the shim's number back: a line
 * written there would land in the program's file.  So the file is known
 * by its device and inode, checked before every line, and opened again
 * when the number is no longer it.  It is kept at a high number, out of
 * the way of a program that counts on what its next open() returns.
 * Raw system calls throughout: hooks of write() or fcntl() elsewhere must
 * not see the shim's own.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "preload.h"

/* Lowest number the file takes; below RLIMIT_NOFILE's usual 1024. */
#define LOG_FD_MIN 512

static struct {
	char path[PATH_MAX];	/* absolute; empty: stderr */
	int fd;
	dev_t dev;
	ino_t ino;
} out = { .fd = 2 };

static int open_high(void)
{
	int fd = (int)syscall(SYS_openat, AT_FDCWD, out.path,
			      O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	int high;

	if (fd < 0)
		return -1;
	high = (int)syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, LOG_FD_MIN);
	if (high >= 0) {
		syscall(SYS_close, fd);
		fd = high;
	}
	return fd;
}

static bool is_ours(int fd)
{
	struct stat st;

	return syscall(SYS_fstat, fd, &st) == 0 && st.st_dev == out.dev &&
	       st.st_ino == out.ino;
}

/* Know fd's file from now on by its device and inode. */
static bool remember(int fd)
{
	struct stat st;

	if (syscall(SYS_fstat, fd, &st))
		return false;
	out.dev = st.st_dev;
	out.ino = st.st_ino;
	return true;
}

void cg__shim_log_to(const char *path)
{
	size_t n = 0;
	int fd;

	if (!path || !*path)
		return;
	/* A relative name would follow the program's chdir(). */
	if (path[0] != '/' && getcwd(out.path, sizeof(out.path) - 1))
		n = strlen(out.path);
	if (n && out.path[n - 1] != '/')
		out.path[n++] = '/';
	if (snprintf(out.path + n, sizeof(out.path) - n, "%s", path) >=
	    (int)(sizeof(out.path) - n)) {
		out.path[0] = 0;
		return;
	}
	fd = open_high();
	if (fd < 0 || !remember(fd)) {
		if (fd >= 0)
			syscall(SYS_close, fd);
		out.path[0] = 0;
		return;
	}
	out.fd = fd;
}

bool cg__shim_log_is_stderr(void)
{
	return !out.path[0];
}

/*
 * The file's descriptor, opened again if the program took the number.
 * Threads may race here: one descriptor wins, the others close theirs.
 */
static int log_fd(void)
{
	int fd = __atomic_load_n(&out.fd, __ATOMIC_ACQUIRE), fresh;

	if (!out.path[0] || is_ours(fd))
		return fd;
	fresh = open_high();
	if (fresh < 0)
		return -1;
	if (!__atomic_compare_exchange_n(&out.fd, &fd, fresh, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		syscall(SYS_close, fresh);
		return fd;
	}
	/* The path's file now, should it have been rotated meanwhile. */
	remember(fresh);
	return fresh;
}

static void log_write(const char *buf, size_t n)
{
	int fd = log_fd();

	while (fd >= 0 && n) {
		long w = syscall(SYS_write, fd, buf, n);

		if (w <= 0)
			return;
		buf += w;
		n -= (size_t)w;
	}
}

void cg__shim_log(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n = snprintf(line, sizeof(line), "cowguard-preload: pid %d: ",
			 (int)getpid());

	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	log_write(line, (size_t)n);
}
