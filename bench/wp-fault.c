/* SPDX-License-Identifier: MIT */
/*
 * wp-fault: what it costs to see the first write to a page, in us per
 * 4 KiB page, for cowguard and for the ways it could have been done.
 *
 *   (a) baseline  memset of each populated, unprotected page: the floor
 *   (b) sigsegv   mprotect(PROT_READ); the SIGSEGV handler makes the page RW
 *   (c) uffd      uffd-wp with an in-process handler thread: poll, read up
 *                 to 64 messages, un-protect each faulting 4 KiB page
 *   (d) embedded  cowguard, CG_MODE_EMBEDDED
 *   (e) daemon    cowguard, CG_MODE_DAEMON at $COWGUARD_SOCKET
 *   (f) wp-async  the kernel's own tracker: uffd-wp with
 *                 UFFD_FEATURE_WP_ASYNC (no handler, 6.7+), then one
 *                 PAGEMAP_SCAN that reads and re-protects the written pages
 *   (g) embedded, asynchronous: (d) with COWGUARD_WP=async, then cg_stats()
 *                 (which learns what was written) inside the clock
 *   (h) daemon, asynchronous: the same through the daemon at
 *                 $COWGUARD_ASYNC_SOCKET (one started with COWGUARD_WP=async)
 *   (i) embedded, per page: (d) with COWGUARD_WP_AROUND=4, a fault
 *                 unprotecting its own page alone, as before the fault
 *                 path widened (the daemon reads its own environment)
 *   (j) soft-dirty  the tracker CRIU used before PAGEMAP_SCAN: write "4"
 *                 to /proc/self/clear_refs (untimed, as the other methods'
 *                 set-up), then the writes and a read of the region's
 *                 pagemap for the soft-dirty bit; skipped where the kernel
 *                 has none (no page found soft-dirty)
 *
 * Each pass maps a fresh region, populates it (MADV_POPULATE_WRITE, before
 * any protection: populating protected memory faults once per page), sets
 * the method up, and times only the loop writing one byte per page ((a)
 * writes whole pages).  The methods are interleaved within each round, in an
 * order rotated per round, because this VM's noise drifts over seconds: a
 * block of passes of one method would measure the drift.
 *
 * In (c) each fault is a hand-off between two threads (in (d) and (e) too),
 * and where the scheduler puts them dominates: measured on the 2-vCPU VM, a
 * handler on the writer's CPU costs ~5.6 us/page, one on the other CPU ~80
 * (two cross-CPU wakeups per fault), and a pass lands on either or in
 * between.  The table shows min and max for that reason; `taskset -c 0
 * wp-fault` measures the same-CPU case alone.
 *
 * Build: cc -std=gnu11 -D_GNU_SOURCE -Ilib -Iinclude bench/wp-fault.c
 *        bench/bench.c -lcowguard -pthread
 * Run (root, or with access to a full userfaultfd):
 *        wp-fault [--mib N] [--rounds R] [--warm-mib N] [--scattered] [--quick]
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "cowguard.h"
#include "kernel/compat.h"

#define UFFD_BATCH 64
#define MAX_ROUNDS 1000

/* A method's verdict besides 0 and -errno: it cannot run here, said why. */
#define METHOD_SKIPPED 1

struct region {
	char *base;
	size_t len;
	size_t pagesz;
	size_t pages;
};

/* One timed pass of one method. */
struct sample {
	double us_per_page;
	long long faults;	/* write faults its handler saw; -1: unknown */
};

struct method {
	const char *label;	/* table row */
	const char *name;	/* in messages */
	int (*run)(const struct region *r, struct sample *out);
	const char *(*strerr)(int err);
	/* (b) and (c) must see exactly one fault per page, or measure nothing */
	bool fault_per_page;
};

enum state { ST_OK, ST_SKIPPED, ST_FAILED };

struct result {
	enum state state;
	int n;			/* passes measured */
	double us[MAX_ROUNDS];
	long long faults;	/* of the last pass */
};

struct config {
	size_t mib;
	size_t warm_mib;
	int rounds;
};

static double us_per_page(uint64_t t0, const struct region *r)
{
	return (double)(bench_now_ns() - t0) / 1e3 / (double)r->pages;
}

static const char *errstr(int err)
{
	return strerror(-err);
}

/*
 * A fresh region per pass, so no method inherits another's page state
 * (protection bits, split VMAs).  THP off: the cost per 4 KiB page is what
 * is asked, and each method would handle a huge page differently.
 */
