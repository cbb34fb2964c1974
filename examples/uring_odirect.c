// SPDX-License-Identifier: MIT
/*
 * uring_odirect: an O_DIRECT write through io_uring, after a fork, writes
 * what the parent wrote.
 *
 * A registered buffer is filled with the child's data, the process forks
 * (the child stays alive, so every page is COW-shared), and the parent
 * prepares an O_DIRECT write of the buffer with cg_uring_prep_write_pinned():
 * cowguard makes every page exclusive before the SQE exists.  The parent
 * then writes its own data into the buffer (reusing the pinned pages),
 * submits, releases the pin on the completion, and reads the file back with
 * O_DIRECT.  Exits 0 when the file holds the parent's data, the child still
 * reads its own, and cg_unpin() found nothing replaced; 1 otherwise.
 *
 * Usage: uring_odirect [DIR]   (where the O_DIRECT file goes: $TMPDIR or
 * /tmp by default; it must support O_DIRECT, tmpfs does not before 6.6)
 *        uring_odirect -h | --help
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE	/* O_DIRECT, O_TMPFILE; the tree's build defines it */
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cowguard.h>
#include <cowguard/uring.h>

#define PAGE 4096UL
#define LEN (16 * PAGE)

static const char parent_msg[] = "written by the parent after the fork";

/* Pages of [p, p+len) that the kernel maps once (pagemap bit 56), or -1. */
static long mapped_once(const char *p, size_t len)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	long n = 0;

	if (fd < 0)
		return -1;
	for (size_t off = 0; off < len; off += PAGE) {
		unsigned long long pme;

		if (pread(fd, &pme, 8, (off_t)((unsigned long)(p + off) / PAGE * 8)) != 8) {
			n = -1;
			break;
		}
		n += pme >> 56 & 1;
	}
	close(fd);
	return n;
}

static int fail(const char *what, int err)
{
	fprintf(stderr, "uring_odirect: %s: %s\n", what,
		err < 0 ? cg_strerror(err) : strerror(err));
	return 1;
}

/* The child: wait until told, then check that its copy still reads 'A'. */
static int child(const char *p, int rd)
{
	char go;

	if (read(rd, &go, 1) != 1)
		return 2;
	for (size_t off = 0; off < LEN; off++)
		if (p[off] != 'A')
			return 3;
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: uring_odirect [DIR]\n"
		"       uring_odirect -h | --help\n"
		"\n"
		"Writes a COW-shared buffer to a file with O_DIRECT through io_uring\n"
		"after the parent changed it, and checks the file holds the parent's\n"
		"data.  Exits 0 when it does, 1 otherwise.\n"
		"\n"
		"  DIR         where the temporary O_DIRECT file goes (default: $TMPDIR,\n"
		"              else /tmp); it must support O_DIRECT: tmpfs does not\n"
		"              before 6.6\n"
		"  -h, --help  show this help and exit\n");
}

/* A bad argument: what is wrong and the usage on stderr, exit status 2. */
static void __attribute__((format(printf, 1, 2), noreturn))
bad_usage(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "uring_odirect: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	usage(stderr);
	exit(2);
}

/* [--] [DIR], or -h/--help.  Returns the directory for the file. */
static const char *parse_args(int argc, char **argv)
{
	const char *dir = NULL;
	bool options = true;
	struct stat st;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (options && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
			usage(stdout);
			exit(0);
		} else if (options && !strcmp(a, "--")) {
			options = false;
		} else if (options && a[0] == '-' && a[1]) {
			bad_usage("unknown option '%s'", a);
		} else if (dir) {
			bad_usage("one directory at most: '%s' and '%s'", dir, a);
		} else {
			dir = a;
		}
	}
	if (!dir)
		return getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	if (stat(dir, &st))
		bad_usage("%s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		bad_usage("%s: not a directory", dir);
	return dir;
}

