// SPDX-License-Identifier: MIT
/*
 * A 1 GiB hugetlb page is snapshotted and restored whole.  A writer stamps
 * every 4 KiB of it, page after page, while cg_snapshot() runs: its first
 * write after the freeze waits until the whole page is saved, so the image
 * holds the memory of one instant (a prefix of its writes,
 * tests/stamp-util.h), in a region the image calls 1 GiB hugetlb (saved
 * as 512 runs of 2 MiB: docs/image-format.md).  Then the page, saved
 * again at rest, is let go and unmapped, and a lazy restore maps it again
 * where it was: a read faults the whole page in from the image, the
 * memory is the image byte for byte, and the handle tracks it again as a
 * 1 GiB page.
 * Per mode.
 *
 * The other snapshot and restore tests leave 1 GiB pages out: their 8 MiB
 * of every kind would be 1 GiB here.  This one costs an image of 1 GiB
 * and 1 GiB of memory beside the page, where the machine has such pages.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "pin-util.h"
#include "snapshot-util.h"
#include "stamp-util.h"

#define LEN ((size_t)GIB)

/* Word 0 of each 4 KiB: a pattern no two share; the writer's is word 1. */
static void fill_pattern(char *p)
{
	for (size_t page = 0; page < LEN / PG; page++)
		*(uint64_t *)(p + page * PG) = page ^ 0x1ab1eULL;
}

static void snapshot_while_writing(struct cg *cg, char *p, char *img)
{
	struct writer w = { .p = p, .pages = LEN / PG };
	struct cg_snapshot_info info;
	uint64_t before, after;
	int fd = su_tmpfile(), ret;
	pthread_t t;

	ck_assert_int_eq(pthread_create(&t, NULL, writer_main, &w), 0);
	/* Once round the page: the instant falls inside the writes. */
	while (atomic_load(&w.done) < LEN / PG)
		h_sleep_ms(1);
	before = atomic_load(&w.done);
	ret = cg_snapshot(cg, fd, 0, &info, sizeof(info));
	after = atomic_load(&w.done);
	atomic_store(&w.stop, true);
	pthread_join(t, NULL);
	ck_assert_msg(ret == 0, "cg_snapshot: %s", cg_strerror(ret));
	ck_assert_uint_eq(su_rebuild(fd, p, LEN, img, NULL), CG_PAGE_HUGETLB_1G);
	check_prefix(img, LEN / PG, 0, before, after);
	ck_assert_uint_eq(info.saved_bytes, LEN);
	printf("%s: 1 GiB saved while written, %llu writes waited, freeze "
	       "%.2f ms, %llu writes during the call\n", h_case_name(),
	       (unsigned long long)info.waits, info.begin_ns / 1e6,
	       (unsigned long long)(after - before));
	close(fd);
}

/* Saved at rest, dropped, restored lazily where it was: p again. */
static void restore_whole(struct cg *cg, char *p, char *expected)
{
	struct cg_restore_info info;
	struct cg_page_info page;
	struct cg_restore *r;
	int fd = su_tmpfile();

	ck_assert_int_eq(cg_snapshot(cg, fd, 0, NULL, 0), 0);
	memcpy(expected, p, LEN);
	ck_assert_int_eq(cg_unregister(cg, p, LEN), 0);
	ck_assert_int_eq(munmap(p, LEN), 0);
	ck_assert_int_eq(cg_restore_start(cg, fd, 0, &r), 0);
	/* The last 4 KiB first: its fault brings the whole page in. */
	ck_assert(!memcmp(p + LEN - PG, expected + LEN - PG, PG));
	ck_assert_int_eq(cg_restore_wait(r, &info, sizeof(info)), 0);
	ck_assert(!memcmp(p, expected, LEN));
	ck_assert_uint_eq(info.restored_bytes, LEN);
	ck_assert_int_eq(cg_query(cg, p + PG, &page, sizeof(page)), 0);
	ck_assert(page.present);
	ck_assert_int_eq(page.kind, CG_PAGE_HUGETLB_1G);
	printf("%s: 1 GiB restored, %llu faults served, the first after "
	       "%.2f ms, all in after %.2f ms\n", h_case_name(),
	       (unsigned long long)info.faults, info.first_fault_ns / 1e6,
	       info.drain_ns / 1e6);
	close(fd);
	ck_assert_int_eq(cg_unregister(cg, p, LEN), 0);
}

/* MemAvailable in MiB, 0 if unknown. */
static long mem_available_mib(void)
{
	FILE *f = fopen("/proc/meminfo", "re");
	char line[128];
	long kb = 0;

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %ld kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb / 1024;
}

START_TEST(a_1gib_hugetlb_page_is_snapshotted_and_restored_whole)
{
	char *p = h_map(H_HUGETLB_1G, LEN, 0), *buf;
	struct cg *cg;

	if (!p)
		return;
	/* The copy, and the image where /tmp is memory (the QEMU guests). */
	if (mem_available_mib() < 3 * 1024) {
		h_skip("needs 3 GiB of memory beside the page (a copy of it and "
		       "its image); %ld MiB available", mem_available_mib());
		munmap(p, LEN);
		return;
	}
	buf = malloc(LEN);
	ck_assert(buf);
	fill_pattern(p);
	cg = h_open(H_MODE(_i));
	ck_assert_int_eq(cg_register(cg, p, LEN, 0), 0);
	if (h_skip_if_async(cg, "asynchronous protection refuses snapshots"))
		goto out;
	snapshot_while_writing(cg, p, buf);
	restore_whole(cg, p, buf);
out:
	cg_close(cg);
	munmap(p, LEN);
	free(buf);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("a 1 GiB hugetlb page is snapshotted and "
				"restored whole");
	TCase *tc = tcase_create("1g");

	h_timeout(tc, 240);
	h_add_test(tc, a_1gib_hugetlb_page_is_snapshotted_and_restored_whole,
		   H_MODES, H_KIND_BIT(H_HUGETLB_1G));
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON | H_NEED_HUGETLB);
}
