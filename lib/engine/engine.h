/* SPDX-License-Identifier: MIT */
/*
 * One tracked address space: a userfaultfd, the regions registered through
 * it and their page state, and the kernel's view of that process.  The
 * daemon keeps one per client process; the embedded mode keeps one for its
 * own process.  Not thread-safe: its owner serialises calls.
 *
 * Ground rules the code below relies on:
 *  - Only populated pages are write-protected; a page the engine has not
 *    seen populated is learned from pagemap when it matters (query, audit,
 *    fork), because a first touch raises no event without markers.
 *  - A WP fault on a maybe-shared page is resolved by unsharing the page
 *    first, so that "exclusive" holds even if the write never comes.
 *  - Handlers never touch the client's memory by load or store.
 */
#ifndef CG_ENGINE_H
#define CG_ENGINE_H

#include <linux/userfaultfd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cowguard.h"
#include "kernel/pages.h"
#include "kernel/process.h"

struct cg__mm;
struct cg__region;
struct cg__pin;
struct cg__frames;
struct cg__pin_job;
struct cg__span;
struct cg__snap;

/* Called with a child's uffd from a fork event; takes ownership of the fd. */
typedef void (*cg__adopt_fn)(struct cg__mm *parent, struct cg__mm *child,
			     void *arg);

struct cg__limits {
	uint64_t max_bytes;	/* registered bytes; 0 = unlimited */
	uint32_t max_regions;	/* 0 = unlimited */
	uint32_t max_pins;	/* 0 = unlimited */
};

/*
 * The fields above the line are the owner's (the daemon's or the embedded
 * mode's): it sets them and may read them.  Those below are the engine's:
 * nothing outside lib/engine/ touches them (scripts/check-layers.sh), it
 * asks the functions below instead.
 */
struct cg__mm {
	int uffd;
	pid_t pid;		/* 0 while unknown (an adopted child) */
	uint64_t features;
	/*
	 * The process pid is, bound by the daemon (its pidfd owned); in
	 * embedded mode unbound.  Checked before each request and around
	 * each act by pid (lib/kernel/process.h).
	 */
	struct cg__proc proc;
	bool pfn_visible;	/* pagemap shows page frame numbers */
	/*
	 * The uffd may not be pid's own (a daemon took it from a client that
	 * could have been handed another process's): until a registration
	 * has shown up in pid's own VMAs, each is checked.
	 */
	bool uffd_unproven;
	/*
	 * Why the client can no longer be served, when it did something with
	 * the uffd it handed over that only a hostile client does (made it
	 * blocking, registered modes of its own on it).  Set by the engine;
	 * its owner drops the client.
	 */
	const char *tampered;	/* one of CG__TAMPERED_* */
	/*
	 * How long an ioctl is retried while events make it fail (EAGAIN):
	 * 0 for 2 s.  The daemon, which serves others meanwhile, sets less.
	 */
	uint64_t ioctl_patience_ns;
	struct cg__limits limits;
	cg__adopt_fn adopt;
	/*
	 * Asked before a fork event's child is copied: nonzero leaves the
	 * child untracked (its uffd closed), before any work for it.  NULL:
	 * every child is.  Takes adopt_arg.
	 */
	int (*may_adopt)(struct cg__mm *parent, void *arg);
	void *adopt_arg;

	/* ---- the engine's ---------------------------------------------- */
	int pagemap_fd;		/* -1 while unknown; owned */
	int smaps_fd;		/* the same process's smaps; owned */
	int kpageflags_fd;	/* -1 without root; not owned */
	bool has_scan;		/* PAGEMAP_SCAN works */
	/*
	 * The uffd resolves write faults itself (UFFD_FEATURE_WP_ASYNC):
	 * writes are learned by cg__mm_collect(), not from fault messages.
	 */
	bool wp_async;
	/*
	 * A write fault on a 4 KiB page unprotects with it the pages known
	 * exclusive around it, within this aligned window (bytes; 4 KiB:
	 * none): COWGUARD_WP_AROUND, lib/engine/events.c.
	 */
	uint64_t wp_around;
	uint64_t ioctl_impatient_until;	/* CLOCK_MONOTONIC ns: ioctl.c */
	/*
	 * While cg__mm_learn_pending() runs: when to stop at the next 2 MiB
	 * chunk (CLOCK_MONOTONIC ns), and where learning stopped.
	 */
	uint64_t learn_until, learn_stopped;

