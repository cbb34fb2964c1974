// SPDX-License-Identifier: MIT
/*
 * cg_vmsplice() hands the pipe the pages the parent goes on writing.
 *
 * Without cowguard the kernel does not protect this path (the control
 * case asserts it, so the test proves something): vmsplice takes plain page
 * references, which are never unshared, and after a fork the parent's next
 * write replaces a page the pipe still holds: the reader gets the old data.
 * With cg_vmsplice() the pages are made exclusive first (pagemap, kpageflags
 * and the engine agree), the parent's write lands in the very frame the
 * pipe holds, the pipe reads the parent's data, the child keeps its own,
 * and cg_unpin() finds nothing replaced.  While pinned the range is
 * MADV_DONTFORK: a child forked then has no mapping there (SIGSEGV) and the
 * parent's pin stays good.  An application that undoes that
 * (MADV_DOFORK), forks and writes gets a loud -ENOTRECOVERABLE, counted.
 *
 * Page kinds: 4 KiB, THP and hugetlb 2 MiB (not 1 GiB: each case needs a
 * copy and a spare, more than the harness's pool of three gigantic pages).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cowguard/splice.h>

#include "harness.h"
#include "pin-util.h"
#include "wire/protocol.h"

/*
 * What a case maps: 2 MiB (512 small pages, one THP, one hugetlb page);
 * hugetlb gets two pages where a part outside the pin is needed.
 */
static size_t map_len(enum h_kind kind, bool outside)
{
	return kind == H_HUGETLB_2M && outside ? 4 * MIB : 2 * MIB;
}

/* The span cg_vmsplice() pins for the first 4 KiB: a page, or a huge one. */
static size_t pinned_len(enum h_kind kind)
{
	return kind == H_HUGETLB_2M ? 2 * MIB : PG;
}

/* Read one page from the pipe; returns its first byte, asserting it uniform. */
static char read_page(int fd)
{
	char *buf = malloc(PG);
	ssize_t got = 0;
	char c;

	ck_assert_ptr_nonnull(buf);
	while (got < (ssize_t)PG) {
		ssize_t n = read(fd, buf + got, PG - (size_t)got);

		ck_assert_msg(n > 0, "read from the pipe: %zd (%s)", n,
			      strerror(errno));
		got += n;
	}
	c = buf[0];
	for (size_t i = 1; i < PG; i++)
		ck_assert_msg(buf[i] == c, "pipe byte %zu is %c, byte 0 %c", i,
			      buf[i], c);
	free(buf);
	return c;
}

/* Map and fill, or skip: NULL when the kind cannot be had. */
static char *map_kind(enum h_kind kind, size_t len)
{
	char *p = h_map(kind, len, 'A');

	if (p && kind == H_THP && h_pmd_mapped(p) == 0) {
		h_skip("THP: the chunk is not PMD-mapped");
		munmap(p, len);
		return NULL;
	}
	return p;
}

/* What a case works on: memory of one kind, a handle over it, a pipe. */
struct fixture {
	enum h_kind kind;
	size_t len;
	char *p;
	struct cg *cg;		/* NULL: the kernel alone */
	int fds[2];
};

/*
 * Map len bytes of kind, filled with 'A', make sure the hugetlb pool can
 * take copies more units, open mode's handle and register the memory
 * (mode < 0: no cowguard), make the pipe.  False after a skip.
 */
static bool setup(struct fixture *f, int mode, enum h_kind kind, size_t len,
		  unsigned long copies)
{
	*f = (struct fixture){ .kind = kind, .len = len };
	f->p = map_kind(kind, len);
	if (!f->p)
		return false;
	if (copies && !h_hugetlb_room(kind, copies)) {
		munmap(f->p, len);
		return false;
	}
	if (mode >= 0) {
		f->cg = h_open(mode);
		ck_assert_int_eq(cg_register(f->cg, f->p, len, 0), 0);
	}
	ck_assert_int_eq(pipe(f->fds), 0);
	return true;
}

static void teardown(struct fixture *f)
{
	if (f->cg)
		cg_close(f->cg);
	close(f->fds[0]);
	close(f->fds[1]);
	munmap(f->p, f->len);
}

