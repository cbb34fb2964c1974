// SPDX-License-Identifier: MIT
/*
 * io_uring requests that read the program's memory by plain reference.
 * liburing's io_uring_prep_*() are inline, so the shim reads the SQEs the
 * program prepared from the SQ ring when it submits them (io_uring_submit
 * and its _and_wait, _and_wait_timeout, _and_get_events), before the
 * kernel sees them:
 *  - SEND_ZC and SENDMSG_ZC from the program's memory (not a registered
 *    buffer): plain references on every kernel;
 *  - WRITE and WRITEV on an O_DIRECT file where the kernel does not unshare
 *    for them (lib/kernel/odirect.c, lib/preload/hook_odirect.c).  A
 *    registered file (IOSQE_FIXED_FILE) cannot be asked, and is taken as
 *    such a file.
 * A pin ends when the shim sees its request's last completion in the CQ
 * ring (no IORING_CQE_F_MORE: for a zero-copy send, its notification),
 * which it looks for at each later submission; at io_uring_queue_exit;
 * and before a fork, as every plain reference's (lib/preload/held.c).
 * Requests with the same user_data are told apart by nothing: the first
 * completion ends all their pins.
 *
 * Not followed: rings driven through io_uring_enter(2) itself (syscall()
 * or liburing's io_uring_enter()).  Their SQEs live in the program's own
 * mapping of the ring, which the shim could find only by following
 * io_uring_setup and that mmap: docs/preload.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <liburing.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "cowguard.h"
#include "preload.h"

#define MAX_RINGS 64

/* Per ring with pins held: the CQ position looked at up to. */
static struct {
	pthread_mutex_t lock;
	int fd[MAX_RINGS];
	unsigned seen[MAX_RINGS];
	size_t n;
} rings = { .lock = PTHREAD_MUTEX_INITIALIZER };

static const struct io_uring_sqe *sqe_at(const struct io_uring *ring,
					 unsigned pos)
{
	unsigned shift = ring->flags & IORING_SETUP_SQE128 ? 1 : 0;

	return &ring->sq.sqes[(pos & ring->sq.ring_mask) << shift];
}

static const struct io_uring_cqe *cqe_at(const struct io_uring *ring,
					 unsigned pos)
{
	unsigned shift = ring->flags & IORING_SETUP_CQE32 ? 1 : 0;

	return &ring->cq.cqes[(pos & ring->cq.ring_mask) << shift];
}

static unsigned cq_tail(const struct io_uring *ring)
{
	return __atomic_load_n(ring->cq.ktail, __ATOMIC_ACQUIRE);
}

/* Under rings.lock: fd's slot, or rings.n. */
static size_t slot_of(int fd)
{
	size_t i;

	for (i = 0; i < rings.n && rings.fd[i] != fd; i++)
		;
	return i;
}

/* Follow ring's completions from now, if not yet; false: no room. */
static bool follow(const struct io_uring *ring)
{
	size_t i;

	pthread_mutex_lock(&rings.lock);
	i = slot_of(ring->ring_fd);
	if (i == rings.n && rings.n < MAX_RINGS) {
		rings.fd[i] = ring->ring_fd;
		rings.seen[i] = cq_tail(ring);
		rings.n++;
	}
	pthread_mutex_unlock(&rings.lock);
	return i < MAX_RINGS;
}

/*
 * The completions posted since we last looked: their requests' pins end.
 * Those the program consumed may be overwritten once the ring has wrapped
 * past them: at most ring_entries back are read.
 */
static void reap_completions(const struct io_uring *ring)
{
	unsigned from, tail;
	size_t i;

	pthread_mutex_lock(&rings.lock);
	i = slot_of(ring->ring_fd);
	if (i == rings.n) {
		pthread_mutex_unlock(&rings.lock);
		return;
	}
	tail = cq_tail(ring);
	from = rings.seen[i];
	if (tail - from > ring->cq.ring_entries)
		from = tail - ring->cq.ring_entries;
	rings.seen[i] = tail;
	pthread_mutex_unlock(&rings.lock);
	for (unsigned pos = from; pos != tail; pos++) {
		const struct io_uring_cqe *c = cqe_at(ring, pos);

		if (!(c->flags & IORING_CQE_F_MORE))
			cg__held_release_seq(CG__HELD_URING_IO, ring->ring_fd,
					     c->user_data, c->user_data);
	}
}

/*
 * A write the kernel reads by plain reference: O_DIRECT, not unshared,
 * and pages that may be shared (lib/preload/hook_odirect.c: before the
 * first fork none is, and the program may not change them in flight).
 */
static bool plain_write(const struct io_uring_sqe *sqe)
{
	return cg__shim_forked() && cg__odirect_fds_seen() &&
	       ((sqe->flags & IOSQE_FIXED_FILE) ||
		cg__odirect_unprotected(sqe->fd));
}

/*
 * How many iovecs of memory sqe reads by plain reference: in *one, or
 * copied into *copy (malloc'd; the caller frees it).  A message header or
 * a vector is the program's memory, which the kernel answers EFAULT for
 * when bad: read with cg__read_own(), and only where it matters.
 */
static size_t plain_memory(const struct io_uring_sqe *sqe, struct iovec *one,
			   struct iovec **copy)
{
	const void *addr = (const void *)(uintptr_t)sqe->addr;
	struct msghdr msg;

