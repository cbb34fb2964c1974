// SPDX-License-Identifier: MIT
/*
 * Where a read-only pin does not unshare (Linux before 5.19), cg_pin()
 * unshares by write faults in the process and leaves the pinned pages
 * unprotected while pinned.  This suite asks for that handling
 * (COWGUARD_KERNEL=pre-5.19) so that it runs on every kernel; in the 5.10
 * guest the probe chooses it by itself and the other pin suites run it too.
 *
 * After fork (the child waits), a read-only pin leaves every page mapped
 * once in the kernel, without the uffd-wp bit, exclusive and dirty in the
 * engine, and counts a write-unshare per page.  A pipe fed by a plain
 * vmsplice() after the pin reads what the parent wrote last (the write did
 * not copy the page away from the pipe), the parent's writes raise no
 * write-protect fault, a fork while pinned leaves the pinned pages
 * unprotected (protecting them would make the next write copy them before
 * 5.19), the child keeps its data, and cg_unpin() finds nothing replaced.
 * With no fork at all, a page given to a pipe by cg_vmsplice() shows the
 * pipe the next write.
 *
 * Bugs this catches: a read-only-pin unshare trusted where it does
 * nothing (the pin's pages stay shared: unsafe, and the pipe reads the old
 * data after the parent's write), write protection left on or put back on
 * a pinned page (before 5.19 the next write copies it away from its
 * consumer), the write-unshare changing content or touching the child.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cowguard/splice.h>

#include "harness.h"
#include "pin-util.h"

#define NPAGES 64

static bool forced_handling_possible(int mode)
{
	/* The unprivileged lane's daemon was not started with our variable. */
	return mode == H_EMBEDDED ||
	       h_have_own_daemon("a daemon started with COWGUARD_KERNEL=pre-5.19");
}

static int fork_and_exit(void *arg)
{
	(void)arg;
	return 0;
}

/* vmsplice one page of p into a new pipe; returns the read end. */
static int splice_page(const char *p)
{
	struct iovec iov = { (void *)p, PG };
	int fds[2];

	ck_assert_int_eq(pipe(fds), 0);
	ck_assert_int_eq(vmsplice(fds[1], &iov, 1, 0), (ssize_t)PG);
	close(fds[1]);
	return fds[0];
}

static void assert_pinned_unprotected(struct cg *cg, const char *p, size_t len,
				      const char *when)
{
	for (size_t off = 0; off < len; off += PG) {
		struct cg_page_info q = ph_query(cg, p + off);
		struct h_kpage k = h_kpage(p + off);

		ck_assert_msg(k.present && k.mapped_once && !k.uffd_wp,
			      "%s, page %zu: present %d mapped once %d uffd-wp %d",
			      when, off / PG, k.present, k.mapped_once, k.uffd_wp);
		ck_assert_msg(q.present && q.exclusive && q.dirty && !q.wp &&
			      q.pins == 1,
			      "%s, page %zu: present %d exclusive %d dirty %d wp %d "
			      "pins %u", when, off / PG, q.present, q.exclusive,
			      q.dirty, q.wp, q.pins);
	}
}

