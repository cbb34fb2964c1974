/* SPDX-License-Identifier: MIT */
/* The engine run in-process, on a handler thread of its own. */
#ifndef CG_EMBEDDED_H
#define CG_EMBEDDED_H

#include <pthread.h>
#include <stdbool.h>

#include "engine/engine.h"

struct cg__embedded {
	struct cg__mm mm;
	pthread_mutex_t lock;	/* the handler thread and API calls share mm */
	pthread_t thread;
	int wake_fd;		/* eventfd: wakes the thread, to stop or look again */
	bool stopping;
	int kpageflags_fd;
	int error;		/* the thread's fatal error, if any */
};

/* Returns 0 or -errno (-EPERM: no full uffd; -ENOSYS: no uffd-wp). */
int cg__embedded_open(struct cg__embedded **out);
void cg__embedded_close(struct cg__embedded *e);

/*
 * Before a call: a CRIU restore (lib/criu/) leaves a uffd never set up where
 * ours was.  Then start afresh with the same regions, their history
 * unknown.  Returns 0, or the error that leaves the engine dead (its calls
 * answer it).  One poll(2).
 */
int cg__embedded_check(struct cg__embedded *e);

/*
 * Run call on the mm with the lock held; returns its result.  Messages the
 * call read while retrying an ioctl (faults among them, whose threads wait)
 * are handled before the lock goes: the uffd will not poll readable for them.
 */
#define CG__EMBEDDED_CALL(e, call)                                            \
	({                                                                    \
		int __ret;                                                    \
		pthread_mutex_lock(&(e)->lock);                               \
		__ret = (e)->error ? (e)->error : (call);                     \
		/* No other client here to yield to: empty it. */             \
		while (cg__mm_pending(&(e)->mm))                              \
			cg__mm_service(&(e)->mm);                             \
		pthread_mutex_unlock(&(e)->lock);                             \
		__ret;                                                        \
	})

/*
 * cg__mm_register() of a region again, in a new engine or on a new uffd,
 * while the old uffd may still hold it (-EBUSY): retried until until_ns,
 * and a region still refused said on stderr.  locked: the caller holds
 * e->lock; else it is taken per attempt.  Returns 0 or -errno.
 */
#define CG__REGISTER_AGAIN_NS (1000ULL * 1000 * 1000)
int cg__embedded_register_again(struct cg__embedded *e, uint64_t start,
				uint64_t len, uint64_t until_ns, bool locked);

/* fork() support: see lib/fork.c. */
int cg__embedded_fork_prepare(struct cg__embedded *e);
int cg__embedded_fork_parent(struct cg__embedded *e);
/* In the child: a fresh engine tracking the same regions (all maybe-shared). */
int cg__embedded_fork_child(struct cg__embedded **e);

#endif