	*copy = NULL;
	*one = (struct iovec){ (void *)addr, sqe->len };
	switch (sqe->opcode) {
	case IORING_OP_OPENAT:
		if (sqe->open_flags & O_DIRECT)
			cg__odirect_fd_seen();
		return 0;
	case IORING_OP_OPENAT2:	/* its flags are behind a pointer */
		cg__odirect_fd_seen();
		return 0;
	case IORING_OP_SEND_ZC:
		return !(sqe->ioprio & IORING_RECVSEND_FIXED_BUF);
	case IORING_OP_WRITE:
		return cg__odirect_length(one, 1) && plain_write(sqe);
	case IORING_OP_SENDMSG_ZC:
		if (!cg__read_own(&msg, addr, sizeof(msg)) || !msg.msg_iovlen ||
		    msg.msg_iovlen > IOV_MAX)
			return 0;
		*copy = cg__read_own_iov(msg.msg_iov, msg.msg_iovlen);
		return *copy ? msg.msg_iovlen : 0;
	case IORING_OP_WRITEV:
		if (!sqe->len || sqe->len > IOV_MAX || !plain_write(sqe))
			return 0;
		*copy = cg__read_own_iov(addr, sqe->len);
		return *copy && cg__odirect_length(*copy, sqe->len) ? sqe->len : 0;
	default:
		return 0;
	}
}

/*
 * Held until its last completion is seen; with IOSQE_CQE_SKIP_SUCCESS no
 * completion will say when, and a ring past MAX_RINGS is not followed:
 * such a request's pages were unshared, and the pin ends now.
 */
static void hold(const struct io_uring *ring, const struct io_uring_sqe *sqe,
		 struct cg_pin *pin)
{
	if (!pin)
		return;
	if ((sqe->flags & IOSQE_CQE_SKIP_SUCCESS) || !follow(ring))
		cg__unprotect(pin);
	else
		cg__held_add(pin, CG__HELD_URING_IO, ring->ring_fd,
			     sqe->user_data);
}

/*
 * Pin what the SQEs prepared since the last submission read.  The daemon
 * is dialled only for a request that needs it.
 */
static void pin_pending(const struct io_uring *ring)
{
	struct cg *cg = NULL;
	bool asked = false;

	for (unsigned pos = ring->sq.sqe_head; pos != ring->sq.sqe_tail; pos++) {
		const struct io_uring_sqe *sqe = sqe_at(ring, pos);
		struct iovec one, *copy;
		size_t nr = plain_memory(sqe, &one, &copy);

		if (nr && !asked) {
			cg = cg__shim_handle();
			asked = true;
		}
		if (nr)
			hold(ring, sqe, cg__protect(CG__HOOK_URING, cg,
						    copy ? copy : &one, nr,
						    CG_PIN_RO));
		free(copy);
	}
}

/* Around each submission: completions first, then what is new. */
static void submitting(struct io_uring *ring)
{
	if (!cg__shim_enter_bare(CG__HOOK_URING))
		return;
	reap_completions(ring);
	pin_pending(ring);
	cg__shim_leave();
}

void cg__uring_ring_exit(int fd)
{
	size_t i;

	cg__held_release_fd(CG__HELD_URING_IO, fd);
	pthread_mutex_lock(&rings.lock);
	i = slot_of(fd);
	if (i < rings.n) {
		rings.n--;
		rings.fd[i] = rings.fd[rings.n];
		rings.seen[i] = rings.seen[rings.n];
	}
	pthread_mutex_unlock(&rings.lock);
}

typedef int submit_fn(struct io_uring *ring);
typedef int submit_wait_fn(struct io_uring *ring, unsigned wait_nr);
typedef int submit_timeout_fn(struct io_uring *ring,
			      struct io_uring_cqe **cqe, unsigned wait_nr,
			      struct __kernel_timespec *ts, sigset_t *sigmask);

CG__HOOK int io_uring_submit(struct io_uring *ring)
{
	static submit_fn *real;

	if (!real)
		real = (submit_fn *)cg__real("io_uring_submit");
	submitting(ring);
	return real(ring);
}

CG__HOOK int io_uring_submit_and_get_events(struct io_uring *ring)
{
	static submit_fn *real;

	if (!real)
		real = (submit_fn *)cg__real("io_uring_submit_and_get_events");
	submitting(ring);
	return real(ring);
}

CG__HOOK int io_uring_submit_and_wait(struct io_uring *ring, unsigned wait_nr)
{
	static submit_wait_fn *real;

	if (!real)
		real = (submit_wait_fn *)cg__real("io_uring_submit_and_wait");
	submitting(ring);
	return real(ring, wait_nr);
}

CG__HOOK int io_uring_submit_and_wait_timeout(struct io_uring *ring,
					      struct io_uring_cqe **cqe,
					      unsigned wait_nr,
					      struct __kernel_timespec *ts,
					      sigset_t *sigmask)
{
	static submit_timeout_fn *real;

	if (!real)
		real = (submit_timeout_fn *)cg__real(
			"io_uring_submit_and_wait_timeout");
	submitting(ring);
	return real(ring, cqe, wait_nr, ts, sigmask);
}
