// SPDX-License-Identifier: MIT
/*
 * A lazy restore gives back, byte for byte, the memory a snapshot saved:
 * the regions are mapped again where they were and read while the
 * library still fills them (scattered reads fault pages in ahead of the
 * drain), then whole once it is done, and the handle tracks them again.
 * Per mode and kind (4 KiB with holes, THP, 2 MiB hugetlb); THP memory
 * comes back as THPs, one PMD each, where the kernel moves pages (6.8+:
 * UFFDIO_MOVE; before, as 4 KiB pages).  Also: a fork
 * during the restore gives the child every page; a page dropped during it
 * reads zeros and is never filled again; memory moved during it is filled
 * where it went; the daemon killed during it stops nothing; a corrupt image, an incremental one and an address in use are
 * refused with nothing mapped.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "pin-util.h"
#include "snapshot-util.h"

#define LEN (8 * MIB)

/* A pattern no page shares with another, holes in 4 KiB memory. */
static void fill_pattern(char *p, enum h_kind kind)
{
	for (size_t page = 0; page < LEN / PG; page++) {
		memset(p + page * PG, (int)(page * 7 + 1), PG);
		*(uint64_t *)(p + page * PG) = page ^ 0xc0ffee;
	}
	if (kind == H_4K)
		for (size_t off = 0; off < LEN; off += 8 * PG)
			ck_assert_int_eq(madvise(p + off, PG, MADV_DONTNEED), 0);
}

/* The region p of cg saved into a new file, let go and unmapped. */
static int save_and_drop(struct cg *cg, char *p, char *expected)
{
	int fd = su_tmpfile();

	ck_assert_int_eq(cg_snapshot(cg, fd, 0, NULL, 0), 0);
	memcpy(expected, p, LEN);
	ck_assert_int_eq(cg_unregister(cg, p, LEN), 0);
	ck_assert_int_eq(munmap(p, LEN), 0);
	return fd;
}

/* Each 2 MiB of p one PMD again, where the restore can move THPs in. */
static void check_thp_whole(struct cg *cg, char *p)
{
	size_t pmd = 0;

	for (size_t off = 0; off < LEN; off += 2 * MIB)
		pmd += h_pmd_mapped(p + off) == 1;
	printf("%s: %zu of %zu THP chunks PMD-mapped after the restore\n",
	       h_case_name(), pmd, (size_t)(LEN / (2 * MIB)));
	if (h_thp_moves(cg))
		ck_assert_uint_eq(pmd, LEN / (2 * MIB));
}

START_TEST(a_lazy_restore_gives_back_the_memory_of_the_image)
{
	enum h_kind kind = H_KIND(_i);
	char *p = h_map(kind, LEN, 0), *expected = malloc(LEN);
	struct cg_restore_info info;
	struct cg_page_info page;
	struct cg_restore *r;
	struct cg *cg;
	int fd;

	ck_assert(expected);
	if (!p)
		goto out;
	fill_pattern(p, kind);
	cg = h_open(H_MODE(_i));
	ck_assert_int_eq(cg_register(cg, p, LEN, 0), 0);
	if (h_skip_if_async(cg, "asynchronous protection refuses snapshots"))
		goto out_close;
	fd = save_and_drop(cg, p, expected);
	ck_assert_int_eq(cg_restore_start(cg, fd, 0, &r), 0);
	/* Ahead of the drain: each read faults its page in from the image. */
	for (size_t k = 0; k < 256; k++) {
		size_t pg = (LEN / PG - 1 - k * 61) % (LEN / PG);

		ck_assert_msg(!memcmp(p + pg * PG, expected + pg * PG, PG),
			      "page %zu read during the restore differs", pg);
	}
	ck_assert_int_eq(cg_restore_wait(r, &info, sizeof(info)), 0);
	ck_assert(!memcmp(p, expected, LEN));
	if (kind == H_THP)
		check_thp_whole(cg, p);
	printf("%s: %llu KiB restored, %llu faults served, the first after "
	       "%.2f ms, all in after %.2f ms\n", h_case_name(),
	       (unsigned long long)info.restored_bytes / 1024,
	       (unsigned long long)info.faults, info.first_fault_ns / 1e6,
	       info.drain_ns / 1e6);
	ck_assert_int_eq(cg_query(cg, p + PG, &page, sizeof(page)), 0);
	ck_assert(page.present);
	close(fd);
	ck_assert_int_eq(cg_unregister(cg, p, LEN), 0);
out_close:
	cg_close(cg);
	munmap(p, LEN);
out:
	free(expected);
}
END_TEST

/* Restored without a handle: fork, drop and refusals need none. */
static struct cg_restore *restore_4k(char **p, char *expected, int *fd)
{
	struct cg *cg = h_open(H_EMBEDDED);
	struct cg_restore *r;