START_TEST(a_pin_unshares_by_write_and_its_consumer_sees_the_parents_data)
{
	enum h_kind kind = H_KIND(_i);
	size_t len = kind == H_THP ? 2 * MIB : NPAGES * PG;
	char *p = h_map(kind, len, 'A');
	struct cg_stats s0, s1, s2;
	struct cg_pin *pin = NULL;
	struct h_waiter child;
	char got[PG];
	struct cg *cg;
	int ret, rd;

	if (!p || !forced_handling_possible(H_MODE(_i)))
		return;
	cg = h_open(H_MODE(_i));
	ck_assert_int_eq(cg_register(cg, p, len, 0), 0);
	child = h_fork_waiting(p, 'A');
	ck_assert_int_eq(h_kpage(p).mapped_once, 0);

	s0 = ph_stats(cg);
	ret = cg_pin(cg, p, len, CG_PIN_RO, &pin);
	ck_assert_msg(ret == 0, "cg_pin: %s", cg_strerror(ret));
	s1 = ph_stats(cg);
	ck_assert_uint_eq(s1.unshare_writes - s0.unshare_writes, len / PG);
	assert_pinned_unprotected(cg, p, len, "after the pin");
	for (size_t off = 0; off < len; off += PG)
		ck_assert_int_eq(p[off], 'A');
	h_audit_clean(cg, p, len);

	/* A consumer holding a plain reference sees the parent's next write. */
	rd = splice_page(p);
	memset(p, 'B', PG);
	ck_assert_int_eq(read(rd, got, PG), (ssize_t)PG);
	ck_assert_msg(got[0] == 'B' && got[PG - 1] == 'B',
		      "the pipe read '%c': the write copied the pinned page away "
		      "from its consumer", got[0]);
	close(rd);
	for (size_t off = PG; off < len; off += PG)
		p[off] = 'B';
	s2 = ph_stats(cg);
	ck_assert_uint_eq(s2.wp_faults, s1.wp_faults);

	/* A fork while pinned protects nothing that is pinned. */
	ck_assert_int_eq(h_wait(h_fork(fork_and_exit, NULL)), 0);
	assert_pinned_unprotected(cg, p, len, "after a fork while pinned");

	ck_assert_int_eq(h_release(&child), 0);
	ck_assert_int_eq(cg_unpin(pin), 0);
	h_audit_clean(cg, p, len);
	cg_close(cg);
	munmap(p, len);
}
END_TEST

/*
 * No fork at all: an exclusive page handed to a pipe by cg_vmsplice(), then
 * written.  Before 5.19 a write-protected page that the pipe holds would be
 * copied away from it by that write (KERNEL-FACTS, "uffd-wp itself detaches
 * references on 5.10"): the pinned page must be left unprotected.
 */
START_TEST(a_page_given_to_a_pipe_without_any_fork_sees_the_next_write)
{
	enum h_kind kind = H_KIND(_i);
	size_t len = kind == H_THP ? 2 * MIB : NPAGES * PG;
	char *p = h_map(kind, len, 'A');
	struct cg_pin *pin = NULL;
	char got[PG];
	struct cg *cg;
	int fds[2];

	if (!p || !forced_handling_possible(H_MODE(_i)))
		return;
	cg = h_open(H_MODE(_i));
	ck_assert_int_eq(cg_register(cg, p, len, 0), 0);
	ck_assert(h_kpage(p).mapped_once);
	ck_assert_int_eq(pipe(fds), 0);
	ck_assert_int_eq(cg_vmsplice(cg, fds[1], &(struct iovec){ p, PG }, 1, 0,
				     &pin), (ssize_t)PG);
	memset(p, 'B', PG);
	ck_assert_int_eq(read(fds[0], got, PG), (ssize_t)PG);
	ck_assert_msg(got[0] == 'B' && got[PG - 1] == 'B',
		      "the pipe read '%c': the write copied the page away from it",
		      got[0]);
	ck_assert_int_eq(cg_unpin(pin), 0);
	h_audit_clean(cg, p, len);
	close(fds[0]);
	close(fds[1]);
	cg_close(cg);
	munmap(p, len);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pin unshares by write where read pins do not");
	TCase *tc = tcase_create("pre-5.19");

	/* Before the first cg_open() and the daemon's start: both read it. */
	setenv("COWGUARD_KERNEL", "pre-5.19", 1);
	h_timeout(tc, 30);
	h_add_test(tc, a_pin_unshares_by_write_and_its_consumer_sees_the_parents_data, H_MODES, H_KINDS_SMALL);
	h_add_test(tc, a_page_given_to_a_pipe_without_any_fork_sees_the_next_write, H_MODES, H_KINDS_SMALL);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
