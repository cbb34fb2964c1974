// SPDX-License-Identifier: MIT
/*
 * Writes to an O_DIRECT file: the device reads the program's pages while
 * the call runs.  Where the kernel reads them by plain reference
 * (lib/kernel/odirect.c: before 5.19 always, 5.19-6.2 in the block layer),
 * a page a fork left shared is read without being unshared first; the
 * shim pins (or unshares) before the call and lets go when it returns,
 * the write being done then.  cowguard-run learns once at start what the
 * kernel does (COWGUARD_ODIRECT); where it unshares, the hook asks
 * nothing.  Unknown there (no directory took an O_DIRECT file), the shim
 * probes each filesystem on its first O_DIRECT write.
 *
 * Until the program has forked (cg__shim_forked()) none of its anonymous
 * pages is shared, and a write that reads them while the call runs reads
 * the program's own: the hook then costs a test.  After a fork, on a
 * kernel that reads by plain reference, it costs one fcntl a write (the
 * O_DIRECT flag may change at any time).  A never-written page (the zero page) or a
 * private file page read by plain reference holds what the program sees
 * until the call returns; it is the consumers that hold references longer
 * (a pipe, a zero-copy send) that pin those too.
 *
 * Only writes whose length is a multiple of 512 bytes are looked at:
 * direct I/O on a block-based filesystem refuses any other length
 * (EINVAL), and so the common short write costs no system call of ours.
 * Filesystems that take any length (NFS, FUSE's direct_io) are not
 * followed for those lengths (docs/preload.md).  glibc's stdio calls its
 * own write, not this one: a FILE on an O_DIRECT descriptor is not
 * followed either.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/uio.h>
#include <unistd.h>

#include "cowguard.h"
#include "kernel/odirect.h"
#include "preload.h"

#define BLOCK 512

enum call { WRITE, PWRITE, WRITEV, PWRITEV, PWRITEV2, NCALLS };

/* The 64-bit names: on LP64 each is also the plain one's. */
static const char *const names[NCALLS] = {
	"write", "pwrite64", "writev", "pwritev64", "pwritev64v2",
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
		return ((pwrite_fn *)fn)(a->fd, a->iov->iov_base,
					 a->iov->iov_len, a->off);
	case WRITEV:
		return ((writev_fn *)fn)(a->fd, a->iov, a->nr);
	case PWRITEV:
		return ((pwritev_fn *)fn)(a->fd, a->iov, a->nr, a->off);
	default:
		return ((pwritev2_fn *)fn)(a->fd, a->iov, a->nr, a->off,
					   a->flags);
	}
}

static bool block_multiple(const struct iovec *iov, int nr)
{
	size_t len = 0;

	for (int i = 0; i < nr && iov; i++)
		len += iov[i].iov_len;
	return len && len % BLOCK == 0;
}

bool cg__odirect_unprotected(int fd)
{
	enum cg__odirect what = cg__shim_odirect();
	bool learned = false;
	int fl;

	if (what == CG__ODIRECT_UNSHARES)
		return false;
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || !(fl & O_DIRECT))
		return false;
	if (what != CG__ODIRECT_PLAIN)
		what = cg__odirect_write(fd, &learned);
	if (learned)
		cg__shim_log("O_DIRECT writes on the filesystem of fd %d: %s%s",
			     fd, cg__odirect_name(what),
			     what == CG__ODIRECT_UNSHARES ? "" :
			     ": pinned before each");
	return what != CG__ODIRECT_UNSHARES;
}

/*
 * A vector is the program's memory, which the kernel reads with EFAULT as
 * the answer to a bad one: the shim reads it only for an O_DIRECT file.
 */
static ssize_t odirect_write(const struct args *a)
{
	bool vector = a->call >= WRITEV;
	struct cg_pin *pin;
	ssize_t n;

	if (!cg__shim_forked() || (!vector && !block_multiple(a->iov, 1)) ||
	    (vector && (a->nr <= 0 || a->nr > IOV_MAX)) ||
	    !cg__shim_enter_bare(CG__HOOK_ODIRECT))
		return call_real(a);
	if (!cg__odirect_unprotected(a->fd) ||
	    (vector && !block_multiple(a->iov, a->nr))) {
		cg__shim_leave();
		return call_real(a);
	}
	pin = cg__protect(CG__HOOK_ODIRECT, cg__shim_handle(), a->iov,
			  (unsigned long)a->nr, CG_PIN_RO,
			  "O_DIRECT write (preload)");
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
	return pwrite(fd, buf, len, off);
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
	return pwritev(fd, iov, nr, off);
}

CG__HOOK ssize_t pwritev2(int fd, const struct iovec *iov, int nr, off_t off,
			  int flags)
{
	return odirect_write(&(struct args){ PWRITEV2, fd, iov, nr, off, flags });
}

CG__HOOK ssize_t pwritev64v2(int fd, const struct iovec *iov, int nr,
			     off_t off, int flags)
{
	return pwritev2(fd, iov, nr, off, flags);
}
