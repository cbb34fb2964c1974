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

#include "compat.h"
#include "handle.h"
#include "mm_internal.h"
#include "pin.h"
#include "procfs.h"

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

/*
 * The ranges of pins whose consumer holds a kernel FOLL_PIN: fork copied
 * those pages for the child instead of sharing them.  Pairs, as above.
 */
static uint64_t *foll_pin_ranges(const struct cg__mm *mm, size_t *n)
{
	uint64_t *v = malloc((2 * mm->npins + 1) * sizeof(*v));

	*n = 0;
	for (size_t i = 0; v && i < mm->npins; i++)
		if (mm->pins[i]->flags & CG_PIN_FOLL_PIN) {
			v[2 * *n] = mm->pins[i]->start;
			v[2 * (*n)++ + 1] = mm->pins[i]->len;
		}
	return v;
}

/*
 * Whether the kernel shows the page of pme ours alone: PageAnonExclusive
 * where kpageflags can be read, else mapped once (never trusted for a
 * 1 GiB page: bit 56 reads 0 there, or 1 when shared, on 6.18).
 */
static bool ours_alone(const struct cg__mm *mm, uint64_t pme, bool gigantic)
{
	if (!(pme & PM_PRESENT))
		return false;
	if (mm->kpageflags_fd >= 0 && mm->pfn_visible && (pme & PM_PFN_MASK))
		return cg__kernel_exclusive(mm, pme);
	return !gigantic && (pme & PM_MMAP_EXCLUSIVE);
}

/*
 * The child's pages under a parent's CG_PIN_FOLL_PIN pin: fork copied for
 * the child what a kernel pin held, so they are not shared with the
 * parent.  The claim is not trusted: only what the kernel shows ours alone
 * is marked exclusive; what a claimed but absent pin let fork share stays
 * maybe-shared.  Nothing is unshared here: that would race with the
 * parent's next write and hide the violation its unpin must report.
 */
static int learn_foll_pinned(struct cg__mm *mm, uint64_t start, uint64_t len)
{
	uint64_t pme[64];
	int ret = 0;

	for (uint64_t a = start; a < start + len && !ret;) {
		struct cg__region *r = cg__mm_find(mm, a);
		uint64_t ustart, ulen, stop;
		size_t n;

		if (!r) {
			a += CG_PAGE_SIZE;
			continue;
		}
		cg__region_unit(r, a, &ustart, &ulen);
		if (ulen > CG_PAGE_SIZE) {
			/* A huge unit (hugetlb, PMD-mapped THP): one entry. */
			ret = cg__pagemap_read(mm->pagemap_fd, ustart, 1, pme);
			if (!ret && ours_alone(mm, pme[0], ulen == 1ULL << CG_PUD_SHIFT))
				ret = cg__region_update(r, ustart, ulen, 0, CG_ST_EXCL);
			a = ustart + ulen;
			continue;
		}
		stop = r->start + r->len < start + len ? r->start + r->len
						       : start + len;
		n = (stop - a) >> CG_PAGE_SHIFT;
		n = n < 64 ? n : 64;
		ret = cg__pagemap_read(mm->pagemap_fd, a, n, pme);
		for (size_t i = 0; !ret && i < n; i++, a += CG_PAGE_SIZE)
			if (ours_alone(mm, pme[i], false))
				ret = cg__region_update(r, a, CG_PAGE_SIZE, 0,
							CG_ST_EXCL);
	}
	return ret;
}

int cg__embedded_fork_child(struct cg__embedded **ep)
{
	struct cg__embedded *old = *ep, *e;
	struct cg__mm *mm = &old->mm;
	size_t n, npinned;
	uint64_t *ranges = child_ranges(mm, &n);
	uint64_t *pinned = foll_pin_ranges(mm, &npinned);
	int ret;

	if (!ranges || !pinned) {
		free(ranges);
		free(pinned);
		return -ENOMEM;
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
	for (size_t i = 0; !ret && i < npinned; i++)
		ret = CG__EMBEDDED_CALL(e, learn_foll_pinned(&e->mm, pinned[2 * i],
							     pinned[2 * i + 1]));
	free(ranges);
	free(pinned);
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
	}
	pthread_mutex_unlock(&handles_lock);
}
