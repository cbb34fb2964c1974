/* SPDX-License-Identifier: MIT */
/*
 * What the verbs tests that need a real device share (test-verbs-*.c):
 * open the first device, and a loopback pair of RC queue pairs on it, the
 * second of which reads what the first one's memory regions expose, with
 * RDMA READ, as a remote peer would.  Header-only, static inline, like
 * pin-util.h.  Without a device (the host: no INFINIBAND) vu_open() says so
 * with h_skip(); the QEMU soft-RoCE lane (rxe0) runs them.
 */
#ifndef CG_TEST_VERBS_UTIL_H
#define CG_TEST_VERBS_UTIL_H

#include <errno.h>
#include <string.h>
#include <time.h>

#include <infiniband/verbs.h>

#include "harness.h"

#define VU_PORT 1

struct vu_device {
	struct ibv_device **list;
	struct ibv_context *ctx;
	struct ibv_pd *pd;
};

/* The first device's PD, or false after saying why there is none. */
static inline bool vu_open(struct vu_device *d)
{
	int n = 0;

	memset(d, 0, sizeof(*d));
	d->list = ibv_get_device_list(&n);
	if (!d->list || n == 0) {
		if (d->list)
			ibv_free_device_list(d->list);
		h_skip("no RDMA device (ibv_get_device_list found none)");
		return false;
	}
	d->ctx = ibv_open_device(d->list[0]);
	ck_assert_msg(d->ctx != NULL, "ibv_open_device(%s): %s",
		      ibv_get_device_name(d->list[0]), strerror(errno));
	d->pd = ibv_alloc_pd(d->ctx);
	ck_assert_msg(d->pd != NULL, "ibv_alloc_pd: %s", strerror(errno));
	return true;
}

static inline void vu_close(struct vu_device *d)
{
	ibv_dealloc_pd(d->pd);
	ibv_close_device(d->ctx);
	ibv_free_device_list(d->list);
}

/* qp[0] exposes memory (REMOTE_READ); qp[1] reads it.  One CQ for both. */
struct vu_loop {
	struct ibv_cq *cq;
	struct ibv_qp *qp[2];
	union ibv_gid gid;
	int gid_index;
	enum ibv_mtu mtu;
};

/*
 * RoCE addresses a peer by GID: take this port's IPv4 one (::ffff:a.b.c.d,
 * what `ibv_rc_pingpong -g 1` used on rxe0), else its first non-zero one.
 */
static inline void vu_pick_gid(struct ibv_context *ctx, struct vu_loop *l)
{
	struct ibv_port_attr port;
	union ibv_gid gid;

	ck_assert_int_eq(ibv_query_port(ctx, VU_PORT, &port), 0);
	ck_assert_msg(port.state == IBV_PORT_ACTIVE, "port %d is not active "
		      "(state %d)", VU_PORT, port.state);
	l->mtu = port.active_mtu < IBV_MTU_1024 ? port.active_mtu : IBV_MTU_1024;
	l->gid_index = -1;
	for (int i = 0; i < port.gid_tbl_len; i++) {
		static const uint8_t v4[12] = { [10] = 0xff, [11] = 0xff };
		bool ipv4;

		if (ibv_query_gid(ctx, VU_PORT, i, &gid) || !gid.global.interface_id)
			continue;
		ipv4 = !memcmp(gid.raw, v4, sizeof(v4));
		if (l->gid_index < 0 || ipv4) {
			l->gid = gid;
			l->gid_index = i;
		}
		if (ipv4)
			break;
	}
	ck_assert_msg(l->gid_index >= 0, "port %d has no GID", VU_PORT);
}

static inline void vu_modify(struct ibv_qp *qp, struct ibv_qp_attr *a, int mask,
			     const char *state)
{
	int ret = ibv_modify_qp(qp, a, mask);

	ck_assert_msg(ret == 0, "ibv_modify_qp to %s: %s", state, strerror(ret));
}

