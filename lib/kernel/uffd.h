/* SPDX-License-Identifier: MIT */
/* userfaultfd: creation, feature negotiation and the ioctls we use. */
#ifndef CG_UFFD_H
#define CG_UFFD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "compat.h"

/* What cowguard asks for; only PAGEFAULT_FLAG_WP is indispensable. */
#define CG_UFFD_WANTED                                                        \
	(UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_EVENT_FORK |           \
	 UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_REMOVE |               \
	 UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_WP_HUGETLBFS_SHMEM |         \
	 UFFD_FEATURE_THREAD_ID)

/*
 * The mark of an embedded engine's uffd, which the CRIU plugin (lib/criu/)
 * looks for: the file's F_SETSIG signal.  It is inert there: a uffd never
 * sends SIGIO.
 */
#define CG_UFFD_MARK_SIG 63

/*
 * A full (not user-mode-only) userfaultfd, non-blocking and close-on-exec:
 * the syscall first, then /dev/userfaultfd.  Returns an fd, or -EPERM when
 * neither is allowed: a user-mode-only uffd would turn the kernel's own
 * accesses to protected memory (read(2), MADV_POPULATE_WRITE) into EFAULT.
 */
int cg__uffd_create(void);

/*
 * Negotiate on a fresh uffd: the wanted features the kernel has.  Without
 * CAP_SYS_PTRACE the kernel refuses EVENT_FORK (EPERM); without fork events
 * is then tried.  Returns 0 and *got, or -errno (-ENOSYS: no WP at all).
 */
int cg__uffd_api(int fd, uint64_t wanted, uint64_t *got);

/* Whether fd is a userfaultfd (its fdinfo says so). */
bool cg__is_uffd(int fd);

int cg__uffd_register(int fd, uint64_t start, uint64_t len);
/* The same with other UFFDIO_REGISTER_MODE_* bits: again over a registered range changes its modes. */
int cg__uffd_register_mode(int fd, uint64_t start, uint64_t len, uint64_t mode);
/* Unregister, then wake whoever faulted there: they fault again, unwatched. */
int cg__uffd_unregister(int fd, uint64_t start, uint64_t len);

/* Wake the threads faulting in the range, changing nothing. */
int cg__uffd_wake(int fd, uint64_t start, uint64_t len);

/*
 * UFFDIO_MOVE (the caller's own memory only: the kernel refuses another
 * mm) or UFFDIO_COPY [src, src+len) to the empty [dst, dst+len), waking
 * nobody.  Returns 0, or -errno with *done the bytes moved or copied before
 * it failed (-EAGAIN: some were, or an event is pending).
 */
int cg__uffd_move(int fd, uint64_t dst, uint64_t src, uint64_t len,
		  uint64_t *done);
int cg__uffd_copy(int fd, uint64_t dst, uint64_t src, uint64_t len,
		  uint64_t *done);

/*
 * UFFDIO_POISON the empty [start, start+len): a touch there raises SIGBUS,
 * as a memory error would (6.6+, UFFD_FEATURE_POISON).  Wakes nobody.
 */
int cg__uffd_poison(int fd, uint64_t start, uint64_t len);

/* Set or clear write protection; clearing wakes the faulting threads. */
int cg__uffd_wp(int fd, uint64_t start, uint64_t len, bool protect);

/*
 * read() messages without ever blocking: returns bytes read, 0 when none is
 * pending, -EPERM when the uffd was found made blocking (by the client that
 * shares it: drop it), or -errno.
 */
ssize_t cg__uffd_read(int fd, void *buf, size_t len);

/* Whether the uffd's file lost O_NONBLOCK (all we create have it). */
bool cg__uffd_made_blocking(int fd);

/*
 * Make the calling thread's cg__uffd_read() calls interruptible by a timer
 * (SIGURG), for a thread that must not wait on a client: the daemon's.
 */
int cg__uffd_bound_reads(void);

#endif
