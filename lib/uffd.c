// SPDX-License-Identifier: MIT
/* Thin wrappers over the userfaultfd system call and ioctls. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
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

int cg__uffd_unregister(int fd, uint64_t start, uint64_t len)
{
	struct uffdio_range r = { .start = start, .len = len };

	return ioctl(fd, UFFDIO_UNREGISTER, &r) ? -errno : 0;
}

int cg__uffd_wp(int fd, uint64_t start, uint64_t len, bool protect)
{
	struct uffdio_writeprotect w = {
		.range = { .start = start, .len = len },
		.mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	return ioctl(fd, UFFDIO_WRITEPROTECT, &w) ? -errno : 0;
}