	*p = h_map(H_4K, LEN, 0);
	ck_assert(*p);
	fill_pattern(*p, H_4K);
	ck_assert_int_eq(cg_register(cg, *p, LEN, 0), 0);
	*fd = save_and_drop(cg, *p, expected);
	cg_close(cg);
	ck_assert_int_eq(cg_restore_start(NULL, *fd, 0, &r), 0);
	return r;
}

START_TEST(a_fork_during_the_restore_gives_the_child_every_page)
{
	char *p, *expected = malloc(LEN);
	int fd, status;
	struct cg_restore *r = restore_4k(&p, expected, &fd);
	pid_t pid = fork();

	if (pid == 0)
		_exit(memcmp(p, expected, LEN) ? 1 : 0);
	ck_assert_int_gt(pid, 0);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "the child's memory differs from the image");
	ck_assert_int_eq(cg_restore_wait(r, NULL, 0), 0);
	ck_assert(!memcmp(p, expected, LEN));
	close(fd);
	munmap(p, LEN);
	free(expected);
}
END_TEST

START_TEST(a_page_dropped_during_the_restore_reads_zeros)
{
	char *p, *expected = malloc(LEN), zero[PG] = { 0 };
	int fd;
	struct cg_restore *r = restore_4k(&p, expected, &fd);
	char *last = p + LEN - PG;

	/* Drained last: most likely not in yet, and never to come after. */
	ck_assert_int_eq(madvise(last, PG, MADV_DONTNEED), 0);
	ck_assert(!memcmp(last, zero, PG));
	ck_assert_int_eq(cg_restore_wait(r, NULL, 0), 0);
	ck_assert(!memcmp(last, zero, PG));
	ck_assert(!memcmp(p, expected, LEN - PG));
	close(fd);
	munmap(p, LEN);
	free(expected);
}
END_TEST

START_TEST(memory_moved_during_the_restore_is_filled_where_it_went)
{
	char *p, *expected = malloc(LEN), *to;
	int fd;
	struct cg_restore *r = restore_4k(&p, expected, &fd);
	char *tail = p + LEN - MIB;

	/* A free place, then the last MiB (drained last) moved there. */
	to = mmap(NULL, MIB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert(to != MAP_FAILED);
	ck_assert(mremap(tail, MIB, MIB, MREMAP_MAYMOVE | MREMAP_FIXED, to) ==
		  to);
	ck_assert_int_eq(cg_restore_wait(r, NULL, 0), 0);
	ck_assert(!memcmp(to, expected + LEN - MIB, MIB));
	ck_assert(!memcmp(p, expected, LEN - MIB));
	close(fd);
	munmap(p, LEN - MIB);
	munmap(to, MIB);
	free(expected);
}
END_TEST

START_TEST(the_daemon_killed_during_the_restore_stops_nothing)
{
	char path[108], *p = h_map(H_4K, LEN, 0), *expected = malloc(LEN);
	struct cg_options o = { .mode = CG_MODE_AUTO, .socket_path = path };
	struct cg_restore *r;
	struct cg *cg;
	pid_t daemon;
	int fd;

	if (!h_have_own_daemon("kills a daemon of its own"))
		goto out;
	snprintf(path, sizeof(path), "%s.restore", h_socket());
	daemon = h_daemon_start(path);
	ck_assert_int_gt(daemon, 0);
	ck_assert_int_eq(cg_open(&o, sizeof(o), &cg), 0);
	ck_assert_int_eq(cg_mode(cg), CG_MODE_DAEMON);
	fill_pattern(p, H_4K);
	ck_assert_int_eq(cg_register(cg, p, LEN, 0), 0);
	fd = save_and_drop(cg, p, expected);
	ck_assert_int_eq(cg_restore_start(cg, fd, 0, &r), 0);
	kill(daemon, SIGKILL);
	waitpid(daemon, NULL, 0);
	/* Registered again embedded: AUTO goes on without its daemon. */
	ck_assert_int_eq(cg_restore_wait(r, NULL, 0), 0);
	ck_assert(!memcmp(p, expected, LEN));
	close(fd);
	cg_close(cg);
out:
	munmap(p, LEN);
	free(expected);
}
END_TEST

START_TEST(what_cannot_be_restored_is_refused_with_nothing_mapped)
{
	char *p = h_map(H_4K, LEN, 0), *expected = malloc(LEN), *q;
	struct cg *cg = h_open(H_EMBEDDED);
	struct cg__img_header h;
	struct cg_restore *r;
	int fd, inc;

	fill_pattern(p, H_4K);
	ck_assert_int_eq(cg_register(cg, p, LEN, 0), 0);
	inc = su_tmpfile();
	fd = su_tmpfile();
	ck_assert_int_eq(cg_snapshot(cg, fd, 0, NULL, 0), 0);
	ck_assert_int_eq(cg_snapshot(cg, inc, CG_SNAPSHOT_INCREMENTAL, NULL, 0), 0);
	/* The addresses are taken: */
	ck_assert_int_eq(cg_restore_start(NULL, fd, 0, &r), -EEXIST);
	memcpy(expected, p, LEN);
	ck_assert_int_eq(cg_unregister(cg, p, LEN), 0);
	ck_assert_int_eq(munmap(p, LEN), 0);
	ck_assert_int_eq(cg_restore_start(NULL, inc, 0, &r), -EOPNOTSUPP);
	/* A byte changed in the pages: */
	ck_assert_int_eq(pread(fd, &h, sizeof(h), 0), (ssize_t)sizeof(h));
	ck_assert_int_eq(pwrite(fd, "X", 1, (off_t)h.data_off + 100), 1);
	ck_assert_int_eq(cg_restore_start(NULL, fd, 0, &r), -EBADMSG);
	ck_assert_int_eq(cg_restore_start(NULL, fd, 1u << 31, &r), -EINVAL);
	/* Nothing was mapped: the addresses are free. */
	q = mmap(p, LEN, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS |
		 MAP_FIXED_NOREPLACE, -1, 0);
	ck_assert_ptr_eq(q, p);
	munmap(q, LEN);
	close(fd);
	close(inc);
	cg_close(cg);
	free(expected);
}
END_TEST

static sigjmp_buf bus_jump;

static void on_sigbus(int sig)
{
	(void)sig;
	siglongjmp(bus_jump, 1);
}

/* Whether reading the page at p raises SIGBUS. */
static bool read_raises_sigbus(const char *p)
{
	struct sigaction sa = { .sa_handler = on_sigbus }, old;
	volatile bool bus = false;

	sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(SIGBUS, &sa, &old), 0);
	if (sigsetjmp(bus_jump, 1))
		bus = true;
	else
		(void)*(const volatile char *)p;
	sigaction(SIGBUS, &old, NULL);
	return bus;
}

