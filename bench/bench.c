/* SPDX-License-Identifier: MIT */
/* The helpers every benchmark uses (bench.h); linked into each of them. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "kernel/compat.h"

uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * The host backs guest memory lazily (about 2.4 ms per 2 MiB on first
 * touch, KERNEL-FACTS "Warm the VM"); whichever method landed on such
 * memory first would pay for it.  All of it is held at once so that it is
 * fresh memory being touched, not the same freed pages recycled.  Capped at
 * half the free memory: a warm-up must not call the OOM killer.
 */
void bench_warm_vm(size_t bytes, bool say_failures)
{
	struct sysinfo si;
	uint64_t t0 = bench_now_ns();
	void *p;

	if (sysinfo(&si) == 0 && bytes > (size_t)si.freeram * si.mem_unit / 2)
		bytes = (size_t)si.freeram * si.mem_unit / 2 / MIB * MIB;
	if (bytes == 0)
		return;
	p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		if (say_failures)
			printf("warm-up: mmap failed (%s), not warmed\n",
			       strerror(errno));
		return;
	}
	if (madvise(p, bytes, MADV_POPULATE_WRITE)) {
		if (say_failures)
			printf("warm-up: populate failed (%s)\n",
			       strerror(errno));
	} else {
		printf("warm-up: %zu MiB touched and freed in %.2f s\n",
		       bytes / MIB, (double)(bench_now_ns() - t0) / 1e9);
	}
	munmap(p, bytes);
}

void bench_keep_warm(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return;
	madvise(p, bytes, MADV_HUGEPAGE);
	madvise(p, bytes, MADV_POPULATE_WRITE);
	munmap(p, bytes);
}

bool bench_parse_size(const char *s, size_t max, size_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || v > max)
		return false;
	*out = (size_t)v;
	return true;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double bench_median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(v[0]), cmp_double);
	if (n % 2)
		return v[n / 2];
	return (v[n / 2 - 1] + v[n / 2]) / 2;
}

void bench_print_ratio(double x, double ref)
{
	if (ref > 0)
		printf(" %8.2fx", x / ref);
	else
		printf(" %9s", "-");
}

long long bench_scan_written(int pagemap, uint64_t start, uint64_t end,
			     uint64_t pagesz)
{
	struct page_region v[64];
	long long pages = 0;

	while (start < end) {
		struct pm_scan_arg arg = {
			.size = sizeof(arg),
			.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
			.start = start, .end = end,
			.vec = (uintptr_t)v, .vec_len = 64,
			.category_mask = PAGE_IS_WRITTEN,
			.return_mask = PAGE_IS_WRITTEN,
		};
		int n = ioctl(pagemap, PAGEMAP_SCAN, &arg);

		if (n < 0)
			return -errno;
		for (int i = 0; i < n; i++)
			pages += (long long)((v[i].end - v[i].start) / pagesz);
		if (arg.walk_end <= start)
			return -EIO;
		start = arg.walk_end;
	}
	return pages;
}

int bench_soft_dirty_clear(void)
{
	int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
	int ret = fd >= 0 && write(fd, "4", 1) == 1 ? 0 : -errno;

	if (fd >= 0)
		close(fd);
	return ret;
}

long bench_soft_dirty_count(int pagemap, uint64_t start, uint64_t end)
{
	static uint64_t pme[4096];
	long found = 0;

	for (uint64_t at = start; at < end; at += sizeof(pme) / 8 * 4096) {
		size_t n = (end - at) / 4096 < 4096 ? (end - at) / 4096 : 4096;

		if (pread(pagemap, pme, n * 8, (off_t)(at / 4096 * 8)) != (ssize_t)(n * 8))
			return -errno;
		for (size_t i = 0; i < n; i++)
			found += !!(pme[i] & (1ULL << 55));
	}
	return found;
}
