// SPDX-License-Identifier: MIT
/* The shared test harness: modes, memory kinds, kernel truth, a daemon. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "compat.h"
#include "harness.h"
#include "kernel.h"
#include "procfs.h"
#include "uffd.h"

#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << MAP_HUGE_SHIFT)
#endif
#ifndef MAP_HUGE_1GB
#define MAP_HUGE_1GB (30 << MAP_HUGE_SHIFT)
#endif

#define NR_2M "/proc/sys/vm/nr_hugepages"
#define NR_1G "/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages"
#define WANT_2M 64	/* 128 MiB: room for a parent and an unshared copy */
#define WANT_1G 3

static char tmpdir[64];
static char sock_path[128];
static pid_t daemon_pid;
static long saved_2m = -1, saved_1g = -1;
static pid_t main_pid;

static long read_long(const char *path);

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
	va_list ap;

	printf("SKIP: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

const char *h_socket(void)
{
	return sock_path;
}

pid_t h_daemon_pid(void)
{
	return daemon_pid;
}

static const char *external_socket(void)
{
	const char *s = getenv("CG_TEST_DAEMON_SOCKET");

	return s && *s ? s : NULL;
}

bool h_have_root(const char *what)
{
	if (geteuid() == 0)
		return true;
	h_skip("needs root: %s", what);
	return false;
}

bool h_have_own_daemon(const char *what)
{
	if (!external_socket())
		return true;
	h_skip("needs its own daemon: %s", what);
	return false;
}

struct cg *h_open(int mode)
{
	struct cg_options o = {
		.mode = mode == H_DAEMON ? CG_MODE_DAEMON : CG_MODE_EMBEDDED,
		.socket_path = sock_path[0] ? sock_path : NULL,
	};
	struct cg *cg = NULL;
	int ret = cg_open(&o, sizeof(o), &cg);

	ck_assert_msg(ret == 0, "cg_open(%s): %s", h_mode_name(mode),
		      cg_strerror(ret));
	ck_assert_int_eq(cg_mode(cg), o.mode);
	return cg;
}

size_t h_page_size(enum h_kind kind)
{
	switch (kind) {
	case H_4K:
		return 4 * KIB;
	case H_THP:
	case H_HUGETLB_2M:
		return 2 * MIB;
	case H_HUGETLB_1G:
		return GIB;
	}
	return 4 * KIB;
}

void h_stay_on_this_cpu(void)
{
	int cpu = sched_getcpu();
	cpu_set_t set;

	ck_assert_int_ge(cpu, 0);
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	ck_assert_int_eq(sched_setaffinity(0, sizeof(set), &set), 0);
}

void h_flush_lru_batch(void)
{
	/* More new pages than a batch holds (31): it fills and drains. */
	size_t len = 64 * 4 * KIB;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ck_assert(p != MAP_FAILED);
	for (size_t off = 0; off < len; off += 4 * KIB)
		p[off] = 1;
	munmap(p, len);
}

static void *map_aligned(size_t len, size_t align)
{
	char *p = mmap(NULL, len + align, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *q;

	if (p == MAP_FAILED)
		return NULL;
	q = (char *)(((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1));
	if (q > p)
		munmap(p, (size_t)(q - p));
	munmap(q + len, (size_t)(p + align - q));
	return q;
}

/* The uffd features the kernel offers (a throwaway uffd), or 0. */
static uint64_t kernel_uffd_features(void)
{
	struct uffdio_api api = { .api = UFFD_API };
	int fd = cg__uffd_create();

	if (fd < 0)
		return 0;
	if (ioctl(fd, UFFDIO_API, &api))
		api.features = 0;
	close(fd);
	return api.features;
}

bool h_hugetlb_trackable(void)
{
	return kernel_uffd_features() & UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
}

static void *map_hugetlb(size_t len, int size_flag, const char *what)
{
	void *p;

	/* cg_register() refuses what the kernel cannot write-protect. */
	if (!h_hugetlb_trackable()) {
		h_skip("%s hugetlb: needs UFFD_FEATURE_WP_HUGETLBFS_SHMEM (5.19+): "
		       "this kernel cannot write-protect hugetlb pages", what);
		return NULL;
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | size_flag, -1, 0);

	if (p == MAP_FAILED && size_flag == MAP_HUGE_1GB &&
	    access(NR_1G, F_OK)) {
		h_skip("no %s hugetlb pages on this machine (no %s: the CPU "
		       "lacks pdpe1gb, or the kernel gigantic pages)", what,
		       NR_1G);
		return NULL;
	}
	if (p == MAP_FAILED) {
		h_skip("no %s hugetlb pages to be had (%s); %s", what,
		       strerror(errno), geteuid() ? "run as root so the "
		       "harness can raise the pool" : "the pool is short");
		return NULL;
	}
	return p;
}

void *h_map(enum h_kind kind, size_t len, int fill)
{
	void *p = NULL;

	switch (kind) {
	case H_4K:
		p = map_aligned(len, 4 * KIB);
		if (p)
			madvise(p, len, MADV_NOHUGEPAGE);
		break;
	case H_THP:
		p = map_aligned(len, 2 * MIB);
		if (p && madvise(p, len, MADV_HUGEPAGE)) {
			h_skip("THP unavailable: madvise(MADV_HUGEPAGE): %s",
			       strerror(errno));
			munmap(p, len);
			return NULL;
		}
		break;
	case H_HUGETLB_2M:
		return (p = map_hugetlb(len, MAP_HUGE_2MB, "2 MiB")) && fill >= 0
			       ? memset(p, fill, len)
			       : p;
	case H_HUGETLB_1G:
		return (p = map_hugetlb(len, MAP_HUGE_1GB, "1 GiB")) && fill >= 0
			       ? memset(p, fill, len)
			       : p;
	}
	ck_assert_msg(p != NULL, "mmap of %zu bytes failed", len);
	if (fill >= 0)
		memset(p, fill, len);
	if (kind == H_THP && fill >= 0 && !h_kpage(p).present) {
		h_skip("THP memory did not populate");
		return NULL;
	}
	return p;
}

/* Whether [addr, addr+len) holds THP memory and PAGEMAP_SCAN is missing. */
static bool thp_without_scan(struct cg *cg, const char *addr, size_t len)
{
	if (h_pmd_mapped(addr) >= 0)
		return false;
	/* One query per 2 MiB chunk: a chunk is THP or not as a whole. */
	for (size_t off = 0; off < len;
	     off = (((uintptr_t)addr + off) | (2 * MIB - 1)) + 1 - (uintptr_t)addr) {
		struct cg_page_info q;

		if (!cg_query(cg, addr + off, &q, sizeof(q)) &&
		    (q.kind == CG_PAGE_THP || q.kind == CG_PAGE_THP_PTE))
			return true;
	}
	return false;
}

bool h_thp_pmd_mapped(const void *addr, size_t len)
{
	const char *p = addr;

	for (size_t off = 0; off < len; off += 2 * MIB) {
		int pmd = h_pmd_mapped(p + off);

		if (pmd < 0) {
			h_skip("needs PAGEMAP_SCAN (6.7+): nothing else tells a "
			       "PMD-mapped THP from a split one");
			return false;
		}
		if (!pmd) {
			h_skip("THP chunk %zu is not PMD-mapped (no free huge "
			       "page?)", (size_t)(off / (2 * MIB)));
			return false;
		}
	}
	return true;
}

struct cg_audit_report h_audit_clean(struct cg *cg, void *addr, size_t len)
{
	struct cg_audit_report a;
	int ret = cg_audit(cg, addr, len, &a, sizeof(a));

	ck_assert_msg(ret == 0, "cg_audit: %s", cg_strerror(ret));
	if (a.unsafe == 0 && a.conservative && thp_without_scan(cg, addr, len)) {
		printf("NOTE: %llu conservative pages in THP memory: no "
		       "PAGEMAP_SCAN (6.7+), THP followed as split\n",
		       (unsigned long long)a.conservative);
		fflush(stdout);
		return a;
	}
	ck_assert_msg(a.unsafe == 0 && a.conservative == 0,
		      "audit (truth %d): %llu pages, %llu present, %llu exact, "
		      "%llu unsafe, %llu conservative, %llu unknowable",
		      a.truth, (unsigned long long)a.pages,
		      (unsigned long long)a.present, (unsigned long long)a.exact,
		      (unsigned long long)a.unsafe,
		      (unsigned long long)a.conservative,
		      (unsigned long long)a.unknowable);
	return a;
}

static uint64_t own_pme(const void *addr)
{
	uint64_t pme = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	ck_assert(fd >= 0);
	ck_assert(pread(fd, &pme, 8, (off_t)((uintptr_t)addr / 4096) * 8) == 8);
	close(fd);
	return pme;
}

/*
 * Whether kpageflags bit 34 is PageAnonExclusive (5.19+): it is set on a
 * fresh page of our own there.  Before, the bit is KPF_MAPPEDTODISK, 0 on
 * such a page.  Learned once, by looking (root: frames are needed).
 */
static bool kernel_has_anon_exclusive(void)
{
	static int has = -1;

	if (has < 0) {
		char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		uint64_t pme, flags = 0;
		int fd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);

		ck_assert(p != MAP_FAILED);
		p[0] = 1;
		pme = own_pme(p);
		has = fd >= 0 && !cg__kpageflags_read(fd, pme & ((1ULL << 55) - 1),
						     &flags) &&
		      (flags >> 34 & 1);
		if (fd >= 0)
			close(fd);
		munmap(p, 4096);
	}
	return has;
}

bool h_pagemap_shows_uffd_wp(void)
{
	static int shows = -1;

	if (shows < 0) {
		struct uffdio_api api = { .api = UFFD_API,
					  .features = UFFD_FEATURE_PAGEFAULT_FLAG_WP };
		char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		int fd = cg__uffd_create();

		ck_assert(p != MAP_FAILED);
		p[0] = 1;
		shows = fd >= 0 && !ioctl(fd, UFFDIO_API, &api) &&
			!cg__uffd_register(fd, (uintptr_t)p, 4096) &&
			!cg__uffd_wp(fd, (uintptr_t)p, 4096, true) &&
			(own_pme(p) >> 57 & 1);
		if (fd >= 0)
			close(fd);
		munmap(p, 4096);
	}
	return shows;
}

bool h_read_pins_unshare(const char *what)
{
	/* cg_open() probed already; the first call here may be earlier. */
	bool yes = !cg__kernel_probe() && cg__kernel_read_pin_unshares();

	if (!yes && what)
		h_skip("%s: needs a kernel whose read-only pins unshare (5.19+); "
		       "here pins unshare by write and stay unprotected", what);
	return yes;
}

bool h_truth_is_kpageflags(void)
{
	return geteuid() == 0 && kernel_has_anon_exclusive();
}

struct h_kpage h_kpage(const void *addr)
{
	struct h_kpage k = { .anon_exclusive = -1 };
	uint64_t pme = own_pme(addr), flags = 0;
	int fd;

	k.present = pme >> 63 & 1;
	k.mapped_once = pme >> 56 & 1;
	k.uffd_wp = pme >> 57 & 1;
	k.pfn = pme & ((1ULL << 55) - 1);
	if (!k.present || !k.pfn || !kernel_has_anon_exclusive())
		return k;
	fd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	/* A hugetlb tail: its head's flags (6.1 shows each page's own). */
	if (fd >= 0 && !cg__kpageflags_read(fd, k.pfn, &flags))
		k.anon_exclusive = (flags >> 12 & 1) && (flags >> 34 & 1);
	if (fd >= 0)
		close(fd);
	/*
	 * A THP tail without PAGEMAP_SCAN (6.1): there its own flag is
	 * right for a PTE-mapped THP and reads 0 in a PMD-mapped one (the
	 * head holds it), and nothing tells which: unknown.
	 */
	if (k.anon_exclusive >= 0 && (flags >> 22 & 1) && (flags >> 16 & 1) &&
	    h_pmd_mapped(addr) < 0)
		k.anon_exclusive = -1;
	return k;
}

int h_vma_flag(const void *addr, const char *flag)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	uintptr_t a = (uintptr_t)addr;
	char line[512], want[8];
	bool inside = false;
	int found = -1;

	ck_assert(f != NULL);
	snprintf(want, sizeof(want), " %s", flag);
	while (found < 0 && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;

		if (strncmp(line, "VmFlags:", 8) == 0 && inside) {
			char *hit = strstr(line + 8, want);

			found = hit && (hit[strlen(want)] == ' ' ||
					hit[strlen(want)] == '\n');
		} else if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 &&
			   strchr(line, '-') < strchr(line, ' ')) {
			inside = a >= lo && a < hi;
		}
	}
	fclose(f);
	return found;
}