/* Splice the first 4 KiB of f's memory with cowguard: the pin. */
static struct cg_pin *splice_first_page(struct fixture *f)
{
	struct cg_pin *pin = NULL;

	ck_assert_int_eq(cg_vmsplice(f->cg, f->fds[1],
				     &(struct iovec){ f->p, PG }, 1, 0, &pin),
			 (ssize_t)PG);
	ck_assert_ptr_nonnull(pin);
	return pin;
}

/*
 * The control: no cowguard, the kernel alone.  If this ever fails, the
 * kernel unshares for vmsplice and the other cases prove nothing new.
 */
START_TEST(without_cowguard_the_pipe_reads_what_the_page_held_before_the_write)
{
	enum h_kind kind = (enum h_kind)_i;
	struct fixture f;
	struct h_waiter w;

	/* The parent's write copies one unit. */
	if (!setup(&f, -1, kind, map_len(kind, false), 1))
		return;
	w = h_fork_waiting(f.p, 'A');
	ck_assert_int_eq(vmsplice(f.fds[1], &(struct iovec){ f.p, PG }, 1, 0),
			 (ssize_t)PG);
	memset(f.p, 'B', PG);
	ck_assert_msg(read_page(f.fds[0]) == 'A',
		      "%s: the pipe read the parent's write without cowguard: "
		      "this kernel protects vmsplice (update KERNEL-FACTS.md)",
		      h_kind_name(kind));
	ck_assert_int_eq(f.p[0], 'B');
	ck_assert_int_eq(h_release(&w), 0);
	teardown(&f);
}
END_TEST

/*
 * The main case.  Bugs it catches: no pin before vmsplice (the pipe reads
 * 'A'), a page left shared (kernel or engine), the write moved to another
 * frame, the child's data touched, a false violation at unpin, the range
 * left MADV_DONTFORK after the unpin, copies miscounted.
 */
START_TEST(cg_vmsplice_after_fork_gives_the_pipe_the_parents_write)
{
	enum h_kind kind = H_KIND(_i);
	size_t plen = pinned_len(kind);
	struct cg_stats s0, s1, s2;
	struct cg_pin *pin;
	struct fixture f;
	struct h_waiter w;
	uint64_t pfn;

	/* The pin copies the shared unit; the parent's write then copies none. */
	if (!setup(&f, H_MODE(_i), kind, map_len(kind, false), 1))
		return;
	w = h_fork_waiting(f.p, 'A');
	ck_assert_int_eq(ph_kernel_exclusive(f.p, kind), 0);
	s0 = ph_stats(f.cg);

	pin = splice_first_page(&f);
	s1 = ph_stats(f.cg);
	/* The pinned span is exclusive for the kernel and the engine. */
	for (size_t off = 0; off < plen; off += PG) {
		struct cg_page_info q = ph_query(f.cg, f.p + off);

		ck_assert_msg(ph_kernel_exclusive(f.p + off, kind) != 0,
			      "page %zu still shared in the kernel after "
			      "cg_vmsplice (mapped once %d)", off / PG,
			      h_kpage(f.p + off).mapped_once);
		/* Before 5.19 a pinned page stays unprotected (lib/engine/pins.c). */
		ck_assert_msg(q.present && q.exclusive &&
			      q.wp == h_read_pins_unshare(NULL) && q.pins == 1,
			      "page %zu: present %d exclusive %d wp %d pins %u",
			      off / PG, q.present, q.exclusive, q.wp, q.pins);
	}
	if (plen < f.len)
		ck_assert_uint_eq(ph_query(f.cg, f.p + plen).pins, 0);
	ck_assert_uint_eq(s1.pins, 1);
	ck_assert_uint_eq(s1.unshare_copies - s0.unshare_copies, plen / PG);
	/* A pipe holds plain references: the span is kept out of children. */
	ck_assert_int_eq(h_vma_flag(f.p, "dc"), 1);
	if (H_MODE(_i) == H_DAEMON) {
		struct cg__status_pin sp;

		ck_assert_int_eq(h_daemon_pin(getpid(), 0, &sp), 1);
		ck_assert_str_eq(sp.consumer, "vmsplice");
		ck_assert(sp.start == (uintptr_t)f.p && sp.len == plen &&
			  sp.flags == CG_PIN_RO);
	}
	h_audit_clean(f.cg, f.p, f.len);
	pfn = ph_pfn(f.p);

	memset(f.p, 'B', PG);
	ck_assert_msg(ph_pfn(f.p) == pfn, "the write moved the page from frame "
		      "%#llx to %#llx", (unsigned long long)pfn,
		      (unsigned long long)ph_pfn(f.p));
	s2 = ph_stats(f.cg);
	ck_assert_uint_eq(s2.unshare_copies, s1.unshare_copies);
	ck_assert_msg(read_page(f.fds[0]) == 'B', "%s, %s: the pipe read stale data",
		      h_mode_name(H_MODE(_i)), h_kind_name(kind));

	/* Drained: the pin checks out and the range may be forked again. */
	ck_assert_int_eq(cg_unpin(pin), 0);
	s2 = ph_stats(f.cg);
	ck_assert_uint_eq(s2.pins, 0);
	ck_assert_uint_eq(s2.pin_violations, s0.pin_violations);
	ck_assert_int_eq(h_vma_flag(f.p, "dc"), 0);
	ck_assert_msg(h_release(&w) == 0, "the child lost its own data");
	h_audit_clean(f.cg, f.p, f.len);
	teardown(&f);
}
END_TEST

