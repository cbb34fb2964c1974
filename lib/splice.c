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

/* [*lo, *hi): from the first to the last byte of the non-empty iovecs. */
static int span(const struct iovec *iov, unsigned long nr, uint64_t *lo,
		uint64_t *hi)
{
	*lo = UINT64_MAX;
	*hi = 0;
	for (unsigned long i = 0; i < nr; i++) {
		uint64_t a = (uintptr_t)iov[i].iov_base, len = iov[i].iov_len;

		if (!len)
			continue;
		if (a + len < a)
			return -EOVERFLOW;
		*lo = a < *lo ? a : *lo;
		*hi = a + len > *hi ? a + len : *hi;
	}
	return *hi ? 0 : -EINVAL;
}

static bool hugetlb(const struct cg_page_info *info)
{
	return info->kind == CG_PAGE_HUGETLB_2M || info->kind == CG_PAGE_HUGETLB_1G;
}

/*
 * Round out to the pages the pipe will reference: 4 KiB, or a whole
 * hugetlb page (MADV_DONTFORK cannot split one).  -ENOENT if an end is not
 * registered.
 */
static int round_out(struct cg *cg, uint64_t *lo, uint64_t *hi)
{
	struct cg_page_info first, last;
	int ret = cg_query(cg, (void *)(uintptr_t)*lo, &first, sizeof(first));

	if (!ret)
		ret = cg_query(cg, (void *)(uintptr_t)(*hi - 1), &last, sizeof(last));
	if (ret)
		return ret;
	*lo = hugetlb(&first) ? first.addr : *lo & ~(CG_PAGE_SIZE - 1);
	*hi = hugetlb(&last) ? last.addr + last.size
			     : (*hi + CG_PAGE_SIZE - 1) & ~(CG_PAGE_SIZE - 1);
	return 0;
}

ssize_t cg_vmsplice(struct cg *cg, int pipe_fd, const struct iovec *iov,
		    unsigned long nr, unsigned flags, struct cg_pin **out)
{
	struct cg_pin *pin;
	uint64_t lo, hi;
	ssize_t n;
	int ret;

	if (!cg || !iov || !out || !nr || nr > IOV_MAX || (flags & ~SPLICE_FLAGS))
		return -EINVAL;
	ret = span(iov, nr, &lo, &hi);
	if (!ret)
		ret = check_pipe(pipe_fd);
	if (!ret)
		ret = round_out(cg, &lo, &hi);
	if (!ret)
		ret = cg__pin(cg, (void *)(uintptr_t)lo, hi - lo, CG_PIN_RO,
			      "vmsplice", &pin);
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
