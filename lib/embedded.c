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

/* How long the handler keeps looking for the next fault before sleeping. */
#define SPIN_NS (50 * 1000)


/* Service what is pending; returns messages handled, or -1 to stop. */
static int service(struct cg__embedded *e)
{
	int ret;

	pthread_mutex_lock(&e->lock);
	ret = cg__mm_service(&e->mm);
	/* Only a dead uffd is fatal; the batch's faults were woken. */
	if (ret == -EBADF || ret == -EINVAL)
		e->error = ret;
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
		if (p[1].revents)
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

int cg__embedded_open(struct cg__embedded **out)
{
	struct cg__embedded *e = calloc(1, sizeof(*e));
	uint64_t features;
	int uffd, pagemap, ret;

	if (!e)
		return -ENOMEM;
	uffd = cg__uffd_create();
	if (uffd < 0) {
		ret = uffd;
		goto err_free;
	}
	ret = cg__uffd_api(uffd, cg__mm_uffd_wanted() & ~(uint64_t)UFFD_FEATURE_EVENT_FORK,
			   &features);
	if (ret)
		goto err_uffd;
	pagemap = cg__pagemap_open(0);
	if (pagemap < 0) {
		ret = pagemap;
		goto err_uffd;
	}
	e->kpageflags_fd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	cg__mm_init(&e->mm, uffd, features, getpid(), pagemap, e->kpageflags_fd);
	e->mm.pfn_visible = pfns_visible(pagemap);
	e->wake_fd = eventfd(0, EFD_CLOEXEC);
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
	if (e->kpageflags_fd >= 0)
		close(e->kpageflags_fd);
	free(e);
	return ret;
err_uffd:
	close(uffd);
err_free:
	free(e);
	return ret;
}

void cg__embedded_close(struct cg__embedded *e)
{
	uint64_t one = 1;

	if (!e)
		return;
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
