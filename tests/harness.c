// SPDX-License-Identifier: MIT
/* The shared test harness: modes, memory kinds, kernel truth, a daemon. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "harness-internal.h"
#include "sysfile.h"

#define WANT_2M 64	/* 128 MiB: room for a parent and an unshared copy */
#define WANT_1G 3

char h__sock_path[128];
pid_t h__daemon_pid;
static char tmpdir[64];
static long saved_2m = -1, saved_1g = -1;
static pid_t main_pid;


const char *h_mode_name(int mode)
{
	return mode == H_DAEMON ? "daemon" : "embedded";
}

const char *h_kind_name(enum h_kind kind)
{
	static const char *const names[] = { "4 KiB", "THP", "hugetlb 2 MiB",
					     "hugetlb 1 GiB" };

	return names[kind];
}

void h_skip(const char *fmt, ...)
{
	const char *name = h_case_name();
	va_list ap;

	printf("SKIP: %s%s", name ? name : "", name ? ": " : "");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}


/* Pages still being freed (gigantic ones go lazily) hold a pool up: retry. */
static void restore_pool(const char *path, long v)
{
	struct timespec pause = { 0, 100 * 1000 * 1000 };

	for (int i = 0; i < 50; i++) {
		sys_write_long(path, v);
		if (sys_read_long(path) == v)
			return;
		nanosleep(&pause, NULL);
	}
	fprintf(stderr, "harness: %s is %ld, not back to %ld\n", path,
		sys_read_long(path), v);
}

static void restore_hugetlb(void)
{
	if (saved_2m >= 0)
		restore_pool(NR_2M, saved_2m);
	if (saved_1g >= 0)
		restore_pool(NR_1G, saved_1g);
	saved_2m = saved_1g = -1;
}

static void cleanup(void)
{
	/* Check forks every test, and the forked tests run atexit too. */
	if (getpid() != main_pid)
		return;
	h_daemon_stop(h__daemon_pid);
	h__daemon_pid = 0;
	restore_hugetlb();
	if (tmpdir[0] && getenv("CG_TEST_KEEP")) {
		fprintf(stderr, "harness: kept %s (CG_TEST_KEEP)\n", tmpdir);
		tmpdir[0] = 0;
	}
	if (tmpdir[0]) {
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd))
			fprintf(stderr, "harness: could not remove %s\n", tmpdir);
		tmpdir[0] = 0;
	}
}

static void on_signal(int sig)
{
	cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void reserve_hugetlb(void)
{
	if (geteuid() != 0)
		return;
	saved_2m = sys_read_long(NR_2M);
	saved_1g = sys_read_long(NR_1G);
	if (saved_2m >= 0 && saved_2m < WANT_2M)
		sys_write_long(NR_2M, WANT_2M);
	if (saved_1g >= 0 && saved_1g < WANT_1G)
		sys_write_long(NR_1G, WANT_1G);
}

int h_main(Suite *s, unsigned needs)
{
	SRunner *sr;
	int failed;

	main_pid = getpid();
	atexit(cleanup);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (needs & H_NEED_HUGETLB)
		reserve_hugetlb();
	if ((needs & H_NEED_DAEMON) && h__external_socket()) {
		/* The lane's root daemon: not ours to start, stop or read. */
		if (snprintf(h__sock_path, sizeof(h__sock_path), "%s",
			     h__external_socket()) >= (int)sizeof(h__sock_path)) {
			fprintf(stderr, "harness: CG_TEST_DAEMON_SOCKET too long\n");
			return 1;
		}
	} else if (needs & H_NEED_DAEMON) {
		snprintf(tmpdir, sizeof(tmpdir), "/tmp/cgtest.XXXXXX");
		/* No ck_assert here: Check reports only from inside a test. */
		if (!mkdtemp(tmpdir)) {
			perror("harness: mkdtemp");
			return 1;
		}
		chmod(tmpdir, 0755);
		snprintf(h__sock_path, sizeof(h__sock_path), "%s/cowguardd.sock", tmpdir);
		h__daemon_pid = h_daemon_start(h__sock_path);
		if (h__daemon_pid < 0)
			return 1;
	}
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	failed += h__stop_suite_daemon();
	cleanup();
	return failed ? 1 : 0;
}
