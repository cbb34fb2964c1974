// SPDX-License-Identifier: MIT
/*
 * A program that knows nothing of cowguard: it fills a buffer, forks (the
 * child keeps a copy and waits), registers the buffer as a read-only RDMA
 * memory region, writes 'B' into it, and has a second queue pair of its
 * own read the region back with RDMA READ, as a remote peer would.
 * A read-only pin that left a page shared with the child would let the
 * parent's write move the parent to a new page, and the device would read
 * the old one: 'A'.  The kernels here do not: 5.10's and 6.1's
 * ib_umem_get() pin every MR for writing (FOLL_FORCE for a read-only one),
 * which breaks COW, and 5.19+ unshares read-only pins.  Under cowguard-run
 * the shim pins first as well.
 *
 * Exit status: 0 the device read 'B', 1 it read 'A', 2 error, 3 the
 * child's copy changed, 77 no device.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <infiniband/verbs.h>

#include "waiting-child.h"

#define LEN (4 * 4096)
#define PORT 1

static int fail(const char *what, int err)
{
	fprintf(stderr, "verbs-rdma-read-after-fork: %s: %s\n", what,
		strerror(err));
	return 2;
}

/* This port's IPv4 GID (::ffff:a.b.c.d), else its first: RoCE's address. */
static int pick_gid(struct ibv_context *ctx, union ibv_gid *gid, int *index,
		    enum ibv_mtu *mtu)
{
	static const uint8_t v4[12] = { [10] = 0xff, [11] = 0xff };
	struct ibv_port_attr port;
	union ibv_gid g;

	if (ibv_query_port(ctx, PORT, &port) || port.state != IBV_PORT_ACTIVE)
		return -1;
	*mtu = port.active_mtu < IBV_MTU_1024 ? port.active_mtu : IBV_MTU_1024;
	*index = -1;
	for (int i = 0; i < port.gid_tbl_len; i++) {
		bool ipv4;

		if (ibv_query_gid(ctx, PORT, i, &g) || !g.global.interface_id)
			continue;
		ipv4 = !memcmp(g.raw, v4, sizeof(v4));
		if (*index < 0 || ipv4) {
			*gid = g;
			*index = i;
		}
		if (ipv4)
			break;
	}
	return *index < 0 ? -1 : 0;
}

/* INIT, RTR aimed at dest on our own GID, RTS. */
static int connect_qp(struct ibv_qp *qp, uint32_t dest, union ibv_gid gid,
		      int index, enum ibv_mtu mtu)
{
	struct ibv_qp_attr a = { .qp_state = IBV_QPS_INIT, .port_num = PORT,
				 .qp_access_flags = IBV_ACCESS_REMOTE_READ };

	if (ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX |
				      IBV_QP_PORT | IBV_QP_ACCESS_FLAGS))
		return -1;
	a = (struct ibv_qp_attr){
		.qp_state = IBV_QPS_RTR, .path_mtu = mtu, .dest_qp_num = dest,
		.max_dest_rd_atomic = 1, .min_rnr_timer = 12,
		.ah_attr = { .is_global = 1, .port_num = PORT,
			     .grh = { .dgid = gid, .sgid_index = (uint8_t)index,
				      .hop_limit = 1 } },
	};
	if (ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU |
				      IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
				      IBV_QP_MAX_DEST_RD_ATOMIC |
				      IBV_QP_MIN_RNR_TIMER))
		return -1;
	a = (struct ibv_qp_attr){ .qp_state = IBV_QPS_RTS, .timeout = 14,
				  .retry_cnt = 7, .rnr_retry = 7,
				  .max_rd_atomic = 1 };
	return ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_TIMEOUT |
				     IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
				     IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC)
		       ? -1 : 0;
}

