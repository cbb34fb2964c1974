// SPDX-License-Identifier: MIT
/*
 * An O_DIRECT write through io_uring, pinned by cowguard after a fork,
 * writes what the parent wrote after the pin, and the child keeps its own.
 *
 * cg_uring_prep_write_pinned() pins read-only before the SQE is prepared:
 * every page is then exclusive (pagemap bit 56, and the engine with one
 * pin), the parent's write reuses the pinned frame, the file holds the
 * parent's data, and cg_unpin() finds nothing replaced.  On 6.18 the kernel
 * itself unshares on this path (the block layer's read-only FOLL_PIN), so
 * the file's content alone would pass without cowguard: the test asserts
 * that cowguard made the pages exclusive (its unshare_copies and
 * pages_made_exclusive counters, the frames before the write) before the
 * kernel had to.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cowguard/uring.h>

#include "harness.h"

#define PAGE 4096

/* An unlinked O_DIRECT file in $TMPDIR or /tmp, or -errno. */
static int odirect_tmpfile(void)
{
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	int fd = open(dir, O_TMPFILE | O_RDWR | O_DIRECT | O_CLOEXEC, 0600);

	return fd < 0 ? -errno : fd;
}

/* 4 KiB: 16 pages; THP and hugetlb: one 2 MiB unit. */
static size_t test_len(enum h_kind kind)
{
	return kind == H_4K ? 16 * PAGE : 2 * MIB;
}

START_TEST(odirect_write_pinned_after_fork_writes_the_parents_data)
{
	/* 1 GiB left out: writing a gigantic page to disk takes seconds. */
	enum h_kind kind = H_KIND(_i);
	int mode = H_MODE(_i);
	size_t len = test_len(kind), pages = len / PAGE;
	struct cg_stats st0, st1, st2;
	struct io_uring_cqe *cqe;
	struct io_uring_sqe *sqe;
	struct io_uring ring;
	struct cg_page_info info;
	struct cg_pin *pin;
	uint64_t *pfn;
	char *p, *rb;
	struct h_waiter w;
	int fd, status;
	struct cg *cg;

	fd = odirect_tmpfile();
	if (fd < 0) {
		h_skip("no O_DIRECT temporary file in $TMPDIR or /tmp: %s",
		       strerror(-fd));
		return;
	}
	p = h_map(kind, len, 'A');
	if (!p) {
		close(fd);
		return;
	}
	/* The pin copies every shared huge page while the child holds it. */
	if (!h_hugetlb_room(kind, len / h_page_size(kind))) {
		munmap(p, len);
		close(fd);
		return;
	}
	cg = h_open(mode);
	ck_assert_int_eq(cg_register(cg, p, len, 0), 0);
	w = h_fork_checking(&(struct h_check){ .at = { p }, .len = len,
					      .unit = PAGE, .expect = 'A' });
	ck_assert_int_eq(cg_stats(cg, &st0, sizeof(st0)), 0);
	ck_assert_int_eq(cg_query(cg, p, &info, sizeof(info)), 0);
	ck_assert_msg(!info.exclusive, "after fork the engine calls the page exclusive");
	ck_assert_int_eq(h_kpage(p).mapped_once, 0);

	/* Pinned before the SQE exists: nothing is shared when it is submitted. */
	ck_assert_int_eq(io_uring_queue_init(4, &ring, 0), 0);
	sqe = io_uring_get_sqe(&ring);
	ck_assert_ptr_nonnull(sqe);
	ck_assert_int_eq(cg_uring_prep_write_pinned(cg, sqe, fd, p, (unsigned)len,
						    0, &pin), 0);
	pfn = calloc(pages, sizeof(*pfn));
	ck_assert_ptr_nonnull(pfn);
	for (size_t i = 0; i < pages; i++) {
		struct h_kpage k = h_kpage(p + i * PAGE);

		ck_assert_int_eq(cg_query(cg, p + i * PAGE, &info, sizeof(info)), 0);
		ck_assert_msg(k.present && k.mapped_once && info.exclusive &&
			      info.pins == 1,
			      "%s %s, page %zu after the pin: kernel present %d "
			      "mapped once %d; engine exclusive %d pins %u",
			      h_mode_name(mode), h_kind_name(kind), i, k.present,
			      k.mapped_once, info.exclusive, info.pins);
		pfn[i] = k.pfn;
	}
	/* The range is MADV_DONTFORK while pinned (plain references on old kernels). */
	ck_assert_int_eq(h_vma_flag(p, "dc"), 1);
	/* cowguard copied every page, not the kernel's own unshare. */
	ck_assert_int_eq(cg_stats(cg, &st1, sizeof(st1)), 0);
	ck_assert_uint_eq(st1.unshare_copies - st0.unshare_copies, pages);
	ck_assert_uint_eq(st1.unshare_reuses - st0.unshare_reuses, 0);
	ck_assert_uint_eq(st1.pages_made_exclusive - st0.pages_made_exclusive, pages);
	ck_assert_uint_eq(st1.pins, st0.pins + 1);
	h_audit_clean(cg, p, len);

	/* The parent's write reuses the pinned frames: no copy, no fork share. */
	memset(p, 'B', len);
	for (size_t i = 0; i < pages; i++) {
		struct h_kpage k = h_kpage(p + i * PAGE);

		ck_assert_msg(k.mapped_once, "page %zu shared after the write", i);
		ck_assert_msg(k.pfn == pfn[i], "page %zu: frame %#llx pinned, "
			      "%#llx after the write", i, (unsigned long long)pfn[i],
			      (unsigned long long)k.pfn);
	}
	ck_assert_int_eq(io_uring_submit(&ring), 1);
	ck_assert_int_eq(io_uring_wait_cqe(&ring, &cqe), 0);
	ck_assert_int_eq(cqe->res, (int)len);
	io_uring_cqe_seen(&ring, cqe);
	ck_assert_int_eq(cg_unpin(pin), 0);
	ck_assert_int_eq(h_vma_flag(p, "dc"), 0);

	/* The file holds the parent's data, read back past the page cache. */
	rb = h_map(H_4K, len, 0);
	ck_assert_int_eq(pread(fd, rb, len, 0), (ssize_t)len);
	for (size_t i = 0; i < len; i += PAGE)
		ck_assert_msg(rb[i] == 'B' && rb[i + PAGE - 1] == 'B',
			      "file page %zu reads '%c'", i / PAGE, rb[i]);

	status = h_release(&w);
	ck_assert_msg(status == 0, "the child lost its data (exit %d)", status);
	h_audit_clean(cg, p, len);
	ck_assert_int_eq(cg_stats(cg, &st2, sizeof(st2)), 0);
	ck_assert_uint_eq(st2.pin_violations, st0.pin_violations);
	ck_assert_uint_eq(st2.pins, st0.pins);

	io_uring_queue_exit(&ring);
	free(pfn);
	cg_close(cg);
	munmap(rb, len);
	munmap(p, len);
	close(fd);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("uring O_DIRECT write sees the parent's data");
	TCase *tc = tcase_create("odirect");

	h_timeout(tc, 30);
	/* Each mode (H_MODE(_i)) with 4 KiB, THP and hugetlb 2 MiB (H_KIND(_i)). */
	h_add_test(tc, odirect_write_pinned_after_fork_writes_the_parents_data, H_MODES, H_KINDS_SHARED);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON | H_NEED_HUGETLB);
}
