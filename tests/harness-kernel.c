// SPDX-License-Identifier: MIT
/* The kernel's truth about our pages: pagemap, kpageflags, smaps, and the engine held to it. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "kernel/kernel.h"
#include "kernel/procfs.h"
#include "kernel/uffd.h"

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

/*
 * For each 4 KiB page i < pages from addr, bit i of *mapped: a VMA holds
 * it; of *has: that VMA has flag.  One read of smaps: each costs a walk of
 * every page table of the process (in a guest, a good part of a second).
 */
static void vma_flag_masks(const void *addr, size_t pages, const char *flag,
			   uint64_t *mapped, uint64_t *has)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	uintptr_t start = (uintptr_t)addr;
	uint64_t in = 0;
	char line[512], want[8];

	ck_assert(f != NULL);
	ck_assert(pages <= 64);
	*mapped = *has = 0;
	snprintf(want, sizeof(want), " %s", flag);
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;

		if (strncmp(line, "VmFlags:", 8) == 0 && in) {
			char *hit = strstr(line + 8, want);

			if (hit && (hit[strlen(want)] == ' ' || hit[strlen(want)] == '\n'))
				*has |= in;
			in = 0;
		} else if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 &&
			   strchr(line, '-') < strchr(line, ' ')) {
			for (size_t i = 0; i < pages; i++)
				if (start + i * 4 * KIB >= lo && start + i * 4 * KIB < hi)
					in |= 1ULL << i;
			*mapped |= in;
		}
	}
	fclose(f);
}

int h_vma_flag(const void *addr, const char *flag)
{
	uint64_t mapped, has;

	vma_flag_masks(addr, 1, flag, &mapped, &has);
	return mapped ? (int)has : -1;
}

uint64_t h_vma_flag_pages(const void *addr, size_t pages, const char *flag)
{
	uint64_t mapped, has;

	vma_flag_masks(addr, pages, flag, &mapped, &has);
	return has;
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

/*
 * On asynchronous protection a page written since the last protection is
 * protected again whenever the engine scans with protection (a fork's
 * prepare and handling, a move): a page written after a fork was seen
 * unprotected, then protected before the next step, about once in ten
 * runs of test-mremap-moves-page-state.c in the async lane (the scan that
 * did it not pinned down).  Benign where the kernel agrees: its next write
 * is seen, and it stays written.
 */
static bool reprotected(struct cg *cg, const struct cg_page_info *was,
			const struct cg_page_info *now, const struct h_kpage *k)
{
	return h_wp_async(cg) && !was->wp && now->wp && was->dirty &&
	       (k->uffd_wp || !h_pagemap_shows_uffd_wp());
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
			      q.dirty == b->dirty &&
			      (q.wp == b->wp || reprotected(cg, b, &q, &k)),
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
