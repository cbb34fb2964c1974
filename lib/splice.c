// SPDX-License-Identifier: MIT
/*
 * cg_vmsplice(): a read-only pin of the pages, then vmsplice().  The pin
 * unshares every page that may still be COW-shared, so the references the
 * pipe takes are to the pages this process goes on writing; and, since
 * those references are not FOLL_PINs, it keeps the range out of any child
 * with MADV_DONTFORK (lib/cg_pin.c) for as long as the pipe may hold them.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

#include "cowguard/splice.h"
#include "handle.h"
#include "kernel/pages.h"

#define SPLICE_FLAGS (SPLICE_F_MOVE | SPLICE_F_NONBLOCK | SPLICE_F_MORE | \
		      SPLICE_F_GIFT)

/* vmsplice() gives the pipe our pages only through a write end. */
static int check_pipe(int fd)
{
	struct stat st;
	int fl;

	if (fstat(fd, &st) || !S_ISFIFO(st.st_mode))
		return -EBADF;
	fl = fcntl(fd, F_GETFL);
	return fl < 0 || (fl & O_ACCMODE) == O_RDONLY ? -EBADF : 0;
}

ssize_t cg_vmsplice(struct cg *cg, int pipe_fd, const struct iovec *iov,
		    unsigned long nr, unsigned flags, struct cg_pin **out)
{
	struct cg_pin *pin;
	ssize_t n;
	int ret;

	if (!cg || !iov || !out || !nr || nr > IOV_MAX || (flags & ~SPLICE_FLAGS))
		return -EINVAL;
	ret = check_pipe(pipe_fd);
	if (!ret)
		ret = cg__pin_iov(cg, iov, nr, CG_PIN_RO, "vmsplice", &pin);
	if (ret)
		return ret;
	n = vmsplice(pipe_fd, iov, nr, flags);
	if (n < 0) {
		ret = -errno;
		/* The pipe took no reference: nothing to check. */
		cg_unpin(pin);
		return ret;
	}
	*out = pin;
	return n;
}