static int region_map(struct region *r, size_t len)
{
	int err;

	r->pagesz = (size_t)sysconf(_SC_PAGESIZE);
	r->len = len;
	r->pages = len / r->pagesz;
	r->base = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (r->base == MAP_FAILED)
		return -errno;
	if (madvise(r->base, len, MADV_NOHUGEPAGE) ||
	    madvise(r->base, len, MADV_POPULATE_WRITE)) {
		err = -errno;
		munmap(r->base, len);
		return err;
	}
	return 0;
}

/*
 * --scattered: pages visited 7919 apart (a prime, so every page once in a
 * region of a power-of-two pages), not in address order: no write finds
 * its neighbour just unprotected.
 */
static bool scattered;

/* The loop every protected method times: one byte per page. */
static void write_bytes(const struct region *r)
{
	volatile char *p = r->base;
	size_t step = scattered ? 7919 : 1;

	for (size_t i = 0; i < r->pages; i++)
		p[(i * step % r->pages) * r->pagesz] = 1;
}

static double time_byte_writes(const struct region *r)
{
	uint64_t t0 = bench_now_ns();

	write_bytes(r);
	return us_per_page(t0, r);
}

/* (a) The floor: no protection, nothing to see, a whole page written. */
static int run_baseline(const struct region *r, struct sample *out)
{
	uint64_t t0 = bench_now_ns();

	for (size_t i = 0; i < r->pages; i++) {
		memset(r->base + i * r->pagesz, 1, r->pagesz);
		/* the stores must happen, page by page, inside the clock */
		__asm__ volatile("" ::: "memory");
	}
	out->us_per_page = us_per_page(t0, r);
	out->faults = 0;
	return 0;
}

/*
 * (b) The classic tracker.  A signal handler can reach its region only
 * through a global; this one is live for the duration of run_sigsegv().
 */
static struct {
	char *base;
	size_t len;
	size_t pagesz;
	atomic_ulong faults;	/* lock-free, so safe to bump in a handler */
} segv;

static void segv_handler(int sig, siginfo_t *si, void *uctx)
{
	char *addr = si->si_addr;
	uintptr_t page = (uintptr_t)addr & ~(uintptr_t)(segv.pagesz - 1);

	(void)sig;
	(void)uctx;
	/* Not ours, or cannot fix: fault again unhandled, dump core there. */
	if (addr < segv.base || addr >= segv.base + segv.len ||
	    mprotect((void *)page, segv.pagesz, PROT_READ | PROT_WRITE)) {
		signal(SIGSEGV, SIG_DFL);
		return;
	}
	atomic_fetch_add_explicit(&segv.faults, 1, memory_order_relaxed);
}

static int run_sigsegv(const struct region *r, struct sample *out)
{
	struct sigaction sa = { .sa_sigaction = segv_handler,
				.sa_flags = SA_SIGINFO };
	struct sigaction old;
	int err = 0;

	segv.base = r->base;
	segv.len = r->len;
	segv.pagesz = r->pagesz;
	atomic_store(&segv.faults, 0);
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSEGV, &sa, &old))
		return -errno;
	if (mprotect(r->base, r->len, PROT_READ))
		err = -errno;
	else
		out->us_per_page = time_byte_writes(r);
	sigaction(SIGSEGV, &old, NULL);
	out->faults = (long long)atomic_load(&segv.faults);
	segv.base = NULL;
	segv.len = 0;
	return err;
}

/* (c) A bare uffd-wp handler thread: what cowguard's engine adds to. */
struct uffd_handler {
	int uffd;
	int stopfd;		/* eventfd: the writer is done */
	const struct region *r;
	unsigned long faults;	/* read by the main thread after join */
	int err;
	pthread_t thread;
};

