// SPDX-License-Identifier: MIT
/*
 * A daemon that dies must not leave the client's threads blocked in a
 * write-protect fault.  The library hands its uffd to cowguardd and keeps no
 * copy, so when the daemon dies the kernel releases the uffd and wakes every
 * waiter.  Bug this catches: the client keeping a reference to its uffd
 * (every writer then hangs forever once the daemon is gone).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define REGION (64 * MIB)
#define PAGES (REGION / 4096)

struct writer {
	char *p;
	atomic_size_t done;	/* pages written so far */
};

/* Write every page once; each write is a WP fault for the daemon. */
static void *write_pages(void *arg)
{
	struct writer *w = arg;

	for (size_t i = 0; i < PAGES; i++) {
		w->p[i * 4096] = (char)('a' + i % 26);
		atomic_store(&w->done, i + 1);
	}
	return NULL;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wait until the writer stops making progress: it is blocked in a fault. */
static size_t wait_stalled(struct writer *w)
{
	struct timespec pause = { 0, 100 * 1000 * 1000 };
	size_t before;

	do {
		before = atomic_load(&w->done);
		nanosleep(&pause, NULL);
	} while (atomic_load(&w->done) != before && before < PAGES);
	return before;
}

START_TEST(a_writer_blocked_on_a_stopped_daemon_goes_on_when_it_is_killed)
{
	char path[128];
	struct cg_options o = { .mode = CG_MODE_DAEMON, .socket_path = path };
	struct writer w = { 0 };
	struct cg_stats st;
	pthread_t thread;
	struct cg *cg;
	pid_t daemon;
	size_t stalled;
	double t0;

	if (!h_have_own_daemon("stops and kills a cowguardd it started"))
		return;
	/* A daemon of our own: the suite's must survive this test. */
	snprintf(path, sizeof(path), "%s.killme", h_socket());
	daemon = h_daemon_start(path);
	ck_assert_int_gt(daemon, 0);
	w.p = h_map(H_4K, REGION, 'x');
	ck_assert_int_eq(cg_open(&o, sizeof(o), &cg), 0);
	if (h_skip_if_async(cg, "the kernel resolves every write: no writer "
			    "waits on the daemon, alive or not")) {
		cg_close(cg);
		kill(daemon, SIGKILL);
		h_wait(daemon);
		return;
	}
	ck_assert_int_eq(cg_register(cg, w.p, REGION, 0), 0);

	ck_assert_int_eq(kill(daemon, SIGSTOP), 0);
	ck_assert_int_eq(pthread_create(&thread, NULL, write_pages, &w), 0);
	stalled = wait_stalled(&w);
	ck_assert_msg(stalled < PAGES, "the writer never blocked on the daemon");

	t0 = now();
	ck_assert_int_eq(kill(daemon, SIGKILL), 0);
	ck_assert_int_eq(pthread_join(thread, NULL), 0);
	ck_assert_msg(now() - t0 < 1.0, "the writer needed %.2f s after the kill",
		      now() - t0);
	h_wait(daemon);

	for (size_t i = 0; i < PAGES; i++) {
		ck_assert_int_eq(w.p[i * 4096], 'a' + i % 26);
		ck_assert_int_eq(w.p[i * 4096 + 1], 'x');
	}
	/* The state went with the daemon: the handle says so, loudly. */
	ck_assert_int_eq(cg_stats(cg, &st, sizeof(st)), -ENOTCONN);
	cg_close(cg);
	munmap(w.p, REGION);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("daemon death releases blocked writers");
	TCase *tc = tcase_create("daemon death");

	h_timeout(tc, 30);
	h_add(tc, a_writer_blocked_on_a_stopped_daemon_goes_on_when_it_is_killed);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
