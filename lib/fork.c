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
 * A handle whose daemon is gone (lib/reconnect.c) follows nothing: in
 * parent and child alike its next call registers its regions afresh.
 * A raw clone() or _Fork() runs none of this: see the README.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "engine/engine.h"
#include "handle.h"
#include "kernel/compat.h"
#include "kernel/procfs.h"

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
	struct cg__bequest *b = cg__mm_bequest(&old->mm);
	int ret;

	if (!b)
		return -ENOMEM;
	/* The handler thread does not exist here; its lock may look held. */
	cg__mm_destroy(&old->mm);
	close(old->wake_fd);
	if (old->kpageflags_fd >= 0)
		close(old->kpageflags_fd);
	free(old);
	*ep = NULL;
	ret = cg__embedded_open(&e);
	if (!ret)
		ret = CG__EMBEDDED_CALL(e, cg__mm_inherit(&e->mm, b));
	cg__bequest_free(b);
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
	/* The daemon is gone: parent and child come back at their next call. */
	if (ret == -ENOTCONN)
		cg__mark_lost(cg);
	return ret ? ret : rep.status;
}

/*
 * The child's hello failed.  No daemon, or one that holds no uffd of ours
 * (restarted, or it could not adopt us): the memory is untracked, and the
 * next call registers it afresh (lib/reconnect.c).  Any other refusal
 * leaves the handle unusable.
 */
static void child_hello_failed(struct cg *cg, int err)
{
	if (err == -ENOTCONN || err == -ECONNREFUSED || err == -ECONNRESET ||
	    err == -EPIPE || err == -ENOENT || err == -ESRCH)
		cg->lost = true;
	else
		cg->broken = err;
}

static void fork_prepare(void)
{
	pthread_mutex_lock(&handles_lock);
	forking_parent = getpid();
	for (struct cg *cg = handles; cg; cg = cg->next) {
		/*
		 * A pin in progress first: one unsharing a THP by a move has
		 * dropped the chunks it copied, and a child forked then would
		 * inherit the hole (lib/move_unshare.c).
		 */
		pthread_mutex_lock(&cg->pins_lock);
		pthread_mutex_lock(&cg->lock);
		if (cg->broken || cg->lost)
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
		pthread_mutex_unlock(&cg->pins_lock);
	}
	pthread_mutex_unlock(&handles_lock);
}

static void fork_child(void)
{
	for (struct cg *cg = handles; cg; cg = cg->next) {
		int ret;

		if (cg->broken || cg->lost) {
			/* Nothing to follow: a lost handle comes back when called. */
		} else if (cg->mode == CG_MODE_EMBEDDED) {
			ret = cg__embedded_fork_child(&cg->emb);
			if (ret)
				cg->broken = ret;
		} else {
			ret = cg__client_child(&cg->cli, forking_parent);
			if (ret)
				child_hello_failed(cg, ret);
		}
		pthread_mutex_unlock(&cg->lock);
		pthread_mutex_unlock(&cg->pins_lock);
	}
	pthread_mutex_unlock(&handles_lock);
}
