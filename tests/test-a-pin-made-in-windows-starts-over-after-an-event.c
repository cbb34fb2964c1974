// SPDX-License-Identifier: MIT
/*
 * A pin is made a 2 MiB window at a time, so that the daemon serves its
 * other clients between windows (lib/engine/pins.c).  What a window showed holds
 * only until an event there comes between two windows: then the walk
 * starts over.  Driven here on the engine itself, against this process,
 * one window a step, with the event raised between the first two.
 *
 * Bug this catches: a page removed, or shared by a fork, after its window
 * was verified, and the pin recorded over it anyway: a claim of
 * "exclusive" the kernel does not back.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/pins.h"
#include "harness.h"
#include "kernel/kernel.h"
#include "kernel/procfs.h"
#include "kernel/uffd.h"

#define LEN (8UL << 20)			/* four windows */
#define EVENT_WAIT_MS 5000

/* An engine for this process, its uffd without EVENT_FORK (the embedded way). */
static struct cg__mm *engine_open(char *p)
{
	struct cg__mm *mm = calloc(1, sizeof(*mm));
	uint64_t features;
	int uffd = cg__uffd_create();

	ck_assert_ptr_nonnull(mm);
	ck_assert_msg(uffd >= 0, "no uffd: %s", cg_strerror(uffd));
	ck_assert_int_eq(cg__uffd_api(uffd, CG_UFFD_WANTED &
				      ~(uint64_t)UFFD_FEATURE_EVENT_FORK,
				      &features), 0);
	ck_assert_int_eq(cg__mm_init(mm, uffd, features, getpid(),
				     cg__pagemap_open(0), -1), 0);
	ck_assert_int_eq(cg__mm_register(mm, (uintptr_t)p, LEN, 0), 0);
	return mm;
}

static void engine_close(struct cg__mm *mm)
{
	cg__mm_destroy(mm);
	free(mm);
}

/* Begin a read-only pin of p and walk its first window only. */
static void pin_first_window(struct cg__mm *mm, char *p)
{
	struct cg__pin_result res;

	ck_assert_int_eq(cg__mm_pin_start(mm, (uintptr_t)p, LEN, CG_PIN_RO,
					  "test", &res), 0);
	/* A deadline already past: one window, then the step returns. */
	ck_assert_int_eq(cg__mm_pin_step(mm, &res, 1), 1);
}

static int pin_finish(struct cg__mm *mm, struct cg__pin_result *res)
{
	int ret;

	while ((ret = cg__mm_pin_step(mm, res, 0)) > 0)
		;
	return ret;
}

/* MADV_DONTNEED waits until its REMOVE event is read: another thread. */
static void *remove_page(void *addr)
{
	return (void *)(intptr_t)madvise(addr, 4096, MADV_DONTNEED);
}

static void serve_until_removed(struct cg__mm *mm)
{
	double t0 = h_now_ms();

	while (!mm->stats.removals && h_now_ms() - t0 < EVENT_WAIT_MS)
		ck_assert_int_ge(cg__mm_service(mm), 0);
	ck_assert_msg(mm->stats.removals, "no REMOVE event in %d ms",
		      EVENT_WAIT_MS);
}

START_TEST(a_page_removed_in_a_window_already_walked_is_seen)
{
	char *p = h_map(H_4K, LEN, 'w');
	struct cg__pin_result res;
	struct cg__mm *mm;
	pthread_t th;
	void *ret;

	if (!p)
		return;
	mm = engine_open(p);
	pin_first_window(mm, p);
	ck_assert_int_eq(pthread_create(&th, NULL, remove_page, p + 4096), 0);
	serve_until_removed(mm);
	ck_assert_int_eq(pthread_join(th, &ret), 0);
	ck_assert_ptr_null(ret);

	/* Walked again: the hole is found, where a pin must not go. */
	ck_assert_int_eq(pin_finish(mm, &res), -EAGAIN);
	ck_assert_uint_eq(res.bad_addr, (uintptr_t)p + 4096);
	ck_assert_uint_eq(res.bad_len, 0);
	ck_assert_uint_eq(mm->npins, 0);
	engine_close(mm);
	munmap(p, LEN);
}
END_TEST

START_TEST(pages_a_fork_shares_in_a_window_already_walked_are_unshared)
{
	char *p = h_map(H_4K, LEN, 's');
	struct cg__pin_result res;
	struct cg__mm *mm;
	uint64_t pme[LEN / 4096];
	int pagemap;
	pid_t child;

	if (!p)
		return;
	if (!cg__kernel_read_pin_unshares()) {
		h_skip("before 5.19 a pin asks the client to write every "
		       "protected page, whatever its walk saw");
		munmap(p, LEN);
		return;
	}
	mm = engine_open(p);
	pin_first_window(mm, p);
	ck_assert_int_eq(cg__mm_fork_prepare(mm), 0);
	child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		pause();	/* holds the shared pages; writes none */
		_exit(0);
	}
	ck_assert_int_eq(cg__mm_fork_parent(mm), 0);

	ck_assert_int_eq(pin_finish(mm, &res), 0);
	/* The kernel is the judge: every pinned page mapped here alone. */
	pagemap = cg__pagemap_open(0);
	ck_assert_int_ge(pagemap, 0);
	ck_assert_int_eq(cg__pagemap_read(pagemap, (uintptr_t)p, LEN / 4096,
					  pme), 0);
	for (size_t i = 0; i < LEN / 4096; i++)
		ck_assert_msg(pme[i] & PM_MMAP_EXCLUSIVE, "page %zu of the pin "
			      "is still shared with the child", i);
	close(pagemap);
	kill(child, SIGKILL);
	h_wait(child);
	ck_assert_int_eq(cg__mm_unpin(mm, res.id, &res), 0);
	engine_close(mm);
	munmap(p, LEN);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("a pin made in windows starts over after an "
				"event");
	TCase *tc = tcase_create("windows");

	/* Once, before any uffd registers memory (lib/kernel/kernel.h). */
	if (cg__kernel_probe()) {
		fprintf(stderr, "FAIL: the kernel probe could not decide\n");
		return 1;
	}
	h_timeout(tc, 60);
	h_add(tc, a_page_removed_in_a_window_already_walked_is_seen);
	h_add(tc, pages_a_fork_shares_in_a_window_already_walked_are_unshared);
	suite_add_tcase(s, tc);
	return h_main(s, 0);
}
