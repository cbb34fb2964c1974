// SPDX-License-Identifier: MIT
/*
 * A program that knows nothing of cowguard: it fills a buffer, forks (the
 * child keeps a copy and waits), and writes the buffer, still shared with
 * the child, to an O_DIRECT file in $TMPDIR (or /tmp):
 *
 *   odirect-write-after-fork [--inherited] [--write | --writev | --pwritev |
 *                             --pwritev2 | --uring | --uring-writev]
 *     (default)       pwrite(2)
 *     --write         write(2)
 *     --writev, --pwritev, --pwritev2   those, two iovecs
 *     --uring         an io_uring WRITE through liburing
 *     --uring-writev  an io_uring WRITEV through liburing
 *     --inherited     the file is opened, then the program execs itself
 *                     with it open, and writes to the descriptor it was
 *                     given (--fd N): one it never opened
 *
 * It then says how many of the buffer's pages it mapped alone right before
 * and right after the write (pagemap bit 56): a kernel that unshares before an O_DIRECT
 * write reads (block layer since 6.2-6.3), or cowguard, leaves them all
 * so; a kernel that reads by plain reference leaves them shared.  A
 * synchronous write of unchanged pages reads the right data either way:
 * what differs is whether the device read the page the program maps.
 * The io_uring modes submit a NOP after the write's completion, as a
 * program that goes on would, and exit without io_uring_queue_exit().
 *
 * Exit status: 0 the file holds the parent's data, 1 it does not, 2 error,
 * 3 the child's copy changed, 77 no O_DIRECT file can be made there.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "waiting-child.h"

#define PAGE 4096
#define PAGES 16
#define LEN (PAGES * PAGE)

static int fail(const char *what, int err)
{
	fprintf(stderr, "odirect-write-after-fork: %s: %s\n", what,
		strerror(err));
	return 2;
}

/* How many of the pages at p this process maps alone. */
static int mapped_alone(const char *p)
{
	uint64_t pme[PAGES];
	int fd = open("/proc/self/pagemap", O_RDONLY), n = 0;

	if (fd < 0)
		return -1;
	if (pread(fd, pme, sizeof(pme), (off_t)((uintptr_t)p / PAGE * 8)) !=
	    sizeof(pme)) {
		close(fd);
		return -1;
	}
	close(fd);
	for (int i = 0; i < PAGES; i++)
		n += (pme[i] >> 63 & 1) && (pme[i] >> 56 & 1);
	return n;
}

/* One request through a ring, then a NOP; the ring is left to exit. */
static int uring_write(int fd, struct iovec *iov, bool vectored)
{
	struct io_uring_cqe *cqe;
	struct io_uring ring;
	int ret = io_uring_queue_init(4, &ring, 0);

	if (ret)
		return ret;
	if (vectored)
		io_uring_prep_writev(io_uring_get_sqe(&ring), fd, iov, 2, 0);
	else
		io_uring_prep_write(io_uring_get_sqe(&ring), fd,
				    iov[0].iov_base, LEN, 0);
	if (io_uring_submit(&ring) != 1 || (ret = io_uring_wait_cqe(&ring, &cqe)))
		return ret ? ret : -EIO;
	ret = cqe->res == LEN ? 0 : cqe->res < 0 ? cqe->res : -EIO;
	io_uring_cqe_seen(&ring, cqe);
	io_uring_prep_nop(io_uring_get_sqe(&ring));
	if (io_uring_submit(&ring) != 1 || io_uring_wait_cqe(&ring, &cqe))
		return -EIO;
	io_uring_cqe_seen(&ring, cqe);
	return ret;
}

static int write_buffer(const char *mode, int fd, char *p)
{
	struct iovec iov[2] = { { p, LEN / 2 }, { p + LEN / 2, LEN / 2 } };

	if (!strcmp(mode, "--uring") || !strcmp(mode, "--uring-writev"))
		return uring_write(fd, iov, !strcmp(mode, "--uring-writev"));
	if (!strcmp(mode, "--write"))
		return write(fd, p, LEN) == LEN ? 0 : -errno;
	if (!strcmp(mode, "--writev"))
		return writev(fd, iov, 2) == LEN ? 0 : -errno;
	if (!strcmp(mode, "--pwritev"))
		return pwritev(fd, iov, 2, 0) == LEN ? 0 : -errno;
	if (!strcmp(mode, "--pwritev2"))
		return pwritev2(fd, iov, 2, 0, 0) == LEN ? 0 : -errno;
	return pwrite(fd, p, LEN, 0) == LEN ? 0 : -errno;
}

/* An O_DIRECT file in $TMPDIR (or /tmp), or -1. */
static int odirect_file(bool inheritable)
{
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	int fd = open(dir, O_TMPFILE | O_RDWR | O_DIRECT |
			   (inheritable ? 0 : O_CLOEXEC), 0600);

	if (fd < 0)
		printf("no O_DIRECT file in %s: %s\n", dir, strerror(errno));
	return fd;
}

/* --inherited: the file, opened here, goes to this program exec'd. */
static int exec_with_file(char **argv, const char *mode)
{
	char fdstr[16];
	int fd = odirect_file(true);

	if (fd < 0)
		return 77;
	snprintf(fdstr, sizeof(fdstr), "%d", fd);
	execl("/proc/self/exe", argv[0], "--fd", fdstr, mode, (char *)NULL);
	return fail("exec", errno);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[argc - 1] : "";
	char *p = mmap(NULL, LEN, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *back = aligned_alloc(PAGE, LEN);
	struct waiting_child child;
	int fd, ret, before, alone, status;

	if (p == MAP_FAILED || !back)
		return fail("setup", errno);
	if (argc > 1 && !strcmp(argv[1], "--inherited"))
		return exec_with_file(argv, argc > 2 ? argv[2] : "");
	fd = argc > 2 && !strcmp(argv[1], "--fd") ? atoi(argv[2])
						  : odirect_file(false);
	if (fd < 0)
		return 77;
	memset(p, 'A', LEN);
	child = waiting_child_start(p, LEN);
	if (child.pid < 0)
		return fail("fork", errno);
	before = mapped_alone(p);
	ret = write_buffer(mode, fd, p);
	if (ret)
		return fail("write", -ret);
	alone = mapped_alone(p);
	if (pread(fd, back, LEN, 0) != LEN)
		return fail("read back", errno);
	status = waiting_child_end(&child);
	if (status < 0)
		return fail("child", errno);
	printf("pages mapped alone before the write: %d, after: %d of %d; the "
	       "file holds '%c'\n", before, alone, PAGES, back[0]);
	if (status)
		return 3;
	return memcmp(back, p, LEN) ? 1 : 0;
}