	struct cg__region **regions;	/* sorted by start, disjoint */
	size_t nregions, cap;
	struct cg__pin **pins;		/* pins.c */
	size_t npins, pins_cap;
	struct cg__frames *frames;	/* frames.h: each pinned unit's, once */
	struct cg__pin_job *pin_job;	/* pins.c: a pin or unpin in steps */
	struct cg__span *pin_spans;	/* pins.c: room for npins, */
	size_t npin_spans;		/* of which these are the pins' union */
	bool pin_spans_stale;		/* since the last pin or unpin */
	uint64_t next_pin_id;
	/*
	 * The span the last pin asked the client to write-unshare (counted
	 * then), and the one the pin in progress was asked (not again).
	 */
	uint64_t wu_asked[2], wu_counted[2];
	/* The range of the pin that asked wu_asked: its own walk again only. */
	uint64_t wu_pin[2];
	/*
	 * Lifts by pins so far: each message read is stamped with it, to
	 * tell a stale fault on a held page (ioctl.c, lift_stamp()).
	 */
	uint32_t lifts;
	/*
	 * A THP unshare by move (lib/engine/move.c): the chunks [start, end)
	 * a pin is arming (end 0: none), handed over to the client
	 * (unregistered here) until it says the copy is in.
	 */
	struct {
		uint64_t start, end;
		bool handed;
	} move;
	void *fill_scratch;	/* fill.c: 2 MiB, kept warm */
	struct cg__snap *snap;	/* snapshot.c: the one in progress, or NULL */
	/*
	 * CG_ST_DIRTY holds what was written since the last snapshot, which
	 * succeeded: an incremental one may follow (no collect since).
	 */
	bool snap_parent;
	struct cg_stats stats;

	/* Messages read while retrying an ioctl, handled before new ones. */
	struct uffd_msg *backlog;
	size_t nbacklog, backlog_cap;

	uint8_t scratch[CG_PAGE_SIZE];	/* unshare reads land here */
};

#define CG__TAMPERED_BLOCKING "made its uffd blocking"
#define CG__TAMPERED_MODES                                                   \
	"registered modes of its own over memory it has cowguard track"

/*
 * The uffd features to ask for: CG_UFFD_WANTED, and UFFD_FEATURE_WP_ASYNC
 * where asked for and the engine can run on it: COWGUARD_WP is "async",
 * the kernel unshares for a read-only pin (5.19: so a write to a protected
 * shared page gets a copy of its own), and PAGEMAP_SCAN is not turned off.
 * The negotiation keeps it only where the kernel has it (6.7).  Not the
 * default: the kernel splits a protected PMD-mapped THP at its first write
 * in that mode (measured on 6.18), where the fault path keeps it whole.
 * On the fault path, UFFD_FEATURE_MOVE too: a pin then unshares a THP by
 * moving a copy in whole (lib/engine/move.c); COWGUARD_THP_MOVE=off does
 * not ask for it.
 */
uint64_t cg__mm_uffd_wanted(void);

/* Takes ownership of uffd and pagemap_fd (either may be -1). */
int cg__mm_init(struct cg__mm *mm, int uffd, uint64_t features, pid_t pid,
		int pagemap_fd, int kpageflags_fd);
void cg__mm_destroy(struct cg__mm *mm);
/*
 * Learn the process of an mm: takes ownership of pagemap_fd and smaps_fd;
 * smaps_fd -1 opens pid's.
 */
void cg__mm_set_process(struct cg__mm *mm, pid_t pid, int pagemap_fd,
			int smaps_fd);

int cg__mm_register(struct cg__mm *mm, uint64_t addr, uint64_t len,
		    unsigned flags);
/*
 * Register without looking at the pages yet: cg__mm_learn_pending() does,
 * a slice at a time, and until it has, whatever looks at a page there
 * learns it as registration would (unshared, protected).  Until the last
 * slice, populated pages there may be unprotected: the caller answers the
 * registration only then.  For a daemon that must not stall its other
 * clients on one huge registration.  Returns as cg__mm_register().
 */
int cg__mm_register_lazy(struct cg__mm *mm, uint64_t addr, uint64_t len);
/*
 * Learn up to span bytes of what lazy registrations and forks left, or
 * less: it stops at the first 2 MiB boundary past until_ns
 * (CLOCK_MONOTONIC; 0: never), since populated pages cost far more than
 * absent ones.  Returns 1 when more is left, 0 when none, or -errno.
 */
