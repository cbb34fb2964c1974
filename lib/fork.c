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
#include "pin.h"

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

/* The start of the first MADV_DONTFORK pin in [a, end), or end. */
static uint64_t next_dontfork(const struct cg__mm *mm, uint64_t a, uint64_t end,
			      uint64_t *pin_end)
{
	uint64_t best = end;

	for (size_t i = 0; i < mm->npins; i++) {
		const struct cg__pin *p = mm->pins[i];

		if (!(p->flags & CG_PIN_FOLL_PIN) && p->start < best &&
		    p->start + p->len > a) {
			best = p->start > a ? p->start : a;
			*pin_end = p->start + p->len;
		}
	}
	return best;
}

/*
 * What a child can re-register: our regions less the MADV_DONTFORK pinned
 * ranges, which the child does not map.  Pairs of start, length.
 */
static uint64_t *child_ranges(const struct cg__mm *mm, size_t *n)
{
	size_t cap = 2 * (mm->nregions + mm->npins) + 2;
	uint64_t *v = malloc(cap * sizeof(*v));

	*n = 0;
	for (size_t i = 0; v && i < mm->nregions; i++) {
		uint64_t a = mm->regions[i]->start;
		uint64_t end = a + mm->regions[i]->len;

		while (a < end) {
			uint64_t pin_end = end;
			uint64_t stop = next_dontfork(mm, a, end, &pin_end);

			if (stop > a && *n + 2 <= cap) {
				v[(*n)++] = a;
				v[(*n)++] = stop - a;
			}
			a = stop < end ? pin_end : end;
		}
	}
	*n /= 2;
	return v;
}

int cg__embedded_fork_child(struct cg__embedded **ep)
{
	struct cg__embedded *old = *ep, *e;
	struct cg__mm *mm = &old->mm;
	size_t n;
	uint64_t *ranges = child_ranges(mm, &n);
	int ret;

	if (!ranges)
		return -ENOMEM;
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
