/* SPDX-License-Identifier: MIT */
/* What /proc says about a process's memory: VMAs, page tables, page flags. */
#ifndef CG_PROCFS_H
#define CG_PROCFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pages.h"

struct cg__vma_kind {
	enum cg__rkind kind;
	unsigned unit_shift;	/* 12, 21 or 30 */
	/* Shared_Hugetlb of the VMAs: 0 means no hugetlb page is shared. */
	uint64_t shared_hugetlb_kb;
};

/*
 * /proc/PID/smaps (0 = self), opened: an fd or -errno.  Like pagemap, the
 * fd stays on the address space it was opened on: once the process execs
 * or exits it reads nothing, and the functions below return -ESRCH, so a
 * pid that now names another program is never read by mistake.
 */
int cg__smaps_open(pid_t pid);

/*
 * Every read of smaps below costs every VMA of the process up to the
 * range, not only the range's: from now on a read gives up with -EMLINK
 * past vmas of them (0, the default: no bound).  The daemon bounds what a
 * client that cuts its memory into pieces costs its loop; an engine in
 * the process reads its own.
 */
void cg__smaps_limit(unsigned vmas);

/*
 * Classify [addr, addr+len) from smaps_fd (cg__smaps_open()).  Returns 0,
 * -ENOMEM (a hole), -EINVAL (not private anonymous, or VMAs of different
 * kinds), -ESRCH (that address space is gone), -EMLINK (more VMAs than
 * cg__smaps_limit() lets a read take).
 */
int cg__vma_probe(int smaps_fd, uint64_t addr, uint64_t len,
		  struct cg__vma_kind *out);

/*
 * Whether the VMA containing addr has the two-letter VmFlags flag
 * of /proc/PID/smaps (e.g. "uw": registered for userfaultfd write
 * protection), from smaps_fd: 1 or 0, -ENOENT when no VMA contains addr,
 * -ESRCH when the address space is gone, -EMLINK (cg__smaps_limit()).
 */
int cg__vma_flag(int smaps_fd, uint64_t addr, const char *flag);

/*
 * Whether any VMA overlapping [lo, hi) has one of flags (space-separated,
 * e.g. "um ui"), in one pass over smaps: 1, 0, -ESRCH or -EMLINK.
 */
int cg__vma_flag_in(int smaps_fd, uint64_t lo, uint64_t hi, const char *flags);

/*
 * Huge pages of 1 << shift bytes that an unreservered allocation (a COW
 * copy) can take: free_hugepages less resv_hugepages.  -errno on error.
 */
long cg__hugetlb_spare(unsigned shift);

/* Open /proc/PID/pagemap (pid 0: self).  Returns an fd or -errno. */
int cg__pagemap_open(pid_t pid);

/* Read n pagemap entries from addr.  Returns 0 or -errno. */
int cg__pagemap_read(int fd, uint64_t addr, size_t n, uint64_t *out);

/*
 * Read one /proc/kpageflags entry: for a tail page of a hugetlb page, its
 * head's (the flags of the whole huge page, as 6.18 reports them for every
 * page; 6.1 reports each page's own).  Returns 0 or -errno.
 */
int cg__kpageflags_read(int fd, uint64_t pfn, uint64_t *out);

/*
 * Whether PAGEMAP_SCAN works on fd, asked of the kernel once per process.
 * Then cg__pmd_mapped() reports for each
 * 2 MiB chunk of [start, start+len) (2 MiB aligned) whether it is mapped by
 * one PMD: bit i of *mask (up to 64 chunks).  Returns 0 or -errno
 * (-EOPNOTSUPP without PAGEMAP_SCAN).
 */
bool cg__pagemap_scan_works(int fd);
int cg__pmd_mapped(int fd, uint64_t start, uint64_t len, uint64_t *mask);

/*
 * The present or swapped runs of [start, end) (page aligned), per
 * PAGEMAP_SCAN: at most nvec into vec, and *walk_end, where the scan
 * stopped (end, or short of it when vec filled).  Returns the number of
 * runs or -errno.  Only where cg__pagemap_scan_works().
 */
struct page_region;
int cg__pagemap_present(int fd, uint64_t start, uint64_t end,
			struct page_region *vec, size_t nvec, uint64_t *walk_end);
/*
 * The holes of [start, end): the runs neither present nor swapped, as
 * cg__pagemap_present() gives the others.
 */
int cg__pagemap_holes(int fd, uint64_t start, uint64_t end,
		      struct page_region *vec, size_t nvec, uint64_t *walk_end);
/*
 * The first page of [start, end) that is not present (absent or swapped)
 * into *hole: 1, or 0 when every page is, or -errno.  One PAGEMAP_SCAN,
 * however large the range; only where cg__pagemap_scan_works().
 */
int cg__pagemap_first_absent(int fd, uint64_t start, uint64_t end,
			     uint64_t *hole);
/*
 * The same for the first page present (or swapped), and the first written
 * since it was protected (cg__pagemap_written()'s sense).
 */
int cg__pagemap_first_present(int fd, uint64_t start, uint64_t end,
			      uint64_t *at);
int cg__pagemap_first_written(int fd, uint64_t start, uint64_t end,
			      uint64_t *at);
/*
 * The runs of [start, end) written since they were last write-protected,
 * where the uffd resolves write faults itself (UFFD_FEATURE_WP_ASYNC): at
 * most nvec into vec, and *walk_end, where the scan stopped.  The zero page is never reported (a
 * read maps it unprotected where no marker was left).  Returns the number
 * of runs or -errno: -EPERM where part of the range is not registered for
 * asynchronous write protection.
 */
int cg__pagemap_written(int fd, uint64_t start, uint64_t end,
			struct page_region *vec, size_t nvec, uint64_t *walk_end);
/*
 * Write-protect every present or swapped page of [start, end) under
 * asynchronous write protection, and report in the same call, atomically
 * against writers, which were written before: the present runs into vec
 * (at most nvec), each with PAGE_IS_WRITTEN and PAGE_IS_PFNZERO as they
 * apply, and *walk_end.  Holes get no marker.  Returns runs or -errno.
 */
int cg__pagemap_protect(int fd, uint64_t start, uint64_t end,
			struct page_region *vec, size_t nvec, uint64_t *walk_end);

#endif
