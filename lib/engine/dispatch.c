// SPDX-License-Identifier: MIT
/*
 * One request against one tracked address space.  cowguardd serves its
 * clients' packets with it and the embedded mode serves the same packets
 * in-process, so that a request means one thing whoever runs the engine.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "pins.h"
#include "wire/protocol.h"

static void answer_pin(const struct cg__req *req, struct cg__rep *rep,
		       int status, const struct cg__pin_result *res)
{
	rep->status = status;
	rep->u.pinned.id = req->op == CG_OP_UNPIN ? req->id : res->id;
	rep->u.pinned.bad_addr = res->bad_addr;
	rep->u.pinned.bad_len = res->bad_len;
	rep->u.pinned.move_len = res->move_len;
}

/* A PIN or UNPIN begins: 1 while it goes on, 0 when rep holds the answer. */
static int start_pin(struct cg__mm *mm, const struct cg__req *req,
		     struct cg__rep *rep)
{
	struct cg__pin_result res;
	char name[CG_CONSUMER_LEN];
	int ret;

	if (req->op == CG_OP_UNPIN) {
		ret = cg__mm_unpin_start(mm, req->id, &res);
	} else {
		memcpy(name, req->name, sizeof(name));
		name[sizeof(name) - 1] = 0;
		ret = cg__mm_pin_start(mm, req->addr, req->len, req->flags, name,
				       &res);
	}
	if (!ret)
		return 1;
	answer_pin(req, rep, ret, &res);
	return 0;
}

int cg__mm_dispatch_step(struct cg__mm *mm, const struct cg__req *req,
			 struct cg__rep *rep, uint64_t until_ns)
{
	struct cg__pin_result res;
	int ret = cg__mm_pin_step(mm, &res, until_ns);

	cg__mm_service_backlog(mm);
	if (ret > 0)
		return 1;
	cg__rep_init(rep, req);
	answer_pin(req, rep, ret, &res);
	return 0;
}

/*
 * In the daemon, every request answers from what was opened of the
 * process that said hello: once it exec'd, exited or became less
 * dumpable, nothing more is told or done (-ESRCH, -EPERM).  Its uffd is
 * still served, so its writes never wait.
 */
static int process_gone(struct cg__mm *mm)
{
	return mm->proc.pidfd >= 0 ? cg__proc_check(&mm->proc, mm->pagemap_fd)
				   : 0;
}

int cg__mm_dispatch_start(struct cg__mm *mm, const struct cg__req *req,
			  struct cg__rep *rep)
{
	if (req->op != CG_OP_PIN && req->op != CG_OP_UNPIN) {
		cg__mm_dispatch(mm, req, rep);
		return 0;
	}
	cg__rep_init(rep, req);
	rep->status = process_gone(mm);
	if (!rep->status && start_pin(mm, req, rep))
		return 1;
	cg__mm_service_backlog(mm);
	return 0;
}

static int track_collect(struct cg__mm *mm, const struct cg__req *req,
			 struct cg__rep *rep)
{
	size_t n = 0, max = req->id < CG__TRACK_MAX ? req->id : CG__TRACK_MAX;
	int ret = cg__mm_track_collect(mm, req->addr, req->len, rep->u.track.r,
				       max, &n, &rep->u.track.next);

	rep->u.track.n = (uint32_t)n;
	return ret;
}

