// SPDX-License-Identifier: MIT
/*
 * Lazy restore: the regions of a snapshot image mapped again where they
 * were, in this process, and filled from the image while the program
 * already runs.  A thread of the library owns a userfaultfd of its own,
 * registered MODE_MISSING over the regions: a fault is served at once
 * from the image (UFFDIO_COPY of its run, its hugetlb page whole), and
 * between faults the rest is drained run by run.  Then the regions are
 * let go and registered with the handle, if one was given: tracked again,
 * their history unknown, as after a daemon restart.
 *
 * An incremental image comes with its parents (cg_restore_chain_start):
 * a kept run's bytes are read from the parent, or from its parent where
 * kept there too.  The chain is checked whole before anything is mapped:
 * each image names the next as its parent, the last is full, and every
 * kept run is covered by runs of the parent.
 *
 * THP memory comes back as THPs where the kernel can move pages
 * (UFFDIO_MOVE, 6.8+): a 2 MiB chunk the image holds whole is read into a
 * fresh THP of the library's and moved into place, one PMD; elsewhere,
 * and for what a move leaves, 4 KiB pages are copied.
 *
 * With CG_RESTORE_CHECK_AS_READ the first byte comes after the header
 * and index only: each run is checked when first read, and a run found
 * corrupt is never given to the program as memory: its pages are
 * poisoned (UFFDIO_POISON: a touch raises SIGBUS, as a memory error
 * would) and cg_restore_wait() says -EBADMSG.
 *
 * The daemon takes no part: a restore cannot be wedged by its death.
 * What the program does meanwhile: a page dropped (MADV_DONTNEED) or
 * unmapped is never filled again from the image (a fault there gets
 * zeros, as it would have); memory moved (mremap) is filled where it went;
 * a fork(3) waits until the restore is done (pthread_atfork), so that the
 * child has every page.  A raw clone() that skips fork(3)'s handlers gives
 * its child zeros where pages were not in yet.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "handle.h"
#include "image/image.h"
#include "kernel/clock.h"
#include "kernel/compat.h"
#include "kernel/pages.h"
#include "kernel/uffd.h"
#include "restore.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif

#define PG 4096ULL

/* A range mremap moved: [to, to+len) holds the image's [from, from+len). */
struct reloc {
	uint64_t from, to, len;
};

struct cg_restore {
	struct cg *cg;
	unsigned flags;
	struct cg__img img;	/* the newest image: its regions are restored */
	struct cg__img *parents;	/* img's parent, its parent's, ... */
	size_t nparents;
	int uffd;
	uint64_t **done;	/* per region, a bit per page: filled or dropped */
	struct reloc *relocs;
	size_t nrelocs;
	uint64_t *faults_held;	/* read while a copy waited: served next */
	size_t nheld, held_cap;
	void *buf;		/* the largest unit: a run, or a hugetlb page */
	size_t buf_len;
	bool can_move;		/* THP chunks moved in whole (UFFDIO_MOVE) */
	/* CG_RESTORE_CHECK_AS_READ: per image, a bit per run checked right */
	uint64_t **checked;
	void *check_buf;	/* CG__IMG_RUN_MAX: a run read whole, checked */
	int late_err;		/* a run found corrupt: its pages poisoned */
	void *stage_map;	/* where they are read first: 2 MiB aligned */
	uint64_t stage;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool finished;
	int err;
	uint64_t started_ns, first_fault_ns, drained_ns;
	uint64_t faults, restored;
	struct cg_restore *next;	/* every restore running, for fork */
};

static pthread_mutex_t running_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static struct cg_restore *running;

/* ---- where things are ----------------------------------------------- */

static uint64_t unit_of(const struct cg__img_region *g)
{
	return g->kind == CG_PAGE_HUGETLB_2M   ? 2ULL << 20
	       : g->kind == CG_PAGE_HUGETLB_1G ? 1ULL << 30
					       : PG;
}

/*
 * Where the image's address a is now, and what image address is at x now:
 * the last move of it decides (relocs are in image addresses).
 */
