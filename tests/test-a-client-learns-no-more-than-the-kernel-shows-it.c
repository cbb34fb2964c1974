// SPDX-License-Identifier: MIT
/*
 * The daemon reads frames and kpageflags, which the kernel keeps from
 * users other than root.  What it tells a client must not depend on them
 * unless the client is root: a client that is not root is audited by
 * pagemap's "mapped once" bit, which it could read itself (truth
 * CG_TRUTH_MAPCOUNT), in daemon mode as in embedded mode; root's client by
 * PageAnonExclusive where the kernel has it.
 *
 * Runs meaningfully in both host lanes: as root (kpageflags) and in the
 * unprivileged lane (pagemap, against the lane's root daemon).
 *
 * Bug this catches: a root daemon auditing an unprivileged client by
 * kpageflags, telling it PageAnonExclusive of its pages (issue 11, row 11).
 */
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"

#define LEN (16 * 4096)

START_TEST(a_client_is_audited_by_what_the_kernel_shows_it)
{
	char *p = h_map(H_4K, LEN, 'A');
	struct cg_audit_report a;
	struct cg *cg = h_open(_i);

	ck_assert_int_eq(cg_register(cg, p, LEN, 0), 0);
	p[0] = 'B';
	ck_assert_int_eq(cg_audit(cg, p, LEN, &a, sizeof(a)), 0);
	ck_assert_msg(a.unsafe == 0 && a.conservative == 0,
		      "audit: %llu unsafe, %llu conservative",
		      (unsigned long long)a.unsafe,
		      (unsigned long long)a.conservative);
	if (geteuid() != 0)
		ck_assert_msg(a.truth == CG_TRUTH_MAPCOUNT,
			      "%s mode, uid %u: audited by truth %d, not by "
			      "pagemap: the daemon told a user what the kernel "
			      "keeps from them", h_mode_name(_i),
			      (unsigned)geteuid(), a.truth);
	else
		ck_assert_int_eq(a.truth, h_truth_is_kpageflags()
						  ? CG_TRUTH_KPAGEFLAGS
						  : CG_TRUTH_MAPCOUNT);
	cg_close(cg);
	munmap(p, LEN);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("a client learns no more than the kernel shows it");
	TCase *tc = tcase_create("truth");

	h_timeout(tc, 20);
	h_add_modes(tc, a_client_is_audited_by_what_the_kernel_shows_it);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