/* Clearing WP also wakes the threads waiting on the range. */
static int uffd_set_wp(int uffd, uint64_t start, uint64_t len, bool wp)
{
	struct uffdio_writeprotect arg = {
		.range = { .start = start, .len = len },
		.mode = wp ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	return ioctl(uffd, UFFDIO_WRITEPROTECT, &arg) ? -errno : 0;
}

/* The syscall, else /dev/userfaultfd (which a group may be granted). */
static int uffd_create(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	int dev;

	if (fd >= 0 || errno != EPERM)
		return fd >= 0 ? fd : -errno;
	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return -EPERM;
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
	close(dev);
	return fd >= 0 ? fd : -EPERM;
}

/*
 * A uffd with the region registered for WP and every page protected;
 * features adds to PAGEFAULT_FLAG_WP.
 */
static int uffd_open_wp(const struct region *r, uint64_t features)
{
	struct uffdio_api api = {
		.api = UFFD_API,
		.features = UFFD_FEATURE_PAGEFAULT_FLAG_WP | features,
	};
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)r->base, .len = r->len },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};
	int fd = uffd_create();
	int err;

	if (fd < 0)
		return fd;
	err = ioctl(fd, UFFDIO_API, &api) ? -errno : 0;
	if (!err)
		err = ioctl(fd, UFFDIO_REGISTER, &reg) ? -errno : 0;
	if (!err)
		err = uffd_set_wp(fd, (uintptr_t)r->base, r->len, true);
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

/* No events were asked for: every message is a WP fault on one page. */
static int uffd_resolve(struct uffd_handler *h, const struct uffd_msg *msg,
			size_t n)
{
	uint64_t mask = ~(uint64_t)(h->r->pagesz - 1);
	int err;

	for (size_t i = 0; i < n; i++) {
		if (msg[i].event != UFFD_EVENT_PAGEFAULT ||
		    !(msg[i].arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP))
			return -EPROTO;
		err = uffd_set_wp(h->uffd, msg[i].arg.pagefault.address & mask,
				  h->r->pagesz, false);
		if (err)
			return err;
		h->faults++;
	}
	return 0;
}

/* One poll and one batch.  Returns 0, 1 when told to stop, or -errno. */
static int uffd_serve_once(struct uffd_handler *h)
{
	struct pollfd pfd[2] = { { .fd = h->uffd, .events = POLLIN },
				 { .fd = h->stopfd, .events = POLLIN } };
	struct uffd_msg msg[UFFD_BATCH];
	ssize_t n;

	if (poll(pfd, 2, -1) < 0)
		return errno == EINTR ? 0 : -errno;
	if (pfd[1].revents)
		return 1;
	n = read(h->uffd, msg, sizeof(msg));
	if (n < 0)	/* EAGAIN: the wakeup was spurious */
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	return uffd_resolve(h, msg, (size_t)n / sizeof(msg[0]));
}

/* Must not touch the region itself: it would fault to itself, forever. */
static void *uffd_thread(void *arg)
{
	struct uffd_handler *h = arg;
	int ret;

	while ((ret = uffd_serve_once(h)) == 0)
		;
	if (ret < 0) {
		h->err = ret;
		/* Giving up must not leave the writer blocked on a fault. */
		uffd_set_wp(h->uffd, (uintptr_t)h->r->base, h->r->len, false);
	}
	return NULL;
}

static int run_uffd(const struct region *r, struct sample *out)
{
	struct uffd_handler h = { .r = r };
	uint64_t one = 1;
	int err;

	h.uffd = uffd_open_wp(r, 0);
	if (h.uffd < 0)
		return h.uffd;
	h.stopfd = eventfd(0, EFD_CLOEXEC);
	if (h.stopfd < 0) {
		err = -errno;
		goto err_uffd;
	}
	err = -pthread_create(&h.thread, NULL, uffd_thread, &h);
	if (err)
		goto err_stop;
	out->us_per_page = time_byte_writes(r);
	if (write(h.stopfd, &one, sizeof(one)) != sizeof(one))
		abort();	/* an eventfd takes 8 bytes; else join hangs */
	pthread_join(h.thread, NULL);
	out->faults = (long long)h.faults;
	err = h.err;
err_stop:
	close(h.stopfd);
err_uffd:
	close(h.uffd);	/* unregisters the region */
	return err;
}

static int run_wp_async(const struct region *r, struct sample *out)
{
	int pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	int uffd = uffd_open_wp(r, UFFD_FEATURE_WP_ASYNC);
	uint64_t t0;
	int err = 0;

	if (pagemap < 0 || uffd < 0) {
		err = pagemap < 0 ? -errno : uffd;
		goto out;
	}
	t0 = bench_now_ns();
	write_bytes(r);
	out->faults = bench_scan_written(pagemap, (uintptr_t)r->base,
					 (uintptr_t)r->base + r->len, r->pagesz);
	out->us_per_page = us_per_page(t0, r);
	if (out->faults < 0)
		err = (int)out->faults;
out:
	if (uffd >= 0)
		close(uffd);
	if (pagemap >= 0)
		close(pagemap);
	/* Without the feature (before 6.7) the API call says EINVAL. */
	if (err == -EINVAL) {
		printf("wp-async: skipped (no UFFD_FEATURE_WP_ASYNC)\n");
		return METHOD_SKIPPED;
	}
	return err;
}

