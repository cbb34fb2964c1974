/* SPDX-License-Identifier: MIT */
/*
 * clients: one cowguardd, one event loop, serving many clients at once.
 * Each client is a process of its own with a populated 4 MiB region.
 * Round after round until its time is up it registers the region (every
 * page protected anew), writes a byte to one page in 16, timing each write
 * (a write-protect fault the daemon resolves), pins and unpins 64 KiB of it
 * read-only, and unregisters it.  One client alone is the baseline; then
 * N (default 64) start together.  Printed per run: faulting writes per
 * second over all clients, the median and p99 latency of such a write,
 * and the ratios to the baseline measured in the same run.
 *
 * Needs the daemon at $COWGUARD_SOCKET (scripts/run-bench.sh starts one).
 * Run: clients [--clients N] [--seconds S] [--quick]
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "cowguard.h"

#define PAGES 1024
/*
 * A write a window: a fault unprotects the exclusive pages of its 64 KiB
 * window with it (COWGUARD_WP_AROUND), so writes to its other pages would
 * not fault, and the bench is about faults the loop resolves.
 */
#define STRIDE 16
#define PAGE 4096UL
#define PIN_LEN (64 * 1024UL)
#define MAX_CLIENTS 256
#define MAX_SAMPLES (1 << 16)	/* per client; writes past it count only */

/* What a client writes back, in memory shared with the parent. */
struct measured {
	long writes;		/* faulting writes done */
	long samples;		/* of them timed into us[] */
	int error;		/* 0, or the -errno that stopped it */
	float us[MAX_SAMPLES];
};

struct run {
	int clients;
	double seconds;		/* wall time of the whole run */
	long writes;
	double p50, p99;	/* us per faulting write */
	int error;
};

static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;

	return (x > y) - (x < y);
}

/* One round: protect every page, write each once, pin and unpin a piece. */
static int round_once(struct cg *cg, char *p, long *writes, long *samples,
		      float *us)
{
	struct cg_pin *pin;
	int err = cg_register(cg, p, PAGES * PAGE, 0);

	if (err)
		return err;
	for (size_t i = 0; i < PAGES; i += STRIDE) {
		uint64_t t0 = bench_now_ns();

		((volatile char *)p)[i * PAGE] = (char)i;
		if (*samples < MAX_SAMPLES)
			us[(*samples)++] = (float)(bench_now_ns() - t0) / 1e3f;
		(*writes)++;
	}
	err = cg_pin(cg, p + (*writes % (PAGES / 16)) * PAGE, PIN_LEN, CG_PIN_RO,
		     &pin);
	if (!err)
		err = cg_unpin(pin);
	return err ? err : cg_unregister(cg, p, PAGES * PAGE);
}

/* A client process: ready, wait for go, run until the deadline. */
static int client(struct measured *m, int me, int ready, int go, double secs)
{
	struct cg_options o = { .mode = CG_MODE_DAEMON,
				.socket_path = getenv("COWGUARD_SOCKET") };
	char *p = mmap(NULL, PAGES * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct cg *cg = NULL;
	uint64_t until;
	char c = 1;
	int err;

	if (p == MAP_FAILED)
		return -errno;
	madvise(p, PAGES * PAGE, MADV_NOHUGEPAGE);
	memset(p, 'x', PAGES * PAGE);
	err = cg_open(&o, sizeof(o), &cg);
	if (write(ready, &c, 1) != 1 && !err)
		err = -EPIPE;
	if (read(go, &c, 1) < 0 && !err)
		err = -EPIPE;
	until = bench_now_ns() + (uint64_t)(secs * 1e9);
	while (!err && bench_now_ns() < until)
		err = round_once(cg, p, &m[me].writes,
				 &m[me].samples, m[me].us);
	if (cg)
		cg_close(cg);
	return err;
}

/* Start n clients together, wait for all, and gather what they measured. */
static void run_clients(struct measured *m, int n, double secs, struct run *out)
{
	int ready[2], go[2];
	pid_t pids[MAX_CLIENTS];
	uint64_t t0;
	long total = 0;
	float *all;
	char c;

	memset(out, 0, sizeof(*out));
	out->clients = n;
	memset(m, 0, sizeof(*m) * (size_t)n);
	if (pipe(ready) || pipe(go)) {
		out->error = -errno;
		return;
	}
	for (int i = 0; i < n; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			close(ready[0]);
			close(go[1]);
			m[i].error = client(m, i, ready[1], go[0], secs);
			_exit(0);
		}
	}
	close(ready[1]);
	close(go[0]);
	for (int i = 0; i < n; i++)
		if (read(ready[0], &c, 1) != 1)
			out->error = -EPIPE;
	t0 = bench_now_ns();
	close(go[1]);	/* every client's read returns: go */
	for (int i = 0; i < n; i++)
		waitpid(pids[i], NULL, 0);
	out->seconds = (double)(bench_now_ns() - t0) / 1e9;
	close(ready[0]);
	for (int i = 0; i < n; i++) {
		out->writes += m[i].writes;
		total += m[i].samples;
		if (m[i].error && !out->error)
			out->error = m[i].error;
	}
	all = malloc(sizeof(*all) * (size_t)(total ? total : 1));
	if (!all) {
		out->error = -ENOMEM;
		return;
	}
	total = 0;
	for (int i = 0; i < n; i++) {
		memcpy(all + total, m[i].us,
		       sizeof(*all) * (size_t)m[i].samples);
		total += m[i].samples;
	}
	qsort(all, (size_t)total, sizeof(*all), cmp_float);
	if (total) {
		out->p50 = all[total / 2];
		out->p99 = all[total * 99 / 100];
	}
	free(all);
}