/*
 * CG_RESTORE_CHECK_AS_READ: a run found corrupt only once the restore
 * runs is never given as memory: its pages raise SIGBUS, every other page
 * is the image's, and the wait says -EBADMSG.  The same image is refused
 * whole without the flag.
 */
START_TEST(a_run_found_corrupt_while_restoring_is_poisoned_not_given)
{
	char *p, *expected = malloc(LEN);
	struct cg__img img;
	struct cg_restore *r;
	uint64_t bad_addr, bad_len, poisoned = 0;
	int fd;

	r = restore_4k(&p, expected, &fd);
	ck_assert_int_eq(cg_restore_wait(r, NULL, 0), 0);
	ck_assert_int_eq(munmap(p, LEN), 0);
	/* A byte changed in the middle run. */
	ck_assert_int_eq(cg__img_open(&img, fd), 0);
	bad_addr = img.runs[img.h.nruns / 2].addr;
	bad_len = img.runs[img.h.nruns / 2].len;
	ck_assert_int_eq(pwrite(fd, "X", 1,
				(off_t)img.runs[img.h.nruns / 2].off + 100), 1);
	cg__img_close(&img);
	ck_assert_int_eq(cg_restore_start(NULL, fd, 0, &r), -EBADMSG);
	{
		int ret = cg_restore_start(NULL, fd, CG_RESTORE_CHECK_AS_READ, &r);

		if (ret == -EOPNOTSUPP) {
			h_skip("no UFFD_FEATURE_POISON here (6.6+): the flag is "
			       "refused, checked");
			goto out;
		}
		ck_assert_int_eq(ret, 0);
	}
	ck_assert_int_eq(cg_restore_wait(r, NULL, 0), -EBADMSG);
	for (uint64_t a = (uintptr_t)p; a < (uintptr_t)p + LEN; a += PG) {
		bool in_bad = a >= bad_addr && a < bad_addr + bad_len;

		if (in_bad) {
			ck_assert_msg(read_raises_sigbus((char *)(uintptr_t)a),
				      "a page of the corrupt run read as memory");
			poisoned++;
		} else {
			ck_assert_msg(!memcmp((char *)(uintptr_t)a,
					      expected + (a - (uintptr_t)p), PG),
				      "page %#llx differs",
				      (unsigned long long)a);
		}
	}
	printf("%llu pages of the corrupt run poisoned, the rest as saved\n",
	       (unsigned long long)poisoned);
out:
	munmap(p, LEN);
	close(fd);
	free(expected);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("a lazy restore gives back the memory of the image");
	TCase *tc = tcase_create("restore");

	h_timeout(tc, 240);
	h_add_test(tc, a_lazy_restore_gives_back_the_memory_of_the_image,
		   H_MODES, H_KINDS_SHARED);
	h_add(tc, a_fork_during_the_restore_gives_the_child_every_page);
	h_add(tc, a_page_dropped_during_the_restore_reads_zeros);
	h_add(tc, memory_moved_during_the_restore_is_filled_where_it_went);
	h_add(tc, the_daemon_killed_during_the_restore_stops_nothing);
	h_add(tc, what_cannot_be_restored_is_refused_with_nothing_mapped);
	h_add(tc, a_run_found_corrupt_while_restoring_is_poisoned_not_given);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON | H_NEED_HUGETLB);
}
