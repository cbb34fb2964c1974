// SPDX-License-Identifier: MIT
/*
 * What every hook does before its consumer takes our pages: pin them
 * through cowguardd, or unshare them where there is none.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "cowguard.h"
#include "handle.h"
#include "kernel/pages.h"
#include "preload.h"
#include "wire/protocol.h"
#include "write_unshare.h"

int cg__write_fault_iov(const struct iovec *iov)
{
	uint64_t lo = (uintptr_t)iov->iov_base & ~(CG_PAGE_SIZE - 1);
	uint64_t hi = ((uintptr_t)iov->iov_base + iov->iov_len + CG_PAGE_SIZE -
		       1) & ~(CG_PAGE_SIZE - 1);

	return cg__write_fault(lo, hi - lo);
}

/* Write faults that change nothing: the pages are ours alone after them. */
static void unshare_pages(enum cg__hook hook, const struct iovec *iov,
			  unsigned long nr)
{
	uint64_t lo, hi;
	int ret = cg__iov_span(iov, nr, &lo, &hi);

	if (!ret)
		ret = cg__write_fault_iov(&(struct iovec){ (void *)(uintptr_t)lo,
							   hi - lo });
	/* Read-only memory: no write of ours can make it stale. */
	if (ret && ret != -EACCES && ret != -EINVAL)
		cg__shim_failed(hook, "unshare", ret);
}

static int cover_and_pin(struct cg *cg, uint64_t lo, uint64_t hi,
			 const struct iovec *iov, unsigned long nr,
			 unsigned flags, const char *consumer,
			 struct cg_pin **pin)
{
	int ret = cg__cover(cg, lo, hi - lo);

	return ret ? ret : cg__pin_iov(cg, iov, nr, flags | CG__PIN_FORKABLE,
				       consumer, pin);
}

struct cg_pin *cg__protect(enum cg__hook hook, struct cg *cg,
			   const struct iovec *iov, unsigned long nr,
			   unsigned flags)
{
	char consumer[sizeof(CG_PRELOAD_CONSUMER) + 16];
	struct cg_pin *pin = NULL;
	int saved = errno, ret = -ENOTCONN;
	uint64_t lo, hi;

	if (cg) {
		snprintf(consumer, sizeof(consumer), CG_PRELOAD_CONSUMER "%s",
			 cg__hook_name(hook));
		ret = cg__iov_span(iov, nr, &lo, &hi);
		if (!ret)
			ret = cover_and_pin(cg, lo, hi, iov, nr, flags, consumer,
					    &pin);
		/* What the shim covered may have been unmapped since. */
		if (ret == -ENOENT) {
			cg__uncover(lo, hi - lo);
			ret = cover_and_pin(cg, lo, hi, iov, nr, flags, consumer,
					    &pin);
		}
		if (ret && ret != -EINVAL)
			cg__shim_failed(hook, "pin", ret);
	}
	if (!ret) {
		__atomic_add_fetch(&cg__shim_counts.calls[hook], 1,
				   __ATOMIC_RELAXED);
	} else {
		unshare_pages(hook, iov, nr);
		if (!cg)
			__atomic_add_fetch(&cg__shim_counts.unshared, 1,
					   __ATOMIC_RELAXED);
	}
	errno = saved;
	return ret ? NULL : pin;
}

bool cg__read_own(void *dst, const void *src, size_t len)
{
	struct iovec local = { dst, len }, remote = { (void *)src, len };

	return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) ==
	       (ssize_t)len;
}

struct iovec *cg__read_own_iov(const struct iovec *iov, size_t nr)
{
	struct iovec *copy = malloc(nr * sizeof(*copy));

	if (copy && !cg__read_own(copy, iov, nr * sizeof(*copy))) {
		free(copy);
		copy = NULL;
	}
	return copy;
}

struct cg_pin *cg__protect_msg(enum cg__hook hook, struct cg *cg,
			       const struct msghdr *msg, unsigned flags)
{
	struct cg_pin *pin = NULL;
	struct iovec *iov = NULL;
	struct msghdr m;

	if (cg__read_own(&m, msg, sizeof(m)) && m.msg_iovlen &&
	    m.msg_iovlen <= IOV_MAX)
		iov = cg__read_own_iov(m.msg_iov, m.msg_iovlen);
	if (iov)
		pin = cg__protect(hook, cg, iov, m.msg_iovlen, flags);
	free(iov);
	return pin;
}

void cg__unprotect(struct cg_pin *pin)
{
	int saved = errno;

	if (pin && cg_unpin(pin) == -ENOTRECOVERABLE)
		__atomic_add_fetch(&cg__shim_counts.violations, 1,
				   __ATOMIC_RELAXED);
	errno = saved;
}
