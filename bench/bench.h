/* SPDX-License-Identifier: MIT */
/*
 * What the benchmarks share: a clock, the VM warm-up, size options,
 * medians and ratio columns.  bench/bench.c is no benchmark of its own:
 * the Makefile links it into every bench/ program.
 */
#ifndef CG_BENCH_H
#define CG_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MIB (1024UL * 1024)

/* CLOCK_MONOTONIC, in nanoseconds. */
uint64_t bench_now_ns(void);

/*
 * Touch bytes of fresh memory once, all of it held at once, then free it,
 * so that no timed method pays for the host backing guest memory on first
 * touch.  Capped at half the free memory; 0 does nothing.  Prints how long
 * it took; with say_failures, also why it could not warm (else silent).
 */
void bench_warm_vm(size_t bytes, bool say_failures);

/*
 * Touch bytes of memory in 2 MiB THPs and free it again, silently, right
 * before a timed pass.  A warm-up at start does not last: the VM's free
 * page reporting hands free 2 MiB blocks back to the host about two
 * seconds after they are freed (KERNEL-FACTS "Warm the VM"), and a THP
 * the pass allocates lands on exactly such a block.  Blocks freed just now
 * are not yet reported, and the allocator hands them out first.
 */
void bench_keep_warm(size_t bytes);

/* A decimal number no greater than max into *out; false if s is not one. */
bool bench_parse_size(const char *s, size_t max, size_t *out);

/* The median of the n (> 0) samples in v, which it sorts in place. */
double bench_median(double *v, int n);

/* A ratio column: " %8.2fx" of x / ref, or "-" when ref is not positive. */
void bench_print_ratio(double x, double ref);

/*
 * The kernel's own write tracker (UFFD_FEATURE_WP_ASYNC, 6.7+): the
 * written runs of [start, end), read and write-protected again in one
 * PAGEMAP_SCAN a vector at a time.  Returns how many pages of pagesz they
 * hold, or -errno.
 */
long long bench_scan_written(int pagemap, uint64_t start, uint64_t end,
			     uint64_t pagesz);

/*
 * Soft-dirty, the tracker CRIU used before PAGEMAP_SCAN: clear (write "4"
 * to /proc/self/clear_refs: every page of the process clean and
 * write-protected), and count the 4 KiB pages of [start, end) whose
 * pagemap entry has the soft-dirty bit (55).  0 or a count, or -errno.
 */
int bench_soft_dirty_clear(void);
long bench_soft_dirty_count(int pagemap, uint64_t start, uint64_t end);

#endif
