// SPDX-License-Identifier: MIT
/*
 * fork() makes every populated page maybe-shared, on both sides, and the
 * next write in the parent makes its page exclusive again: the engine must
 * say so, and agree with the kernel's PageAnonExclusive all along.
 */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"

struct child_arg {
	volatile char *p;
	int pipe_rd;
};

/* The child holds its mapping until told to go, then checks its data. */
static int child_waits(void *arg)
{
	struct child_arg *c = arg;
	char go;

	if (read(c->pipe_rd, &go, 1) != 1)
		return 2;
	/* 0: our data; 3: the parent's write; 4: zeros (the page was taken). */
	return c->p[0] == 'A' ? 0 : c->p[0] == 'B' ? 3 : 4;
}

/*
 * Whether fork left a 1 GiB page ours alone (see below).  As root,
 * kpageflags says.  Without root nothing can tell (the daemon judges a
 * client that is not root by what the kernel shows that client), and the
 * audit counts the page unknowable.
 */
static bool fork_kept_it_exclusive(struct cg *cg, void *p, size_t len)
{
	struct cg_audit_report a;
	int k = h_kpage(p).anon_exclusive;

	if (k >= 0)
		return k == 1;
	return cg_audit(cg, p, len, &a, sizeof(a)) == 0 && a.truth == CG_TRUTH_KPAGEFLAGS &&
	       a.conservative > 0;
}

START_TEST(fork_marks_populated_pages_shared_and_a_write_makes_one_exclusive)
{
	enum h_kind kind = H_KIND(_i);
	size_t page = h_page_size(kind);
	/*
	 * Two units, so one stays shared after the write.  Not for 1 GiB:
	 * the parent's copy would need a third huge page, and a short pool
	 * makes the kernel take the child's page (SIGBUS in the child).
	 */
	size_t len = kind == H_HUGETLB_1G ? page : 2 * page;
	struct cg_page_info info;
	struct cg_stats stats;
	int fds[2], status;
	pid_t pid;
	struct h_region r;

	/* The parent's write after fork copies one unit. */
	if (!h_region_open(&r, H_MODE(_i), kind, len, 'A', 1))
		return;
	ck_assert_int_eq(cg_query(r.cg, r.p, &info, sizeof(info)), 0);
	ck_assert_msg(info.present && info.exclusive && info.wp,
		      "after registration: present %d exclusive %d wp %d "
		      "(kernel: exclusive %d, mapped once %d)",
		      info.present, info.exclusive, info.wp,
		      h_kpage(r.p).anon_exclusive, h_kpage(r.p).mapped_once);
	h_audit_clean(r.cg, r.p, len);

	ck_assert_int_eq(pipe(fds), 0);
	pid = h_fork(child_waits, &(struct child_arg){ r.p, fds[0] });

	if (kind == H_HUGETLB_1G && fork_kept_it_exclusive(r.cg, r.p, len)) {
		/*
		 * Measured on 6.18: after a FOLL_PIN read of a 1 GiB page (our
		 * unshare at registration), fork copies it for the child in
		 * about 1 run of 7, as if it might still be pinned.  Nothing
		 * shows that decision for 1 GiB pages: a conservative miss,
		 * never an unsafe one.
		 */
		struct cg_audit_report a;

		ck_assert_int_eq(cg_audit(r.cg, r.p, len, &a, sizeof(a)), 0);
		ck_assert_uint_eq(a.unsafe, 0);
		ck_assert_int_eq(write(fds[1], "g", 1), 1);
		status = h_wait(pid);
		/* 4: the child lost its page to the same 1 GiB pool race. */
		ck_assert_msg(status == 0 || status == 4, "child exited %d", status);
		h_skip("kernel copied the 1 GiB page at fork instead of sharing "
		       "it (%llu conservative)", (unsigned long long)a.conservative);
		cg_close(r.cg);
		munmap(r.p, len);
		return;
	}
	for (size_t off = 0; off < len; off += page) {
		ck_assert_int_eq(cg_query(r.cg, r.p + off, &info, sizeof(info)), 0);
		ck_assert_msg(info.present && !info.exclusive && info.wp,
			      "after fork, page %zu: present %d exclusive %d wp %d",
			      off / page, info.present, info.exclusive, info.wp);
		ck_assert_int_eq(h_kpage(r.p + off).anon_exclusive == 1, 0);
	}
	h_audit_clean(r.cg, r.p, len);
	ck_assert_int_eq(cg_stats(r.cg, &stats, sizeof(stats)), 0);
	ck_assert_uint_eq(stats.fork_events, 1);
	ck_assert_uint_eq(stats.pages_shared_by_fork, len / 4096);

	r.p[0] = 'B';	/* a write fault: copy (child alive), exclusive again */
	ck_assert_int_eq(cg_query(r.cg, r.p, &info, sizeof(info)), 0);
	ck_assert(info.present && info.exclusive && info.dirty);
	if (len > page) {
		ck_assert_int_eq(cg_query(r.cg, r.p + page, &info, sizeof(info)), 0);
		ck_assert(!info.exclusive);
	}
	h_audit_clean(r.cg, r.p, len);

	ck_assert_int_eq(write(fds[1], "g", 1), 1);
	status = h_wait(pid);
	h_audit_clean(r.cg, r.p, len);
	ck_assert_int_eq(r.p[0], 'B');
	if (status == 4 && kind == H_HUGETLB_1G) {
		/*
		 * Measured on 6.18 without cowguard too: the parent's COW of a
		 * 1 GiB page sometimes takes the child's page even with a spare
		 * one in the pool, and the child reads zeros.
		 */
		h_skip("kernel took the child's 1 GiB page on the parent's write "
		       "(happens without cowguard; pool of 2 gigantic pages)");
	} else {
		ck_assert_int_eq(status, 0);
	}
	h_region_close(&r);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("fork marks pages shared");
	TCase *tc = tcase_create("fork");

	h_timeout(tc, 30);
	h_add_modes_kinds(tc, fork_marks_populated_pages_shared_and_a_write_makes_one_exclusive);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON | H_NEED_HUGETLB);
}