static uint64_t now_of(const struct cg_restore *r, uint64_t a)
{
	for (size_t i = r->nrelocs; i-- > 0;)
		if (a >= r->relocs[i].from && a - r->relocs[i].from < r->relocs[i].len)
			return r->relocs[i].to + (a - r->relocs[i].from);
	return a;
}

static uint64_t image_of(const struct cg_restore *r, uint64_t x)
{
	for (size_t i = r->nrelocs; i-- > 0;)
		if (x >= r->relocs[i].to && x - r->relocs[i].to < r->relocs[i].len)
			return r->relocs[i].from + (x - r->relocs[i].to);
	return x;
}

/* The region holding image address a, or -1. */
static long region_of(const struct cg_restore *r, uint64_t a)
{
	for (uint64_t i = 0; i < r->img.h.nregions; i++)
		if (a >= r->img.regions[i].start &&
		    a - r->img.regions[i].start < r->img.regions[i].len)
			return (long)i;
	return -1;
}

static bool is_done(const struct cg_restore *r, long g, uint64_t a)
{
	uint64_t p = (a - r->img.regions[g].start) / PG;

	return r->done[g][p / 64] >> (p % 64) & 1;
}

/* Mark the image's [a, a+len) done, within region g. */
static void mark_done(struct cg_restore *r, long g, uint64_t a, uint64_t len)
{
	const struct cg__img_region *x = &r->img.regions[g];
	uint64_t lo = a > x->start ? a : x->start;
	uint64_t hi = a + len < x->start + x->len ? a + len : x->start + x->len;

	for (uint64_t p = (lo - x->start) / PG; lo < hi; lo += PG, p++)
		r->done[g][p / 64] |= 1ULL << (p % 64);
}

/*
 * What is at [x, x+len) now is gone: never filled.  A page moved away
 * from there is not (mremap unmaps the old place after the move).
 */
static void forget(struct cg_restore *r, uint64_t x, uint64_t len)
{
	for (uint64_t at = x; at < x + len; at += PG) {
		uint64_t img = image_of(r, at);
		long g = region_of(r, img);

		if (g >= 0 && now_of(r, img) == at)
			mark_done(r, g, img, PG);
	}
}

/* ---- filling --------------------------------------------------------- */