struct toucher {
	const volatile char *outside, *pinned;
};

/* 5: the unpinned part is not ours; else SIGSEGV on the pinned part. */
static int touch_both(void *arg)
{
	struct toucher *t = arg;
	struct rlimit none = { 0, 0 };

	setrlimit(RLIMIT_CORE, &none);
	signal(SIGSEGV, SIG_DFL);	/* not a sanitizer's report and exit 1 */
	if (*t->outside != 'A')
		return 5;
	return *t->pinned == 'A' ? 0 : 6;
}

/*
 * Bugs it catches: MADV_DONTFORK missing (the child reads the pinned page:
 * exit 0, and the parent's write would then replace the pipe's page), the
 * engine marking the pinned page shared at fork (or the kernel sharing it),
 * the pin broken by the fork.
 */
START_TEST(a_fork_while_pinned_gives_the_child_no_mapping_and_keeps_the_pin)
{
	enum h_kind kind = H_KIND(_i);
	size_t plen = pinned_len(kind);
	struct cg_pin *pin;
	struct cg_stats s0;
	struct fixture f;
	uint64_t pfn;
	int status;

	if (!setup(&f, H_MODE(_i), kind, map_len(kind, true), 0))
		return;
	s0 = ph_stats(f.cg);
	pin = splice_first_page(&f);
	pfn = ph_pfn(f.p);

	status = h_wait(h_fork(touch_both, &(struct toucher){ f.p + f.len - 1, f.p }));
	ck_assert_msg(status == 128 + SIGSEGV, "the child touching the pinned "
		      "page exited %d, not SIGSEGV (5: no data outside the pin)",
		      status);
	ck_assert_uint_eq(ph_stats(f.cg).fork_events, s0.fork_events + 1);
	ck_assert_int_eq(ph_kernel_exclusive(f.p, kind), 1);
	ck_assert_int_eq(ph_query(f.cg, f.p).exclusive, 1);
	h_audit_clean(f.cg, f.p, f.len);

	memset(f.p, 'B', PG);
	ck_assert_uint_eq(ph_pfn(f.p), pfn);
	ck_assert_int_eq(read_page(f.fds[0]), 'B');
	ck_assert_int_eq(cg_unpin(pin), 0);
	ck_assert_uint_eq(ph_stats(f.cg).pin_violations, s0.pin_violations);
	ck_assert_uint_eq(ph_query(f.cg, f.p + plen - PG).pins, 0);
	h_audit_clean(f.cg, f.p, f.len);
	teardown(&f);
}
END_TEST

