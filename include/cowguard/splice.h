/* SPDX-License-Identifier: MIT */
/*
 * cowguard/splice.h: vmsplice(2) that hands the pipe the pages this process
 * will go on writing, not stale copies.
 *
 * vmsplice() puts plain references to the caller's pages into a pipe; the
 * kernel unshares a COW-shared page only for a FOLL_PIN, never for those.
 * After a fork, a page still shared with the child is replaced by the
 * parent's next write, and the pipe's reader gets the old content (measured
 * on 6.18 and 6.1: examples/splice_stale_read).  cg_vmsplice() first makes
 * the pages exclusive (cg_pin(), read-only), then splices them.
 *
 * Part of libcowguard: no other library is needed.
 */
#ifndef COWGUARD_SPLICE_H
#define COWGUARD_SPLICE_H

#include <sys/types.h>
#include <sys/uio.h>

#include <cowguard.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * cg_vmsplice - vmsplice(@pipe_fd, @iov, @nr, @flags) of pages made
 * exclusive to this process first.
 *
 * The pin covers the pages from the lowest to the highest byte of the
 * non-empty iovecs, rounded out to whole pages (4 KiB, or the huge page of
 * a hugetlb region): the pipe references whole pages, so the bytes around
 * an unaligned buffer are pinned with it, and so is any gap between
 * iovecs.  All of that span must lie in registered regions.  The pin is
 * read-only, named "vmsplice" in `cowguardctl pins`, and, since a pipe
 * holds plain references that fork() would share, the span is
 * MADV_DONTFORK while pinned: a child forked meanwhile has no mapping
 * there (it gets SIGSEGV touching it), and splitting the VMA at a page
 * that is not a THP boundary splits that THP.
 *
 * @flags are vmsplice's SPLICE_F_*.  @pipe_fd must be the write end of a
 * pipe.  On success *@out is the pin: release it with cg_unpin() once the
 * pipe's data has been consumed: read, or spliced on to a file; after a
 * splice to a socket the pages stay referenced until the data has been
 * sent, and to a pipe until that pipe is read.  Unpinning earlier lets a
 * later fork share pages the pipe still holds.  cg_unpin() returns
 * -ENOTRECOVERABLE when a pinned page was replaced anyway (the
 * application undid the MADV_DONTFORK, say): the reader may have seen
 * stale data.  Release the pin before cg_close().
 *
 * Returns the bytes spliced (> 0; fewer than asked when a non-blocking
 * pipe filled up, as vmsplice does; the pin still covers every iovec), or
 * -errno, with nothing pinned: -EINVAL (NULL @cg, @iov or @out, @nr zero
 * or over IOV_MAX, no byte to splice, unknown @flags), -EBADF (@pipe_fd is
 * not the write end of a pipe), -EOVERFLOW (an iovec wraps), -ENOENT (not
 * all registered), and cg_pin()'s or vmsplice's other errors (-EAGAIN: a
 * full non-blocking pipe, or a range that kept changing: retry).
 * Since 0.1.
 */
CG_EXPORT ssize_t cg_vmsplice(struct cg *cg, int pipe_fd, const struct iovec *iov,
			      unsigned long nr, unsigned flags, struct cg_pin **out);

#ifdef __cplusplus
}
#endif
#endif
