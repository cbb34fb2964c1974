// SPDX-License-Identifier: MIT
/*
 * A thread that reads a page of a MODE_MISSING range just as the range is
 * unregistered must go on: nobody serves that uffd's faults any more.
 * The kernel wakes such faults as it unregisters, but (6.18, faults taken
 * under a per-VMA lock) it looks at its queue before a fault already
 * under way has joined it; that reader then sleeps until the uffd is
 * closed.  Measured: about 1 reader in 100 on this race's timings without
 * a wake of our own.  cg__uffd_unregister() wakes the range after the
 * unregister (a lazy restore's last step, and every engine's).
 *
 * The main thread releases a reader and unregisters after a delay that
 * sweeps through the reader's fault; a reader still asleep 50 ms later
 * is counted (and woken by hand, so the test ends).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "kernel/uffd.h"

#define PG 4096UL
#define ROUNDS 4000
#define WAIT_MS 50

static char *volatile page;
static atomic_int go, done, stop;

static void *reader(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		if (!atomic_exchange(&go, 0))
			continue;
		(void)*(volatile char *)page;
		atomic_store(&done, 1);
	}
	return NULL;
}

/* Whether the reader finished within ms milliseconds. */
static bool reader_done(int ms)
{
	struct timespec tick = { 0, 100 * 1000 };

	for (int i = 0; i < ms * 10 && !atomic_load(&done); i++)
		nanosleep(&tick, NULL);
	return atomic_load(&done);
}

static void drain_messages(int uffd)
{
	char buf[4096];

	while (read(uffd, buf, sizeof(buf)) > 0)
		;
}

START_TEST(a_fault_racing_an_unregister_is_woken)
{
	int uffd = cg__uffd_create(), asleep = 0;
	uint64_t got;
	pthread_t t;

	if (uffd < 0) {
		h_skip("no full userfaultfd for this user (%d)", uffd);
		return;
	}
	ck_assert_int_eq(cg__uffd_api(uffd, 0, &got), 0);
	ck_assert_int_eq(pthread_create(&t, NULL, reader, NULL), 0);
	/* In an emulated guest the race is the kernel's: a tenth suffices. */
	for (int i = 0; i < (getenv("CG_VM") ? ROUNDS / 10 : ROUNDS); i++) {
		char *p = mmap(NULL, PG, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		ck_assert(p != MAP_FAILED);
		ck_assert_int_eq(cg__uffd_register_mode(uffd, (uintptr_t)p, PG,
				 UFFDIO_REGISTER_MODE_MISSING), 0);
		page = p;
		atomic_store(&done, 0);
		atomic_store(&go, 1);
		for (volatile int spin = 0; spin < (i % 400) * 2; spin++)
			;
		ck_assert_int_eq(cg__uffd_unregister(uffd, (uintptr_t)p, PG), 0);
		if (!reader_done(WAIT_MS)) {
			asleep++;
			cg__uffd_wake(uffd, (uintptr_t)p, PG);
			ck_assert_msg(reader_done(1000),
				      "a reader sleeps through a wake");
		}
		drain_messages(uffd);
		ck_assert_int_eq(munmap(p, PG), 0);
	}
	atomic_store(&stop, 1);
	pthread_join(t, NULL);
	close(uffd);
	ck_assert_msg(!asleep, "%d readers slept past the unregister", asleep);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("a fault racing an unregister is woken");
	TCase *tc = tcase_create("unregister");

	h_timeout(tc, 120);
	h_add(tc, a_fault_racing_an_unregister_is_woken);
	suite_add_tcase(s, tc);
	return h_main(s, 0);
}