/* qp reads len bytes of the remote MR into dst; 0, or -1. */
static int rdma_read(struct ibv_qp *qp, struct ibv_cq *cq, struct ibv_mr *dst,
		     struct ibv_mr *src)
{
	struct ibv_sge sge = { .addr = (uintptr_t)dst->addr, .length = LEN,
			       .lkey = dst->lkey };
	struct ibv_send_wr wr = {
		.wr_id = 1, .sg_list = &sge, .num_sge = 1,
		.opcode = IBV_WR_RDMA_READ, .send_flags = IBV_SEND_SIGNALED,
		.wr.rdma = { .remote_addr = (uintptr_t)src->addr,
			     .rkey = src->rkey },
	}, *bad = NULL;
	time_t start = time(NULL);
	struct ibv_wc wc;
	int n;

	if (ibv_post_send(qp, &wr, &bad))
		return -1;
	while ((n = ibv_poll_cq(cq, 1, &wc)) == 0)
		if (time(NULL) - start > 10)
			return -1;
	return n == 1 && wc.status == IBV_WC_SUCCESS ? 0 : -1;
}

int main(void)
{
	struct ibv_qp_init_attr init = {
		.qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = 4, .max_recv_wr = 1, .max_send_sge = 1,
			 .max_recv_sge = 1 },
	};
	int n = 0, index, status;
	struct ibv_device **list = ibv_get_device_list(&n);
	char *p = mmap(NULL, LEN, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *dst = mmap(NULL, LEN, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct ibv_mr *src_mr, *dst_mr;
	struct ibv_context *ctx;
	struct ibv_qp *qp[2];
	struct ibv_cq *cq;
	struct ibv_pd *pd;
	union ibv_gid gid;
	enum ibv_mtu mtu;
	struct waiting_child child;

	if (!list || !n) {
		printf("no RDMA device\n");
		return 77;
	}
	ctx = ibv_open_device(list[0]);
	pd = ctx ? ibv_alloc_pd(ctx) : NULL;
	cq = ctx ? ibv_create_cq(ctx, 8, NULL, NULL, 0) : NULL;
	if (!pd || !cq || p == MAP_FAILED || dst == MAP_FAILED ||
	    pick_gid(ctx, &gid, &index, &mtu))
		return fail("setup", errno);
	init.send_cq = init.recv_cq = cq;
	for (int i = 0; i < 2; i++)
		if (!(qp[i] = ibv_create_qp(pd, &init)))
			return fail("ibv_create_qp", errno);
	if (connect_qp(qp[0], qp[1]->qp_num, gid, index, mtu) ||
	    connect_qp(qp[1], qp[0]->qp_num, gid, index, mtu))
		return fail("connect", errno);
	memset(p, 'A', LEN);
	memset(dst, 0, LEN);
	child = waiting_child_start(p, LEN);
	if (child.pid < 0)
		return fail("fork", errno);
	src_mr = ibv_reg_mr(pd, p, LEN, IBV_ACCESS_REMOTE_READ);
	dst_mr = ibv_reg_mr(pd, dst, LEN, IBV_ACCESS_LOCAL_WRITE);
	if (!src_mr || !dst_mr)
		return fail("ibv_reg_mr", errno);
	memset(p, 'B', LEN);
	if (rdma_read(qp[1], cq, dst_mr, src_mr))
		return fail("RDMA READ", EIO);
	printf("the device read '%c' (the buffer now holds '%c')\n", dst[0], p[0]);
	if (ibv_dereg_mr(src_mr) || ibv_dereg_mr(dst_mr))
		return fail("ibv_dereg_mr", errno);
	status = waiting_child_end(&child);
	if (status < 0)
		return fail("child", errno);
	for (int i = 0; i < 2; i++)
		ibv_destroy_qp(qp[i]);
	ibv_destroy_cq(cq);
	ibv_dealloc_pd(pd);
	ibv_close_device(ctx);
	ibv_free_device_list(list);
	if (status)
		return 3;
	return dst[0] == 'B' && dst[LEN - 1] == 'B' ? 0 : 1;
}