/*
 * (d), (e), (g), (h): cowguard as an application uses it.  The only code
 * here that needs libcowguard.  A missing daemon is a skip, not a failure.
 * Asynchronous: the engine learns the writes when asked, so the call that
 * asks (cg_stats) is inside the clock.
 */
static int run_cowguard(const struct region *r, enum cg_mode mode, bool async,
			bool per_page, struct sample *out)
{
	struct cg_options opts = { .mode = mode };
	const char *name = mode == CG_MODE_DAEMON ? "daemon" : "embedded";
	struct cg_stats st;
	uint64_t t0;
	struct cg *cg;
	int err;

	if (mode == CG_MODE_DAEMON)
		opts.socket_path = getenv(async ? "COWGUARD_ASYNC_SOCKET"
						: "COWGUARD_SOCKET");
	if (async && mode == CG_MODE_EMBEDDED)
		setenv("COWGUARD_WP", "async", 1);
	if (per_page)
		setenv("COWGUARD_WP_AROUND", "4", 1);
	err = mode == CG_MODE_DAEMON && !opts.socket_path
		      ? -ECONNREFUSED
		      : cg_open(&opts, sizeof(opts), &cg);
	unsetenv("COWGUARD_WP");
	unsetenv("COWGUARD_WP_AROUND");
	if (err && mode == CG_MODE_DAEMON) {
		printf("%s%s: skipped (%s)\n", name, async ? ", async" : "",
		       cg_strerror(err));
		return METHOD_SKIPPED;
	}
	if (err)
		return err;
	if (async && !(cg_features(cg) & UFFD_FEATURE_WP_ASYNC)) {
		printf("%s, async: skipped (the engine runs synchronously: "
		       "no UFFD_FEATURE_WP_ASYNC, or COWGUARD_WP unset there)\n",
		       name);
		cg_close(cg);
		return METHOD_SKIPPED;
	}
	err = cg_register(cg, r->base, r->len, 0);
	if (!err) {
		t0 = bench_now_ns();
		write_bytes(r);
		err = async ? cg_stats(cg, &st, sizeof(st)) : 0;
		out->us_per_page = us_per_page(t0, r);
	}
	if (!err)
		out->faults = cg_stats(cg, &st, sizeof(st)) ? -1 : (long long)st.wp_faults;
	cg_close(cg);
	return err;
}

static int run_embedded(const struct region *r, struct sample *out)
{
	return run_cowguard(r, CG_MODE_EMBEDDED, false, false, out);
}

static int run_daemon(const struct region *r, struct sample *out)
{
	return run_cowguard(r, CG_MODE_DAEMON, false, false, out);
}

static int run_embedded_async(const struct region *r, struct sample *out)
{
	return run_cowguard(r, CG_MODE_EMBEDDED, true, false, out);
}

static int run_daemon_async(const struct region *r, struct sample *out)
{
	return run_cowguard(r, CG_MODE_DAEMON, true, false, out);
}

/* (i): (d) as it was before a fault unprotected the exclusive pages around. */
static int run_embedded_per_page(const struct region *r, struct sample *out)
{
	return run_cowguard(r, CG_MODE_EMBEDDED, false, true, out);
}

/* (j): a soft-dirty fault per page, then the pagemap read that finds them. */
static int run_soft_dirty(const struct region *r, struct sample *out)
{
	int pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	uint64_t t0;
	int err;

	if (pagemap < 0)
		return -errno;
	err = bench_soft_dirty_clear();
	if (!err) {
		t0 = bench_now_ns();
		write_bytes(r);
		out->faults = bench_soft_dirty_count(pagemap, (uintptr_t)r->base,
						     (uintptr_t)r->base + r->len);
		out->us_per_page = us_per_page(t0, r);
		if (out->faults < 0)
			err = (int)out->faults;
	}
	close(pagemap);
	if (!err && !out->faults) {
		printf("soft-dirty: skipped (no page found soft-dirty: no "
		       "CONFIG_MEM_SOFT_DIRTY)\n");
		return METHOD_SKIPPED;
	}
	return err;
}

