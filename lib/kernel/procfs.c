// SPDX-License-Identifier: MIT
/* Reading a process's VMAs and page tables through /proc. */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "compat.h"
#include "procfs.h"

static int proc_open(pid_t pid, const char *what, int flags)
{
	char path[64];
	int fd;

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, what);
	else
		snprintf(path, sizeof(path), "/proc/self/%s", what);
	fd = open(path, flags | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* /proc/PID/smaps as a stream, or NULL and *err. */
int cg__smaps_open(pid_t pid)
{
	return proc_open(pid, "smaps", O_RDONLY);
}

/* A stream over smaps_fd from its start (a copy: fclose leaves ours). */
static FILE *smaps_rewind(int smaps_fd, int *err)
{
	int fd = smaps_fd < 0 ? -1 : dup(smaps_fd);
	FILE *f;

	if (fd < 0) {
		*err = -ESRCH;
		return NULL;
	}
	if (lseek(fd, 0, SEEK_SET) || !(f = fdopen(fd, "re"))) {
		close(fd);
		*err = -ESRCH;
		return NULL;
	}
	return f;
}

static bool thp_always(void)
{
	char buf[64] = "";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "re");

	if (!f)
		return false;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	return strstr(buf, "[always]") != NULL;
}

/* One VMA's facts, accumulated while reading its smaps block. */
struct vma {
	uint64_t start, end;
	bool private, anon, hugetlb, hg, nh;
	unsigned page_kb;
	uint64_t shared_hugetlb_kb;
};

/*
 * *always: THP "always" as sysfs says, read once a walk (-1: not yet): a
 * file opened for every VMA of a region cut into thousands held the loop.
 */
static int vma_kind(const struct vma *v, uint64_t addr, uint64_t len,
		    int *always, struct cg__vma_kind *k)
{
	if (!v->private || (!v->anon && !v->hugetlb))
		return -EINVAL;
	if (v->hugetlb) {
		k->kind = CG_RK_HUGETLB;
		k->unit_shift = v->page_kb == 1048576 ? 30 : 21;
		if ((addr | len) & ((1ULL << k->unit_shift) - 1))
			return -EINVAL;
		return 0;
	}
	k->kind = CG_RK_4K;
	k->unit_shift = CG_PAGE_SHIFT;
	if (!v->hg && !v->nh && *always < 0)
		*always = thp_always();
	if ((v->hg || (*always > 0 && !v->nh)) &&
	    !((addr | len) & (CG_PMD_SIZE - 1)))
		k->kind = CG_RK_THP;
	return 0;
}

/* Fold one finished VMA into the answer; *next is where coverage continues. */
static int vma_fold(const struct vma *v, uint64_t addr, uint64_t len,
		    uint64_t *next, bool *seen, int *always,
		    struct cg__vma_kind *out)
{
	struct cg__vma_kind k;
	int ret;

	if (v->end <= *next || v->start >= addr + len)
		return 0;
	if (v->start > *next)
		return -ENOMEM;
	ret = vma_kind(v, addr, len, always, &k);
	if (ret)
		return ret;
	if (*seen && (k.kind != out->kind || k.unit_shift != out->unit_shift))
		return -EINVAL;
	k.shared_hugetlb_kb = v->shared_hugetlb_kb + (*seen ? out->shared_hugetlb_kb : 0);
	*out = k;
	*seen = true;
	*next = v->end;
	return 0;
}

/* A VMA's first line in smaps: keys are capitalised, addresses not. */
static bool vma_header_line(const char *line)
{
	return (line[0] >= '0' && line[0] <= '9') ||
	       (line[0] >= 'a' && line[0] <= 'f');
}

static void vma_header(struct vma *v, const char *line)
{
	char perms[8] = "";
	unsigned long long ino = 0;
	char path[256] = "";

	memset(v, 0, sizeof(*v));
	sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s %*s %*s %llu %255[^\n]",
	       &v->start, &v->end, perms, &ino, path);
	v->private = perms[3] == 'p';
	v->anon = ino == 0;
	v->page_kb = 4;
}

static void vma_flags(struct vma *v, const char *flags)
{
	v->hugetlb = strstr(flags, " ht") != NULL;
	v->hg = strstr(flags, " hg") != NULL;
	v->nh = strstr(flags, " nh") != NULL;
}

/*
 * Walk smaps line by line, with the VMA a line belongs to in v (its header
 * parsed by the walk), and stop at the first nonzero fn returns: that is
 * the walk's return, or 0 when fn never stopped it, or -ESRCH when not one
 * line came (the mm it was opened on is gone: exit, exec).
 */
typedef int smaps_fn(struct vma *v, const char *line, void *arg);

