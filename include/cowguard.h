/* SPDX-License-Identifier: MIT */
/*
 * cowguard: user-space page-state tracking for copy-on-write safety.
 *
 * Every function returns 0 (or a count) on success and a negative errno on
 * failure, like liburing.  Handles are opaque.  A failed call changes nothing.
 * A NULL handle or a NULL output pointer gives -EINVAL.
 */
#ifndef COWGUARD_H
#define COWGUARD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define CG_EXPORT __attribute__((visibility("default")))
#else
#define CG_EXPORT
#endif

/*
 * The version of this header.  The Makefile takes VERSION from these three
 * lines (one place to bump); releases are tagged vMAJOR.MINOR.PATCH.
 * cg_version() says which library a program actually runs with.
 */
#define CG_VERSION_MAJOR 0
#define CG_VERSION_MINOR 1
#define CG_VERSION_PATCH 0

/*
 * Structures that grow.  struct cg_options, cg_page_info, cg_audit_report,
 * cg_stats, cg_snapshot_info and cg_restore_info are the caller's memory, and later versions append fields to
 * them (a field is never moved, resized or removed).  So every function
 * that takes one takes its size too: pass sizeof of the structure the
 * program was compiled with, e.g. cg_stats(cg, &st, sizeof(st)).  That
 * way a program built against an older header keeps working with a newer
 * library, and one built against a newer header works with an older
 * library (the kernel's convention for clone3() and openat2()):
 *  - results (cg_query, cg_audit, cg_stats): the library writes
 *    min(@size, its own sizeof) bytes and, when @size is larger (a newer
 *    header), zeroes the rest; never a byte beyond @size.  A field added
 *    later reads 0 from a library that predates it, so 0 means "unknown"
 *    for every field added after 0.1.
 *  - options (cg_open): the library reads min(@size, its own sizeof) bytes;
 *    fields the caller's structure lacks take their default, which is
 *    always 0.  Bytes beyond the library's own structure must be zero:
 *    an option this library does not know gives -E2BIG rather than being
 *    ignored.
 * @size below the structure's size in 0.1 (CG_*_SIZE_VER0) is -EINVAL: it
 * is a bug (sizeof of a pointer, say), not an older program.
 */

struct cg;

enum cg_mode {
	CG_MODE_AUTO = 0,	/* daemon if its socket answers, else embedded */
	CG_MODE_DAEMON,		/* cowguardd only; fail if it does not answer */
	CG_MODE_EMBEDDED,	/* the engine on a handler thread in this process */
};

struct cg_options {
	enum cg_mode mode;
	/* NULL: $COWGUARD_SOCKET, else CG_DEFAULT_SOCKET. */
	const char *socket_path;
};
/* The size of struct cg_options in 0.1: the smallest cg_open() takes. */
#define CG_OPTIONS_SIZE_VER0 (offsetof(struct cg_options, socket_path) + sizeof(char *))

#define CG_DEFAULT_SOCKET "/run/cowguard/cowguardd.sock"

/*
 * cg_open - start tracking this process's memory.
 * @opts may be NULL (CG_MODE_AUTO, default socket; @opts_size is then
 * ignored); otherwise @opts_size is sizeof(*@opts) (see "Structures that
 * grow").  On success *out is a handle for cg_close().  Returns 0, -EINVAL
 * (NULL @out, mode out of range, @opts_size below CG_OPTIONS_SIZE_VER0),
 * -E2BIG (an option this library does not know is set), -ECONNREFUSED
 * when CG_MODE_DAEMON finds no daemon listening (or no socket file),
 * -ENAMETOOLONG (socket path too long), -EACCES (the process
 * serving the socket is neither root, nor the caller's user, nor the user
 * $COWGUARD_DAEMON_USER names, by name or uid: nothing was sent to it),
 * -EPERM when no full userfaultfd can be had (neither the syscall nor
 * /dev/userfaultfd: join the group "cowguard"; in both modes, since the
 * client creates the uffd), -ENOSYS when the kernel lacks userfaultfd
 * write-protect.  Since 0.1.
 */
CG_EXPORT int cg_open(const struct cg_options *opts, size_t opts_size, struct cg **out);

