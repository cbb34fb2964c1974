// SPDX-License-Identifier: MIT
/*
 * bench/snapshot: what a live snapshot costs the program that runs under
 * it, against the fork-based snapshot Redis's BGSAVE takes.
 *
 * A populated region (256 MiB of 4 KiB pages by default) is written all
 * the time by a program thread: one word a page, page after page, each
 * write timed.  Methods, interleaved round by round, each saving the
 * whole region to a file in --dir:
 *   idle         no snapshot: the program's own pace, the baseline
 *   fork         fork(); the child writes the region to the file and
 *                exits; the parent's writes pay a copy-on-write each
 *   cg_snapshot  embedded, and through the daemon at COWGUARD_SOCKET
 *                (skipped without one)
 * A handle registers the region SETTLE_MS before its snapshot, the
 * program writing meanwhile, as a program tracked for a while would be.
 * Reported, median of the rounds: the snapshot's time and GB/s, the
 * program's longest stall (the longest gap between two of its writes
 * while the snapshot ran), and its writes per ms then against idle (the
 * slowdown); for cg_snapshot also its freeze, the writes that waited for
 * their page and the write faults.  The files go to /dev/shm by default,
 * so that no disk writeback is timed (neither method syncs).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "cowguard.h"

#define PG 4096UL
#define IDLE_MS 50
#define SETTLE_MS 100

struct cfg {
	size_t len;
	int rounds;
	const char *dir;
};

enum { M_IDLE, M_FORK, M_EMB, M_DMN, M_N };
static const char *const names[M_N] = {
	"idle (no snapshot)", "fork + write (BGSAVE)", "cg_snapshot, embedded",
	"cg_snapshot, daemon",
};

struct program {
	char *p;
	size_t pages;
	_Atomic bool stop;
	_Atomic uint64_t writes, max_gap_ns;
};

static void *program_main(void *arg)
{
	struct program *g = arg;
	uint64_t last = bench_now_ns();

	for (size_t k = 0; !atomic_load_explicit(&g->stop, memory_order_relaxed);
	     k++) {
		uint64_t now, gap;

		((volatile uint64_t *)(g->p + (k % g->pages) * PG))[1] = k;
		now = bench_now_ns();
		gap = now - last;
		last = now;
		if (gap > atomic_load_explicit(&g->max_gap_ns, memory_order_relaxed))
			atomic_store_explicit(&g->max_gap_ns, gap,
					      memory_order_relaxed);
		atomic_fetch_add_explicit(&g->writes, 1, memory_order_relaxed);
	}
	return NULL;
}

struct sample {
	double ms;		/* the snapshot, or the idle window */
	double stall_us;	/* the longest gap between two writes */
	double writes_per_ms;
	double waits, faults;	/* cg_snapshot: writes that waited; faults */
	double freeze_us;	/* cg_snapshot: its begin */
	int err;
};

/* Write all of len bytes at p to fd, from offset 0. */
static int write_region(int fd, const char *p, size_t len)
{
	for (size_t off = 0; off < len;) {
		ssize_t n = pwrite(fd, p + off, len - off, (off_t)off);

		if (n <= 0)
			return n ? -errno : -EIO;
		off += (size_t)n;
	}
	return 0;
}

static int fork_snapshot(int fd, const char *p, size_t len)
{
	pid_t pid = fork();
	int status;

	if (pid < 0)
		return -errno;
	if (pid == 0)
		_exit(write_region(fd, p, len) ? 1 : 0);
	if (waitpid(pid, &status, 0) != pid)
		return -errno;
	return WIFEXITED(status) && !WEXITSTATUS(status) ? 0 : -EIO;
}

/*
 * A handle for method m with the region registered, not timed, and the
 * program running under it a while first: a snapshot is taken of a
 * program tracked for some time, whose pages its writes have opened.
 */
static int open_cg(int m, struct program *g, size_t len, struct cg **cg)
{
	struct cg_options o = { .mode = m == M_DMN ? CG_MODE_DAEMON
						   : CG_MODE_EMBEDDED };
	int ret = cg_open(&o, sizeof(o), cg);

	if (ret)
		return ret;
	ret = cg_register(*cg, g->p, len, 0);
	if (ret)
		cg_close(*cg);
	else
		usleep(SETTLE_MS * 1000);
	return ret;
}

/* cg_snapshot, with the writes that waited and the write faults served. */
static int snapshot_counted(struct cg *cg, int fd, struct sample *s)
{
	struct cg_snapshot_info info;
	struct cg_stats st[2];
	int ret = cg_stats(cg, &st[0], sizeof(st[0]));

	if (!ret)
		ret = cg_snapshot(cg, fd, 0, &info, sizeof(info));
	if (!ret)
		ret = cg_stats(cg, &st[1], sizeof(st[1]));
	if (!ret) {
		s->waits = (double)info.waits;
		s->freeze_us = (double)info.begin_ns / 1e3;
		s->faults = (double)(st[1].wp_faults - st[0].wp_faults);
	}
	return ret;
}

static struct sample run_one(int m, struct program *g, const struct cfg *c)
{
	char path[4096];
	struct sample s = { 0 };
	struct cg *cg = NULL;
	uint64_t t0, t1;
	int fd;

