// SPDX-License-Identifier: MIT
/*
 * A peer that reads a read-only memory region with RDMA READ sees what the
 * application wrote there after a fork, not the page the child still has.
 *
 * The buffer is COW-shared with a child when it is registered; the parent
 * then writes new data; a second queue pair on the same device (a loopback
 * RC connection, as a remote peer would read) fetches the region.  Through
 * cg_ibv_reg_mr() cowguard has made every page exclusive before the kernel
 * pinned it, so the write lands in the pinned page and cg_ibv_dereg_mr()
 * finds nothing replaced.
 *
 * The opposite case, a registration without cowguard that pins the shared
 * page and lets the parent's write go to a copy, exists only on a kernel
 * whose read-only long-term pin neither breaks COW nor unshares.  Debian's
 * 6.1 pins every MR for writing (ib_umem_get: FOLL_WRITE | FOLL_FORCE
 * until 6.2), which breaks COW at registration; 5.19 and later unshare a
 * read-only FOLL_LONGTERM pin.  The second case registers without cowguard
 * and shows the stale read where the kernel lets the page stay shared;
 * where it does not, it shows that the kernel made every page exclusive
 * itself, and skips saying so.  That is why the first case asserts
 * cowguard's own counters: on these kernels it would pass without it.
 *
 * Needs an RDMA device: the QEMU soft-RoCE lane (rxe0) runs it, the host
 * (no INFINIBAND) skips saying so.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cowguard/verbs.h>

#include "harness.h"
#include "pin-util.h"
#include "verbs-util.h"

#define NPAGES 64
#define LEN (NPAGES * PG)

/* Each page its own byte, so a page read from the wrong frame shows. */
static void fill_new(char *p)
{
	for (size_t i = 0; i < NPAGES; i++)
		memset(p + i * PG, 'a' + (int)(i % 26), PG);
}

/* The device, the loopback pair, and a local buffer qp[1] reads into. */
struct rig {
	struct vu_device d;
	struct vu_loop l;
	struct ibv_mr *dst_mr;
	char *dst;
};

