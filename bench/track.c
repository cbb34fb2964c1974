// SPDX-License-Identifier: MIT
/*
 * bench/track: what one collect of write tracking costs.
 *
 * A populated region (64 MiB of 4 KiB pages by default) is tracked, one
 * page in --stride is written, and the written pages are collected and
 * armed again; only the collect is timed, per round, methods interleaved:
 *   soft-dirty  write "4" to /proc/self/clear_refs, then read the region's
 *               pagemap and pick the soft-dirty pages (bit 55): what CRIU
 *               did before PAGEMAP_SCAN (the clear is the re-arm); skipped
 *               where the kernel has no soft-dirty (bit 55 never set)
 *   wp-async    the kernel's own tracker: uffd-wp with WP_ASYNC, one
 *               PAGEMAP_SCAN that reads and protects again the written
 *               pages (6.7+)
 *   cg_track_collect over the region, embedded and through the daemon, on
 *               the fault path (its 64 KiB window: a write reports its
 *               window), embedded with a window of one page, and with
 *               asynchronous protection (COWGUARD_WP=async here, and a
 *               daemon at COWGUARD_ASYNC_SOCKET).
 * The first write of each page is not timed here (bench/wp-fault times
 * it).  Reported: µs per collect, ns per written page, pages reported
 * against those written (--kind thp or hugetlb: what a whole unit's
 * report costs there), ratio to wp-async.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench.h"
#include "cowguard.h"
#include "kernel/compat.h"

#define PG 4096UL

enum kind { K_4K, K_THP, K_HUGETLB };
static const char *const kind_names[] = { "4k", "thp", "hugetlb" };

struct cfg {
	size_t len, stride;
	int rounds;
	enum kind kind;
};

enum { M_SOFT, M_ASYNC, M_EMB, M_DMN, M_EMB_PAGE, M_EMB_ASYNC, M_DMN_ASYNC, M_N };
static const char *const names[M_N] = {
	"soft-dirty (clear_refs + pagemap)", "WP_ASYNC + PAGEMAP_SCAN",
	"cg_track_collect, embedded", "cg_track_collect, daemon",
	"cg_track_collect, embedded, per page", "cg_track_collect, emb., async",
	"cg_track_collect, daemon, async",
};

/*
 * A handle for method m: the daemon's at COWGUARD_SOCKET (or, async,
 * COWGUARD_ASYNC_SOCKET: scripts/run-bench.sh starts both), or an
 * embedded engine as the method asks.
 */
static int open_cg(int m, struct cg **cg)
{
	bool daemon = m == M_DMN || m == M_DMN_ASYNC;
	struct cg_options o = {
		.mode = daemon ? CG_MODE_DAEMON : CG_MODE_EMBEDDED,
		.socket_path = !daemon ? NULL : getenv(m == M_DMN_ASYNC
						       ? "COWGUARD_ASYNC_SOCKET"
						       : "COWGUARD_SOCKET"),
	};
	int err;

	if (daemon && !o.socket_path)
		return -ECONNREFUSED;
	if (m == M_EMB_ASYNC)
		setenv("COWGUARD_WP", "async", 1);
	if (m == M_EMB_PAGE)
		setenv("COWGUARD_WP_AROUND", "4", 1);
	err = cg_open(&o, sizeof(o), cg);
	unsetenv("COWGUARD_WP");
	unsetenv("COWGUARD_WP_AROUND");
	if (!err && (m == M_EMB_ASYNC || m == M_DMN_ASYNC) &&
	    !(cg_features(*cg) & UFFD_FEATURE_WP_ASYNC))
		err = -EOPNOTSUPP;
	return err;
}

