// SPDX-License-Identifier: MIT
/*
 * cg_ibv_reg_mr(), cg_ibv_dereg_mr(): libcowguard-verbs, the one part of
 * cowguard that needs libibverbs.  Pin first, register second; deregister
 * first, unpin second: the kernel's pin lies inside ours, so whatever the
 * device may touch is covered, and the unpin checks the pages only once
 * the device can no longer reach them.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "cowguard/verbs.h"
#include "handle.h"
#include "kernel/pages.h"
#include "write_unshare.h"
#include "verbs_internal.h"

struct cg_mr {
	struct ibv_mr *mr;
	struct cg_pin *pin;	/* NULL for on-demand paging */
};

unsigned cg__ibv_pin_flags(int access)
{
	/* The kernel's ib_access_writable(): these make it pin for writing. */
	const int writable = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
			     IBV_ACCESS_REMOTE_ATOMIC | IBV_ACCESS_MW_BIND;

	/* ODP pins nothing; a FOLL_PIN pin here would mislead us at fork. */
	if (access & IBV_ACCESS_ON_DEMAND)
		return 0;
	return (access & writable ? CG_PIN_RW : CG_PIN_RO) | CG_PIN_FOLL_PIN;
}

int cg_ibv_reg_mr(struct cg *cg, struct ibv_pd *pd, void *addr, size_t length,
		  int access, struct cg_mr **out)
{
	uint64_t a = (uintptr_t)addr, lo, hi;
	unsigned flags = cg__ibv_pin_flags(access);
	struct cg_mr *m;
	int ret = 0;

	if (!cg || !pd || !out || !length)
		return -EINVAL;
	if (a + length < a || a + length + CG_PAGE_SIZE - 1 < a + length)
		return -EOVERFLOW;
	lo = a & ~(CG_PAGE_SIZE - 1);
	hi = (a + length + CG_PAGE_SIZE - 1) & ~(CG_PAGE_SIZE - 1);
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	if (flags)
		ret = cg__pin(cg, (void *)(uintptr_t)lo, hi - lo, flags, "rdma",
			      &m->pin);
	if (ret)
		goto err_free;
	/* What the ibv_reg_mr() macro calls for access flags not constant. */
	m->mr = ibv_reg_mr_iova2(pd, addr, length, a, (unsigned)access);
	if (!m->mr && errno == EFAULT && flags) {
		/*
		 * 6.1's ib_umem_get() pins every MR for writing (FOLL_FORCE
		 * for a read-only one), FOLL_LONGTERM, and such a pin cannot
		 * wait for a userfaultfd: the write fault on a write-protected
		 * page becomes EFAULT (measured in the 6.1 guest on rxe0, for
		 * read-only and writable MRs alike; fine once unprotected).
		 * Take those write faults first, through the handler (the
		 * pages are ours alone now), and register again.
		 */
		cg__write_fault(lo, hi - lo);
		m->mr = ibv_reg_mr_iova2(pd, addr, length, a, (unsigned)access);
	}
	if (!m->mr) {
		ret = errno > 0 ? -errno : -EIO;
		goto err_unpin;
	}
	*out = m;
	return 0;

err_unpin:
	/* Nothing was registered: the check has nothing to say. */
	if (m->pin)
		cg_unpin(m->pin);
err_free:
	free(m);
	return ret;
}

struct ibv_mr *cg_ibv_mr(const struct cg_mr *mr)
{
	return mr ? mr->mr : NULL;
}

int cg_ibv_dereg_mr(struct cg_mr *mr)
{
	int ret;

	if (!mr)
		return -EINVAL;
	ret = ibv_dereg_mr(mr->mr);
	if (ret)
		/* Still registered: keep the pin, let the caller retry. */
		return ret > 0 ? -ret : ret;
	ret = mr->pin ? cg_unpin(mr->pin) : 0;
	free(mr);
	return ret;
}