static unsigned max_vmas;

void cg__smaps_limit(unsigned vmas)
{
	max_vmas = vmas;
}

static int smaps_walk(int smaps_fd, smaps_fn *fn, void *arg)
{
	struct vma v = { 0 };
	char line[512];
	unsigned vmas = 0;
	int ret;
	FILE *f;

	f = smaps_rewind(smaps_fd, &ret);
	if (!f)
		return ret;
	/* A few hundred bytes a VMA: fewer, larger reads. */
	setvbuf(f, NULL, _IOFBF, 64 << 10);
	ret = -ESRCH;	/* until a line shows the mm is still there */
	while (fgets(line, sizeof(line), f)) {
		if (vma_header_line(line)) {
			if (max_vmas && ++vmas > max_vmas) {
				ret = -EMLINK;
				break;
			}
			vma_header(&v, line);
		}
		ret = fn(&v, line, arg);
		if (ret)
			break;
	}
	fclose(f);
	return ret;
}

struct probe {
	uint64_t addr, len, next;
	bool seen;
	int always;	/* THP "always": -1 until read */
	struct cg__vma_kind *out;
};

/* 1: all of the range is folded in. */
static int probe_line(struct vma *v, const char *line, void *arg)
{
	struct probe *p = arg;
	int ret;

	if (strncmp(line, "KernelPageSize:", 15) == 0) {
		sscanf(line + 15, "%u", &v->page_kb);
	} else if (strncmp(line, "Shared_Hugetlb:", 15) == 0) {
		sscanf(line + 15, "%" SCNu64, &v->shared_hugetlb_kb);
	} else if (strncmp(line, "VmFlags:", 8) == 0) {
		vma_flags(v, line + 8);
		ret = vma_fold(v, p->addr, p->len, &p->next, &p->seen,
			       &p->always, p->out);
		if (ret)
			return ret;
		return p->next >= p->addr + p->len;
	}
	return 0;
}

int cg__vma_probe(int smaps_fd, uint64_t addr, uint64_t len,
		  struct cg__vma_kind *out)
{
	struct probe p = { .addr = addr, .len = len, .next = addr,
			   .always = -1, .out = out };
	int ret = smaps_walk(smaps_fd, probe_line, &p);

	if (ret == 1)
		return 0;
	if (!ret && p.next < addr + len)
		ret = -ENOMEM;
	return ret;
}

/* Whether a VmFlags line has any of the space-separated two-letter flags. */
static bool has_any_flag(const char *vmflags, const char *flags)
{
	char want[4] = " ..";

	for (const char *f = flags; f[0] && f[1]; f += f[2] ? 3 : 2) {
		want[1] = f[0];
		want[2] = f[1];
		if (strstr(vmflags, want))
			return true;
	}
	return false;
}

/* A walk's stop past the range asked about: nothing more to see. */
#define PAST_RANGE 2

struct flag_scan {
	uint64_t lo, hi;
	const char *flags;
	bool seen;
};

/* 1 at a VMA of the range that has one of the flags. */
static int flag_line(struct vma *v, const char *line, void *arg)
{
	struct flag_scan *s = arg;

	if (strncmp(line, "VmFlags:", 8) || v->end <= s->lo)
		return 0;
	if (v->start >= s->hi)
		return PAST_RANGE;	/* VMAs come in address order */
	s->seen = true;
	return has_any_flag(line + 7, s->flags);
}

/*
 * Whether the VMAs of [lo, hi) have one of flags: 1 at the first that
 * has, 0 when none does (or, where only one VMA is asked about, it has
 * not), or -ENOENT when no VMA is there, -ESRCH when that address space is
 * gone.
 */
static int vma_flag_scan(int smaps_fd, uint64_t lo, uint64_t hi,
			 const char *flags)
{
	struct flag_scan s = { .lo = lo, .hi = hi, .flags = flags };
	int ret = smaps_walk(smaps_fd, flag_line, &s);

	if (ret == PAST_RANGE)
		ret = 0;

	return ret || s.seen ? ret : -ENOENT;
}

int cg__vma_flag(int smaps_fd, uint64_t addr, const char *flag)
{
	return vma_flag_scan(smaps_fd, addr, addr + 1, flag);
}

int cg__vma_flag_in(int smaps_fd, uint64_t lo, uint64_t hi, const char *flags)
{
	int ret = vma_flag_scan(smaps_fd, lo, hi, flags);

	return ret == -ENOENT ? 0 : ret;
}

static long hugetlb_counter(unsigned shift, const char *name)
{
	char path[96];
	long v = -ENOENT;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/hugepages-%llukB/%s",
		 (1ULL << shift) >> 10, name);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	if (fscanf(f, "%ld", &v) != 1)
		v = -EIO;
	fclose(f);
	return v;
}

