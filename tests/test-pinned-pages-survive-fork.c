// SPDX-License-Identifier: MIT
/*
 * fork() while a range is pinned leaves the parent's pinned pages where
 * they are, exclusive, in the engine and in the kernel, and shares the
 * rest as usual, as the kernel does for pinned pages:
 *  - a pin without CG_PIN_FOLL_PIN (the consumer holds plain references)
 *    is MADV_DONTFORK while pinned: the child has no mapping there, and
 *    touching it kills the child with SIGSEGV (rdma-core's behaviour);
 *  - a pin with CG_PIN_FOLL_PIN, the kernel pin really held (io_uring
 *    fixed buffers here): fork copies those pages for the child, which
 *    reads its own copy.
 * Both sides audit clean (the child audits itself), the unpinned rest is
 * maybe-shared on both sides, and the unpin after the child exits finds
 * nothing replaced.
 *
 * Bugs this catches: a pinned range marked shared by the fork (its next
 * write unshares it away from the consumer), a pinned range marked
 * exclusive although the kernel shared it, the child tracking memory it
 * does not map (or mistaking its copy of a pinned page for a shared one),
 * MADV_DONTFORK not applied (the child shares the page the consumer reads).
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "pin-util.h"

/* How much of the range is pinned: the first unit, or a quarter of 4 KiB. */
static size_t pinned_len(enum h_kind kind, size_t len)
{
	return kind == H_4K ? len / 4 : h_page_size(kind);
}

struct child_arg {
	struct cg *cg;
	char *p;
	size_t len, plen;
	bool dontfork;
	int rd;
};

/* Whether pagemap shows the page at p present (no ck_assert: a child). */
static bool present(const void *p)
{
	uint64_t pme = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	bool yes = fd >= 0 &&
		   pread(fd, &pme, 8, (off_t)((uintptr_t)p / PG) * 8) == 8 &&
		   (pme >> 63);

	if (fd >= 0)
		close(fd);
	return yes;
}

/*
 * The child: audits what it tracks, checks what it maps, and (DONTFORK)
 * touches the pinned range last, which must kill it with SIGSEGV.
 * Exit codes name the failed step; no ck_assert in a child.
 */
static int child_main(void *arg)
{
	struct child_arg *c = arg;
	struct cg_audit_report a;
	struct cg_page_info q;
	char go;

	if (read(c->rd, &go, 1) != 1)
		return 2;
	if (c->len > c->plen) {
		if (cg_audit(c->cg, c->p + c->plen, c->len - c->plen, &a, sizeof(a)))
			return 20;
		if (a.unsafe || a.conservative)
			return 21;
		if (cg_query(c->cg, c->p + c->plen, &q, sizeof(q)) || q.exclusive)
			return 22;
		if (c->p[c->plen] != 'A')
			return 23;
	}
	if (c->dontfork) {
		unsigned char vec;

		if (cg_query(c->cg, c->p, &q, sizeof(q)) != -ENOENT)
			return 30;	/* tracks what it does not map */
		/*
		 * Mapped after all: the parent's page (31), or something the
		 * child mapped since in the hole fork left (32: a thread's
		 * stack, ASan's allocator; seen under ASan).
		 */
		if (mincore(c->p, PG, &vec) == 0)
			return *(volatile char *)c->p == 'A' ? 31 : 32;
		/* Die of it, even under ASan (which catches SIGSEGV). */
		signal(SIGSEGV, SIG_DFL);
		*(volatile char *)c->p;	/* SIGSEGV */
		return 33;
	}
	/* 6.18 loses a private 1 GiB page at fork now and then: see below. */
	if (!present(c->p))
		return 50;
	if (cg_audit(c->cg, c->p, c->plen, &a, sizeof(a)))
		return 40;
	if (a.unsafe || a.conservative)
		return 41;
	if (c->p[0] != 'A' || c->p[c->plen - 1] != 'A')
		return 42;
	return 0;
}

