// SPDX-License-Identifier: MIT
/*
 * A THP unshare by move hands chunks to the client (lib/engine/move.c):
 * unregistered from the daemon's uffd until the client says the copy is in
 * (CG_OP_MOVE).  A hostile client speaks the protocol itself and lies:
 * names another range, says "done" without copying anything, says it
 * with nothing handed over, or never says it.
 *
 * Checked, through a daemon: a wrong range or nothing handed over is
 * refused (-EINVAL) and leaves the run where it was; while handed over the
 * run claims nothing (neither exclusive nor protected, dirty); a "done"
 * with no copy made is judged by the kernel, so the chunks the child still
 * shares are not called exclusive (the audit finds nothing unsafe); a run
 * never taken back is taken back at the next pin, which then succeeds and
 * leaves every page exclusive; the child's copy is untouched throughout.
 *
 * Bugs this catches: a run settled on the client's word (a shared page
 * called exclusive), a range not checked (the run re-registered over the
 * wrong pages, or two runs at once), a handover that leaves the run
 * claiming what it was, a run held for good by a client that went quiet.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "client.h"
#include "handle.h"
#include "harness.h"
#include "wire/protocol.h"

#define CHUNK (2 * MIB)
#define LEN (2 * CHUNK)

/* The raw pin request cg_pin() makes: its status and answer. */
static int raw_pin(struct cg *cg, const char *p, struct cg__rep *rep)
{
	struct cg__req req;

	cg__req_init(&req, CG_OP_PIN);
	req.addr = (uintptr_t)p;
	req.len = LEN;
	req.flags = CG_PIN_RO;
	strncpy(req.name, "liar", sizeof(req.name) - 1);
	memset(rep, 0, sizeof(*rep));
	return cg__call(cg, &req, rep);
}

static int raw_move_done(struct cg *cg, const char *p, uint64_t len)
{
	struct cg__req req;
	struct cg__rep rep = { 0 };

	cg__req_init(&req, CG_OP_MOVE);
	req.addr = (uintptr_t)p;
	req.len = len;
	return cg__call(cg, &req, &rep);
}

/* Handed over: the run's pages claim nothing. */
static void assert_claims_nothing(struct cg *cg, const char *p)
{
	struct cg_page_info info;

	for (size_t off = 0; off < LEN; off += CHUNK / 2) {
		ck_assert_int_eq(cg_query(cg, p + off, &info, sizeof(info)), 0);
		ck_assert_msg(!info.exclusive && !info.wp && info.dirty,
			      "handed over, +%zu: exclusive %d wp %d dirty %d",
			      off, info.exclusive, info.wp, info.dirty);
	}
}

/* Pinned raw until the daemon hands the whole range over for a move. */
static bool handed_over(struct cg *cg, const char *p)
{
	struct cg__rep rep;
	int ret = raw_pin(cg, p, &rep);

	if (ret == -EAGAIN && rep.u.pinned.move_len == LEN &&
	    rep.u.pinned.bad_addr == (uintptr_t)p)
		return true;
	h_skip("the pin asked for no move of the whole range (status %d, "
	       "move_len %llu): no THP to be had?", ret,
	       (unsigned long long)rep.u.pinned.move_len);
	return false;
}

START_TEST(a_client_that_lies_about_a_move_gains_nothing)
{
	char *p = h_map(H_THP, LEN, 'A');
	struct h_check check = { .at = { p }, .len = LEN, .unit = 4096,
				 .expect = 'A' };
	struct cg_audit_report audit;
	struct h_waiter child;
	struct cg_pin *pin;
	struct cg *cg;

	if (!p)
		return;
	cg = h_open(H_DAEMON);
	if (!h_thp_moves(cg) || !h_thp_pmd_mapped(p, LEN)) {
		h_skip("no THP unshare by move here (UFFD_FEATURE_MOVE, on the "
		       "fault path, a PMD-mapped THP)");
		goto out;
	}
	ck_assert_int_eq(cg_register(cg, p, LEN, 0), 0);
	child = h_fork_checking(&check);
	ck_assert_int_eq(raw_move_done(cg, p, LEN), -EINVAL);

	if (!handed_over(cg, p))
		goto release;
	assert_claims_nothing(cg, p);
	/* Another range than the one handed over: refused, run kept. */
	ck_assert_int_eq(raw_move_done(cg, p, CHUNK), -EINVAL);
	ck_assert_int_eq(raw_move_done(cg, p + CHUNK, CHUNK), -EINVAL);
	assert_claims_nothing(cg, p);
	/* "Done", with nothing copied: the child still shares every page. */
	ck_assert_int_eq(raw_move_done(cg, p, LEN), 0);
	ck_assert_int_eq(cg_audit(cg, p, LEN, &audit, sizeof(audit)), 0);
	ck_assert_uint_eq(audit.unsafe, 0);
	ck_assert_uint_eq(audit.pages, LEN / 4096);

	/* Handed over again, and never taken back by the client. */
	if (!handed_over(cg, p))
		goto release;
	ck_assert_int_eq(cg_pin(cg, p, LEN, CG_PIN_RO, &pin), 0);
	h_audit_clean(cg, p, LEN);
	ck_assert_int_eq(cg_unpin(pin), 0);
release:
	ck_assert_int_eq(h_release(&child), 0);
out:
	cg_close(cg);
	munmap(p, LEN);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("a client that lies about a move gains nothing");
	TCase *tc = tcase_create("move");

	h_timeout(tc, 60);
	h_add(tc, a_client_that_lies_about_a_move_gains_nothing);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
