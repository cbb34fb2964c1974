// SPDX-License-Identifier: MIT
/*
 * The io_uring consumer: fixed buffers pinned for as long as the ring has
 * them, and transient read-only pins around an O_DIRECT write or a
 * zero-copy send.  Which pin flags and why: include/cowguard/uring.h.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "cowguard/uring.h"
#include "handle.h"
#include "kernel/pages.h"
#include "write_unshare.h"

#define CONSUMER "io_uring"

struct cg_uring_bufs {
	struct io_uring *ring;
	unsigned nr;
	struct cg_pin *pins[];		/* NULL for a zero-length slot */
};

/*
 * Round [*start, *end) out to the huge pages of hugetlb memory at either
 * end.  Returns 0 when that changed the range, -EINVAL when it did not.
 */
static int round_to_huge(struct cg *cg, uint64_t *start, uint64_t *end)
{
	uint64_t s = *start, e = *end;
	struct cg_page_info info;

	if (!cg_query(cg, (void *)(uintptr_t)s, &info, sizeof(info)) &&
	    (info.kind == CG_PAGE_HUGETLB_2M || info.kind == CG_PAGE_HUGETLB_1G))
		s = info.addr;
	if (!cg_query(cg, (void *)(uintptr_t)(e - 1), &info, sizeof(info)) &&
	    (info.kind == CG_PAGE_HUGETLB_2M || info.kind == CG_PAGE_HUGETLB_1G))
		e = info.addr + info.size;
	if (s == *start && e == *end)
		return -EINVAL;
	*start = s;
	*end = e;
	return 0;
}

/* Pin the whole pages of [buf, buf+len) for io_uring. */
static int pin_pages(struct cg *cg, const void *buf, size_t len, unsigned flags,
		     struct cg_pin **out)
{
	uint64_t start = (uintptr_t)buf & ~(CG_PAGE_SIZE - 1);
	uint64_t end = (uintptr_t)buf + len;
	int ret;

	if (end < (uintptr_t)buf || end > UINT64_MAX - CG_PAGE_SIZE)
		return -EOVERFLOW;
	end = (end + CG_PAGE_SIZE - 1) & ~(CG_PAGE_SIZE - 1);
	ret = cg__pin(cg, (void *)(uintptr_t)start, end - start, flags, CONSUMER,
		      out);
	/*
	 * The arguments are valid by construction, so -EINVAL here is
	 * MADV_DONTFORK refusing to split a hugetlb mapping inside a huge
	 * page: pin whole huge pages instead (the cheap path stays one call).
	 */
	if (ret == -EINVAL && !(flags & CG_PIN_FOLL_PIN) &&
	    !round_to_huge(cg, &start, &end))
		ret = cg__pin(cg, (void *)(uintptr_t)start, end - start, flags,
			      CONSUMER, out);
	return ret;
}

/*
 * Write-fault every page of [buf, buf+len) in (MADV_POPULATE_WRITE): each
 * write-protected page raises its WP fault to the handler, which finds it
 * exclusive (pinned) and unprotects it.  Best effort: the caller retries
 * its kernel pin and reports that pin's error.
 */
static void prefault_write(const void *buf, size_t len)
{
	uintptr_t start = (uintptr_t)buf & ~(uintptr_t)(CG_PAGE_SIZE - 1);
	uintptr_t end = ((uintptr_t)buf + len + CG_PAGE_SIZE - 1) &
			~(uintptr_t)(CG_PAGE_SIZE - 1);

	cg__write_fault(start, end - start);
}

int cg_uring_register_buffers(struct cg *cg, struct io_uring *ring,
			      const struct iovec *iov, unsigned nr,
			      struct cg_uring_bufs **out)
{
	struct cg_uring_bufs *b;
	unsigned i;
	int ret = 0;

	if (!cg || !ring || !iov || !nr || !out)
		return -EINVAL;
	b = calloc(1, sizeof(*b) + nr * sizeof(b->pins[0]));
	if (!b)
		return -ENOMEM;
	b->ring = ring;
	b->nr = nr;
	/* Exclusive first: the kernel's write pin would copy a shared page. */
	for (i = 0; i < nr && !ret; i++)
		if (iov[i].iov_len)
			ret = pin_pages(cg, iov[i].iov_base, iov[i].iov_len,
					CG_PIN_RW | CG_PIN_FOLL_PIN, &b->pins[i]);
	if (ret)
		goto err_unpin;
	ret = io_uring_register_buffers(ring, iov, nr);
	if (ret == -EFAULT) {
		/*
		 * 6.1's io_uring pins with pin_user_pages(), which cannot wait
		 * for a userfaultfd: the write fault its FOLL_WRITE pin takes on
		 * a write-protected page becomes EFAULT (measured in the 6.1
		 * guest; 6.18 waits for our handler).  Take those write faults
		 * first, through the handler, then let the kernel pin again.
		 */
		for (i = 0; i < nr; i++)
			if (iov[i].iov_len)
				prefault_write(iov[i].iov_base, iov[i].iov_len);
		ret = io_uring_register_buffers(ring, iov, nr);
	}
	if (ret)
		goto err_unpin;
	*out = b;
	return 0;

err_unpin:
	for (i = 0; i < nr; i++)
		if (b->pins[i])
			cg_unpin(b->pins[i]);
	free(b);
	return ret;
}

int cg_uring_unregister_buffers(struct cg_uring_bufs *b)
{
	bool violated = false;
	int ret, err = 0;

	if (!b)
		return -EINVAL;
	/* The ring lets go of the pages first; then each pin is checked. */
	ret = io_uring_unregister_buffers(b->ring);
	for (unsigned i = 0; i < b->nr; i++) {
		int r = b->pins[i] ? cg_unpin(b->pins[i]) : 0;

		if (r == -ENOTRECOVERABLE)
			violated = true;
		else if (r && !err)
			err = r;
	}
	free(b);
	if (violated)
		return -ENOTRECOVERABLE;
	return ret ? ret : err;
}

int cg_uring_prep_write_pinned(struct cg *cg, struct io_uring_sqe *sqe, int fd,
			       const void *buf, unsigned nbytes, __u64 offset,
			       struct cg_pin **pin)
{
	int ret;

	if (!cg || !sqe || !buf || !nbytes || !pin)
		return -EINVAL;
	ret = pin_pages(cg, buf, nbytes, CG_PIN_RO, pin);
	if (ret)
		return ret;
	io_uring_prep_write(sqe, fd, buf, nbytes, offset);
	return 0;
}

int cg_uring_prep_send_zc_pinned(struct cg *cg, struct io_uring_sqe *sqe,
				 int sockfd, const void *buf, size_t len,
				 int flags, unsigned zc_flags, struct cg_pin **pin)
{
	int ret;

	if (!cg || !sqe || !buf || !len || !pin)
		return -EINVAL;
	ret = pin_pages(cg, buf, len, CG_PIN_RO, pin);
	if (ret)
		return ret;
	io_uring_prep_send_zc(sqe, sockfd, buf, len, flags, zc_flags);
	return 0;
}
