// SPDX-License-Identifier: MIT
/*
 * Writes to an O_DIRECT file: the device reads the program's pages while
 * the call runs.  Where the kernel reads them by plain reference (before
 * 5.19 always, 5.19-6.2 in the block layer: lib/kernel/odirect.c), a page
 * a fork left shared is read without being unshared first; the shim pins
 * (or unshares) before the call and lets go when it returns, the write
 * being done then.  cowguard-run learns at start what the kernel does, on
 * one filesystem (COWGUARD_ODIRECT): writes to files there go unpinned
 * where the kernel unshares; every other O_DIRECT write is pinned (an
 * unknown filesystem: NFS and FUSE have direct I/O paths of their own).
 *
 * Until the program has forked (cg__shim_forked()) none of its anonymous
 * pages is shared, and a write that reads them while the call runs reads
 * the program's own; until it may hold an O_DIRECT descriptor
 * (lib/preload/hook_open.c) no write is direct: the hook then costs two
 * tests.  After both, a write whose length is a multiple of 512 costs one
 * fcntl (the O_DIRECT flag may change at any time); direct I/O on a block-based filesystem refuses
 * other lengths (EINVAL), and filesystems that take any length (NFS,
 * FUSE's direct_io) are not followed for those.  A never-written page
 * (the zero page) or a private file page read by plain reference holds
 * what the program sees until the call returns; it is the consumers that
 * hold references longer (a pipe, a zero-copy send) that pin those too.
 * glibc's stdio calls its own write, not this one: a FILE on an O_DIRECT
 * descriptor is not followed.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "cowguard.h"
#include "preload.h"

#define BLOCK 512

enum call {
	WRITE, PWRITE, PWRITE64, WRITEV, PWRITEV, PWRITEV64, PWRITEV2,
	PWRITEV64V2, NCALLS
};

/* Each symbol's own original: another library may hook one of them. */
static const char *const names[NCALLS] = {
	"write", "pwrite", "pwrite64", "writev", "pwritev", "pwritev64",
	"pwritev2", "pwritev64v2",
};

struct args {
	enum call call;
	int fd;
	const struct iovec *iov;
	int nr;
	off_t off;
	int flags;
};

typedef ssize_t write_fn(int, const void *, size_t);
typedef ssize_t pwrite_fn(int, const void *, size_t, off_t);
typedef ssize_t writev_fn(int, const struct iovec *, int);
typedef ssize_t pwritev_fn(int, const struct iovec *, int, off_t);
typedef ssize_t pwritev2_fn(int, const struct iovec *, int, off_t, int);

static ssize_t call_real(const struct args *a)
{
	static void *real[NCALLS];
	void *fn = __atomic_load_n(&real[a->call], __ATOMIC_RELAXED);

	if (!fn) {
		fn = cg__real(names[a->call]);
		__atomic_store_n(&real[a->call], fn, __ATOMIC_RELAXED);
	}
	switch (a->call) {
	case WRITE:
		return ((write_fn *)fn)(a->fd, a->iov->iov_base, a->iov->iov_len);
	case PWRITE:
	case PWRITE64:
		return ((pwrite_fn *)fn)(a->fd, a->iov->iov_base,
					 a->iov->iov_len, a->off);
	case WRITEV:
		return ((writev_fn *)fn)(a->fd, a->iov, a->nr);
	case PWRITEV:
	case PWRITEV64:
		return ((pwritev_fn *)fn)(a->fd, a->iov, a->nr, a->off);
	default:
		return ((pwritev2_fn *)fn)(a->fd, a->iov, a->nr, a->off,
					   a->flags);
	}
}

bool cg__odirect_length(const struct iovec *iov, size_t nr)
{
	size_t len = 0;

	for (size_t i = 0; i < nr; i++)
		len += iov[i].iov_len;
	return len && len % BLOCK == 0;
}

