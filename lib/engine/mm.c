// SPDX-License-Identifier: MIT
/* A tracked address space: its regions, registration and queries. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "internal.h"
#include "kernel/kernel.h"
#include "kernel/procfs.h"
#include "kernel/uffd.h"
#include "pins.h"
#include "wire/protocol.h"

/*
 * A sequential writer faults once per 64 KiB instead of once per page, and
 * a page reported dirty may be one of 15 neighbours never written; the
 * kernel's own fault-around reads 64 KiB too.
 */
#define WP_AROUND_KIB 64

/*
 * COWGUARD_WP_AROUND: the window, in KiB (a power of two, 4 to 2048), in
 * which a write fault unprotects the pages known exclusive around its own;
 * 4 (or 0) unprotects the faulting page alone.
 */
static uint64_t wp_around_wanted(void)
{
	const char *s = getenv("COWGUARD_WP_AROUND");
	unsigned long kib = WP_AROUND_KIB, v;
	char *end;

	if (s && *s) {
		v = strtoul(s, &end, 10);
		if (!*end && (!v || (v >= 4 && v <= 2048 && !(v & (v - 1)))))
			kib = v ? v : 4;
	}
	return (uint64_t)kib << 10;
}

int cg__mm_init(struct cg__mm *mm, int uffd, uint64_t features, pid_t pid,
		int pagemap_fd, int kpageflags_fd)
{
	memset(mm, 0, sizeof(*mm));
	mm->uffd = uffd;
	mm->features = features;
	mm->wp_async = features & UFFD_FEATURE_WP_ASYNC;
	mm->wp_around = wp_around_wanted();
	/*
	 * Before 5.19 kpageflags bit 34 is not PageAnonExclusive: without it
	 * only pagemap can judge (bit 56 convicts, nothing confirms).  In
	 * cowguardd this is the first use, before it registers anything.
	 */
	cg__kernel_probe();
	mm->kpageflags_fd = cg__kernel_read_pin_unshares() ? kpageflags_fd : -1;
	mm->pagemap_fd = mm->smaps_fd = -1;
	cg__proc_init(&mm->proc);
	cg__mm_set_process(mm, pid, pagemap_fd, -1);
	return 0;
}

/*
 * COWGUARD_PAGEMAP_SCAN=off learns as kernels before 6.7 make us, a
 * pagemap read per page, so that the host can time that path.
 */
static bool scan_wanted(void)
{
	const char *s = getenv("COWGUARD_PAGEMAP_SCAN");

	return !s || strcmp(s, "off");
}

/* COWGUARD_THP_MOVE=off unshares THP as the kernel does, for comparison. */
static bool thp_move_wanted(void)
{
	const char *s = getenv("COWGUARD_THP_MOVE");

	return !s || strcmp(s, "off");
}

uint64_t cg__mm_uffd_wanted(void)
{
	const char *wp = getenv("COWGUARD_WP");
	bool unshares = !cg__kernel_probe() && cg__kernel_read_pin_unshares();
	bool async = wp && !strcmp(wp, "async") && scan_wanted() && unshares;
	/* A THP unshared by a move is the fault path's (lib/engine/move.c). */
	bool move = !async && unshares && thp_move_wanted();

	return CG_UFFD_WANTED | (async ? UFFD_FEATURE_WP_ASYNC : 0) |
	       (move ? UFFD_FEATURE_MOVE : 0);
}

void cg__mm_set_process(struct cg__mm *mm, pid_t pid, int pagemap_fd,
			int smaps_fd)
{
	if (mm->pagemap_fd >= 0)
		close(mm->pagemap_fd);
	if (mm->smaps_fd >= 0)
		close(mm->smaps_fd);
	mm->pid = pid;
	mm->pagemap_fd = pagemap_fd;
	/*
	 * Opened now, with pagemap: both stay on this address space, so an
	 * exec by the process (a set-user-ID program, say) ends them rather
	 * than aiming us at the new image.  pid 0: an unnamed child.
	 */
	mm->smaps_fd = smaps_fd >= 0 || !pid ? smaps_fd : cg__smaps_open(pid);
	if (mm->smaps_fd < 0)
		mm->smaps_fd = -1;
	mm->has_scan = pagemap_fd >= 0 && scan_wanted() &&
		       cg__pagemap_scan_works(pagemap_fd);
}

