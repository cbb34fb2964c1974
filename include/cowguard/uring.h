/* SPDX-License-Identifier: MIT */
/*
 * cowguard for io_uring (liburing): pages made exclusive before the kernel
 * reads them, and checked once it is done.  In libcowguard-uring, so that
 * only its users need liburing: `pkg-config --cflags --libs cowguard-uring`
 * (-lcowguard-uring -lcowguard -luring).
 *
 * Which pins, and why (see KERNEL-FACTS, "Copy-on-write facts"):
 *  - Fixed buffers (cg_uring_register_buffers): the kernel pins them with
 *    FOLL_WRITE | FOLL_LONGTERM for as long as they are registered, so they
 *    are pinned CG_PIN_RW | CG_PIN_FOLL_PIN.  fork() copies such pages for
 *    the child and leaves ours in place: no MADV_DONTFORK is needed.
 *  - IORING_OP_WRITE on an O_DIRECT file (cg_uring_prep_write_pinned): the
 *    block layer took plain page references before Linux 6.2-6.3 and
 *    read-only FOLL_PINs since (which 5.19+ unshares by itself), so the pin
 *    is CG_PIN_RO without CG_PIN_FOLL_PIN: safe on every kernel.  The range
 *    is MADV_DONTFORK while pinned: a child forked meanwhile does not map it.
 *  - IORING_OP_SEND_ZC with normal buffers (cg_uring_prep_send_zc_pinned):
 *    the network stack takes plain page references (iov_iter_get_pages2),
 *    which no kernel unshares; CG_PIN_RO without CG_PIN_FOLL_PIN, as above.
 *
 * The transient pins cover whole pages: [buf, buf+len) rounded out to 4 KiB,
 * or to the huge page in hugetlb memory.  The buffer must lie in memory
 * registered with cg_register().  Release a transient pin with cg_unpin()
 * on the last CQE of its request: the one without IORING_CQE_F_MORE (for
 * SEND_ZC, the notification, IORING_CQE_F_NOTIF), never before.
 */
#ifndef COWGUARD_URING_H
#define COWGUARD_URING_H

#include <liburing.h>
#include <sys/uio.h>

#include <cowguard.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Fixed buffers registered through cowguard, with their pins. */
struct cg_uring_bufs;

/*
 * cg_uring_register_buffers - io_uring_register_buffers() with every buffer
 * pinned first (consumer "io_uring", CG_PIN_RW | CG_PIN_FOLL_PIN): each page
 * of @iov[0..@nr) is populated and exclusive to this process before the
 * kernel pins it, so no page of a fixed buffer is COW-shared at that moment
 * (a write pin on a shared page would otherwise copy it and leave the child
 * the original).  Zero-length entries (sparse slots) are not pinned.  On
 * success *@out is the set, for cg_uring_unregister_buffers().  Returns 0,
 * -EINVAL (NULL argument, @nr 0), any error of cg_pin() (-ENOENT: a buffer
 * is not in registered memory, -ENOMEM, -EDQUOT, -EAGAIN), or the error of
 * io_uring_register_buffers() (-EBUSY: the ring has buffers already).  On
 * failure nothing stays pinned or registered.  Since 0.1.
 */
CG_EXPORT int cg_uring_register_buffers(struct cg *cg, struct io_uring *ring,
					const struct iovec *iov, unsigned nr,
					struct cg_uring_bufs **out);

/*
 * cg_uring_unregister_buffers - io_uring_unregister_buffers() on the ring,
 * then cg_unpin() of every buffer, checking that no page was replaced while
 * the ring held it (for example by MADV_DONTNEED and a new write: the ring
 * then keeps reading and writing the old page).  Every buffer is unpinned
 * and @bufs is freed in every case.  Returns 0, -ENOTRECOVERABLE when a
 * pinned page was replaced (logged, counted in cg_stats.pin_violations),
 * else the first other error of the unregistration or an unpin (-ENXIO: the
 * ring was already closed; -ENOTCONN: cowguardd went away), -EINVAL for
 * NULL.  Since 0.1.
 */
CG_EXPORT int cg_uring_unregister_buffers(struct cg_uring_bufs *bufs);

/*
 * cg_uring_prep_write_pinned - cg_pin() the pages of [@buf, @buf+@nbytes)
 * read-only (consumer "io_uring", CG_PIN_RO: see above), then
 * io_uring_prep_write(@sqe, @fd, @buf, @nbytes, @offset).  Meant for an
 * O_DIRECT file, where the device reads the pages themselves.  On success
 * *@pin is the pin: keep it with the request (io_uring_sqe_set_data()) and
 * cg_unpin() it on the request's CQE; a non-zero cg_unpin() means the device
 * may have written stale data.  Returns 0, -EINVAL (NULL argument, @nbytes
 * 0), or an error of cg_pin() (-ENOENT: not in registered memory).  On
 * failure @sqe is left untouched: prepare it as something else (for example
 * io_uring_prep_nop()) before submitting.  Since 0.1.
 */
CG_EXPORT int cg_uring_prep_write_pinned(struct cg *cg, struct io_uring_sqe *sqe,
					 int fd, const void *buf, unsigned nbytes,
					 __u64 offset, struct cg_pin **pin);

/*
 * cg_uring_prep_send_zc_pinned - cg_pin() the pages of [@buf, @buf+@len)
 * read-only (consumer "io_uring", CG_PIN_RO), then io_uring_prep_send_zc(
 * @sqe, @sockfd, @buf, @len, @flags, @zc_flags).  A zero-copy send keeps
 * plain references to the pages until the data has left (for TCP: until it
 * is acknowledged), which the kernel never unshares: without the pin a
 * write after a fork could replace the page under the socket.  cg_unpin()
 * *@pin on the notification CQE (IORING_CQE_F_NOTIF), not on the first
 * CQE, which carries IORING_CQE_F_MORE (one without it, a request refused
 * early, has no notification to wait for).  Returns 0, -EINVAL (NULL argument,
 * @len 0), or an error of cg_pin().  On failure @sqe is left untouched.
 * Since 0.1.
 */
CG_EXPORT int cg_uring_prep_send_zc_pinned(struct cg *cg, struct io_uring_sqe *sqe,
					   int sockfd, const void *buf, size_t len,
					   int flags, unsigned zc_flags,
					   struct cg_pin **pin);

#ifdef __cplusplus
}
#endif
#endif
