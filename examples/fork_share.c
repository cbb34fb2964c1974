// SPDX-License-Identifier: MIT
/*
 * fork_share: what fork() does to page state, shown by cowguard.
 *
 * Maps a 4 KiB-page region, a THP region and (when the pool has pages) a
 * hugetlb region, registers them, forks, writes in the parent and in the
 * child, and prints each side's page-state table with an audit against the
 * kernel's own PageAnonExclusive.  Exits 1 if any audit disagrees.
 *
 * Usage: fork_share [--linger SECONDS]   (linger: keep the regions
 * registered at the end, so `cowguardctl status` can show them)
 *        fork_share -h | --help
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cowguard.h>

#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << MAP_HUGE_SHIFT)
#endif

#define MIB (1024UL * 1024)

struct region {
	const char *name;
	char *addr;
	size_t len, unit;
};

static struct region regions[3];
static int nregions;
static int mismatches;

static void *map_aligned(size_t len, size_t align)
{
	char *p = mmap(NULL, len + align, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *q;

	if (p == MAP_FAILED)
		return NULL;
	q = (char *)(((unsigned long)p + align - 1) & ~(align - 1));
	if (q > p)
		munmap(p, (size_t)(q - p));
	munmap(q + len, (size_t)(p + align - q));
	return q;
}

static void add(const char *name, char *addr, size_t len, size_t unit)
{
	memset(addr, 'A', len);
	regions[nregions++] = (struct region){ name, addr, len, unit };
}

static void map_regions(void)
{
	char *p = map_aligned(64 * 1024, 4096);
	char *t = map_aligned(4 * MIB, 2 * MIB);
	char *h;

	madvise(p, 64 * 1024, MADV_NOHUGEPAGE);
	add("4 KiB", p, 64 * 1024, 4096);
	if (madvise(t, 4 * MIB, MADV_HUGEPAGE) == 0)
		add("THP", t, 4 * MIB, 2 * MIB);
	else
		printf("THP: unavailable (%s)\n", strerror(errno));
	h = mmap(NULL, 4 * MIB, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB, -1, 0);
	if (h != MAP_FAILED)
		add("hugetlb", h, 4 * MIB, 2 * MIB);
	else
		printf("hugetlb: no 2 MiB pages to be had (vm.nr_hugepages)\n");
}

/* A THP split into 4 KiB pages: E all exclusive, s none, m mixed. */
static char split_unit(struct cg *cg, const char *unit, size_t len,
		       char *note, size_t note_len)
{
	struct cg_page_info info;
	size_t excl = 0, pages = len / 4096;

	for (size_t off = 0; off < len; off += 4096)
		if (!cg_query(cg, unit + off, &info, sizeof(info)) && info.exclusive)
			excl++;
	snprintf(note, note_len, " (split to 4 KiB: %zu exclusive, %zu maybe-shared)",
		 excl, pages - excl);
	return excl == pages ? 'E' : excl ? 'm' : 's';
}

/* One letter per unit of the region: E exclusive, s maybe-shared, . absent. */
static void print_row(struct cg *cg, const struct region *r)
{
	char state[40] = "", flags[40] = "", note[96] = "";
	size_t n = 0;

	for (size_t off = 0; off < r->len && n < sizeof(state) - 1;
	     off += r->unit, n++) {
		struct cg_page_info info;

		if (cg_query(cg, r->addr + off, &info, sizeof(info))) {
			state[n] = '?';
			continue;
		}
		state[n] = !info.present ? '.' : info.exclusive ? 'E' : 's';
		if (info.size < r->unit)
			state[n] = split_unit(cg, r->addr + off, r->unit, note,
					      sizeof(note));
		flags[n] = info.dirty ? (info.wp ? 'D' : 'd') : (info.wp ? '-' : ' ');
	}
	state[n] = flags[n] = 0;
	printf("  %-8s %3zu x %-7s  %-18s %-18s%s\n", r->name, n,
	       r->unit >= 2 * MIB ? "2 MiB" : "4 KiB", state, flags, note);
}

static void audit(struct cg *cg, const char *who)
{
	unsigned long long pages = 0, exact = 0, unsafe = 0, cons = 0, unk = 0;
	struct cg_audit_report a = { 0 };

	for (int i = 0; i < nregions; i++) {
		int ret = cg_audit(cg, regions[i].addr, regions[i].len, &a, sizeof(a));

		if (ret) {
			printf("  audit of %s failed: %s\n", regions[i].name,
			       cg_strerror(ret));
			mismatches++;
			continue;
		}
		pages += a.pages;
		exact += a.exact;
		unsafe += a.unsafe;
		cons += a.conservative;
		unk += a.unknowable;
	}
	printf("  audit (%s, truth: %s): %llu pages, %llu compared exactly, "
	       "%llu unknowable: %llu unsafe, %llu conservative -> %s\n",
	       who, a.truth == CG_TRUTH_KPAGEFLAGS ? "PageAnonExclusive"
						   : "pagemap mapcount",
	       pages, exact, unk, unsafe, cons,
	       unsafe + cons ? "MISMATCH" : "zero mismatches");
	mismatches += unsafe + cons ? 1 : 0;
}

