// SPDX-License-Identifier: MIT
/*
 * Touching a client's pages from a process the daemon can kill.
 *
 * The engine unshares a page by reading a byte of it with process_vm_readv
 * (lib/engine/unshare.c).  That read faults the way the client's own access would,
 * and a client can make it wait: register MODE_MISSING (or MINOR) over its
 * range itself -- through the dup of the uffd it kept, or through a uffd of
 * its own after unregistering ours -- and drop the page.  The read's fault
 * then sleeps on a uffd whose message nobody answers (or the client stole),
 * killable only: the whole daemon would be stuck in D state.
 *
 * So the daemon reads from a reader process of its own, forked on first
 * use, and waits for it in slices.  Between slices it looks at the client:
 * a VMA of the batch's regions with a mode cowguard never registers (smaps
 * "um" or "ui") means the read may never end, so the reader is killed (a
 * fatal signal ends that wait), the client is marked tampering, and the
 * next touch forks a new reader.  A read that is merely slow (huge pages
 * being copied) has nothing foreign and is waited for.
 *
 * The reader shares one page with the daemon: a request, its answer, and a
 * state word both sides sleep on with futex(2).
 */
#include <errno.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "kernel/clock.h"
#include "kernel/procfs.h"
#include "kernel/sys.h"
#include "touch.h"

/* How long the daemon waits before it looks at what the client did. */
#define SLICE_NS (10 * 1000 * 1000)
/*
 * A one-page read takes microseconds, and a futex wake-up across vCPUs (an
 * IPI) tens of them in a VM: the daemon looks for the answer a while before
 * it sleeps.  The reader sleeps at once (measured: its spinning took the CPU
 * the client's writer needed).
 */
#define DAEMON_SPIN_NS (50 * 1000)

enum { IDLE, ASKED, DONE };

struct channel {
	_Atomic uint32_t state;
	_Atomic bool asleep[2];	/* the daemon, the reader: on state */
	pid_t pid;		/* whose pages */
	uint32_t n;
	int32_t got;		/* bytes read, or -errno */
	uint64_t addr[CG_TOUCH_MAX];
};

static struct {
	bool isolated;
	struct channel *ch;	/* MAP_SHARED with the reader */
	pid_t reader;		/* 0: none running */
} T;

static ssize_t read_bytes(pid_t pid, const uint64_t *addrs, size_t n,
			  uint8_t *scratch, size_t scratch_len)
{
	struct iovec local[CG_TOUCH_MAX], remote[CG_TOUCH_MAX];
	ssize_t got;

	for (size_t i = 0; i < n; i++) {
		local[i] = (struct iovec){ &scratch[i % scratch_len], 1 };
		remote[i] = (struct iovec){ (void *)(uintptr_t)addrs[i], 1 };
	}
	got = process_vm_readv(pid, local, n, remote, n, 0);
	return got < 0 ? -errno : got;
}

static int futex(_Atomic uint32_t *word, int op, uint32_t val,
		 const struct timespec *timeout)
{
	return (int)syscall(SYS_futex, word, op, val, timeout, NULL, 0);
}


/* Wait up to ns for state to become want, without sleeping. */
static bool spin_for(struct channel *ch, uint32_t want, uint64_t ns)
{
	uint64_t until = cg__now_ns() + ns;

	do {
		for (int i = 0; i < 64; i++) {
			if (atomic_load(&ch->state) == want)
				return true;
			__builtin_ia32_pause();
		}
	} while (cg__now_ns() < until);
	return false;
}

enum side { DAEMON, READER };

/* Set state, and wake the other side if it sleeps on it. */
static void set_state(struct channel *ch, uint32_t s, enum side other)
{
	atomic_store(&ch->state, s);
	if (atomic_load(&ch->asleep[other]))
		futex(&ch->state, FUTEX_WAKE, 1, NULL);
}

/* Sleep while state is s (or until timeout); the other side wakes us. */
static int sleep_on(struct channel *ch, uint32_t s, enum side me,
		    const struct timespec *timeout)
{
	int ret;

	atomic_store(&ch->asleep[me], true);
	ret = atomic_load(&ch->state) == s ?
		      futex(&ch->state, FUTEX_WAIT, s, timeout) : 0;
	atomic_store(&ch->asleep[me], false);
	return ret;
}

/*
 * Every fd the daemon had: a client's uffd kept open here would keep its
 * registrations alive after the daemon let the client go.
 */