pid_t h_fork(int (*fn)(void *arg), void *arg)
{
	pid_t pid = fork();

	ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0)
		_exit(fn(arg));
	return pid;
}

int h_wait(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

bool h_time_bounds(const char *what)
{
#ifdef __SANITIZE_ADDRESS__
	const char *why = "in a sanitizers' build";
#else
	const char *why = getenv("CG_VM") ? "in an emulated guest" : NULL;
#endif

	if (why)
		printf("NOTE: %s: no bound on time %s\n", what, why);
	return !why;
}

double h_now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

void h_sleep_ms(int ms)
{
	struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&t, NULL);
}

struct waiter_arg {
	int rd;
	const volatile char *check;
	char expect;
};

static int waiter_main(void *arg)
{
	struct waiter_arg *w = arg;
	char go;

	if (read(w->rd, &go, 1) != 1)
		return 2;
	return !w->check || *w->check == w->expect ? 0 : 3;
}

struct h_waiter h_fork_waiting(const volatile char *check, char expect)
{
	struct waiter_arg arg = { .check = check, .expect = expect };
	struct h_waiter w;
	int fds[2];

	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	arg.rd = fds[0];
	w.pid = h_fork(waiter_main, &arg);
	w.go = fds[1];
	close(fds[0]);
	return w;
}

