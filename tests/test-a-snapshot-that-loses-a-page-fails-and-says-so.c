// SPDX-License-Identifier: MIT
/*
 * A page dropped, unmapped or moved before the snapshot saved it cannot be
 * waited for (the kernel drops it once the event is read), so such a
 * snapshot fails with -ESTALE and leaves no image: the reader finds none.
 * A thread drops the last page of the range (or unmaps the last pages one
 * by one, or moves the last page away and back) while snapshots run,
 * which save it last; every snapshot either succeeds or fails so, and at
 * least one fails.  Memory stays tracked: the audit is clean and another
 * snapshot succeeds.  Also:
 * a pipe is refused (-ESPIPE), and bad arguments (-EINVAL).
 */
#include <errno.h>
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

#define LEN (4 * MIB)
#define TRIES 100

enum how { DROP, UNMAP, MOVE };

struct dropper {
	char *last;		/* the range's last page (unmapped: still mapped) */
	enum how how;
	_Atomic bool stop;
	_Atomic uint64_t n;
};

static void lose_and_restore(struct dropper *d)
{
	char *p;

	switch (d->how) {
	case DROP:
		madvise(d->last, PG, MADV_DONTNEED);
		break;
	case UNMAP:
		/* Mapped again, it would be registered no more: the next. */
		munmap(d->last, PG);
		d->last -= PG;
		return;
	case MOVE:
		p = mremap(d->last, PG, PG, MREMAP_MAYMOVE | MREMAP_FIXED,
			   d->last + 2 * PG);
		ck_assert(p != MAP_FAILED);
		p = mremap(p, PG, PG, MREMAP_MAYMOVE | MREMAP_FIXED, d->last);
		ck_assert(p == d->last);
		break;
	}
	d->last[0] = 1;
}

static void *dropper_main(void *arg)
{
	struct dropper *d = arg;

	while (!atomic_load(&d->stop) && atomic_load(&d->n) < 400) {
		lose_and_restore(d);
		atomic_fetch_add(&d->n, 1);
		usleep(5000);
	}
	return NULL;
}

static const char *how_name(enum how how)
{
	return how == DROP ? "MADV_DONTNEED" : how == UNMAP ? "munmap" : "mremap";
}

static void snapshots_racing(enum how how, int mode)
{
	/* Room after the range for mremap's trip out and back. */
	char *p = h_map(H_4K, LEN + 4 * PG, 's');
	struct dropper d = { .last = p + LEN - PG, .how = how };
	unsigned ok = 0, stale = 0;
	struct cg *cg = h_open(mode);
	pthread_t t;

	ck_assert(p);
	ck_assert_int_eq(cg_register(cg, p, LEN, 0), 0);
	if (h_skip_if_async(cg, "asynchronous protection refuses snapshots"))
		goto out;
	ck_assert_int_eq(pthread_create(&t, NULL, dropper_main, &d), 0);
	for (int i = 0; i < TRIES && (!stale || !ok); i++) {
		int fd = su_tmpfile(), ret = cg_snapshot(cg, fd, 0, NULL, 0);
		struct cg__img img;

		ck_assert_msg(ret == 0 || ret == -ESTALE, "%s: %s", how_name(how),
			      cg_strerror(ret));
		if (ret) {
			ck_assert_int_eq(cg__img_open(&img, fd), -ENOEXEC);
			stale++;
		} else {
			ok++;
		}
		close(fd);
	}
	atomic_store(&d.stop, true);
	pthread_join(t, NULL);
	printf("%s, %s: %u snapshots, %u -ESTALE, %llu losses\n",
	       h_mode_name(mode), how_name(how), ok + stale, stale,
	       (unsigned long long)atomic_load(&d.n));
	ck_assert_msg(stale > 0, "%s: %u snapshots, none lost a page", how_name(how),
		      ok);
	/* What unmapping left registered. */
	h_audit_clean(cg, p, LEN / 2);
	{
		int fd = su_tmpfile();

		ck_assert_int_eq(cg_snapshot(cg, fd, 0, NULL, 0), 0);
		close(fd);
	}
out:
	cg_close(cg);
	munmap(p, LEN + 4 * PG);
}

START_TEST(a_snapshot_that_loses_a_page_fails_and_says_so)
{
	snapshots_racing(DROP, _i);
	snapshots_racing(UNMAP, _i);
	snapshots_racing(MOVE, _i);
}
END_TEST

START_TEST(a_snapshot_needs_a_file_and_runs_alone)
{
	char *p = h_map(H_4K, MIB, 's');
	struct cg *cg = h_open(_i);
	int pipefd[2];

	ck_assert(p);
	ck_assert_int_eq(cg_register(cg, p, MIB, 0), 0);
	ck_assert_int_eq(pipe(pipefd), 0);
	ck_assert_int_eq(cg_snapshot(cg, pipefd[1], 0, NULL, 0), -ESPIPE);
	ck_assert_int_eq(cg_snapshot(NULL, 0, 0, NULL, 0), -EINVAL);
	ck_assert_int_eq(cg_snapshot(cg, -1, 0, NULL, 0), -EINVAL);
	{
		struct cg_snapshot_info info;
		int fd = su_tmpfile();

		ck_assert_int_eq(cg_snapshot(cg, fd, 0, &info, 8), -EINVAL);
		close(fd);
	}
	close(pipefd[0]);
	close(pipefd[1]);
	cg_close(cg);
	munmap(p, MIB);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("a snapshot that loses a page fails and says so");
	TCase *tc = tcase_create("snapshot");

	h_timeout(tc, 240);
	h_add_modes(tc, a_snapshot_that_loses_a_page_fails_and_says_so);
	h_add_modes(tc, a_snapshot_needs_a_file_and_runs_alone);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
