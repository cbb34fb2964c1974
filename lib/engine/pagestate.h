/* SPDX-License-Identifier: MIT */
/*
 * The page-state engine: what cowguard believes about each page of a
 * registered region.  Pure bookkeeping, no system calls, so that the daemon,
 * the embedded mode and the tests share exactly one implementation.
 *
 * Memory: a region is cut into chunks of 2 MiB (1 GiB for 1 GiB hugetlb).
 * A chunk whose pages all share one state costs 16 bytes; a chunk whose 4 KiB
 * pages differ carries a nibble per page (256 bytes).  So a sparse or huge
 * region costs per 2 MiB, and a fully diverged one 4 bits per 4 KiB page.
 */
#ifndef CG_PAGESTATE_H
#define CG_PAGESTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernel/pages.h"

/* One nibble of state per tracked page. */
enum {
	CG_ST_PRESENT = 1 << 0,
	CG_ST_EXCL = 1 << 1,	/* our PageAnonExclusive */
	CG_ST_DIRTY = 1 << 2,
	CG_ST_WP = 1 << 3,
	CG_ST_ALL = 0xf,
};

struct cg__chunk {
	uint8_t state;		/* every page's state while pages == NULL */
	bool huge;		/* THP chunk mapped by one PMD */
	/*
	 * Split by a REMOVE event of part of it.  The kernel may not have
	 * split it: MADV_FREE leaves a THP it cannot split (an extra
	 * reference) whole, mapped and untouched.
	 */
	bool remove_split;
	uint8_t *pages;		/* nibble per 4 KiB page, or NULL */
};

struct cg__region {
	uint64_t start, len;
	enum cg__rkind kind;
	unsigned unit_shift;	/* 12, or the huge page shift */
	unsigned chunk_shift;	/* 21, or 30 for 1 GiB hugetlb */
	uint64_t base;		/* start rounded down to a chunk */
	size_t nchunks;
	struct cg__chunk *chunks;
	uint64_t splits;	/* huge chunks followed down to 4 KiB */
	size_t diverged;	/* chunks with a nibble array */
	/*
	 * From here on, not looked at since a lazy registration, or since a
	 * fork when unlearned_forked (lib/engine/learn.c).
	 */
	uint64_t unlearned;
	bool unlearned_forked;
	/*
	 * Asynchronous write protection (lib/engine/written.c): a protection
	 * failed part-way here, so the kernel's uffd-wp bits may disagree
	 * with CG_ST_WP, and a page read as written is judged by the kernel
	 * until the whole region is protected again.
	 */
	bool wp_unsure;
};

/* A run of pages that share one state, as walks report them. */
struct cg__run {
	uint64_t start, len;
	unsigned state;
	bool huge;		/* part of a PMD-mapped THP or a hugetlb page */
};

typedef int (*cg__run_fn)(const struct cg__run *run, void *arg);

struct cg__region *cg__region_new(uint64_t start, uint64_t len,
				  enum cg__rkind kind, unsigned unit_shift);
void cg__region_free(struct cg__region *r);
bool cg__region_contains(const struct cg__region *r, uint64_t addr,
			 uint64_t len);

/* The state of the page containing addr (addr inside r). */
unsigned cg__region_get(const struct cg__region *r, uint64_t addr);

/*
 * Clear then set state bits on every page of [start, start+len) clipped to r.
 * Hugetlb units are indivisible: touching part of one touches all of it.
 * A PMD-mapped THP chunk touched in part is split first, because the kernel
 * splits the PMD for a partial operation (but see cg__region_removed()).
 * Returns 0 or -ENOMEM.
 */
int cg__region_update(struct cg__region *r, uint64_t start, uint64_t len,
		      unsigned clear, unsigned set);

/*
 * Mark a THP chunk PMD-mapped (pages become one uniform state) or split, as
 * the kernel was seen to map it (which settles cg__region_remove_split()).
 */
int cg__region_set_huge(struct cg__region *r, uint64_t addr, bool huge,
			unsigned state);
bool cg__region_is_huge(const struct cg__region *r, uint64_t addr);

/*
 * A REMOVE event (MADV_DONTNEED, MADV_FREE) of [start, start+len): its
 * pages are no longer known present nor protected; what else we knew
 * (exclusive, dirty) stays for learning.  A THP chunk removed in part is
 * split and remembered so: MADV_FREE leaves a THP it cannot split whole,
 * and cg__region_remove_split() tells learning that such a chunk, found
 * PMD-mapped again, kept its history.  Returns 0 or -ENOMEM.
 */
int cg__region_removed(struct cg__region *r, uint64_t start, uint64_t len);
bool cg__region_remove_split(const struct cg__region *r, uint64_t addr);

/* The tracked unit around addr: a 4 KiB page, PMD-mapped THP or hugetlb page. */
void cg__region_unit(const struct cg__region *r, uint64_t addr,
		     uint64_t *ustart, uint64_t *ulen);

/* Call fn for maximal runs of equal state in [start, start+len) ∩ r. */
int cg__region_walk(const struct cg__region *r, uint64_t start, uint64_t len,
		    cg__run_fn fn, void *arg);

/* "4 KiB", "THP", "hugetlb 2 MiB" or "hugetlb 1 GiB". */
const char *cg__rkind_name(const struct cg__region *r);

/* Bytes of state kept for r, for quotas and the memory benchmark. */
size_t cg__region_footprint(const struct cg__region *r);

/* Move the state of [src, src+len) of r into a new region at dst (mremap). */
struct cg__region *cg__region_extract(const struct cg__region *r, uint64_t src,
				      uint64_t len, uint64_t dst);

/* A deep copy (the child's view after fork). */
struct cg__region *cg__region_clone(const struct cg__region *r);


/* Runs of [start, start+len) whose (state & mask) == value, in a new array. */
struct cg__runs {
	struct cg__run *v;
	size_t n, cap;
};
int cg__region_collect(const struct cg__region *r, uint64_t start,
		       uint64_t len, unsigned mask, unsigned value,
		       struct cg__runs *out);
void cg__runs_free(struct cg__runs *runs);

#endif