/*
 * cg_close - stop tracking: unregisters every region (write protection is
 * removed) and frees the handle.  NULL is ignored.  Since 0.1.
 */
CG_EXPORT void cg_close(struct cg *cg);

/*
 * When the daemon goes away (killed, crashed, restarted by systemd) a
 * daemon-mode handle is "lost".  Nothing blocks and no data is lost: the
 * kernel releases the uffd the daemon held, wakes every faulting thread and
 * drops the write protection, so the memory runs on untracked.  The page
 * state is gone with the daemon.  The next call on the handle (or the call
 * that finds the connection gone) tries once to come back:
 *  - the daemon is back on the socket: a new connection and uffd, and every
 *    region registered through the handle (as far as it is still mapped as
 *    registered) is registered again.  Its pages start as at cg_register():
 *    history unknown, so populated pages are unshared and protected.  Then
 *    the call proceeds.  Statistics and pins start afresh.
 *  - it is not: a handle opened with CG_MODE_AUTO goes on embedded (cg_mode
 *    says so) with the same regions, as above, and the call proceeds.  One
 *    opened with CG_MODE_DAEMON returns -ENOTCONN ("page state unknown")
 *    from cg_register, cg_query, cg_audit and cg_stats, and tries again at
 *    its next call; cg_unregister of a region it had still succeeds.
 * A call in flight when the daemon dies returns -ENOTCONN.  A fork() while
 * lost follows nothing: parent and child each come back at their next
 * call, the child as a client of its own.  Since 0.1.
 */

/*
 * cg_mode - the mode the handle runs in: CG_MODE_DAEMON or CG_MODE_EMBEDDED
 * (a CG_MODE_AUTO handle goes embedded when its daemon does not come back).
 */
CG_EXPORT enum cg_mode cg_mode(const struct cg *cg);

/*
 * cg_register - track a range of private anonymous memory.
 * @addr and @len must be page aligned and cover mapped private anonymous
 * memory of one page kind (4 KiB, THP-enabled, or hugetlb); for hugetlb,
 * aligned to its huge page size.  The kind is detected, not declared.
 * Populated pages are write-protected so that writes are seen.
 * @flags must be 0.  Returns 0, -EINVAL (bad alignment, zero length, flags,
 * not anonymous private, mixed kinds), -EOVERFLOW (range wraps), -ENOMEM
 * (range not mapped), -EEXIST (overlaps a registered region), -EDQUOT
 * (a quota of the client or, through cowguardd, of its user), -ENOSPC
 * (cowguardd's memory for the user is used up), -EMLINK (through
 * cowguardd: the process has more VMAs than the daemon reads through for
 * one client, --max-client-vmas), -EOPNOTSUPP (hugetlb on a kernel that
 * cannot write-protect it: before Linux 5.19).  Since 0.1.
 */
CG_EXPORT int cg_register(struct cg *cg, void *addr, size_t len, unsigned flags);

/*
 * cg_unregister - stop tracking exactly a range given to cg_register().
 * Returns 0 or -ENOENT when no region starts at @addr with @len.  Since 0.1.
 */
CG_EXPORT int cg_unregister(struct cg *cg, void *addr, size_t len);

enum cg_page_kind {
	CG_PAGE_NONE = 0,	/* not in a registered region */
	CG_PAGE_4K,		/* small page */
	CG_PAGE_THP,		/* PMD-mapped transparent huge page */
	CG_PAGE_THP_PTE,	/* 4 KiB part of a THP mapped by PTEs (split) */
	CG_PAGE_HUGETLB_2M,
	CG_PAGE_HUGETLB_1G,
};

struct cg_page_info {
	uint64_t addr;		/* start of the tracked unit containing the address */
	uint64_t size;		/* its size: 4 KiB, 2 MiB or 1 GiB */
	enum cg_page_kind kind;
	unsigned present:1;	/* populated, as far as cowguard has seen */
	unsigned exclusive:1;	/* our PageAnonExclusive: 0 means maybe shared */
	/* written (or maybe: COWGUARD_WP_AROUND) since registration or the last epoch */
	unsigned dirty:1;
	unsigned wp:1;		/* write-protected: the next write is seen */
	uint32_t pins;		/* read-only or read-write pins covering it */
};
#define CG_PAGE_INFO_SIZE_VER0 (offsetof(struct cg_page_info, pins) + sizeof(uint32_t))

