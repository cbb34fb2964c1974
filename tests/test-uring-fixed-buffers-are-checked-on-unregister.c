// SPDX-License-Identifier: MIT
/*
 * io_uring fixed buffers registered through cowguard are exclusive before
 * the kernel pins them, and checked when they are unregistered.
 *
 * The kernel pins fixed buffers FOLL_WRITE | FOLL_LONGTERM until they are
 * unregistered, and fork() copies FOLL_PIN'd pages for the child: no fork,
 * followed or raw, can make the ring's page and ours differ (the third case
 * shows it).  What does replace a page under the ring is the application
 * itself: MADV_DONTNEED, then a write, maps a new page while the ring keeps
 * the old one and writes it out (the second case shows the stale write);
 * cg_uring_unregister_buffers() must then fail with -ENOTRECOVERABLE and
 * count the violation.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cowguard/uring.h>

#include "harness.h"

#define PAGE 4096

struct fixture {
	enum h_kind kind;
	int mode;
	size_t len, pages, unit;
	char *p;
	int fd;
	struct io_uring ring;
	struct cg *cg;
	uint64_t *pfn;		/* each page's frame, as assert_pinned_exclusive() first saw it */
	char *got;		/* the first byte of each page, as write_fixed() read it */
};

/*
 * Each mode (H_MODE(i)) with 4 KiB, THP and hugetlb 2 MiB (H_KIND(i)); 1 GiB is
 * left out (seconds of O_DIRECT per gigantic page).  copies: huge pages the
 * case will need beyond the buffer's own (ignored for other kinds).  False
 * after a skip.
 */
static bool setup(struct fixture *f, int i, unsigned long copies)
{
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";

	*f = (struct fixture){ .kind = H_KIND(i), .mode = H_MODE(i) };
	f->unit = h_page_size(f->kind);
	f->len = f->kind == H_4K ? 16 * PAGE : 2 * MIB;
	f->pages = f->len / PAGE;
	f->fd = open(dir, O_TMPFILE | O_RDWR | O_DIRECT | O_CLOEXEC, 0600);
	if (f->fd < 0) {
		h_skip("no O_DIRECT temporary file in %s: %s", dir, strerror(errno));
		return false;
	}
	f->p = h_map(f->kind, f->len, 'A');
	if (!f->p || !h_hugetlb_room(f->kind, copies)) {
		if (f->p)
			munmap(f->p, f->len);
		close(f->fd);
		return false;
	}
	f->cg = h_open(f->mode);
	ck_assert_int_eq(cg_register(f->cg, f->p, f->len, 0), 0);
	ck_assert_int_eq(io_uring_queue_init(4, &f->ring, 0), 0);
	f->pfn = calloc(f->pages, sizeof(*f->pfn));
	f->got = calloc(f->pages, 1);
	ck_assert(f->pfn && f->got);
	return true;
}

static void teardown(struct fixture *f)
{
	io_uring_queue_exit(&f->ring);
	cg_close(f->cg);
	munmap(f->p, f->len);
	close(f->fd);
	free(f->pfn);
	free(f->got);
}

/* The whole buffer registered with the ring, through cowguard. */
static struct cg_uring_bufs *register_all(struct fixture *f)
{
	struct iovec iov = { f->p, f->len };
	struct cg_uring_bufs *bufs;

	ck_assert_int_eq(cg_uring_register_buffers(f->cg, &f->ring, &iov, 1, &bufs),
			 0);
	return bufs;
}

/* WRITE_FIXED the whole buffer to the file; f->got: each page read back. */
static void write_fixed(struct fixture *f)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&f->ring);
	struct io_uring_cqe *cqe;
	char *rb = h_map(H_4K, f->len, 0);

	ck_assert_ptr_nonnull(sqe);
	io_uring_prep_write_fixed(sqe, f->fd, f->p, (unsigned)f->len, 0, 0);
	ck_assert_int_eq(io_uring_submit(&f->ring), 1);
	ck_assert_int_eq(io_uring_wait_cqe(&f->ring, &cqe), 0);
	ck_assert_int_eq(cqe->res, (int)f->len);
	io_uring_cqe_seen(&f->ring, cqe);
	ck_assert_int_eq(pread(f->fd, rb, f->len, 0), (ssize_t)f->len);
	for (size_t i = 0; i < f->pages; i++)
		f->got[i] = rb[i * PAGE];
	munmap(rb, f->len);
}

/* Every page mapped once and exclusive with one pin in the engine; frames out. */
static void assert_pinned_exclusive(struct fixture *f, const char *what)
{
	for (size_t i = 0; i < f->pages; i++) {
		struct h_kpage k = h_kpage(f->p + i * PAGE);
		struct cg_page_info info;

		ck_assert_int_eq(cg_query(f->cg, f->p + i * PAGE, &info, sizeof(info)), 0);
		ck_assert_msg(k.present && k.mapped_once && info.exclusive &&
			      info.pins == 1,
			      "%s %s, %s, page %zu: kernel present %d mapped once "
			      "%d; engine exclusive %d pins %u",
			      h_mode_name(f->mode), h_kind_name(f->kind), what, i,
			      k.present, k.mapped_once, info.exclusive, info.pins);
		if (f->pfn[i])
			ck_assert_msg(k.pfn == f->pfn[i], "%s, page %zu: frame %#llx, "
				      "was %#llx", what, i, (unsigned long long)k.pfn,
				      (unsigned long long)f->pfn[i]);
		else
			f->pfn[i] = k.pfn;
	}
}

