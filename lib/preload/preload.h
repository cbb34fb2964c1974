/* SPDX-License-Identifier: MIT */
/*
 * libcowguard-preload: cowguard for programs that were not written for it.
 * Loaded with LD_PRELOAD (scripts: cowguard-run), it defines the functions
 * through which a program hands its pages to a reader behind the page
 * tables' back, and around each call pins the pages first (made exclusive,
 * content kept), as libcowguard's own wrappers do.
 *
 * Ground rules:
 *  - Never break the program.  A hook that cannot do its part calls the
 *    original all the same; when cowguard cannot start, one line is logged
 *    and the program runs unchanged (COWGUARD_STRICT=1 aborts instead).
 *  - A thread inside cowguard is never hooked again: libcowguard's own
 *    calls (vmsplice, syscall, sendmsg to the daemon) reach the originals.
 *  - The originals are found lazily with dlsym(RTLD_NEXT), so that another
 *    library that hooks the same symbols (UCX, libfabric, MPI) still runs.
 *  - With cowguardd, memory the program never registered is registered on
 *    its first pin: the anonymous mapping that contains it, whole
 *    (lib/preload/cover.c), so that later forks are followed.  Its history
 *    is unknown: every page starts maybe-shared, as after any registration.
 *  - Without cowguardd the shim does not track: the engine's handler thread
 *    would share the program's malloc arenas, and a write it makes there
 *    while they are write-protected would wait on itself.  The pages are
 *    unshared before each call instead (write faults that change nothing,
 *    as MADV_POPULATE_WRITE does) and nothing is followed after it.
 */
#ifndef CG_PRELOAD_H
#define CG_PRELOAD_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/types.h>

#define CG__HOOK __attribute__((visibility("default")))

/* The consumers the shim follows; COWGUARD_HOOKS names them. */
enum cg__hook {
	CG__HOOK_VMSPLICE,	/* vmsplice, syscall(SYS_vmsplice) */
	CG__HOOK_ZEROCOPY,	/* send* with MSG_ZEROCOPY, its completions */
	CG__HOOK_URING,		/* io_uring buffer registration, submissions */
	CG__HOOK_VERBS,		/* libibverbs memory registration */
	CG__HOOK_ODIRECT,	/* write and pwrite* on an O_DIRECT file */
	CG__NHOOKS,
};

const char *cg__hook_name(enum cg__hook hook);

struct cg;
struct cg_pin;

/*
 * Enter cowguard from a hook: false when the hook is off or this thread is
 * inside cowguard already; the hook then calls the original alone.  True:
 * cg__shim_leave() must follow, and *cg is the daemon's handle (opened on
 * first use), or NULL where the shim unshares without tracking.
 */
bool cg__shim_enter(enum cg__hook hook, struct cg **cg);
/*
 * The same without the handle, for hooks that ask something first and
 * may find they have nothing to do (no daemon is dialled for them):
 * cg__shim_handle() then gives it.
 */
bool cg__shim_enter_bare(enum cg__hook hook);
struct cg *cg__shim_handle(void);
void cg__shim_leave(void);
/*
 * Whether this program image has forked (or is a fork's child) since its
 * exec: until then none of its anonymous pages is shared copy-on-write.
 * fork() is seen through pthread_atfork, a raw fork through the syscall()
 * hook, which calls cg__shim_note_fork(); vfork and posix_spawn share the
 * address space and copy nothing.  Not seen: glibc's _Fork() and its
 * clone() wrapper without CLONE_VM, and inline system calls.
 */
bool cg__shim_forked(void);
void cg__shim_note_fork(void);
/*
 * Whether cowguard-run saw the kernel unshare for an O_DIRECT write on the
 * filesystem dev (COWGUARD_ODIRECT "unshares:DEV").
 */
bool cg__shim_odirect_unshared(dev_t dev);
/* Whether this thread is inside cowguard (its calls are not hooked). */
bool cg__shim_inside(void);
/* A thread of the shim's own: inside cowguard for good. */
void cg__shim_enter_thread(void);

/*
 * A hook could not pin what its consumer takes (why: -errno): counted,
 * logged once per hook and errno, and fatal with COWGUARD_STRICT=1.  The
 * call goes on unprotected.
 */
void cg__shim_failed(enum cg__hook hook, const char *what, int err);

/* One line to COWGUARD_LOG's file, or stderr, prefixed "cowguard-preload: ". */
void cg__shim_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The shim's lines go to path from now on (log.c); NULL or "": stderr. */
void cg__shim_log_to(const char *path);
bool cg__shim_log_is_stderr(void);
/* COWGUARD_RESTORE=IMAGE: the image's memory back before main() (restore.c). */
void cg__shim_restore(void);

/*
 * A descriptor the program's close(), close_range(), closefrom(), dup2()
 * and dup3() leave open until the shim closes it (guard.c): 0, or -ENOSPC.
 */
int cg__shim_guard(int fd);
void cg__shim_unguard(int fd);
void cg__shim_unguard_all(void);
/* The hooks, for syscall(SYS_close, ...) and its kin (hook_syscall.c). */
long cg__shim_close(long fd);
long cg__shim_close_range(unsigned first, unsigned last, unsigned flags);
long cg__shim_dup3(long oldfd, long newfd, int flags);

/* The function that name would be without the shim (dlsym(RTLD_NEXT)). */
void *cg__real(const char *name);
/* The same in one version (dlvsym): for versioned libraries' symbols. */
void *cg__real_version(const char *name, const char *version);

