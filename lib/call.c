// SPDX-License-Identifier: MIT
/*
 * Every request of a handle comes here, and here it is decided who serves
 * it: cowguardd over the handle's socket, or the engine in this process
 * (lib/embedded.c), which a handle opened embedded or fallen back to
 * (lib/reconnect.c) uses.  Both are handed the same packet.
 */
#include <errno.h>
#include <poll.h>

#include "handle.h"
#include "kernel/clock.h"

/* What the embedded engine gives an ioctl that events make fail. */
#define PATIENCE_MS 2000

/* A hang-up waiting on the socket: the daemon is gone. */
static bool hung_up(int sock)
{
	struct pollfd p = { .fd = sock, .events = POLLIN };

	return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR));
}

/* After falling back, a request raced in by a thread that saw daemon mode. */
static int serve_embedded(struct cg *cg, const struct cg__req *req,
			  struct cg__rep *rep)
{
	struct cg__embedded *e = cg->emb;

	/* A dead handler thread answers with its error, the request unrun. */
	cg__rep_init(rep, req);
	cg__embedded_check(e);
	rep->status = CG__EMBEDDED_CALL(e, cg__mm_dispatch(&e->mm, req, rep));
	return 0;
}

/*
 * cowguardd gives an ioctl on our uffd a few milliseconds while our events
 * (a fork, madvise or munmap in another thread) make it fail, since it
 * serves others meanwhile; then it answers -ETIME, having changed nothing.
 * We have the time: ask again, for as long as the embedded engine waits.
 */
static int call_patiently(struct cg *cg, struct cg__req *req,
			  struct cg__rep *rep)
{
	int ret;

	for (int ms = 0;; ms++) {
		ret = cg__client_call(&cg->cli, req, rep);
		if (ret || rep->status != -ETIME || ms >= PATIENCE_MS)
			return ret;
		cg__sleep_ms(1);
	}
}

/* *met_hang_up: the daemon went away under this very request. */
static int call_once(struct cg *cg, struct cg__req *req, struct cg__rep *rep,
		     bool *met_hang_up)
{
	int ret;

	if (!cg->lost && cg->mode == CG_MODE_DAEMON && hung_up(cg->cli.sock))
		cg__mark_lost(cg);
	if (cg->lost && req->op == CG_OP_UNREGISTER) {
		/* Nothing tracks it now: forgetting it is all there is to do. */
		cg__rep_init(rep, req);
		rep->status = cg__forget(cg, req->addr, req->len);
		return 0;
	}
	if (cg->lost) {
		ret = cg__reconnect(cg);
		if (ret)
			return ret;
	}
	if (cg->mode == CG_MODE_EMBEDDED)
		return serve_embedded(cg, req, rep);
	ret = call_patiently(cg, req, rep);
	/* After a timeout a late reply would answer the next request. */
	if (ret == -ENOTCONN || ret == -ETIMEDOUT)
		cg__mark_lost(cg);
	*met_hang_up = ret == -ENOTCONN;
	if (!ret)
		cg__remember(cg, req, rep->status);
	return ret;
}

/*
 * The call that meets the hang-up is asked once more, of whoever serves
 * now (the daemon back, or this process under CG_MODE_AUTO): what it did
 * in the daemon, if anything, went with the daemon's state.  Seen: a
 * restore's last cg_register() raced the daemon's death and failed.
 */
int cg__call_locked(struct cg *cg, struct cg__req *req, struct cg__rep *rep)
{
	bool met_hang_up = false;
	int ret = call_once(cg, req, rep, &met_hang_up);

	if (met_hang_up)
		ret = call_once(cg, req, rep, &met_hang_up);
	return ret;
}

int cg__call(struct cg *cg, struct cg__req *req, struct cg__rep *rep)
{
	int ret;

	pthread_mutex_lock(&cg->lock);
	ret = cg->broken ? cg->broken : cg__call_locked(cg, req, rep);
	pthread_mutex_unlock(&cg->lock);
	return ret ? ret : rep->status;
}
