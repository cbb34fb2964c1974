/* SPDX-License-Identifier: MIT */
/*
 * unshare: what it costs to make N MiB that fork() left COW-shared (the
 * child still alive) exclusive again, per page kind, in us per 4 KiB page
 * and GB/s, for cowguard's read-only pin and for what the kernel does:
 *
 *   write     the kernel's COW on a write fault: one byte per 4 KiB page
 *             (the byte it already held)
 *   populate  MADV_POPULATE_WRITE of the range: the reference
 *   readpin   a read-only FOLL_PIN of each page (process_vm_readv of one
 *             byte of our own memory): how cowguard unshares from 5.19;
 *             before that it unshares nothing, and the row says so
 *   addzero   an atomic add of zero to a word of each page: the write
 *             fault cowguard takes where MADV_POPULATE_WRITE is missing
 *   odirect   the kernel's own unshare before a read-only FOLL_PIN: an
 *             O_DIRECT write of the range to a file on / (ext4); shown
 *             raw, and less "odirect-x", the same write of an exclusive
 *             range (the I/O alone), as "odirect-unshare"
 *   cg-emb    cg_pin(CG_PIN_RO) of the shared range, CG_MODE_EMBEDDED
 *   cg-dmn    the same through cowguardd at $COWGUARD_SOCKET
 *   cg-emb-x  cg_pin(CG_PIN_RO) of a range already exclusive (registered,
 *   cg-dmn-x  no fork): the cost of finding there is nothing to do
 *   cg-write-emb  no pin: the same writes as "write" to the registered
 *   cg-write-dmn  range, each a write-protect fault that cowguard resolves
 *             by unsharing the page first (through cowguardd, a hand-off
 *             to its reader process, lib/engine/touch.c)
 *   move      THP only, a reference line, no cowguard: each 2 MiB copied
 *             into a scratch THP allocated inside the timing, the shared
 *             one MADV_DONTNEED'd, the copy moved in with UFFDIO_MOVE
 *             (whole, PMD-mapped: the "copy whole" alternative to the
 *             kernel's split, lib/engine/pins.c)
 *
 * Each pass maps a fresh region, fills it, registers it (cowguard methods,
 * untimed), forks a child that waits (shared methods; timing starts once
 * the child is past its atfork handlers), times the one operation, then
 * checks it: every page present, mapped once, its content kept.  Methods
 * run interleaved within a round, in an order shuffled per round; the
 * median of the rounds is reported, with min and max.  The VM's memory is
 * warmed first (KERNEL-FACTS, "Warm the VM"), and again, twice the region
 * in THPs touched and freed, right before each timed 4 KiB or THP pass:
 * free page reporting gives idle free 2 MiB blocks back to the host, and
 * a pass's fresh THPs would otherwise land on them (bench_keep_warm()).
 * As root the 2 MiB hugetlb pool is raised for the run and restored.
 *
 * Run: unshare [--mib N] [--rounds R] [--warm-mib N] [--quick]
 *              [--only NAME,...] [--kinds 4k,thp,hugetlb]
 * (--only populate,cg-emb under `perf record` shows where a pin's time goes.)
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/userfaultfd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "sysfile.h"
#include "cowguard.h"
#include "kernel/compat.h"
#include "kernel/procfs.h"

#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << MAP_HUGE_SHIFT)
#endif

#define PG 4096UL
#define HUGE (2 * MIB)
#define MAX_ROUNDS 100
#define FILL 'A'
#define NR_2M "/proc/sys/vm/nr_hugepages"

enum kind { K_4K, K_THP, K_HUGETLB, N_KINDS };

static const char *const kind_name[N_KINDS] = { "4 KiB", "THP",
						"hugetlb 2 MiB" };

struct pass {
	enum kind kind;
	char *base;
	size_t len;
	struct cg *cg;		/* cowguard methods */
	int odirect_fd;
	size_t pmd_after;	/* THP: chunks one PMD maps after the method */
	const char *why;	/* a skipped or failed pass says why */
};

struct method {
	const char *name;
	const char *label;
	unsigned kinds;		/* 1 << enum kind */
	bool shared;		/* timed with a child sharing the range */
	int cg_mode;		/* -1: no cowguard */
	int (*run)(struct pass *ps);
};

enum state { ST_OK, ST_SKIPPED, ST_FAILED };