	snprintf(path, sizeof(path), "%s/cg-bench-snapshot-XXXXXX", c->dir);
	fd = mkstemp(path);
	if (fd < 0) {
		s.err = -errno;
		return s;
	}
	unlink(path);
	if (m == M_EMB || m == M_DMN)
		s.err = open_cg(m, g, c->len, &cg);
	atomic_store(&g->max_gap_ns, 0);
	atomic_store(&g->writes, 0);
	t0 = bench_now_ns();
	if (s.err)
		;
	else if (m == M_IDLE)
		usleep(IDLE_MS * 1000);
	else if (m == M_FORK)
		s.err = fork_snapshot(fd, g->p, c->len);
	else
		s.err = snapshot_counted(cg, fd, &s);
	t1 = bench_now_ns();
	s.stall_us = (double)atomic_load(&g->max_gap_ns) / 1e3;
	s.writes_per_ms = (double)atomic_load(&g->writes) / ((double)(t1 - t0) / 1e6);
	s.ms = (double)(t1 - t0) / 1e6;
	if (cg)
		cg_close(cg);
	close(fd);
	return s;
}

static void usage(FILE *f, const char *argv0)
{
	fprintf(f,
		"usage: %s [--mib N] [--rounds R] [--dir DIR] [--quick]\n"
		"  --mib N       region size in MiB (default 256)\n"
		"  --rounds R    interleaved rounds, median reported (default 5, at most 32)\n"
		"  --dir DIR     where the snapshot files go (default /dev/shm: no\n"
		"                disk writeback in the times)\n"
		"  --quick       smoke test: 16 MiB, 2 rounds\n", argv0);
}

static int parse_args(int argc, char **argv, struct cfg *c)
{
	static const struct option opts[] = {
		{ "mib", required_argument, NULL, 'm' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "dir", required_argument, NULL, 'd' },
		{ "quick", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	size_t mib = 0, rounds = 0;
	bool quick = false, ok = true;
	int opt;

	c->dir = access("/dev/shm", W_OK) ? "/var/tmp" : "/dev/shm";
	while (ok && (opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt == 'm')
			ok = bench_parse_size(optarg, 1 << 20, &mib) && mib;
		else if (opt == 'r')
			ok = bench_parse_size(optarg, 32, &rounds) && rounds;
		else if (opt == 'd')
			c->dir = optarg;
		else if (opt == 'q')
			quick = true;
		else if (opt == 'h') {
			usage(stdout, argv[0]);
			exit(0);
		} else
			ok = false;
	}
	if (!ok || optind != argc) {
		usage(stderr, argv[0]);
		return -1;
	}
	c->len = (mib ? mib : quick ? 16 : 256) << 20;
	c->rounds = rounds ? (int)rounds : quick ? 2 : 5;
	return 0;
}

static void report(int m, struct sample v[][32], const struct cfg *c,
		   double idle_rate)
{
	double ms[32], stall[32], rate[32], waits[32], faults[32], freeze[32];
	double med_ms;

	for (int r = 0; r < c->rounds; r++) {
		if (v[m][r].err) {
			printf("  %-24s skipped: %s\n", names[m],
			       cg_strerror(v[m][r].err));
			return;
		}
		ms[r] = v[m][r].ms;
		stall[r] = v[m][r].stall_us;
		rate[r] = v[m][r].writes_per_ms;
		waits[r] = v[m][r].waits;
		faults[r] = v[m][r].faults;
		freeze[r] = v[m][r].freeze_us;
	}
	med_ms = bench_median(ms, c->rounds);
	if (m == M_IDLE)
		printf("  %-24s %9s %9s", names[m], "-", "-");
	else
		printf("  %-24s %7.1f ms %5.2f GB/s", names[m], med_ms,
		       (double)c->len / med_ms / 1e6);
	printf("  stall %9.1f us  %8.0f writes/ms ",
	       bench_median(stall, c->rounds), bench_median(rate, c->rounds));
	bench_print_ratio(idle_rate, bench_median(rate, c->rounds));
	if (m == M_EMB || m == M_DMN)
		printf("  freeze %.0f us, %.0f waited, %.0f faults",
		       bench_median(freeze, c->rounds),
		       bench_median(waits, c->rounds),
		       bench_median(faults, c->rounds));
	printf("\n");
}

int main(int argc, char **argv)
{
	static struct sample v[M_N][32];
	struct program g = { 0 };
	double idle[32];
	pthread_t t;
	struct cfg c;

	if (parse_args(argc, argv, &c))
		return 2;
	bench_warm_vm(2 * c.len, false);
	g.p = mmap(NULL, c.len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (g.p == MAP_FAILED)
		return 1;
	madvise(g.p, c.len, MADV_NOHUGEPAGE);
	memset(g.p, 1, c.len);
	g.pages = c.len / PG;
	if (pthread_create(&t, NULL, program_main, &g))
		return 1;
	printf("snapshot: %zu MiB of 4 KiB pages written a word a page by a "
	       "program thread, %d rounds, median; slowdown = idle writes/ms "
	       "over the method's\n", c.len >> 20, c.rounds);
	for (int r = 0; r < c.rounds; r++)
		for (int k = 0; k < M_N; k++) {
			int m = (k + r) % M_N;

			v[m][r] = run_one(m, &g, &c);
		}
	atomic_store(&g.stop, true);
	pthread_join(t, NULL);
	for (int r = 0; r < c.rounds; r++)
		idle[r] = v[M_IDLE][r].writes_per_ms;
	for (int m = 0; m < M_N; m++)
		report(m, v, &c, bench_median(idle, c.rounds));
	munmap(g.p, c.len);
	return 0;
}