static void print_run(const struct run *r, const struct run *base)
{
	double rate = r->writes / r->seconds, base_rate = base->writes / base->seconds;

	printf("%7d %12.0f", r->clients, rate);
	bench_print_ratio(rate, base_rate);
	printf(" %9.1f %9.1f", r->p50, r->p99);
	bench_print_ratio(r->p99, base->p99);
	printf(" %9ld\n", r->writes);
}

static int parse_args(int argc, char **argv, int *clients, double *secs)
{
	static const struct option opts[] = {
		{ "clients", required_argument, NULL, 'c' },
		{ "seconds", required_argument, NULL, 's' },
		{ "quick", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	size_t v;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'c' && bench_parse_size(optarg, MAX_CLIENTS, &v) && v)
			*clients = (int)v;
		else if (c == 's' && bench_parse_size(optarg, 600, &v) && v)
			*secs = (double)v;
		else if (c == 'q')
			*secs = 1;
		else {
			fprintf(c == 'h' ? stdout : stderr,
				"usage: %s [--clients N] [--seconds S] [--quick]\n"
				"  --clients N  clients at once (default 64, at "
				"most %d)\n"
				"  --seconds S  each run's length (default 5)\n"
				"  --quick      1 second each\n",
				argv[0], MAX_CLIENTS);
			return c == 'h' ? 1 : 2;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	int n = 64, ret;
	double secs = 5;
	struct run base, many;
	struct measured *m;
	size_t size;

	ret = parse_args(argc, argv, &n, &secs);
	if (ret)
		return ret == 1 ? 0 : ret;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!getenv("COWGUARD_SOCKET")) {
		printf("clients: skipped (no $COWGUARD_SOCKET: make bench "
		       "starts a daemon)\n");
		return 0;
	}
	size = sizeof(*m) * (size_t)n;
	m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		  -1, 0);
	if (m == MAP_FAILED)
		return perror("mmap"), 1;
	printf("clients: one cowguardd serving clients that write and pin at "
	       "once\n");
	printf("each:    %lu KiB region, per round: register, %d faulting "
	       "writes, a %lu KiB pin, unregister; %.0f s a run\n",
	       PAGES * PAGE / 1024, PAGES / STRIDE, PIN_LEN / 1024, secs);
	run_clients(m, 1, secs, &base);
	run_clients(m, n, secs, &many);
	if (base.error || many.error || !base.writes || !many.writes) {
		printf("clients: failed (%s)\n",
		       cg_strerror(base.error ? base.error : many.error));
		return 1;
	}
	printf("\n%7s %12s %9s %9s %9s %9s %9s\n", "clients", "writes/s",
	       "vs 1", "p50 us", "p99 us", "p99 vs 1", "writes");
	print_run(&base, &base);
	print_run(&many, &base);
	return 0;
}
