// SPDX-License-Identifier: MIT
/* The page-state engine: chunks of uniform state that diverge into nibbles. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pagestate.h"

#define ALIGN_DOWN(x, a) ((x) & ~((a) - 1))
#define ALIGN_UP(x, a) ALIGN_DOWN((x) + (a) - 1, (a))

static uint64_t chunk_size(const struct cg__region *r)
{
	return 1ULL << r->chunk_shift;
}

static size_t pages_per_chunk(const struct cg__region *r)
{
	return (size_t)1 << (r->chunk_shift - CG_PAGE_SHIFT);
}

static size_t nibble_bytes(const struct cg__region *r)
{
	return pages_per_chunk(r) / 2;
}

static uint64_t chunk_start(const struct cg__region *r, size_t idx)
{
	return r->base + ((uint64_t)idx << r->chunk_shift);
}

static size_t chunk_index(const struct cg__region *r, uint64_t addr)
{
	return (addr - r->base) >> r->chunk_shift;
}

static unsigned nibble_get(const uint8_t *p, size_t i)
{
	return (p[i / 2] >> ((i & 1) * 4)) & 0xf;
}

static void nibble_put(uint8_t *p, size_t i, unsigned v)
{
	unsigned shift = (i & 1) * 4;

	p[i / 2] = (uint8_t)((p[i / 2] & ~(0xf << shift)) | (v << shift));
}

struct cg__region *cg__region_new(uint64_t start, uint64_t len,
				  enum cg__rkind kind, unsigned unit_shift)
{
	struct cg__region *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->start = start;
	r->len = len;
	r->kind = kind;
	r->unit_shift = unit_shift;
	r->unlearned = start + len;
	r->chunk_shift = unit_shift > CG_PMD_SHIFT ? unit_shift : CG_PMD_SHIFT;
	r->base = ALIGN_DOWN(start, chunk_size(r));
	r->nchunks = (ALIGN_UP(start + len, chunk_size(r)) - r->base) >>
		     r->chunk_shift;
	r->chunks = calloc(r->nchunks, sizeof(*r->chunks));
	if (!r->chunks) {
		free(r);
		return NULL;
	}
	return r;
}

uint64_t cg__region_cost(uint64_t len)
{
	/* At most one chunk more than len covers, whatever the alignment. */
	return sizeof(struct cg__region) +
	       ((len + 2 * CG_PMD_SIZE - 1) >> CG_PMD_SHIFT) *
		       sizeof(struct cg__chunk);
}

void cg__region_free(struct cg__region *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nchunks; i++)
		free(r->chunks[i].pages);
	free(r->chunks);
	free(r);
}

bool cg__region_contains(const struct cg__region *r, uint64_t addr,
			 uint64_t len)
{
	return addr >= r->start && len <= r->len &&
	       addr - r->start <= r->len - len;
}

unsigned cg__region_get(const struct cg__region *r, uint64_t addr)
{
	const struct cg__chunk *c = &r->chunks[chunk_index(r, addr)];
	size_t page = ((addr - r->base) >> CG_PAGE_SHIFT) &
		      (pages_per_chunk(r) - 1);

	return c->pages ? nibble_get(c->pages, page) : c->state;
}

/* Back to one state for the chunk: its nibble array goes. */
static void chunk_uniform(struct cg__region *r, struct cg__chunk *c)
{
	if (!c->pages)
		return;
	free(c->pages);
	c->pages = NULL;
	r->diverged--;
}

/* Give a uniform chunk a nibble array so its pages can differ. */
static int chunk_diverge(struct cg__region *r, struct cg__chunk *c)
{
	if (c->pages)
		return 0;
	c->pages = malloc(nibble_bytes(r));
	if (!c->pages)
		return -ENOMEM;
	r->diverged++;
	memset(c->pages, c->state | (c->state << 4), nibble_bytes(r));
	return 0;
}

/*
 * Drop the nibble array again once every page of the region in the chunk
 * agrees.  Pages of a chunk outside the region (one starting or ending
 * mid-chunk) are never updated: they must not keep it diverged.
 */