/*
 * cg_query - the emulated state of the page containing @addr, into @out of
 * @size bytes (sizeof(*@out): see "Structures that grow").
 * Returns 0, -EINVAL (@size below CG_PAGE_INFO_SIZE_VER0), -ENOENT when
 * @addr is not in a registered region, or -ENOTCONN (CG_MODE_DAEMON,
 * daemon gone and not back: the state is unknown; see "When the daemon
 * goes away" above).  @out is written only on success.  Since 0.1.
 */
CG_EXPORT int cg_query(struct cg *cg, const void *addr, struct cg_page_info *out,
		       size_t size);

enum cg_truth {
	CG_TRUTH_KPAGEFLAGS = 1,	/* PageAnonExclusive (root) */
	CG_TRUTH_MAPCOUNT = 2,		/* pagemap bit 56 only: detects unsafe only */
};

struct cg_audit_report {
	enum cg_truth truth;	/* what the kernel's state was read from */
	uint64_t pages;		/* 4 KiB pages checked */
	uint64_t present;	/* present according to the kernel */
	uint64_t exact;		/* present pages whose exclusivity could be read */
	/* engine says exclusive, kernel says shared: must never happen */
	uint64_t unsafe;
	/* engine says maybe-shared, kernel says exclusive */
	uint64_t conservative;
	/* kernel's exclusivity unknowable (PTE-mapped THP subpage, or no root) */
	uint64_t unknowable;
	/* engine says present but kernel says not, or present only by a read */
	uint64_t presence;
};
#define CG_AUDIT_REPORT_SIZE_VER0 \
	(offsetof(struct cg_audit_report, presence) + sizeof(uint64_t))

/*
 * cg_audit - compare the engine's state of [@addr, @addr+@len) with the
 * kernel's, into @out of @size bytes (sizeof(*@out)).  The range must lie
 * within registered regions.  "Zero mismatches" means unsafe == 0 and
 * conservative == 0.  Returns 0, -EINVAL (zero length, unaligned, @size
 * below CG_AUDIT_REPORT_SIZE_VER0), -EOVERFLOW (range wraps), -ENOENT (not
 * all registered), -ENOTCONN (as cg_query).  Since 0.1.
 */
CG_EXPORT int cg_audit(struct cg *cg, void *addr, size_t len, struct cg_audit_report *out,
		       size_t size);

struct cg_stats {
	uint64_t wp_faults;		/* write-protect faults resolved */
	uint64_t fork_events;		/* forks followed */
	uint64_t pages_shared_by_fork;	/* 4 KiB pages turned maybe-shared */
	uint64_t pages_made_exclusive;	/* maybe-shared pages made exclusive */
	uint64_t remaps;		/* mremap events */
	uint64_t removals;		/* MADV_DONTNEED/REMOVE events */
	uint64_t unmaps;		/* munmap events */
	uint64_t thp_splits;		/* huge units followed down to 4 KiB */
	uint64_t audits;
	uint64_t mismatches;		/* unsafe + conservative, over all audits */
	uint64_t regions;		/* currently registered */
	uint64_t registered_bytes;
	uint64_t pins;			/* currently held */
	uint64_t pin_violations;	/* unpins that found a page replaced */
	uint64_t unshare_copies;	/* pages a pin had copied to unshare */
	uint64_t unshare_reuses;	/* maybe-shared pages found ours alone */
	/*
	 * 4 KiB pages a pin asked this process to unshare by a write fault:
	 * the zero page, and every page before Linux 5.19, where a read-only
	 * pin does not unshare.  Since 0.1.
	 */
	uint64_t unshare_writes;
	/*
	 * Of unshare_copies, the 4 KiB pages of THPs a pin unshared whole by
	 * moving a copy in (the THP stays mapped by one PMD; Linux 6.8+).
	 */
	uint64_t unshare_moves;
	/*
	 * Of unshare_copies, the 4 KiB pages a pin unshared by copying them
	 * out and filling them back (embedded mode; Linux 6.4+).
	 */
	uint64_t unshare_fills;
};
#define CG_STATS_SIZE_VER0 (offsetof(struct cg_stats, unshare_writes) + sizeof(uint64_t))

