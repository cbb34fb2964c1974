// SPDX-License-Identifier: MIT
/*
 * libibverbs memory registration.  ibv_reg_mr() is an inline wrapper in
 * <infiniband/verbs.h> that calls the exported ibv_reg_mr@IBVERBS_1.1 or
 * ibv_reg_mr_iova2@IBVERBS_1.8; ibv_reg_mr_iova@IBVERBS_1.7, ibv_rereg_mr
 * and ibv_dereg_mr are exported too.  The shim defines those versions
 * (lib/preload/libcowguard-preload.map), so a program linked against them
 * reaches it, and calls the same versions of the originals with dlvsym.
 * Binaries linked against the IBVERBS_1.0 compatibility symbols do not
 * reach it: they keep their own ABI.
 *
 * The pin matches the kernel's (the MR's access flags: read-only or for
 * writing, FOLL_PIN; on-demand paging pins nothing), is held per MR, and
 * is checked at deregistration.  The kernel unshares a read-only pin only
 * from 5.19 on; before, cowguard's pin is the only one that does.
 */
#include <errno.h>
#include <stdint.h>
#include <sys/uio.h>

#include <infiniband/verbs.h>

#include "cowguard.h"
#include "preload.h"

#undef ibv_reg_mr
#undef ibv_reg_mr_iova


/* The kernel's ib_access_writable(): these make it pin for writing. */
static unsigned pin_flags(unsigned access)
{
	const unsigned writable = IBV_ACCESS_LOCAL_WRITE |
				  IBV_ACCESS_REMOTE_WRITE |
				  IBV_ACCESS_REMOTE_ATOMIC | IBV_ACCESS_MW_BIND;

	if (access & IBV_ACCESS_ON_DEMAND)
		return 0;
	return (access & writable ? CG_PIN_RW : CG_PIN_RO) | CG_PIN_FOLL_PIN;
}

typedef struct ibv_mr *reg_fn(struct ibv_pd *pd, void *addr, size_t length,
			      uint64_t iova, unsigned access, int which);

/*
 * Pin, register through reg, hold the pin by the MR.  6.1's ib_umem_get()
 * pins every MR for writing, FOLL_LONGTERM, which cannot wait for a
 * userfaultfd: a write-protected page makes it fail with EFAULT.  Then the
 * pages are written (they are ours alone now) and it registers again.
 */
static struct ibv_mr *register_pinned(struct ibv_pd *pd, void *addr,
				      size_t length, uint64_t iova,
				      unsigned access, int which, reg_fn *reg)
{
	struct iovec iov = { addr, length };
	unsigned flags = pin_flags(access);
	struct cg_pin *pin = NULL;
	struct ibv_mr *mr;
	struct cg *cg;

	if (!flags || !length || !cg__shim_enter(CG__HOOK_VERBS, &cg))
		return reg(pd, addr, length, iova, access, which);
	pin = cg__protect(CG__HOOK_VERBS, cg, &iov, 1, flags);
	mr = reg(pd, addr, length, iova, access, which);
	if (!mr && errno == EFAULT) {
		cg__write_fault_iov(&iov);
		mr = reg(pd, addr, length, iova, access, which);
	}
	if (!mr)
		cg__unprotect(pin);
	else if (pin)
		cg__held_add(pin, CG__HELD_MR, -1, (uintptr_t)mr);
	cg__shim_leave();
	return mr;
}

typedef struct ibv_mr *reg_1_1_fn(struct ibv_pd *pd, void *addr, size_t length,
				  int access);
typedef struct ibv_mr *reg_iova_fn(struct ibv_pd *pd, void *addr,
				   size_t length, uint64_t iova, int access);
typedef struct ibv_mr *reg_iova2_fn(struct ibv_pd *pd, void *addr,
				    size_t length, uint64_t iova,
				    unsigned access);
typedef int rereg_fn(struct ibv_mr *mr, int flags, struct ibv_pd *pd,
		     void *addr, size_t length, int access);
typedef int dereg_fn(struct ibv_mr *mr);

enum { REG, REG_IOVA, REG_IOVA2 };

