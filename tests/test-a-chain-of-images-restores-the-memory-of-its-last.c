// SPDX-License-Identifier: MIT
/*
 * A full image and two incremental ones after it, restored lazily as a
 * chain (cg_restore_chain_start: the newest first), give back memory as
 * it was at the last snapshot, byte for byte: pages written since the
 * full one come from the image that saved them last, the others from an
 * older one, a page dropped reads zeros, a hole filled reads what was
 * written.  Read while the restore runs (scattered pages ahead of the
 * drain), then whole.  Per mode and kind (4 KiB, THP, 2 MiB hugetlb).
 *
 * Also refused, with nothing mapped: the parents out of order, a full
 * image before the last, a chain that does not end at a full image, a
 * parent that lacks a page its child kept.
 *
 * Bugs this catches: a kept page read from the wrong image (or as zeros),
 * a long kept run filled past the buffer, a chain not checked before the
 * regions are mapped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "image/image.h"
#include "pin-util.h"
#include "snapshot-util.h"

#define LEN (8 * MIB)
#define IMAGES 3

/*
 * Each round writes other pages of the first half (the second is kept
 * whole, a THP or hugetlb page too), drops one and fills a hole.
 */
static void change(char *p, int round, enum h_kind kind)
{
	for (size_t page = (size_t)round; page < LEN / 2 / PG; page += 37)
		p[page * PG + 16] = (char)(0x40 + round);
	if (kind == H_4K) {
		ck_assert_int_eq(madvise(p + (size_t)(9 + round) * PG, PG,
					 MADV_DONTNEED), 0);
		p[(size_t)(200 + round) * PG] = 'h';
	}
}

/* The chain's images, the newest first, of the memory at p. */
static void snapshots(struct cg *cg, char *p, enum h_kind kind, int *fds)
{
	for (int k = IMAGES - 1; k >= 0; k--) {
		fds[k] = su_tmpfile();
		if (k < IMAGES - 1)
			change(p, k, kind);
		ck_assert_int_eq(cg_snapshot(cg, fds[k], k < IMAGES - 1 ?
					     CG_SNAPSHOT_INCREMENTAL : 0,
					     NULL, 0), 0);
	}
}

START_TEST(a_chain_of_images_restores_the_memory_of_its_last)
{
	enum h_kind kind = H_KIND(_i);
	char *p = h_map(kind, LEN, 'c'), *expected = malloc(LEN);
	struct cg_restore_info info;
	struct cg_restore *r;
	int fds[IMAGES];
	struct cg *cg;

	ck_assert(expected);
	if (!p)
		goto out;
	if (kind == H_4K)
		for (int k = 0; k < IMAGES; k++)
			ck_assert_int_eq(madvise(p + (size_t)(200 + k) * PG, PG,
						 MADV_DONTNEED), 0);
	cg = h_open(H_MODE(_i));
	ck_assert_int_eq(cg_register(cg, p, LEN, 0), 0);
	if (h_skip_if_async(cg, "asynchronous protection refuses snapshots"))
		goto out_close;
	snapshots(cg, p, kind, fds);
	memcpy(expected, p, LEN);
	ck_assert_int_eq(cg_unregister(cg, p, LEN), 0);
	ck_assert_int_eq(munmap(p, LEN), 0);
	ck_assert_int_eq(cg_restore_chain_start(cg, fds, IMAGES, 0, &r), 0);
	for (size_t k = 0; k < 256; k++) {
		size_t pg = (LEN / PG - 1 - k * 53) % (LEN / PG);

		ck_assert_msg(!memcmp(p + pg * PG, expected + pg * PG, PG),
			      "page %zu read during the restore differs", pg);
	}
	ck_assert_int_eq(cg_restore_wait(r, &info, sizeof(info)), 0);
	for (size_t pg = 0; pg < LEN / PG; pg++)
		ck_assert_msg(!memcmp(p + pg * PG, expected + pg * PG, PG),
			      "page %zu differs after the restore", pg);
	printf("%s: %llu KiB restored from %d images, %llu faults served\n",
	       h_case_name(), (unsigned long long)info.restored_bytes / 1024,
	       IMAGES, (unsigned long long)info.faults);
	for (int k = 0; k < IMAGES; k++)
		close(fds[k]);
	ck_assert_int_eq(cg_unregister(cg, p, LEN), 0);
out_close:
	cg_close(cg);
	munmap(p, LEN);
out:
	free(expected);
}
END_TEST

