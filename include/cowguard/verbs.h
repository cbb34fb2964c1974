/* SPDX-License-Identifier: MIT */
/*
 * cowguard/verbs.h: RDMA memory regions registered after their pages are
 * made exclusive.
 *
 * ibv_reg_mr() makes the kernel pin the pages (ib_umem_get, FOLL_LONGTERM):
 * for writing when the access flags let the device write (LOCAL_WRITE,
 * REMOTE_WRITE, REMOTE_ATOMIC, and MW_BIND, which may grant those), which
 * breaks COW like a write fault; read-only otherwise, which the kernel
 * unshares only since 5.19: before that, a page still COW-shared after a
 * fork is pinned, the parent's next write replaces it, and the device reads
 * the old page.  cg_ibv_reg_mr() pins the range through cowguard first
 * (read-only or read-write as the kernel will, marked as a kernel FOLL_PIN
 * so that fork() copies those pages for a child and cowguard sets no
 * MADV_DONTFORK), and cg_ibv_dereg_mr() checks at the end that no pinned
 * page was replaced.
 *
 * Not in libcowguard: link with libcowguard-verbs (pkg-config
 * cowguard-verbs), which needs libibverbs; libcowguard itself does not.
 */
#ifndef COWGUARD_VERBS_H
#define COWGUARD_VERBS_H

#include <stddef.h>

#include <infiniband/verbs.h>

#include <cowguard.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A memory region registered through cowguard: opaque. */
struct cg_mr;

/*
 * cg_ibv_reg_mr - ibv_reg_mr(@pd, @addr, @length, @access) after a cowguard
 * pin of the pages it covers.
 *
 * [@addr, @addr+@length) is rounded out to 4 KiB pages (the kernel pins
 * whole pages) and must lie in registered regions.  The pin is named
 * "rdma"; it is CG_PIN_RW when @access lets the device write, CG_PIN_RO
 * otherwise, CG_PIN_FOLL_PIN in both cases.  IBV_ACCESS_ON_DEMAND regions
 * are registered without a pin: the kernel pins nothing for them and
 * follows the page tables instead, so a COW replacement reaches the device.
 * On success *@out is the region; cg_ibv_mr() gives its struct ibv_mr (lkey,
 * rkey) for work requests.  Deregister it with cg_ibv_dereg_mr(), before
 * cg_close().
 *
 * Returns 0 or -errno, with nothing pinned or registered: -EINVAL (NULL
 * @cg, @pd or @out, zero @length), -EOVERFLOW (the range wraps), cg_pin()'s
 * errors (-ENOENT: not registered, -ENOMEM, -EDQUOT, -EAGAIN), or
 * ibv_reg_mr()'s errno negated (-EIO when it set none).  Since 0.1.
 */
CG_EXPORT int cg_ibv_reg_mr(struct cg *cg, struct ibv_pd *pd, void *addr,
			    size_t length, int access, struct cg_mr **out);

/* cg_ibv_mr - the verbs memory region of @mr, or NULL for NULL.  Since 0.1. */
CG_EXPORT struct ibv_mr *cg_ibv_mr(const struct cg_mr *mr);

/*
 * cg_ibv_dereg_mr - ibv_dereg_mr(), then cg_unpin() of the region's pin.
 * Returns 0; -ENOTRECOVERABLE when a pinned page was replaced while
 * registered (the device may have read or written a stale page; logged and
 * counted in cg_stats.pin_violations); -ENOTCONN when the daemon went away;
 * these three free @mr.  When ibv_dereg_mr() fails, returns its error
 * negated (-EBUSY: memory windows still bound) and @mr stays registered,
 * pinned and valid: retry later.  -EINVAL for NULL.  Since 0.1.
 */
CG_EXPORT int cg_ibv_dereg_mr(struct cg_mr *mr);

#ifdef __cplusplus
}
#endif
#endif
