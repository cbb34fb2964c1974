// SPDX-License-Identifier: MIT
/*
 * bench/restore: a snapshot image given back, lazily against eagerly.
 *
 * A region (256 MiB of 4 KiB pages by default, --thp for THP) is filled,
 * saved with cg_snapshot() into a file in /dev/shm (the page cache: no
 * disk is timed), unmapped, and given back at its address, methods
 * interleaved round by round:
 *   eager read    mmap the region and pread every run of the image into
 *                 it: the program waits for all of it
 *   lazy restore  cg_restore_start(), then a read of the region's last
 *                 page (its fault served ahead of the drain: the time to
 *                 the first byte), then cg_restore_wait() (all in)
 *   lazy, as read the same with CG_RESTORE_CHECK_AS_READ: runs checked
 *                 when read, not the whole image first (6.6+)
 * Reported, median of the rounds: ms and GB/s; CRIU's published lazy
 * drain (10 GiB in 3.16 s on one CPU: 3.2 GB/s) is quoted for scale, not
 * measured here.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"
#include "cowguard.h"
#include "image/image.h"

#define PG 4096UL

struct cfg {
	size_t len;
	int rounds;
	bool thp;
};

enum { M_EAGER, M_LAZY, M_AS_READ, M_N };

struct sample {
	double first_ms, all_ms;
	int err;
};

static char *map_at(void *at, size_t len, bool thp)
{
	char *p = mmap(at, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS |
			       (at ? MAP_FIXED_NOREPLACE : 0), -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	madvise(p, len, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	return p;
}

/* The region at p, saved: the image's fd, or -errno. */
static int save(char *p, const struct cfg *c)
{
	struct cg_options o = { .mode = CG_MODE_EMBEDDED };
	char path[] = "/dev/shm/cg-bench-restore-XXXXXX";
	int fd = mkstemp(path), ret;
	struct cg *cg;

	if (fd < 0)
		return -errno;
	unlink(path);
	ret = cg_open(&o, sizeof(o), &cg);
	if (ret)
		return ret;
	ret = cg_register(cg, p, c->len, 0);
	if (!ret)
		ret = cg_snapshot(cg, fd, 0, NULL, 0);
	cg_close(cg);
	return ret ? ret : fd;
}

static int eager(int fd, char *at, const struct cfg *c)
{
	struct cg__img img;
	char *p = map_at(at, c->len, c->thp);
	int ret = p ? cg__img_open(&img, fd) : -ENOMEM;

	for (uint64_t i = 0; !ret && i < img.h.nruns; i++)
		ret = cg__img_pread(fd, p + (img.runs[i].addr - (uintptr_t)p),
				    img.runs[i].len, img.runs[i].off);
	if (p)
		cg__img_close(&img);
	return ret;
}

static struct sample run_one(int m, int fd, char *at, const struct cfg *c)
{
	struct sample s = { 0 };
	struct cg_restore *r;
	uint64_t t0 = bench_now_ns();

	if (m == M_EAGER) {
		s.err = eager(fd, at, c);
		s.first_ms = s.all_ms = (double)(bench_now_ns() - t0) / 1e6;
	} else {
		s.err = cg_restore_start(NULL, fd, m == M_AS_READ ?
					 CG_RESTORE_CHECK_AS_READ : 0, &r);
		if (!s.err) {
			volatile char x = at[c->len - 1];

			(void)x;
			s.first_ms = (double)(bench_now_ns() - t0) / 1e6;
			s.err = cg_restore_wait(r, NULL, 0);
			s.all_ms = (double)(bench_now_ns() - t0) / 1e6;
		}
	}
	munmap(at, c->len);
	return s;
}

static void usage(FILE *f, const char *argv0)
{
	fprintf(f,
		"usage: %s [--mib N] [--rounds R] [--thp] [--quick]\n"
		"  --mib N       region size in MiB (default 256)\n"
		"  --rounds R    interleaved rounds, median reported (default 5, at most 32)\n"
		"  --thp         THP memory (default 4 KiB pages)\n"
		"  --quick       smoke test: 16 MiB, 2 rounds\n", argv0);
}

static int parse_args(int argc, char **argv, struct cfg *c)
{
	static const struct option opts[] = {
		{ "mib", required_argument, NULL, 'm' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "thp", no_argument, NULL, 't' },
		{ "quick", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	size_t mib = 0, rounds = 0;
	bool quick = false, ok = true;
	int opt;

	while (ok && (opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt == 'm')
			ok = bench_parse_size(optarg, 1 << 20, &mib) && mib;
		else if (opt == 'r')
			ok = bench_parse_size(optarg, 32, &rounds) && rounds;
		else if (opt == 't')
			c->thp = true;
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

int main(int argc, char **argv)
{
	static const char *const names[M_N] = { "eager read", "lazy restore",
						"lazy, as read" };
	struct sample v[M_N][32];
	struct cfg c = { 0 };
	char *p;
	int fd;

	if (parse_args(argc, argv, &c))
		return 2;
	bench_warm_vm(2 * c.len, false);
	p = map_at(NULL, c.len, c.thp);
	if (!p)
		return 1;
	for (size_t off = 0; off < c.len; off += PG)
		memset(p + off, (int)(off / PG), PG);
	fd = save(p, &c);
	if (fd < 0) {
		printf("restore: skipped: the snapshot failed: %s\n",
		       cg_strerror(fd));
		return 0;
	}
	munmap(p, c.len);
	printf("restore: %zu MiB of %s from an image in /dev/shm, %d rounds, "
	       "median\n", c.len >> 20, c.thp ? "THP" : "4 KiB pages", c.rounds);
	for (int r = 0; r < c.rounds; r++)
		for (int k = 0; k < M_N; k++)
			v[(k + r) % M_N][r] = run_one((k + r) % M_N, fd, p, &c);
	for (int m = 0; m < M_N; m++) {
		double first[32], all[32], med;

		for (int r = 0; r < c.rounds; r++) {
			if (v[m][r].err == -EOPNOTSUPP && m == M_AS_READ)
				break;
			if (v[m][r].err) {
				printf("  %-14s failed: %s\n", names[m],
				       cg_strerror(v[m][r].err));
				return 1;
			}
			first[r] = v[m][r].first_ms;
			all[r] = v[m][r].all_ms;
		}
		if (v[m][0].err) {
			printf("  %-14s skipped: no UFFD_FEATURE_POISON (6.6+)\n",
			       names[m]);
			continue;
		}
		med = bench_median(all, c.rounds);
		printf("  %-14s first byte %8.3f ms   all in %8.1f ms  %5.2f GB/s\n",
		       names[m], bench_median(first, c.rounds), med,
		       (double)c.len / med / 1e6);
	}
	printf("  CRIU lazy-pages, published: 10 GiB in 3.16 s on one CPU, "
	       "3.2 GB/s (not measured here)\n");
	close(fd);
	return 0;
}