/* Whether [p, p+len) is free: nothing of a refused restore stayed. */
static bool unmapped(char *p, size_t len)
{
	char *q = mmap(p, len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS |
		       MAP_FIXED_NOREPLACE, -1, 0);

	if (q != p)
		return false;
	munmap(q, len);
	return true;
}

/* The chain's images of 4 KiB memory at *p, since unmapped. */
static void chain_of_4k(char **p, int *fds)
{
	struct cg *cg = h_open(H_EMBEDDED);

	*p = h_map(H_4K, LEN, 'c');
	ck_assert(*p);
	ck_assert_int_eq(cg_register(cg, *p, LEN, 0), 0);
	snapshots(cg, *p, H_4K, fds);
	cg_close(cg);
	ck_assert_int_eq(munmap(*p, LEN), 0);
}

START_TEST(a_chain_that_does_not_add_up_is_refused_with_nothing_mapped)
{
	struct cg_restore *r;
	int fds[IMAGES], fd;
	char *p;

	chain_of_4k(&p, fds);
	/* Out of order: an image's parent is not the next one. */
	ck_assert_int_eq(cg_restore_chain_start(NULL, (int[]){ fds[0], fds[2],
				fds[1] }, 3, 0, &r), -EINVAL);
	/* A full image before the last. */
	ck_assert_int_eq(cg_restore_chain_start(NULL, (int[]){ fds[2], fds[2] },
						2, 0, &r), -EINVAL);
	/* No full image at the end. */
	ck_assert_int_eq(cg_restore_chain_start(NULL, fds, 2, 0, &r),
			 -EOPNOTSUPP);
	ck_assert_int_eq(cg_restore_start(NULL, fds[0], 0, &r), -EOPNOTSUPP);
	ck_assert_int_eq(cg_restore_chain_start(NULL, fds, 0, 0, &r), -EINVAL);
	ck_assert_int_eq(cg_restore_chain_start(NULL, fds,
						CG_RESTORE_CHAIN_MAX + 1, 0, &r),
			 -EINVAL);
	/* The newest image's parent, of other memory with the same id. */
	{
		struct cg *cg = h_open(H_EMBEDDED);
		char *other = h_map(H_4K, MIB, 'o');
		struct cg__img_header h, w;

		ck_assert_int_eq(cg_register(cg, other, MIB, 0), 0);
		fd = su_tmpfile();
		ck_assert_int_eq(cg_snapshot(cg, fd, 0, NULL, 0), 0);
		cg_close(cg);
		munmap(other, MIB);
		ck_assert_int_eq(pread(fds[1], &h, sizeof(h), 0),
				 (ssize_t)sizeof(h));
		ck_assert_int_eq(pread(fd, &w, sizeof(w), 0), (ssize_t)sizeof(w));
		w.id = h.id;
		w.header_crc = cg__crc32c(0, &w, offsetof(struct cg__img_header,
							   header_crc));
		ck_assert_int_eq(pwrite(fd, &w, sizeof(w), 0), (ssize_t)sizeof(w));
	}
	ck_assert_int_eq(cg_restore_chain_start(NULL, (int[]){ fds[0], fd }, 2,
						0, &r), -EBADMSG);
	ck_assert(unmapped(p, LEN));
	close(fd);
	for (int k = 0; k < IMAGES; k++)
		close(fds[k]);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("a chain of images restores the memory of its last");
	TCase *tc = tcase_create("chain");

	h_timeout(tc, 240);
	h_add_test(tc, a_chain_of_images_restores_the_memory_of_its_last,
		   H_MODES, H_KINDS_SHARED);
	h_add(tc, a_chain_that_does_not_add_up_is_refused_with_nothing_mapped);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON | H_NEED_HUGETLB);
}