static void table(struct cg *cg, const char *title, const char *who)
{
	printf("\n%s\n", title);
	printf("  %-8s %-13s  %-18s %s\n", "region", "units", "E/s/m/.", "D/d/-");
	for (int i = 0; i < nregions; i++)
		print_row(cg, &regions[i]);
	audit(cg, who);
}

static void write_unit(int unit, char c)
{
	for (int i = 0; i < nregions; i++)
		if ((size_t)unit * regions[i].unit < regions[i].len)
			regions[i].addr[(size_t)unit * regions[i].unit] = c;
}

static int child(struct cg *cg, int go)
{
	char byte;

	if (read(go, &byte, 1) != 1)
		return 2;
	write_unit(0, 'C');
	table(cg, "child, after writing unit 0 of each region:", "child");
	for (int i = 0; i < nregions; i++)
		if (regions[i].addr[regions[i].unit] != 'A')
			return 3;	/* the parent's write leaked into us */
	return mismatches ? 1 : 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: fork_share [--linger SECONDS]\n"
		"       fork_share -h | --help\n"
		"\n"
		"Registers a 4 KiB, a THP and (if the pool has pages) a hugetlb\n"
		"region, forks, writes in parent and child, and prints each\n"
		"side's page states with an audit against the kernel.\n"
		"Exits 0 when every audit finds zero mismatches, 1 otherwise.\n"
		"\n"
		"  --linger SECONDS  keep the regions registered SECONDS (0-3600)\n"
		"                    at the end, for `cowguardctl status`\n"
		"  -h, --help        show this help and exit\n");
}

/* A bad argument: what is wrong and the usage on stderr, exit status 2. */
static void __attribute__((format(printf, 1, 2), noreturn))
bad_usage(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fork_share: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	usage(stderr);
	exit(2);
}

static int parse_args(int argc, char **argv)
{
	int linger = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			exit(0);
		} else if (!strcmp(a, "--linger")) {
			char *end;
			long v;

			if (i + 1 >= argc)
				bad_usage("%s needs a number of seconds", a);
			errno = 0;
			v = strtol(argv[++i], &end, 10);
			if (errno || end == argv[i] || *end || v < 0 || v > 3600)
				bad_usage("--linger: not a number of seconds from 0 "
					  "to 3600: '%s'", argv[i]);
			linger = (int)v;
		} else {
			bad_usage("unknown argument '%s'", a);
		}
	}
	return linger;
}

int main(int argc, char **argv)
{
	int linger = parse_args(argc, argv);
	struct cg *cg;
	int go[2], status, ret;
	pid_t pid;

	ret = cg_open(NULL, 0, &cg);
	if (ret) {
		fprintf(stderr, "fork_share: cg_open: %s\n", cg_strerror(ret));
		return 2;
	}
	printf("fork_share: cowguard %s mode, uffd features %#llx\n",
	       cg_mode(cg) == CG_MODE_DAEMON ? "daemon" : "embedded",
	       (unsigned long long)cg_features(cg));
	map_regions();
	for (int i = 0; i < nregions; i++) {
		ret = cg_register(cg, regions[i].addr, regions[i].len, 0);
		if (ret) {
			fprintf(stderr, "fork_share: register %s: %s\n",
				regions[i].name, cg_strerror(ret));
			return 2;
		}
	}
	printf("legend: E exclusive, s maybe-shared, m mixed, . not present; "
	       "D dirty+protected, d dirty, - protected\n");
	table(cg, "registered (populated, write-protected):", "parent");

	if (pipe(go))
		return 2;
	fflush(stdout);	/* or the child prints our buffer again */
	pid = fork();
	if (pid == 0) {
		close(go[1]);
		ret = child(cg, go[0]);
		fflush(stdout);
		_exit(ret);
	}
	close(go[0]);
	table(cg, "parent, right after fork():", "parent");
	write_unit(1, 'P');
	table(cg, "parent, after writing unit 1 of each region:", "parent");
	fflush(stdout);
	if (write(go[1], "g", 1) != 1)
		return 2;
	waitpid(pid, &status, 0);
	table(cg, "parent, after the child exited:", "parent");
	printf("\nchild exit status %d; parent data %s\n", WEXITSTATUS(status),
	       regions[0].addr[0] == 'A' && regions[0].addr[4096] == 'P'
		       ? "intact" : "CORRUPT");
	if (linger) {
		printf("lingering %d s with the regions registered\n", linger);
		fflush(stdout);
		sleep((unsigned)linger);
	}
	cg_close(cg);
	return mismatches || WEXITSTATUS(status) ? 1 : 0;
}