/*
 * The opposite must be loud: the application undoes the MADV_DONTFORK,
 * forks, writes: the pipe's page is replaced (the pipe reads 'A') and
 * cg_unpin() says so.  Catches an unpin check that misses a replaced page.
 */
START_TEST(undoing_dontfork_then_fork_and_write_is_a_pin_violation)
{
	enum h_kind kind = H_KIND(_i);
	struct cg_pin *pin;
	struct cg_stats s0;
	struct fixture f;
	struct h_waiter w;

	/* The parent's write after the fork copies the pinned unit. */
	if (!setup(&f, H_MODE(_i), kind, map_len(kind, false), 1))
		return;
	s0 = ph_stats(f.cg);
	pin = splice_first_page(&f);
	ck_assert_int_eq(madvise(f.p, pinned_len(kind), MADV_DOFORK), 0);
	w = h_fork_waiting(f.p, 'A');
	memset(f.p, 'B', PG);
	ck_assert_int_eq(read_page(f.fds[0]), 'A');
	ck_assert_int_eq(cg_unpin(pin), -ENOTRECOVERABLE);
	ck_assert_uint_eq(ph_stats(f.cg).pin_violations, s0.pin_violations + 1);
	ck_assert_uint_eq(ph_stats(f.cg).pins, 0);
	ck_assert_int_eq(h_release(&w), 0);
	h_audit_clean(f.cg, f.p, f.len);
	teardown(&f);
}
END_TEST

/*
 * Memory only read so far maps the shared zero page (4 KiB, or the huge
 * zero page for THP): plain vmsplice hands the pipe that page, and the
 * write that follows gets a page of its own: the pipe reads zeros.
 * cg_vmsplice() gives the range pages of its own first.  4 KiB and THP;
 * the control runs in the same case, unregistered.
 */
START_TEST(a_page_only_read_so_far_is_not_spliced_as_the_zero_page)
{
	enum h_kind kind = H_KIND(_i);
	size_t len = 2 * MIB;
	char *p = h_map(kind, len, -1), *q = h_map(kind, len, -1);
	struct cg_pin *pin = NULL;
	struct cg *cg;
	int fds[2];

	if (!p || !q)
		return;
	ck_assert_int_eq(pipe(fds), 0);
	ck_assert_int_eq(p[0] + q[0], 0);	/* read: the zero page */

	/*
	 * Mapped and not "mapped once": the zero page.  Some kernels never
	 * map it (seen here: a VM booted with pvm_no_zero_page=1 gives a read
	 * a page of its own); then there is nothing stale to show.
	 */
	if (h_kpage(q).present && !h_kpage(q).mapped_once) {
		ck_assert_int_eq(vmsplice(fds[1], &(struct iovec){ q, PG }, 1, 0),
				 (ssize_t)PG);
		memset(q, 'B', PG);
		ck_assert_msg(read_page(fds[0]) == 0, "without cowguard the pipe "
			      "read the write, not the zero page");
	} else {
		h_skip("%s: a read mapped a page of its own, not the zero page "
		       "(this kernel maps none): no control, cowguard still "
		       "checked", h_kind_name(kind));
	}

	cg = h_open(H_MODE(_i));
	ck_assert_int_eq(cg_register(cg, p, len, 0), 0);
	ck_assert_int_eq(cg_vmsplice(cg, fds[1], &(struct iovec){ p, PG }, 1, 0, &pin),
			 (ssize_t)PG);
	ck_assert_int_eq(ph_kernel_exclusive(p, kind), 1);
	memset(p, 'B', PG);
	ck_assert_int_eq(read_page(fds[0]), 'B');
	ck_assert_int_eq(cg_unpin(pin), 0);
	h_audit_clean(cg, p, len);
	cg_close(cg);
	close(fds[0]);
	close(fds[1]);
	munmap(p, len);
	munmap(q, len);
}
END_TEST

/* What is refused leaves nothing pinned and no MADV_DONTFORK behind. */
static void assert_nothing_pinned(struct cg *cg, char *p)
{
	ck_assert_uint_eq(ph_stats(cg).pins, 0);
	ck_assert_uint_eq(ph_query(cg, p).pins, 0);
	ck_assert_int_eq(h_vma_flag(p, "dc"), 0);
}

