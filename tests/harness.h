/* SPDX-License-Identifier: MIT */
/*
 * Shared test harness.  Each test binary is one Check suite about one
 * behaviour.  Tests that apply to both modes are loop tests: _i is the
 * mode (H_DAEMON or H_EMBEDDED); h_main() starts a private cowguardd for
 * the daemon half and stops it at the end.
 *
 * Rules (see ../shared/KERNEL-FACTS.md, "Test-harness traps"):
 *  - a skipped case calls h_skip("why") and returns; Check has no skip.
 *  - a process a test forks must _exit() and never call ck_assert.
 *  - hugetlb pools are set by h_main() when asked and restored at exit.
 */
#ifndef CG_TEST_HARNESS_H
#define CG_TEST_HARNESS_H

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/types.h>

#include "cowguard.h"

#define H_DAEMON 0
#define H_EMBEDDED 1

#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << MAP_HUGE_SHIFT)
#endif
#ifndef MAP_HUGE_1GB
#define MAP_HUGE_1GB (30 << MAP_HUGE_SHIFT)
#endif

#define KIB 1024ULL
#define MIB (1024 * KIB)
#define GIB (1024 * MIB)

enum h_kind { H_4K, H_THP, H_HUGETLB_2M, H_HUGETLB_1G };

/*
 * The matrix (tests/harness-cases.c).  A behaviour is added once, with
 * the modes and page kinds it applies to (masks; 0: not crossed with
 * them), and each cell becomes a test named "name (mode, kind)": Check
 * names it in a failure, h_skip() in a skip.
 */
#define H_MODES (1u << H_DAEMON | 1u << H_EMBEDDED)
#define H_KIND_BIT(k) (1u << (k))
#define H_KINDS_ALL 0xfu
/* What anonymous memory a fork shares: no 1 GiB pages (too few to copy). */
#define H_KINDS_SHARED (H_KINDS_ALL & ~H_KIND_BIT(H_HUGETLB_1G))
/* What uffd-wp tracks on every kernel: before 5.19 hugetlb has no uffd-wp. */
#define H_KINDS_SMALL (H_KIND_BIT(H_4K) | H_KIND_BIT(H_THP))

/*
 * A START_TEST function crossed with modes and kinds.  Its _i is the
 * cell's: the mode (modes only), the kind (kinds only), or both, read with
 * H_MODE(_i) and H_KIND(_i).
 */
void h_add_test(TCase *tc, const TTest *fn, unsigned modes, unsigned kinds);
#define h_add(tc, fn) h_add_test(tc, fn, 0, 0)
#define h_add_modes(tc, fn) h_add_test(tc, fn, H_MODES, 0)
#define h_add_kinds(tc, fn) h_add_test(tc, fn, 0, H_KINDS_ALL)
#define h_add_modes_kinds(tc, fn) h_add_test(tc, fn, H_MODES, H_KINDS_ALL)
/* A START_TEST function run n times, _i from 0: "name [i]". */
void h_add_loop(TCase *tc, const TTest *fn, int n);
#define H_MODE(i) ((i) / 4)
#define H_KIND(i) ((enum h_kind)((i) % 4))

/*
 * A row of a suite's case table: one behaviour, run as run(arg, mode,
 * kind) in each cell of its modes and kinds (mode H_DAEMON, kind H_4K
 * where a mask is 0).  H_CASE(fn, arg, modes, kinds) names the row after
 * fn; H_CASE_AS(name, fn, arg, ...) after name, for rows that share fn.
 */
