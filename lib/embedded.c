// SPDX-License-Identifier: MIT
/*
 * Embedded mode: the same engine as the daemon, serviced by a thread of the
 * application.  The thread never loads or stores registered memory (that
 * would fault to itself) and is not asked to follow fork() through the
 * kernel: EVENT_FORK would make fork() wait on this thread while glibc holds
 * the malloc locks.  fork() is followed with pthread_atfork instead.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "embedded.h"
#include "kernel/clock.h"
#include "kernel/compat.h"
#include "kernel/procfs.h"
#include "kernel/uffd.h"
#include "wire/protocol.h"

/* How long the handler keeps looking for the next fault before sleeping. */
#define SPIN_NS (50 * 1000)
/* How often a region an old uffd still holds is asked for again. */
#define RENEW_TICK_NS (1000 * 1000)

static int renew(struct cg__embedded *e);

/* Whether our uffd is one never set up: see renew(). */
static bool uffd_stale(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLNVAL));
}

/* Service what is pending; returns messages handled, or -1 to stop. */
static int service(struct cg__embedded *e)
{
	int ret;

	pthread_mutex_lock(&e->lock);
	ret = cg__mm_service(&e->mm);
	if ((ret == -EBADF || ret == -EINVAL) && uffd_stale(e->mm.uffd)) {
		/* Restored by CRIU: ours again, or stop as a dead uffd would. */
		ret = renew(e);
		if (ret)
			e->error = ret;
	} else if (ret == -EBADF || ret == -EINVAL) {
		/* Only a dead uffd is fatal; the batch's faults were woken. */
		e->error = ret;
	}
	pthread_mutex_unlock(&e->lock);
	return e->error ? -1 : ret;
}

/*
 * After a fault, a writer walking through memory faults again within
 * microseconds.  Sleeping in poll() between the two costs a wake-up on
 * another CPU (tens of microseconds on this VM), so look again for a
 * while before going back to sleep.
 */
static int spin(struct cg__embedded *e)
{
	uint64_t until = cg__now_ns() + SPIN_NS;
	int ret;

	while (cg__now_ns() < until) {
		ret = service(e);
		if (ret < 0)
			return ret;
		if (ret > 0)
			until = cg__now_ns() + SPIN_NS;
		else
			sched_yield();	/* the writer may share our CPU */
	}
	return 0;
}

static bool pending(struct cg__embedded *e)
{
	bool ret;

	pthread_mutex_lock(&e->lock);
	ret = cg__mm_pending(&e->mm);
	pthread_mutex_unlock(&e->lock);
	return ret;
}

/*
 * wake_fd woke the thread: to stop, or only to leave its poll(), whose
 * hold on a replaced uffd keeps that uffd's registrations (see renew()).
 */