static bool rig_open(struct rig *r)
{
	if (!vu_open(&r->d))
		return false;
	vu_loop_open(&r->d, &r->l);
	r->dst = mmap(NULL, LEN, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert(r->dst != MAP_FAILED);
	memset(r->dst, 0, LEN);
	r->dst_mr = ibv_reg_mr(r->d.pd, r->dst, LEN, IBV_ACCESS_LOCAL_WRITE);
	ck_assert_msg(r->dst_mr != NULL, "ibv_reg_mr(target): %s", strerror(errno));
	return true;
}

static void rig_close(struct rig *r)
{
	ibv_dereg_mr(r->dst_mr);
	munmap(r->dst, LEN);
	vu_loop_close(&r->l);
	vu_close(&r->d);
}

/*
 * RDMA READ the region at p (rkey) and compare with what p holds now:
 * the first page that differs, or -1.
 */
static long read_back(struct rig *r, const char *p, uint32_t rkey)
{
	vu_rdma_read(&r->l, r->dst, r->dst_mr->lkey, p, rkey, LEN);
	for (size_t i = 0; i < NPAGES; i++)
		if (memcmp(r->dst + i * PG, p + i * PG, PG))
			return (long)i;
	return -1;
}

START_TEST(with_cowguard_an_rdma_read_after_the_parents_write_returns_it)
{
	struct cg_mr *mr = NULL;
	struct cg_stats s0, s1;
	struct h_waiter w;
	struct rig r;
	struct cg *cg;
	uint64_t pfn;
	long diff;
	char *p;

	if (!rig_open(&r))
		return;
	p = h_map(H_4K, LEN, 'A');
	cg = h_open(_i);
	ck_assert_int_eq(cg_register(cg, p, LEN, 0), 0);
	w = h_fork_waiting(p, 'A');
	ck_assert_int_eq(ph_kernel_exclusive(p, H_4K), 0);

	s0 = ph_stats(cg);
	ck_assert_int_eq(cg_ibv_reg_mr(cg, r.d.pd, p, LEN, IBV_ACCESS_REMOTE_READ,
				       &mr), 0);
	s1 = ph_stats(cg);
	/* cowguard's own doing, before the kernel pinned anything. */
	ck_assert_uint_eq(s1.unshare_copies - s0.unshare_copies, NPAGES);
	ck_assert_uint_eq(s1.pins - s0.pins, 1);
	ph_for_each_page(off, H_4K, LEN)
		ck_assert_int_eq(ph_kernel_exclusive(p + off, H_4K), 1);

	pfn = ph_pfn(p);
	fill_new(p);
	ck_assert_uint_eq(ph_pfn(p), pfn);
	diff = read_back(&r, p, cg_ibv_mr(mr)->rkey);
	ck_assert_msg(diff < 0, "RDMA READ: page %ld is not what the parent "
		      "wrote (read '%c', wrote '%c')", diff, r.dst[diff * PG],
		      p[diff * PG]);

	ck_assert_int_eq(cg_ibv_dereg_mr(mr), 0);
	ck_assert_uint_eq(ph_stats(cg).pin_violations, s0.pin_violations);
	ck_assert_int_eq(h_release(&w), 0);	/* the child read 'A' */
	h_audit_clean(cg, p, LEN);
	cg_close(cg);
	munmap(p, LEN);
	rig_close(&r);
}
END_TEST

/* How many pages of p the kernel says are exclusive to us now. */
static size_t kernel_exclusive_pages(const char *p)
{
	size_t n = 0;

	ph_for_each_page(off, H_4K, LEN)
		n += ph_kernel_exclusive(p + off, H_4K) == 1;
	return n;
}

START_TEST(without_cowguard_the_read_is_stale_unless_the_kernel_unshares)
{
	struct h_waiter w;
	size_t exclusive;
	struct ibv_mr *mr;
	struct rig r;
	long diff;
	char *p;

	if (!rig_open(&r))
		return;
	p = h_map(H_4K, LEN, 'A');
	w = h_fork_waiting(p, 'A');
	ck_assert_uint_eq(kernel_exclusive_pages(p), 0);

	mr = ibv_reg_mr(r.d.pd, p, LEN, IBV_ACCESS_REMOTE_READ);
	ck_assert_msg(mr != NULL, "ibv_reg_mr: %s", strerror(errno));
	exclusive = kernel_exclusive_pages(p);
	fill_new(p);
	diff = read_back(&r, p, mr->rkey);

	if (exclusive == NPAGES) {
		ck_assert_msg(diff < 0, "the kernel unshared, yet page %ld "
			      "read stale", diff);
		h_skip("no stale read to show: this kernel made all %d pages "
		       "exclusive when it pinned the read-only MR (6.1: "
		       "ib_umem_get pins FOLL_WRITE|FOLL_FORCE; 5.19+: "
		       "read-only long-term pins unshare)", NPAGES);
	} else {
		/* The shared pages were pinned; the write went to copies. */
		ck_assert_msg(diff >= 0 && r.dst[diff * PG] == 'A',
			      "%zu of %d pages stayed shared, yet the read "
			      "returned the parent's data", NPAGES - exclusive,
			      NPAGES);
	}
	ck_assert_int_eq(ibv_dereg_mr(mr), 0);
	ck_assert_int_eq(h_release(&w), 0);
	munmap(p, LEN);
	rig_close(&r);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("verbs RDMA READ sees the parent's write");
	TCase *tc = tcase_create("rdma read");

	h_timeout(tc, 60);
	h_add_modes(tc, with_cowguard_an_rdma_read_after_the_parents_write_returns_it);
	h_add(tc, without_cowguard_the_read_is_stale_unless_the_kernel_unshares);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