bool cg__odirect_unprotected(int fd)
{
	static bool said;
	struct stat st;
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || !(fl & O_DIRECT) || fstat(fd, &st))
		return false;
	/* A packet-mode pipe says O_DIRECT too: a write copies into it. */
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return false;
	if (S_ISREG(st.st_mode) && cg__shim_odirect_unshared(st.st_dev))
		return false;
	if (!__atomic_exchange_n(&said, true, __ATOMIC_RELAXED))
		cg__shim_log("O_DIRECT writes the kernel may read by plain "
			     "reference (COWGUARD_ODIRECT %s): pinned before "
			     "each", getenv("COWGUARD_ODIRECT") ?
			     getenv("COWGUARD_ODIRECT") : "unset");
	return true;
}

/*
 * The write needs a pin: O_DIRECT, of a length a block device takes, on a
 * filesystem not known to unshare.  The vector is the program's memory,
 * which the kernel answers EFAULT for when bad: it is copied with
 * cg__read_own(), and only for an O_DIRECT file.  *copy is freed by the
 * caller.
 */
static bool needs_pin(const struct args *a, struct iovec **copy)
{
	*copy = NULL;
	if (!cg__odirect_fds_seen())
		return false;
	if (a->call < WRITEV)
		return cg__odirect_length(a->iov, 1) &&
		       cg__odirect_unprotected(a->fd);
	if (a->nr <= 0 || a->nr > IOV_MAX || !cg__odirect_unprotected(a->fd))
		return false;
	*copy = cg__read_own_iov(a->iov, (size_t)a->nr);
	return *copy && cg__odirect_length(*copy, (size_t)a->nr);
}

static ssize_t odirect_write(const struct args *a)
{
	struct cg_pin *pin = NULL;
	struct iovec *copy;
	ssize_t n;

	if (!cg__shim_forked() || !cg__shim_enter_bare(CG__HOOK_ODIRECT))
		return call_real(a);
	if (needs_pin(a, &copy))
		pin = cg__protect(CG__HOOK_ODIRECT, cg__shim_handle(),
				  copy ? copy : a->iov, (unsigned long)a->nr,
				  CG_PIN_RO);
	free(copy);
	n = call_real(a);
	cg__unprotect(pin);
	cg__shim_leave();
	return n;
}

CG__HOOK ssize_t write(int fd, const void *buf, size_t len)
{
	struct iovec iov = { (void *)buf, len };

	return odirect_write(&(struct args){ WRITE, fd, &iov, 1, 0, 0 });
}

CG__HOOK ssize_t pwrite(int fd, const void *buf, size_t len, off_t off)
{
	struct iovec iov = { (void *)buf, len };

	return odirect_write(&(struct args){ PWRITE, fd, &iov, 1, off, 0 });
}

CG__HOOK ssize_t pwrite64(int fd, const void *buf, size_t len, off_t off)
{
	struct iovec iov = { (void *)buf, len };

	return odirect_write(&(struct args){ PWRITE64, fd, &iov, 1, off, 0 });
}

CG__HOOK ssize_t writev(int fd, const struct iovec *iov, int nr)
{
	return odirect_write(&(struct args){ WRITEV, fd, iov, nr, 0, 0 });
}

CG__HOOK ssize_t pwritev(int fd, const struct iovec *iov, int nr, off_t off)
{
	return odirect_write(&(struct args){ PWRITEV, fd, iov, nr, off, 0 });
}

CG__HOOK ssize_t pwritev64(int fd, const struct iovec *iov, int nr, off_t off)
{
	return odirect_write(&(struct args){ PWRITEV64, fd, iov, nr, off, 0 });
}

CG__HOOK ssize_t pwritev2(int fd, const struct iovec *iov, int nr, off_t off,
			  int flags)
{
	return odirect_write(&(struct args){ PWRITEV2, fd, iov, nr, off, flags });
}

CG__HOOK ssize_t pwritev64v2(int fd, const struct iovec *iov, int nr,
			     off_t off, int flags)
{
	return odirect_write(&(struct args){ PWRITEV64V2, fd, iov, nr, off,
					     flags });
}