int cg__mm_learn_pending(struct cg__mm *mm, uint64_t span, uint64_t until_ns);
bool cg__mm_learn_left(const struct cg__mm *mm);
int cg__mm_unregister(struct cg__mm *mm, uint64_t addr, uint64_t len);
int cg__mm_query(struct cg__mm *mm, uint64_t addr, struct cg_page_info *out);
int cg__mm_audit(struct cg__mm *mm, uint64_t addr, uint64_t len,
		 struct cg_audit_report *out);
/*
 * The same in parts, for a daemon that must not stall its other clients
 * on an audit of a huge region: begin checks the range and clears out
 * (0 or -errno); each part audits from *pos towards end, stopping at the
 * first 2 MiB boundary past until_ns (0: never), and returns 1 when more
 * is left (*pos: where), 0 when done, or -errno.
 */
int cg__mm_audit_begin(const struct cg__mm *mm, uint64_t addr, uint64_t len,
		       struct cg_audit_report *out);
int cg__mm_audit_part(struct cg__mm *mm, uint64_t *pos, uint64_t end,
		      struct cg_audit_report *out, uint64_t until_ns);
void cg__mm_stats(const struct cg__mm *mm, struct cg_stats *out);

/*
 * Read and handle pending messages, a few batches at most: those read
 * while retrying an ioctl (the backlog) first, then the uffd's.  Returns
 * the number handled, 0 when none was pending, or -errno (the uffd is
 * unusable).
 */
int cg__mm_service(struct cg__mm *mm);
/*
 * Whether messages wait in the backlog.  They no longer make the uffd
 * readable, and a fault among them has a thread waiting: the owner calls
 * cg__mm_service() again soon, without waiting for the uffd.
 */
bool cg__mm_pending(const struct cg__mm *mm);

/*
 * Handle some of the messages an operation read into the backlog while
 * retrying an ioctl.  Every caller of a cg__mm_* operation calls this
 * after it, then looks at cg__mm_pending().
 */
void cg__mm_service_backlog(struct cg__mm *mm);

/*
 * Where the kernel resolves write faults itself (mm->wp_async; else these
 * do nothing): learn which pages of [addr, addr+len) were written since
 * they were last protected, in one PAGEMAP_SCAN per 64 runs.  A written page is present, exclusive and dirty: the write
 * either reused it or gave it a copy of its own.  Every operation that
 * reads the state calls it first (lib/engine/written.c).  Returns 0 or
 * -errno.
 */
int cg__mm_collect(struct cg__mm *mm, uint64_t addr, uint64_t len);

/*
 * Write tracking (lib/engine/track.c): the dirty units of [addr, addr+len),
 * at most max runs of them into out (*n), each protected and made clean
 * before it is reported; *next: where the next call goes on (addr + len:
 * all reported).  0 or -errno.
 */
struct cg__track_range;
int cg__mm_track_collect(struct cg__mm *mm, uint64_t addr, uint64_t len,
			 struct cg__track_range *out, size_t max, size_t *n,
			 uint64_t *next);
int cg__mm_collect_all(struct cg__mm *mm);

/*
 * Live snapshot (lib/engine/snapshot.c): begin freezes every region at
 * one instant (-EBUSY: one runs, or a pin; -EOPNOTSUPP: asynchronous
 * protection); CG__SNAP_INCREMENTAL saves only what was written since the
 * last snapshot (-ENOENT: none succeeded since the engine began, or a
 * collect took what was written).  Each step takes the span the client
 * saved since the last (whole granules of one area; len 0: none) and
 * answers the next window to save into w (area_len 0: all saved), or
 * -ESTALE once memory not saved was dropped, unmapped or moved.  End lets
 * every write go on; the client says whether its image was written
 * (CG__SNAP_FAILED: the next cannot be incremental).
 */
struct cg__snap_window;
int cg__mm_snap_begin(struct cg__mm *mm, unsigned flags);
int cg__mm_snap_step(struct cg__mm *mm, uint64_t start, uint64_t len,
		     struct cg__snap_window *w);
int cg__mm_snap_end(struct cg__mm *mm, unsigned flags);

