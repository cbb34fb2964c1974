// SPDX-License-Identifier: MIT
/*
 * Under asynchronous write protection (COWGUARD_WP=async, 6.7+) the kernel
 * resolves every write itself and the engine learns the writes afterwards
 * with PAGEMAP_SCAN (lib/engine/written.c).  What it learns must be what
 * the fault path would have: each write seen once, written pages exclusive
 * and dirty, the rest untouched, and after a fork that threads write
 * through, no page claimed exclusive that the kernel shares.  And the
 * kernel's WP_UNPOPULATED, which comes with WP_ASYNC, must not cost a
 * sparse registration a page table per 2 MiB.
 *
 * The suite asks for the mode itself, before its daemon starts; a daemon
 * it did not start (the unprivileged lane's) may run synchronously, and
 * a kernel without WP_ASYNC (5.10, 6.1) has only the fault path: skips.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"

#define PAGES 64
#define WRITERS 2
/* Large enough that threads write while the daemon handles the fork. */
#define FORK_PAGES 8192

/* The handle, or NULL after a skip when the engine is not asynchronous. */
static struct cg *open_async(int mode)
{
	struct cg *cg = h_open(mode);

	if (h_wp_async(cg))
		return cg;
	h_skip("the engine runs synchronously here (%s)",
	       mode == H_DAEMON ? "a daemon not started with COWGUARD_WP=async, "
				  "or a kernel without UFFD_FEATURE_WP_ASYNC"
				: "no UFFD_FEATURE_WP_ASYNC before 6.7");
	cg_close(cg);
	return NULL;
}

static struct cg_page_info query(struct cg *cg, const char *p)
{
	struct cg_page_info info;

	ck_assert_int_eq(cg_query(cg, p, &info, sizeof(info)), 0);
	return info;
}

static uint64_t wp_faults(struct cg *cg)
{
	struct cg_stats st;

	ck_assert_int_eq(cg_stats(cg, &st, sizeof(st)), 0);
	return st.wp_faults;
}

START_TEST(writes_the_kernel_resolved_are_each_learned_once_and_only_they)
{
	size_t len = PAGES * 4096;
	char *p = h_map(H_4K, len, 'A');
	struct cg *cg = open_async(_i);
	uint64_t faults;

	if (!cg) {
		munmap(p, len);
		return;
	}
	ck_assert_int_eq(cg_register(cg, p, len, 0), 0);
	faults = wp_faults(cg);
	for (size_t i = 0; i < PAGES; i += 2)
		p[i * 4096] = 'B';
	for (size_t i = 0; i < PAGES; i++) {
		struct cg_page_info info = query(cg, p + i * 4096);
		bool written = !(i & 1);

		ck_assert_msg(info.present && info.exclusive &&
				      info.dirty == written && info.wp == !written,
			      "page %zu (written %d): present %d exclusive %d "
			      "dirty %d wp %d", i, written, info.present,
			      info.exclusive, info.dirty, info.wp);
		if (h_pagemap_shows_uffd_wp())
			ck_assert_int_eq(h_kpage(p + i * 4096).uffd_wp, !written);
	}
	/* A write seen once, however often the state is asked for since. */
	ck_assert_uint_eq(wp_faults(cg) - faults, PAGES / 2);
	p[0] = 'C';
	ck_assert_uint_eq(wp_faults(cg) - faults, PAGES / 2);
	h_audit_clean(cg, p, len);
	cg_close(cg);
	munmap(p, len);
}
END_TEST

struct writer {
	char *p;
	size_t first;
	atomic_bool *stop;
};

/* Every WRITERS-th page, round after round, until told to stop. */
static void *write_on(void *arg)
{
	struct writer *w = arg;

	for (unsigned round = 1; !atomic_load(w->stop); round++)
		for (size_t i = w->first; i < FORK_PAGES && !atomic_load(w->stop);
		     i += WRITERS)
			((volatile char *)w->p)[i * 4096 + 8] = (char)round;
	return NULL;
}

