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
 * Also with a thread that forks children again and again during the
 * snapshots: each child writes a word of its own in its copy of the
 * pages (it must not wait for ever: an alarm kills it) and the parent's
 * images never hold it, while the writers' prefixes hold as before.
 *
 * Bugs this catches: a page saved after a write went through (no wait:
 * its stamp is past M for the pages before it), a write fault resolved
 * on a page not saved yet, the window of exclusive pages a fault
 * unprotects reaching pages not saved, a hole filled during the freeze
 * saved late, a run saved twice or at the wrong address.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "pin-util.h"
#include "snapshot-util.h"
#include "stamp-util.h"

#define LEN (8 * MIB)
#define WRITERS 2
#define ROUNDS 3
#define CHILD_WORD 64		/* a child's word in each page it writes */
#define CHILD_STAMP 0xc41dULL

struct forker {
	char *p;
	_Atomic bool stop;
	_Atomic int forks, failed;	/* children; those that did not exit 0 */
};

/* The child: its word in every 16th page, read back; an alarm if stuck. */
static void child_writes(char *p)
{
	alarm(20);
	for (size_t page = 0; page < LEN / PG; page += 16)
		((volatile uint64_t *)(p + page * PG))[CHILD_WORD] = CHILD_STAMP;
	for (size_t page = 0; page < LEN / PG; page += 16)
		if (((volatile uint64_t *)(p + page * PG))[CHILD_WORD] != CHILD_STAMP)
			_exit(3);
	_exit(0);
}

static void *forker_main(void *arg)
{
	struct forker *f = arg;

	while (!atomic_load(&f->stop)) {
		int status;
		pid_t pid = fork();

		if (pid == 0)
			child_writes(f->p);
		if (pid < 0 || waitpid(pid, &status, 0) != pid ||
		    !WIFEXITED(status) || WEXITSTATUS(status))
			atomic_fetch_add(&f->failed, 1);
		atomic_fetch_add(&f->forks, 1);
	}
	return NULL;
}

/* No child's word in the parent's image: a fork's writes are its own. */
static void check_no_child(const char *img)
{
	for (size_t page = 0; page < LEN / PG; page++)
		ck_assert_msg(((const uint64_t *)(img + page * PG))[CHILD_WORD] !=
			      CHILD_STAMP, "page %zu of the parent's image holds "
			      "a child's write", page);
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
	check_no_child(img);
	printf("%s: %llu KiB saved, %llu writes waited, freeze %.2f ms, "
	       "%llu writes during the call\n", h_case_name(),
	       (unsigned long long)info.saved_bytes / 1024,
	       (unsigned long long)info.waits, info.begin_ns / 1e6,
	       (unsigned long long)(after[0] - before[0]));
	close(fd);
}

/*
 * Writing every page once more after the forks leaves none maybe-shared
 * but for docs/audit.md's known, counted conservative cases: a write racing
 * fork() whose page the kernel copied unseen (once in CI: 7 of 2048 pages,
 * daemon, 4 KiB).  Never unsafe; a pin of the whole range makes the
 * engine exact again, as in test-pin-stress-keeps-every-write.
 */
static void exact_after_forks(struct cg *cg, char *p)
{
	struct cg_audit_report a;
	struct cg_pin *all;

	ck_assert_int_eq(cg_audit(cg, p, LEN, &a, sizeof(a)), 0);
	ck_assert_msg(a.unsafe == 0, "%llu pages exclusive for the engine are "
		      "shared in the kernel", (unsigned long long)a.unsafe);
	if (!a.conservative)
		return;
	printf("%s: %llu conservative pages (writes racing fork)\n",
	       h_case_name(), (unsigned long long)a.conservative);
	ck_assert_int_eq(cg_pin(cg, p, LEN, CG_PIN_RO, &all), 0);
	ck_assert_int_eq(cg_unpin(all), 0);
}

/* The rounds of snapshots of kind in mode, a forker beside if forks. */
static void snapshots_while_writing(enum h_kind kind, int mode,
				    bool forks)
{
	char *p = h_map(kind, LEN, 0), *img = malloc(LEN);
	struct forker f = { .p = p };
	struct writer w[WRITERS];
	pthread_t t[WRITERS], ft;
	struct cg *cg;

	ck_assert(img);
	if (!p)
		goto out;
	/*
	 * Holes: zeros in the image until a writer fills them.  Not beside
	 * forks: a hole filled after a fork, unseen (daemon mode protects no
	 * hole), is learned by the next freeze as maybe-shared, conservative
	 * in the audit until written again.
	 */
	if (kind == H_4K && !forks)
		for (size_t off = 0; off < LEN; off += 8 * PG)
			ck_assert_int_eq(madvise(p + off, PG, MADV_DONTNEED), 0);
	cg = h_open(mode);
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
	if (forks)
		ck_assert_int_eq(pthread_create(&ft, NULL, forker_main, &f), 0);
	for (int round = 0; round < ROUNDS; round++)
		snapshot_round(cg, p, w, img);
	if (forks) {
		atomic_store(&f.stop, true);
		pthread_join(ft, NULL);
		printf("%s: %d forks beside the snapshots\n", h_case_name(),
		       atomic_load(&f.forks));
		ck_assert_msg(!atomic_load(&f.failed), "%d of %d children did "
			      "not write their copy and exit", atomic_load(&f.failed),
			      atomic_load(&f.forks));
		ck_assert_int_gt(atomic_load(&f.forks), 0);
		/*
		 * A write between a fork and its event going through unseen
		 * leaves its page maybe-shared (conservative) until written
		 * again: let every page be written once more.
		 */
		for (unsigned i = 0; i < WRITERS; i++) {
			uint64_t want = atomic_load(&w[i].done) + LEN / PG;

			while (atomic_load(&w[i].done) < want)
				h_sleep_ms(1);
		}
	}
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
	if (forks)
		exact_after_forks(cg, p);
	h_audit_clean(cg, p, LEN);
out_close:
	cg_close(cg);
	munmap(p, LEN);
out:
	free(img);
}

START_TEST(a_snapshot_is_the_memory_of_one_instant)
{
	snapshots_while_writing(H_KIND(_i), H_MODE(_i), false);
}
END_TEST

START_TEST(a_fork_during_a_snapshot_takes_nothing_from_its_instant)
{
#ifdef __SANITIZE_ADDRESS__
	/*
	 * Seen: a child stuck for ever in calloc() inside the library's
	 * atfork child handler, on the ASan allocator's lock that the
	 * engine's thread held at the fork (GCC 12's libasan does not lock
	 * its allocator around fork; glibc's malloc does).
	 */
	h_skip("a sanitizers' build: its allocator is not fork-safe (a child "
	       "allocating in an atfork handler can wait for ever)");
	return;
#endif
	snapshots_while_writing(H_KIND(_i), H_MODE(_i), true);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("a snapshot is the memory of one instant");
	TCase *tc = tcase_create("snapshot");

	h_timeout(tc, 240);
	h_add_test(tc, a_snapshot_is_the_memory_of_one_instant, H_MODES,
		   H_KINDS_SHARED);
	h_add_test(tc, a_fork_during_a_snapshot_takes_nothing_from_its_instant,
		   H_MODES, H_KIND_BIT(H_4K));
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON | H_NEED_HUGETLB);
}