static void chunk_try_collapse(struct cg__region *r, struct cg__chunk *c,
			       uint64_t cs)
{
	uint64_t ce = cs + chunk_size(r);
	uint64_t lo = cs > r->start ? cs : r->start;
	uint64_t hi = ce < r->start + r->len ? ce : r->start + r->len;
	size_t i = (lo - cs) >> CG_PAGE_SHIFT, end = (hi - cs) >> CG_PAGE_SHIFT;
	unsigned first = nibble_get(c->pages, i);

	for (i++; i < end; i++)
		if (nibble_get(c->pages, i) != first)
			return;
	c->state = (uint8_t)first;
	chunk_uniform(r, c);
}

static void chunk_split(struct cg__region *r, struct cg__chunk *c)
{
	if (c->huge) {
		c->huge = false;
		r->splits++;
	}
}

int cg__region_update(struct cg__region *r, uint64_t start, uint64_t len,
		      unsigned clear, unsigned set)
{
	uint64_t end = start + len;

	if (start < r->start)
		start = r->start;
	if (end > r->start + r->len)
		end = r->start + r->len;
	if (r->kind == CG_RK_HUGETLB) {
		start = ALIGN_DOWN(start, 1ULL << r->unit_shift);
		end = ALIGN_UP(end, 1ULL << r->unit_shift);
	}
	while (start < end) {
		size_t idx = chunk_index(r, start);
		struct cg__chunk *c = &r->chunks[idx];
		uint64_t cs = chunk_start(r, idx), ce = cs + chunk_size(r);
		uint64_t lo = cs > r->start ? cs : r->start;
		uint64_t hi = ce < r->start + r->len ? ce : r->start + r->len;
		uint64_t stop = end < ce ? end : ce;

		if (start <= lo && stop >= hi && !c->pages) {
			c->state = (uint8_t)((c->state & ~clear) | set);
			/* An emptied chunk is mapped by nothing, PMD or PTE. */
			if (!(c->state & CG_ST_PRESENT))
				c->huge = false;
		} else if (start <= lo && stop >= hi && (clear | set) == CG_ST_ALL) {
			chunk_uniform(r, c);
			c->state = (uint8_t)set;
		} else {
			uint8_t next = (uint8_t)((c->state & ~clear) | set);

			if (!c->pages && next == c->state && !c->huge) {
				start = stop;
				continue;
			}
			chunk_split(r, c);
			if (chunk_diverge(r, c))
				return -ENOMEM;
			for (uint64_t a = start; a < stop; a += CG_PAGE_SIZE) {
				size_t i = (a - cs) >> CG_PAGE_SHIFT;

				nibble_put(c->pages, i,
					   (nibble_get(c->pages, i) & ~clear) | set);
			}
			chunk_try_collapse(r, c, cs);
		}
		start = stop;
	}
	return 0;
}

int cg__region_set_huge(struct cg__region *r, uint64_t addr, bool huge,
			unsigned state)
{
	struct cg__chunk *c = &r->chunks[chunk_index(r, addr)];

	if (r->kind != CG_RK_THP)
		return -EINVAL;
	if (!huge) {
		chunk_split(r, c);
		c->remove_split = false;
		return 0;
	}
	chunk_uniform(r, c);
	c->state = (uint8_t)state;
	c->huge = true;
	c->remove_split = false;
	return 0;
}

int cg__region_removed(struct cg__region *r, uint64_t start, uint64_t len)
{
	uint64_t lo = start > r->start ? start : r->start;
	uint64_t hi = start + len < r->start + r->len ? start + len : r->start + r->len;
	struct cg__chunk *edge[2] = { NULL, NULL };
	int ret;

	if (lo >= hi)
		return 0;
	/* Only the first and last chunks can be covered in part. */
	if (r->kind == CG_RK_THP) {
		edge[0] = &r->chunks[chunk_index(r, lo)];
		edge[1] = &r->chunks[chunk_index(r, hi - 1)];
		for (int i = 0; i < 2; i++)
			if (!edge[i]->huge)
				edge[i] = NULL;
	}
	ret = cg__region_update(r, lo, hi - lo, CG_ST_PRESENT | CG_ST_WP, 0);
	for (int i = 0; i < 2; i++)
		if (edge[i] && !edge[i]->huge)
			edge[i]->remove_split = true;
	return ret;
}

