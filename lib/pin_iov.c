// SPDX-License-Identifier: MIT
/*
 * Pinning the pages an iovec array references, for consumers that take
 * plain references to them: vmsplice (lib/splice.c) and, through the
 * preload shim, zero-copy sends.  The span runs from the first to the last
 * byte of the non-empty iovecs, gaps included, rounded out to the pages
 * the consumer references: 4 KiB, or a whole hugetlb page.
 */
#include <errno.h>
#include <sys/uio.h>

#include "handle.h"
#include "kernel/pages.h"

int cg__iov_span(const struct iovec *iov, unsigned long nr, uint64_t *lo,
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

int cg__pin_iov(struct cg *cg, const struct iovec *iov, unsigned long nr,
		unsigned flags, const char *consumer, struct cg_pin **out)
{
	uint64_t lo, hi;
	int ret = cg__iov_span(iov, nr, &lo, &hi);

	if (!ret)
		ret = round_out(cg, &lo, &hi);
	if (!ret)
		ret = cg__pin(cg, (void *)(uintptr_t)lo, hi - lo, flags, consumer,
			      out);
	return ret;
}