static void fork_while_pinned(int i, bool foll_pin)
{
	enum h_kind kind = H_KIND(i);
	size_t len = ph_len(kind), plen = pinned_len(kind, len);
	struct io_uring ring;
	struct cg_pin *pin;
	uint64_t *was = calloc(len / PG, sizeof(*was));
	int fds[2], status, ret;
	pid_t child;
	struct cg *cg;
	char *p;

	ck_assert_ptr_nonnull(was);
	p = h_map(kind, len, 'A');
	if (!p)
		goto out_free;
	/* Fork copies a pinned hugetlb page for the child. */
	if (!h_hugetlb_room(kind, foll_pin ? 1 : 0)) {
		munmap(p, len);
		goto out_free;
	}
	cg = h_open(H_MODE(i));
	ck_assert_int_eq(cg_register(cg, p, len, 0), 0);
	ck_assert_int_eq(cg_pin(cg, p, plen, CG_PIN_RO |
				(foll_pin ? CG_PIN_FOLL_PIN : 0), &pin), 0);
	if (foll_pin) {
		struct iovec iov = { p, plen };

		ck_assert_int_eq(io_uring_queue_init(4, &ring, 0), 0);
		ret = io_uring_register_buffers(&ring, &iov, 1);
		if (ret == -EFAULT) {
			/*
			 * 6.1: io_uring's write pin cannot wait for a
			 * userfaultfd, a WP fault is EFAULT there.  Take the
			 * write faults first, as cg_uring_register_buffers().
			 */
			ck_assert_int_eq(madvise(p, plen, MADV_POPULATE_WRITE), 0);
			ret = io_uring_register_buffers(&ring, &iov, 1);
		}
		if (ret) {
			h_skip("%s: io_uring cannot pin %zu bytes (%s)",
			       h_kind_name(kind), plen, strerror(-ret));
			io_uring_queue_exit(&ring);
			cg_unpin(pin);
			goto out_close;
		}
	} else {
		ck_assert_int_eq(h_vma_flag(p, "dc"), 1);	/* MADV_DONTFORK */
	}
	ph_for_each_page(off, kind, len)
		was[off / PG] = ph_pfn(p + off);

	ck_assert_int_eq(pipe(fds), 0);
	child = h_fork(child_main, &(struct child_arg){
		cg, p, len, plen, !foll_pin, fds[0] });
	close(fds[0]);

	/* The parent: pinned pages in place and ours, the rest shared. */
	ph_for_each_page(off, kind, len) {
		struct cg_page_info q = ph_query(cg, p + off);
		int k = ph_kernel_exclusive(p + off, kind);

		if (off < plen) {
			ck_assert_msg(q.exclusive && q.pins == 1 && k != 0,
				      "pinned page %zu after fork: exclusive %d "
				      "pins %u, kernel %d", off / PG, q.exclusive,
				      q.pins, k);
			ck_assert_msg(ph_pfn(p + off) == was[off / PG],
				      "pinned page %zu moved at fork", off / PG);
		} else {
			ck_assert_msg(!q.exclusive && q.pins == 0 && k != 1,
				      "unpinned page %zu after fork: exclusive %d "
				      "pins %u, kernel %d", off / PG, q.exclusive,
				      q.pins, k);
		}
	}
	h_audit_clean(cg, p, len);

	ck_assert_int_eq(write(fds[1], "g", 1), 1);
	close(fds[1]);
	status = h_wait(child);
	if (foll_pin && status == 50 && kind == H_HUGETLB_1G)
		/*
		 * Measured on 6.18 without cowguard too: in about 1 fork of 6
		 * a private 1 GiB page is neither shared nor copied; the child
		 * maps nothing there.
		 */
		h_skip("%s: fork gave the child no page (6.18 kernel)",
		       h_kind_name(kind));
	else if (foll_pin)
		ck_assert_msg(status == 0, "child exited %d (2x: the shared "
			      "rest, 4x: its copy of the pinned range, 50: no "
			      "page there)", status);
	else if (status == 32)
		printf("NOTE: %s: the child mapped something else where the "
		       "pinned range was; not the parent's page\n",
		       h_kind_name(kind));
	else
		ck_assert_msg(status == 128 + SIGSEGV, "child exited %d, not "
			      "killed by SIGSEGV (3x: the pinned range; 2x: the "
			      "shared rest)", status);

	if (foll_pin) {
		io_uring_unregister_buffers(&ring);
		io_uring_queue_exit(&ring);
	}
	ck_assert_int_eq(cg_unpin(pin), 0);
	ck_assert_int_eq(h_vma_flag(p, "dc"), 0);
	h_audit_clean(cg, p, len);
out_close:
	cg_close(cg);
	munmap(p, len);
out_free:
	free(was);
}

START_TEST(a_pin_without_a_kernel_pin_keeps_its_pages_out_of_the_child)
{
	fork_while_pinned(_i, false);
}
END_TEST

START_TEST(a_pin_with_a_kernel_pin_keeps_its_pages_and_the_child_gets_a_copy)
{
	fork_while_pinned(_i, true);
}
END_TEST

/*
 * Pins that overlap, in a chain: letting one go lets fork reach only the
 * pages no other pin holds.  A page it let go too early would be shared
 * by the next fork while a consumer reads it.
 */
START_TEST(an_unpin_leaves_out_of_a_fork_what_other_pins_still_hold)
{
	/* In pages: pins [0, 8), [4, 12), [10, 14) of 16. */
	static const size_t from[3] = { 0, 4, 10 }, to[3] = { 8, 12, 14 };
	/* Held after the unpin of pins 0, then 1, then 2: a bit a page. */
	static const unsigned held[3] = { 0x3ff0, 0x3c00, 0 };
	struct cg_pin *pin[3];
	struct cg *cg = h_open(H_MODE(_i));
	char *p = h_map(H_4K, 16 * PG, 'A');

	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(cg_register(cg, p, 16 * PG, 0), 0);
	for (int k = 0; k < 3; k++)
		ck_assert_int_eq(cg_pin(cg, p + from[k] * PG,
					(to[k] - from[k]) * PG, CG_PIN_RO, &pin[k]), 0);
	for (int k = 0; k < 3; k++) {
		uint64_t kept;

		ck_assert_int_eq(cg_unpin(pin[k]), 0);
		kept = h_vma_flag_pages(p, 16, "dc");
		ck_assert_msg(kept == held[k], "after unpin %d: pages %#llx kept "
			      "from fork, not %#x", k, (unsigned long long)kept, held[k]);
	}
	h_audit_clean(cg, p, 16 * PG);
	cg_close(cg);
	munmap(p, 16 * PG);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pinned pages survive fork");
	TCase *tc = tcase_create("fork");

	h_timeout(tc, 30);
	h_add_modes_kinds(tc, a_pin_without_a_kernel_pin_keeps_its_pages_out_of_the_child);
	h_add_modes_kinds(tc, a_pin_with_a_kernel_pin_keeps_its_pages_and_the_child_gets_a_copy);
	h_add_modes(tc, an_unpin_leaves_out_of_a_fork_what_other_pins_still_hold);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON | H_NEED_HUGETLB);
}
