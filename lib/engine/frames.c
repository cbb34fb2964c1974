// SPDX-License-Identifier: MIT
/*
 * The frame table of pinned units (frames.h): 2 MiB chunks of 512 slots,
 * found through a table of chunk pointers with linear probing, at most
 * half full, and backward-shift deletion so that no tombstones pile up
 * under pins that come and go.  A hugetlb page takes the first slot of
 * its first chunk.
 */
#include <errno.h>
#include <stdlib.h>

#include "frames.h"
#include "pagestate.h"

#define CHUNK_UNITS (CG_PMD_SIZE >> CG_PAGE_SHIFT)

struct slot {
	uint64_t frame;			/* at the first pin that holds it */
	uint32_t refs;			/* pins holding it */
	uint32_t shift;			/* the unit's size */
};

struct cg__frame_chunk {
	uint64_t base;			/* 2 MiB aligned */
	uint32_t held;			/* slots with refs */
	struct slot s[CHUNK_UNITS];
};

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

static struct cg__frame_chunk *get(struct cg__frames **tp, uint64_t addr)
{
	uint64_t base = addr & ~(CG_PMD_SIZE - 1);
	struct cg__frame_chunk *c = find(*tp, addr);
	struct cg__frames *t = *tp;

	if (c)
		return c;
	if (!t && !(t = *tp = calloc(1, sizeof(*t))))
		return NULL;
	if (grow(t) || !(c = calloc(1, sizeof(*c))))
		return NULL;
	c->base = base;
	t->v[index_of(t, base)] = c;
	t->n++;
	return c;
}

/* Free chunk slot i, moving back the chunks its removal would hide. */
static void drop_chunk(struct cg__frames *t, size_t i)
{
	size_t j = i;

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

static struct slot *slot_of(struct cg__frame_chunk *c, uint64_t addr)
{
	return &c->s[(addr >> CG_PAGE_SHIFT) & (CHUNK_UNITS - 1)];
}

int cg__frames_hold(struct cg__frames **t, uint64_t addr, unsigned shift,
		    uint64_t frame, bool *replaced)
{
	struct cg__frame_chunk *c = get(t, addr);
	struct slot *s;

	if (!c)
		return -ENOMEM;
	s = slot_of(c, addr);
	*replaced = s->refs && s->frame != frame;
	if (!s->refs) {
		s->shift = shift;
		c->held++;
	}
	s->frame = frame;
	s->refs++;
	return 0;
}

uint64_t cg__frames_release(struct cg__frames *t, uint64_t addr)
{
	struct cg__frame_chunk *c = find(t, addr);
	struct slot *s = c ? slot_of(c, addr) : NULL;
	uint64_t step;

	if (!s || !s->refs)
		return CG_PAGE_SIZE;
	step = 1ULL << s->shift;
	if (!--s->refs && !--c->held)
		drop_chunk(t, index_of(t, c->base));
	return step;
}

bool cg__frames_frame(const struct cg__frames *t, uint64_t addr,
		      uint64_t *frame)
{
	struct cg__frame_chunk *c = find(t, addr);
	struct slot *s = c ? slot_of(c, addr) : NULL;

	if (!s || !s->refs)
		return false;
	*frame = s->frame;
	return true;
}

size_t cg__frames_footprint(const struct cg__frames *t)
{
	return t ? sizeof(*t) + t->cap * sizeof(*t->v) +
			   t->n * sizeof(struct cg__frame_chunk)
		 : 0;
}

void cg__frames_free(struct cg__frames **t)
{
	if (*t) {
		for (size_t i = 0; i < (*t)->cap; i++)
			free((*t)->v[i]);
		free((*t)->v);
	}
	free(*t);
	*t = NULL;
}
