/* SPDX-License-Identifier: MIT */
/*
 * Touching a client's pages (one byte each, read through process_vm_readv)
 * without letting the client make the toucher wait for good.
 */
#ifndef CG_TOUCH_H
#define CG_TOUCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct cg__mm;

/* Addresses one call takes at most. */
#define CG_TOUCH_MAX 256

/*
 * Read one byte at each of the n (<= CG_TOUCH_MAX) addresses of mm's
 * process.  Returns the bytes read (n, or fewer when a page vanished: the
 * first unread address is addrs[returned]), or -errno: -EPERM when the
 * client made the read wait on a registration of its own (mm->tampered
 * then says so).
 */
ssize_t cg__touch(struct cg__mm *mm, const uint64_t *addrs, size_t n);

#endif