static void close_all(void)
{
	struct rlimit rl;

	if (!syscall(SYS_close_range, 0, ~0U, 0))
		return;
	/* Before 5.9, or filtered out by seccomp. */
	if (getrlimit(RLIMIT_NOFILE, &rl))
		rl.rlim_cur = 1 << 20;
	for (rlim_t fd = 0; fd < rl.rlim_cur; fd++)
		close((int)fd);
}

/* The reader: no allocation, no fd but the shared page, dies with us. */
static _Noreturn void reader_main(struct channel *ch, pid_t daemon)
{
	static uint8_t scratch[4096];

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != daemon)
		_exit(0);
	close_all();
	for (;;) {
		uint32_t s = atomic_load(&ch->state);

		if (s != ASKED) {
			sleep_on(ch, s, READER, NULL);
			continue;
		}
		ch->got = (int32_t)read_bytes(ch->pid, ch->addr, ch->n, scratch,
					      sizeof(scratch));
		set_state(ch, DONE, DAEMON);
	}
}

static int reader_start(void)
{
	pid_t daemon = getpid(), pid;

	if (!T.ch) {
		void *p = cg__sys_mmap(NULL, sizeof(*T.ch), PROT_READ | PROT_WRITE,
			       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED)
			return -errno;
		T.ch = p;
	}
	atomic_store(&T.ch->state, IDLE);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0)
		reader_main(T.ch, daemon);
	T.reader = pid;
	return 0;
}

static void reader_kill(void)
{
	kill(T.reader, SIGKILL);
	/* It dies at once: its only wait is killable. */
	while (waitpid(T.reader, NULL, __WALL) < 0 && errno == EINTR)
		;
	T.reader = 0;
}

/* [lo, hi) but the chunks a move armed, MODE_MISSING by us (move.c). */
static bool foreign_in(const struct cg__mm *mm, uint64_t lo, uint64_t hi)
{
	uint64_t mlo = mm->move.start, mhi = mm->move.end;

	if (mhi && lo < mhi && mlo < hi)
		return (lo < mlo && foreign_in(mm, lo, mlo)) ||
		       (mhi < hi && foreign_in(mm, mhi, hi));
	/* Unknown (too many VMAs to read, or gone) counts as foreign. */
	return cg__vma_flag_in(mm->smaps_fd, lo, hi, "um ui") != 0;
}

/*
 * Whether a region holding one of the addresses has a VMA registered with
 * a mode cowguard never asks for: then a read there may wait for good.
 */
static bool foreign_modes(const struct cg__mm *mm, const uint64_t *addrs,
			  size_t n)
{
	const struct cg__region *last = NULL;

	for (size_t i = 0; i < n; i++) {
		const struct cg__region *r = cg__mm_find(mm, addrs[i]);
		uint64_t lo = r ? r->start : addrs[i];
		uint64_t hi = r ? r->start + r->len : addrs[i] + 1;

		if (r && r == last)
			continue;
		last = r;
		if (foreign_in(mm, lo, hi))
			return true;
	}
	return false;
}

/* Wait for the reader's answer; kill it if the client made it hang. */
static ssize_t await(struct cg__mm *mm, const uint64_t *addrs, size_t n)
{
	const struct timespec slice = { 0, SLICE_NS };

	spin_for(T.ch, DONE, DAEMON_SPIN_NS);
	for (;;) {
		uint32_t s = atomic_load(&T.ch->state);

		if (s == DONE) {
			atomic_store(&T.ch->state, IDLE);
			return T.ch->got;
		}
		if (sleep_on(T.ch, s, DAEMON, &slice) == 0 || errno != ETIMEDOUT)
			continue;
		if (waitpid(T.reader, NULL, WNOHANG | __WALL) == T.reader) {
			T.reader = 0;	/* died on its own (OOM): try again */
			return -EIO;
		}
		if (foreign_modes(mm, addrs, n)) {
			reader_kill();
			mm->tampered = CG__TAMPERED_MODES;
			return -EPERM;
		}
	}
}

void cg__touch_isolate(void)
{
	T.isolated = true;
}

ssize_t cg__touch(struct cg__mm *mm, const uint64_t *addrs, size_t n)
{
	int ret;

	if (n > CG_TOUCH_MAX)
		return -EINVAL;
	if (!T.isolated)
		return read_bytes(mm->pid, addrs, n, mm->scratch,
				  sizeof(mm->scratch));
	if (!T.reader) {
		ret = reader_start();
		if (ret)
			return ret;
	}
	T.ch->pid = mm->pid;
	T.ch->n = (uint32_t)n;
	memcpy(T.ch->addr, addrs, n * sizeof(*addrs));
	set_state(T.ch, ASKED, READER);
	return await(mm, addrs, n);
}