/*
 * Pins: a range handed to a consumer that reads (or writes) it behind the
 * page tables' back (DMA, a pipe holding page references).
 */
struct cg_pin;

enum {
	CG_PIN_RO = 1 << 0,	/* the consumer reads: unshare, keep content */
	CG_PIN_RW = 1 << 1,	/* the consumer may write too */
	/*
	 * The consumer holds a kernel FOLL_PIN on the pages for as long as
	 * the pin lasts (io_uring fixed buffers, RDMA memory regions): fork()
	 * then copies them for the child and leaves ours in place.  Without
	 * it (vmsplice, MSG_ZEROCOPY: plain page references) cowguard marks
	 * the range MADV_DONTFORK while pinned, so a child never shares it:
	 * a child touching it gets SIGSEGV, as with rdma-core's fork support.
	 */
	CG_PIN_FOLL_PIN = 1 << 2,
};

/*
 * cg_pin - prepare [@addr, @addr+@len) for a consumer.  Every page ends up
 * populated and exclusive to this process (unshared if it may have been
 * shared: COW after fork, KSM, the zero page, or state unknown), with its
 * content kept, so that a later write here reuses the page the consumer
 * holds.  From Linux 5.19 a page unshared by a read-only pin keeps its
 * write protection (later writes are seen); pages that only a write fault
 * can unshare (the zero page) are written once, without changing a byte,
 * and are dirty afterwards.  Before 5.19 every page of the range is
 * unshared so, and stays unprotected while pinned: there a write to a
 * write-protected page that a consumer holds copies it away from the
 * consumer.  Its pages then count as dirty.  @flags: CG_PIN_RO or
 * CG_PIN_RW, optionally CG_PIN_FOLL_PIN.  The range must lie within
 * registered regions, writable where a write fault is needed, and not cut
 * a hugetlb page.
 * On success *out is the pin, for cg_unpin().  Returns 0, -EINVAL (flags,
 * alignment, zero length, a hugetlb page cut), -EOVERFLOW, -ENOENT (not
 * registered), -EDQUOT (pin quota of the client or its user), -ENOMEM
 * (the hugetlb pool cannot take the copies: unsharing would take the page
 * from another process), -EACCES
 * (a page needs a write fault where the memory is not writable), -EAGAIN
 * (the range kept changing under us: retry).  Since 0.1.
 */
CG_EXPORT int cg_pin(struct cg *cg, void *addr, size_t len, unsigned flags,
		     struct cg_pin **out);

/*
 * cg_unpin - the consumer is done: drop the pin and check it.  Returns 0
 * when every page is still the exclusive page that was pinned (and, where
 * page frames can be read, the same frame); -ENOTRECOVERABLE when one was
 * replaced (the consumer may have read stale data; logged and counted in
 * cg_stats.pin_violations); -ENOTCONN when the daemon went away.  The pin
 * is freed in every case.  Since 0.1.
 */
CG_EXPORT int cg_unpin(struct cg_pin *pin);

/*
 * cg_stats - this client's counters, into @out of @size bytes
 * (sizeof(*@out): see "Structures that grow").  Returns 0, -EINVAL (NULL
 * argument, @size below CG_STATS_SIZE_VER0), or -ENOTCONN (as cg_query).
 * Since 0.1.
 */
CG_EXPORT int cg_stats(struct cg *cg, struct cg_stats *out, size_t size);

/*
 * Write tracking, for checkpoints and snapshots: the units of registered
 * memory written since they were registered or last reported.
 */
struct cg_range {
	void *addr;
	size_t len;
};

/*
 * cg_track_collect - the written units of [@addr, @addr+@len), as at most
 * @max ranges in address order into @out, each made clean and
 * write-protected again before it is reported: a write that lands before
 * the call returns is in this report (read the pages after it), one after
 * it in the next.  Every unit is whole (a THP's 2 MiB while one PMD maps
 * it, a hugetlb page), and units are reported that were maybe written:
 * those a write fault unprotected with its neighbour (COWGUARD_WP_AROUND),
 * those a pin unshared by a move or a fill, and every unit of a
 * read-write pin at every call (its consumer writes unseen).  A page
 * dropped (MADV_DONTNEED) unwritten is not reported, nor is memory not
 * registered.  A snapshot (cg_snapshot) resets the same record as it
 * saves.  Returns the number of ranges, or -EINVAL (NULL argument,
 * @len or @max 0), -ENOTCONN (as cg_query); *@next is where a next call
 * goes on: @addr + @len once all was reported.  Since 0.1.
 */