enum {
	M_BASELINE, M_SIGSEGV, M_UFFD, M_EMBEDDED, M_DAEMON,
	M_WP_ASYNC, M_EMBEDDED_ASYNC, M_DAEMON_ASYNC, M_EMBEDDED_PER_PAGE,
	M_SOFT_DIRTY, N_METHODS
};

static const struct method methods[N_METHODS] = {
	[M_BASELINE] = { "(a) baseline memset", "baseline", run_baseline,
			 errstr, false },
	[M_SIGSEGV] = { "(b) mprotect+SIGSEGV", "sigsegv", run_sigsegv,
			errstr, true },
	[M_UFFD] = { "(c) uffd-wp thread", "uffd", run_uffd, errstr, true },
	[M_EMBEDDED] = { "(d) cowguard embedded", "embedded", run_embedded,
			 cg_strerror, false },
	[M_DAEMON] = { "(e) cowguard daemon", "daemon", run_daemon,
		       cg_strerror, false },
	[M_WP_ASYNC] = { "(f) WP_ASYNC+scan", "wp-async", run_wp_async,
			 errstr, true },
	/* Every page counted written once: the engine saw each write. */
	[M_EMBEDDED_ASYNC] = { "(g) embedded, async", "embedded, async",
			       run_embedded_async, cg_strerror, true },
	[M_DAEMON_ASYNC] = { "(h) daemon, async", "daemon, async",
			     run_daemon_async, cg_strerror, true },
	[M_EMBEDDED_PER_PAGE] = { "(i) embedded, per page",
				  "embedded, per page", run_embedded_per_page,
				  cg_strerror, true },
	[M_SOFT_DIRTY] = { "(j) soft-dirty", "soft-dirty", run_soft_dirty,
			   errstr, true },
};

/* One pass of one method on a fresh region; a failure retires the method. */
static void run_pass(const struct method *m, struct result *res, size_t len)
{
	struct sample s = { .faults = -1 };
	struct region r;
	int ret = region_map(&r, len);

	if (ret) {
		printf("%s: cannot map the region (%s)\n", m->name, errstr(ret));
		res->state = ST_FAILED;
		return;
	}
	ret = m->run(&r, &s);
	munmap(r.base, r.len);
	if (ret == METHOD_SKIPPED) {
		res->state = ST_SKIPPED;
	} else if (ret) {
		printf("%s: failed (%s)\n", m->name, m->strerr(ret));
		res->state = ST_FAILED;
	} else if (m->fault_per_page && s.faults != (long long)r.pages) {
		printf("%s: failed (%lld faults for %zu pages)\n", m->name,
		       s.faults, r.pages);
		res->state = ST_FAILED;
	} else {
		res->us[res->n++] = s.us_per_page;
		res->faults = s.faults;
	}
}

static void print_header(const struct config *cfg)
{
	struct utsname u;
	char date[64] = "?";
	time_t t = time(NULL);
	size_t pagesz = (size_t)sysconf(_SC_PAGESIZE);

	strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S %Z", localtime(&t));
	printf("wp-fault: cost of seeing the first write to a page\n");
	printf("date:    %s\n", date);
	if (uname(&u) == 0)
		printf("kernel:  %s %s %s %s (%s)\n", u.sysname, u.release,
		       u.version, u.machine, u.nodename);
	printf("cpus:    %ld online\n", sysconf(_SC_NPROCESSORS_ONLN));
	printf("region:  %zu MiB, %zu pages of %zu KiB, populated first\n",
	       cfg->mib, cfg->mib * MIB / pagesz, pagesz / 1024);
	printf("writes:  one a page, %s\n",
	       scattered ? "7919 pages apart (--scattered)" : "in address order");
	printf("rounds:  %d, methods interleaved, order rotated per round\n",
	       cfg->rounds);
}