/* The first run of img ending past address a (runs are by address). */
static uint64_t run_from(const struct cg__img *img, uint64_t a)
{
	uint64_t lo = 0, hi = img->h.nruns;

	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;

		if (img->runs[mid].addr + img->runs[mid].len <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Image k of the chain: 0 the newest, then its parents. */
static struct cg__img *chain_img(struct cg_restore *r, size_t k)
{
	return k ? &r->parents[k - 1] : &r->img;
}

/*
 * len bytes of run i of image k, from address lo, into dst.  Checked
 * first, the run read whole, where the image was not checked whole.
 */
static int read_saved(struct cg_restore *r, size_t k, uint64_t i, uint64_t lo,
		      uint64_t len, char *dst)
{
	struct cg__img *img = chain_img(r, k);
	const struct cg__img_run *x = &img->runs[i];
	uint64_t *seen = r->checked ? r->checked[k] : NULL;
	int ret;

	if (!seen || seen[i / 64] >> (i % 64) & 1)
		return cg__img_pread(img->fd, dst, len, x->off + (lo - x->addr));
	ret = cg__img_read_run(img, i, r->check_buf);
	if (ret)
		return ret;
	seen[i / 64] |= 1ULL << (i % 64);
	memcpy(dst, (char *)r->check_buf + (lo - x->addr), len);
	return 0;
}

/*
 * The bytes of [a, a+len) in image k into dst: its saved runs read, its
 * kept runs from image k+1 (the chain check made sure it has them).
 */
static int content_of(struct cg_restore *r, size_t k, uint64_t a,
		      uint64_t len, char *dst)
{
	struct cg__img *img = chain_img(r, k);

	for (uint64_t i = run_from(img, a);
	     i < img->h.nruns && img->runs[i].addr < a + len; i++) {
		const struct cg__img_run *x = &img->runs[i];
		uint64_t lo = x->addr > a ? x->addr : a;
		uint64_t hi = x->addr + x->len < a + len ? x->addr + x->len
							 : a + len;
		int ret = x->flags & CG__IMG_KEPT
			  ? content_of(r, k + 1, lo, hi - lo, dst + (lo - a))
			  : read_saved(r, k, i, lo, hi - lo, dst + (lo - a));

		if (ret)
			return ret;
	}
	return 0;
}

/* The image's bytes of [a, a+len) into r->buf: its runs, zeros between. */
static int content(struct cg_restore *r, uint64_t a, uint64_t len)
{
	memset(r->buf, 0, len);
	return content_of(r, 0, a, len, r->buf);
}

static int read_messages(struct cg_restore *r, bool serve_faults);

/*
 * UFFDIO_COPY r->buf to [now, now+len); a unit there already (-EEXIST)
 * or gone (-ENOENT) is skipped.  -EAGAIN when an event came: it is read
 * (a page it dropped is done now), and the caller starts again from
 * what is not done.
 */
static int copy_in(struct cg_restore *r, uint64_t now, uint64_t len,
		   uint64_t unit)
{
	uint64_t at = 0;
	int ret = 0;

	while (at < len) {
		uint64_t done = 0;

		ret = cg__uffd_copy(r->uffd, now + at, (uintptr_t)r->buf + at,
				    len - at, &done);
		at += done;
		if (!ret || ret == -EAGAIN)
			break;
		if (ret != -EEXIST && ret != -ENOENT && ret != -EFAULT)
			return ret;
		ret = 0;
		at = (at / unit + 1) * unit;
	}
	/* DONTWAKE copies: whoever faulted there goes on now. */
	cg__uffd_wake(r->uffd, now, len);
	if (ret == -EAGAIN) {
		int err = read_messages(r, false);

		return err ? err : -EAGAIN;
	}
	return ret;
}

/*
 * [a, a+len) read from a run found corrupt: never the program's memory.
 * Poisoned where it is now, done, and said at the end.
 */
static int poison(struct cg_restore *r, long g, uint64_t a, uint64_t len)
{
	uint64_t now = now_of(r, a);
	int ret = cg__uffd_poison(r->uffd, now, len);

	/* A page in there already (a fault's fill raced us): left as it is. */
	if (ret == -EEXIST)
		for (uint64_t p = 0; p < len; p += PG)
			cg__uffd_poison(r->uffd, now + p, PG);
	cg__uffd_wake(r->uffd, now, len);
	if (ret == -EAGAIN) {
		int err = read_messages(r, false);

		return err ? err : -EAGAIN;
	}
	if (ret && ret != -EEXIST && ret != -ENOENT)
		return ret;
	mark_done(r, g, a, len);
	if (!r->late_err)
		r->late_err = -EBADMSG;
	return 0;
}

/* Whether [a, a+len) of region g is a THP chunk to move in whole. */
static bool thp_whole(const struct cg_restore *r, long g, uint64_t a,
		      uint64_t len)
{
	if (!r->can_move || r->nrelocs || len != CG_PMD_SIZE ||
	    a & (CG_PMD_SIZE - 1) || r->img.regions[g].kind != CG_PAGE_THP)
		return false;
	for (uint64_t p = a; p < a + len; p += PG)
		if (is_done(r, g, p))
			return false;
	return true;
}

/*
 * The chunk [a, a+2 MiB) read into a fresh THP of ours and moved into
 * place, one PMD where the kernel can (else its pages one by one).
 * Returns 0 when all of it moved; -EAGAIN after an event (what moved is
 * done, the caller fills the rest); 1 when it did not move: the caller
 * copies it, and every chunk after (a move that fails once fails again).
 */
static int move_in(struct cg_restore *r, long g, uint64_t a)
{
	char *stage = (char *)(uintptr_t)r->stage;
	uint64_t done = 0;
	int ret;

	/* Runs cover the chunk: the reads fault a fresh THP in, zeroed. */
	ret = content_of(r, 0, a, CG_PMD_SIZE, stage);
	if (ret) {
		/* The copy reads it again, and says what is wrong. */
		madvise(stage, CG_PMD_SIZE, MADV_DONTNEED);
		return 1;
	}
	ret = cg__uffd_move(r->uffd, a, r->stage, CG_PMD_SIZE, &done);
	cg__uffd_wake(r->uffd, a, CG_PMD_SIZE);
	if (done) {
		mark_done(r, g, a, done);
		r->restored += done;
	}
	if (!ret)
		return 0;
	/* What did not move is still staged: let it go. */
	madvise(stage, CG_PMD_SIZE, MADV_DONTNEED);
	if (ret == -EAGAIN || done) {
		int err = read_messages(r, false);

		return err ? err : -EAGAIN;
	}
	r->can_move = false;
	return 1;
}

/* Fill the image's [a, a+len) of region g where it is now; done after. */
static int fill(struct cg_restore *r, long g, uint64_t a, uint64_t len)
{
	int ret = thp_whole(r, g, a, len) ? move_in(r, g, a) : 1;

	if (ret <= 0)
		return ret;
	ret = content(r, a, len);
	if (ret == -EBADMSG && r->checked)
		return poison(r, g, a, len);
	if (!ret)
		ret = copy_in(r, now_of(r, a), len, unit_of(&r->img.regions[g]));
	if (!ret) {
		mark_done(r, g, a, len);
		r->restored += len;
	}
	return ret;
}

/*
 * Fill what is not done of the image's [a, a+len) of region g, looking
 * again after each event (a page dropped meanwhile stays dropped: what
 * was copied before the drop goes with it, what was not is never copied).
 */
static int fill_undone(struct cg_restore *r, long g, uint64_t a, uint64_t len)
{
	int ret;

	if (unit_of(&r->img.regions[g]) != PG) {
		do
			ret = is_done(r, g, a) ? 0 : fill(r, g, a, len);
		while (ret == -EAGAIN);
		return ret;
	}
	for (uint64_t p = a; p < a + len;) {
		uint64_t q = p;

		/* Moved memory may have moved in parts: a page at a time. */
		while (q < a + len && !is_done(r, g, q) &&
		       (q == p || !r->nrelocs))
			q += PG;
		ret = q > p ? fill(r, g, p, q - p) : 0;
		if (ret == -EAGAIN)
			continue;
		if (ret)
			return ret;
		p = q > p ? q : p + PG;
	}
	return 0;
}

/*
 * What a fault at image address a fills, or the drain there: the run, in
 * aligned pieces of CG__IMG_RUN_MAX (a kept run may be long; a THP chunk
 * a run covers whole is one piece, which fill() moves in whole), or the
 * hugetlb page.
 */
static void span_of(const struct cg_restore *r, long g, uint64_t a,
		    uint64_t *start, uint64_t *len)
{
	uint64_t unit = unit_of(&r->img.regions[g]);
	uint64_t i = run_from(&r->img, a);
	const struct cg__img_run *x = &r->img.runs[i];

	*start = a & ~(unit - 1);
	*len = unit;
	if (unit == PG && i < r->img.h.nruns && x->addr <= a) {
		/* RUN_MAX is CG_PMD_SIZE: a THP chunk the run covers, whole. */
		uint64_t piece = a & ~((uint64_t)CG__IMG_RUN_MAX - 1);
		uint64_t lo = x->addr > piece ? x->addr : piece;
		uint64_t end = x->addr + x->len;

		*start = lo;
		*len = (end < piece + CG__IMG_RUN_MAX ? end
						       : piece + CG__IMG_RUN_MAX) - lo;
	}
}

/* A missing fault at address now: from the image, or zeros once done. */
static int serve_fault(struct cg_restore *r, uint64_t now)
{
	uint64_t page = now & ~(PG - 1), a = image_of(r, page), start, len;
	long g = region_of(r, a);
	uint64_t unit;
	int ret;

	r->faults++;
	if (g < 0)
		return cg__uffd_wake(r->uffd, page, PG);
	if (!is_done(r, g, a)) {
		span_of(r, g, a, &start, &len);
		return fill_undone(r, g, start, len);
	}
	/* Dropped, or unmapped and mapped again: what the kernel would give. */
	unit = unit_of(&r->img.regions[g]);
	memset(r->buf, 0, unit);
	ret = copy_in(r, now_of(r, a & ~(unit - 1)), unit, unit);
	/* An event came first: the fault is raised again if still wanted. */
	return ret == -EAGAIN ? 0 : ret;
}

/* Timed once served: a 1 GiB page's fault waits for its whole copy. */
static int serve(struct cg_restore *r, uint64_t now)
{
	int ret = serve_fault(r, now);

	if (!r->first_fault_ns)
		r->first_fault_ns = cg__now_ns() - r->started_ns;
	return ret;
}

static int add_reloc(struct cg_restore *r, uint64_t from, uint64_t to,
		     uint64_t len)
{
	struct reloc *v = realloc(r->relocs, (r->nrelocs + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	r->relocs = v;
	v[r->nrelocs++] = (struct reloc){ image_of(r, from), to, len };
	return 0;
}

/* A fault read while a copy waited: served after it, not inside it. */
static int hold_fault(struct cg_restore *r, uint64_t addr)
{
	if (r->nheld == r->held_cap) {
		size_t cap = r->held_cap ? 2 * r->held_cap : 16;
		uint64_t *v = realloc(r->faults_held, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		r->faults_held = v;
		r->held_cap = cap;
	}
	r->faults_held[r->nheld++] = addr;
	return 0;
}

static int handle_msg(struct cg_restore *r, const struct uffd_msg *m,
		      bool serve_faults)
{
	switch (m->event) {
	case UFFD_EVENT_PAGEFAULT:
		return serve_faults ? serve(r, m->arg.pagefault.address)
				    : hold_fault(r, m->arg.pagefault.address);
	case UFFD_EVENT_REMOVE:
	case UFFD_EVENT_UNMAP:
		forget(r, m->arg.remove.start,
		       m->arg.remove.end - m->arg.remove.start);
		return 0;
	case UFFD_EVENT_REMAP:
		return add_reloc(r, m->arg.remap.from, m->arg.remap.to,
				 m->arg.remap.len);
	}
	return 0;
}

/* Every message pending: events followed, faults served or held. */
static int read_messages(struct cg_restore *r, bool serve_faults)
{
	struct uffd_msg msgs[16];
	ssize_t n;

	while ((n = cg__uffd_read(r->uffd, msgs, sizeof(msgs))) > 0)
		for (size_t i = 0; i < (size_t)n / sizeof(*msgs); i++) {
			int ret = handle_msg(r, &msgs[i], serve_faults);

			if (ret)
				return ret;
		}
	return (int)n;
}

/* The faults held, then every message pending. */
static int handle_events(struct cg_restore *r)
{
	while (r->nheld) {
		int ret = serve(r, r->faults_held[--r->nheld]);

		if (ret)
			return ret;
	}
	return read_messages(r, true);
}

/* ---- the thread -------------------------------------------------------- */

/*
 * The next span of the runs not done (from image address *at on),
 * serving faults and events first; 1 when none is left.
 */
static int drain_step(struct cg_restore *r, uint64_t *at)
{
	int ret = handle_events(r);
	uint64_t i = run_from(&r->img, *at);
	const struct cg__img_run *x = &r->img.runs[i];
	uint64_t start, len;
	long g;

	if (ret)
		return ret;
	if (i == r->img.h.nruns)
		return 1;
	start = x->addr > *at ? x->addr : *at;
	g = region_of(r, start);
	span_of(r, g, start, &start, &len);
	*at = start + len;
	return fill_undone(r, g, start, len);
}

/* Let the regions go (what never came is a hole: zeros), then track them. */
static int settle(struct cg_restore *r)
{
	int ret = 0;

	for (uint64_t i = 0; i < r->img.h.nregions; i++) {
		const struct cg__img_region *g = &r->img.regions[i];
		uint64_t now = now_of(r, g->start);

		cg__uffd_unregister(r->uffd, now, g->len);
		if (r->cg) {
			int err = cg_register(r->cg, (void *)(uintptr_t)now,
					      g->len, 0);

			ret = ret ? ret : err;
		}
	}
	return ret;
}

static void *restore_main(void *arg)
{
	struct cg_restore *r = arg;
	uint64_t at = 0;
	int ret;

	while ((ret = drain_step(r, &at)) == 0)
		;
	r->drained_ns = cg__now_ns() - r->started_ns;
	if (ret == 1)
		ret = 0;
	ret = settle(r) ?: ret;
	pthread_mutex_lock(&r->lock);
	r->err = ret;
	r->finished = true;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

static void wait_finished(struct cg_restore *r)
{
	pthread_mutex_lock(&r->lock);
	while (!r->finished)
		pthread_cond_wait(&r->cond, &r->lock);
	pthread_mutex_unlock(&r->lock);
}

/* A fork waits until every restore is done: the child gets every page. */
static void fork_prepare(void)
{
	pthread_mutex_lock(&running_lock);
	for (struct cg_restore *r = running; r; r = r->next)
		wait_finished(r);
}

static void fork_after(void)
{
	pthread_mutex_unlock(&running_lock);
}

static void install_atfork(void)
{
	pthread_atfork(fork_prepare, fork_after, fork_after);
}

/* ---- start and wait ---------------------------------------------------- */

static void restore_free(struct cg_restore *r)
{
	for (uint64_t i = 0; r->done && i < r->img.h.nregions; i++)
		free(r->done[i]);
	free(r->done);
	free(r->relocs);
	free(r->faults_held);
	if (r->buf)
		munmap(r->buf, r->buf_len);
	if (r->stage_map)
		munmap(r->stage_map, 2 * CG_PMD_SIZE);
	for (size_t k = 0; r->checked && k <= r->nparents; k++)
		free(r->checked[k]);
	free(r->checked);
	if (r->check_buf)
		munmap(r->check_buf, CG__IMG_RUN_MAX);
	if (r->uffd >= 0)
		close(r->uffd);
	cg__img_close(&r->img);
	for (size_t k = 0; k < r->nparents; k++)
		cg__img_close(&r->parents[k]);
	free(r->parents);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->cond);
	free(r);
}

static int map_flags(uint32_t kind)
{
	int f = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE;

	if (kind == CG_PAGE_HUGETLB_2M)
		f |= MAP_HUGETLB | (21 << MAP_HUGE_SHIFT);
	if (kind == CG_PAGE_HUGETLB_1G)
		f |= MAP_HUGETLB | (30 << MAP_HUGE_SHIFT);
	return f;
}

/* Map region i where it was: before anything else is mapped, or it is. */
static int map_region(struct cg_restore *r, uint64_t i)
{
	const struct cg__img_region *g = &r->img.regions[i];
	void *want = (void *)(uintptr_t)g->start;
	void *p = mmap(want, g->len, PROT_READ | PROT_WRITE, map_flags(g->kind),
		       -1, 0);

	if (p == MAP_FAILED)
		return -errno;
	if (p != want) {
		/* A kernel before 4.17 takes the flag for a hint. */
		munmap(p, g->len);
		return -EEXIST;
	}
	if (g->kind == CG_PAGE_THP)
		madvise(p, g->len, MADV_HUGEPAGE);
	return 0;
}

static void unmap_regions(struct cg_restore *r, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		munmap((void *)(uintptr_t)r->img.regions[i].start,
		       r->img.regions[i].len);
}

/* Whether img's runs cover [a, a+len) without a gap. */
static bool covers(const struct cg__img *img, uint64_t a, uint64_t len)
{
	uint64_t end = a + len;

	for (uint64_t i = run_from(img, a); a < end; i++) {
		if (i == img->h.nruns || img->runs[i].addr > a)
			return false;
		a = img->runs[i].addr + img->runs[i].len;
	}
	return true;
}

/*
 * Image k names image k+1 as its parent and finds in it every run it
 * kept; the last image is full.
 */
static int check_link(struct cg_restore *r, size_t k)
{
	const struct cg__img *img = chain_img(r, k), *parent;

	if (!(img->h.flags & CG__IMG_INCREMENTAL))
		return k == r->nparents ? 0 : -EINVAL;
	if (k == r->nparents)
		return -EOPNOTSUPP;
	parent = chain_img(r, k + 1);
	if (img->h.parent_id != parent->h.id)
		return -EINVAL;
	for (uint64_t i = 0; i < img->h.nruns; i++)
		if (img->runs[i].flags & CG__IMG_KEPT &&
		    !covers(parent, img->runs[i].addr, img->runs[i].len))
			return -EBADMSG;
	return 0;
}

/* Every image of the chain opened and read whole, then the links. */
static int check_chain(struct cg_restore *r, const int *fds, size_t nfds)
{
	int ret = 0;

	r->parents = calloc(nfds, sizeof(*r->parents));
	if (!r->parents)
		return -ENOMEM;
	for (size_t k = 0; !ret && k < nfds; k++) {
		if (k)
			r->nparents++;
		ret = cg__img_open(chain_img(r, k), fds[k]);
		if (!ret && !(r->flags & CG_RESTORE_CHECK_AS_READ))
			ret = cg__img_verify(chain_img(r, k));
	}
	for (size_t k = 0; !ret && k < nfds; k++)
		ret = check_link(r, k);
	return ret;
}

/*
 * Where THP chunks are read before they move: 2 MiB aligned, advised
 * MADV_HUGEPAGE (each touch after a move gets a fresh THP), never a
 * child's.  Only when the image has THP memory.
 */
static int prepare_stage(struct cg_restore *r)
{
	bool thp = false;

	for (uint64_t i = 0; i < r->img.h.nregions; i++)
		thp |= r->img.regions[i].kind == CG_PAGE_THP;
	if (!thp)
		return 0;
	r->stage_map = mmap(NULL, 2 * CG_PMD_SIZE, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r->stage_map == MAP_FAILED) {
		r->stage_map = NULL;
		return -ENOMEM;
	}
	r->stage = ((uintptr_t)r->stage_map + CG_PMD_SIZE - 1) &
		   ~(CG_PMD_SIZE - 1);
	madvise((void *)(uintptr_t)r->stage, CG_PMD_SIZE, MADV_HUGEPAGE);
	madvise((void *)(uintptr_t)r->stage, CG_PMD_SIZE, MADV_DONTFORK);
	r->can_move = true;
	return 0;
}

/* A bit per run of each image: checked yet?  And a run's buffer. */
static int prepare_checks(struct cg_restore *r)
{
	r->checked = calloc(r->nparents + 1, sizeof(*r->checked));
	if (!r->checked)
		return -ENOMEM;
	for (size_t k = 0; k <= r->nparents; k++) {
		r->checked[k] = calloc((chain_img(r, k)->h.nruns + 63) / 64 + 1,
				       sizeof(uint64_t));
		if (!r->checked[k])
			return -ENOMEM;
	}
	r->check_buf = mmap(NULL, CG__IMG_RUN_MAX, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (r->check_buf == MAP_FAILED) {
		r->check_buf = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* Our uffd over every region (missing pages held), buffer and bitmaps. */
static int prepare(struct cg_restore *r)
{
	uint64_t got = 0;
	int ret;

	r->done = calloc(r->img.h.nregions + 1, sizeof(*r->done));
	if (!r->done)
		return -ENOMEM;
	r->buf_len = CG__IMG_RUN_MAX;
	for (uint64_t i = 0; i < r->img.h.nregions; i++) {
		uint64_t unit = unit_of(&r->img.regions[i]);

		r->buf_len = unit > r->buf_len ? unit : r->buf_len;
		r->done[i] = calloc((r->img.regions[i].len / PG + 63) / 64,
				    sizeof(uint64_t));
		if (!r->done[i])
			return -ENOMEM;
	}
	r->buf = mmap(NULL, r->buf_len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r->buf == MAP_FAILED) {
		r->buf = NULL;
		return -ENOMEM;
	}
	r->uffd = cg__uffd_create();
	if (r->uffd < 0)
		return r->uffd;
	ret = cg__uffd_api(r->uffd, UFFD_FEATURE_EVENT_REMAP |
				    UFFD_FEATURE_EVENT_REMOVE |
				    UFFD_FEATURE_EVENT_UNMAP |
				    UFFD_FEATURE_MISSING_HUGETLBFS |
				    UFFD_FEATURE_MOVE | UFFD_FEATURE_POISON, &got);
	if (!ret && got & UFFD_FEATURE_MOVE)
		ret = prepare_stage(r);
	if (!ret && r->flags & CG_RESTORE_CHECK_AS_READ)
		ret = got & UFFD_FEATURE_POISON ? prepare_checks(r) : -EOPNOTSUPP;
	for (uint64_t i = 0; !ret && i < r->img.h.nregions; i++)
		ret = cg__uffd_register_mode(r->uffd, r->img.regions[i].start,
					     r->img.regions[i].len,
					     UFFDIO_REGISTER_MODE_MISSING);
	return ret;
}

int cg_restore_start(struct cg *cg, int fd, unsigned flags,
		     struct cg_restore **out)
{
	return cg_restore_chain_start(cg, &fd, 1, flags, out);
}

int cg_restore_chain_start(struct cg *cg, const int *fds, size_t nfds,
			   unsigned flags, struct cg_restore **out)
{
	struct cg_restore *r;
	uint64_t i = 0;
	int ret;

	if (!fds || !nfds || nfds > CG_RESTORE_CHAIN_MAX || !out ||
	    flags & ~CG_RESTORE_CHECK_AS_READ)
		return -EINVAL;
	for (size_t k = 0; k < nfds; k++)
		if (fds[k] < 0)
			return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->cg = cg;
	r->flags = flags;
	r->uffd = -1;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	ret = check_chain(r, fds, nfds);
	while (!ret && i < r->img.h.nregions) {
		ret = map_region(r, i);
		i += !ret;
	}
	if (!ret)
		ret = prepare(r);
	if (ret) {
		unmap_regions(r, i);
		restore_free(r);
		return ret;
	}
	pthread_once(&atfork_once, install_atfork);
	r->started_ns = cg__now_ns();
	pthread_mutex_lock(&running_lock);
	ret = -pthread_create(&r->thread, NULL, restore_main, r);
	if (!ret) {
		r->next = running;
		running = r;
	}
	pthread_mutex_unlock(&running_lock);
	if (ret) {
		unmap_regions(r, r->img.h.nregions);
		restore_free(r);
		return ret;
	}
	*out = r;
	return 0;
}

int cg__restore_uffd(const struct cg_restore *r)
{
	return r->uffd;
}

int cg_restore_wait(struct cg_restore *r, struct cg_restore_info *info,
		    size_t size)
{
	struct cg_restore_info out = { 0 };
	int ret;

	if (!r || (info && size < CG_RESTORE_INFO_SIZE_VER0))
		return -EINVAL;
	pthread_join(r->thread, NULL);
	pthread_mutex_lock(&running_lock);
	for (struct cg_restore **p = &running; *p; p = &(*p)->next)
		if (*p == r) {
			*p = r->next;
			break;
		}
	pthread_mutex_unlock(&running_lock);
	ret = r->err ? r->err : r->late_err;
	out.regions = r->img.h.nregions;
	out.restored_bytes = r->restored;
	out.faults = r->faults;
	out.first_fault_ns = r->first_fault_ns;
	out.drain_ns = r->drained_ns;
	restore_free(r);
	if (info)
		cg__copy_out(info, size, &out, sizeof(out));
	return ret;
}
