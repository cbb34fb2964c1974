/* SPDX-License-Identifier: MIT */
/* The page sizes of x86-64 and arm64 (4 KiB base), and the kinds of memory. */
#ifndef CG_PAGES_H
#define CG_PAGES_H

#define CG_PAGE_SHIFT 12
#define CG_PAGE_SIZE (1ULL << CG_PAGE_SHIFT)
#define CG_PMD_SHIFT 21
#define CG_PMD_SIZE (1ULL << CG_PMD_SHIFT)
#define CG_PUD_SHIFT 30

/* What backs a range: how the kernel maps it, so how it is tracked. */
enum cg__rkind {
	CG_RK_4K,	/* small pages, tracked per 4 KiB */
	CG_RK_THP,	/* 2 MiB chunks, each PMD-mapped (uniform) or split */
	CG_RK_HUGETLB,	/* units of the huge page size, never split */
};

#endif
