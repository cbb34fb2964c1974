/* SPDX-License-Identifier: MIT */
/*
 * preload: what cowguard-run costs a program that was not written for it
 * (issue 13's benchmark).  Each case runs a program with and without the
 * shim, interleaved, several rounds, and prints the median of each and
 * their ratio:
 *
 *   vmsplice  this program in child mode (it knows nothing of cowguard):
 *             N MiB filled, a child forked that keeps them shared, then
 *             all of it vmspliced into a pipe 1 MiB at a time and spliced
 *             on to /dev/null.  The reference makes the pages its own
 *             first with MADV_POPULATE_WRITE (what a careful program would
 *             do by hand); the shim pins instead, through cowguardd
 *             ($COWGUARD_SOCKET), registering the mapping on the first
 *             call.  Timed inside the program, from the first call.
 *   fio       fio (if installed) with io_uring, fixed buffers, O_DIRECT,
 *             4 KiB random writes, queue depth 16, 3 s a run, in
 *             /var/tmp: write bandwidth and p99 completion latency.  No
 *             page needs unsharing there: this is the shim's overhead.
 *   write     this program in child mode: 200000 write(2)s to /dev/null of
 *             4 KiB and of 100 bytes, of 4 KiB after a fork, and of 4 KiB
 *             after a fork with an O_DIRECT file open (only then does the
 *             odirect hook ask fcntl whether the fd is O_DIRECT, for
 *             lengths a multiple of 512): nanoseconds per write, the
 *             hook's cost on writes that are not direct I/O.
 *
 * Run: preload [--mib N] [--rounds R] [--quick]
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define CHUNK MIB
#define MAX_ROUNDS 16

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* Child mode: the timed vmsplice of mib MiB; prints the milliseconds. */
static int vmsplice_child(size_t mib, bool populate)
{
	size_t len = mib * MIB;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int pfd[2], go[2], null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	uint64_t t0;
	pid_t pid;
	char c;

	if (p == MAP_FAILED || null < 0 || pipe(pfd) || pipe(go))
		return 2;
	fcntl(pfd[1], F_SETPIPE_SZ, (int)CHUNK);
	memset(p, 'A', len);
	pid = fork();
	if (pid == 0)
		_exit(read(go[0], &c, 1) == 1 ? 0 : 2);
	t0 = bench_now_ns();
	if (populate && madvise(p, len, MADV_POPULATE_WRITE))
		return 2;
	for (size_t off = 0; off < len; off += CHUNK) {
		struct iovec iov = { p + off, CHUNK };
		ssize_t n = vmsplice(pfd[1], &iov, 1, 0);

		if (n != (ssize_t)CHUNK ||
		    splice(pfd[0], NULL, null, NULL, CHUNK, 0) != (ssize_t)CHUNK)
			return 2;
	}
	printf("%.3f\n", (double)(bench_now_ns() - t0) / 1e6);
	if (write(go[1], "g", 1) != 1 || waitpid(pid, NULL, 0) != pid)
		return 2;
	return 0;
}

#define WRITES 200000

/*
 * Child mode: WRITES writes of size bytes to /dev/null, after a fork if
 * forked, with an O_DIRECT file open in /var/tmp if direct; prints ns
 * each.
 */
static int write_child(size_t size, bool forked, bool direct)
{
	static char buf[4096];
	int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	uint64_t t0;
	pid_t pid;

	if (null < 0 || size > sizeof(buf))
		return 2;
	if (direct && open("/var/tmp", O_TMPFILE | O_RDWR | O_DIRECT |
			   O_CLOEXEC, 0600) < 0)
		return 2;
	if (forked) {
		pid = fork();
		if (pid == 0)
			_exit(0);
		if (pid < 0 || waitpid(pid, NULL, 0) != pid)
			return 2;
	}
	t0 = bench_now_ns();
	for (int i = 0; i < WRITES; i++)
		if (write(null, buf, size) != (ssize_t)size)
			return 2;
	printf("%.1f\n", (double)(bench_now_ns() - t0) / WRITES);
	return 0;
}