long cg__hugetlb_spare(unsigned shift)
{
	long free_pages = hugetlb_counter(shift, "free_hugepages");
	long resv = hugetlb_counter(shift, "resv_hugepages");

	if (free_pages < 0 || resv < 0)
		return free_pages < 0 ? free_pages : resv;
	return free_pages > resv ? free_pages - resv : 0;
}

int cg__pagemap_open(pid_t pid)
{
	return proc_open(pid, "pagemap", O_RDONLY);
}

int cg__pagemap_read(int fd, uint64_t addr, size_t n, uint64_t *out)
{
	size_t want = n * sizeof(*out), got = 0;
	off_t off = (off_t)(addr >> CG_PAGE_SHIFT) * (off_t)sizeof(*out);

	while (got < want) {
		ssize_t r = pread(fd, (char *)out + got, want - got,
				  off + (off_t)got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ESRCH;	/* the process is gone */
		got += (size_t)r;
	}
	return 0;
}

static int kpageflags_pread(int fd, uint64_t pfn, uint64_t *out)
{
	ssize_t r = pread(fd, out, sizeof(*out), (off_t)(pfn * sizeof(*out)));

	if (r < 0)
		return -errno;
	return r == sizeof(*out) ? 0 : -EIO;
}

int cg__kpageflags_read(int fd, uint64_t pfn, uint64_t *out)
{
	const uint64_t tail = 1ULL << KPF_COMPOUND_TAIL_BIT | 1ULL << KPF_HUGE_BIT;
	int ret = kpageflags_pread(fd, pfn, out);

	/* A tail that says exclusive is reporting its folio already. */
	if (ret || (*out & tail) != tail || (*out & 1ULL << KPF_ANON_EXCLUSIVE_BIT))
		return ret;
	/*
	 * A tail of a hugetlb page.  Before kpageflags reported the folio
	 * (6.1: the page's own flags), PageAnonExclusive lives on the head
	 * alone: measured in the 6.1 guest, a fresh private 2 MiB page reads
	 * 1 at its head and 0 at every tail.  Read the head, which is what
	 * 6.18 reports for every page of it.  Huge pages are aligned in frame
	 * numbers too: the head is at the 2 MiB or the 1 GiB boundary.
	 */
	for (unsigned order = 9; order <= 18; order += 9) {
		uint64_t head = pfn & ~((1ULL << order) - 1), f;

		if (!kpageflags_pread(fd, head, &f) &&
		    (f & 1ULL << KPF_COMPOUND_HEAD_BIT) && (f & 1ULL << KPF_HUGE_BIT)) {
			*out = f;
			break;
		}
	}
	return 0;
}

static int scan(int fd, uint64_t start, uint64_t len, struct page_region *vec,
		size_t nvec)
{
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.start = start,
		.end = start + len,
		.vec = (uint64_t)(uintptr_t)vec,
		.vec_len = nvec,
		.category_mask = PAGE_IS_HUGE,
		.return_mask = PAGE_IS_HUGE,
	};
	int ret = ioctl(fd, PAGEMAP_SCAN, &arg);

	return ret < 0 ? -errno : ret;
}

/*
 * What the scans below ask, where two ask the same: a page present or
 * swapped; a page written since it was protected (PAGE_IS_WRITTEN, the
 * zero page not counted), of those.
 */
#define PRESENT_QUERY                                                    \
	{                                                                \
		.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED, \
		.return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,         \
	}
#define WRITTEN_QUERY                                                    \
	{                                                                \
		.flags = PM_SCAN_CHECK_WPASYNC,                           \
		.category_inverted = PAGE_IS_PFNZERO,                     \
		.category_mask = PAGE_IS_WRITTEN | PAGE_IS_PFNZERO,       \
		.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED, \
		.return_mask = PAGE_IS_WRITTEN,                           \
	}

/*
 * The runs of [start, end) that arg's categories pick: at most nvec into
 * vec, and *walk_end, where the scan stopped.  Returns runs or -errno.
 */
static int scan_runs(int fd, struct pm_scan_arg *arg, uint64_t start,
		     uint64_t end, struct page_region *vec, size_t nvec,
		     uint64_t *walk_end)
{
	int ret;

	arg->size = sizeof(*arg);
	arg->start = start;
	arg->end = end;
	arg->vec = (uint64_t)(uintptr_t)vec;
	arg->vec_len = nvec;
	ret = ioctl(fd, PAGEMAP_SCAN, arg);
	if (ret < 0)
		return -errno;
	*walk_end = arg->walk_end;
	return ret;
}

