// SPDX-License-Identifier: MIT
/*
 * Unsharing a PMD-mapped THP whole, by moving a copy in: the engine's half.
 *
 * The kernel's unshare of a THP still shared after a fork (a read-only
 * FOLL_PIN, a write fault) splits its PMD and copies 4 KiB pages: a
 * consumer that wanted one TLB entry for 2 MiB gets 512, and the copy costs
 * more than a memcpy (KERNEL-FACTS, "Copy-on-write facts").  With
 * UFFD_FEATURE_MOVE (6.8) the client's own process can copy a chunk into a
 * fresh THP and move it into place instead (lib/move_unshare.c).
 *
 * Only the process itself can: UFFDIO_MOVE refuses to act on another mm
 * (fs/userfaultfd.c, "cross-mm"), and only the process can drop its
 * pages.  The client therefore needs a uffd of its own on the chunks for
 * that moment, and a range is registered with one uffd at a time: a pin
 * arms a run of such chunks (16 at most: the client copies them all before
 * it drops them) and hands it over, unregistered here (-EAGAIN, move_len).
 * From then on the engine sees no write there, so the chunks are dirty
 * and claimed neither exclusive nor protected, and it neither resolves a
 * fault there (an unprotect would aim at the protection the client's own
 * uffd puts there while it copies) nor reads there (the client's uffd may
 * make the read wait).  When the client is done (CG_OP_MOVE), or the run
 * is given up, the chunks are registered and protected again and judged
 * by the kernel, not by the client's word: exclusive only where page
 * flags show PageAnonExclusive.  Without them
 * (not root) they stay maybe-shared, and the pin's next walk unshares them
 * by a read-only pin, which the kernel answers by reusing a THP we map
 * alone in place, still one PMD.
 *
 * Only the fault path does this: with asynchronous protection the kernel
 * splits a protected THP at its first write anyway.
 */
#include <errno.h>

#include "internal.h"
#include "kernel/compat.h"
#include "kernel/kernel.h"
#include "kernel/procfs.h"
#include "kernel/uffd.h"

#define CHUNK_PAGES (CG_PMD_SIZE >> CG_PAGE_SHIFT)

bool cg__mm_move_usable(const struct cg__mm *mm)
{
	/* A move passes content through a hole: not while a snapshot runs. */
	return (mm->features & UFFD_FEATURE_MOVE) && !mm->wp_async && !mm->snap &&
	       cg__kernel_read_pin_unshares() && mm->pagemap_fd >= 0;
}

bool cg__mm_move_holds(const struct cg__mm *mm, uint64_t addr)
{
	return mm->move.handed && addr >= mm->move.start && addr < mm->move.end;
}

uint64_t cg__mm_move_armed(const struct cg__mm *mm)
{
	return mm->move.end - mm->move.start;
}

static void forget(struct cg__mm *mm)
{
	mm->move.start = mm->move.end = 0;
	mm->move.handed = false;
}

int cg__mm_move_arm(struct cg__mm *mm, uint64_t chunk)
{
	if (mm->move.handed || (mm->move.end && mm->move.end != chunk))
		return -EBUSY;
	if (!mm->move.end)
		mm->move.start = chunk;
	mm->move.end = chunk + CG_PMD_SIZE;
	return 0;
}

/* The run's state claims nothing: neither ours nor protected, dirty. */
static void claim_nothing(struct cg__mm *mm, uint64_t start, uint64_t len)
{
	for (uint64_t c = start; c < start + len; c += CG_PMD_SIZE) {
		struct cg__region *r = cg__mm_find(mm, c);

		if (r)
			cg__region_update(r, c, CG_PMD_SIZE, CG_ST_EXCL | CG_ST_WP,
					  CG_ST_DIRTY);
	}
}

int cg__mm_move_hand_over(struct cg__mm *mm)
{
	uint64_t start = mm->move.start, len = cg__mm_move_armed(mm);
	int ret = cg__mm_ioctl_unregister(mm, start, len);
	int wret;

	/*
	 * Unregistering wakes missing faults (fs/userfaultfd.c; not all
	 * kernels wake write-protect ones): a write waiting on its protection
	 * here would wait for good, its message ignored from now
	 * (lib/engine/events.c).  Woken, it finds the chunks unprotected.
	 */
	wret = cg__uffd_wake(mm->uffd, start, len);
	/* Unseen from now on, or unregistered in part: written, for all we know. */
	claim_nothing(mm, start, len);
	if (ret || wret) {
		/* Unregistered in part, perhaps: ours again, unprotected. */
		if (ret)
			cg__mm_ioctl_register(mm, start, len);
		forget(mm);
		return ret ? ret : wret;
	}
	mm->move.handed = true;
	return 0;
}