CG_EXPORT int cg_track_collect(struct cg *cg, void *addr, size_t len,
			       struct cg_range *out, size_t max, void **next);

/*
 * Live snapshot: every page of the registered regions as it was at one
 * instant, written to an image file while the program runs
 * (docs/image-format.md; cowguardctl image checks one).
 */
struct cg_snapshot_info {
	uint64_t image_bytes;	/* the image file's size */
	uint64_t saved_bytes;	/* memory saved */
	uint64_t kept_bytes;	/* incremental: present, as in the parent */
	uint64_t regions;
	uint64_t waits;		/* writes that waited for their page to be saved */
	uint64_t begin_ns;	/* the freeze, while no write was served */
};
#define CG_SNAPSHOT_INFO_SIZE_VER0 (offsetof(struct cg_snapshot_info, begin_ns) + sizeof(uint64_t))

/* cg_snapshot flag: only what was written since the last snapshot. */
#define CG_SNAPSHOT_INCREMENTAL (1u << 0)

/*
 * cg_snapshot - write an image of every registered region to @fd, a
 * regular file opened for reading and writing (it is overwritten from
 * offset 0 and cut to the image's size).  The image is the memory at the
 * moment the call froze it: from then on a write to a page not saved yet
 * waits until the page is saved, and goes on; a hole then is zeros in the
 * image.  With CG_SNAPSHOT_INCREMENTAL in @flags only the units written
 * since the last snapshot this handle took are saved, the others named
 * as kept (the parent image holds them; the image names its parent); it
 * needs that snapshot to have succeeded and no cg_track_collect() since
 * (-ENOENT otherwise): both take their record of writes from one place,
 * and every snapshot resets it, as a collect does.  Pages under a
 * read-write pin (and every pinned page before kernel 5.19) are saved as
 * they are when saved: their consumers write unseen.  Extra memory: 2 MiB, and 32 bytes per saved run (a run is at
 * most 2 MiB).  The calling thread must not be one the program makes wait
 * (it writes nothing the program registered).  @info (may be NULL, then
 * @size is ignored) gets figures ("Structures that grow").  Returns 0, or
 * -EINVAL (NULL handle, @fd < 0, @size too small, unknown @flags),
 * -ENOENT (incremental without a parent, as above), -ESPIPE (@fd is not a
 * regular file), -EBUSY (a snapshot or a pin is in progress), -EOPNOTSUPP
 * (COWGUARD_WP=async: the kernel resolves writes, none can wait), -EAGAIN
 * (the program kept populating new pages through 8 passes of the freeze),
 * -ESTALE
 * (memory not saved yet was dropped, unmapped or moved meanwhile: take it
 * again), -ENOTCONN (the daemon went away), or a write's errno; after a
 * failure the file holds no valid image.  While it runs, a pin that would
 * write to a page not saved yet (read-write, or unsharing by a write)
 * fails with -EBUSY.  Since 0.1.
 */
CG_EXPORT int cg_snapshot(struct cg *cg, int fd, unsigned flags,
			  struct cg_snapshot_info *info, size_t size);

/*
 * Lazy restore: the regions of a full snapshot image mapped again where
 * they were, in this process, filled from the image while the program
 * already runs.
 */
struct cg_restore;

struct cg_restore_info {
	uint64_t regions;
	uint64_t restored_bytes;	/* copied in from the image */
	uint64_t faults;		/* served before the drain came there */
	uint64_t first_fault_ns;	/* from the start to the first served */
	uint64_t drain_ns;		/* from the start to every page in */
};
#define CG_RESTORE_INFO_SIZE_VER0 (offsetof(struct cg_restore_info, drain_ns) + sizeof(uint64_t))