int cg__pagemap_present(int fd, uint64_t start, uint64_t end,
			struct page_region *vec, size_t nvec, uint64_t *walk_end)
{
	struct pm_scan_arg arg = PRESENT_QUERY;

	return scan_runs(fd, &arg, start, end, vec, nvec, walk_end);
}

int cg__pagemap_holes(int fd, uint64_t start, uint64_t end,
		      struct page_region *vec, size_t nvec, uint64_t *walk_end)
{
	struct pm_scan_arg arg = {
		/* Neither present nor swapped (a uffd-wp marker is swapped). */
		.category_inverted = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
		.category_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
		.return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
	};

	return scan_runs(fd, &arg, start, end, vec, nvec, walk_end);
}

/*
 * The first page of [start, end) that arg's categories pick, into *at: 1,
 * or 0 when none does, or -errno.  max_pages 1: a scan with one vector
 * entry and no such bound goes on to the end of a run that matches.
 */
static int first_match(int fd, uint64_t start, uint64_t end,
		       struct pm_scan_arg *arg, uint64_t *at)
{
	struct page_region v;
	int ret;

	arg->size = sizeof(*arg);
	arg->start = start;
	arg->end = end;
	arg->vec = (uint64_t)(uintptr_t)&v;
	arg->vec_len = 1;
	arg->max_pages = 1;
	ret = ioctl(fd, PAGEMAP_SCAN, arg);
	if (ret < 0)
		return -errno;
	if (ret)
		*at = v.start;
	return ret;
}

int cg__pagemap_first_absent(int fd, uint64_t start, uint64_t end,
			     uint64_t *hole)
{
	struct pm_scan_arg arg = {
		.category_inverted = PAGE_IS_PRESENT,
		.category_mask = PAGE_IS_PRESENT,
		.return_mask = PAGE_IS_PRESENT,
	};

	return first_match(fd, start, end, &arg, hole);
}

int cg__pagemap_first_present(int fd, uint64_t start, uint64_t end,
			      uint64_t *at)
{
	struct pm_scan_arg arg = PRESENT_QUERY;

	return first_match(fd, start, end, &arg, at);
}

int cg__pagemap_first_written(int fd, uint64_t start, uint64_t end,
			      uint64_t *at)
{
	struct pm_scan_arg arg = WRITTEN_QUERY;

	return first_match(fd, start, end, &arg, at);
}

int cg__pagemap_written(int fd, uint64_t start, uint64_t end,
			struct page_region *vec, size_t nvec, uint64_t *walk_end)
{
	struct pm_scan_arg arg = WRITTEN_QUERY;

	return scan_runs(fd, &arg, start, end, vec, nvec, walk_end);
}

int cg__pagemap_protect(int fd, uint64_t start, uint64_t end,
			struct page_region *vec, size_t nvec, uint64_t *walk_end)
{
	struct pm_scan_arg arg = {
		.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
		.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
		.return_mask = PAGE_IS_WRITTEN | PAGE_IS_PFNZERO,
	};

	return scan_runs(fd, &arg, start, end, vec, nvec, walk_end);
}

bool cg__pagemap_scan_works(int fd)
{
	/* The kernel's answer holds for the process's life: asked once. */
	static int works = -1;
	struct page_region vec[1];
	/* Any mapped address will do: our own stack. */
	uint64_t here = (uint64_t)(uintptr_t)vec & ~(CG_PAGE_SIZE - 1);
	int known = __atomic_load_n(&works, __ATOMIC_RELAXED), ret;

	if (known >= 0)
		return known;
	ret = scan(fd, here, CG_PAGE_SIZE, vec, 1);
	/* No such ioctl (before 6.7), or its arguments unknown: for good. */
	if (ret >= 0 || ret == -ENOTTY || ret == -EINVAL)
		__atomic_store_n(&works, ret >= 0, __ATOMIC_RELAXED);
	return ret >= 0;
}

int cg__pmd_mapped(int fd, uint64_t start, uint64_t len, uint64_t *mask)
{
	struct page_region vec[64];
	int n;

	*mask = 0;
	if (len > 64 * CG_PMD_SIZE)
		return -EINVAL;
	n = scan(fd, start, len, vec, 64);
	if (n == -ENOTTY || n == -EINVAL)
		return -EOPNOTSUPP;
	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		/* PAGE_IS_HUGE is set for a THP only while one PMD maps it. */
		for (uint64_t a = vec[i].start; a < vec[i].end; a += CG_PMD_SIZE)
			if (!(a & (CG_PMD_SIZE - 1)) && a + CG_PMD_SIZE <= vec[i].end)
				*mask |= 1ULL << ((a - start) >> CG_PMD_SHIFT);
	}
	return 0;
}