/* The parent writes 'B' in place, and the ring writes that to the file. */
static void the_parents_write_reaches_the_file(struct fixture *f)
{
	memset(f->p, 'B', f->len);
	assert_pinned_exclusive(f, "after the parent's write");
	write_fixed(f);
	for (size_t i = 0; i < f->pages; i++)
		ck_assert_msg(f->got[i] == 'B', "file page %zu reads '%c'", i,
			      f->got[i]);
}

START_TEST(buffers_registered_after_a_fork_are_exclusive_and_unregister_cleanly)
{
	struct fixture f;
	struct cg_stats st0, st1, st2;
	struct cg_uring_bufs *bufs;
	struct h_waiter w;
	int status;

	/* Registration copies every huge page the child shares. */
	if (!setup(&f, _i, 1))
		return;
	w = h_fork_checking(&(struct h_check){ .at = { f.p }, .len = f.len,
					      .unit = PAGE, .expect = 'A' });
	ck_assert_int_eq(h_kpage(f.p).mapped_once, 0);
	ck_assert_int_eq(cg_stats(f.cg, &st0, sizeof(st0)), 0);

	bufs = register_all(&f);
	assert_pinned_exclusive(&f, "registered");
	/* cowguard copied them: the kernel's write pin found them exclusive. */
	ck_assert_int_eq(cg_stats(f.cg, &st1, sizeof(st1)), 0);
	ck_assert_uint_eq(st1.unshare_copies - st0.unshare_copies, f.pages);
	ck_assert_uint_eq(st1.pages_made_exclusive - st0.pages_made_exclusive, f.pages);
	ck_assert_uint_eq(st1.pins, st0.pins + 1);
	/* A fixed buffer is FOLL_PIN'd by the kernel: no MADV_DONTFORK. */
	ck_assert_int_eq(h_vma_flag(f.p, "dc"), 0);

	the_parents_write_reaches_the_file(&f);
	ck_assert_int_eq(cg_uring_unregister_buffers(bufs), 0);
	status = h_release(&w);
	ck_assert_msg(status == 0, "the child lost its data (exit %d)", status);
	h_audit_clean(f.cg, f.p, f.len);
	ck_assert_int_eq(cg_stats(f.cg, &st2, sizeof(st2)), 0);
	ck_assert_uint_eq(st2.pin_violations, st0.pin_violations);
	ck_assert_uint_eq(st2.pins, st0.pins);
	teardown(&f);
}
END_TEST

START_TEST(a_page_replaced_under_the_ring_fails_the_unregister)
{
	struct fixture f;
	struct cg_stats st0, st1;
	struct cg_uring_bufs *bufs;

	/* The write after MADV_DONTNEED faults in a new huge page. */
	if (!setup(&f, _i, 1))
		return;
	ck_assert_int_eq(cg_stats(f.cg, &st0, sizeof(st0)), 0);
	bufs = register_all(&f);

	/* Behind the ring's back: a new page where the ring holds the old. */
	ck_assert_int_eq(madvise(f.p, f.unit, MADV_DONTNEED), 0);
	memset(f.p, 'C', f.unit);
	write_fixed(&f);
	/* The kernel fact that makes this a violation: the ring wrote 'A'. */
	ck_assert_msg(f.got[0] == 'A', "the ring wrote '%c', not the page it "
		      "pinned ('A')", f.got[0]);

	ck_assert_int_eq(cg_uring_unregister_buffers(bufs), -ENOTRECOVERABLE);
	ck_assert_int_eq(cg_stats(f.cg, &st1, sizeof(st1)), 0);
	ck_assert_uint_eq(st1.pin_violations, st0.pin_violations + 1);
	ck_assert_uint_eq(st1.pins, st0.pins);
	teardown(&f);
}
END_TEST

START_TEST(a_raw_fork_while_registered_leaves_the_buffers_intact)
{
	struct fixture f;
	struct cg_stats st0, st1;
	struct cg_uring_bufs *bufs;
	struct h_waiter w;
	int status;

	/* Fork copies each pinned huge page for the child. */
	if (!setup(&f, _i, 1))
		return;
	ck_assert_int_eq(cg_stats(f.cg, &st0, sizeof(st0)), 0);
	bufs = register_all(&f);
	assert_pinned_exclusive(&f, "registered");

	w = h_fork_checking(&(struct h_check){ .at = { f.p }, .len = f.len,
					      .unit = PAGE, .expect = 'A',
					      .raw = true });
	/* The kernel copied the pinned pages for the child: ours stay put. */
	assert_pinned_exclusive(&f, "after a raw fork");
	h_audit_clean(f.cg, f.p, f.len);
	the_parents_write_reaches_the_file(&f);
	ck_assert_int_eq(cg_uring_unregister_buffers(bufs), 0);
	status = h_release(&w);
	ck_assert_msg(status == 0, "the child lost its data (exit %d)", status);
	ck_assert_int_eq(cg_stats(f.cg, &st1, sizeof(st1)), 0);
	ck_assert_uint_eq(st1.pin_violations, st0.pin_violations);
	teardown(&f);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("uring fixed buffers are checked on unregister");
	TCase *tc = tcase_create("fixed");

	h_timeout(tc, 30);
	h_add_test(tc, buffers_registered_after_a_fork_are_exclusive_and_unregister_cleanly, H_MODES, H_KINDS_SHARED);
	h_add_test(tc, a_page_replaced_under_the_ring_fails_the_unregister, H_MODES, H_KINDS_SHARED);
	h_add_test(tc, a_raw_fork_while_registered_leaves_the_buffers_intact, H_MODES, H_KINDS_SHARED);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON | H_NEED_HUGETLB);
}