static bool nudged(struct cg__embedded *e)
{
	uint64_t n;

	if (__atomic_load_n(&e->stopping, __ATOMIC_ACQUIRE))
		return false;
	if (read(e->wake_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return false;
	return true;
}

static void nudge(struct cg__embedded *e)
{
	uint64_t one = 1;

	if (write(e->wake_fd, &one, sizeof(one)) < 0)
		return;	/* only a full counter: a wake-up is pending anyway */
}

static void *handler_main(void *arg)
{
	struct cg__embedded *e = arg;
	struct pollfd p[2] = {
		{ .fd = e->mm.uffd, .events = POLLIN },
		{ .fd = e->wake_fd, .events = POLLIN },
	};

	for (;;) {
		/* Messages read while an ioctl waited do not poll readable. */
		if (poll(p, 2, pending(e) ? 0 : -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents && !nudged(e))
			break;
		if (service(e) < 0 || spin(e) < 0)
			break;
	}
	return NULL;
}

/* Whether our pagemap shows frame numbers (root): probe our own stack. */
static bool pfns_visible(int pagemap_fd)
{
	volatile uint64_t probe = 1;
	uint64_t pme = 0;

	return !cg__pagemap_read(pagemap_fd, (uint64_t)(uintptr_t)&probe, 1, &pme) &&
	       (pme & PM_PFN_MASK) && probe;
}

static int start_thread(struct cg__embedded *e)
{
	sigset_t all, old;
	int ret;

	/* The application's signals are not ours to take. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = -pthread_create(&e->thread, NULL, handler_main, e);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return ret;
}

/*
 * A new uffd set up as the engine wants it, marked for lib/criu/ (an
 * embedded engine's uffd: the file's F_SETSIG signal, inert on a uffd,
 * which never sends SIGIO), and e->mm made around it.  slot >= 0: the
 * uffd takes that descriptor's place, which the handler thread polls.
 */
static int start_mm(struct cg__embedded *e, int slot)
{
	uint64_t features;
	int uffd, pagemap, ret;

	uffd = cg__uffd_create();
	if (uffd < 0)
		return uffd;
	ret = cg__uffd_api(uffd, cg__mm_uffd_wanted() & ~(uint64_t)UFFD_FEATURE_EVENT_FORK,
			   &features);
	if (!ret && fcntl(uffd, F_SETSIG, CG_UFFD_MARK_SIG) < 0)
		ret = -errno;
	if (!ret && slot >= 0) {
		ret = dup3(uffd, slot, O_CLOEXEC) < 0 ? -errno : 0;
		close(uffd);
		uffd = slot;
	}
	if (ret)
		goto err_uffd;
	pagemap = cg__pagemap_open(0);
	if (pagemap < 0) {
		ret = pagemap;
		goto err_uffd;
	}
	cg__mm_init(&e->mm, uffd, features, getpid(), pagemap, e->kpageflags_fd);
	e->mm.pfn_visible = pfns_visible(pagemap);
	return 0;

err_uffd:
	if (uffd != slot)
		close(uffd);
	return ret;
}

/*
 * The old uffd keeps its registrations until its last reference goes, and
 * until then the kernel refuses the memory to ours (-EBUSY): the handler
 * thread still asleep in poll() on it (renew() nudges it out), a thread in
 * read() on it, a release the kernel runs on the way back to user space.
 * Wait for that, within until_ns.  One refused still is forgotten, as
 * after a daemon restart, and said on stderr: its calls answer -ENOENT.
 */
int cg__embedded_register_again(struct cg__embedded *e, uint64_t start,
				uint64_t len, uint64_t until_ns, bool locked)
{
	const struct timespec tick = { .tv_nsec = RENEW_TICK_NS };
	int ret;

	for (;;) {
		if (locked)
			ret = cg__mm_register(&e->mm, start, len, CG__REGISTER_UNSEEN);
		else
			ret = CG__EMBEDDED_CALL(e, cg__mm_register(&e->mm, start, len,
								   CG__REGISTER_UNSEEN));
		if (ret != -EBUSY || cg__now_ns() >= until_ns)
			break;
		nanosleep(&tick, NULL);
	}
	if (ret)
		fprintf(stderr, "cowguard: %#llx+%#llx is no longer tracked: %s\n",
			(unsigned long long)start, (unsigned long long)len, strerror(-ret));
	return ret;
}

/*
 * CRIU restored us (lib/criu/): where our uffd was is a uffd never set
 * up, which polls POLLERR, and our memory was mapped anew, unregistered
 * and unprotected, maybe shared with a restored child.  What the engine
 * knew is void.  Start it afresh on a new uffd in the same descriptor,
 * with the same regions, their history unknown, as after a daemon restart
 * (lib/reconnect.c); pins do not survive.  With e->lock held.
 */
static int renew(struct cg__embedded *e)
{
	struct cg__status_region r;
	uint64_t *ranges = NULL;
	size_t n = 0, cap = 0;
	int slot = e->mm.uffd, ret;
	uint64_t until;

	for (size_t i = 0; !cg__mm_status_region(&e->mm, i, &r); i++) {
		if (n == cap) {
			uint64_t *v = realloc(ranges, (cap = cap ? 2 * cap : 8) * 2 * sizeof(*v));

			if (!v) {
				free(ranges);
				return -ENOMEM;
			}
			ranges = v;
		}
		ranges[2 * n] = r.start;
		ranges[2 * n++ + 1] = r.len;
	}
	e->mm.uffd = -1;	/* the descriptor stays, for the new uffd */
	cg__mm_destroy(&e->mm);
	ret = start_mm(e, slot);
	if (ret) {
		e->mm.uffd = slot;
		free(ranges);
		return ret;
	}
	nudge(e);
	until = cg__now_ns() + CG__REGISTER_AGAIN_NS;
	for (size_t i = 0; i < n; i++)
		cg__embedded_register_again(e, ranges[2 * i], ranges[2 * i + 1],
					    until, true);
	free(ranges);
	e->error = 0;
	return 0;
}

int cg__embedded_check(struct cg__embedded *e)
{
	int ret = 0;

	pthread_mutex_lock(&e->lock);
	if (uffd_stale(e->mm.uffd))
		ret = renew(e);
	if (ret)
		e->error = ret;
	pthread_mutex_unlock(&e->lock);
	return ret;
}

int cg__embedded_open(struct cg__embedded **out)
{
	struct cg__embedded *e = calloc(1, sizeof(*e));
	int ret;

	if (!e)
		return -ENOMEM;
	e->kpageflags_fd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	ret = start_mm(e, -1);
	if (ret)
		goto err_free;
	e->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (e->wake_fd < 0) {
		ret = -errno;
		goto err_mm;
	}
	pthread_mutex_init(&e->lock, NULL);
	ret = start_thread(e);
	if (ret)
		goto err_wake;
	*out = e;
	return 0;

err_wake:
	pthread_mutex_destroy(&e->lock);
	close(e->wake_fd);
err_mm:
	cg__mm_destroy(&e->mm);	/* closes uffd and pagemap */
err_free:
	if (e->kpageflags_fd >= 0)
		close(e->kpageflags_fd);
	free(e);
	return ret;
}

void cg__embedded_close(struct cg__embedded *e)
{
	uint64_t one = 1;

	if (!e)
		return;
	__atomic_store_n(&e->stopping, true, __ATOMIC_RELEASE);
	if (write(e->wake_fd, &one, sizeof(one)) == sizeof(one))
		pthread_join(e->thread, NULL);
	/* Unprotect before the uffd goes, so no stale uffd-wp bit lingers. */
	cg__mm_unregister_all(&e->mm);
	cg__mm_destroy(&e->mm);
	close(e->wake_fd);
	if (e->kpageflags_fd >= 0)
		close(e->kpageflags_fd);
	pthread_mutex_destroy(&e->lock);
	free(e);
}