int main(int argc, char **argv)
{
	const char *dir = parse_args(argc, argv);
	struct cg_stats before, after;
	struct io_uring_cqe *cqe;
	struct io_uring_sqe *sqe;
	struct io_uring ring;
	struct cg_pin *pin;
	struct cg *cg;
	char *p, *rb;
	int fds[2], fd, ret, status, bad = 0;
	pid_t pid;

	fd = open(dir, O_TMPFILE | O_RDWR | O_DIRECT | O_CLOEXEC, 0600);
	if (fd < 0)
		return fail("an O_DIRECT temporary file (give a directory on a "
			    "disk file system)", errno);
	p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	rb = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED || rb == MAP_FAILED)
		return fail("mmap", errno);
	memset(p, 'A', LEN);

	ret = cg_open(NULL, 0, &cg);
	if (ret)
		return fail("cg_open", ret);
	ret = cg_register(cg, p, LEN, 0);
	if (ret)
		return fail("cg_register", ret);
	printf("cowguard: %s mode, %lu KiB registered, filled with 'A'\n",
	       cg_mode(cg) == CG_MODE_DAEMON ? "daemon" : "embedded", LEN / 1024);

	if (pipe(fds))
		return fail("pipe", errno);
	pid = fork();
	if (pid < 0)
		return fail("fork", errno);
	if (pid == 0)
		_exit(child(p, fds[0]));
	close(fds[0]);
	printf("forked child %d: pages mapped once (exclusive) in the parent: "
	       "%ld of %lu\n", (int)pid, mapped_once(p, LEN), LEN / PAGE);

	ret = io_uring_queue_init(4, &ring, 0);
	if (ret)
		return fail("io_uring_queue_init", -ret);
	cg_stats(cg, &before, sizeof(before));
	sqe = io_uring_get_sqe(&ring);
	ret = cg_uring_prep_write_pinned(cg, sqe, fd, p, LEN, 0, &pin);
	if (ret)
		return fail("cg_uring_prep_write_pinned", ret);
	cg_stats(cg, &after, sizeof(after));
	printf("pinned read-only for the O_DIRECT write: %ld of %lu pages mapped "
	       "once; cowguard copied %llu, reused %llu\n", mapped_once(p, LEN),
	       LEN / PAGE,
	       (unsigned long long)(after.unshare_copies - before.unshare_copies),
	       (unsigned long long)(after.unshare_reuses - before.unshare_reuses));

	/* After the pin: the write reuses the pinned pages, the device reads it. */
	for (size_t off = 0; off < LEN; off += sizeof(parent_msg))
		memcpy(p + off, parent_msg,
		       LEN - off < sizeof(parent_msg) ? LEN - off : sizeof(parent_msg));
	printf("parent wrote \"%s\" over the buffer\n", parent_msg);

	ret = io_uring_submit(&ring);
	if (ret != 1)
		return fail("io_uring_submit", ret < 0 ? -ret : EIO);
	ret = io_uring_wait_cqe(&ring, &cqe);
	if (ret)
		return fail("io_uring_wait_cqe", -ret);
	printf("O_DIRECT write through io_uring: %d bytes\n", cqe->res);
	if (cqe->res != (int)LEN)
		bad = 1;
	io_uring_cqe_seen(&ring, cqe);
	ret = cg_unpin(pin);
	printf("cg_unpin: %s\n", ret ? cg_strerror(ret) : "every page still the one pinned");
	bad |= ret != 0;

	if (pread(fd, rb, LEN, 0) != (ssize_t)LEN)
		return fail("O_DIRECT read back", errno);
	if (memcmp(rb, p, LEN)) {
		printf("the file does NOT hold the parent's data: it starts \"%.20s\"\n", rb);
		bad = 1;
	} else {
		printf("read back with O_DIRECT: the file holds the parent's data\n");
	}

	if (write(fds[1], "g", 1) != 1)
		return fail("waking the child", errno);
	waitpid(pid, &status, 0);
	ret = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	printf("child: %s\n", ret == 0 ? "still reads its own 'A'" : "lost its data");
	bad |= ret != 0;

	cg_stats(cg, &after, sizeof(after));
	printf("counters: unshare_copies %llu, unshare_reuses %llu, "
	       "pages_made_exclusive %llu, pin_violations %llu, wp_faults %llu\n",
	       (unsigned long long)after.unshare_copies,
	       (unsigned long long)after.unshare_reuses,
	       (unsigned long long)after.pages_made_exclusive,
	       (unsigned long long)after.pin_violations,
	       (unsigned long long)after.wp_faults);

	io_uring_queue_exit(&ring);
	cg_close(cg);
	close(fd);
	printf("%s\n", bad ? "FAILED" : "ok");
	return bad;
}
