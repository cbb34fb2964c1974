// SPDX-License-Identifier: MIT
/*
 * The audit: the engine's belief about each 4 KiB page against the kernel's.
 *
 * The kernel's truth is PageAnonExclusive, which /proc/kpageflags shows to
 * root as bit 34 of an anonymous page.  kpageflags describes the folio, not
 * the page: exact for small pages, hugetlb and PMD-mapped THP, but a THP
 * mapped by PTEs shows the head's flag for every subpage.  There only
 * pagemap's "mapped once" bit being clear is certain (mapped shared).
 * Without root, that bit is all there is: it can convict an "exclusive"
 * claim, never confirm one.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"
#include "kernel/clock.h"
#include "kernel/compat.h"
#include "kernel/procfs.h"

#define CHUNK_PAGES (CG_PMD_SIZE >> CG_PAGE_SHIFT)

enum verdict { V_SHARED, V_EXCLUSIVE, V_UNKNOWABLE };

struct audit_ctx {
	struct cg__mm *mm;
	struct cg_audit_report *rep;
	bool gigantic;		/* auditing a 1 GiB hugetlb region */
};

static enum verdict by_mapcount(uint64_t pme, bool gigantic)
{
	/* Measured on 6.18: bit 56 is 0 for every 1 GiB hugetlb page. */
	if (gigantic)
		return V_UNKNOWABLE;
	if (!(pme & PM_MMAP_EXCLUSIVE))
		return V_SHARED;
	/* Mapped once: after a fork whose child exited, still COW-shared. */
	return V_UNKNOWABLE;
}

static enum verdict kernel_verdict(struct audit_ctx *a, uint64_t pme,
				   bool pmd_mapped)
{
	uint64_t pfn = pme & PM_PFN_MASK, kpf;

	if (a->rep->truth != CG_TRUTH_KPAGEFLAGS || !pfn ||
	    cg__kpageflags_read(a->mm->kpageflags_fd, pfn, &kpf))
		return by_mapcount(pme, a->gigantic);
	if (kpf & (1ULL << KPF_ZERO_PAGE_BIT))
		return V_SHARED;
	if ((kpf & (1ULL << KPF_THP_BIT)) && !pmd_mapped) {
		/* A PTE-mapped THP subpage: the flag is the head's. */
		return (pme & PM_MMAP_EXCLUSIVE) ? V_UNKNOWABLE : V_SHARED;
	}
	if ((kpf & (1ULL << KPF_ANON_BIT)) &&
	    (kpf & (1ULL << KPF_ANON_EXCLUSIVE_BIT)))
		return V_EXCLUSIVE;
	return V_SHARED;
}

static void audit_page(struct audit_ctx *a, unsigned st, uint64_t pme,
		       bool pmd_mapped)
{
	struct cg_audit_report *rep = a->rep;
	bool engine_present = st & CG_ST_PRESENT;
	bool engine_excl = engine_present && (st & CG_ST_EXCL);
	enum verdict v;

	rep->pages++;
	if (!(pme & PM_PRESENT)) {
		/* A swapped page keeps its exclusivity: nothing to compare. */
		if (pme & PM_SWAPPED)
			rep->unknowable++;
		else if (engine_present)
			rep->presence++;
		return;
	}
	rep->present++;
	if (!engine_present)
		rep->presence++;
	v = kernel_verdict(a, pme, pmd_mapped);
	if (v == V_UNKNOWABLE) {
		rep->unknowable++;
		return;
	}
	rep->exact++;
	if (engine_excl && v == V_SHARED)
		rep->unsafe++;
	else if (!engine_excl && v == V_EXCLUSIVE)
		rep->conservative++;
}

