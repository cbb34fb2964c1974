// SPDX-License-Identifier: MIT
/*
 * Write tracking under load: writer threads stamp sequence numbers into
 * the pages of a registered range (tests/transact.h) while the main thread
 * collects the written units again and again, and copies each unit
 * reported into a shadow of the range, as an incremental checkpoint
 * would; one page in 8 starts as a hole.  When the writers are parked, a last collect and copy must leave
 * the shadow equal to memory, page for page: a write that no collect
 * reported would leave an older stamp there.  Per mode and kind (4 KiB,
 * THP, 2 MiB hugetlb), and in the async lane on the kernel's own write
 * protection.  The
 * bytes reported against the pages written are printed: what the fault
 * path's window and whole THPs make it report beyond the writes.
 *
 * Bugs this catches: a run reported before it was protected again (a
 * write between the two is in no report), protection put back on part of
 * a run, a collect that skips the runs after a full reply, a write to a
 * hole missed (no fault: learning must find it).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "pin-util.h"
#include "track-util.h"
#include "transact.h"

#define LEN (8 * MIB)
#define COLLECTS 200

START_TEST(collects_racing_writers_miss_no_write)
{
	enum h_kind kind = H_KIND(_i);
	size_t hole = kind == H_HUGETLB_2M ? 2 * MIB : PG;
	struct shared_state *s = calloc(1, sizeof(*s));
	char *p = h_map(kind, LEN, 'A'), *shadow = malloc(LEN);
	struct tx_threads t;
	uint64_t writes;
	size_t reported = 0;
	int collects = 0;
	struct cg *cg;

	ck_assert(s && shadow);
	if (!p)
		goto out_free;
	/*
	 * Holes too: a write there raises no fault on the fault path.  A
	 * hugetlb page is dropped whole: the first of the four.
	 */
	for (size_t off = 0; off < LEN; off += 8 * hole)
		ck_assert_int_eq(madvise(p + off, hole, MADV_DONTNEED), 0);
	cg = h_open(H_MODE(_i));
	ck_assert_int_eq(cg_register(cg, p, LEN, 0), 0);
	memcpy(shadow, p, LEN);
	tu_collect(cg, p, LEN, shadow);
	s->pages = LEN / PG;
	atomic_store(&s->p, p);
	tx_start(s, &t);
	go_all(s);
	/*
	 * Paced: an embedded engine serves the writers' faults meanwhile.
	 * Where the writers hardly run (two guests on two cores: 2 writes in
	 * 200 collects, seen), collects go on until they have raced enough.
	 */
	for (; collects < COLLECTS || (tx_writes(&t) <= COLLECTS &&
					collects < 20 * COLLECTS); collects++) {
		reported += tu_collect(cg, p, LEN, shadow);
		usleep(1000);
	}
	park_all(s);
	reported += tu_collect(cg, p, LEN, shadow);
	for (size_t page = 0; page < LEN / PG; page++)
		ck_assert_msg(!memcmp(shadow + page * PG, p + page * PG, PG),
			      "page %zu: written (stamp %#llx) but in no report "
			      "(the shadow holds %#llx)", page,
			      (unsigned long long)*slot(p, page),
			      (unsigned long long)*slot(shadow, page));
	/* The reader reads zeros in the holes: it only races the collects. */
	writes = tx_stop(s, &t);
	printf("%s, %s%s: %llu writes, %d collects, %zu MiB reported\n",
	       h_mode_name(H_MODE(_i)), h_kind_name(kind),
	       h_wp_async(cg) ? ", async" : "",
	       (unsigned long long)writes, collects,
	       (size_t)(reported / MIB));
	/* Else the collects raced nothing. */
	ck_assert_uint_gt(writes, COLLECTS);
	cg_close(cg);
	munmap(p, LEN);
out_free:
	free(shadow);
	free(s);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("collects racing writers miss no write");
	TCase *tc = tcase_create("track");

	h_timeout(tc, 240);
	h_add_test(tc, collects_racing_writers_miss_no_write, H_MODES,
		   H_KINDS_SMALL | H_KIND_BIT(H_HUGETLB_2M));
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON | H_NEED_HUGETLB);
}
