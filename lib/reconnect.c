// SPDX-License-Identifier: MIT
/*
 * When cowguardd goes away (a crash, a restart by systemd's Restart=):
 *
 *  - Nothing hangs and nothing is lost.  The daemon held our only copy of
 *    the uffd: the kernel releases it, wakes every blocked fault and drops
 *    the write protection.  Our memory runs on, untracked.
 *  - The page state went with the daemon.  The handle is "lost": the next
 *    call (or the call that meets the hang-up) tries once to come back:
 *    a new connection and uffd, HELLO, and every region we had registered
 *    registered again.  Their history is unknown, so they start as a
 *    registration does (populated pages unshared and protected).
 *  - The daemon is not back: CG_MODE_AUTO goes on embedded with the same
 *    regions; CG_MODE_DAEMON answers -ENOTCONN and tries again at the next
 *    call.  cg_unregister() of a remembered region succeeds without the
 *    daemon: nothing tracks it any more.
 *
 * For this the handle remembers what the daemon accepted (start and length
 * of each region, bounded by the daemon's own region quota).  A region that
 * can no longer be registered as a whole (unmapped or moved by mremap since)
 * is forgotten.  Pins and statistics do not survive: they start afresh.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "handle.h"
#include "kernel/clock.h"

/*
 * The old uffd's release may trail its socket's: a region still registered
 * with it is EBUSY.  Wait for that this long in all, per reconnection.
 */
#define BUSY_RETRY_MS 1000

static bool conn_error(int err)
{
	return err == -ENOTCONN || err == -ECONNREFUSED || err == -ECONNRESET ||
	       err == -EPIPE || err == -ENOENT;
}

static int range_find(const struct cg *cg, uint64_t start, uint64_t len)
{
	for (size_t i = 0; i < cg->nranges; i++)
		if (cg->ranges[2 * i] == start && cg->ranges[2 * i + 1] == len)
			return (int)i;
	return -1;
}

static void range_del(struct cg *cg, size_t i)
{
	cg->nranges--;
	memmove(&cg->ranges[2 * i], &cg->ranges[2 * i + 2],
		(cg->nranges - i) * 2 * sizeof(*cg->ranges));
}

static void range_add(struct cg *cg, uint64_t start, uint64_t len)
{
	if (cg->nranges == cg->ranges_cap) {
		size_t cap = cg->ranges_cap ? 2 * cg->ranges_cap : 8;
		uint64_t *v = realloc(cg->ranges, cap * 2 * sizeof(*v));

		/* Out of memory: that region will not come back after a restart. */
		if (!v)
			return;
		cg->ranges = v;
		cg->ranges_cap = cap;
	}
	cg->ranges[2 * cg->nranges] = start;
	cg->ranges[2 * cg->nranges + 1] = len;
	cg->nranges++;
}

void cg__remember(struct cg *cg, const struct cg__req *req, int status)
{
	int i;

	if (req->op == CG_OP_REGISTER && !status)
		range_add(cg, req->addr, req->len);
	if (req->op == CG_OP_UNREGISTER && (!status || status == -ENOENT) &&
	    (i = range_find(cg, req->addr, req->len)) >= 0)
		range_del(cg, (size_t)i);
}

void cg__mark_lost(struct cg *cg)
{
	cg__client_close(&cg->cli);
	cg->lost = true;
}

/* Returns a transport error, else 0 and the daemon's answer in *status. */
static int daemon_register(struct cg *cg, uint64_t start, uint64_t len,
			   int *status, int *busy_ms)
{
	struct cg__req req;
	struct cg__rep rep;
	int ret;

	cg__req_init(&req, CG_OP_REGISTER);
	req.addr = start;
	req.len = len;
	req.flags = CG__REGISTER_UNSEEN;
	for (;; *busy_ms += 10) {
		ret = cg__client_call(&cg->cli, &req, &rep);
		*status = rep.status;
		if (ret || rep.status != -EBUSY || *busy_ms >= BUSY_RETRY_MS)
			return ret;
		cg__sleep_ms(10);
	}
}

/* Register every remembered region again; forget those that cannot be. */
static int reregister_daemon(struct cg *cg)
{
	int busy_ms = 0;

	for (size_t i = 0; i < cg->nranges;) {
		int status, ret = daemon_register(cg, cg->ranges[2 * i],
						  cg->ranges[2 * i + 1], &status,
						  &busy_ms);

		if (ret)
			return ret;
		if (status)
			range_del(cg, i);
		else
			i++;
	}
	return 0;
}

/* CG_MODE_AUTO with no daemon: the same regions, tracked in-process. */
static int go_embedded(struct cg *cg)
{
	struct cg__embedded *e;
	uint64_t until = cg__now_ns() + CG__REGISTER_AGAIN_NS;
	int ret = cg__embedded_open(&e);

	if (ret)
		return ret;
	/* One that cannot be registered is forgotten, as in daemon mode. */
	for (size_t i = 0; i < cg->nranges; i++)
		cg__embedded_register_again(e, cg->ranges[2 * i],
					    cg->ranges[2 * i + 1], until, false);
	/* The embedded engine keeps its own regions: the list is done with. */
	free(cg->ranges);
	cg->ranges = NULL;
	cg->nranges = cg->ranges_cap = 0;
	cg->emb = e;
	__atomic_store_n(&cg->mode, CG_MODE_EMBEDDED, __ATOMIC_RELEASE);
	cg->lost = false;
	return 0;
}

int cg__reconnect(struct cg *cg)
{
	char path[sizeof(cg->cli.path)];
	int ret;

	memcpy(path, cg->cli.path, sizeof(path));
	ret = cg__client_open(&cg->cli, path);
	if (!ret) {
		ret = reregister_daemon(cg);
		if (!ret) {
			cg->lost = false;
			return 0;
		}
	}
	cg__mark_lost(cg);
	if (cg->want == CG_MODE_AUTO)
		return go_embedded(cg);
	return conn_error(ret) ? -ENOTCONN : ret;
}

int cg__forget(struct cg *cg, uint64_t start, uint64_t len)
{
	int i = range_find(cg, start, len);

	if (i < 0)
		return -ENOENT;
	range_del(cg, (size_t)i);
	return 0;
}