struct h_case {
	const char *name;
	void (*run)(const void *arg, int mode, enum h_kind kind);
	const void *arg;
	unsigned modes, kinds;
	const char *file;
	int line;
};
#define H_CASE(fn, arg, modes, kinds) H_CASE_AS(fn, fn, arg, modes, kinds)
#define H_CASE_AS(name, fn, arg, modes, kinds)                                 \
	{ #name, fn, arg, modes, kinds, __FILE__, __LINE__ }
void h_add_cases(TCase *tc, const struct h_case *rows, size_t n);
#define H_ADD_CASES(tc, rows) h_add_cases(tc, rows, sizeof(rows) / sizeof(rows[0]))
/* The name of the cell running, or NULL outside one. */
const char *h_case_name(void);

const char *h_mode_name(int mode);
const char *h_kind_name(enum h_kind kind);

/* Print "SKIP: <case (mode, kind)>: why" once; the caller returns. */
void h_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Open a handle in the given mode; fails the test if that is impossible. */
struct cg *h_open(int mode);
/*
 * Whether cg's engine runs on asynchronous write protection
 * (COWGUARD_WP=async where the kernel has UFFD_FEATURE_WP_ASYNC): the
 * kernel resolves writes itself, and splits a protected PMD-mapped THP at
 * its first write.
 */
bool h_wp_async(struct cg *cg);
/*
 * Whether a page written right after a fork is known exclusive at once.
 * On the fault path, always: the write fault tells.  With asynchronous
 * protection the write may come before the fork is handled, and is then
 * judged by page flags: without them (the engine not root) the page stays
 * maybe-shared, conservative.  addr: a page of cg's, for its audit.
 */
bool h_write_after_fork_is_known_ours(struct cg *cg, void *addr);
/*
 * Whether a pin of cg unshares a shared PMD-mapped THP whole, by moving a
 * copy in (lib/engine/move.c: UFFD_FEATURE_MOVE, on the fault path): the
 * THP stays one PMD, and the chunk is reported dirty.  Otherwise the
 * kernel's unshare splits it.
 */
bool h_thp_moves(struct cg *cg);
/* The skip for a case that needs the synchronous fault path; true if so. */
bool h_skip_if_async(struct cg *cg, const char *why);

/*
 * Map len bytes of private anonymous memory of a kind, aligned to its page
 * size, and fill it with byte fill (populating it).  Returns NULL, after
 * h_skip(), when the kind cannot be had (no hugetlb pool, THP off).
 */
void *h_map(enum h_kind kind, size_t len, int fill);
size_t h_page_size(enum h_kind kind);

/*
 * What most cases start from: len bytes of kind filled with fill, made
 * sure the hugetlb pool can take `copies` more units (what the case's
 * writes after a fork copy), registered with a handle of mode.  False,
 * after a skip, when the kind or the copies cannot be had.
 */
struct h_region {
	struct cg *cg;
	char *p;
	size_t len;
	enum h_kind kind;
};
bool h_region_open(struct h_region *r, int mode, enum h_kind kind, size_t len,
		   int fill, unsigned long copies);
/* Close the handle and unmap. */
void h_region_close(struct h_region *r);

/*
 * A 4 KiB page faulted in lately sits in its CPU's LRU-add batch, which
 * holds a reference to it: while it does, an unshare copies the page even
 * when no one else maps it (the kernel's own FOLL_PIN unshare too), and
 * only a drain on that CPU lets it be reused.  A test that wants reuse calls
 * h_stay_on_this_cpu() before it faults the pages in, and
 * h_flush_lru_batch() before it unshares them.
 */
void h_stay_on_this_cpu(void);
void h_flush_lru_batch(void);

/*
 * Whether n free huge pages of kind can be had, waiting up to 2 s for
 * pages an earlier test freed (gigantic pages are freed lazily).  A fork
 * test needs a spare page per shared one: with the pool short, the kernel
 * takes the child's page when the parent writes (the child reads zeros or
 * dies of SIGBUS).  Prints the skip reason and returns false otherwise.
 */
bool h_hugetlb_room(enum h_kind kind, unsigned long n);

/*
 * The size of the hugetlb pool of kind (nr_hugepages), -1 without one, and
 * setting it (root; 0 or -errno).  The harness puts it back at the end.
 */
long h_hugetlb_pool(enum h_kind kind);
int h_hugetlb_pool_set(enum h_kind kind, long n);

/*
 * Audit and assert zero unsafe and zero conservative pages; returns it.
 * One allowance, printed: on a kernel without PAGEMAP_SCAN (6.1),
 * conservative pages in THP memory.  There the engine follows every THP
 * as split, and a THP the kernel reused whole on a write or an unshare is
 * exclusive beyond the 4 KiB page the engine marked (README, "Kernel
 * features used").  Unsafe pages are never allowed.
 */
struct cg_audit_report h_audit_clean(struct cg *cg, void *addr, size_t len);

/*
 * The kernel's view of one of our pages.  Before 5.19 kpageflags bit 34 is
 * not PageAnonExclusive (anon_exclusive is then -1), and 5.10 has no
 * uffd-wp bit in pagemap (uffd_wp reads 0: see h_pagemap_shows_uffd_wp).
 */
struct h_kpage {
	bool present;
	bool mapped_once;	/* pagemap bit 56 */
	bool uffd_wp;		/* pagemap bit 57 */
	uint64_t pfn;		/* 0 without root */
	int anon_exclusive;	/* kpageflags bit 34: 0, 1, or -1 unknown */
};
struct h_kpage h_kpage(const void *addr);
/*
 * Whether pagemap shows the uffd-wp bit (bit 57) on this kernel, learned
 * once by protecting a page of our own.  Where it does not, a test cannot
 * check write protection in the kernel, only its effects.
 */
bool h_pagemap_shows_uffd_wp(void);
/* Whether the audit's truth is PageAnonExclusive here (root, 5.19+). */
bool h_truth_is_kpageflags(void);
/*
 * Whether the engine here unshares by a read-only pin and keeps pinned
 * pages write-protected (5.19+, as the library probed it); otherwise it
 * unshares by write faults and leaves pinned pages unprotected and dirty
 * (test-pin-unshares-by-write-where-read-pins-do-not.c).  Returns the
 * answer, and prints "SKIP: why" when it is false and what is not NULL.
 */
bool h_read_pins_unshare(const char *what);
/*
 * Whether this kernel can write-protect hugetlb pages
 * (UFFD_FEATURE_WP_HUGETLBFS_SHMEM, 5.19+): cg_register() refuses them
 * (-EOPNOTSUPP) where it cannot, and h_map() skips them.
 */
bool h_hugetlb_trackable(void);

/*
 * Whether the VMA containing addr has the two-letter smaps VmFlags flag
 * (for example "uw": registered for userfaultfd write-protect): 1 or 0,
 * or -1 when no VMA contains addr.
 */
int h_vma_flag(const void *addr, const char *flag);
/* Bit i: whether the VMA of the page at addr + i * 4 KiB has flag (pages <= 64). */
uint64_t h_vma_flag_pages(const void *addr, size_t pages, const char *flag);

/* Start a child that runs fn(arg) then _exit()s with its return value. */
pid_t h_fork(int (*fn)(void *arg), void *arg);
/* Wait for a child; returns its exit status, or 128+signal. */
int h_wait(pid_t pid);

/*
 * Whether a bound on time means anything in this run: not in a sanitizers'
 * build, nor in a guest QEMU emulates (CG_VM: TCG runs code about 6 times
 * slower).  If not, prints a NOTE that what goes unbounded.
 */
bool h_time_bounds(const char *what);

/* CLOCK_MONOTONIC in milliseconds, and a sleep of ms milliseconds. */
double h_now_ms(void);
void h_sleep_ms(int ms);

/*
 * A child that keeps its copy of our memory (so pages stay COW-shared)
 * until h_release().  Released, it checks that *check (unless NULL) still
 * reads expect and _exit()s 0, or 3 when it reads something else.
 */
struct h_waiter {
	pid_t pid;
	int go;		/* write end of the child's pipe */
};
struct h_waiter h_fork_waiting(const volatile char *check, char expect);
/*
 * The same, checking more when released: in each range of len bytes at
 * at[0] and at[1] (NULL: none), the first and last byte of every unit
 * (0: 1 byte) still read expect.  Its exit status: 0, or 3 where one does
 * not (with written set: 3 where one reads written, what the parent wrote
 * since, 4 where it reads anything else, a page lost).  raw: forked by the
 * fork system call, which runs no atfork handler: cowguard's library does
 * not see it.
 */
struct h_check {
	const volatile char *at[2];
	size_t len, unit;
	char expect, written;
	bool raw;
};
struct h_waiter h_fork_checking(const struct h_check *check);
/* Let the child go and reap it; returns its status as h_wait() does. */
int h_release(struct h_waiter *w);

/*
 * Whether the 2 MiB chunk containing addr is mapped by one PMD, from
 * PAGEMAP_SCAN: 1 or 0, or -1 when PAGEMAP_SCAN is unavailable.
 */
int h_pmd_mapped(const void *addr);
/*
 * Whether every 2 MiB chunk of [addr, addr+len) is mapped by one PMD.
 * Otherwise prints why and returns false, and the caller skips: "SKIP:
 * needs PAGEMAP_SCAN (6.7+) ..." on a kernel without it (the 6.1 lane),
 * where nothing can tell a PMD-mapped THP.
 */
bool h_thp_pmd_mapped(const void *addr, size_t len);

/*
 * The engine's view of every 4 KiB page of [addr, addr+len): a calloc'd
 * array of len / 4096 entries (cg_query of each page) for the caller to free.
 */
struct cg_page_info *h_states(struct cg *cg, const void *addr, size_t len);
/*
 * Assert that the pages now at [now, now+len) have the states that were
 * taken at was (h_states: present, exclusive, dirty, wp), that the unit
 * each query reports contains the page, and that the engine agrees with
 * the kernel where the kernel is certain: a present page is present in
 * pagemap, a page the engine calls write-protected has the uffd-wp bit, a
 * THP page is CG_PAGE_THP exactly when one PMD maps it.  On asynchronous
 * protection a written page may have been protected again meanwhile, if
 * the kernel agrees (harness-kernel.c, reprotected()).  what names the
 * step in failure messages.
 */
void h_assert_states(struct cg *cg, const struct cg_page_info *was,
		     const void *now, size_t len, const char *what);

/*
 * The path of the test daemon's socket, and its pid (daemon half only).
 * With CG_TEST_DAEMON_SOCKET set (the unprivileged lane,
 * scripts/run-unprivileged.sh) h_main() starts no daemon: h_socket() is
 * that socket, served by a root cowguardd the lane started, and
 * h_daemon_pid() is 0.
 */
const char *h_socket(void);
pid_t h_daemon_pid(void);

/*
 * For a case that needs what the unprivileged lane cannot give.  Each
 * returns true when the need is met; otherwise it prints "SKIP: needs
 * root: what" or "SKIP: needs its own daemon: what" and returns false,
 * and the caller returns.  h_have_own_daemon() means: the suite's daemon
 * is this binary's child (its pid, fds and log are ours, it may be
 * stopped or killed) and h_daemon_start() may be used.
 */
bool h_have_root(const char *what);
bool h_have_own_daemon(const char *what);
/*
 * Start a second daemon on another socket.  h_daemon_stop() ends it with
 * SIGTERM and returns its exit status (128 + signal if killed).
 */
pid_t h_daemon_start(const char *socket_path);
/* Whether a daemon takes connections at socket_path now. */
bool h_connectable(const char *socket_path);
/* The same with one more option and its value (opt NULL: none). */
pid_t h_daemon_start_opt(const char *socket_path, const char *opt,
			 const char *val);
int h_daemon_stop(pid_t pid);

/*
 * The test daemon's STATUS record of the client with this pid (0: an
 * unnamed child).  Asked over a cowguardctl connection that the harness
 * opens on first use and keeps open, so that the daemon's fd count is the
 * same before and after.  Returns 1 listed (*out filled unless NULL),
 * 0 not listed, or -errno.
 */
struct cg__status_client;
int h_status_client(pid_t pid, struct cg__status_client *out);
/* Whether pid's record leaves the daemon's STATUS within ms milliseconds. */
bool h_status_gone(pid_t pid, int ms);
/*
 * The test daemon's record of pin number n (0: the first) of the client
 * with this pid, as `cowguardctl pins` lists them (consumer, range, mode).
 * Asked over a fresh cowguardctl connection.  Returns 1 listed (*out
 * filled unless NULL), 0 not listed, or -errno.
 */
struct cg__status_pin;
int h_daemon_pin(pid_t pid, unsigned n, struct cg__status_pin *out);
/* The number of open fds of a process, or -errno. */
int h_fd_count(pid_t pid);

/*
 * A program of tests/apps/ (tests/harness-apps.c), run under cowguard-run
 * with the options run (with the suite's daemon), or without it (run
 * NULL).  h_app_checked() asserts its exit status and that the shim's log
 * holds each of logged; it returns false after a skip (the app exited 77,
 * or a sanitizers' build, where the shim cannot be preloaded).  keep, if
 * not NULL, receives the app's output.  h_app_runs_as_said() is the same
 * as an h_case's run, arg the struct h_app.
 */
struct h_run;
struct h_app {
	const char *app;
	const char *args;
	const char *run;
	int status;
	const char *logged[3];
};
bool h_app_checked(const struct h_app *r, struct h_run *keep);
void h_app_runs_as_said(const void *arg, int mode, enum h_kind kind);
bool h_preload_possible(void);
/* $CG_BUILDDIR, default "build". */
const char *h_builddir(void);

/*
 * Run a shell command line (printf-style, at most 2047 characters) through
 * popen() and collect what it writes to stdout (add 2>&1 for stderr), at
 * most H_RUN_OUT_MAX - 1 bytes, NUL-terminated, and how it ended: its exit
 * status, 128 + signal, or -1 when pclose() fails.  Fails the test when
 * popen() does.  A struct h_run is large: allocate it.  h_ctl_path() is
 * the build tree's cowguardctl ($CG_BUILDDIR, default "build").
 * h_have_python() says whether python3 is there to check JSON with;
 * otherwise it prints the skip reason and returns false.
 */
#define H_RUN_OUT_MAX (256 * 1024)
struct h_run {
	int status;			/* exit status, or 128+signal, or -1 */
	char out[H_RUN_OUT_MAX];	/* what the command wrote to stdout */
};
void h_run_cmd(struct h_run *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
const char *h_ctl_path(void);
bool h_have_python(void);

/*
 * How many lines of the log of the daemon at socket_path (its
 * "<socket>.log", as h_daemon_start() writes it) contain text.
 */
int h_log_lines(const char *socket_path, const char *text);

/*
 * Whether fork() is safe here while another thread of ours may be inside
 * the allocator: the embedded handler thread is.  glibc's malloc is; GCC
 * 12's AddressSanitizer is not (it takes no allocator lock around fork, and
 * a child can inherit it locked and hang: seen under gdb, the child's
 * handler thread waiting in calloc, about 1 run in 10).  Returns true, or
 * prints "SKIP: what: ..." and returns false; the other lanes run it.
 */
bool h_fork_safe_allocator(const char *what);

/* Per-TCase timeout, scaled by CK_TIMEOUT_MULTIPLIER like Check's own. */
void h_timeout(TCase *tc, double seconds);

/* What a suite needs before it runs. */
#define H_NEED_DAEMON (1 << 0)
#define H_NEED_HUGETLB (1 << 1)	/* reserve 2 MiB and 1 GiB pages, restore */

/* Run the suite; returns the process exit status. */
int h_main(Suite *s, unsigned needs);

#endif