bool cg__region_remove_split(const struct cg__region *r, uint64_t addr)
{
	return r->kind == CG_RK_THP && r->chunks[chunk_index(r, addr)].remove_split;
}

bool cg__region_is_huge(const struct cg__region *r, uint64_t addr)
{
	return r->kind == CG_RK_HUGETLB ||
	       r->chunks[chunk_index(r, addr)].huge;
}

void cg__region_unit(const struct cg__region *r, uint64_t addr,
		     uint64_t *ustart, uint64_t *ulen)
{
	uint64_t size = CG_PAGE_SIZE;

	if (r->kind == CG_RK_HUGETLB)
		size = 1ULL << r->unit_shift;
	else if (cg__region_is_huge(r, addr))
		size = CG_PMD_SIZE;
	*ustart = ALIGN_DOWN(addr, size);
	*ulen = size;
}

/* Accumulates runs and hands each maximal one to the caller. */
struct walker {
	struct cg__run cur;
	cg__run_fn fn;
	void *arg;
};

static int walker_add(struct walker *w, uint64_t start, uint64_t len,
		      unsigned state, bool huge)
{
	int ret;

	if (w->cur.len && w->cur.start + w->cur.len == start &&
	    w->cur.state == state && w->cur.huge == huge) {
		w->cur.len += len;
		return 0;
	}
	if (w->cur.len) {
		ret = w->fn(&w->cur, w->arg);
		if (ret)
			return ret;
	}
	w->cur = (struct cg__run){ start, len, state, huge };
	return 0;
}

/*
 * Where the run of uniform chunks alike to chunk idx ends (idx's own end
 * is stop), before end.  A huge sparse region is mostly one such run: a
 * walk of a 1 TiB region took 30 ms chunk by chunk (perf).
 */
static uint64_t uniform_end(const struct cg__region *r, size_t idx,
			    uint64_t stop, uint64_t end)
{
	const struct cg__chunk *c = &r->chunks[idx];

	for (size_t j = idx + 1; stop < end && j < r->nchunks; j++) {
		const struct cg__chunk *n = &r->chunks[j];

		if (n->pages || n->state != c->state || n->huge != c->huge)
			break;
		stop = chunk_start(r, j) + chunk_size(r) < end
			       ? chunk_start(r, j) + chunk_size(r) : end;
	}
	return stop;
}

int cg__region_walk(const struct cg__region *r, uint64_t start, uint64_t len,
		    cg__run_fn fn, void *arg)
{
	struct walker w = { .fn = fn, .arg = arg };
	uint64_t end = start + len;
	int ret = 0;

	if (start < r->start)
		start = r->start;
	if (end > r->start + r->len)
		end = r->start + r->len;
	while (start < end && !ret) {
		size_t idx = chunk_index(r, start);
		const struct cg__chunk *c = &r->chunks[idx];
		uint64_t cs = chunk_start(r, idx);
		uint64_t stop = cs + chunk_size(r) < end ? cs + chunk_size(r) : end;
		bool huge = c->huge || r->kind == CG_RK_HUGETLB;

		if (!c->pages) {
			stop = uniform_end(r, idx, stop, end);
			ret = walker_add(&w, start, stop - start, c->state, huge);
		} else {
			for (uint64_t a = start; a < stop && !ret; a += CG_PAGE_SIZE)
				ret = walker_add(&w, a, CG_PAGE_SIZE,
						 nibble_get(c->pages,
							    (a - cs) >> CG_PAGE_SHIFT),
						 false);
		}
		start = stop;
	}
	if (!ret && w.cur.len)
		ret = fn(&w.cur, arg);
	return ret;
}