/* Run a command line; its first number on stdout, or -1. */
static double run_number(const char *cmd)
{
	FILE *f = popen(cmd, "r");
	double v = -1;

	if (!f)
		return -1;
	if (fscanf(f, "%lf", &v) != 1)
		v = -1;
	return pclose(f) == 0 ? v : -1;
}

/* The build tree this program lives in (build/bench/..). */
static const char *build_dir(const char *argv0)
{
	static char dir[PATH_MAX];
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	(void)argv0;
	if (n <= 0)
		return "build";
	self[n] = 0;
	snprintf(dir, sizeof(dir), "%s/..", dirname(self));
	return dir;
}

static void row(const char *what, const char *unit, double *ref, double *shim,
		int rounds)
{
	double r = bench_median(ref, rounds), s = bench_median(shim, rounds);

	printf("  %-34s %10.2f %10.2f %s", what, r, s, unit);
	bench_print_ratio(s, r);
	printf("\n");
}

static void bench_vmsplice(const char *build, size_t mib, int rounds)
{
	double ref[MAX_ROUNDS], shim[MAX_ROUNDS];
	char cmd[2 * PATH_MAX];

	for (int i = 0; i < rounds; i++) {
		snprintf(cmd, sizeof(cmd), "%s/bench/preload --child-vmsplice %zu "
			 "--populate", build, mib);
		ref[i] = run_number(cmd);
		snprintf(cmd, sizeof(cmd), "%s/cowguard-run --mode daemon -- "
			 "%s/bench/preload --child-vmsplice %zu", build, build, mib);
		shim[i] = run_number(cmd);
		if (ref[i] < 0 || shim[i] < 0) {
			printf("  vmsplice: a run failed (no cowguardd at "
			       "$COWGUARD_SOCKET, or no MADV_POPULATE_WRITE): "
			       "skipped\n");
			return;
		}
	}
	printf("  %-34s %10s %10s\n", "", "populate", "shim");
	row("vmsplice after fork, ms", "ms", ref, shim, rounds);
}

static void bench_write(const char *build, int rounds)
{
	static const struct {
		size_t size;
		const char *opt, *what;
	} cases[] = {
		{ 4096, "", "write(2) of 4096 bytes, ns" },
		{ 100, "", "write(2) of 100 bytes, ns" },
		{ 4096, "--forked", "write(2) of 4096 after a fork, ns" },
		{ 4096, "--forked --direct", "the same, an O_DIRECT fd open, ns" },
	};
	double ref[MAX_ROUNDS], shim[MAX_ROUNDS];
	char cmd[2 * PATH_MAX];

	printf("  %-34s %10s %10s\n", "", "plain", "shim");
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		for (int i = 0; i < rounds; i++) {
			snprintf(cmd, sizeof(cmd), "%s/bench/preload "
				 "--child-write %zu %s", build, cases[k].size,
				 cases[k].opt);
			ref[i] = run_number(cmd);
			snprintf(cmd, sizeof(cmd), "%s/cowguard-run --mode daemon "
				 "-- %s/bench/preload --child-write %zu %s", build,
				 build, cases[k].size, cases[k].opt);
			shim[i] = run_number(cmd);
			if (ref[i] < 0 || shim[i] < 0) {
				printf("  write: a run failed: skipped\n");
				return;
			}
		}
		row(cases[k].what, "ns", ref, shim, rounds);
	}
}