START_TEST(bad_arguments_are_refused_and_pin_nothing)
{
	struct cg_pin *pin = NULL;
	struct fixture f;
	struct iovec iov;
	int rd_fl, nul;
	char *q;

	if (!setup(&f, _i, H_4K, 16 * PG, 0))
		return;
	q = h_map(H_4K, PG, 'A');	/* not registered */
	ck_assert_ptr_nonnull(q);
	iov = (struct iovec){ f.p, PG };
	ck_assert_int_eq(cg_vmsplice(NULL, f.fds[1], &iov, 1, 0, &pin), -EINVAL);
	ck_assert_int_eq(cg_vmsplice(f.cg, f.fds[1], NULL, 1, 0, &pin), -EINVAL);
	ck_assert_int_eq(cg_vmsplice(f.cg, f.fds[1], &iov, 1, 0, NULL), -EINVAL);
	ck_assert_int_eq(cg_vmsplice(f.cg, f.fds[1], &iov, 0, 0, &pin), -EINVAL);
	ck_assert_int_eq(cg_vmsplice(f.cg, f.fds[1], &iov, IOV_MAX + 1UL, 0, &pin), -EINVAL);
	ck_assert_int_eq(cg_vmsplice(f.cg, f.fds[1], &iov, 1, 0x100, &pin), -EINVAL);
	ck_assert_int_eq(cg_vmsplice(f.cg, f.fds[1], &(struct iovec){ f.p, 0 }, 1, 0, &pin),
			 -EINVAL);
	ck_assert_int_eq(cg_vmsplice(f.cg, f.fds[1],
				     &(struct iovec){ (void *)(UINTPTR_MAX - 10), 20 },
				     1, 0, &pin), -EOVERFLOW);
	/* The read end would copy into our memory: not a consumer. */
	ck_assert_int_eq(cg_vmsplice(f.cg, f.fds[0], &iov, 1, 0, &pin), -EBADF);
	ck_assert_int_eq(cg_vmsplice(f.cg, -1, &iov, 1, 0, &pin), -EBADF);
	nul = open("/dev/null", O_WRONLY | O_CLOEXEC);
	ck_assert_int_ge(nul, 0);
	ck_assert_int_eq(cg_vmsplice(f.cg, nul, &iov, 1, 0, &pin), -EBADF);
	close(nul);
	ck_assert_int_eq(cg_vmsplice(f.cg, f.fds[1], &(struct iovec){ q, PG }, 1, 0, &pin),
			 -ENOENT);
	/* Partly registered: the end is outside. */
	ck_assert_int_eq(cg_vmsplice(f.cg, f.fds[1], &(struct iovec){ f.p + f.len - 8, 16 },
				     1, 0, &pin), -ENOENT);
	ck_assert_ptr_null(pin);
	assert_nothing_pinned(f.cg, f.p);

	/* vmsplice's own failure: a full non-blocking pipe unpins again. */
	rd_fl = fcntl(f.fds[1], F_GETFL);
	ck_assert_int_eq(fcntl(f.fds[1], F_SETFL, rd_fl | O_NONBLOCK), 0);
	while (write(f.fds[1], f.p, PG) > 0)
		;
	ck_assert_int_eq(cg_vmsplice(f.cg, f.fds[1], &iov, 1, SPLICE_F_NONBLOCK, &pin),
			 -EAGAIN);
	ck_assert_ptr_null(pin);
	assert_nothing_pinned(f.cg, f.p);
	teardown(&f);
	munmap(q, PG);
}
END_TEST

/*
 * Unaligned buffers and several iovecs: the pin is rounded out to whole
 * pages and spans every iovec, gaps included (documented in splice.h).
 */