/* Before fork(): protect every page so that writes racing the fork are seen. */
int cg__mm_fork_prepare(struct cg__mm *mm);
/* After fork() in the parent, when no fork event will say so (embedded). */
int cg__mm_fork_parent(struct cg__mm *mm);

/*
 * The memory mm's state takes, for quotas: its regions' (what a fork's
 * child copies), or all of it (regions, pins and their frames, queued
 * events).
 */
size_t cg__mm_regions_footprint(const struct cg__mm *mm);
size_t cg__mm_footprint(const struct cg__mm *mm);
/* What a new region of len bytes takes at most, before its pages diverge. */
uint64_t cg__region_cost(uint64_t len);

/*
 * Serve one request (REGISTER .. UNPIN) against mm: rep is filled, its
 * status returned.  lib/engine/dispatch.c; the daemon and the embedded mode both
 * call it.
 */
struct cg__req;
struct cg__rep;
int cg__mm_dispatch(struct cg__mm *mm, const struct cg__req *req,
		    struct cg__rep *rep);
/*
 * PIN and UNPIN in steps, for a daemon that serves others meanwhile
 * (lib/engine/pins.h): 1 while the request goes on, cg__mm_dispatch_step() to be
 * called again, up to until_ns (CLOCK_MONOTONIC) a call; 0 when rep holds
 * the answer.  Every other request is answered at once, as by
 * cg__mm_dispatch().
 */
int cg__mm_dispatch_start(struct cg__mm *mm, const struct cg__req *req,
			  struct cg__rep *rep);
int cg__mm_dispatch_step(struct cg__mm *mm, const struct cg__req *req,
			 struct cg__rep *rep, uint64_t until_ns);
/*
 * The records STATUS, AUDIT_PID and PINS stream (lib/wire/protocol.h), as far
 * as the engine knows them: a client's (its owner adds the parent and the
 * uid), a region's (without its audit), and pin i's (-ENOENT past the
 * last).
 */
struct cg__status_client;
struct cg__status_region;
struct cg__status_pin;
void cg__mm_status_client(const struct cg__mm *mm,
			  struct cg__status_client *out);
int cg__mm_status_region(const struct cg__mm *mm, size_t i,
			 struct cg__status_region *out);
int cg__mm_status_pin(const struct cg__mm *mm, size_t i,
		      struct cg__status_pin *out);
/* Region i's record, i = 0 first (-ENOENT past the last), or addr's. */
int cg__mm_status_region_at(const struct cg__mm *mm, uint64_t addr,
			    struct cg__status_region *out);
/* "4 KiB", "THP", "hugetlb 2 MiB" or "hugetlb 1 GiB": addr's region, or NULL. */
const char *cg__mm_kind_at(const struct cg__mm *mm, uint64_t addr);

/* Unregister every region, lifting its write protection: before a close. */
void cg__mm_unregister_all(struct cg__mm *mm);

/*
 * Proving whose a uffd is (daemon/adopt.c): the first unit of mm's first
 * region, a whole 2 MiB in THP memory and a whole huge page in hugetlb
 * (-ENOENT without a region); and, once the caller has unregistered and
 * registered it again through mm's uffd, which clears the uffd-wp bits,
 * its write protection put back as the engine has it (none where the
 * engine does not track it).
 */
int cg__mm_first_unit(const struct cg__mm *mm, uint64_t *addr, uint64_t *len);
void cg__mm_reprotect(struct cg__mm *mm, uint64_t addr, uint64_t len);

/*
 * Embedded mode after fork(), in the child, where the kernel unregistered
 * the child's memory and no fork event came (lib/engine/inherit.c).
 * cg__mm_bequest() takes from the parent's engine, as the child inherited
 * it, what the child can track again; cg__mm_inherit() registers that in
 * the child's new engine: every page maybe-shared, but what the kernel
 * shows the child's alone under a FOLL_PIN pin.  NULL: no memory.
 */
struct cg__bequest;
struct cg__bequest *cg__mm_bequest(const struct cg__mm *parent);
int cg__mm_inherit(struct cg__mm *child, const struct cg__bequest *b);
void cg__bequest_free(struct cg__bequest *b);

/*
 * From now on this process touches other processes' pages from a reader
 * process of its own, which it kills when a client makes a touch wait on a
 * fault nobody will answer (lib/engine/touch.c).  The daemon calls it
 * once; the embedded mode, which only touches its own pages, never does.
 */
void cg__touch_isolate(void);

#endif