int h_release(struct h_waiter *w)
{
	int status;

	ck_assert_int_eq(write(w->go, "g", 1), 1);
	close(w->go);
	status = h_wait(w->pid);
	w->pid = -1;
	return status;
}

int h_pmd_mapped(const void *addr)
{
	uint64_t chunk = (uintptr_t)addr & ~(2 * MIB - 1), mask = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	int ret;

	ck_assert(fd >= 0);
	ret = cg__pmd_mapped(fd, chunk, 2 * MIB, &mask);
	close(fd);
	return ret ? -1 : (int)(mask & 1);
}

struct cg_page_info *h_states(struct cg *cg, const void *addr, size_t len)
{
	struct cg_page_info *v = calloc(len / 4096, sizeof(*v));

	ck_assert(v != NULL);
	for (size_t i = 0; i < len / 4096; i++) {
		int ret = cg_query(cg, (const char *)addr + i * 4096, &v[i], sizeof(v[i]));

		ck_assert_msg(ret == 0, "cg_query(%p): %s",
			      (const char *)addr + i * 4096, cg_strerror(ret));
	}
	return v;
}

void h_assert_states(struct cg *cg, const struct cg_page_info *was,
		     const void *now, size_t len, const char *what)
{
	int pmd = -1;

	for (size_t i = 0; i < len / 4096; i++) {
		const char *p = (const char *)now + i * 4096;
		const struct cg_page_info *b = &was[i];
		struct cg_page_info q;
		struct h_kpage k = h_kpage(p);
		int ret = cg_query(cg, p, &q, sizeof(q));

		ck_assert_msg(ret == 0, "%s: cg_query(page %zu): %s", what, i,
			      cg_strerror(ret));
		ck_assert_msg(q.present == b->present && q.exclusive == b->exclusive &&
			      q.dirty == b->dirty && q.wp == b->wp,
			      "%s: page %zu was present %d exclusive %d dirty %d wp %d, "
			      "is %d %d %d %d (kernel: present %d exclusive %d wp %d)",
			      what, i, b->present, b->exclusive, b->dirty, b->wp,
			      q.present, q.exclusive, q.dirty, q.wp, k.present,
			      k.anon_exclusive, k.uffd_wp);
		ck_assert_msg(q.addr <= (uintptr_t)p && (uintptr_t)p < q.addr + q.size,
			      "%s: page %zu at %p reported in unit %#llx+%#llx", what,
			      i, p, (unsigned long long)q.addr,
			      (unsigned long long)q.size);
		if (q.present)
			ck_assert_msg(k.present, "%s: page %zu present for the "
				      "engine, not in pagemap", what, i);
		if (q.present && q.wp && h_pagemap_shows_uffd_wp())
			ck_assert_msg(k.uffd_wp, "%s: page %zu write-protected for "
				      "the engine, no uffd-wp bit in pagemap "
				      "(its writes go unseen)", what, i);
		if (b->kind != CG_PAGE_THP && b->kind != CG_PAGE_THP_PTE) {
			ck_assert_msg(q.kind == b->kind && q.size == b->size,
				      "%s: page %zu was kind %d size %#llx, is %d "
				      "%#llx", what, i, b->kind,
				      (unsigned long long)b->size, q.kind,
				      (unsigned long long)q.size);
			continue;
		}
		if (i == 0 || ((uintptr_t)p & (2 * MIB - 1)) == 0)
			pmd = h_pmd_mapped(p);
		if (pmd >= 0)
			ck_assert_msg(q.kind == (pmd ? CG_PAGE_THP : CG_PAGE_THP_PTE),
				      "%s: page %zu is kind %d for the engine, "
				      "%s for the kernel", what, i, q.kind,
				      pmd ? "PMD-mapped" : "PTE-mapped");
	}
}