/* fio's JSON: the write bandwidth (KiB/s) and p99 latency (us) in *bw, *p99. */
static bool fio_run(const char *prefix, const char *dir, double *bw,
		    double *p99)
{
	char cmd[2 * PATH_MAX], out[65536];
	FILE *f;
	size_t n;
	char *w, *b, *p;

	snprintf(cmd, sizeof(cmd), "%s fio --name=b --directory=%s "
		 "--ioengine=io_uring --fixedbufs --direct=1 --rw=randwrite "
		 "--bs=4k --size=64M --iodepth=16 --thread --runtime=3 "
		 "--time_based --verify_state_save=0 --output-format=json "
		 "2>/dev/null", prefix, dir);
	f = popen(cmd, "r");
	if (!f)
		return false;
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = 0;
	if (pclose(f))
		return false;
	w = strstr(out, "\"write\"");
	b = w ? strstr(w, "\"bw\" :") : NULL;
	p = w ? strstr(w, "\"99.000000\" :") : NULL;
	if (!b || !p)
		return false;
	*bw = strtod(b + 6, NULL) / 1024;	/* MiB/s */
	*p99 = strtod(p + 13, NULL) / 1000;	/* us */
	return true;
}

static void bench_fio(const char *build, int rounds)
{
	double bw[2][MAX_ROUNDS], p99[2][MAX_ROUNDS];
	char dir[] = "/var/tmp/cg-bench-fio.XXXXXX", prefix[PATH_MAX];

	if (system("command -v fio >/dev/null 2>&1")) {
		printf("  fio: not installed (make deps installs it): skipped\n");
		return;
	}
	if (!mkdtemp(dir)) {
		printf("  fio: no directory in /var/tmp: skipped\n");
		return;
	}
	snprintf(prefix, sizeof(prefix), "%s/cowguard-run --mode daemon --",
		 build);
	for (int i = 0; i < rounds; i++) {
		if (!fio_run("", dir, &bw[0][i], &p99[0][i]) ||
		    !fio_run(prefix, dir, &bw[1][i], &p99[1][i])) {
			printf("  fio: a run failed (O_DIRECT in %s?): skipped\n",
			       dir);
			rounds = 0;
			break;
		}
	}
	if (rounds) {
		printf("  %-34s %10s %10s\n", "", "plain", "shim");
		row("fio io_uring fixedbufs, MiB/s", "MiB/s", bw[0], bw[1], rounds);
		row("fio p99 completion latency, us", "us", p99[0], p99[1],
		    rounds);
	}
	snprintf(prefix, sizeof(prefix), "rm -rf '%s'", dir);
	if (system(prefix))
		fprintf(stderr, "preload: could not remove %s\n", dir);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mib", required_argument, NULL, 'm' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "quick", no_argument, NULL, 'q' },
		{ "child-vmsplice", required_argument, NULL, 'c' },
		{ "populate", no_argument, NULL, 'p' },
		{ "child-write", required_argument, NULL, 'w' },
		{ "forked", no_argument, NULL, 'f' },
		{ "direct", no_argument, NULL, 'd' },
		{ 0 },
	};
	size_t mib = 256, rounds = 5, child = 0, write_size = 0;
	bool populate = false, quick = false, forked = false, direct = false;
	const char *build;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if ((c == 'm' && !bench_parse_size(optarg, 1 << 16, &mib)) ||
		    (c == 'r' && !bench_parse_size(optarg, MAX_ROUNDS, &rounds)) ||
		    (c == 'c' && !bench_parse_size(optarg, 1 << 16, &child)) ||
		    (c == 'w' && !bench_parse_size(optarg, 4096, &write_size)) ||
		    c == '?') {
			fprintf(stderr, "usage: preload [--mib N] [--rounds R] "
				"[--quick]\n");
			return 2;
		}
		quick |= c == 'q';
		populate |= c == 'p';
		forked |= c == 'f';
		direct |= c == 'd';
	}
	if (child)
		return vmsplice_child(child, populate);
	if (write_size)
		return write_child(write_size, forked, direct);
	if (quick) {
		mib = 16;
		rounds = 1;
	}
	if (!rounds)
		rounds = 1;
	build = build_dir(argv[0]);
	bench_warm_vm(quick ? 256 * MIB : 2048 * MIB, false);
	printf("preload: %zu rounds, medians; the ratio is shim / reference\n",
	       rounds);
	bench_vmsplice(build, mib, (int)rounds);
	bench_write(build, (int)rounds);
	if (!quick)
		bench_fio(build, (int)rounds);
	return 0;
}