void cg__mm_destroy(struct cg__mm *mm)
{
	for (size_t i = 0; i < mm->nregions; i++)
		cg__region_free(mm->regions[i]);
	free(mm->regions);
	cg__mm_pins_free(mm);
	cg__mm_fill_free(mm);
	cg__mm_snap_free(mm);
	for (size_t i = 0; i < mm->nbacklog; i++)
		if (mm->backlog[i].event == UFFD_EVENT_FORK)
			close((int)mm->backlog[i].arg.fork.ufd);
	free(mm->backlog);
	if (mm->pagemap_fd >= 0)
		close(mm->pagemap_fd);
	if (mm->smaps_fd >= 0)
		close(mm->smaps_fd);
	cg__proc_release(&mm->proc);
	/* Closing the last reference wakes every blocked fault. */
	if (mm->uffd >= 0)
		close(mm->uffd);
	memset(mm, 0, sizeof(*mm));
	mm->uffd = mm->pagemap_fd = mm->smaps_fd = mm->kpageflags_fd = -1;
	cg__proc_init(&mm->proc);
}

/* Index of the first region ending after addr. */
static size_t lower_bound(const struct cg__mm *mm, uint64_t addr)
{
	size_t lo = 0, hi = mm->nregions;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct cg__region *r = mm->regions[mid];

		if (r->start + r->len <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

struct cg__region *cg__mm_find(const struct cg__mm *mm, uint64_t addr)
{
	size_t i = lower_bound(mm, addr);

	if (i < mm->nregions && mm->regions[i]->start <= addr)
		return mm->regions[i];
	return NULL;
}

bool cg__mm_covered(const struct cg__mm *mm, uint64_t addr, uint64_t len)
{
	for (uint64_t a = addr; a < addr + len;) {
		const struct cg__region *r = cg__mm_find(mm, a);

		if (!r)
			return false;
		a = r->start + r->len;
	}
	return true;
}

bool cg__mm_pmd_mapped(const struct cg__mm *mm, uint64_t addr)
{
	uint64_t mask;

	/* Without PAGEMAP_SCAN a PMD mapping cannot be confirmed. */
	return mm->has_scan &&
	       !cg__pmd_mapped(mm->pagemap_fd, addr & ~(CG_PMD_SIZE - 1),
			       CG_PMD_SIZE, &mask) &&
	       (mask & 1);
}

int cg__mm_follow_split(struct cg__mm *mm, struct cg__region *r, uint64_t addr)
{
	if (r->kind != CG_RK_THP || !cg__region_is_huge(r, addr) ||
	    cg__mm_pmd_mapped(mm, addr))
		return 0;
	mm->stats.thp_splits++;
	return cg__region_set_huge(r, addr, false, 0);
}

static bool overlaps(const struct cg__mm *mm, uint64_t addr, uint64_t len)
{
	size_t i = lower_bound(mm, addr);

	return i < mm->nregions && mm->regions[i]->start < addr + len;
}

int cg__mm_insert(struct cg__mm *mm, struct cg__region *r)
{
	size_t i = lower_bound(mm, r->start);

	if (mm->nregions == mm->cap) {
		size_t cap = mm->cap ? mm->cap * 2 : 8;
		struct cg__region **n = realloc(mm->regions, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		mm->regions = n;
		mm->cap = cap;
	}
	memmove(&mm->regions[i + 1], &mm->regions[i],
		(mm->nregions - i) * sizeof(*mm->regions));
	mm->regions[i] = r;
	mm->nregions++;
	mm->stats.regions = mm->nregions;
	mm->stats.registered_bytes += r->len;
	return 0;
}

void cg__mm_remove(struct cg__mm *mm, struct cg__region *r)
{
	size_t i = lower_bound(mm, r->start);

	memmove(&mm->regions[i], &mm->regions[i + 1],
		(mm->nregions - i - 1) * sizeof(*mm->regions));
	mm->nregions--;
	mm->stats.regions = mm->nregions;
	mm->stats.registered_bytes -= r->len;
}

static int check_range(const struct cg__mm *mm, uint64_t addr, uint64_t len)
{
	if (!len || (addr | len) & (CG_PAGE_SIZE - 1))
		return -EINVAL;
	if (addr + len < addr)
		return -EOVERFLOW;
	if (overlaps(mm, addr, len))
		return -EEXIST;
	if (mm->limits.max_regions && mm->nregions >= mm->limits.max_regions)
		return -EDQUOT;
	if (mm->limits.max_bytes &&
	    mm->stats.registered_bytes + len > mm->limits.max_bytes)
		return -EDQUOT;
	return 0;
}

int cg__mm_register(struct cg__mm *mm, uint64_t addr, uint64_t len,
		    unsigned flags)
{
	struct cg__region *r;
	int ret;

	if (flags & ~CG__REGISTER_UNSEEN)
		return -EINVAL;
	/* Pages populated before registration have a history we did not see. */
	ret = cg__mm_register_as(mm, addr, len, CG_LEARN_REGISTER);
	/* Written while nobody watched, for all we know: the next collect says so. */
	if (!ret && (flags & CG__REGISTER_UNSEEN) && (r = cg__mm_find(mm, addr)))
		ret = cg__region_update(r, addr, len, 0, CG_ST_DIRTY);
	return ret;
}

/*
 * Register through the uffd, and while it is unproven check that pid's own
 * VMA shows it (smaps "uw" appears): otherwise the uffd is another
 * process's, whose memory the registration just touched.  Undo it there
 * and refuse.  A VMA registered already proves nothing and is refused.
 */
static int register_proven(struct cg__mm *mm, uint64_t addr, uint64_t len)
{
	int ret, uw;

	if (mm->uffd_unproven) {
		uw = cg__vma_flag(mm->smaps_fd, addr, "uw");
		if (uw)
			return uw == -EMLINK ? uw : -EPERM;
	}
	ret = cg__mm_ioctl_register(mm, addr, len);
	if (ret || !mm->uffd_unproven)
		return ret;
	uw = cg__vma_flag(mm->smaps_fd, addr, "uw");
	if (uw != 1) {
		cg__mm_ioctl_unregister(mm, addr, len);
		return uw == -EMLINK ? uw : -EPERM;
	}
	mm->uffd_unproven = false;
	return 0;
}

/* Check, make, register and insert the region of [addr, addr+len). */
static int register_region(struct cg__mm *mm, uint64_t addr, uint64_t len,
			   struct cg__region **out)
{
	struct cg__vma_kind kind;
	struct cg__region *r;
	int ret;

	ret = check_range(mm, addr, len);
	if (ret)
		return ret;
	ret = cg__vma_probe(mm->smaps_fd, addr, len, &kind);
	if (ret)
		return ret;
	/*
	 * Before 5.19 hugetlb cannot be write-protected: its writes would go
	 * unseen and a pin of it could not be checked.  Refuse, never pretend.
	 */
	if (kind.kind == CG_RK_HUGETLB &&
	    !(mm->features & UFFD_FEATURE_WP_HUGETLBFS_SHMEM))
		return -EOPNOTSUPP;
	r = cg__region_new(addr, len, kind.kind, kind.unit_shift);
	if (!r)
		return -ENOMEM;
	ret = register_proven(mm, addr, len);
	if (!ret) {
		ret = cg__mm_insert(mm, r);
		if (ret)
			cg__mm_ioctl_unregister(mm, addr, len);
	}
	if (ret)
		cg__region_free(r);
	else
		*out = r;
	return ret;
}

int cg__mm_register_as(struct cg__mm *mm, uint64_t addr, uint64_t len,
		       enum cg__learn mode)
{
	struct cg__region *r;
	int ret = register_region(mm, addr, len, &r);

	if (ret)
		return ret;
	ret = cg__mm_learn(mm, r, addr, len, mode);
	if (ret) {
		cg__mm_remove(mm, r);
		cg__mm_ioctl_unregister(mm, addr, len);
		cg__region_free(r);
	}
	return ret;
}

int cg__mm_register_lazy(struct cg__mm *mm, uint64_t addr, uint64_t len)
{
	struct cg__region *r;
	int ret = register_region(mm, addr, len, &r);

	if (!ret)
		r->unlearned = addr;
	return ret;
}

int cg__mm_unregister(struct cg__mm *mm, uint64_t addr, uint64_t len)
{
	struct cg__region *r = cg__mm_find(mm, addr);
	int ret;

	if (!r || r->start != addr || r->len != len)
		return -ENOENT;
	cg__mm_snap_disturbed(mm, addr, len);
	/* Unprotect first: unregistering leaves stale uffd-wp bits behind. */
	ret = cg__mm_ioctl_wp(mm, addr, len, false);
	if (ret && ret != -ENOENT)
		return ret;
	ret = cg__mm_ioctl_unregister(mm, addr, len);
	if (ret && ret != -ENOMEM && ret != -EINVAL) {
		/* Still ours, and no longer protected at all. */
		cg__mm_wp_unsure(mm, addr, len);
		return ret;
	}
	cg__mm_remove(mm, r);
	cg__region_free(r);
	return 0;
}

void cg__mm_unregister_all(struct cg__mm *mm)
{
	while (mm->nregions) {
		struct cg__region *r = mm->regions[0];

		/* Its memory gone or the uffd unusable: forget it all the same. */
		if (cg__mm_unregister(mm, r->start, r->len)) {
			cg__mm_remove(mm, r);
			cg__region_free(r);
		}
	}
}

int cg__mm_first_unit(const struct cg__mm *mm, uint64_t *addr, uint64_t *len)
{
	const struct cg__region *r;

	if (!mm->nregions)
		return -ENOENT;
	r = mm->regions[0];
	*addr = r->start;
	/* A VMA boundary inside a huge PMD would split it. */
	*len = r->kind == CG_RK_THP ? CG_PMD_SIZE : 1ULL << r->unit_shift;
	return 0;
}

void cg__mm_reprotect(struct cg__mm *mm, uint64_t addr, uint64_t len)
{
	const struct cg__region *r = cg__mm_find(mm, addr);
	uint64_t at = addr, end = addr + len;
	struct cg__runs runs = { 0 };

	if (!r || cg__region_collect(r, addr, len, CG_ST_PRESENT | CG_ST_WP,
				     CG_ST_PRESENT | CG_ST_WP, &runs)) {
		/* Not ours to track there: nothing may stay protected. */
		cg__mm_ioctl_wp(mm, addr, len, false);
		return;
	}
	for (size_t i = 0; i < runs.n; i++) {
		if (runs.v[i].start > at)
			cg__mm_ioctl_wp(mm, at, runs.v[i].start - at, false);
		cg__mm_ioctl_wp(mm, runs.v[i].start, runs.v[i].len, true);
		at = runs.v[i].start + runs.v[i].len;
	}
	if (at < end)
		cg__mm_ioctl_wp(mm, at, end - at, false);
	cg__runs_free(&runs);
}

const char *cg__mm_kind_at(const struct cg__mm *mm, uint64_t addr)
{
	const struct cg__region *r = cg__mm_find(mm, addr);

	return r ? cg__rkind_name(r) : NULL;
}

static enum cg_page_kind page_kind(const struct cg__region *r, uint64_t addr)
{
	if (r->kind == CG_RK_HUGETLB)
		return r->unit_shift == 30 ? CG_PAGE_HUGETLB_1G : CG_PAGE_HUGETLB_2M;
	if (r->kind == CG_RK_THP)
		return cg__region_is_huge(r, addr) ? CG_PAGE_THP : CG_PAGE_THP_PTE;
	return CG_PAGE_4K;
}

int cg__mm_query(struct cg__mm *mm, uint64_t addr, struct cg_page_info *out)
{
	struct cg__region *r = cg__mm_find(mm, addr);
	uint64_t ustart, ulen;
	unsigned st;
	int ret;

	if (!r)
		return -ENOENT;
	addr &= ~(CG_PAGE_SIZE - 1);
	cg__region_unit(r, addr, &ustart, &ulen);
	ret = cg__mm_collect(mm, ustart, ulen);
	if (!ret)
		ret = cg__mm_learn(mm, r, ustart, ulen, CG_LEARN_NEW);
	if (ret)
		return ret;
	cg__region_unit(r, addr, &ustart, &ulen);
	st = cg__region_get(r, addr);
	memset(out, 0, sizeof(*out));
	out->addr = ustart;
	out->size = ulen;
	out->kind = page_kind(r, addr);
	out->present = !!(st & CG_ST_PRESENT);
	/* A removed page keeps its history for learning, not for callers. */
	out->exclusive = out->present && (st & CG_ST_EXCL);
	out->dirty = out->present && (st & CG_ST_DIRTY);
	out->wp = out->present && (st & CG_ST_WP);
	out->pins = cg__mm_pin_count(mm, addr);
	return 0;
}

void cg__mm_stats(const struct cg__mm *mm, struct cg_stats *out)
{
	*out = mm->stats;
}

static int count_run(const struct cg__run *run, void *arg)
{
	struct cg__mm_counts *c = arg;
	uint64_t pages = run->len >> CG_PAGE_SHIFT;

	if (!(run->state & CG_ST_PRESENT))
		return 0;
	c->present += pages;
	if (run->state & CG_ST_EXCL)
		c->exclusive += pages;
	else
		c->shared += pages;
	if (run->state & CG_ST_DIRTY)
		c->dirty += pages;
	if (run->state & CG_ST_WP)
		c->wp += pages;
	return 0;
}

void cg__mm_region_counts(const struct cg__region *r,
			  struct cg__mm_counts *out)
{
	memset(out, 0, sizeof(*out));
	cg__region_walk(r, r->start, r->len, count_run, out);
	out->footprint = cg__region_footprint(r);
}

void cg__mm_counts(const struct cg__mm *mm, struct cg__mm_counts *out)
{
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < mm->nregions; i++) {
		struct cg__mm_counts one;

		cg__mm_region_counts(mm->regions[i], &one);
		out->present += one.present;
		out->exclusive += one.exclusive;
		out->shared += one.shared;
		out->dirty += one.dirty;
		out->wp += one.wp;
		out->footprint += one.footprint;
	}
}

size_t cg__mm_regions_footprint(const struct cg__mm *mm)
{
	size_t bytes = mm->cap * sizeof(*mm->regions);

	for (size_t i = 0; i < mm->nregions; i++)
		bytes += cg__region_footprint(mm->regions[i]);
	return bytes;
}

size_t cg__mm_footprint(const struct cg__mm *mm)
{
	return cg__mm_regions_footprint(mm) +
	       mm->backlog_cap * sizeof(*mm->backlog) +
	       cg__mm_pins_footprint(mm) + cg__mm_snap_footprint(mm);
}
