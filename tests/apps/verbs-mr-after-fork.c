// SPDX-License-Identifier: MIT
/*
 * A program that knows nothing of cowguard: it fills a buffer, forks (the
 * child keeps a copy and waits), registers the buffer as a read-only RDMA
 * memory region on the first device, writes the buffer again, and
 * deregisters.  Before 5.19 the kernel's read-only pin does not unshare a
 * page still shared with the child, and the parent's write leaves the
 * device with the old page; under cowguard-run the shim pins first, and
 * its check at deregistration says whether a page was replaced.
 *
 *   verbs-mr-after-fork [--iova2]
 *     --iova2  register through ibv_reg_mr_iova2 (what ibv_reg_mr()
 *              calls when the access flags are not a constant)
 *
 * Exit status: 0 done, 2 error, 3 the child's copy changed, 77 no device.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <infiniband/verbs.h>

#include "waiting-child.h"

#define LEN (16 * 4096)

static int fail(const char *what)
{
	fprintf(stderr, "verbs-mr-after-fork: %s: %s\n", what, strerror(errno));
	return 2;
}

int main(int argc, char **argv)
{
	int iova2 = argc > 1 && !strcmp(argv[1], "--iova2"), n = 0, status;
	struct ibv_device **list = ibv_get_device_list(&n);
	char *p = mmap(NULL, LEN, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_mr *mr;
	struct waiting_child child;

	if (!list || !n) {
		printf("no RDMA device\n");
		return 77;
	}
	ctx = ibv_open_device(list[0]);
	pd = ctx ? ibv_alloc_pd(ctx) : NULL;
	if (!pd || p == MAP_FAILED)
		return fail("setup");
	memset(p, 'A', LEN);
	child = waiting_child_start(p, LEN);
	if (child.pid < 0)
		return fail("fork");
	mr = iova2 ? ibv_reg_mr_iova2(pd, p, LEN, (uintptr_t)p,
				      IBV_ACCESS_REMOTE_READ)
		   : ibv_reg_mr(pd, p, LEN, IBV_ACCESS_REMOTE_READ);
	if (!mr)
		return fail("ibv_reg_mr");
	memset(p, 'B', LEN);
	if (ibv_dereg_mr(mr))
		return fail("ibv_dereg_mr");
	status = waiting_child_end(&child);
	if (status < 0)
		return fail("child");
	ibv_dealloc_pd(pd);
	ibv_close_device(ctx);
	ibv_free_device_list(list);
	printf("registered and deregistered %d bytes on %s\n", LEN,
	       ibv_get_device_name(list[0]) ? "the first device" : "?");
	return status ? 3 : 0;
}