/* THP memory: 2 MiB-aligned, huge pages asked for before the first touch. */
static char *thp_region(size_t len)
{
	const size_t pmd = 2UL << 20;
	char *raw = mmap(NULL, len + pmd, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *p;

	if (raw == MAP_FAILED)
		return NULL;
	p = (char *)(((uintptr_t)raw + pmd - 1) & ~(pmd - 1));
	if (p > raw)
		munmap(raw, (size_t)(p - raw));
	munmap(p + len, (size_t)(raw + pmd - p));
	madvise(p, len, MADV_HUGEPAGE);
	return p;
}

/* A populated region of the kind asked for, or NULL. */
static char *region(const struct cfg *c)
{
	char *p = c->kind == K_THP ? thp_region(c->len)
		  : mmap(NULL, c->len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS |
				 (c->kind == K_HUGETLB ? MAP_HUGETLB : 0),
			 -1, 0);

	if (!p || p == MAP_FAILED)
		return NULL;
	if (c->kind == K_4K)
		madvise(p, c->len, MADV_NOHUGEPAGE);
	memset(p, 1, c->len);
	return p;
}

static void write_some(char *p, const struct cfg *c)
{
	for (size_t off = 0; off < c->len; off += c->stride * PG)
		p[off]++;
}

static size_t written_pages(const struct cfg *c)
{
	return (c->len / PG + c->stride - 1) / c->stride;
}

/* Collect by soft-dirty: pages found, or -errno. */
static long soft_collect(int pagemap, char *p, size_t len)
{
	long found = bench_soft_dirty_count(pagemap, (uintptr_t)p, (uintptr_t)p + len);
	int ret = found < 0 ? 0 : bench_soft_dirty_clear();

	return ret ? ret : found;
}

static long cg_collect(struct cg *cg, char *p, size_t len)
{
	static struct cg_range r[1024];
	void *next = p;
	long found = 0;

	while ((char *)next < p + len) {
		char *at = next;
		int n = cg_track_collect(cg, at, p + len - at, r, 1024, &next);

		if (n < 0)
			return n;
		for (int i = 0; i < n; i++)
			found += (long)(r[i].len / PG);
	}
	return found;
}

/* A uffd protecting p asynchronously, or -errno. */
static int async_uffd(char *p, size_t len)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	struct uffdio_api api = { .api = UFFD_API,
				  .features = UFFD_FEATURE_WP_ASYNC |
					      UFFD_FEATURE_WP_UNPOPULATED |
					      UFFD_FEATURE_WP_HUGETLBFS_SHMEM };
	struct uffdio_register reg = {
		.range = { (uintptr_t)p, len }, .mode = UFFDIO_REGISTER_MODE_WP,
	};
	struct uffdio_writeprotect wp = {
		.range = { (uintptr_t)p, len }, .mode = UFFDIO_WRITEPROTECT_MODE_WP,
	};

	if (fd < 0)
		return -errno;
	if (ioctl(fd, UFFDIO_API, &api) || ioctl(fd, UFFDIO_REGISTER, &reg) ||
	    ioctl(fd, UFFDIO_WRITEPROTECT, &wp)) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

/* One timed collect by method m: µs, or a negative errno. */
static double run_one(int m, const struct cfg *c, long *found)
{
	int pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	char *p = region(c);
	struct cg *cg = NULL;
	int uffd = -1, err = 0;
	uint64_t t0 = 0, t1 = 0;

	if (!p || pagemap < 0)
		return -ENOMEM;
	if (m == M_SOFT)
		err = bench_soft_dirty_clear();
	else if (m == M_ASYNC)
		err = uffd = async_uffd(p, c->len);
	else if (!(err = open_cg(m, &cg)))
		err = cg_register(cg, p, c->len, 0);
	if (err >= 0 && m >= M_EMB)
		err = (int)cg_collect(cg, p, c->len);	/* what registration left */
	if (err >= 0) {
		write_some(p, c);
		t0 = bench_now_ns();
		*found = m == M_SOFT ? soft_collect(pagemap, p, c->len)
			 : m == M_ASYNC ? (long)bench_scan_written(pagemap, (uintptr_t)p,
							    (uintptr_t)p + c->len, PG)
					: cg_collect(cg, p, c->len);
		t1 = bench_now_ns();
		err = *found < 0 ? (int)*found : 0;
		/* Bit 55 never set: a kernel built without CONFIG_MEM_SOFT_DIRTY. */
		if (m == M_SOFT && !*found)
			err = -EOPNOTSUPP;
	}
	if (cg)
		cg_close(cg);
	if (uffd >= 0)
		close(uffd);
	close(pagemap);
	munmap(p, c->len);
	return err < 0 ? err : (double)(t1 - t0) / 1e3;
}

static void usage(FILE *f, const char *argv0)
{
	fprintf(f,
		"usage: %s [--mib N] [--stride S] [--kind K] [--rounds R] [--quick]\n"
		"  --mib N       region size in MiB (default 64)\n"
		"  --stride S    one 4 KiB page written in S (default 16)\n"
		"  --kind K      4k (default), thp or hugetlb (2 MiB pages, from\n"
		"                the pool): what each method reports for them\n"
		"  --rounds R    interleaved rounds, median reported (default 5, at most 32)\n"
		"  --quick       smoke test: 8 MiB, 2 rounds\n", argv0);
}

static bool parse_kind(const char *s, struct cfg *c)
{
	for (c->kind = K_4K; c->kind <= K_HUGETLB; c->kind++)
		if (!strcmp(s, kind_names[c->kind]))
			return true;
	return false;
}

/* The options, as the other benchmarks take them (scripts/run-bench.sh). */
static int parse_args(int argc, char **argv, struct cfg *c)
{
	static const struct option opts[] = {
		{ "mib", required_argument, NULL, 'm' },
		{ "stride", required_argument, NULL, 's' },
		{ "kind", required_argument, NULL, 'k' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "quick", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	size_t mib = 0, stride = 16, rounds = 0;
	bool quick = false, ok = true;
	int opt;

	c->kind = K_4K;

	while (ok && (opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt == 'm')
			ok = bench_parse_size(optarg, 1 << 20, &mib) && mib;
		else if (opt == 's')
			ok = bench_parse_size(optarg, 1 << 20, &stride) && stride;
		else if (opt == 'r')
			ok = bench_parse_size(optarg, 32, &rounds) && rounds;
		else if (opt == 'k')
			ok = parse_kind(optarg, c);
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
	c->len = (mib ? mib : quick ? 8 : 64) << 20;
	c->stride = stride;
	c->rounds = rounds ? (int)rounds : quick ? 2 : 5;
	return 0;
}

int main(int argc, char **argv)
{
	struct cfg c;
	double us[M_N][32];
	long found[M_N] = { 0 };
	int bad[M_N] = { 0 };

	if (parse_args(argc, argv, &c))
		return 2;
	bench_warm_vm(256 << 20, false);
	printf("track: one collect after writing 1 page in %zu of %zu MiB of "
	       "%s memory, %d rounds, median (COWGUARD_WP=%s)\n", c.stride,
	       c.len >> 20, kind_names[c.kind], c.rounds,
	       getenv("COWGUARD_WP") ? getenv("COWGUARD_WP") : "");
	for (int r = 0; r < c.rounds; r++)
		for (int k = 0; k < M_N; k++) {
			int m = (k + r) % M_N;

			us[m][r] = run_one(m, &c, &found[m]);
			bad[m] |= us[m][r] < 0;
		}
	for (int m = 0; m < M_N; m++) {
		double med;

		if (bad[m]) {
			printf("  %-36s skipped: %s\n", names[m],
			       strerror((int)-us[m][0]));
			continue;
		}
		med = bench_median(us[m], c.rounds);
		printf("  %-36s %9.1f us  %7.1f ns/written page  %6ld pages "
		       "reported (%.1fx the written)  ", names[m], med,
		       med * 1e3 / (double)written_pages(&c), found[m],
		       (double)found[m] / (double)written_pages(&c));
		if (!bad[M_ASYNC])
			bench_print_ratio(med, bench_median(us[M_ASYNC], c.rounds));
		printf("\n");
	}
	return 0;
}
