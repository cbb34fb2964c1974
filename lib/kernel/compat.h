/* SPDX-License-Identifier: MIT */
/*
 * Kernel interfaces newer than the oldest headers we build against (6.1).
 * Everything here is also probed at run time: a constant being defined says
 * nothing about the running kernel.
 */
#ifndef CG_COMPAT_H
#define CG_COMPAT_H

#include <linux/fs.h>
#include <linux/types.h>
#include <linux/userfaultfd.h>

#ifndef UFFD_FEATURE_WP_UNPOPULATED	/* 6.4 */
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_POISON		/* 6.6 */
#define UFFD_FEATURE_POISON (1 << 14)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC		/* 6.7 */
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
#ifndef UFFD_FEATURE_MOVE		/* 6.8 */
#define UFFD_FEATURE_MOVE (1 << 16)
#endif

#ifndef UFFDIO_MOVE
#define _UFFDIO_MOVE (0x05)
struct uffdio_move {
	__u64 dst;
	__u64 src;
	__u64 len;
#define UFFDIO_MOVE_MODE_DONTWAKE ((__u64)1 << 0)
#define UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES ((__u64)1 << 1)
	__u64 mode;
	__s64 move;
};
#define UFFDIO_MOVE _IOWR(UFFDIO, _UFFDIO_MOVE, struct uffdio_move)
#endif

#ifndef UFFDIO_POISON			/* 6.6 */
#define _UFFDIO_POISON (0x08)
struct uffdio_poison {
	struct uffdio_range range;
#define UFFDIO_POISON_MODE_DONTWAKE ((__u64)1 << 0)
	__u64 mode;
	__s64 updated;
};
#define UFFDIO_POISON _IOWR(UFFDIO, _UFFDIO_POISON, struct uffdio_poison)
#endif

#ifndef PAGEMAP_SCAN			/* 6.7 */
#define PAGE_IS_WPALLOWED (1 << 0)
#define PAGE_IS_WRITTEN (1 << 1)
#define PAGE_IS_FILE (1 << 2)
#define PAGE_IS_PRESENT (1 << 3)
#define PAGE_IS_SWAPPED (1 << 4)
#define PAGE_IS_PFNZERO (1 << 5)
#define PAGE_IS_HUGE (1 << 6)
#define PAGE_IS_SOFT_DIRTY (1 << 7)

struct page_region {
	__u64 start;
	__u64 end;
	__u64 categories;
};

#define PM_SCAN_WP_MATCHING (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)

struct pm_scan_arg {
	__u64 size;
	__u64 flags;
	__u64 start;
	__u64 end;
	__u64 walk_end;
	__u64 vec;
	__u64 vec_len;
	__u64 max_pages;
	__u64 category_inverted;
	__u64 category_mask;
	__u64 category_anyof_mask;
	__u64 return_mask;
};
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#endif

/* Binding a client to its process (lib/kernel/process.c). */
#ifndef SO_PEERPIDFD			/* 6.5; 6.1 and 5.10 answer ENOPROTOOPT */
#define SO_PEERPIDFD 77
#endif
#ifndef SYS_pidfd_open			/* 5.3; glibc 2.31 (Debian 11) has no wrapper */
#define SYS_pidfd_open 434
#endif

/* /proc/PID/pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst) */
#define PM_PRESENT (1ULL << 63)
#define PM_SWAPPED (1ULL << 62)
#define PM_FILE_SHARED (1ULL << 61)
#define PM_MMAP_EXCLUSIVE (1ULL << 56)	/* mapped once: NOT PageAnonExclusive */
#define PM_UFFD_WP (1ULL << 57)
#define PM_PFN_MASK ((1ULL << 55) - 1)

/* /proc/kpageflags bits */
#define KPF_ANON_BIT 12
#define KPF_COMPOUND_HEAD_BIT 15
#define KPF_COMPOUND_TAIL_BIT 16
#define KPF_HUGE_BIT 17
#define KPF_ZERO_PAGE_BIT 24
#define KPF_THP_BIT 22
#define KPF_ANON_EXCLUSIVE_BIT 34	/* KPF_MAPPEDTODISK, overloaded for anon */

#endif
