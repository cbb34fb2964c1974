// SPDX-License-Identifier: MIT
/* Thin wrappers over the userfaultfd system call and ioctls. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "uffd.h"

int cg__uffd_create(void)
{
	/* Never UFFD_USER_MODE_ONLY, which the kernel would always grant. */
	int flags = O_CLOEXEC | O_NONBLOCK;
	int fd = (int)syscall(SYS_userfaultfd, flags);
	int sys_err, dev;

	if (fd >= 0)
		return fd;
	sys_err = errno;
	if (sys_err != EPERM && sys_err != ENOSYS)
		return -sys_err;
	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev < 0) {
		/* Not in the group that may open it (see cg_strerror). */
		if (errno == EACCES || errno == EPERM)
			return -EPERM;
		/* No device (before 6.1): the syscall's answer stands. */
		if (errno == ENOENT || errno == ENODEV || errno == ENXIO)
			return -sys_err;
		return -errno;
	}
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
	fd = fd < 0 ? -errno : fd;
	close(dev);
	return fd;
}

static int api(int fd, uint64_t features, uint64_t *got)
{
	struct uffdio_api a = { .api = UFFD_API, .features = features };

	if (ioctl(fd, UFFDIO_API, &a))
		return -errno;
	*got = a.features;
	return 0;
}

int cg__uffd_api(int fd, uint64_t wanted, uint64_t *got)
{
	uint64_t avail = 0, features;
	int probe, ret;

	/* Ask a throwaway uffd what exists: UFFDIO_API succeeds only once. */
	probe = cg__uffd_create();
	if (probe < 0)
		return probe;
	ret = api(probe, 0, &avail);
	close(probe);
	if (ret)
		return ret;
	if (!(avail & UFFD_FEATURE_PAGEFAULT_FLAG_WP))
		return -ENOSYS;
	features = wanted & avail;
	ret = api(fd, features, got);
	if (ret == -EPERM && (features & UFFD_FEATURE_EVENT_FORK))
		ret = api(fd, features & ~(uint64_t)UFFD_FEATURE_EVENT_FORK, got);
	if (ret)
		return ret;
	/* The kernel echoes every feature it has; keep what we enabled. */
	*got &= features;
	return 0;
}