static int audit_chunk(struct audit_ctx *a, struct cg__region *r, uint64_t lo,
		       uint64_t hi)
{
	uint64_t pme[CHUNK_PAGES];
	size_t n = (hi - lo) >> CG_PAGE_SHIFT;
	bool pmd_mapped;
	int ret;

	/* Being moved in (lib/engine/move.c): neither here nor there yet. */
	if (cg__mm_move_holds(a->mm, lo)) {
		a->rep->pages += n;
		a->rep->unknowable += n;
		return 0;
	}
	ret = cg__pagemap_read(a->mm->pagemap_fd, lo, n, pme);
	if (ret)
		return ret;
	pmd_mapped = r->kind == CG_RK_THP && cg__mm_pmd_mapped(a->mm, lo);
	for (size_t i = 0; i < n; i++)
		audit_page(a, cg__region_get(r, lo + (i << CG_PAGE_SHIFT)), pme[i],
			   pmd_mapped);
	return 0;
}

/*
 * Audit [start, end) of r, learned first; with mm->learn_until set, only
 * as far as learning got in time, and up to the first 2 MiB boundary past
 * it.  Returns where it stopped, or -errno.
 */
static int64_t audit_region(struct audit_ctx *a, struct cg__region *r,
			    uint64_t start, uint64_t end)
{
	uint64_t until = a->mm->learn_until;
	int ret;

	a->mm->learn_stopped = 0;
	ret = cg__mm_learn(a->mm, r, start, end - start, CG_LEARN_NEW);
	if (a->mm->learn_stopped)
		end = a->mm->learn_stopped;
	a->gigantic = r->kind == CG_RK_HUGETLB && r->unit_shift == CG_PUD_SHIFT;
	while (!ret && start < end) {
		uint64_t hi = (start & ~(CG_PMD_SIZE - 1)) + CG_PMD_SIZE;

		/* A chunk at a time, so that a slice of an audit stays short. */
		ret = cg__mm_collect(a->mm, start, (hi < end ? hi : end) - start);
		if (!ret)
			ret = audit_chunk(a, r, start, hi < end ? hi : end);
		start = hi < end ? hi : end;
		if (until && cg__now_ns() > until)
			break;
	}
	return ret ? ret : (int64_t)start;
}

int cg__mm_audit_begin(const struct cg__mm *mm, uint64_t addr, uint64_t len,
		       struct cg_audit_report *out)
{
	if (!len || (addr | len) & (CG_PAGE_SIZE - 1))
		return -EINVAL;
	if (addr + len < addr)
		return -EOVERFLOW;
	if (!cg__mm_covered(mm, addr, len))
		return -ENOENT;
	if (mm->pagemap_fd < 0)
		return -ESRCH;
	memset(out, 0, sizeof(*out));
	out->truth = mm->kpageflags_fd >= 0 && mm->pfn_visible
			     ? CG_TRUTH_KPAGEFLAGS
			     : CG_TRUTH_MAPCOUNT;
	return 0;
}

int cg__mm_audit_part(struct cg__mm *mm, uint64_t *pos, uint64_t end,
		      struct cg_audit_report *out, uint64_t until_ns)
{
	struct audit_ctx a = { .mm = mm, .rep = out };
	int64_t done = 0;

	/* Unmapped since the audit began: the rest cannot be audited. */
	if (*pos < end && !cg__mm_covered(mm, *pos, end - *pos))
		return -ENOENT;
	mm->learn_until = until_ns;
	while (*pos < end && done >= 0) {
		struct cg__region *r = cg__mm_find(mm, *pos);
		uint64_t stop = r->start + r->len < end ? r->start + r->len : end;

		done = audit_region(&a, r, *pos, stop);
		if (done > 0)
			*pos = (uint64_t)done;
		if (until_ns && cg__now_ns() > until_ns)
			break;
	}
	mm->learn_until = mm->learn_stopped = 0;
	if (done < 0)
		return (int)done;
	if (*pos < end)
		return 1;
	mm->stats.audits++;
	mm->stats.mismatches += out->unsafe + out->conservative;
	return 0;
}

int cg__mm_audit(struct cg__mm *mm, uint64_t addr, uint64_t len,
		 struct cg_audit_report *out)
{
	int ret = cg__mm_audit_begin(mm, addr, len, out);

	return ret ? ret : cg__mm_audit_part(mm, &addr, addr + len, out, 0);
}
