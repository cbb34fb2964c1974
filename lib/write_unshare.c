// SPDX-License-Identifier: MIT
/*
 * The user-space FAULT_FLAG_UNSHARE for what a read-only pin cannot
 * unshare: the zero page (a pin takes it as it is), and before 5.19 every
 * COW-shared page.  A write fault does it on any kernel: the kernel copies
 * the page if it is shared and reuses it if not, and afterwards maps it
 * writable, so that no later write fault can replace it.
 *
 * The engine lifted the write protection of the pages it wants written
 * (lib/engine/pins.c): a page that pagemap still shows write-protected was not
 * asked for, and writing it would cost a round trip to the handler.  On
 * kernels without the uffd-wp bit in pagemap (5.10 shows 0) every page of
 * the span is written, which the engine's span allows.
 *
 * MADV_POPULATE_WRITE (5.14+) faults without writing a byte.  Elsewhere
 * an atomic add of zero to one word of each page is a write that changes
 * nothing and races with no other writer (measured on 5.10: the page is
 * unshared, and a vmsplice of it afterwards sees the next write).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kernel/compat.h"
#include "kernel/procfs.h"
#include "kernel/sys.h"
#include "write_unshare.h"

#define BATCH 512

static void add_zero(uint64_t addr)
{
	volatile uint64_t *word = (volatile uint64_t *)(uintptr_t)addr;

#if defined(__x86_64__) || defined(__i386__)
	__asm__ __volatile__("lock addl $0, %0" : "+m"(*word) : : "memory");
#else
	__atomic_fetch_add(word, 0, __ATOMIC_SEQ_CST);
#endif
}

/*
 * Whether every page of [addr, addr+len) is mapped writable, from
 * /proc/self/maps: 0, -EACCES (a VMA is not writable), -ENOENT (a hole).
 */
static int writable(uint64_t addr, uint64_t len)
{
	FILE *f = fopen("/proc/self/maps", "re");
	unsigned long lo, hi;
	uint64_t covered = addr;
	char perms[5];
	int ret = -ENOENT;

	if (!f)
		return -errno;
	while (covered < addr + len &&
	       fscanf(f, "%lx-%lx %4s%*[^\n]", &lo, &hi, perms) == 3) {
		if (hi <= covered)
			continue;
		if (lo > covered)
			break;
		if (perms[1] != 'w') {
			ret = -EACCES;
			break;
		}
		covered = hi;
	}
	fclose(f);
	return covered >= addr + len ? 0 : ret;
}

/* MADV_POPULATE_WRITE exists (5.14+): an unknown advice is EINVAL at once. */
static bool have_populate_write(void)
{
	static int have = -1;	/* racing first calls agree */
	int h = __atomic_load_n(&have, __ATOMIC_RELAXED);

	if (h < 0) {
		h = !cg__sys_madvise(NULL, 0, MADV_POPULATE_WRITE);
		__atomic_store_n(&have, h, __ATOMIC_RELAXED);
	}
	return h;
}

int cg__write_fault(uint64_t start, uint64_t len)
{
	int ret;

	if (have_populate_write()) {
		if (!cg__sys_madvise((void *)(uintptr_t)start, len,
				     MADV_POPULATE_WRITE))
			return 0;
		/* EINVAL: part of a hugetlb page; write it below instead. */
		if (errno != EINVAL)
			return errno == ENOMEM ? -ENOENT : -errno;
	}
	ret = writable(start, len);
	if (ret)
		return ret;
	for (uint64_t a = start; a < start + len; a += CG_PAGE_SIZE)
		add_zero(a);
	return 0;
}

/* cg__write_fault_unless() with our pagemap open in fd. */
static int write_fault_unless(int fd, uint64_t addr, uint64_t len,
			      uint64_t bits)
{
	uint64_t pme[BATCH];
	int ret = 0;

	for (uint64_t a = addr; a < addr + len && !ret;) {
		size_t n = (addr + len - a) >> CG_PAGE_SHIFT;

		n = n < BATCH ? n : BATCH;
		ret = cg__pagemap_read(fd, a, n, pme);
		for (size_t i = 0; !ret && i < n;) {
			size_t j = i;

			while (j < n && !(pme[j] & bits))
				j++;
			if (j > i)
				ret = cg__write_fault(a + (i << CG_PAGE_SHIFT),
						      (j - i) << CG_PAGE_SHIFT);
			i = j > i ? j : i + 1;
		}
		a += n << CG_PAGE_SHIFT;
	}
	return ret;
}

int cg__write_fault_unless(uint64_t addr, uint64_t len, uint64_t bits)
{
	int fd = cg__pagemap_open(0), ret;

	if (fd < 0)
		return fd;
	ret = write_fault_unless(fd, addr, len, bits);
	close(fd);
	return ret;
}

/* Runs asked of PAGEMAP_SCAN at a time. */
#define HOLE_RUNS 64

/*
 * The holes by PAGEMAP_SCAN (6.7+), one call for any number of present
 * pages: reading the pagemap entry of every page cost a pin of exclusive
 * memory as much as the engine's own walk of it.  -EOPNOTSUPP where the
 * scan does not work.
 */
static int populate_holes_by_scan(int fd, uint64_t addr, uint64_t len)
{
	struct page_region v[HOLE_RUNS];
	uint64_t end = addr + len, walk_end;
	int n, ret = 0;

	/* Before 6.7 the ioctl would fail on every pin. */
	if (!cg__pagemap_scan_works(fd))
		return -EOPNOTSUPP;
	for (uint64_t a = addr; a < end && !ret; a = walk_end) {
		n = cg__pagemap_holes(fd, a, end, v, HOLE_RUNS, &walk_end);
		if (n < 0 || walk_end <= a)
			return a == addr ? -EOPNOTSUPP : n < 0 ? n : -EIO;
		for (int i = 0; i < n && !ret; i++)
			ret = cg__write_fault(v[i].start, v[i].end - v[i].start);
	}
	return ret;
}

int cg__populate_holes(uint64_t addr, uint64_t len)
{
	int fd = cg__pagemap_open(0), ret;

	if (fd < 0)
		return fd;
	ret = populate_holes_by_scan(fd, addr, len);
	if (ret == -EOPNOTSUPP)
		ret = write_fault_unless(fd, addr, len, PM_PRESENT | PM_SWAPPED);
	close(fd);
	return ret;
}

int cg__write_unshare(uint64_t addr, uint64_t len)
{
	return cg__write_fault_unless(addr, len, PM_UFFD_WP);
}