/* What the kernel maps in the chunk, by pagemap and page flags. */
struct view {
	bool present;		/* every page */
	bool mapped_once;	/* every page: a copy of ours, it seems */
	bool exclusive;		/* every page PageAnonExclusive */
};

/* Page flags are a folio's: one read vouches for a chunk one PMD maps. */
static struct view kernel_view(const struct cg__mm *mm, uint64_t chunk,
			       bool huge)
{
	struct view v = { false, false, false };
	uint64_t pme[CHUNK_PAGES];

	if (cg__pagemap_read(mm->pagemap_fd, chunk, CHUNK_PAGES, pme))
		return v;
	v = (struct view){ true, true, true };
	for (size_t i = 0; i < CHUNK_PAGES; i++) {
		v.present = v.present && (pme[i] & PM_PRESENT);
		v.mapped_once = v.mapped_once && (pme[i] & PM_MMAP_EXCLUSIVE);
		v.exclusive = v.exclusive && (huge && i ? true :
					      cg__kernel_exclusive(mm, pme[i]));
	}
	v.mapped_once = v.mapped_once && v.present;
	v.exclusive = v.exclusive && v.mapped_once;
	return v;
}

/*
 * The chunk is registered and protected again: what is it now?  Where
 * something is missing (the client failed half-way), nothing is claimed
 * and learning looks again.
 */
static int judge(struct cg__mm *mm, uint64_t chunk)
{
	struct cg__region *r = cg__mm_find(mm, chunk);
	bool huge = cg__mm_pmd_mapped(mm, chunk);
	unsigned st = CG_ST_PRESENT | CG_ST_WP | CG_ST_DIRTY;
	struct view v;

	if (!r)
		return 0;
	v = kernel_view(mm, chunk, huge);
	/*
	 * Counted by what pagemap shows; claimed only as page flags do.
	 * Without them the pin's next walk has the kernel vouch (a reuse it
	 * does not count again: pins.c, wu_counted).
	 */
	if (v.mapped_once) {
		mm->stats.unshare_copies += CHUNK_PAGES;
		mm->stats.pages_made_exclusive += CHUNK_PAGES;
		mm->stats.unshare_moves += huge ? CHUNK_PAGES : 0;
	}
	/* Page flags of a THP mapped by PTEs are its head's: not trusted. */
	if (v.exclusive && huge)
		st |= CG_ST_EXCL;
	if (!v.present)
		st = CG_ST_DIRTY;
	if (huge)
		return cg__region_set_huge(r, chunk, true, st);
	/* The copy got 4 KiB pages (no THP to be had): moved as such. */
	if (cg__region_is_huge(r, chunk))
		cg__region_set_huge(r, chunk, false, 0);
	return cg__region_update(r, chunk, CG_PMD_SIZE, CG_ST_ALL, st);
}

int cg__mm_move_settle(struct cg__mm *mm)
{
	uint64_t start = mm->move.start, len = cg__mm_move_armed(mm);
	int ret;

	if (!mm->move.handed) {
		forget(mm);
		return 0;
	}
	ret = cg__mm_ioctl_register(mm, start, len);
	/*
	 * EBUSY: the client's own uffd still holds the run, asked again at
	 * its next pin.  Anything else: the run was unmapped or remapped
	 * meanwhile (no event reaches us there), nothing left to take back.
	 */
	if (ret && ret != -EBUSY && ret != -ETIME)
		forget(mm);
	if (ret)
		return ret;
	forget(mm);
	ret = cg__mm_ioctl_wp(mm, start, len, true);
	for (uint64_t c = start; !ret && c < start + len; c += CG_PMD_SIZE)
		ret = judge(mm, c);
	return ret;
}

int cg__mm_move_done(struct cg__mm *mm, uint64_t start, uint64_t len)
{
	if (!len || !mm->move.handed || start != mm->move.start ||
	    len != cg__mm_move_armed(mm))
		return -EINVAL;
	return cg__mm_move_settle(mm);
}