const char *cg__rkind_name(const struct cg__region *r)
{
	if (r->kind == CG_RK_HUGETLB)
		return r->unit_shift == CG_PUD_SHIFT ? "hugetlb 1 GiB" : "hugetlb 2 MiB";
	return r->kind == CG_RK_THP ? "THP" : "4 KiB";
}

size_t cg__region_footprint(const struct cg__region *r)
{
	/* Counted as chunks diverge: quotas ask often, over many regions. */
	return sizeof(*r) + r->nchunks * sizeof(*r->chunks) +
	       r->diverged * nibble_bytes(r);
}

struct copy_ctx {
	struct cg__region *dst;
	int64_t delta;
};

static int copy_run(const struct cg__run *run, void *arg)
{
	struct copy_ctx *cc = arg;
	uint64_t to = run->start + cc->delta, end = to + run->len;
	uint64_t lo = ALIGN_UP(to, CG_PMD_SIZE), hi = ALIGN_DOWN(end, CG_PMD_SIZE);
	int ret = 0;

	/*
	 * A run may join whole PMD-mapped chunks to a part of one cut by the
	 * range.  Only whole chunks landing on whole chunks (the move keeps
	 * the 2 MiB offset) stay PMD-mapped; the kernel splits the rest, and
	 * their state is copied page by page, not dropped.
	 */
	if (!run->huge || cc->dst->kind != CG_RK_THP ||
	    (cc->delta & (CG_PMD_SIZE - 1)) || lo >= hi)
		return cg__region_update(cc->dst, to, run->len, CG_ST_ALL,
					 run->state);
	if (to < lo)
		ret = cg__region_update(cc->dst, to, lo - to, CG_ST_ALL, run->state);
	for (uint64_t a = lo; !ret && a < hi; a += CG_PMD_SIZE)
		ret = cg__region_set_huge(cc->dst, a, true, run->state);
	if (!ret && hi < end)
		ret = cg__region_update(cc->dst, hi, end - hi, CG_ST_ALL, run->state);
	return ret;
}

struct cg__region *cg__region_extract(const struct cg__region *r, uint64_t src,
				      uint64_t len, uint64_t dst)
{
	struct cg__region *n = cg__region_new(dst, len, r->kind, r->unit_shift);
	struct copy_ctx cc = { n, (int64_t)(dst - src) };

	if (!n)
		return NULL;
	/* What was not looked at yet moves with the rest. */
	if (r->unlearned < src + len)
		n->unlearned = dst + (r->unlearned > src ? r->unlearned - src : 0);
	n->unlearned_forked = r->unlearned_forked;
	n->wp_unsure = r->wp_unsure;
	if (cg__region_walk(r, src, len, copy_run, &cc)) {
		cg__region_free(n);
		return NULL;
	}
	return n;
}

struct cg__region *cg__region_clone(const struct cg__region *r)
{
	struct cg__region *n = cg__region_extract(r, r->start, r->len, r->start);

	if (n)
		n->splits = r->splits;
	return n;
}

struct collect_ctx {
	unsigned mask, value;
	struct cg__runs *out;
};

static int collect_run(const struct cg__run *run, void *arg)
{
	struct collect_ctx *cc = arg;
	struct cg__runs *o = cc->out;

	if ((run->state & cc->mask) != cc->value)
		return 0;
	if (o->n && o->v[o->n - 1].start + o->v[o->n - 1].len == run->start &&
	    o->v[o->n - 1].huge == run->huge) {
		o->v[o->n - 1].len += run->len;	/* merge across states */
		return 0;
	}
	if (o->n == o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 16;
		struct cg__run *v = realloc(o->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		o->v = v;
		o->cap = cap;
	}
	o->v[o->n++] = *run;
	return 0;
}

int cg__region_collect(const struct cg__region *r, uint64_t start,
		       uint64_t len, unsigned mask, unsigned value,
		       struct cg__runs *out)
{
	struct collect_ctx cc = { mask, value, out };

	memset(out, 0, sizeof(*out));
	return cg__region_walk(r, start, len, collect_run, &cc);
}

void cg__runs_free(struct cg__runs *runs)
{
	free(runs->v);
	memset(runs, 0, sizeof(*runs));
}
