// SPDX-License-Identifier: MIT
/*
 * An incremental snapshot saves what was written since the last snapshot
 * and names the rest as kept: a full image, then incremental ones, each
 * read over the one before it, rebuild memory byte for byte, through
 * writes, a page dropped (a hole now: zeros, not the parent's bytes) and
 * a hole filled.  It saves far less than memory.  Without a parent it is
 * refused (-ENOENT): on a new handle, after a collect took the record of
 * writes, after a snapshot that failed.  Per mode and kind (4 KiB, THP).
 *
 * Bugs this catches: a written page not saved (the record cleared by
 * something other than a save, or not set by a write after one), a
 * dropped page left to the parent, kept runs misplaced.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "harness.h"
#include "pin-util.h"
#include "snapshot-util.h"
#include "track-util.h"

#define LEN (8 * MIB)
#define ROUNDS 4

/* Snapshot into a new file; the memory it holds over parent into img. */
static struct cg_snapshot_info snapshot(struct cg *cg, unsigned flags,
					char *p, char *img, const char *parent)
{
	struct cg_snapshot_info info;
	int fd = su_tmpfile(), ret = cg_snapshot(cg, fd, flags, &info,
						 sizeof(info));

	ck_assert_msg(!ret, "%s snapshot: %s",
		      flags ? "incremental" : "full", cg_strerror(ret));
	su_rebuild(fd, p, LEN, img, parent);
	close(fd);
	return info;
}

/*
 * Writes here and there, one page dropped and one hole filled, all in the
 * first 2 MiB: a THP is saved whole once written.
 */
static void change(char *p, int round)
{
	for (size_t page = (size_t)round; page < 2 * MIB / PG; page += 61)
		p[page * PG + 8] = (char)(round + 1);
	ck_assert_int_eq(madvise(p + (size_t)(7 + round) * PG, PG,
				 MADV_DONTNEED), 0);
	p[(size_t)(100 + round) * PG] = 'h';
}

START_TEST(an_incremental_image_holds_what_was_written_since)
{
	enum h_kind kind = H_KIND(_i);
	char *p = h_map(kind, LEN, 'i');
	char *img = malloc(LEN), *parent = malloc(LEN);
	struct cg_snapshot_info info;
	struct cg *cg;

	ck_assert(img && parent);
	if (!p)
		goto out;
	/* A hole to fill later. */
	for (int r = 0; r < ROUNDS; r++)
		ck_assert_int_eq(madvise(p + (size_t)(100 + r) * PG, PG,
					 MADV_DONTNEED), 0);
	cg = h_open(H_MODE(_i));
	ck_assert_int_eq(cg_register(cg, p, LEN, 0), 0);
	if (h_skip_if_async(cg, "asynchronous protection refuses snapshots"))
		goto out_close;
	{
		int fd = su_tmpfile();

		ck_assert_int_eq(cg_snapshot(cg, fd, CG_SNAPSHOT_INCREMENTAL,
					     NULL, 0), -ENOENT);
		close(fd);
	}
	snapshot(cg, 0, p, parent, NULL);
	ck_assert(!memcmp(parent, p, LEN));
	for (int r = 0; r < ROUNDS; r++) {
		change(p, r);
		info = snapshot(cg, CG_SNAPSHOT_INCREMENTAL, p, img, parent);
		ck_assert_msg(!memcmp(img, p, LEN), "round %d: the image over "
			      "its parent is not memory", r);
		printf("%s, round %d: %llu KiB saved, %llu KiB kept\n",
		       h_case_name(), r,
		       (unsigned long long)info.saved_bytes / 1024,
		       (unsigned long long)info.kept_bytes / 1024);
		ck_assert_uint_lt(info.saved_bytes, LEN / 2);
		ck_assert_uint_gt(info.kept_bytes, LEN / 4);
		memcpy(parent, img, LEN);
	}
	/* A collect took the record of what was written: no parent. */
	{
		struct cg_range r[4];
		void *next;
		int fd = su_tmpfile();

		ck_assert_int_ge(cg_track_collect(cg, p, LEN, r, 4, &next), 0);
		ck_assert_int_eq(cg_snapshot(cg, fd, CG_SNAPSHOT_INCREMENTAL,
					     NULL, 0), -ENOENT);
		close(fd);
	}
	snapshot(cg, 0, p, parent, NULL);
	p[3 * PG] = 'z';
	snapshot(cg, CG_SNAPSHOT_INCREMENTAL, p, img, parent);
	ck_assert(!memcmp(img, p, LEN));
	h_audit_clean(cg, p, LEN);
out_close:
	cg_close(cg);
	munmap(p, LEN);
out:
	free(img);
	free(parent);
}
END_TEST

/* A snapshot that failed leaves no parent: the next must be full. */
START_TEST(a_failed_snapshot_leaves_no_parent)
{
	char *p = h_map(H_4K, LEN, 'f');
	struct cg *cg = h_open(_i);
	int fd = su_tmpfile(), pipefd[2];
	struct rlimit was, small;

	ck_assert(p);
	ck_assert_int_eq(cg_register(cg, p, LEN, 0), 0);
	if (h_skip_if_async(cg, "asynchronous protection refuses snapshots"))
		goto out;
	ck_assert_int_eq(cg_snapshot(cg, fd, 0, NULL, 0), 0);
	/* Refused before the freeze: the parent stands. */
	ck_assert_int_eq(pipe(pipefd), 0);
	ck_assert_int_eq(cg_snapshot(cg, pipefd[1], CG_SNAPSHOT_INCREMENTAL,
				     NULL, 0), -ESPIPE);
	close(pipefd[0]);
	close(pipefd[1]);
	memset(p, 'g', MIB);
	ck_assert_int_eq(cg_snapshot(cg, fd, CG_SNAPSHOT_INCREMENTAL, NULL, 0), 0);
	/* Failed after the freeze, its file full (EFBIG): none. */
	memset(p, 'h', MIB);
	signal(SIGXFSZ, SIG_IGN);
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &was), 0);
	small = (struct rlimit){ 64 * KIB, was.rlim_max };
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &small), 0);
	ck_assert_int_eq(cg_snapshot(cg, fd, CG_SNAPSHOT_INCREMENTAL, NULL, 0),
			 -EFBIG);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &was), 0);
	ck_assert_int_eq(cg_snapshot(cg, fd, CG_SNAPSHOT_INCREMENTAL, NULL, 0),
			 -ENOENT);
	ck_assert_int_eq(cg_snapshot(cg, fd, 0, NULL, 0), 0);
	ck_assert_int_eq(cg_snapshot(cg, fd, CG_SNAPSHOT_INCREMENTAL, NULL, 0), 0);
	ck_assert_int_eq(cg_snapshot(cg, fd, 1u << 7, NULL, 0), -EINVAL);
out:
	close(fd);
	cg_close(cg);
	munmap(p, LEN);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("an incremental image holds what was written since");
	TCase *tc = tcase_create("snapshot");

	h_timeout(tc, 240);
	h_add_test(tc, an_incremental_image_holds_what_was_written_since,
		   H_MODES, H_KINDS_SMALL);
	h_add_modes(tc, a_failed_snapshot_leaves_no_parent);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