/* The original of which, resolved once, in its own version. */
static struct ibv_mr *call_original(struct ibv_pd *pd, void *addr,
				    size_t length, uint64_t iova,
				    unsigned access, int which)
{
	static reg_1_1_fn *reg;
	static reg_iova_fn *reg_iova;
	static reg_iova2_fn *reg_iova2;

	switch (which) {
	case REG:
		if (!reg)
			reg = (reg_1_1_fn *)cg__real_version("ibv_reg_mr",
							    "IBVERBS_1.1");
		return reg ? reg(pd, addr, length, (int)access) : NULL;
	case REG_IOVA:
		if (!reg_iova)
			reg_iova = (reg_iova_fn *)cg__real_version(
				"ibv_reg_mr_iova", "IBVERBS_1.7");
		return reg_iova ? reg_iova(pd, addr, length, iova, (int)access)
				: NULL;
	default:
		if (!reg_iova2)
			reg_iova2 = (reg_iova2_fn *)cg__real_version(
				"ibv_reg_mr_iova2", "IBVERBS_1.8");
		return reg_iova2 ? reg_iova2(pd, addr, length, iova, access)
				 : NULL;
	}
}

CG__HOOK struct ibv_mr *ibv_reg_mr(struct ibv_pd *pd, void *addr,
				   size_t length, int access)
{
	return register_pinned(pd, addr, length, (uintptr_t)addr,
			       (unsigned)access, REG, call_original);
}

CG__HOOK struct ibv_mr *ibv_reg_mr_iova(struct ibv_pd *pd, void *addr,
					size_t length, uint64_t iova,
					int access)
{
	return register_pinned(pd, addr, length, iova, (unsigned)access,
			       REG_IOVA, call_original);
}

CG__HOOK struct ibv_mr *ibv_reg_mr_iova2(struct ibv_pd *pd, void *addr,
					 size_t length, uint64_t iova,
					 unsigned access)
{
	return register_pinned(pd, addr, length, iova, access, REG_IOVA2,
			       call_original);
}

CG__HOOK int ibv_dereg_mr(struct ibv_mr *mr)
{
	static dereg_fn *real;
	int ret;

	if (!real)
		real = (dereg_fn *)cg__real_version("ibv_dereg_mr",
						    "IBVERBS_1.1");
	if (!real)
		return ENOSYS;
	ret = real(mr);
	/* Still registered on failure: the pin stays. */
	if (!ret && !cg__shim_inside())
		cg__held_release_seq(CG__HELD_MR, -1, (uintptr_t)mr,
				     (uintptr_t)mr);
	return ret;
}

/*
 * A new translation (range) or new access: the new pages are pinned
 * first; the old pin ends (and is checked) once the kernel let go of them.
 */
CG__HOOK int ibv_rereg_mr(struct ibv_mr *mr, int flags, struct ibv_pd *pd,
			  void *addr, size_t length, int access)
{
	static rereg_fn *real;
	struct iovec iov = { addr, length };
	struct cg_pin *pin = NULL;
	bool moves = flags & (IBV_REREG_MR_CHANGE_TRANSLATION |
			      IBV_REREG_MR_CHANGE_ACCESS);
	struct cg *cg;
	int ret;

	if (!real)
		real = (rereg_fn *)cg__real_version("ibv_rereg_mr",
						    "IBVERBS_1.1");
	if (!real)
		return ENOSYS;
	if (!moves || !cg__shim_enter(CG__HOOK_VERBS, &cg))
		return real(mr, flags, pd, addr, length, access);
	if ((flags & IBV_REREG_MR_CHANGE_TRANSLATION) &&
	    pin_flags((unsigned)access))
		pin = cg__protect(CG__HOOK_VERBS, cg, &iov, 1,
				  pin_flags((unsigned)access));
	ret = real(mr, flags, pd, addr, length, access);
	if (!ret && (flags & IBV_REREG_MR_CHANGE_TRANSLATION)) {
		cg__held_release_seq(CG__HELD_MR, -1, (uintptr_t)mr,
				     (uintptr_t)mr);
		if (pin)
			cg__held_add(pin, CG__HELD_MR, -1, (uintptr_t)mr);
	} else {
		cg__unprotect(pin);
	}
	cg__shim_leave();
	return ret;
}
