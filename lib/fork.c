// SPDX-License-Identifier: MIT
/*
 * Following fork() in the library.  Before the fork every handle write-
 * protects all its populated pages, so that a write racing the fork is seen.
 * After it:
 *  - daemon mode: the kernel's fork event tells the daemon, which adopts
 *    the child's uffd; the child reconnects so the daemon learns its pid.
 *  - embedded mode: the parent marks every populated page maybe-shared; the
 *    child, whose memory the kernel unregistered (no EVENT_FORK here),
 *    starts a fresh engine over the same regions.
 * A raw clone() or _Fork() runs none of this: see the README.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "handle.h"
#include "mm_internal.h"

static pthread_mutex_t handles_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static struct cg *handles;
static pid_t forking_parent;

static void fork_prepare(void);
static void fork_parent(void);
static void fork_child(void);

static void install_atfork(void)
{
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

void cg__handles_add(struct cg *cg)
{
	pthread_once(&atfork_once, install_atfork);
	pthread_mutex_lock(&handles_lock);
	cg->next = handles;
	handles = cg;
	pthread_mutex_unlock(&handles_lock);
}

void cg__handles_del(struct cg *cg)
{
	pthread_mutex_lock(&handles_lock);
	for (struct cg **p = &handles; *p; p = &(*p)->next)
		if (*p == cg) {
			*p = cg->next;
			break;
		}
	pthread_mutex_unlock(&handles_lock);
}

int cg__embedded_fork_prepare(struct cg__embedded *e)
{
	return CG__EMBEDDED_CALL(e, cg__mm_fork_prepare(&e->mm));
}

int cg__embedded_fork_parent(struct cg__embedded *e)
{
	return CG__EMBEDDED_CALL(e, cg__mm_fork_parent(&e->mm));
}

int cg__embedded_fork_child(struct cg__embedded **ep)
{
	struct cg__embedded *old = *ep, *e;
	struct cg__mm *mm = &old->mm;
	size_t n = mm->nregions;
	uint64_t *ranges = malloc((n ? n : 1) * 2 * sizeof(*ranges));
	int ret;

	if (!ranges)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		ranges[2 * i] = mm->regions[i]->start;
		ranges[2 * i + 1] = mm->regions[i]->len;
	}
	/* The handler thread does not exist here; its lock may look held. */
	cg__mm_destroy(mm);
	close(old->wake_fd);
	if (old->kpageflags_fd >= 0)
		close(old->kpageflags_fd);
	free(old);
	*ep = NULL;
	ret = cg__embedded_open(&e);
	for (size_t i = 0; !ret && i < n; i++)
		ret = cg__mm_register_as(&e->mm, ranges[2 * i], ranges[2 * i + 1],
					 CG_LEARN_INHERITED);
	free(ranges);
	if (ret && e) {
		cg__embedded_close(e);
		e = NULL;
	}
	*ep = ret ? NULL : e;
	return ret;
}

static int daemon_fork_prepare(struct cg *cg)
{
	struct cg__req req;
	struct cg__rep rep;
	int ret;

	cg__req_init(&req, CG_OP_FORK_PREPARE);
	ret = cg__client_call(&cg->cli, &req, &rep);
	return ret ? ret : rep.status;
}

static void fork_prepare(void)
{
	pthread_mutex_lock(&handles_lock);
	forking_parent = getpid();
	for (struct cg *cg = handles; cg; cg = cg->next) {
		pthread_mutex_lock(&cg->lock);
		if (cg->broken)
			continue;
		/* A failure here only widens the race window: fork goes on. */
		if (cg->mode == CG_MODE_EMBEDDED)
			cg__embedded_fork_prepare(cg->emb);
		else
			daemon_fork_prepare(cg);
	}
}

static void fork_parent(void)
{
	for (struct cg *cg = handles; cg; cg = cg->next) {
		if (!cg->broken && cg->mode == CG_MODE_EMBEDDED)
			cg__embedded_fork_parent(cg->emb);
		pthread_mutex_unlock(&cg->lock);
	}
	pthread_mutex_unlock(&handles_lock);
}

static void fork_child(void)
{
	for (struct cg *cg = handles; cg; cg = cg->next) {
		int ret = 0;

		if (!cg->broken && cg->mode == CG_MODE_EMBEDDED)
			ret = cg__embedded_fork_child(&cg->emb);
		else if (!cg->broken)
			ret = cg__client_child(&cg->cli, forking_parent);
		if (ret)
			cg->broken = ret;
		pthread_mutex_unlock(&cg->lock);
	}
	pthread_mutex_unlock(&handles_lock);
}