struct result {
	enum state state;
	int n;
	double us[MAX_ROUNDS];	/* per 4 KiB page */
	size_t pmd_min;		/* THP: fewest chunks one PMD mapped after */
	size_t chunks;		/* of these */
	char why[160];
};

struct config {
	size_t mib, warm_mib;
	int rounds;
	const char *only;	/* comma-separated method names, or NULL */
	const char *kinds;	/* "4k", "thp", "hugetlb", comma-separated */
};

static const char *daemon_socket;
static int daemon_ok;	/* 1 answers, -1 does not, 0 not tried */
static long saved_nr_2m = -1;

/* ---- the methods ---------------------------------------------------------- */

static int run_write(struct pass *ps)
{
	volatile char *p = ps->base;

	for (size_t off = 0; off < ps->len; off += PG)
		p[off] = p[off];
	return 0;
}

static int run_populate(struct pass *ps)
{
	return madvise(ps->base, ps->len, MADV_POPULATE_WRITE) ? -errno : 0;
}

static int run_readpin(struct pass *ps)
{
	struct iovec local[256], remote[256];
	char sink[256];
	size_t pages = ps->len / PG;

	for (size_t i = 0; i < pages;) {
		size_t k = pages - i < 256 ? pages - i : 256;

		for (size_t j = 0; j < k; j++) {
			local[j] = (struct iovec){ &sink[j], 1 };
			remote[j] = (struct iovec){ ps->base + (i + j) * PG, 1 };
		}
		if (process_vm_readv(getpid(), local, k, remote, k, 0) != (ssize_t)k)
			return -errno ? -errno : -EIO;
		i += k;
	}
	return 0;
}

static int run_addzero(struct pass *ps)
{
	for (size_t off = 0; off < ps->len; off += PG)
		__atomic_fetch_add((volatile uint32_t *)(ps->base + off), 0,
				   __ATOMIC_SEQ_CST);
	return 0;
}

static int run_odirect(struct pass *ps)
{
	ssize_t n = pwrite(ps->odirect_fd, ps->base, ps->len, 0);

	if (n < 0)
		return -errno;
	return (size_t)n == ps->len ? 0 : -EIO;
}

static struct cg_pin *bench_pin;

static int run_cg_pin(struct pass *ps)
{
	return cg_pin(ps->cg, ps->base, ps->len, CG_PIN_RO, &bench_pin);
}

