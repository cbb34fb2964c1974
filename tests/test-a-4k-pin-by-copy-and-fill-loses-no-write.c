// SPDX-License-Identifier: MIT
/*
 * In embedded mode, a read-only pin unshares runs of 4 KiB pages a fork
 * left shared by copying them out, dropping them and filling them back
 * with UFFDIO_COPY (lib/engine/fill.c): the pages are then the process's
 * alone by construction.  Between the drop and the fill the run is a
 * hole: a write that landed in the old page after the copy would be lost,
 * a read of the hole would see zeros.
 *
 * A transaction test (tests/transact.h), round after round: writer threads
 * stamp sequence numbers into every page and a reader checks that no word
 * is ever zero, while the main thread forks a child (sharing every page)
 * and pins the whole range.  After each round every page must hold what
 * its writer stamped last, be exclusive in the kernel, the audit be clean,
 * and a write to a page cowguard calls protected be seen.  The rounds must
 * have filled some pages (unshare_fills), or the test proves nothing.
 *
 * Bugs this catches: a write lost between the copy and the drop (writes
 * not held: no private protection), a reader seeing the hole (no
 * MODE_MISSING), a page claimed exclusive that the child still maps, the
 * protection not put back after the fill (a write after the pin unseen).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "kernel/compat.h"
#include "kernel/uffd.h"
#include "pin-util.h"
#include "transact.h"

#define LEN (8 * MIB)
#define ROUNDS 8

/* Whether a private uffd can protect holes (6.4+), as the fill needs. */
static bool kernel_can_fill(void)
{
	uint64_t got = 0;
	int fd = cg__uffd_create();
	bool ok;

	if (fd < 0)
		return false;
	ok = !cg__uffd_api(fd, UFFD_FEATURE_WP_UNPOPULATED, &got) &&
	     (got & UFFD_FEATURE_WP_UNPOPULATED);
	close(fd);
	return ok;
}

/* A page cowguard calls protected. */
static bool protected(struct cg *cg, char *page)
{
	return ph_query(cg, page).wp;
}

static void round_once(struct cg *cg, struct shared_state *s, int round)
{
	char *p = h_map(H_4K, LEN, 'A');
	struct cg_pin *pin = NULL;
	struct h_waiter child;
	int ret;

	memset(s->last, 0, sizeof(s->last));
	s->pages = LEN / PG;
	atomic_store(&s->p, p);
	ck_assert_int_eq(cg_register(cg, p, LEN, 0), 0);
	child = h_fork_waiting(p, 'A');
	go_all(s);
	ret = cg_pin(cg, p, LEN, CG_PIN_RO, &pin);
	park_all(s);
	ck_assert_msg(ret == 0, "round %d: cg_pin: %s", round, cg_strerror(ret));
	for (size_t off = 0; off < LEN; off += PG)
		ck_assert_msg(ph_kernel_exclusive(p + off, H_4K) != 0,
			      "round %d: page %zu shared in the kernel after the "
			      "pin", round, off / PG);
	h_audit_clean(cg, p, LEN);
	check_no_write_lost(s, p, round);
	tx_writes_are_seen(cg, s, p, LEN, 16 * PG, protected, round);
	ck_assert_int_eq(cg_unpin(pin), 0);
	ck_assert_int_eq(h_release(&child), 0);
	ck_assert_int_eq(cg_unregister(cg, p, LEN), 0);
	munmap(p, LEN);
}

START_TEST(writes_and_reads_racing_a_4k_unshare_by_fill_are_neither_lost_nor_zero)
{
	struct shared_state *s = calloc(1, sizeof(*s));
	struct tx_threads t;
	uint64_t writes;
	struct cg_stats s0, s1;
	struct cg *cg = h_open(_i);

	ck_assert_ptr_nonnull(s);
	if (_i != H_EMBEDDED || h_wp_async(cg) || !kernel_can_fill() ||
	    !h_read_pins_unshare(NULL)) {
		h_skip("no 4 KiB unshare by fill here: embedded mode on the "
		       "fault path only, with WP_UNPOPULATED (6.4+), where "
		       "read-only pins unshare (5.19+)");
		goto out;
	}
	s0 = ph_stats(cg);
	tx_start(s, &t);
	for (int round = 0; round < ROUNDS; round++)
		round_once(cg, s, round);
	writes = tx_stop(s, &t);
	s1 = ph_stats(cg);
	printf("%s: %llu reads, %llu writes, %llu pages filled of %d\n",
	       h_mode_name(_i), (unsigned long long)atomic_load(&s->reads),
	       (unsigned long long)writes,
	       (unsigned long long)(s1.unshare_fills - s0.unshare_fills),
	       ROUNDS * (int)(LEN / PG));
	ck_assert_uint_eq(atomic_load(&s->zeros_seen), 0);
	ck_assert_uint_gt(s1.unshare_fills - s0.unshare_fills, 0);
out:
	atomic_store(&s->stop, true);
	cg_close(cg);
	free(s);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("A 4 KiB pin by copy and fill loses no write");
	TCase *tc = tcase_create("fill");

	h_timeout(tc, 240);
	h_add_modes(tc, writes_and_reads_racing_a_4k_unshare_by_fill_are_neither_lost_nor_zero);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
