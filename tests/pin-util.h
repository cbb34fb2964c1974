/* SPDX-License-Identifier: MIT */
/*
 * Small helpers the engine-level pin tests share (test-pin-*.c,
 * test-pinned-pages-survive-fork.c).  Header-only, static inline: each
 * test binary links only tests/harness.o.
 */
#ifndef CG_TEST_PIN_UTIL_H
#define CG_TEST_PIN_UTIL_H

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define PG 4096UL

/*
 * How much a pin test maps of a kind: several units, so a per-unit bug
 * shows, except 1 GiB (the pool holds three: the range, a copy, a spare).
 */
static inline size_t ph_len(enum h_kind kind)
{
	switch (kind) {
	case H_4K:
		return 64 * PG;
	case H_THP:
	case H_HUGETLB_2M:
		return 2 * h_page_size(kind);
	case H_HUGETLB_1G:
		return GIB;
	}
	return 64 * PG;
}

/*
 * The step between the 4 KiB pages a test looks at one by one: all of
 * them, except in a 1 GiB page (262144 queries would take seconds through
 * the daemon): one per 2 MiB, and ph_last() as well.
 */
static inline size_t ph_step(enum h_kind kind)
{
	return kind == H_HUGETLB_1G ? 2 * MIB : PG;
}

/* The page after off that a test looks at, or len when done. */
static inline size_t ph_next(enum h_kind kind, size_t len, size_t off)
{
	if (off + PG >= len)
		return len;
	return off + ph_step(kind) < len ? off + ph_step(kind) : len - PG;
}

#define ph_for_each_page(off, kind, len)                                      \
	for (size_t off = 0; off < (len); off = ph_next(kind, len, off))

static inline struct cg_stats ph_stats(struct cg *cg)
{
	struct cg_stats s;
	int ret = cg_stats(cg, &s, sizeof(s));

	ck_assert_msg(ret == 0, "cg_stats: %s", cg_strerror(ret));
	return s;
}

static inline struct cg_page_info ph_query(struct cg *cg, const void *p)
{
	struct cg_page_info info;
	int ret = cg_query(cg, p, &info, sizeof(info));

	ck_assert_msg(ret == 0, "cg_query(%p): %s", p, cg_strerror(ret));
	return info;
}

/*
 * The kernel's word on whether the page at p is exclusive to us: 1, 0,
 * or -1 when it cannot be read.  Pagemap's "mapped once" (bit 56) can only
 * convict; kpageflags' PageAnonExclusive (root) decides.  Bit 56 reads 0
 * for every 1 GiB page on 6.18, so there only kpageflags counts.  Not for
 * PTE-mapped subpages of a THP: kpageflags shows the head's flag there.
 */
static inline int ph_kernel_exclusive(const void *p, enum h_kind kind)
{
	struct h_kpage k = h_kpage(p);

	if (!k.present)
		return 0;
	if (kind != H_HUGETLB_1G && !k.mapped_once)
		return 0;
	if (k.anon_exclusive >= 0)
		return k.anon_exclusive;
	return kind == H_HUGETLB_1G ? -1 : 1;
}

/* The frame of the page at p, or 0 when frames cannot be read (not root). */
static inline uint64_t ph_pfn(const void *p)
{
	return h_kpage(p).pfn;
}

/*
 * A fork that runs no atfork handler (so cowguard is told of it by its fork
 * event alone); the child waits for a byte, then exits.
 */
static inline pid_t raw_fork_waiting(int *go)
{
	int fds[2];
	pid_t pid;

	if (pipe(fds))
		return -1;
	pid = (pid_t)syscall(SYS_fork);
	if (pid == 0) {
		char c;

		close(fds[1]);
		/* Nothing but raw syscalls here: no handler ran for us. */
		_exit(read(fds[0], &c, 1) == 1 ? 0 : 2);
	}
	close(fds[0]);
	*go = fds[1];
	return pid;
}

static inline int raw_fork_release(pid_t pid, int go)
{
	int status = -1;

	if (write(go, "g", 1) != 1)
		return -1;
	close(go);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return status;
}

#endif