/*
 * cg_restore_start - map every region of the image in @fd (a full one:
 * an incremental image is -EOPNOTSUPP; see cg_restore_chain_start) at its address in this process, and
 * fill it lazily: a thread of the library serves each missing-page fault
 * from the image at once (its run, a hugetlb page whole) and copies in
 * the rest meanwhile.  The image is checked whole first: a corrupt or
 * truncated one is refused (-EBADMSG, -ENODATA, -ENOEXEC,
 * -EPROTONOSUPPORT) with nothing mapped; so is an address already mapped
 * (-EEXIST).  Once all is in, the regions are registered with @cg (may
 * be NULL: not tracked), their history unknown, as after a daemon restart.
 * The daemon takes no part in the restore: its death cannot stop it.
 * Meanwhile a page dropped or unmapped is never filled from the image
 * again, memory moved is filled where it went, and fork(3) waits until
 * the restore is done, so that the child has every page (a raw clone()
 * that skips fork(3)'s handlers gets zeros where pages were not in yet).
 * @flags: 0, or CG_RESTORE_CHECK_AS_READ (below).  On success *@out is
 * for cg_restore_wait().  Returns 0,
 * -EINVAL, -ENOMEM, -EPERM (no userfaultfd: see cg_strerror), or as above.
 * Since 0.1.
 */
CG_EXPORT int cg_restore_start(struct cg *cg, int fd, unsigned flags,
			       struct cg_restore **out);
/*
 * cg_restore_chain_start - the same for an incremental image: @fds[0] is
 * the image to restore, @fds[1] the image it names as its parent, and so
 * on to a full image, @nfds of them (at most CG_RESTORE_CHAIN_MAX).  A kept
 * page is read from the nearest image that saved it.  Every image is
 * checked whole, and the chain too, before anything is mapped: -EINVAL
 * when an image's parent is not the next one (or a full image comes
 * before the last), -EOPNOTSUPP when the last is incremental, -EBADMSG
 * when a parent lacks a page its child kept.  cg_restore_start(cg, fd, ...)
 * is this with one image.  Since 0.1.
 */
#define CG_RESTORE_CHAIN_MAX 64
/*
 * @flags of both: CG_RESTORE_CHECK_AS_READ starts after the header and
 * index are checked, not the whole image (the first byte comes at once);
 * each run is checked when first read, and a run found corrupt is never
 * given as memory: its pages are poisoned (a touch raises SIGBUS, as a
 * memory error would) and cg_restore_wait() returns -EBADMSG.  Needs
 * UFFD_FEATURE_POISON (Linux 6.6): else -EOPNOTSUPP, nothing mapped.
 */
#define CG_RESTORE_CHECK_AS_READ (1u << 0)
CG_EXPORT int cg_restore_chain_start(struct cg *cg, const int *fds,
				     size_t nfds, unsigned flags,
				     struct cg_restore **out);
/*
 * cg_restore_wait - wait until every page of @r is in and its regions are
 * registered, then free @r; figures into @info (may be NULL; @size as for
 * every structure that grows).  Returns 0, or the first error (a read of
 * the image, the registration with the handle's cg).  Since 0.1.
 */
CG_EXPORT int cg_restore_wait(struct cg_restore *r,
			      struct cg_restore_info *info, size_t size);

/* cg_features - the userfaultfd features negotiated (UFFD_FEATURE_* bits). */
CG_EXPORT uint64_t cg_features(const struct cg *cg);

/*
 * cg_strerror - text for a negative errno returned by cowguard, including
 * the cowguard-specific meaning where one exists.  Never NULL.  Since 0.1.
 */
CG_EXPORT const char *cg_strerror(int err);

/*
 * cg_version - the version of the library this program runs with,
 * "MAJOR.MINOR.PATCH"; cg_version_major() and cg_version_minor() give its
 * first two numbers.  Compare them with CG_VERSION_MAJOR and
 * CG_VERSION_MINOR (the header the program was built with) to find
 * whether a function added after 0.1 can be called.  Never fail.
 * Since 0.1.
 */
CG_EXPORT const char *cg_version(void);
CG_EXPORT int cg_version_major(void);
CG_EXPORT int cg_version_minor(void);

#ifdef __cplusplus
}
#endif
#endif
