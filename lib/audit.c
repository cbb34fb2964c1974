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

#include "compat.h"
#include "mm_internal.h"
#include "procfs.h"

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

	ret = cg__pagemap_read(a->mm->pagemap_fd, lo, n, pme);
	if (ret)
		return ret;
	pmd_mapped = r->kind == CG_RK_THP && cg__mm_pmd_mapped(a->mm, lo);
	for (size_t i = 0; i < n; i++)
		audit_page(a, cg__region_get(r, lo + (i << CG_PAGE_SHIFT)), pme[i],
			   pmd_mapped);
	return 0;
}

static int audit_region(struct audit_ctx *a, struct cg__region *r,
			uint64_t start, uint64_t end)
{
	int ret = cg__mm_learn(a->mm, r, start, end - start, CG_LEARN_NEW);

	a->gigantic = r->kind == CG_RK_HUGETLB && r->unit_shift == CG_PUD_SHIFT;
	while (!ret && start < end) {
		uint64_t hi = (start & ~(CG_PMD_SIZE - 1)) + CG_PMD_SIZE;

		ret = audit_chunk(a, r, start, hi < end ? hi : end);
		start = hi;
	}
	return ret;
}

int cg__mm_audit(struct cg__mm *mm, uint64_t addr, uint64_t len,
		 struct cg_audit_report *out)
{
	struct audit_ctx a = { .mm = mm, .rep = out };
	uint64_t end = addr + len;
	int ret = 0;

	if (!len || (addr | len) & (CG_PAGE_SIZE - 1))
		return -EINVAL;
	if (end < addr)
		return -EOVERFLOW;
	if (!cg__mm_covered(mm, addr, len))
		return -ENOENT;
	if (mm->pagemap_fd < 0)
		return -ESRCH;
	memset(out, 0, sizeof(*out));
	out->truth = mm->kpageflags_fd >= 0 && mm->pfn_visible
			     ? CG_TRUTH_KPAGEFLAGS
			     : CG_TRUTH_MAPCOUNT;
	while (!ret && addr < end) {
		struct cg__region *r = cg__mm_find(mm, addr);
		uint64_t stop = r->start + r->len < end ? r->start + r->len : end;

		ret = audit_region(&a, r, addr, stop);
		addr = stop;
	}
	if (ret)
		return ret;
	mm->stats.audits++;
	mm->stats.mismatches += out->unsafe + out->conservative;
	return 0;
}