int cg__mm_dispatch(struct cg__mm *mm, const struct cg__req *req,
		    struct cg__rep *rep)
{
	cg__rep_init(rep, req);
	rep->status = process_gone(mm);
	if (rep->status)
		return rep->status;
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
		/* Counters of writes the kernel resolved: learned now. */
		rep->status = cg__mm_collect_all(mm);
		cg__mm_stats(mm, &rep->u.stats);
		break;
	case CG_OP_FORK_PREPARE:
		rep->status = cg__mm_fork_prepare(mm);
		break;
	case CG_OP_MOVE:
		rep->status = cg__mm_move_done(mm, req->addr, req->len);
		break;
	case CG_OP_TRACK_COLLECT:
		rep->status = track_collect(mm, req, rep);
		break;
	case CG_OP_SNAPSHOT_BEGIN:
		rep->status = cg__mm_snap_begin(mm, req->flags);
		break;
	case CG_OP_SNAPSHOT_STEP:
		rep->status = cg__mm_snap_step(mm, req->addr, req->len,
					       &rep->u.snap);
		break;
	case CG_OP_SNAPSHOT_END:
		rep->status = cg__mm_snap_end(mm, req->flags);
		break;
	case CG_OP_PIN:
	case CG_OP_UNPIN:
		if (start_pin(mm, req, rep))
			while (cg__mm_dispatch_step(mm, req, rep, 0))
				;
		break;
	default:
		rep->status = -EOPNOTSUPP;
	}
	cg__mm_service_backlog(mm);
	return rep->status;
}

/* ---- STATUS, AUDIT_PID and PINS records of one mm ---------------------- */

void cg__mm_status_client(const struct cg__mm *mm,
			  struct cg__status_client *out)
{
	struct cg__mm_counts counts;

	memset(out, 0, sizeof(*out));
	cg__mm_counts(mm, &counts);
	out->pid = mm->pid;
	out->nregions = (uint32_t)mm->nregions;
	out->features = mm->features;
	cg__mm_stats(mm, &out->stats);
	out->present = counts.present;
	out->exclusive = counts.exclusive;
	out->shared = counts.shared;
	out->dirty = counts.dirty;
	out->wp = counts.wp;
	out->footprint = cg__mm_footprint(mm);
}

static uint32_t page_kind(const struct cg__region *r)
{
	if (r->kind == CG_RK_HUGETLB)
		return r->unit_shift == CG_PUD_SHIFT ? CG_PAGE_HUGETLB_1G
						     : CG_PAGE_HUGETLB_2M;
	return r->kind == CG_RK_THP ? CG_PAGE_THP : CG_PAGE_4K;
}

static void status_region(const struct cg__mm *mm, const struct cg__region *r,
			  struct cg__status_region *out)
{
	struct cg__mm_counts counts;

	memset(out, 0, sizeof(*out));
	cg__mm_region_counts(r, &counts);
	out->pid = mm->pid;
	out->start = r->start;
	out->len = r->len;
	out->kind = page_kind(r);
	out->present = counts.present;
	out->exclusive = counts.exclusive;
	out->shared = counts.shared;
	out->dirty = counts.dirty;
	out->wp = counts.wp;
}

int cg__mm_status_region(const struct cg__mm *mm, size_t i,
			 struct cg__status_region *out)
{
	if (i >= mm->nregions)
		return -ENOENT;
	status_region(mm, mm->regions[i], out);
	return 0;
}

int cg__mm_status_region_at(const struct cg__mm *mm, uint64_t addr,
			    struct cg__status_region *out)
{
	const struct cg__region *r = cg__mm_find(mm, addr);

	if (!r)
		return -ENOENT;
	status_region(mm, r, out);
	return 0;
}

int cg__mm_status_pin(const struct cg__mm *mm, size_t i,
		      struct cg__status_pin *out)
{
	const struct cg__pin *p;
	struct timespec now;

	if (i >= mm->npins)
		return -ENOENT;
	p = mm->pins[i];
	clock_gettime(CLOCK_BOOTTIME, &now);
	*out = (struct cg__status_pin){
		.pid = mm->pid, .id = p->id, .start = p->start, .len = p->len,
		.flags = p->flags,
		.age_ms = (uint64_t)now.tv_sec * 1000 +
			  (uint64_t)now.tv_nsec / 1000000 - p->created_ms,
	};
	memcpy(out->consumer, p->consumer, sizeof(out->consumer));
	return 0;
}
