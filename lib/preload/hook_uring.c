// SPDX-License-Identifier: MIT
/*
 * io_uring fixed buffers: the kernel pins them for writing (FOLL_PIN), so
 * it breaks COW itself and copies them for a child at fork; cowguard pins
 * them as the kernel does, so that the engine follows them, the pages are
 * unshared on kernels that leave a hugetlb page shared (5.10), and the
 * unregistration checks no page was replaced meanwhile.
 *
 * Reached three ways: liburing's exported functions (its
 * io_uring_prep_*() are inline: nothing to hook there), liburing's
 * io_uring_register(), and syscall(SYS_io_uring_register).  The pins are
 * held per ring fd until the buffers are unregistered or the ring exits.
 */
#include <errno.h>
#include <stdbool.h>
#include <liburing.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include "cowguard.h"
#include "preload.h"

/* Pin each buffer; on failure end those pinned (none is left held). */
static void pin_buffers(struct cg *cg, int fd, const struct iovec *iov,
			unsigned nr)
{
	for (unsigned i = 0; iov && i < nr; i++) {
		struct cg_pin *pin;

		if (!iov[i].iov_base || !iov[i].iov_len)
			continue;	/* a sparse slot: no memory */
		pin = cg__protect(CG__HOOK_URING, cg, &iov[i], 1,
				  CG_PIN_RW | CG_PIN_FOLL_PIN);
		if (pin)
			cg__held_add(pin, CG__HELD_URING, fd, 0);
	}
}

/*
 * 6.1's io_uring pins with pin_user_pages(), which cannot wait for a
 * userfaultfd: the write fault its FOLL_WRITE pin takes on a
 * write-protected page becomes EFAULT (lib/uring/uring.c, measured in the
 * 6.1 guest).  The pages are ours alone once pinned: write-fault them
 * through the handler, and the caller registers again.
 */
static void write_fault(const struct iovec *iov, unsigned nr)
{
	for (unsigned i = 0; iov && i < nr; i++)
		if (iov[i].iov_base && iov[i].iov_len)
			cg__write_fault_iov(&iov[i]);
}

/* The registration failed: what was pinned for it goes. */
static void registration_failed(int fd)
{
	int saved = errno;

	cg__held_release_fd(CG__HELD_URING, fd);
	errno = saved;
}

typedef long syscall_fn(long nr, ...);

/* The raw system call; returns as syscall() does. */
int cg__uring_register(unsigned fd, unsigned opcode, const void *arg,
		       unsigned nr_args)
{
	static syscall_fn *real;
	const struct io_uring_rsrc_register *rr = arg;
	const struct iovec *iov = NULL;
	unsigned n = 0;
	struct cg *cg;
	long ret;

	bool buffers = opcode == IORING_REGISTER_BUFFERS ||
		       opcode == IORING_REGISTER_BUFFERS2 ||
		       opcode == IORING_UNREGISTER_BUFFERS;

	if (!real)
		real = (syscall_fn *)cg__real("syscall");
	/* Other registrations (files, eventfds, ...) are none of ours. */
	if (!buffers || !cg__shim_enter(CG__HOOK_URING, &cg))
		return (int)real(SYS_io_uring_register, fd, opcode, arg, nr_args);
	if (opcode == IORING_REGISTER_BUFFERS) {
		iov = arg;
		n = nr_args;
	} else if (opcode == IORING_REGISTER_BUFFERS2 && rr &&
		   !(rr->flags & IORING_RSRC_REGISTER_SPARSE)) {
		iov = (const struct iovec *)(uintptr_t)rr->data;
		n = rr->nr;
	}
	pin_buffers(cg, (int)fd, iov, n);
	ret = real(SYS_io_uring_register, fd, opcode, arg, nr_args);
	if (ret < 0 && errno == EFAULT && n) {
		write_fault(iov, n);
		ret = real(SYS_io_uring_register, fd, opcode, arg, nr_args);
	}
	if (ret < 0 && (opcode == IORING_REGISTER_BUFFERS ||
			opcode == IORING_REGISTER_BUFFERS2))
		registration_failed((int)fd);
	else if (ret >= 0 && opcode == IORING_UNREGISTER_BUFFERS)
		cg__held_release_fd(CG__HELD_URING, (int)fd);
	cg__shim_leave();
	return (int)ret;
}

typedef int register_fn(struct io_uring *ring, const struct iovec *iov,
			unsigned nr);
typedef int register_tags_fn(struct io_uring *ring, const struct iovec *iov,
			     const __u64 *tags, unsigned nr);
typedef int ring_fn(struct io_uring *ring);
typedef void exit_fn(struct io_uring *ring);
typedef int raw_register_fn(unsigned fd, unsigned opcode, const void *arg,
			    unsigned nr_args);

CG__HOOK int io_uring_register_buffers(struct io_uring *ring,
				       const struct iovec *iov, unsigned nr)
{
	static register_fn *real;
	struct cg *cg;
	int ret;

	if (!real)
		real = (register_fn *)cg__real("io_uring_register_buffers");
	if (!cg__shim_enter(CG__HOOK_URING, &cg))
		return real(ring, iov, nr);
	pin_buffers(cg, ring->ring_fd, iov, nr);
	ret = real(ring, iov, nr);
	if (ret == -EFAULT) {
		write_fault(iov, nr);
		ret = real(ring, iov, nr);
	}
	if (ret < 0)
		registration_failed(ring->ring_fd);
	cg__shim_leave();
	return ret;
}

CG__HOOK int io_uring_register_buffers_tags(struct io_uring *ring,
					    const struct iovec *iov,
					    const __u64 *tags, unsigned nr)
{
	static register_tags_fn *real;
	struct cg *cg;
	int ret;

	if (!real)
		real = (register_tags_fn *)cg__real("io_uring_register_buffers_tags");
	if (!cg__shim_enter(CG__HOOK_URING, &cg))
		return real(ring, iov, tags, nr);
	pin_buffers(cg, ring->ring_fd, iov, nr);
	ret = real(ring, iov, tags, nr);
	if (ret == -EFAULT) {
		write_fault(iov, nr);
		ret = real(ring, iov, tags, nr);
	}
	if (ret < 0)
		registration_failed(ring->ring_fd);
	cg__shim_leave();
	return ret;
}

CG__HOOK int io_uring_unregister_buffers(struct io_uring *ring)
{
	static ring_fn *real;
	int ret;

	if (!real)
		real = (ring_fn *)cg__real("io_uring_unregister_buffers");
	ret = real(ring);
	/* Checked after the kernel let go: a replaced page is a violation. */
	if (!ret && !cg__shim_inside())
		cg__held_release_fd(CG__HELD_URING, ring->ring_fd);
	return ret;
}

CG__HOOK void io_uring_queue_exit(struct io_uring *ring)
{
	static exit_fn *real;
	int fd = ring->ring_fd;

	if (!real)
		real = (exit_fn *)cg__real("io_uring_queue_exit");
	real(ring);
	if (!cg__shim_inside()) {
		cg__held_release_fd(CG__HELD_URING, fd);
		cg__uring_ring_exit(fd);
	}
}

CG__HOOK int io_uring_register(unsigned fd, unsigned opcode, const void *arg,
			       unsigned nr_args)
{
	static raw_register_fn *real;
	int ret;

	if (cg__shim_inside()) {
		if (!real)
			real = (raw_register_fn *)cg__real("io_uring_register");
		return real(fd, opcode, arg, nr_args);
	}
	/* liburing's returns -errno where syscall() returns -1. */
	ret = cg__uring_register(fd, opcode, arg, nr_args);
	return ret < 0 ? -errno : ret;
}
