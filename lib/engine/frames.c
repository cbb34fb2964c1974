// SPDX-License-Identifier: MIT
/*
 * The frame table of pinned units (frames.h): 2 MiB chunks of 512 slots,
 * found through a table of chunk pointers with linear probing, at most
 * half full, and backward-shift deletion so that no tombstones pile up
 * under pins that come and go.  A hugetlb page takes the first slot of
 * its first chunk, and a chunk begun at its first slot is made with that
 * slot alone, grown to 512 when another is held: a 2 MiB hugetlb page
 * costs a hundred bytes, not 2 KiB (a pin of 1 GiB of them 1 MiB; and
 * after a fork each page of it written again is a fault).
 *
 * A slot keeps a frame's low 32 bits; the upper bits are kept once for
 * the chunk, and a chunk whose frames differ there (more than 16 TiB of
 * memory) keeps its frames whole instead.
 */
#include <errno.h>
#include <stdlib.h>

#include "frames.h"
#include "pagestate.h"

#define CHUNK_UNITS (CG_PMD_SIZE >> CG_PAGE_SHIFT)
#define WORD_BITS 64

struct cg__frame_chunk {
	uint64_t base;			/* 2 MiB aligned */
	uint64_t *wide;			/* whole frames, or NULL */
	uint32_t hi;			/* every frame's upper bits, unless wide */
	uint16_t held;			/* slots in use */
	uint16_t slots;			/* of lo[] (and wide[]): 1 or 512 */
	uint64_t used[CHUNK_UNITS / WORD_BITS];
	uint32_t lo[];
};

static size_t chunk_size(size_t slots)
{
	return sizeof(struct cg__frame_chunk) + slots * sizeof(uint32_t);
}

static size_t home_of(const struct cg__frames *t, uint64_t base)
{
	uint64_t h = (base >> CG_PMD_SHIFT) * 0x9E3779B97F4A7C15ULL;

	return (size_t)(h ^ (h >> 32)) & (t->cap - 1);
}

static size_t index_of(const struct cg__frames *t, uint64_t base)
{
	size_t i = home_of(t, base);

	while (t->v[i] && t->v[i]->base != base)
		i = (i + 1) & (t->cap - 1);
	return i;
}

static struct cg__frame_chunk *find(const struct cg__frames *t, uint64_t addr)
{
	return t && t->cap ? t->v[index_of(t, addr & ~(CG_PMD_SIZE - 1))]
			   : NULL;
}

/* Room for one more chunk, the table at most half full. */
static int grow(struct cg__frames *t)
{
	struct cg__frames old = *t;
	size_t cap = t->cap ? t->cap : 16;

	while ((t->n + 1) * 2 > cap)
		cap *= 2;
	if (cap == t->cap)
		return 0;
	t->v = calloc(cap, sizeof(*t->v));
	if (!t->v) {
		*t = old;
		return -ENOMEM;
	}
	t->cap = cap;
	for (size_t i = 0; i < old.cap; i++)
		if (old.v[i])
			t->v[index_of(t, old.v[i]->base)] = old.v[i];
	free(old.v);
	return 0;
}

static size_t slot_of(uint64_t addr)
{
	return (addr >> CG_PAGE_SHIFT) & (CHUNK_UNITS - 1);
}

/* Room in c for all 512 slots. */
static struct cg__frame_chunk *widen_slots(struct cg__frames *t,
					   struct cg__frame_chunk *c)
{
	size_t at = index_of(t, c->base);
	struct cg__frame_chunk *g = realloc(c, chunk_size(CHUNK_UNITS));
	uint64_t *wide;

	if (!g)
		return NULL;
	t->v[at] = g;
	if (g->wide) {
		wide = realloc(g->wide, CHUNK_UNITS * sizeof(*wide));
		if (!wide)
			return NULL;	/* g keeps one slot: still sound */
		g->wide = wide;
	}
	g->slots = CHUNK_UNITS;
	t->small--;
	return g;
}

static struct cg__frame_chunk *get(struct cg__frames **tp, uint64_t addr)
{
	uint64_t base = addr & ~(CG_PMD_SIZE - 1);
	struct cg__frame_chunk *c = find(*tp, addr);
	struct cg__frames *t = *tp;
	size_t slots = slot_of(addr) ? CHUNK_UNITS : 1;

	if (c)
		return slot_of(addr) < c->slots ? c : widen_slots(t, c);
	if (!t && !(t = *tp = calloc(1, sizeof(*t))))
		return NULL;
	if (grow(t) || !(c = calloc(1, chunk_size(slots))))
		return NULL;
	c->base = base;
	c->slots = (uint16_t)slots;
	t->small += slots == 1;
	t->v[index_of(t, base)] = c;
	t->n++;
	return c;
}

