// SPDX-License-Identifier: MIT
/*
 * Where the uffd can move (6.8+), a read-only pin unshares a THP that a
 * fork left shared by copying it into a fresh THP and moving that in
 * (lib/engine/move.c, lib/move_unshare.c).  Between the copy and the move
 * the chunk is dropped: a write that landed in the old page after the copy
 * would be lost, and a read of the hole would see zeros.
 *
 * A transaction test, round after round: writer threads stamp sequence
 * numbers into a word of every page, a reader checks that no word it reads
 * is ever zero, and the main thread forks a child (sharing every THP) and
 * pins the whole range while they run.  After each round the writers
 * stop and every word must hold the last number its writer stamped; after
 * the pin every chunk must be exclusive in the kernel, every chunk counted
 * moved still one PMD, the audit clean, and a write to a whole chunk seen
 * (its protection put back).  Writes racing the pin split some chunks before they
 * are handed over (the write fault unshares a 4 KiB page, as the kernel
 * does); the rest are moved, and the rounds must move some.
 *
 * Bugs this catches: a write lost between copy and drop (writes not held),
 * a reader mapping the zero page in the hole (no MODE_MISSING), a THP
 * split by the unshare, a chunk claimed exclusive that the child still
 * shares (audit), the protection not put back (a write after the pin
 * unseen: the write-fault counter).
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "pin-util.h"

#define LEN (32 * MIB)
#define ROUNDS 12
#include "transact.h"

/*
 * A chunk one PMD maps after the pin, that cowguard calls protected (a
 * racing write may have lifted it since, seen), must be: the next write
 * there is seen.
 */
static bool whole_and_protected(struct cg *cg, char *chunk)
{
	return h_pmd_mapped(chunk) == 1 && ph_query(cg, chunk).wp;
}

/*
 * One round on a fresh range of whole THPs: fork, pin while the threads
 * run, check, unpin.  Returns the chunks moved in, or -1 after a skip.
 */
static int round_once(struct cg *cg, struct shared_state *s, int round)
{
	char *p = h_map(H_THP, LEN, 'A');
	struct cg_stats s0, s1;
	struct cg_pin *pin = NULL;
	struct h_waiter child;
	int ret, moved, whole = 0;

	if (!p || !h_thp_pmd_mapped(p, LEN))
		return -1;
	memset(s->last, 0, sizeof(s->last));
	s->pages = LEN / PG;
	atomic_store(&s->p, p);
	ck_assert_int_eq(cg_register(cg, p, LEN, 0), 0);
	child = h_fork_waiting(p, 'A');
	s0 = ph_stats(cg);
	go_all(s);
	ret = cg_pin(cg, p, LEN, CG_PIN_RO, &pin);
	park_all(s);
	ck_assert_msg(ret == 0, "round %d: cg_pin: %s", round, cg_strerror(ret));
	s1 = ph_stats(cg);
	moved = (int)((s1.unshare_moves - s0.unshare_moves) / (2 * MIB / PG));
	for (size_t off = 0; off < LEN; off += 2 * MIB) {
		ck_assert_msg(ph_kernel_exclusive(p + off, H_THP) != 0,
			      "round %d: chunk %zu shared in the kernel after "
			      "the pin", round, (size_t)(off / (2 * MIB)));
		whole += h_pmd_mapped(p + off) == 1;
	}
	/* A chunk moved in stays one PMD; one a racing write split does not. */
	ck_assert_msg(whole >= moved, "round %d: %d chunks moved in, %d whole",
		      round, moved, whole);
	h_audit_clean(cg, p, LEN);
	check_no_write_lost(s, p, round);
	tx_writes_are_seen(cg, s, p, LEN, 2 * MIB, whole_and_protected, round);
	ck_assert_int_eq(cg_unpin(pin), 0);
	ck_assert_int_eq(h_release(&child), 0);
	ck_assert_int_eq(cg_unregister(cg, p, LEN), 0);
	munmap(p, LEN);
	return moved;
}

START_TEST(writes_and_reads_racing_a_thp_unshare_by_move_are_neither_lost_nor_zero)
{
	struct shared_state *s = calloc(1, sizeof(*s));
	struct tx_threads t;
	uint64_t writes;
	struct cg_stats s0, s1;
	int chunks_moved = 0, moved = 0, rounds = 0;
	struct cg *cg = h_open(_i);

	ck_assert_ptr_nonnull(s);
	if (!h_thp_moves(cg)) {
		h_skip("no THP unshare by move here (UFFD_FEATURE_MOVE is 6.8+; "
		       "asynchronous protection does not move)");
		goto out;
	}
	s0 = ph_stats(cg);
	tx_start(s, &t);
	for (int round = 0; round < ROUNDS; round++) {
		moved = round_once(cg, s, round);
		/* No THP to be had for this round (skipped, said why). */
		if (moved < 0)
			break;
		chunks_moved += moved;
		rounds++;
	}
	writes = tx_stop(s, &t);
	if (!rounds)
		goto out;
	s1 = ph_stats(cg);
	printf("%s: %llu reads, %llu writes, %d chunks of %d moved in, %llu "
	       "split by racing writes\n", h_mode_name(_i),
	       (unsigned long long)atomic_load(&s->reads),
	       (unsigned long long)writes, chunks_moved,
	       rounds * (int)(LEN / (2 * MIB)),
	       (unsigned long long)(s1.thp_splits - s0.thp_splits));
	ck_assert_uint_eq(atomic_load(&s->zeros_seen), 0);
	ck_assert_int_gt(chunks_moved, 0);
out:
	atomic_store(&s->stop, true);
	cg_close(cg);
	free(s);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("THP unshared by a move loses no write");
	TCase *tc = tcase_create("move");

	h_timeout(tc, 240);
	h_add_modes(tc, writes_and_reads_racing_a_thp_unshare_by_move_are_neither_lost_nor_zero);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
