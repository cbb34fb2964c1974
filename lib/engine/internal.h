/* SPDX-License-Identifier: MIT */
/* What the files implementing struct cg__mm share with each other. */
#ifndef CG_ENGINE_INTERNAL_H
#define CG_ENGINE_INTERNAL_H

#include "engine.h"
#include "pagestate.h"

/* The region covering addr, or NULL. */
struct cg__region *cg__mm_find(const struct cg__mm *mm, uint64_t addr);

/* Page counts by state, over all regions or one. */
struct cg__mm_counts {
	uint64_t present, exclusive, shared, dirty, wp;
	uint64_t footprint;	/* bytes of engine state */
};
void cg__mm_counts(const struct cg__mm *mm, struct cg__mm_counts *out);
void cg__mm_region_counts(const struct cg__region *r,
			  struct cg__mm_counts *out);

int cg__mm_insert(struct cg__mm *mm, struct cg__region *r);

/* Whether regions cover all of [addr, addr+len). */
bool cg__mm_covered(const struct cg__mm *mm, uint64_t addr, uint64_t len);

/*
 * Whether the 2 MiB chunk around addr is mapped by one PMD, per
 * PAGEMAP_SCAN: false without it (a PMD mapping cannot be confirmed).
 */
bool cg__mm_pmd_mapped(const struct cg__mm *mm, uint64_t addr);

/*
 * A THP chunk of r the engine holds PMD-mapped but the kernel no longer
 * maps by one PMD (or cannot confirm it does) is followed down to 4 KiB
 * pages and counted in thp_splits.  Returns 0 or -errno.
 */
int cg__mm_follow_split(struct cg__mm *mm, struct cg__region *r, uint64_t addr);
void cg__mm_remove(struct cg__mm *mm, struct cg__region *r);

/*
 * The uffd ioctls, retried while an unread event makes them fail with
 * EAGAIN: pending messages are read into the backlog and handled later.
 */
int cg__mm_ioctl_register(struct cg__mm *mm, uint64_t start, uint64_t len);
int cg__mm_ioctl_unregister(struct cg__mm *mm, uint64_t start, uint64_t len);
int cg__mm_ioctl_wp(struct cg__mm *mm, uint64_t start, uint64_t len,
		    bool protect);
/*
 * Before 5.19 cg__mm_ioctl_wp() leaves out the pages pins hold and the
 * write a pin asked for (ioctl.c).  A pin lifting the pages it is about
 * to ask the client to write leaves out only the pinned ones.  Messages
 * are stamped when read (cg__mm_lift_stamp(): msg.reserved3, which the
 * kernel leaves 0); a held page whose fault was read after the last lift
 * is lifted whatever holds it, its pins marked violated and the write
 * asked for asked again: its writer cannot go on otherwise (a 5.10
 * stress cell once spun faulting there).
 */
int cg__mm_ioctl_lift(struct cg__mm *mm, uint64_t start, uint64_t len);
void cg__mm_lift_stamp(const struct cg__mm *mm, struct uffd_msg *msgs, size_t n);
int cg__mm_ioctl_unprotect_faulted(struct cg__mm *mm, uint64_t start,
				   uint64_t len, uint32_t stamp);
/*
 * With asynchronous protection: the kernel's protection of the regions
 * overlapping [start, start+len) may no longer be what their state says
 * (a failure part-way): their written pages are judged by the kernel
 * (struct cg__region, wp_unsure).
 */
void cg__mm_wp_unsure(struct cg__mm *mm, uint64_t start, uint64_t len);

/* What a learning pass may assume about the pages it reads. */
enum cg__learn {
	CG_LEARN_NEW,		/* only pages the engine has not seen populated */
	CG_LEARN_REGISTER,	/* every page, history unknown: unshare them */
	CG_LEARN_INHERITED,	/* every page, all shared with our parent */
	/*
	 * Pages a lazy registration has not looked at yet (past
	 * r->unlearned): those not seen present since, unshared as at
	 * registration.  cg__mm_learn() picks it there by itself.
	 */
	CG_LEARN_UNKNOWN,
	/*
	 * Pages not seen present before a fork that left them unlearned
	 * (past r->unlearned, r->unlearned_forked): learned as
	 * CG_LEARN_NEW would, but shared, never exclusive.  cg__mm_learn()
	 * picks it there by itself.
	 */
	CG_LEARN_FORKED,
};

/*
 * Learn from pagemap the pages of [start, start+len) in r, as mode says.
 * Learned pages that may be shared are write-protected so that their next
 * write is seen; at registration every populated page is.
 */
int cg__mm_learn(struct cg__mm *mm, struct cg__region *r, uint64_t start,
		 uint64_t len, enum cg__learn mode);

/*
 * Whether the kernel says the page of this pagemap entry is
 * PageAnonExclusive: false when that cannot be read (no root, no PFN).
 */
bool cg__kernel_exclusive(const struct cg__mm *mm, uint64_t pme);

/* Register a range with the given learning mode (see cg__mm_register). */
int cg__mm_register_as(struct cg__mm *mm, uint64_t addr, uint64_t len,
		       enum cg__learn mode);