START_TEST(a_fork_that_threads_write_through_leaves_no_page_claimed_ours_that_is_shared)
{
	size_t len = FORK_PAGES * 4096;
	char *p = h_map(H_4K, len, 'A');
	struct cg *cg = open_async(H_DAEMON);
	struct writer w[WRITERS];
	pthread_t t[WRITERS];
	atomic_bool stop = false;
	struct cg_audit_report a;
	struct h_waiter child;

	if (!cg) {
		munmap(p, len);
		return;
	}
	ck_assert_int_eq(cg_register(cg, p, len, 0), 0);
	for (int i = 0; i < WRITERS; i++) {
		w[i] = (struct writer){ p, (size_t)i, &stop };
		ck_assert_int_eq(pthread_create(&t[i], NULL, write_on, &w[i]), 0);
	}
	/* The child holds every page it shares until released. */
	child = h_fork_waiting(p, 'A');
	atomic_store(&stop, true);
	for (int i = 0; i < WRITERS; i++)
		pthread_join(t[i], NULL);
	a = h_audit_clean(cg, p, len);
	ck_assert_uint_eq(a.unsafe, 0);
	/* Root reads PageAnonExclusive: every page the threads wrote is ours. */
	if (a.truth == CG_TRUTH_KPAGEFLAGS)
		ck_assert_uint_eq(a.conservative, 0);
	ck_assert_int_eq(h_release(&child), 0);
	cg_close(cg);
	munmap(p, len);
}
END_TEST

static long vm_pte_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmPTE: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

START_TEST(a_sparse_registration_gets_no_page_tables_nor_swap_entries_from_protection)
{
	size_t len = 1UL << 30, populated = 2 * MIB;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	struct cg *cg = open_async(H_DAEMON);
	struct h_waiter child;
	long before;

	ck_assert(p != MAP_FAILED);
	if (!cg) {
		munmap(p, len);
		return;
	}
	ck_assert_int_eq(madvise(p, len, MADV_NOHUGEPAGE), 0);
	memset(p, 'A', populated);
	before = vm_pte_kib(getpid());
	ck_assert_int_eq(cg_register(cg, p, len, 0), 0);
	/* A fork protects all that the kernel maps again. */
	child = h_fork_waiting(p, 'A');
	p[0] = 'B';
	h_audit_clean(cg, p, 4 * MIB);
	/*
	 * A marker per PTE of the gigabyte would take 2 MiB of page tables
	 * (4 KiB per 2 MiB), and pagemap would show a swap entry there: in
	 * us, and in the child, whose copy is protected apart.
	 */
	ck_assert_msg(vm_pte_kib(getpid()) - before < 256,
		      "VmPTE grew from %ld to %ld KiB", before,
		      vm_pte_kib(getpid()));
	ck_assert_msg(vm_pte_kib(child.pid) - before < 256,
		      "the child's VmPTE is %ld KiB, ours was %ld",
		      vm_pte_kib(child.pid), before);
	ck_assert(!h_kpage(p + len / 2).present);
	ck_assert(!h_kpage(p + len / 2).uffd_wp);
	ck_assert(!query(cg, p + len / 2).present);
	ck_assert_int_eq(h_release(&child), 0);
	cg_close(cg);
	munmap(p, len);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("asynchronous write protection learns every write");
	TCase *tc = tcase_create("async");

	/* Before the suite's daemon starts, which inherits it. */
	setenv("COWGUARD_WP", "async", 1);
	h_timeout(tc, 60);
	h_add_modes(tc, writes_the_kernel_resolved_are_each_learned_once_and_only_they);
	h_add_test(tc, a_fork_that_threads_write_through_leaves_no_page_claimed_ours_that_is_shared,
		   1u << H_DAEMON, 0);
	h_add_test(tc, a_sparse_registration_gets_no_page_tables_nor_swap_entries_from_protection,
		   1u << H_DAEMON, 0);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