bool cg__is_uffd(int fd)
{
	char path[64], target[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return false;
	target[n] = 0;
	return strcmp(target, "anon_inode:[userfaultfd]") == 0;
}

int cg__uffd_register_mode(int fd, uint64_t start, uint64_t len, uint64_t mode)
{
	struct uffdio_register r = {
		.range = { .start = start, .len = len },
		.mode = mode,
	};

	return ioctl(fd, UFFDIO_REGISTER, &r) ? -errno : 0;
}

int cg__uffd_register(int fd, uint64_t start, uint64_t len)
{
	return cg__uffd_register_mode(fd, start, len, UFFDIO_REGISTER_MODE_WP);
}

/*
 * The kernel wakes the faults waiting in a MISSING range as it
 * unregisters it, but looks at the queue before a fault taken under a
 * per-VMA lock has joined it (the fault joins, then lets the unregister
 * go on): that fault slept until the uffd was closed (seen on 6.18, one
 * restore in 30 under ASan).  Once UNREGISTER returns every such fault
 * is queued, so a wake now reaches it; WP ranges are not woken at all.
 */
int cg__uffd_unregister(int fd, uint64_t start, uint64_t len)
{
	struct uffdio_range r = { .start = start, .len = len };

	if (ioctl(fd, UFFDIO_UNREGISTER, &r))
		return -errno;
	return cg__uffd_wake(fd, start, len);
}

int cg__uffd_wake(int fd, uint64_t start, uint64_t len)
{
	struct uffdio_range r = { .start = start, .len = len };

	return ioctl(fd, UFFDIO_WAKE, &r) ? -errno : 0;
}

int cg__uffd_move(int fd, uint64_t dst, uint64_t src, uint64_t len,
		  uint64_t *done)
{
	struct uffdio_move m = {
		.dst = dst, .src = src, .len = len,
		.mode = UFFDIO_MOVE_MODE_DONTWAKE,
	};
	int ret = ioctl(fd, UFFDIO_MOVE, &m) ? -errno : 0;

	*done = ret ? (m.move > 0 ? (uint64_t)m.move : 0) : len;
	return ret;
}

int cg__uffd_poison(int fd, uint64_t start, uint64_t len)
{
	struct uffdio_poison p = {
		.range = { .start = start, .len = len },
		.mode = UFFDIO_POISON_MODE_DONTWAKE,
	};

	return ioctl(fd, UFFDIO_POISON, &p) ? -errno : 0;
}

int cg__uffd_copy(int fd, uint64_t dst, uint64_t src, uint64_t len,
		  uint64_t *done)
{
	struct uffdio_copy c = {
		.dst = dst, .src = src, .len = len,
		.mode = UFFDIO_COPY_MODE_DONTWAKE,
	};
	int ret = ioctl(fd, UFFDIO_COPY, &c) ? -errno : 0;

	*done = ret ? (c.copy > 0 ? (uint64_t)c.copy : 0) : len;
	return ret;
}

int cg__uffd_wp(int fd, uint64_t start, uint64_t len, bool protect)
{
	struct uffdio_writeprotect w = {
		.range = { .start = start, .len = len },
		.mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	return ioctl(fd, UFFDIO_WRITEPROTECT, &w) ? -errno : 0;
}

/*
 * A client shares the open file of the uffd it handed over (it kept an fd
 * on it), and O_NONBLOCK is the file's: it can clear it, then read the
 * message poll() announced before we do, and a plain read would sleep
 * until its next message.  RWF_NOWAIT never waits, whatever the file's
 * flags, where the kernel takes it for a uffd (6.18 does, 6.1 not); else,
 * where reads are bounded, a timer of the reading thread interrupts one
 * that lasts.
 */
#define READ_BOUND_NS (10 * 1000 * 1000)

static struct {
	bool on;
	timer_t timer;
} bounded;

static bool nowait;	/* probed by cg__uffd_bound_reads() */

static void on_alarm(int sig)
{
	(void)sig;	/* only there to interrupt: no SA_RESTART */
}

/* Whether RWF_NOWAIT reads a uffd here: a fresh one, empty, says EAGAIN. */
static bool nowait_works(void)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffd_msg msg;
	struct iovec v = { &msg, sizeof(msg) };
	int fd = cg__uffd_create();
	bool works;

	if (fd < 0)
		return false;
	works = !ioctl(fd, UFFDIO_API, &api) &&
		preadv2(fd, &v, 1, -1, RWF_NOWAIT) < 0 && errno == EAGAIN;
	close(fd);
	return works;
}

int cg__uffd_bound_reads(void)
{
	struct sigevent ev = {
		.sigev_notify = SIGEV_THREAD_ID,
		.sigev_signo = SIGURG,
	};
	struct sigaction sa = { .sa_handler = on_alarm };

	ev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
	if (sigaction(SIGURG, &sa, NULL) ||
	    timer_create(CLOCK_MONOTONIC, &ev, &bounded.timer))
		return -errno;
	bounded.on = true;
	nowait = nowait_works();
	return 0;
}

static void arm(long ns)
{
	struct itimerspec it = { .it_value = { 0, ns } };

	if (bounded.on)
		timer_settime(bounded.timer, 0, &it, NULL);
}

bool cg__uffd_made_blocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl >= 0 && !(fl & O_NONBLOCK);
}

/* read() that a timer interrupts: for kernels without RWF_NOWAIT here. */
static ssize_t read_bounded(int fd, void *buf, size_t len)
{
	ssize_t n;
	int err;

	arm(READ_BOUND_NS);
	n = read(fd, buf, len);
	err = errno;
	arm(0);
	if (n >= 0)
		return n;
	if (err == EINTR && cg__uffd_made_blocking(fd))
		return -EPERM;
	return err == EAGAIN || err == EINTR ? 0 : -err;
}

ssize_t cg__uffd_read(int fd, void *buf, size_t len)
{
	struct iovec v = { buf, len };
	ssize_t n;

	if (!nowait)
		return read_bounded(fd, buf, len);
	n = preadv2(fd, &v, 1, -1, RWF_NOWAIT);
	if (n >= 0)
		return n;
	/*
	 * The uffd a fork event makes is opened without FMODE_NOWAIT (6.18):
	 * it is ours alone, nobody else can make it blocking.
	 */
	if (errno == EOPNOTSUPP)
		return read_bounded(fd, buf, len);
	return errno == EAGAIN || errno == EINTR ? 0 : -errno;
}
