// SPDX-License-Identifier: MIT
/*
 * A live snapshot is the memory of one instant, taken while writers run.
 * Each writer thread stamps a word of its own in every 4 KiB page, page
 * after page round the range, with the count of its writes so far.  An
 * image of one instant holds, for each writer, a prefix of its writes: if
 * the highest stamp in the image is M, every page holds the last stamp
 * written there up to M, and zero where none was (a hole stays a hole).
 * And M lies between the writes done before the call and those done when
 * it returned.  Per mode and kind (a THP saved whole, 2 MiB hugetlb pages;
 * not 1 GiB ones: the image would be 1 GiB), 4 KiB with a hole in every 8
 * pages.
 *
 * Bugs this catches: a page saved after a write went through (no wait:
 * its stamp is past M for the pages before it), a write fault resolved
 * on a page not saved yet, the window of exclusive pages a fault
 * unprotects reaching pages not saved, a hole filled during the freeze
 * saved late, a run saved twice or at the wrong address.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "pin-util.h"
#include "snapshot-util.h"

#define LEN (8 * MIB)
#define WRITERS 2
#define ROUNDS 3

struct writer {
	char *p;
	size_t pages;
	unsigned id;
	_Atomic bool stop;
	_Atomic uint64_t done;	/* writes finished */
};

/* Writer id's word of page. */
static volatile uint64_t *word(char *p, size_t page, unsigned id)
{
	return (volatile uint64_t *)(p + page * PG) + 1 + id;
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;

	for (uint64_t k = atomic_load(&w->done); !atomic_load(&w->stop); k++) {
		*word(w->p, k % w->pages, w->id) = k + 1;
		atomic_store(&w->done, k + 1);
	}
	return NULL;
}

/* Writer id's prefix in img: every page as its first m writes left it. */
static void check_prefix(char *img, size_t pages, unsigned id, uint64_t before,
			 uint64_t after)
{
	uint64_t m = 0;

	for (size_t page = 0; page < pages; page++)
		if (*word(img, page, id) > m)
			m = *word(img, page, id);
	ck_assert_msg(m >= before && m <= after + 1,
		      "writer %u: the image holds its write %llu, but %llu were "
		      "done before the call and %llu when it returned", id,
		      (unsigned long long)m, (unsigned long long)before,
		      (unsigned long long)after);
	for (size_t page = 0; page < pages; page++) {
		/* The last write k < m with k % pages == page, stamped k + 1. */
		uint64_t want = m > page ? m - (m - 1 - page) % pages : 0;

		ck_assert_msg(*word(img, page, id) == want,
			      "writer %u, page %zu: the image holds stamp %llu, "
			      "the instant of stamp %llu held %llu", id, page,
			      (unsigned long long)*word(img, page, id),
			      (unsigned long long)m, (unsigned long long)want);
	}
}

static void snapshot_round(struct cg *cg, char *p, struct writer *w,
			   char *img)
{
	struct cg_snapshot_info info;
	uint64_t before[WRITERS], after[WRITERS];
	int fd = su_tmpfile(), ret;

	h_sleep_ms(5);
	for (unsigned i = 0; i < WRITERS; i++)
		before[i] = atomic_load(&w[i].done);
	ret = cg_snapshot(cg, fd, 0, &info, sizeof(info));
	for (unsigned i = 0; i < WRITERS; i++)
		after[i] = atomic_load(&w[i].done);
	ck_assert_msg(ret == 0, "cg_snapshot: %s", cg_strerror(ret));
	ck_assert_int_eq(lseek(fd, 0, SEEK_END), (off_t)info.image_bytes);
	su_rebuild(fd, p, LEN, img, NULL);
	for (unsigned i = 0; i < WRITERS; i++)
		check_prefix(img, LEN / PG, i, before[i], after[i]);
	printf("%s: %llu KiB saved, %llu writes waited, freeze %.2f ms, "
	       "%llu writes during the call\n", h_case_name(),
	       (unsigned long long)info.saved_bytes / 1024,
	       (unsigned long long)info.waits, info.begin_ns / 1e6,
	       (unsigned long long)(after[0] - before[0]));
	close(fd);
}

START_TEST(a_snapshot_is_the_memory_of_one_instant)
{
	enum h_kind kind = H_KIND(_i);
	char *p = h_map(kind, LEN, 0), *img = malloc(LEN);
	struct writer w[WRITERS];
	pthread_t t[WRITERS];
	struct cg *cg;

	ck_assert(img);
	if (!p)
		goto out;
	/* Holes: zeros in the image until a writer fills them. */
	if (kind == H_4K)
		for (size_t off = 0; off < LEN; off += 8 * PG)
			ck_assert_int_eq(madvise(p + off, PG, MADV_DONTNEED), 0);
	cg = h_open(H_MODE(_i));
	ck_assert_int_eq(cg_register(cg, p, LEN, 0), 0);
	if (h_wp_async(cg)) {
		int fd = su_tmpfile();

		/* The kernel resolves every write: none can be made to wait. */
		ck_assert_int_eq(cg_snapshot(cg, fd, 0, NULL, 0), -EOPNOTSUPP);
		close(fd);
		h_skip("asynchronous write protection refuses snapshots "
		       "(checked: -EOPNOTSUPP)");
		goto out_close;
	}
	for (unsigned i = 0; i < WRITERS; i++) {
		w[i] = (struct writer){ .p = p, .pages = LEN / PG, .id = i };
		ck_assert_int_eq(pthread_create(&t[i], NULL, writer_main, &w[i]), 0);
	}
	for (int round = 0; round < ROUNDS; round++)
		snapshot_round(cg, p, w, img);
	for (unsigned i = 0; i < WRITERS; i++) {
		atomic_store(&w[i].stop, true);
		pthread_join(t[i], NULL);
	}
	/* At rest, the image is the memory, byte for byte. */
	{
		int fd = su_tmpfile();

		ck_assert_int_eq(cg_snapshot(cg, fd, 0, NULL, 0), 0);
		ck_assert_uint_eq(su_rebuild(fd, p, LEN, img, NULL),
				  kind == H_4K	 ? CG_PAGE_4K
				  : kind == H_THP ? CG_PAGE_THP
						  : CG_PAGE_HUGETLB_2M);
		ck_assert(!memcmp(img, p, LEN));
		close(fd);
	}
	h_audit_clean(cg, p, LEN);
out_close:
	cg_close(cg);
	munmap(p, LEN);
out:
	free(img);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("a snapshot is the memory of one instant");
	TCase *tc = tcase_create("snapshot");

	h_timeout(tc, 240);
	h_add_test(tc, a_snapshot_is_the_memory_of_one_instant, H_MODES,
		   H_KINDS_SHARED);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON | H_NEED_HUGETLB);
}
