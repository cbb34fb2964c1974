// SPDX-License-Identifier: MIT
/* Test memory of each kind: mapping it, huge page pools, THP. */
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "harness-internal.h"
#include "harness.h"
#include "kernel/procfs.h"
#include "kernel/uffd.h"
#include "sysfile.h"

size_t h_page_size(enum h_kind kind)
{
	switch (kind) {
	case H_4K:
		return 4 * KIB;
	case H_THP:
	case H_HUGETLB_2M:
		return 2 * MIB;
	case H_HUGETLB_1G:
		return GIB;
	}
	return 4 * KIB;
}

void h_stay_on_this_cpu(void)
{
	int cpu = sched_getcpu();
	cpu_set_t set;

	ck_assert_int_ge(cpu, 0);
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	ck_assert_int_eq(sched_setaffinity(0, sizeof(set), &set), 0);
}

void h_flush_lru_batch(void)
{
	/* More new pages than a batch holds (31): it fills and drains. */
	size_t len = 64 * 4 * KIB;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ck_assert(p != MAP_FAILED);
	for (size_t off = 0; off < len; off += 4 * KIB)
		p[off] = 1;
	munmap(p, len);
}

static void *map_aligned(size_t len, size_t align)
{
	char *p = mmap(NULL, len + align, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *q;

	if (p == MAP_FAILED)
		return NULL;
	q = (char *)(((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1));
	if (q > p)
		munmap(p, (size_t)(q - p));
	munmap(q + len, (size_t)(p + align - q));
	return q;
}

/* The uffd features the kernel offers (a throwaway uffd), or 0. */
static uint64_t kernel_uffd_features(void)
{
	struct uffdio_api api = { .api = UFFD_API };
	int fd = cg__uffd_create();

	if (fd < 0)
		return 0;
	if (ioctl(fd, UFFDIO_API, &api))
		api.features = 0;
	close(fd);
	return api.features;
}

bool h_hugetlb_trackable(void)
{
	return kernel_uffd_features() & UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
}

static void *map_hugetlb(size_t len, int size_flag, const char *what)
{
	void *p;

	/* cg_register() refuses what the kernel cannot write-protect. */
	if (!h_hugetlb_trackable()) {
		h_skip("%s hugetlb: needs UFFD_FEATURE_WP_HUGETLBFS_SHMEM (5.19+): "
		       "this kernel cannot write-protect hugetlb pages", what);
		return NULL;
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | size_flag, -1, 0);

	if (p == MAP_FAILED && size_flag == MAP_HUGE_1GB &&
	    access(NR_1G, F_OK)) {
		h_skip("no %s hugetlb pages on this machine (no %s: the CPU "
		       "lacks pdpe1gb, or the kernel gigantic pages)", what,
		       NR_1G);
		return NULL;
	}
	if (p == MAP_FAILED) {
		h_skip("no %s hugetlb pages to be had (%s); %s", what,
		       strerror(errno), geteuid() ? "run as root so the "
		       "harness can raise the pool" : "the pool is short");
		return NULL;
	}
	return p;
}

void *h_map(enum h_kind kind, size_t len, int fill)
{
	void *p = NULL;

	switch (kind) {
	case H_4K:
		p = map_aligned(len, 4 * KIB);
		if (p)
			madvise(p, len, MADV_NOHUGEPAGE);
		break;
	case H_THP:
		p = map_aligned(len, 2 * MIB);
		if (p && madvise(p, len, MADV_HUGEPAGE)) {
			h_skip("THP unavailable: madvise(MADV_HUGEPAGE): %s",
			       strerror(errno));
			munmap(p, len);
			return NULL;
		}
		break;
	case H_HUGETLB_2M:
		return (p = map_hugetlb(len, MAP_HUGE_2MB, "2 MiB")) && fill >= 0
			       ? memset(p, fill, len)
			       : p;
	case H_HUGETLB_1G:
		return (p = map_hugetlb(len, MAP_HUGE_1GB, "1 GiB")) && fill >= 0
			       ? memset(p, fill, len)
			       : p;
	}
	ck_assert_msg(p != NULL, "mmap of %zu bytes failed", len);
	if (fill >= 0)
		memset(p, fill, len);
	if (kind == H_THP && fill >= 0 && !h_kpage(p).present) {
		h_skip("THP memory did not populate");
		return NULL;
	}
	return p;
}

bool h_thp_pmd_mapped(const void *addr, size_t len)
{
	const char *p = addr;

	for (size_t off = 0; off < len; off += 2 * MIB) {
		int pmd = h_pmd_mapped(p + off);

		if (pmd < 0) {
			h_skip("needs PAGEMAP_SCAN (6.7+): nothing else tells a "
			       "PMD-mapped THP from a split one");
			return false;
		}
		if (!pmd) {
			h_skip("THP chunk %zu is not PMD-mapped (no free huge "
			       "page?)", (size_t)(off / (2 * MIB)));
			return false;
		}
	}
	return true;
}

long h_hugetlb_pool(enum h_kind kind)
{
	return sys_read_long(kind == H_HUGETLB_1G ? NR_1G : NR_2M);
}

int h_hugetlb_pool_set(enum h_kind kind, long n)
{
	return sys_write_long(kind == H_HUGETLB_1G ? NR_1G : NR_2M, n);
}

bool h_hugetlb_room(enum h_kind kind, unsigned long n)
{
	struct timespec pause = { 0, 20 * 1000 * 1000 };
	unsigned shift = kind == H_HUGETLB_1G ? 30 : 21;
	long spare = -1;

	if (kind != H_HUGETLB_2M && kind != H_HUGETLB_1G)
		return true;
	for (int i = 0; i < 100; i++) {
		/* A copy takes an unreserved page: free less reserved. */
		spare = cg__hugetlb_spare(shift);
		if (spare >= (long)n)
			return true;
		nanosleep(&pause, NULL);
	}
	h_skip("%s: %ld spare huge pages, %lu needed", h_kind_name(kind),
	       spare, n);
	return false;
}

bool h_region_open(struct h_region *r, int mode, enum h_kind kind, size_t len,
		   int fill, unsigned long copies)
{
	*r = (struct h_region){ .len = len, .kind = kind };
	r->p = h_map(kind, len, fill);
	if (!r->p)
		return false;
	if (copies && !h_hugetlb_room(kind, copies)) {
		munmap(r->p, len);
		return false;
	}
	r->cg = h_open(mode);
	ck_assert_int_eq(cg_register(r->cg, r->p, len, 0), 0);
	return true;
}

void h_region_close(struct h_region *r)
{
	cg_close(r->cg);
	munmap(r->p, r->len);
}