START_TEST(the_pin_spans_the_iovecs_rounded_out_to_pages)
{
	struct cg_pin *pin = NULL;
	struct iovec iov[2];
	char buf[PG + 10];
	struct fixture f;

	if (!setup(&f, _i, H_4K, 16 * PG, 0))
		return;
	iov[0] = (struct iovec){ f.p + PG + 100, 10 };
	iov[1] = (struct iovec){ f.p + 3 * PG + 5, PG };
	ck_assert_int_eq(cg_vmsplice(f.cg, f.fds[1], iov, 2, 0, &pin), (ssize_t)(PG + 10));
	for (size_t i = 0; i < 16; i++)
		ck_assert_msg(ph_query(f.cg, f.p + i * PG).pins == (i >= 1 && i <= 4),
			      "page %zu: %u pins", i, ph_query(f.cg, f.p + i * PG).pins);
	ck_assert_int_eq(h_vma_flag(f.p + PG, "dc"), 1);
	ck_assert_int_eq(h_vma_flag(f.p, "dc"), 0);
	ck_assert_int_eq(h_vma_flag(f.p + 5 * PG, "dc"), 0);
	ck_assert_int_eq(read(f.fds[0], buf, sizeof(buf)), (ssize_t)sizeof(buf));
	ck_assert_int_eq(cg_unpin(pin), 0);
	assert_nothing_pinned(f.cg, f.p + PG);
	teardown(&f);
}
END_TEST

/*
 * Small writes from one buffer: two splices of the same page hold two pins;
 * the page stays MADV_DONTFORK until the last is released.  Catches the
 * first unpin re-enabling fork of a page the pipe still references.
 */
START_TEST(two_splices_of_one_page_keep_it_out_of_children_until_both_are_released)
{
	struct cg_pin *a = NULL, *b = NULL;
	struct fixture f;
	char buf[200];

	if (!setup(&f, _i, H_4K, 4 * PG, 0))
		return;
	ck_assert_int_eq(cg_vmsplice(f.cg, f.fds[1], &(struct iovec){ f.p, 100 }, 1, 0, &a),
			 100);
	ck_assert_int_eq(cg_vmsplice(f.cg, f.fds[1], &(struct iovec){ f.p + 100, 100 }, 1,
				     0, &b), 100);
	ck_assert_uint_eq(ph_query(f.cg, f.p).pins, 2);
	ck_assert_int_eq(read(f.fds[0], buf, 100), 100);
	ck_assert_int_eq(cg_unpin(a), 0);
	ck_assert_uint_eq(ph_query(f.cg, f.p).pins, 1);
	ck_assert_int_eq(h_vma_flag(f.p, "dc"), 1);
	ck_assert_int_eq(read(f.fds[0], buf, 100), 100);
	ck_assert_int_eq(cg_unpin(b), 0);
	assert_nothing_pinned(f.cg, f.p);
	teardown(&f);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("vmsplice sees the parent's data");
	TCase *control = tcase_create("without cowguard");
	TCase *tc = tcase_create("cg_vmsplice");
	TCase *args = tcase_create("arguments");

	h_timeout(control, 30);
	h_timeout(tc, 30);
	h_timeout(args, 30);
	h_add_test(control,
		   without_cowguard_the_pipe_reads_what_the_page_held_before_the_write,
		   0, H_KINDS_SHARED);
	h_add_test(tc, cg_vmsplice_after_fork_gives_the_pipe_the_parents_write,
		   H_MODES, H_KINDS_SHARED);
	h_add_test(tc, a_fork_while_pinned_gives_the_child_no_mapping_and_keeps_the_pin,
		   H_MODES, H_KINDS_SHARED);
	h_add_test(tc, undoing_dontfork_then_fork_and_write_is_a_pin_violation,
		   H_MODES, H_KINDS_SHARED);
	h_add_test(tc, a_page_only_read_so_far_is_not_spliced_as_the_zero_page,
		   H_MODES, H_KINDS_SMALL);
	h_add_modes(args, bad_arguments_are_refused_and_pin_nothing);
	h_add_modes(args, the_pin_spans_the_iovecs_rounded_out_to_pages);
	h_add_modes(args, two_splices_of_one_page_keep_it_out_of_children_until_both_are_released);
	suite_add_tcase(s, control);
	suite_add_tcase(s, tc);
	suite_add_tcase(s, args);
	return h_main(s, H_NEED_DAEMON | H_NEED_HUGETLB);
}