/* Free chunk slot i, moving back the chunks its removal would hide. */
static void drop_chunk(struct cg__frames *t, size_t i)
{
	size_t j = i;

	t->small -= t->v[i]->slots == 1;
	free(t->v[i]->wide);
	free(t->v[i]);
	t->v[i] = NULL;
	t->n--;
	for (;;) {
		size_t home;

		j = (j + 1) & (t->cap - 1);
		if (!t->v[j])
			return;
		home = home_of(t, t->v[j]->base);
		/* Stays if its home lies cyclically in (i, j]. */
		if (i <= j ? (home > i && home <= j) : (home > i || home <= j))
			continue;
		t->v[i] = t->v[j];
		t->v[j] = NULL;
		i = j;
	}
}

static bool used(const struct cg__frame_chunk *c, size_t i)
{
	return c->used[i / WORD_BITS] >> (i % WORD_BITS) & 1;
}

static uint64_t frame_at(const struct cg__frame_chunk *c, size_t i)
{
	return c->wide ? c->wide[i] : (uint64_t)c->hi << 32 | c->lo[i];
}

/* Keep every frame of c whole: one differs from the others above 32 bits. */
static int widen(struct cg__frames *t, struct cg__frame_chunk *c)
{
	c->wide = malloc(c->slots * sizeof(*c->wide));
	if (!c->wide)
		return -ENOMEM;
	for (size_t i = 0; i < c->slots; i++)
		c->wide[i] = (uint64_t)c->hi << 32 | c->lo[i];
	t->wide++;
	return 0;
}

static int put(struct cg__frames *t, struct cg__frame_chunk *c, size_t i,
	       uint64_t frame)
{
	if (!c->held && !c->wide)
		c->hi = (uint32_t)(frame >> 32);
	if (!c->wide && frame >> 32 != c->hi && widen(t, c))
		return -ENOMEM;
	if (c->wide)
		c->wide[i] = frame;
	else
		c->lo[i] = (uint32_t)frame;
	return 0;
}

int cg__frames_hold(struct cg__frames **t, uint64_t addr, uint64_t frame,
		    bool *replaced)
{
	struct cg__frame_chunk *c = get(t, addr);
	size_t i = slot_of(addr);
	bool was = c && used(c, i);
	int ret;

	if (!c)
		return -ENOMEM;
	*replaced = was && frame_at(c, i) != frame;
	ret = put(*t, c, i, frame);
	if (ret || was)
		return ret;
	c->used[i / WORD_BITS] |= 1ULL << (i % WORD_BITS);
	c->held++;
	return 0;
}

/* Let go of the slots [i, end) of c, and of c once none is held. */
static void forget_slots(struct cg__frames *t, struct cg__frame_chunk *c,
			 size_t i, size_t end)
{
	/* A word at a time: a release forgets a chunk's 512 slots at once. */
	while (i < end) {
		size_t w = i / WORD_BITS, b = i % WORD_BITS;
		size_t n = end - i < WORD_BITS - b ? end - i : WORD_BITS - b;
		uint64_t mask = (n == WORD_BITS ? ~0ULL : (1ULL << n) - 1) << b;

		c->held -= (uint16_t)__builtin_popcountll(c->used[w] & mask);
		c->used[w] &= ~mask;
		i += n;
	}
	if (c->held)
		return;
	if (c->wide)
		t->wide--;
	drop_chunk(t, index_of(t, c->base));
}

void cg__frames_forget(struct cg__frames *t, uint64_t start, uint64_t end)
{
	for (uint64_t base = start & ~(CG_PMD_SIZE - 1); base < end;
	     base += CG_PMD_SIZE) {
		struct cg__frame_chunk *c = find(t, base);
		uint64_t lo = start > base ? start : base;
		uint64_t hi = end - base < CG_PMD_SIZE ? end : base + CG_PMD_SIZE;

		if (c)
			forget_slots(t, c, (lo - base) >> CG_PAGE_SHIFT,
				     (hi - base) >> CG_PAGE_SHIFT);
	}
}

bool cg__frames_frame(const struct cg__frames *t, uint64_t addr,
		      uint64_t *frame)
{
	struct cg__frame_chunk *c = find(t, addr);
	size_t i = slot_of(addr);

	if (!c || !used(c, i))
		return false;
	*frame = frame_at(c, i);
	return true;
}

size_t cg__frames_footprint(const struct cg__frames *t)
{
	return t ? sizeof(*t) + t->cap * sizeof(*t->v) +
			   (t->n - t->small) * chunk_size(CHUNK_UNITS) +
			   t->small * chunk_size(1) +
			   t->wide * CHUNK_UNITS * sizeof(uint64_t)
		 : 0;
}

void cg__frames_free(struct cg__frames **t)
{
	if (*t) {
		for (size_t i = 0; i < (*t)->cap; i++)
			if ((*t)->v[i]) {
				free((*t)->v[i]->wide);
				free((*t)->v[i]);
			}
		free((*t)->v);
	}
	free(*t);
	*t = NULL;
}
