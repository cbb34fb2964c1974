// SPDX-License-Identifier: MIT
/*
 * A program that knows nothing of cowguard: it fills a buffer, forks (the
 * child keeps a copy and waits), registers the buffer with an io_uring as
 * a fixed buffer (liburing, or the raw system call with --syscall),
 * writes 'B' into it, has the ring write it to a file, and unregisters.
 * The kernel pins fixed buffers for writing and so unshares them itself:
 * this shows what the shim adds (its pin, the check at unregistration),
 * not a stale read.
 *
 *   uring-fixed-after-fork [--syscall]
 *
 * Exit status: 0 the file holds 'B', 1 it holds something else, 2 error,
 * 3 the child's copy changed.
 */
#include <errno.h>
#include <liburing.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "waiting-child.h"

#define LEN (16 * 4096)

static int fail(const char *what, int err)
{
	fprintf(stderr, "uring-fixed-after-fork: %s: %s\n", what, strerror(err));
	return 2;
}

int main(int argc, char **argv)
{
	bool raw = argc > 1 && !strcmp(argv[1], "--syscall");
	char *p = mmap(NULL, LEN, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char path[] = "/tmp/cg-uring-app.XXXXXX", b[LEN];
	struct iovec iov = { p, LEN };
	struct io_uring_cqe *cqe;
	struct io_uring ring;
	int fd, status, ret;
	struct waiting_child child;

	if (p == MAP_FAILED)
		return fail("setup", errno);
	fd = mkstemp(path);
	if (fd < 0)
		return fail("mkstemp", errno);
	unlink(path);
	memset(p, 'A', LEN);
	child = waiting_child_start(p, LEN);
	if (child.pid < 0)
		return fail("fork", errno);
	ret = io_uring_queue_init(4, &ring, 0);
	if (ret)
		return fail("io_uring_queue_init", -ret);
	ret = raw ? (syscall(SYS_io_uring_register, ring.ring_fd,
			     IORING_REGISTER_BUFFERS, &iov, 1) ? -errno : 0)
		  : io_uring_register_buffers(&ring, &iov, 1);
	if (ret)
		return fail("register buffers", -ret);
	memset(p, 'B', LEN);
	io_uring_prep_write_fixed(io_uring_get_sqe(&ring), fd, p, LEN, 0, 0);
	if (io_uring_submit(&ring) != 1 || io_uring_wait_cqe(&ring, &cqe))
		return fail("submit", errno);
	if (cqe->res != LEN)
		return fail("write fixed", cqe->res < 0 ? -cqe->res : EIO);
	io_uring_cqe_seen(&ring, cqe);
	ret = raw ? (syscall(SYS_io_uring_register, ring.ring_fd,
			     IORING_UNREGISTER_BUFFERS, NULL, 0) ? -errno : 0)
		  : io_uring_unregister_buffers(&ring);
	if (ret)
		return fail("unregister buffers", -ret);
	io_uring_queue_exit(&ring);
	if (pread(fd, b, LEN, 0) != LEN)
		return fail("pread", errno);
	status = waiting_child_end(&child);
	if (status < 0)
		return fail("child", errno);
	printf("the file holds '%c'\n", b[0]);
	if (status)
		return 3;
	return b[0] == 'B' && b[LEN - 1] == 'B' ? 0 : 1;
}
