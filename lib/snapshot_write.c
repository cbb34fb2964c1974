// SPDX-License-Identifier: MIT
/*
 * A live snapshot's saving half (lib/snapshot_write.h): the engine
 * (lib/engine/snapshot.c) freezes the regions and makes each write to a
 * page not saved yet wait; here the pages are saved, window by window as
 * the engine names them (a waiting write's unit first), through the
 * source, and the image is written around them (lib/image/image.h).
 *
 * While the engine holds writes, this thread must not wait on one: a
 * program thread parked on a page may hold any lock of its process, the
 * allocator's too (when the program is this process).  So nothing here
 * allocates with malloc or writes to memory the program may have
 * registered: buffers are mmap'ed.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "image/image.h"
#include "kernel/clock.h"
#include "snapshot_write.h"

struct writer {
	const struct cg__snap_src *src;
	int fd;
	unsigned char *bounce;	/* CG__IMG_RUN_MAX: runs read back */
	struct cg__img_run *runs;
	size_t nruns, runs_cap;	/* in bytes, as mapped */
	struct cg__img_region *regions;
	size_t nregions, regions_cap;
	uint64_t data_end;	/* where the next run goes */
	uint64_t saved_bytes, kept_bytes, waits;
};

/* Room for one more record of size in *v (an mmap'ed array), or -ENOMEM. */
static int grow(void **v, size_t n, size_t *cap, size_t size)
{
	size_t want = *cap ? *cap * 2 : 1u << 20;
	void *p;

	if ((n + 1) * size <= *cap)
		return 0;
	p = *v ? mremap(*v, *cap, want, MREMAP_MAYMOVE)
	       : mmap(NULL, want, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -ENOMEM;
	*v = p;
	*cap = want;
	return 0;
}

/* Save [addr, addr+len), at most CG__IMG_RUN_MAX, as the next run. */
static int save_run(struct writer *w, uint64_t addr, uint64_t len)
{
	struct cg__img_run *x;
	int ret = grow((void **)&w->runs, w->nruns, &w->runs_cap, sizeof(*x));

	if (!ret)
		ret = w->src->save(w->src->ctx, w->fd, w->data_end, addr,
				   w->bounce, len);
	if (ret)
		return ret;
	x = &w->runs[w->nruns++];
	*x = (struct cg__img_run){ .addr = addr, .len = len, .off = w->data_end,
				   .crc = cg__crc32c(0, w->bounce, len) };
	w->data_end += len;
	w->saved_bytes += len;
	return 0;
}

static int save_span(struct writer *w, uint64_t addr, uint64_t len)
{
	int ret = 0;

	for (uint64_t at = addr; !ret && at < addr + len; at += CG__IMG_RUN_MAX) {
		uint64_t n = addr + len - at;

		ret = save_run(w, at, n < CG__IMG_RUN_MAX ? n : CG__IMG_RUN_MAX);
	}
	return ret;
}

/* [addr, addr+len) unwritten since the parent: a kept run, no bytes. */
static int keep_span(struct writer *w, uint64_t addr, uint64_t len)
{
	struct cg__img_run *x = w->nruns ? &w->runs[w->nruns - 1] : NULL;
	int ret;

	if (x && x->flags & CG__IMG_KEPT && x->addr + x->len == addr) {
		x->len += len;
	} else {
		ret = grow((void **)&w->runs, w->nruns, &w->runs_cap, sizeof(*x));
		if (ret)
			return ret;
		w->runs[w->nruns++] = (struct cg__img_run){
			.addr = addr, .len = len, .flags = CG__IMG_KEPT };
	}
	w->kept_bytes += len;
	return 0;
}

static bool bit(const uint64_t *map, uint32_t i)
{
	return map[i / 64] >> (i % 64) & 1;
}

/* Each run of set bits of map in the window, to fn. */
static int runs_of(struct writer *w, const struct cg__snap_window *win,
		   const uint64_t *map,
		   int (*fn)(struct writer *, uint64_t, uint64_t))
{
	int ret = 0;

	for (uint32_t i = 0; !ret && i < win->nbits;) {
		uint32_t j = i;

		while (j < win->nbits && bit(map, j))
			j++;
		if (j > i)
			ret = fn(w, win->start + ((uint64_t)i << win->shift),
				 (uint64_t)(j - i) << win->shift);
		i = j > i ? j : i + 1;
	}
	return ret;
}

static int save_window(struct writer *w, const struct cg__snap_window *win)
{
	int ret = runs_of(w, win, win->bits, save_span);

	return ret ? ret : runs_of(w, win, win->kept, keep_span);
}

static int note_region(struct writer *w, const struct cg__snap_window *win)
{
	struct cg__img_region *g;
	int ret;

	for (size_t i = 0; i < w->nregions; i++)
		if (w->regions[i].start == win->area_start)
			return 0;
	ret = grow((void **)&w->regions, w->nregions, &w->regions_cap,
		   sizeof(*g));
	if (ret)
		return ret;
	g = &w->regions[w->nregions++];
	*g = (struct cg__img_region){ .start = win->area_start,
				      .len = win->area_len,
				      .kind = win->kind };
	return 0;
}

static int step(struct writer *w, uint64_t start, uint64_t len,
		struct cg__snap_window *win)
{
	int ret = w->src->ask(w->src->ctx, CG_OP_SNAPSHOT_STEP, start, len, 0,
			      win);

	/* No snapshot where we ask: the daemon went away meanwhile. */
	if (ret == -ENOENT)
		ret = -ENOTCONN;
	if (!ret && win->area_len &&
	    (win->nbits > CG__SNAP_BITS || win->shift < 12 || win->shift > 30))
		ret = -EPROTO;
	return ret;
}

/* Every window the engine names, saved; the engine's snapshot ended. */
static int save_all(struct writer *w)
{
	struct cg__snap_window win;
	uint64_t start = 0, len = 0;
	int ret;

	for (;;) {
		ret = step(w, start, len, &win);
		if (ret)
			break;
		w->waits = win.waits;
		if (!win.area_len)
			break;
		ret = note_region(w, &win);
		if (!ret)
			ret = save_window(w, &win);
		if (ret)
			break;
		if (w->src->progress)
			w->src->progress(w->src->ctx, w->saved_bytes,
					 w->kept_bytes);
		start = win.start;
		len = (uint64_t)win.nbits << win.shift;
	}
	return ret;
}

static int op(struct writer *w, enum cg__op o, unsigned flags)
{
	struct cg__snap_window win;

	return w->src->ask(w->src->ctx, o, 0, 0, flags, &win);
}

static int cmp_run(const void *a, const void *b)
{
	const struct cg__img_run *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

static int cmp_region(const void *a, const void *b)
{
	const struct cg__img_region *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* Kept runs next to each other, one (windows came out of order). */
static void merge_kept(struct writer *w)
{
	size_t k = 0;

	for (size_t i = 0; i < w->nruns; i++) {
		struct cg__img_run *last = k ? &w->runs[k - 1] : NULL;
		const struct cg__img_run *x = &w->runs[i];

		if (last && last->flags & x->flags & CG__IMG_KEPT &&
		    last->addr + last->len == x->addr)
			last->len += x->len;
		else
			w->runs[k++] = *x;
	}
	w->nruns = k;
}

/* Runs by address, each region pointing at its own. */
static void index_order(struct writer *w)
{
	size_t k = 0;

	qsort(w->runs, w->nruns, sizeof(*w->runs), cmp_run);
	merge_kept(w);
	qsort(w->regions, w->nregions, sizeof(*w->regions), cmp_region);
	for (size_t i = 0; i < w->nregions; i++) {
		struct cg__img_region *g = &w->regions[i];

		while (k < w->nruns && w->runs[k].addr < g->start)
			k++;
		g->first_run = k;
		while (k < w->nruns && w->runs[k].addr < g->start + g->len)
			k++;
		g->nruns = k - g->first_run;
	}
}

/* Index, then the header last: an image without one was never finished. */
static int finish(struct writer *w, uint64_t created_ns, uint64_t id,
		  uint64_t parent)
{
	size_t rlen, xlen;
	struct cg__img_header h;
	int ret;

	index_order(w);
	rlen = w->nregions * sizeof(*w->regions);
	xlen = w->nruns * sizeof(*w->runs);
	h = (struct cg__img_header){
		.magic = CG__IMG_MAGIC,
		.version = CG__IMG_VERSION,
		.header_len = sizeof(h),
		.page_size = 4096,
		.pid = w->src->pid,
		.created_ns = created_ns,
		.nregions = w->nregions,
		.nruns = w->nruns,
		.data_off = CG__IMG_HEADER_SIZE,
		.data_len = w->data_end - CG__IMG_HEADER_SIZE,
		.index_off = w->data_end,
		.index_len = rlen + xlen,
		.file_len = w->data_end + rlen + xlen,
		.saved_bytes = w->saved_bytes,
		.flags = parent ? CG__IMG_INCREMENTAL : 0,
		.id = id,
		.parent_id = parent,
	};
	h.index_crc = cg__crc32c(cg__crc32c(0, w->regions, rlen), w->runs, xlen);
	h.header_crc = cg__crc32c(0, &h, offsetof(struct cg__img_header,
						  header_crc));
	ret = cg__img_pwrite(w->fd, w->regions, rlen, h.index_off);
	if (!ret)
		ret = cg__img_pwrite(w->fd, w->runs, xlen, h.index_off + rlen);
	if (!ret && ftruncate(w->fd, (off_t)h.file_len))
		ret = -errno;
	if (!ret)
		ret = cg__img_pwrite(w->fd, &h, sizeof(h), 0);
	return ret;
}

static void writer_free(struct writer *w)
{
	if (w->bounce)
		munmap(w->bounce, CG__IMG_RUN_MAX);
	if (w->runs)
		munmap(w->runs, w->runs_cap);
	if (w->regions)
		munmap(w->regions, w->regions_cap);
}

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int check_target(int fd)
{
	struct stat st;
	static const char zero[CG__IMG_HEADER_SIZE];

	if (fstat(fd, &st))
		return -errno;
	/* Runs are written out of order, the header last: a file only. */
	if (!S_ISREG(st.st_mode))
		return -ESPIPE;
	/* No header of an earlier image may survive a failed snapshot. */
	return cg__img_pwrite(fd, zero, sizeof(zero), 0);
}

/* A new image's id: random, never 0 (0 is "no parent"). */
static uint64_t new_id(void)
{
	uint64_t id = 0;

	if (getrandom(&id, sizeof(id), GRND_NONBLOCK) != sizeof(id))
		id = realtime_ns() ^ ((uint64_t)getpid() << 32);
	return id ? id : 1;
}

int cg__snapshot_write(const struct cg__snap_src *src, int fd, uint64_t parent,
		       struct cg__snap_result *res)
{
	struct writer w = { .src = src, .fd = fd,
			    .data_end = CG__IMG_HEADER_SIZE };
	uint64_t t0, created, id = new_id();
	int ret = check_target(fd), end;

	memset(res, 0, sizeof(*res));
	if (ret)
		return ret;
	w.bounce = mmap(NULL, CG__IMG_RUN_MAX, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (w.bounce == MAP_FAILED)
		return -ENOMEM;
	t0 = cg__now_ns();
	ret = op(&w, CG_OP_SNAPSHOT_BEGIN, parent ? CG__SNAP_INCREMENTAL : 0);
	created = realtime_ns();
	res->info.begin_ns = cg__now_ns() - t0;
	if (!ret) {
		ret = save_all(&w);
		/* All saved: no write waits on us any more, malloc is safe. */
		if (!ret)
			ret = finish(&w, created, id, parent);
		/* Always, after a begin: a write still waiting goes on. */
		end = op(&w, CG_OP_SNAPSHOT_END, ret ? CG__SNAP_FAILED : 0);
		if (!ret && end)
			ret = end;
	}
	res->id = id;
	res->info.image_bytes = w.data_end + w.nregions * sizeof(*w.regions) +
				w.nruns * sizeof(*w.runs);
	res->info.saved_bytes = w.saved_bytes;
	res->info.kept_bytes = w.kept_bytes;
	res->info.regions = w.nregions;
	res->info.waits = w.waits;
	writer_free(&w);
	return ret;
}
