/* SPDX-License-Identifier: MIT */
/* struct cg: what a public handle is, in either mode. */
#ifndef CG_HANDLE_H
#define CG_HANDLE_H

#include <pthread.h>

#include "client.h"
#include "cowguard.h"
#include "embedded.h"

struct cg {
	enum cg_mode mode;
	pthread_mutex_t lock;		/* one request at a time on the socket */
	struct cg__embedded *emb;	/* CG_MODE_EMBEDDED */
	struct cg__client cli;		/* CG_MODE_DAEMON */
	int broken;			/* why the handle is unusable, or 0 */
	pthread_mutex_t pins_lock;	/* guards pins */
	struct cg_pin *pins;		/* ours, for MADV_DONTFORK bookkeeping */
	struct cg *next;		/* every open handle, for fork() */
};

struct cg_pin {
	struct cg *cg;
	uint64_t id;
	uint64_t addr, len;
	unsigned flags;
	struct cg_pin *next;
};

/*
 * cg_pin() with the consumer named (for cowguardctl pins): the io_uring,
 * splice and verbs wrappers use it.  lib/pin_api.c.
 */
int cg__pin(struct cg *cg, void *addr, size_t len, unsigned flags,
	    const char *consumer, struct cg_pin **out);
/* One daemon round trip for the handle; 0, -errno, or the op's status. */
int cg__call(struct cg *cg, struct cg__req *req, struct cg__rep *rep);

/* fork() support over every open handle: lib/fork.c. */
void cg__handles_add(struct cg *cg);
void cg__handles_del(struct cg *cg);

#endif