/* INIT, RTR aimed at qp number dest on our own GID, RTS. */
static inline void vu_connect(struct vu_loop *l, struct ibv_qp *qp, uint32_t dest)
{
	struct ibv_qp_attr a = {
		.qp_state = IBV_QPS_INIT, .port_num = VU_PORT,
		.qp_access_flags = IBV_ACCESS_REMOTE_READ,
	};

	vu_modify(qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT |
			  IBV_QP_ACCESS_FLAGS, "INIT");
	a = (struct ibv_qp_attr){
		.qp_state = IBV_QPS_RTR, .path_mtu = l->mtu, .dest_qp_num = dest,
		.max_dest_rd_atomic = 1, .min_rnr_timer = 12,
		.ah_attr = { .is_global = 1, .port_num = VU_PORT,
			     .grh = { .dgid = l->gid, .sgid_index = l->gid_index,
				      .hop_limit = 1 } },
	};
	vu_modify(qp, &a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU |
			  IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
			  IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER, "RTR");
	a = (struct ibv_qp_attr){
		.qp_state = IBV_QPS_RTS, .timeout = 14, .retry_cnt = 7,
		.rnr_retry = 7, .max_rd_atomic = 1,
	};
	vu_modify(qp, &a, IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
			  IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC,
		  "RTS");
}

static inline void vu_loop_open(struct vu_device *d, struct vu_loop *l)
{
	struct ibv_qp_init_attr init = {
		.qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = 4, .max_recv_wr = 1, .max_send_sge = 1,
			 .max_recv_sge = 1 },
	};

	memset(l, 0, sizeof(*l));
	vu_pick_gid(d->ctx, l);
	l->cq = ibv_create_cq(d->ctx, 8, NULL, NULL, 0);
	ck_assert_msg(l->cq != NULL, "ibv_create_cq: %s", strerror(errno));
	init.send_cq = init.recv_cq = l->cq;
	for (int i = 0; i < 2; i++) {
		l->qp[i] = ibv_create_qp(d->pd, &init);
		ck_assert_msg(l->qp[i] != NULL, "ibv_create_qp: %s", strerror(errno));
	}
	vu_connect(l, l->qp[0], l->qp[1]->qp_num);
	vu_connect(l, l->qp[1], l->qp[0]->qp_num);
}

static inline void vu_loop_close(struct vu_loop *l)
{
	for (int i = 0; i < 2; i++)
		ibv_destroy_qp(l->qp[i]);
	ibv_destroy_cq(l->cq);
}

/*
 * qp[1] reads len bytes at remote (rkey: an MR of qp[0]'s PD) into dst
 * (lkey: a local MR with LOCAL_WRITE) and waits up to 10 s for it.
 */
static inline void vu_rdma_read(struct vu_loop *l, void *dst, uint32_t lkey,
				const void *remote, uint32_t rkey, size_t len)
{
	struct ibv_sge sge = { .addr = (uintptr_t)dst, .length = (uint32_t)len,
			       .lkey = lkey };
	struct ibv_send_wr wr = {
		.wr_id = 1, .sg_list = &sge, .num_sge = 1,
		.opcode = IBV_WR_RDMA_READ, .send_flags = IBV_SEND_SIGNALED,
		.wr.rdma = { .remote_addr = (uintptr_t)remote, .rkey = rkey },
	}, *bad = NULL;
	struct timespec start, now;
	struct ibv_wc wc;
	int n, ret;

	ret = ibv_post_send(l->qp[1], &wr, &bad);
	ck_assert_msg(ret == 0, "ibv_post_send(RDMA READ): %s", strerror(ret));
	clock_gettime(CLOCK_MONOTONIC, &start);
	while ((n = ibv_poll_cq(l->cq, 1, &wc)) == 0) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		ck_assert_msg(now.tv_sec - start.tv_sec < 10,
			      "RDMA READ: no completion in 10 s");
	}
	ck_assert_msg(n == 1, "ibv_poll_cq: %d", n);
	ck_assert_msg(wc.status == IBV_WC_SUCCESS, "RDMA READ: %s",
		      ibv_wc_status_str(wc.status));
	ck_assert_uint_eq(wc.wr_id, 1);
}

#endif