/*
 * Before a consumer takes the pages iov references: with a handle, cover
 * and pin them (the pin returned: flags as cg_pin()'s; its consumer named
 * "shim:<hook>", CG_PRELOAD_CONSUMER, which cowguardd counts per client);
 * without, unshare them by write faults (NULL returned).  What cannot be
 * done goes through cg__shim_failed(); errno is kept.
 */
struct iovec;
struct cg_pin *cg__protect(enum cg__hook hook, struct cg *cg,
			   const struct iovec *iov, unsigned long nr,
			   unsigned flags);
/*
 * Write-fault the whole pages of one iovec without changing a byte
 * (MADV_POPULATE_WRITE, or an atomic add of zero before 5.14):
 * cg__write_fault() of lib/write_unshare.c.  0 or -errno.
 */
int cg__write_fault_iov(const struct iovec *iov);
/*
 * Copy len bytes of the program's memory at src, which it handed to a
 * call whose kernel side would answer EFAULT if it were bad: false then,
 * where a plain read would crash the program.  cg__read_own_iov() copies
 * an iovec array into malloc'd memory (NULL: bad, or no memory).
 */
bool cg__read_own(void *dst, const void *src, size_t len);
struct iovec *cg__read_own_iov(const struct iovec *iov, size_t nr);
/* cg__protect() of what a message's iovecs reference, read so. */
struct msghdr;
struct cg_pin *cg__protect_msg(enum cg__hook hook, struct cg *cg,
			       const struct msghdr *msg, unsigned flags);
/* cg_unpin() keeping errno; a replaced page is counted (and logged). */
void cg__unprotect(struct cg_pin *pin);

/*
 * Register the anonymous mappings that hold [addr, addr+len) where they
 * are not registered yet (lib/preload/cover.c): 0, or -errno (-ENOENT:
 * not anonymous private memory, which cowguard cannot track).
 */
int cg__cover(struct cg *cg, uint64_t addr, uint64_t len);
/*
 * Forget what the shim registered over [addr, addr+len): the daemon no
 * longer tracks it (unmapped, moved), so the next cover registers anew.
 */
void cg__uncover(uint64_t addr, uint64_t len);

/*
 * Pins the shim holds for consumers that take plain references, until the
 * consumer lets go (lib/preload/held.c).  The consumer is named by an fd
 * (the pipe, the socket) and, for zero-copy sends, the send's number.
 */
enum cg__held_kind {
	CG__HELD_PIPE,		/* fd: the pipe */
	CG__HELD_ZEROCOPY,	/* fd: the socket; seq: the send's number */
	CG__HELD_URING,		/* fd: the ring (fixed buffers) */
	CG__HELD_URING_IO,	/* fd: the ring; seq: the request's user_data */
	CG__HELD_MR,		/* fd -1; seq: the struct ibv_mr's address */
};
void cg__held_add(struct cg_pin *pin, enum cg__held_kind kind, int fd,
		  uint64_t seq);
/* Let go of the pins of kind for fd numbered lo..hi (completions, an MR). */
void cg__held_release_seq(enum cg__held_kind kind, int fd, uint64_t lo,
			  uint64_t hi);
/* Let go of every pin of kind for fd (io_uring unregistration). */
int cg__held_release_fd(enum cg__held_kind kind, int fd);
/*
 * The ring fd goes (io_uring_queue_exit): its requests' pins end, and its
 * completions are no longer looked for (lib/preload/hook_uring_submit.c).
 */
void cg__uring_ring_exit(int fd);
/* Let go of the pins of pipes that were drained or closed since. */
void cg__held_reap(void);
/* In a child after fork: the parent's pins are not ours to end. */
void cg__held_forget(void);
/* How many pins are held now. */
size_t cg__held_count(void);
/*
 * Before a fork: a plain reference outlives the fork in the child's copy
 * of the page, so pins of such consumers end here (counted as
 * "at_fork"); what the consumer reads from then on is what the pages
 * held at the fork (docs/preload.md).
 */
void cg__held_before_fork(void);

/*
 * Whether a write to fd is one the kernel may read by plain reference: fd
 * is an O_DIRECT file or block device, and cowguard-run did not see the
 * kernel unshare on its filesystem (lib/preload/hook_odirect.c).
 */
bool cg__odirect_unprotected(int fd);
/*
 * Whether the nr vectors of iov add up to a length O_DIRECT may take (a
 * nonzero multiple of 512): a write of another length fails there, before
 * the kernel reads a byte (lib/preload/hook_odirect.c).
 */
bool cg__odirect_length(const struct iovec *iov, size_t nr);
/*
 * Whether an O_DIRECT descriptor may exist in this program: false until
 * one is opened, set so, inherited or received (lib/preload/hook_open.c).
 */
bool cg__odirect_fds_seen(void);
void cg__odirect_fd_seen(void);
void cg__odirect_scan_inherited(void);

/* Counters, for COWGUARD_LOG at exit and `--check`. */
struct cg__shim_counts {
	uint64_t calls[CG__NHOOKS];	/* hooked calls that pinned */
	uint64_t failed[CG__NHOOKS];	/* that could not */
	uint64_t unshared;		/* calls unshared without a daemon */
	uint64_t registered;		/* mappings registered by cover */
	uint64_t released_at_fork;	/* plain-reference pins a fork ended */
	uint64_t violations;		/* unpins that found a page replaced */
};
extern struct cg__shim_counts cg__shim_counts;

#endif