/* A uffd that may UFFDIO_MOVE into [base, base+len). */
static int move_uffd(struct pass *ps)
{
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_MOVE };
	struct uffdio_register reg = {
		.range = { (uintptr_t)ps->base, ps->len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	int err;

	if (fd < 0)
		return -errno;
	err = ioctl(fd, UFFDIO_API, &api) || !(api.features & UFFD_FEATURE_MOVE) ||
	      ioctl(fd, UFFDIO_REGISTER, &reg) ? -EOPNOTSUPP : 0;
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

static int move_fd = -1;

/* Copy each 2 MiB to a fresh scratch THP, drop the shared one, move in. */
static int run_move(struct pass *ps)
{
	char *raw = mmap(NULL, ps->len + HUGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *scratch;
	int err = 0;

	if (raw == MAP_FAILED)
		return -errno;
	scratch = (char *)(((uintptr_t)raw + HUGE - 1) & ~(HUGE - 1));
	madvise(scratch, ps->len, MADV_HUGEPAGE);
	for (size_t off = 0; off < ps->len && !err; off += HUGE) {
		struct uffdio_move mv = {
			.dst = (uintptr_t)ps->base + off,
			.src = (uintptr_t)scratch + off,
			.len = HUGE,
		};

		memcpy(scratch + off, ps->base + off, HUGE);
		if (madvise(ps->base + off, HUGE, MADV_DONTNEED) ||
		    ioctl(move_fd, UFFDIO_MOVE, &mv))
			err = -errno;
		else if (mv.move != (int64_t)HUGE)
			err = -EIO;	/* nothing touches the hole: absent */
	}
	munmap(raw, ps->len + HUGE);
	return err;
}

enum {
	M_WRITE, M_POPULATE, M_READPIN, M_ADDZERO, M_ODIRECT, M_ODIRECT_X, M_CG_EMB, M_CG_DMN,
	M_CG_EMB_X, M_CG_DMN_X, M_CG_WRITE_EMB, M_CG_WRITE_DMN, M_MOVE, N_METHODS
};

#define ALL_KINDS ((1u << K_4K) | (1u << K_THP) | (1u << K_HUGETLB))

static const struct method methods[N_METHODS] = {
	[M_WRITE] = { "write", "kernel COW, write fault", ALL_KINDS, true, -1,
		      run_write },
	[M_POPULATE] = { "populate", "MADV_POPULATE_WRITE", ALL_KINDS, true, -1,
			 run_populate },
	[M_READPIN] = { "readpin", "read-only FOLL_PIN (process_vm_readv)",
			ALL_KINDS, true, -1, run_readpin },
	[M_ADDZERO] = { "addzero", "atomic add of zero per page", ALL_KINDS,
			true, -1, run_addzero },
	[M_ODIRECT] = { "odirect", "O_DIRECT write (kernel unshare + I/O)",
			ALL_KINDS, true, -1, run_odirect },
	[M_ODIRECT_X] = { "odirect-x", "O_DIRECT write, exclusive (I/O)",
			  ALL_KINDS, false, -1, run_odirect },
	[M_CG_EMB] = { "cg-emb", "cg_pin RO, embedded", ALL_KINDS, true,
		       CG_MODE_EMBEDDED, run_cg_pin },
	[M_CG_DMN] = { "cg-dmn", "cg_pin RO, daemon", ALL_KINDS, true,
		       CG_MODE_DAEMON, run_cg_pin },
	[M_CG_EMB_X] = { "cg-emb-x", "cg_pin RO exclusive, embedded", ALL_KINDS,
			 false, CG_MODE_EMBEDDED, run_cg_pin },
	[M_CG_DMN_X] = { "cg-dmn-x", "cg_pin RO exclusive, daemon", ALL_KINDS,
			 false, CG_MODE_DAEMON, run_cg_pin },
	[M_CG_WRITE_EMB] = { "cg-write-emb", "write faults via cowguard, embedded",
			     ALL_KINDS, true, CG_MODE_EMBEDDED, run_write },
	[M_CG_WRITE_DMN] = { "cg-write-dmn", "write faults via cowguard, daemon",
			     ALL_KINDS, true, CG_MODE_DAEMON, run_write },
	[M_MOVE] = { "move", "copy whole + UFFDIO_MOVE", 1u << K_THP, true, -1,
		     run_move },
};

/* ---- a pass ------------------------------------------------------------- */

static char *map_kind(enum kind kind, size_t len)
{
	char *p, *q;

	if (kind == K_HUGETLB) {
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE |
			 MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB, -1, 0);
		return p == MAP_FAILED ? NULL : p;
	}
	p = mmap(NULL, len + HUGE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	q = (char *)(((uintptr_t)p + HUGE - 1) & ~(HUGE - 1));
	if (q > p)
		munmap(p, (size_t)(q - p));
	munmap(q + len, (size_t)(p + HUGE - q));
	madvise(q, len, kind == K_THP ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	return q;
}

/* Pages of [p, p+len) absent, and present but mapped more than once. */
static int count_pages(const char *p, size_t len, size_t *absent,
		       size_t *shared)
{
	uint64_t pme[512];
	int fd = cg__pagemap_open(0);
	int ret = 0;

	*absent = *shared = 0;
	if (fd < 0)
		return fd;
	for (size_t off = 0; off < len && !ret; off += sizeof(pme) / 8 * PG) {
		size_t n = (len - off) / PG < 512 ? (len - off) / PG : 512;

		ret = cg__pagemap_read(fd, (uintptr_t)p + off, n, pme);
		for (size_t i = 0; !ret && i < n; i++) {
			if (!(pme[i] & PM_PRESENT))
				(*absent)++;
			else if (!(pme[i] & PM_MMAP_EXCLUSIVE))
				(*shared)++;
		}
	}
	close(fd);
	return ret;
}

/* THP chunks of the region one PMD maps. */
static size_t pmd_chunks(const char *p, size_t len)
{
	int fd = cg__pagemap_open(0);
	size_t n = 0;

	if (fd < 0)
		return 0;
	for (size_t off = 0; off < len; off += 64 * HUGE) {
		size_t l = len - off < 64 * HUGE ? len - off : 64 * HUGE;
		uint64_t mask = 0;

		if (cg__pmd_mapped(fd, (uintptr_t)p + off, l, &mask))
			break;
		n += (size_t)__builtin_popcountll(mask);
	}
	close(fd);
	return n;
}

struct child {
	pid_t pid;
	int go;
};

/* A child that keeps the range shared until told to go. */
static int fork_waiting(struct child *c)
{
	int ready[2], go[2];
	char b;

	if (pipe(ready))
		return -errno;
	if (pipe(go)) {
		close(ready[0]);
		close(ready[1]);
		return -errno;
	}
	c->pid = fork();
	if (c->pid == 0) {
		/* Past the atfork handlers: tell the parent, then wait. */
		close(ready[0]);
		close(go[1]);
		if (write(ready[1], "r", 1) != 1 || read(go[0], &b, 1) != 1)
			_exit(2);
		_exit(0);
	}
	close(ready[1]);
	close(go[0]);
	c->go = go[1];
	if (c->pid < 0) {
		close(ready[0]);
		close(go[1]);
		return -EAGAIN;
	}
	if (read(ready[0], &b, 1) != 1) {
		close(ready[0]);
		return -ECHILD;
	}
	close(ready[0]);
	return 0;
}

static int release(struct child *c)
{
	int status;

	if (write(c->go, "g", 1) != 1)
		kill(c->pid, SIGKILL);
	close(c->go);
	if (waitpid(c->pid, &status, 0) != c->pid)
		return -ECHILD;
	return WIFEXITED(status) && !WEXITSTATUS(status) ? 0 : -ECHILD;
}

static bool content_kept(const char *p, size_t len)
{
	for (size_t off = 0; off < len; off += PG)
		if (p[off] != FILL || p[off + PG - 1] != FILL)
			return false;
	return true;
}

static int open_cg(int mode, struct cg **cg)
{
	struct cg_options o = { .mode = mode, .socket_path = daemon_socket };

	return cg_open(&o, sizeof(o), cg);
}

/* One timed pass; us per 4 KiB page in *us.  1: skipped, with ps->why. */
static int run_pass(const struct method *m, struct pass *ps, double *us)
{
	size_t units = ps->len / HUGE, absent, shared;
	struct child child = { .pid = -1 };
	uint64_t t0, t1;
	int ret = 0;

	ps->base = map_kind(ps->kind, ps->len);
	if (!ps->base) {
		ps->why = "cannot map the region";
		return 1;
	}
	memset(ps->base, FILL, ps->len);
	/* A copy per shared huge page: with the pool short, the kernel would
	 * take the child's page instead, and time a reuse. */
	if (ps->kind == K_HUGETLB && m->shared &&
	    cg__hugetlb_spare(21) < (long)units) {
		ps->why = "hugetlb pool short for the copies";
		ret = 1;
		goto out_unmap;
	}
	if (m->cg_mode >= 0) {
		ret = open_cg(m->cg_mode, &ps->cg);
		if (!ret)
			ret = cg_register(ps->cg, ps->base, ps->len, 0);
		if (ret) {
			ps->why = cg_strerror(ret);
			goto out_close;
		}
	}
	if (m->run == run_move) {
		move_fd = move_uffd(ps);
		if (move_fd < 0) {
			ps->why = "no UFFD_FEATURE_MOVE";
			ret = 1;
			goto out_unmap;
		}
	}
	if (m->shared) {
		ret = fork_waiting(&child);
		if (ret) {
			ps->why = "fork failed";
			goto out_child;
		}
	}
	/* The precondition: all present, all shared (or none). */
	if (count_pages(ps->base, ps->len, &absent, &shared) || absent ||
	    shared != (m->shared ? ps->len / PG : 0)) {
		ps->why = "the range was not in the state to measure";
		ret = -EPROTO;
		goto out_child;
	}
	if (ps->kind != K_HUGETLB)
		bench_keep_warm(2 * ps->len);
	t0 = bench_now_ns();
	ret = m->run(ps);
	t1 = bench_now_ns();
	*us = (double)(t1 - t0) / 1e3 / (double)(ps->len / PG);
	if (ret) {
		ps->why = m->cg_mode >= 0 ? cg_strerror(ret) : strerror(-ret);
		goto out_child;
	}
	/* The result: every page present, ours alone, its content kept. */
	if (count_pages(ps->base, ps->len, &absent, &shared) || absent ||
	    shared) {
		ps->why = m->run == run_readpin
			? "a read-only pin leaves pages shared on this kernel"
			: "pages left absent or shared";
		ret = -EPROTO;
	} else if (!content_kept(ps->base, ps->len)) {
		ps->why = "content changed";
		ret = -EPROTO;
	}
	if (ps->kind == K_THP)
		ps->pmd_after = pmd_chunks(ps->base, ps->len);
out_child:
	if (child.pid > 0 && release(&child) && !ret) {
		ps->why = "the child did not exit cleanly";
		ret = -ECHILD;
	}
	if (bench_pin) {
		cg_unpin(bench_pin);
		bench_pin = NULL;
	}
	if (move_fd >= 0) {
		close(move_fd);
		move_fd = -1;
	}
out_close:
	if (ps->cg)
		cg_close(ps->cg);
	ps->cg = NULL;
out_unmap:
	munmap(ps->base, ps->len);
	ps->base = NULL;
	return ret;
}

/* ---- setup ---------------------------------------------------------------- */

static void restore_pool(void)
{
	if (saved_nr_2m >= 0)
		sys_write_long(NR_2M, saved_nr_2m);
	saved_nr_2m = -1;
}

static void on_signal(int sig)
{
	restore_pool();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Room for the region and a copy of it, raised as root; restored at exit. */
static void raise_pool(size_t len)
{
	long want = (long)(2 * len / HUGE) + 4, spare = cg__hugetlb_spare(21);
	long nr = sys_read_long(NR_2M);

	if (spare >= want || geteuid() != 0 || nr < 0)
		return;
	saved_nr_2m = nr;
	atexit(restore_pool);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	sys_write_long(NR_2M, nr + want - spare);
	printf("hugetlb: vm.nr_hugepages %ld -> %ld for the run (restored at "
	       "exit)\n", nr, sys_read_long(NR_2M));
}

/* A preallocated file on / for O_DIRECT, written once (extents real). */
static int odirect_file(size_t len, char *buf)
{
	char path[] = "/var/tmp/cowguard-unshare.XXXXXX";
	int fd = mkostemp(path, O_DIRECT | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	unlink(path);
	if (fallocate(fd, 0, 0, (off_t)len) ||
	    pwrite(fd, buf, len, 0) != (ssize_t)len) {
		close(fd);
		return -EIO;
	}
	return fd;
}

/* ---- reporting ------------------------------------------------------------ */

static void print_row(const char *label, double us, double lo, double hi,
		      double ref)
{
	printf("  %-40s %9.3f %8.2f %9.3f %9.3f", label, us,
	       us > 0 ? PG / (us * 1e3) : 0.0, lo, hi);
	bench_print_ratio(us, ref);
	putchar('\n');
}

/* The reference of this run's ratios: populate, or the kernel's COW. */
static const char *ref_name = "populate";

static void verdict(const char *what, double x, double limit, const char *cmp)
{
	printf("  target: %-35s vs %-8s %6.2f%s %s %.2f%s: %s\n", what, ref_name,
	       strcmp(cmp, "%") ? x : 100 * x, strcmp(cmp, "%") ? "x" : "%",
	       strcmp(cmp, "%") ? "<=" : "<",
	       strcmp(cmp, "%") ? limit : 100 * limit,
	       strcmp(cmp, "%") ? "x" : "%",
	       (strcmp(cmp, "%") ? x <= limit : x < limit) ? "met" : "MISSED");
}

/*
 * Of the ways cowguard can unshare (a read-only pin; a write fault, by
 * MADV_POPULATE_WRITE or an atomic add), the fastest that worked here: the
 * data behind lib/engine/pins.c's choice for this kernel.
 */
static void fastest_unshare(const double *med)
{
	static const int ways[] = { M_READPIN, M_POPULATE, M_ADDZERO };
	int best = -1;

	for (size_t i = 0; i < sizeof(ways) / sizeof(ways[0]); i++)
		if (med[ways[i]] > 0 && (best < 0 || med[ways[i]] < med[best]))
			best = ways[i];
	if (best >= 0)
		printf("  fastest way to unshare that works here: %s (%.3f us/page)\n",
		       methods[best].name, med[best]);
}

/*
 * A read-only pin of a shared range, against the reference: a THP moved in
 * whole costs a memcpy and keeps its PMD (0.25x, and every chunk one PMD
 * after), 4 KiB pages what the kernel's own unshare does (1.0x), hugetlb
 * the copy the pool allows (1.5x).
 */
static bool shared_targets(enum kind kind, const struct result *res,
			   const double *med, double ref)
{
	static const double limit[N_KINDS] = { 1.0, 0.25, 1.5 };
	static const int pins[] = { M_CG_EMB, M_CG_DMN };
	static const char *const what[] = { "cg_pin RO shared, embedded",
					    "cg_pin RO shared, daemon" };
	bool missed = false;

	for (int i = 0; i < 2; i++) {
		int m = pins[i];

		if (med[m] <= 0)
			continue;
		verdict(what[i], med[m] / ref, limit[kind], "x");
		missed |= med[m] / ref > limit[kind];
		if (kind != K_THP)
			continue;
		printf("  target: %-35s %zu of %zu chunks one PMD: %s\n",
		       i ? "  still PMD-mapped, daemon" : "  still PMD-mapped, embedded",
		       res[m].pmd_min, res[m].chunks,
		       res[m].pmd_min == res[m].chunks ? "met" : "MISSED");
		missed |= res[m].pmd_min != res[m].chunks;
	}
	return missed;
}

static bool print_kind(enum kind kind, struct result *res, const char *note)
{
	double med[N_METHODS] = { 0 }, ref;
	bool missed = false;

	for (int i = 0; i < N_METHODS; i++)
		if (res[i].state == ST_OK && res[i].n)
			med[i] = bench_median(res[i].us, res[i].n);
	/* Before 5.14 there is no MADV_POPULATE_WRITE: the kernel's COW is. */
	ref = med[M_POPULATE] > 0 ? med[M_POPULATE] : med[M_WRITE];
	ref_name = med[M_POPULATE] > 0 ? "populate" : "write";
	printf("\n%s%s\n", kind_name[kind], note);
	printf("  %-40s %9s %8s %9s %9s %9s\n", "method", "us/page", "GB/s",
	       "min", "max", med[M_POPULATE] > 0 ? "vs popul." : "vs write");
	for (int i = 0; i < N_METHODS; i++) {
		const struct result *r = &res[i];

		if (!(methods[i].kinds & (1u << kind)) ||
		    (r->state == ST_OK && !r->n && !r->why[0]))
			continue;	/* not asked for (--only) */
		if (r->state != ST_OK || !r->n) {
			printf("  %-40s %s: %s\n", methods[i].label,
			       r->state == ST_FAILED ? "FAILED" : "skipped",
			       r->why[0] ? r->why : "-");
			continue;
		}
		print_row(methods[i].label, med[i], r->us[0], r->us[r->n - 1], ref);
		if (i == M_ODIRECT_X && med[M_ODIRECT] > 0) {
			double d = med[M_ODIRECT] - med[M_ODIRECT_X];

			printf("  %-40s %9.3f %8.2f %9s %9s %8.2fx\n",
			       "O_DIRECT: its unshare (difference)", d,
			       d > 0 ? PG / (d * 1e3) : 0.0, "-", "-", d / ref);
		}
	}
	if (ref <= 0)
		return false;
	fastest_unshare(med);
	missed |= shared_targets(kind, res, med, ref);
	if (med[M_CG_EMB_X] > 0) {
		verdict("cg_pin RO exclusive, embedded",
			med[M_CG_EMB_X] / ref, 0.05, "%");
		missed |= med[M_CG_EMB_X] / ref >= 0.05;
	}
	if (med[M_CG_DMN_X] > 0) {
		verdict("cg_pin RO exclusive, daemon",
			med[M_CG_DMN_X] / ref, 0.05, "%");
		missed |= med[M_CG_DMN_X] / ref >= 0.05;
	}
	return missed;
}

static void print_header(const struct config *cfg)
{
	struct utsname u;
	char date[64] = "?";
	time_t t = time(NULL);

	strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S %Z", localtime(&t));
	printf("unshare: making N MiB that fork() left shared exclusive again\n");
	printf("date:    %s\n", date);
	if (uname(&u) == 0)
		printf("kernel:  %s %s %s (%s)\n", u.sysname, u.release, u.machine,
		       u.nodename);
	printf("cpus:    %ld online\n", sysconf(_SC_NPROCESSORS_ONLN));
	printf("region:  %zu MiB per pass, child alive; %d rounds, methods "
	       "interleaved, order shuffled; median, min, max\n", cfg->mib,
	       cfg->rounds);
}

static void usage(FILE *f, const char *argv0)
{
	fprintf(f,
		"usage: %s [--mib N] [--rounds R] [--warm-mib N] [--quick]\n"
		"  --mib N       region size in MiB, a multiple of 2 (default 64)\n"
		"  --rounds R    interleaved rounds, median reported (default 9)\n"
		"  --warm-mib N  memory touched once before timing (default 2048,\n"
		"                256 with --quick, 0: none)\n"
		"  --quick       smoke test: 8 MiB, 2 rounds\n"
		"  --only LIST   only these methods (names in the header comment)\n"
		"  --kinds LIST  only these kinds: 4k, thp, hugetlb\n",
		argv0);
}

static int parse_args(int argc, char **argv, struct config *cfg)
{
	static const struct option opts[] = {
		{ "mib", required_argument, NULL, 'm' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "warm-mib", required_argument, NULL, 'w' },
		{ "quick", no_argument, NULL, 'q' },
		{ "only", required_argument, NULL, 'o' },
		{ "kinds", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	size_t mib = 0, rounds = 0, warm = SIZE_MAX;
	bool quick = false, ok = true;
	int c;

	while (ok && (c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'm')
			ok = bench_parse_size(optarg, 1 << 16, &mib) && mib && !(mib % 2);
		else if (c == 'r')
			ok = bench_parse_size(optarg, MAX_ROUNDS, &rounds) && rounds;
		else if (c == 'w')
			ok = bench_parse_size(optarg, 1 << 20, &warm);
		else if (c == 'q')
			quick = true;
		else if (c == 'o')
			cfg->only = optarg;
		else if (c == 'k')
			cfg->kinds = optarg;
		else if (c == 'h') {
			usage(stdout, argv[0]);
			return 1;
		} else
			ok = false;
	}
	if (!ok || optind < argc) {
		usage(stderr, argv[0]);
		return 2;
	}
	cfg->mib = mib ? mib : quick ? 8 : 64;
	/*
	 * Nine: a THP pin's rounds are heavy-tailed (up to 15x the usual
	 * one, both modes), and its median over five went from 0.19x to
	 * 0.31x between two runs of make bench (2026-12-07).
	 */
	cfg->rounds = rounds ? (int)rounds : quick ? 2 : 9;
	cfg->warm_mib = warm != SIZE_MAX ? warm : quick ? 256 : 2048;
	return 0;
}

/* Whether cowguardd answers at $COWGUARD_SOCKET (asked once). */
static bool have_daemon(void)
{
	struct cg *cg;
	int ret;

	if (daemon_ok)
		return daemon_ok > 0;
	ret = open_cg(CG_MODE_DAEMON, &cg);
	daemon_ok = ret ? -1 : 1;
	if (ret)
		printf("daemon: %s (%s): its methods are skipped\n",
		       cg_strerror(ret), daemon_socket ? daemon_socket
						       : CG_DEFAULT_SOCKET);
	else
		cg_close(cg);
	return daemon_ok > 0;
}

/* Whether name is one of the comma-separated list (NULL: all are). */
static bool listed(const char *list, const char *name)
{
	size_t n = strlen(name);

	for (const char *s = list; s; s = strchr(s, ',') ? strchr(s, ',') + 1 : NULL)
		if (!strncmp(s, name, n) && (s[n] == ',' || !s[n]))
			return true;
	return !list;
}

/*
 * A round's methods in a shuffled order, the same for that round in every
 * run.  A rotation kept each method behind the same neighbour: the
 * embedded pin always came right after an O_DIRECT pass, the daemon's
 * right after it, and in whole runs the first was the slower of the two
 * in every run, alone they were level (docs/benchmarks.md).
 */
static void round_order(int round, int *order)
{
	unsigned seed = 0x9e3779b9u * (unsigned)(round + 1);

	for (int k = 0; k < N_METHODS; k++)
		order[k] = k;
	for (int k = N_METHODS - 1; k > 0; k--) {
		int j = (int)(rand_r(&seed) % (unsigned)(k + 1)), t = order[k];

		order[k] = order[j];
		order[j] = t;
	}
}

/* One pass of method i, its result added to res[i] (or why not). */
static void run_method(int i, enum kind kind, const struct config *cfg,
		       int fd, struct result *res)
{
	const struct method *m = &methods[i];
	struct pass ps = { .kind = kind, .len = cfg->mib * MIB, .odirect_fd = fd };
	double us = 0;
	int ret;

	if (!(m->kinds & (1u << kind)) || res[i].state != ST_OK ||
	    !listed(cfg->only, m->name))
		return;
	if (m->cg_mode == CG_MODE_DAEMON && !have_daemon()) {
		res[i].state = ST_SKIPPED;
		snprintf(res[i].why, sizeof(res[i].why), "no daemon");
		return;
	}
	if ((m->run == run_odirect) && fd < 0) {
		res[i].state = ST_SKIPPED;
		snprintf(res[i].why, sizeof(res[i].why), "no O_DIRECT file on /");
		return;
	}
	ret = run_pass(m, &ps, &us);
	if (ret == 1) {
		snprintf(res[i].why, sizeof(res[i].why), "a pass skipped: %s",
			 ps.why);
		return;
	}
	if (ret) {
		res[i].state = ST_FAILED;
		snprintf(res[i].why, sizeof(res[i].why), "%s",
			 ps.why ? ps.why : strerror(-ret));
		return;
	}
	if (!res[i].n || ps.pmd_after < res[i].pmd_min)
		res[i].pmd_min = ps.pmd_after;
	res[i].chunks = ps.len / HUGE;
	res[i].us[res[i].n++] = us;
}

static void run_kind(enum kind kind, const struct config *cfg, int fd,
		     struct result *res)
{
	int order[N_METHODS];

	for (int round = 0; round < cfg->rounds; round++) {
		round_order(round, order);
		for (int k = 0; k < N_METHODS; k++)
			run_method(order[k], kind, cfg, fd, res);
	}
}

int main(int argc, char **argv)
{
	static struct result res[N_KINDS][N_METHODS];
	struct config cfg = { 0 };
	bool failed = false, missed = false;
	char *buf;
	int fd, ret = parse_args(argc, argv, &cfg);

	if (ret)
		return ret == 1 ? 0 : ret;
	setvbuf(stdout, NULL, _IOLBF, 0);
	daemon_socket = getenv("COWGUARD_SOCKET");
	print_header(&cfg);
	bench_warm_vm(cfg.warm_mib * MIB, false);
	raise_pool(cfg.mib * MIB);
	buf = map_kind(K_4K, cfg.mib * MIB);
	if (buf)
		memset(buf, FILL, cfg.mib * MIB);
	fd = buf ? odirect_file(cfg.mib * MIB, buf) : -ENOMEM;
	if (fd < 0)
		printf("O_DIRECT: no file on / (%s): its methods are skipped\n",
		       strerror(-fd));
	if (buf)
		munmap(buf, cfg.mib * MIB);
	for (int k = 0; k < N_KINDS; k++) {
		static const char *const id[N_KINDS] = { "4k", "thp", "hugetlb" };
		char note[96] = "";

		if (!listed(cfg.kinds, id[k]))
			continue;
		run_kind((enum kind)k, &cfg, fd, res[k]);
		if (k == K_THP) {
			/* How THP the THP passes were: one probe, untimed. */
			char *p = map_kind(K_THP, cfg.mib * MIB);

			if (p) {
				memset(p, FILL, cfg.mib * MIB);
				snprintf(note, sizeof(note), " (a probe region: %zu "
					 "of %zu chunks PMD-mapped)",
					 pmd_chunks(p, cfg.mib * MIB),
					 cfg.mib * MIB / HUGE);
				munmap(p, cfg.mib * MIB);
			}
		}
		missed |= print_kind((enum kind)k, res[k], note);
		for (int i = 0; i < N_METHODS; i++)
			failed |= res[k][i].state == ST_FAILED;
	}
	printf("\nus/page: per 4 KiB page, median over rounds; GB/s of the "
	       "range; vs popul.: against MADV_POPULATE_WRITE of the same kind\n"
	       "(vs write: against the kernel's COW, where it is missing).\n");
	if (missed)
		printf("some targets missed: a small --mib pays the fixed cost of "
		       "a call; a busy machine adds noise; perf record with "
		       "--only shows where the time goes\n");
	if (fd >= 0)
		close(fd);
	restore_pool();
	return failed ? 1 : 0;
}
