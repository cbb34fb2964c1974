// SPDX-License-Identifier: MIT
/*
 * One request against one tracked address space.  cowguardd serves its
 * clients' packets with it and the embedded mode serves the same packets
 * in-process, so that a request means one thing whoever runs the engine.
 */
#include <errno.h>
#include <string.h>

#include "mm.h"
#include "pin.h"
#include "protocol.h"

static int pin(struct cg__mm *mm, const struct cg__req *req,
	       struct cg__rep *rep)
{
	struct cg__pin_result res;
	char name[CG_CONSUMER_LEN];
	int ret;

	memcpy(name, req->name, sizeof(name));
	name[sizeof(name) - 1] = 0;
	ret = cg__mm_pin(mm, req->addr, req->len, req->flags, name, &res);
	rep->u.pinned.id = res.id;
	rep->u.pinned.bad_addr = res.bad_addr;
	rep->u.pinned.bad_len = res.bad_len;
	return ret;
}

static int unpin(struct cg__mm *mm, const struct cg__req *req,
		 struct cg__rep *rep)
{
	struct cg__pin_result res;
	int ret = cg__mm_unpin(mm, req->id, &res);

	rep->u.pinned.id = req->id;
	rep->u.pinned.bad_addr = res.bad_addr;
	return ret;
}

int cg__mm_dispatch(struct cg__mm *mm, const struct cg__req *req,
		    struct cg__rep *rep)
{
	cg__rep_init(rep, req);
	/*
	 * In the daemon, every request answers from what was opened of the
	 * process that said hello: once it exec'd, exited or became less
	 * dumpable, nothing more is told or done (-ESRCH, -EPERM).  Its uffd
	 * is still served, so its writes never wait.
	 */
	if (mm->proc.pidfd >= 0) {
		rep->status = cg__proc_check(&mm->proc, mm->pagemap_fd);
		if (rep->status)
			return rep->status;
	}
	switch (req->op) {
	case CG_OP_REGISTER:
		rep->status = cg__mm_register(mm, req->addr, req->len, req->flags);
		break;
	case CG_OP_UNREGISTER:
		rep->status = cg__mm_unregister(mm, req->addr, req->len);
		break;
	case CG_OP_QUERY:
		rep->status = cg__mm_query(mm, req->addr, &rep->u.page);
		break;
	case CG_OP_AUDIT:
		rep->status = cg__mm_audit(mm, req->addr, req->len, &rep->u.audit);
		break;
	case CG_OP_STATS:
		cg__mm_stats(mm, &rep->u.stats);
		break;
	case CG_OP_FORK_PREPARE:
		rep->status = cg__mm_fork_prepare(mm);
		break;
	case CG_OP_PIN:
		rep->status = pin(mm, req, rep);
		break;
	case CG_OP_UNPIN:
		rep->status = unpin(mm, req, rep);
		break;
	default:
		rep->status = -EOPNOTSUPP;
	}
	cg__mm_service_backlog(mm);
	return rep->status;
}
