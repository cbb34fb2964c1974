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
	struct cg *next;		/* every open handle, for fork() */
};

/* fork() support over every open handle: lib/fork.c. */
void cg__handles_add(struct cg *cg);
void cg__handles_del(struct cg *cg);

#endif
