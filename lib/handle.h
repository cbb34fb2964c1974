/* SPDX-License-Identifier: MIT */
/* struct cg: what a public handle is, in either mode. */
#ifndef CG_HANDLE_H
#define CG_HANDLE_H

#include <pthread.h>
#include <stdbool.h>

#include "client.h"
#include "cowguard.h"
#include "embedded.h"

struct cg {
	/*
	 * DAEMON may become EMBEDDED once, under lock, by an atomic store after
	 * emb is set (lib/reconnect.c); read it with cg_mode().  A call that
	 * saw DAEMON just before is served embedded by cg__call_locked().
	 */
	enum cg_mode mode;
	pthread_mutex_t lock;		/* one request at a time on the socket */
	struct cg__embedded *emb;	/* CG_MODE_EMBEDDED */
	struct cg__client cli;		/* CG_MODE_DAEMON */
	int broken;			/* why the handle is unusable, or 0 */
	/* Daemon restarts (lib/reconnect.c), under lock: */
	enum cg_mode want;		/* as opened: AUTO may go embedded */
	bool lost;			/* connection gone: the next call reconnects */
	uint64_t *ranges;		/* start, len of each region registered */
	size_t nranges, ranges_cap;
	pthread_mutex_t pins_lock;	/* guards pins */
	struct cg_pin *pins;		/* ours, for MADV_DONTFORK bookkeeping */
	struct cg *next;		/* every open handle, for fork() */
	/* The last image cg_snapshot() wrote, an incremental one's parent. */
	_Atomic uint64_t last_image;
};

struct cg_pin {
	struct cg *cg;
	uint64_t id;
	uint64_t addr, len;
	unsigned flags;
	struct cg_pin *next;
};

/*
 * A pin whose range stays forkable (no MADV_DONTFORK) although its
 * consumer holds plain references: for a caller that ends the pin itself
 * before any fork (the preload shim, lib/preload/).  cg__pin() only.
 */
#define CG__PIN_FORKABLE (1u << 30)

/*
 * cg_pin() with the consumer named (for cowguardctl pins): the io_uring,
 * splice and verbs wrappers use it.  lib/cg_pin.c.  Exported from
 * libcowguard.so in the COWGUARD_PRIVATE node (lib/libcowguard.map) for
 * libcowguard-verbs and libcowguard-uring of the same version, and for
 * nothing else.
 */
CG_EXPORT int cg__pin(struct cg *cg, void *addr, size_t len, unsigned flags,
	    const char *consumer, struct cg_pin **out);
/*
 * Pin the pages iov references (lib/pin_iov.c): cg__pin() of the span from
 * the first to the last byte of the non-empty iovecs, rounded out to whole
 * pages (a hugetlb page whole).  -EINVAL: no byte; -EOVERFLOW: an iovec
 * wraps; -ENOENT: an end is not registered; else cg__pin()'s.
 */
struct iovec;
/* [*lo, *hi): from the first to the last byte of the non-empty iovecs. */
int cg__iov_span(const struct iovec *iov, unsigned long nr, uint64_t *lo,
		 uint64_t *hi);
int cg__pin_iov(struct cg *cg, const struct iovec *iov, unsigned long nr,
		unsigned flags, const char *consumer, struct cg_pin **out);

/*
 * A result into the caller's structure of size bytes (lib/cowguard.c): ours
 * cut to size, zeros past ours ("Structures that grow", cowguard.h).
 */
int cg__copy_out(void *out, size_t size, const void *ours, size_t ours_size);

/*
 * One request over [addr, addr+len) with flags (lib/cowguard.c): as
 * cg__call(), rep holding the answer.
 */
int cg__range_op(struct cg *cg, enum cg__op op, const void *addr,
		 uint64_t len, unsigned flags, struct cg__rep *rep);

/* One request of the handle (lib/call.c); 0, -errno, or the op's status. */
int cg__call(struct cg *cg, struct cg__req *req, struct cg__rep *rep);

/*
 * lib/call.c, with cg->lock held: the round trip, to the daemon or the
 * engine in process, coming back first if the connection was lost; 0 with
 * rep->status, or -errno.
 */
int cg__call_locked(struct cg *cg, struct cg__req *req, struct cg__rep *rep);

/*
 * lib/reconnect.c, with cg->lock held.  cg__mark_lost: the connection is
 * gone.  cg__reconnect: come back (a new connection and uffd, every
 * region registered again), or go on embedded (CG_MODE_AUTO); 0 or
 * -errno.  cg__remember: follow what the daemon accepted (registrations),
 * so that it can be told again.  cg__forget: a region no longer to tell
 * (0, or -ENOENT: none such).
 */
void cg__mark_lost(struct cg *cg);
int cg__reconnect(struct cg *cg);
void cg__remember(struct cg *cg, const struct cg__req *req, int status);
int cg__forget(struct cg *cg, uint64_t start, uint64_t len);

/* fork() support over every open handle: lib/fork.c. */
void cg__handles_add(struct cg *cg);
void cg__handles_del(struct cg *cg);

#endif