/* Write-protect the present, unprotected pages of r. */
int cg__mm_protect_present(struct cg__mm *mm, struct cg__region *r);
/*
 * Write-protect every page of r the kernel maps, seen present or not (but
 * pinned ones before 5.19, as above): after a fork.
 */
int cg__mm_protect_mapped(struct cg__mm *mm, struct cg__region *r);
/*
 * With asynchronous protection (lib/engine/written.c), after a fork:
 * protect every page of r the kernel maps and judge by the kernel, in the
 * same scan, the pages written since the last collect.  After a move of
 * [start, start+len): judge what was written there the same way, and
 * protect again what may be shared or is held protected.  Return 0 or
 * -errno.
 */
int cg__mm_protect_forked(struct cg__mm *mm, struct cg__region *r);
/* Asynchronous, at a fork: the pages written since the last look, dirty. */
int cg__mm_mark_written_dirty(struct cg__mm *mm);
/*
 * Before a fork, the same without the kernel's judgement: a page written
 * since the last look, no fork between, is ours.
 */
int cg__mm_protect_collected(struct cg__mm *mm, struct cg__region *r);
int cg__mm_judge_moved(struct cg__mm *mm, struct cg__region *r,
		       uint64_t start, uint64_t len);

/*
 * THP unshare by move (lib/engine/move.c).  usable: the fault path runs
 * and the kernel can move.  arm: add the 2 MiB chunk at chunk to the run
 * (it must follow it).  armed: the run's length.  hand_over: unregister
 * the run for the client.  holds: addr is in a run handed over.  settle:
 * take the run back, judged by the kernel (a run not handed over yet is
 * dropped: an event the pin's walk restarts for).  done: the client says
 * [start, start+len) is done with: settle, if that is the run.
 */
bool cg__mm_move_usable(const struct cg__mm *mm);
int cg__mm_move_arm(struct cg__mm *mm, uint64_t chunk);
int cg__mm_move_hand_over(struct cg__mm *mm);
uint64_t cg__mm_move_armed(const struct cg__mm *mm);
bool cg__mm_move_holds(const struct cg__mm *mm, uint64_t addr);
int cg__mm_move_settle(struct cg__mm *mm);
int cg__mm_move_done(struct cg__mm *mm, uint64_t start, uint64_t len);

/*
 * Whether a pin holds part of [start, start+len) whose writes the page
 * tables do not see (lib/engine/track.c): a read-write pin, and before
 * 5.19 every pin (its pages stay unprotected).  Such units stay dirty.
 */
bool cg__mm_written_behind(struct cg__mm *mm, uint64_t start, uint64_t len);

/* Write tracking, asynchronous protection: lib/engine/written.c. */
int cg__mm_collect_protecting(struct cg__mm *mm, struct cg__region *r,
			      uint64_t start, uint64_t end);

/*
 * [*start, *end) within r, widened to whole units: a THP's chunk (the
 * kernel splits a PMD protected or scanned in part), a hugetlb page.
 */
void cg__mm_whole_units(const struct cg__region *r, uint64_t *start,
			uint64_t *end);

/*
 * 4 KiB unshare by copy and fill (lib/engine/fill.c).  usable: the engine
 * runs in the process that owns the memory, on the fault path.  fill:
 * copy [start, start+len) (one region, at most 2 MiB, every page mapped
 * shared and protected) out, drop it and fill it back, ours alone;
 * claimed dirty and protected, and not exclusive: the caller judges.
 * free: let go of the scratch memory.
 */
bool cg__mm_fill_usable(const struct cg__mm *mm);
int cg__mm_fill(struct cg__mm *mm, uint64_t start, uint64_t len);
void cg__mm_fill_free(struct cg__mm *mm);

/*
 * Live snapshot (lib/engine/snapshot.c).  unsaved: a unit of [start,
 * start+len) is not saved yet.  parks: a write fault at addr in r must
 * wait until its unit is saved (counted, and queued as urgent).  disturbed: [start, start+len) was dropped, unmapped or
 * moved, which tears the snapshot if a unit there was not saved.  free:
 * with the mm.  footprint: its bytes (a bit per page), for quotas.
 */
bool cg__mm_snap_unsaved(const struct cg__mm *mm, uint64_t start,
			 uint64_t len);
bool cg__mm_snap_parks(struct cg__mm *mm, const struct cg__region *r,
		       uint64_t addr);
void cg__mm_snap_disturbed(struct cg__mm *mm, uint64_t start, uint64_t len);
void cg__mm_snap_free(struct cg__mm *mm);
size_t cg__mm_snap_footprint(const struct cg__mm *mm);

/* A fork shared r: what was not seen present is learned later, as shared. */
void cg__mm_unlearn_forked(struct cg__region *r);

/* Learn every region, then write-protect all present pages. */
int cg__mm_learn_and_protect_all(struct cg__mm *mm);

/*
 * Unshare: make the pages at the n addresses exclusive to the process, the
 * way the kernel does for a read-only pin: read one byte range of each with
 * process_vm_readv, which takes FOLL_PIN and so unshares (kernel 5.19+)
 * without raising a write fault.  Returns 0 or -errno.
 */
int cg__unshare(struct cg__mm *mm, const uint64_t *addrs, size_t n);

#endif