int h_log_lines(const char *socket_path, const char *text)
{
	char log[256], *line = NULL;
	size_t cap = 0;
	int n = 0;
	FILE *f;

	snprintf(log, sizeof(log), "%s.log", socket_path);
	f = fopen(log, "re");
	ck_assert(f != NULL);
	while (getline(&line, &cap, f) > 0)
		n += strstr(line, text) != NULL;
	free(line);
	fclose(f);
	return n;
}

bool h_fork_safe_allocator(const char *what)
{
#ifdef __SANITIZE_ADDRESS__
	h_skip("%s: AddressSanitizer's allocator is not fork-safe with another "
	       "thread allocating (GCC 12); the lanes without it run this", what);
	return false;
#else
	(void)what;
	return true;
#endif
}

void h_timeout(TCase *tc, double seconds)
{
	/* Check scales this by CK_TIMEOUT_MULTIPLIER itself. */
	tcase_set_timeout(tc, seconds);
}

bool h_connectable(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	bool ok;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

pid_t h_daemon_start(const char *path)
{
	return h_daemon_start_opt(path, NULL, NULL);
}

pid_t h_daemon_start_opt(const char *path, const char *opt, const char *val)
{
	const char *dir = getenv("CG_BUILDDIR");
	char bin[256], log[256];
	struct timespec pause = { 0, 10 * 1000 * 1000 };
	pid_t pid;

	snprintf(bin, sizeof(bin), "%s/cowguardd", dir ? dir : "build");
	snprintf(log, sizeof(log), "%s.log", path);
	pid = fork();
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

		if (fd >= 0)
			dup2(fd, 2);
		execl(bin, bin, "--verbose", "--socket", path, opt, val,
		      (char *)NULL);
		fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
		_exit(127);
	}
	if (pid < 0)
		return -1;
	for (int i = 0; i < 500; i++) {
		if (h_connectable(path))
			return pid;
		if (waitpid(pid, NULL, WNOHANG) == pid)
			break;
		nanosleep(&pause, NULL);
	}
	fprintf(stderr, "harness: cowguardd (%s) did not come up; see %s\n", bin,
		log);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

int h_daemon_stop(pid_t pid)
{
	int status = 0;

	if (pid <= 0)
		return 0;
	kill(pid, SIGTERM);
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static struct cg__client status_ctl = { .sock = -1 };

int h_status_client(pid_t pid, struct cg__status_client *out)
{
	struct cg__req req;
	struct cg__rep rep;
	int ret, found = 0;

	if (status_ctl.sock < 0) {
		ret = cg__client_open_ctl(&status_ctl, sock_path);
		if (ret)
			return ret;
	}
	cg__req_init(&req, CG_OP_STATUS);
	ret = cg__client_call(&status_ctl, &req, &rep);
	while (!ret && rep.rec != CG_REC_END) {
		if (rep.rec == CG_REC_CLIENT && rep.u.client.pid == pid) {
			found = 1;
			if (out)
				*out = rep.u.client;
		}
		ret = cg__client_next(&status_ctl, &rep);
	}
	if (ret) {
		cg__client_close(&status_ctl);
		return ret;
	}
	return rep.status ? rep.status : found;
}

bool h_status_gone(pid_t pid, int ms)
{
	struct timespec pause = { 0, 10 * 1000 * 1000 };

	for (int waited = 0; waited <= ms; waited += 10) {
		if (h_status_client(pid, NULL) == 0)
			return true;
		nanosleep(&pause, NULL);
	}
	return false;
}

int h_daemon_pin(pid_t pid, unsigned n, struct cg__status_pin *out)
{
	struct cg__client ctl;
	struct cg__req req;
	struct cg__rep rep;
	unsigned seen = 0;
	int ret = cg__client_open_ctl(&ctl, sock_path);

	if (ret)
		return ret;
	cg__req_init(&req, CG_OP_PINS);
	req.pid = pid;
	ret = cg__client_call(&ctl, &req, &rep);
	while (!ret && rep.rec != CG_REC_END) {
		if (rep.rec == CG_REC_PIN && seen++ == n && out)
			*out = rep.u.pin;
		ret = cg__client_next(&ctl, &rep);
	}
	cg__client_close(&ctl);
	if (ret)
		return ret;
	return rep.status ? rep.status : seen > n;
}

int h_fd_count(pid_t pid)
{
	char path[64];
	struct dirent *d;
	DIR *dir;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	dir = opendir(path);
	if (!dir)
		return -errno;
	while ((d = readdir(dir)))
		if (d->d_name[0] != '.')
			n++;
	closedir(dir);
	return n;
}

void h_run_cmd(struct h_run *r, const char *fmt, ...)
{
	char cmd[2048];
	size_t n = 0, got;
	va_list ap;
	FILE *f;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	f = popen(cmd, "r");
	ck_assert_msg(f != NULL, "popen %s", cmd);
	while (n < sizeof(r->out) - 1 &&
	       (got = fread(r->out + n, 1, sizeof(r->out) - 1 - n, f)) > 0)
		n += got;
	r->out[n] = 0;
	st = pclose(f);
	r->status = st < 0 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st)
						: 128 + WTERMSIG(st);
}

const char *h_ctl_path(void)
{
	static char path[256];
	const char *dir = getenv("CG_BUILDDIR");

	snprintf(path, sizeof(path), "%s/cowguardctl", dir ? dir : "build");
	return path;
}

bool h_have_python(void)
{
	if (system("command -v python3 >/dev/null 2>&1") == 0)
		return true;
	h_skip("no python3 to check the JSON with");
	return false;
}

/* A daemon that ended badly (a sanitizer report, a crash) fails the suite. */
static int stop_suite_daemon(void)
{
	char cmd[256];
	int status = h_daemon_stop(daemon_pid);

	daemon_pid = 0;
	if (status == 0)
		return 0;
	fprintf(stderr, "harness: cowguardd exited with status %d; its log:\n",
		status);
	snprintf(cmd, sizeof(cmd), "cat '%s.log' >&2", sock_path);
	if (system(cmd))
		fprintf(stderr, "harness: no log\n");
	return 1;
}

static long read_long(const char *path)
{
	FILE *f = fopen(path, "re");
	long v = -1;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static int write_long(const char *path, long v)
{
	FILE *f = fopen(path, "we");

	if (!f)
		return -errno;
	fprintf(f, "%ld\n", v);
	return fclose(f) ? -errno : 0;
}

long h_hugetlb_pool(enum h_kind kind)
{
	return read_long(kind == H_HUGETLB_1G ? NR_1G : NR_2M);
}

int h_hugetlb_pool_set(enum h_kind kind, long n)
{
	return write_long(kind == H_HUGETLB_1G ? NR_1G : NR_2M, n);
}

bool h_hugetlb_room(enum h_kind kind, unsigned long n)
{
	struct timespec pause = { 0, 20 * 1000 * 1000 };
	unsigned shift = kind == H_HUGETLB_1G ? 30 : 21;
	long spare = -1;

	if (kind != H_HUGETLB_2M && kind != H_HUGETLB_1G)
		return true;
	for (int i = 0; i < 100; i++) {
		/* A copy takes an unreserved page: free less reserved. */
		spare = cg__hugetlb_spare(shift);
		if (spare >= (long)n)
			return true;
		nanosleep(&pause, NULL);
	}
	h_skip("%s: %ld spare huge pages, %lu needed", h_kind_name(kind),
	       spare, n);
	return false;
}

/* Pages still being freed (gigantic ones go lazily) hold a pool up: retry. */
static void restore_pool(const char *path, long v)
{
	struct timespec pause = { 0, 100 * 1000 * 1000 };

	for (int i = 0; i < 50; i++) {
		write_long(path, v);
		if (read_long(path) == v)
			return;
		nanosleep(&pause, NULL);
	}
	fprintf(stderr, "harness: %s is %ld, not back to %ld\n", path,
		read_long(path), v);
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
	h_daemon_stop(daemon_pid);
	daemon_pid = 0;
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
	saved_2m = read_long(NR_2M);
	saved_1g = read_long(NR_1G);
	if (saved_2m >= 0 && saved_2m < WANT_2M)
		write_long(NR_2M, WANT_2M);
	if (saved_1g >= 0 && saved_1g < WANT_1G)
		write_long(NR_1G, WANT_1G);
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
	if ((needs & H_NEED_DAEMON) && external_socket()) {
		/* The lane's root daemon: not ours to start, stop or read. */
		if (snprintf(sock_path, sizeof(sock_path), "%s",
			     external_socket()) >= (int)sizeof(sock_path)) {
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
		snprintf(sock_path, sizeof(sock_path), "%s/cowguardd.sock", tmpdir);
		daemon_pid = h_daemon_start(sock_path);
		if (daemon_pid < 0)
			return 1;
	}
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	failed += stop_suite_daemon();
	cleanup();
	return failed ? 1 : 0;
}