static void print_table(struct result *res)
{
	static const char *const why[] = { [ST_SKIPPED] = "skipped",
					   [ST_FAILED] = "failed" };
	double med[N_METHODS] = { 0 };	/* 0: no ratio against it */

	for (int i = 0; i < N_METHODS; i++)
		if (res[i].state == ST_OK)
			med[i] = bench_median(res[i].us, res[i].n);
	printf("\n%-22s %9s %9s %9s %9s %9s %9s %11s\n", "method", "us/page",
	       "min", "max", "vs (c)", "vs (b)", "vs (f)", "faults/pass");
	for (int i = 0; i < N_METHODS; i++) {
		printf("%-22s", methods[i].label);
		if (res[i].state != ST_OK) {
			printf(" %9s\n", why[res[i].state]);
			continue;
		}
		printf(" %9.3f %9.3f %9.3f", med[i], res[i].us[0],
		       res[i].us[res[i].n - 1]);
		bench_print_ratio(med[i], med[M_UFFD]);
		bench_print_ratio(med[i], med[M_SIGSEGV]);
		bench_print_ratio(med[i], med[M_WP_ASYNC]);
		if (res[i].faults < 0)
			printf(" %11s\n", "?");
		else
			printf(" %11lld\n", res[i].faults);
	}
	printf("\nus/page is the median over rounds; (a) writes whole pages, "
	       "the others one byte; (f), (g) and (h) include the call that "
	       "learns what was written.  (d) and (e) unprotect the exclusive "
	       "pages around a fault (COWGUARD_WP_AROUND, 64 KiB), which then "
	       "count as written; (i) is (d) with one page per fault.\n");
	for (int i = 0; i < N_METHODS; i++) {
		const double *us = res[i].us;

		if (res[i].state == ST_OK && us[res[i].n - 1] > 2 * us[0])
			printf("note: %s passes differ by more than 2x: thread "
			       "placement varies; raise --rounds or pin with "
			       "taskset\n", methods[i].name);
	}
}

static void usage(FILE *f, const char *argv0)
{
	fprintf(f,
		"usage: %s [--mib N] [--rounds R] [--warm-mib N] [--scattered]\n"
		"       [--quick]\n"
		"  --mib N       region size in MiB (default 64)\n"
		"  --rounds R    interleaved rounds, median reported (default 3)\n"
		"  --warm-mib N  memory touched once before timing (default 2048,\n"
		"                256 with --quick, 0: none)\n"
		"  --scattered   write the pages 7919 apart, not in order\n"
		"  --quick       smoke test: 8 MiB, 1 round\n",
		argv0);
}

/*
 * Explicit options win over --quick whatever their order.  Returns 0, 1
 * after --help, 2 on a usage error.
 */
static int parse_args(int argc, char **argv, struct config *cfg)
{
	static const struct option opts[] = {
		{ "mib", required_argument, NULL, 'm' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "warm-mib", required_argument, NULL, 'w' },
		{ "quick", no_argument, NULL, 'q' },
		{ "scattered", no_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	size_t mib = 0, rounds = 0, warm = SIZE_MAX;
	bool quick = false, ok = true;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'm')
			ok = bench_parse_size(optarg, 1 << 20, &mib) && mib > 0;
		else if (c == 'r')
			ok = bench_parse_size(optarg, MAX_ROUNDS, &rounds) && rounds > 0;
		else if (c == 'w')
			ok = bench_parse_size(optarg, 1 << 20, &warm);
		else if (c == 'q')
			quick = true;
		else if (c == 's')
			scattered = true;
		else if (c == 'h')
			break;
		else
			ok = false;
		if (!ok)
			break;
	}
	if (c == 'h') {
		usage(stdout, argv[0]);
		return 1;
	}
	if (!ok || optind < argc) {
		usage(stderr, argv[0]);
		return 2;
	}
	cfg->mib = mib ? mib : quick ? 8 : 64;
	cfg->rounds = rounds ? (int)rounds : quick ? 1 : 3;
	cfg->warm_mib = warm != SIZE_MAX ? warm : quick ? 256 : 2048;
	return 0;
}

int main(int argc, char **argv)
{
	static struct result res[N_METHODS];
	struct config cfg;
	bool failed = false;
	int ret = parse_args(argc, argv, &cfg);

	if (ret)
		return ret == 1 ? 0 : ret;
	/* Line-buffered: progress and skips show up in order when piped. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	print_header(&cfg);
	bench_warm_vm(cfg.warm_mib * MIB, true);
	for (int round = 0; round < cfg.rounds; round++) {
		for (int k = 0; k < N_METHODS; k++) {
			int i = (round + k) % N_METHODS;

			if (res[i].state == ST_OK)
				run_pass(&methods[i], &res[i], cfg.mib * MIB);
		}
	}
	print_table(res);
	for (int i = 0; i < N_METHODS; i++)
		failed |= res[i].state == ST_FAILED;
	return failed ? 1 : 0;
}
