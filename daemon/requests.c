// SPDX-License-Identifier: MIT
/*
 * Requests, one small function each.  What a connection may do follows
 * from who it is (SO_PEERCRED): an application acts on its own address
 * space; cowguardctl sees the clients of its own user, or all of them as
 * root; the op table at the end, made from lib/wire/protocol.h's CG_OP_MAP,
 * says which kind may send what, and who serves it.  Page frame numbers
 * and kernel page flags never leave the daemon: an audit returns counts
 * only.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "kernel/clock.h"
#include "kernel/uffd.h"

/*
 * A streamed reply makes at most this many packets a turn of the loop, so
 * that one long STATUS or audit does not keep everyone else waiting.
 */
#define STREAM_TURN 64
/*
 * A registration larger than this is answered after its pages are learned
 * a slice at a time (lib/engine/learn.c), for at most REGISTER_TURN_NS a turn of
 * the loop: one huge registration (1.4 s for 128 GiB, issue 11) must not
 * hold every other client's faults.  Smaller ones are one slice anyway.
 */
#define REGISTER_SLICE (4ULL << 20)
#define REGISTER_TURN_NS (5 * 1000 * 1000)
/*
 * An audit is cut the same way (64 GiB of sparse memory: 100 ms at once),
 * in shorter turns: a client auditing without pause gets a turn at every
 * pass of the loop, and another's fault and query take several passes.
 */
#define AUDIT_TURN_NS (2 * 1000 * 1000)
#define PIN_TURN_NS AUDIT_TURN_NS

/*
 * One packet of a stream: there is more to come, the end was sent, the
 * turn is over with nothing sent (an audit in slices), or the connection
 * must go.
 */
enum step {
	STEP_DROP = REQ_DROP, STEP_END = 0, STEP_MORE = 1, STEP_YIELD = 2
};

/* Never waits: conn.c queues what the socket does not take now. */
static enum req_result reply(struct conn *c, struct cg__rep *rep)
{
	int ret = conn_send(c, rep);

	if (ret == -ENOBUFS)
		conn_log(LOG_WARNING, c, "dropped: %u replies unread, its "
			 "queue is full", c->out.len);
	else if (ret)
		conn_log(LOG_WARNING, c, "dropped: cannot reply (%s)",
			 cg_strerror(ret));
	return ret ? REQ_DROP : REQ_KEEP;
}

static enum req_result reply_status(struct conn *c, const struct cg__req *req,
				    int status)
{
	struct cg__rep rep;

	cg__rep_init(&rep, req);
	rep.status = status;
	return reply(c, &rep);
}

static enum req_result do_hello(struct conn *c, const struct cg__req *req,
				int fd)
{
	struct client_files files;
	struct cg__rep rep;
	uint64_t features;
	char why[128];
	int ret;

	if (fd < 0 || !cg__is_uffd(fd)) {
		conn_log(LOG_WARNING, c, "refused: hello without a userfaultfd");
		if (fd >= 0)
			close(fd);
		reply_status(c, req, -EBADF);
		return REQ_DROP;
	}
	ret = gate_hello(c, why, sizeof(why));
	if (ret) {
		conn_log(LOG_WARNING, c, "refused: %s", why);
		close(fd);
		reply_status(c, req, ret);
		return REQ_DROP;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	/* We negotiate, not the client: EVENT_FORK needs CAP_SYS_PTRACE. */
	ret = cg__uffd_api(fd, cg__mm_uffd_wanted(), &features);
	if (!ret)
		ret = client_files_open(c, &files);
	if (!ret) {
		c->tracked = tracked_new(c->srv, fd, features, c->cred.pid,
					 c->cred.uid, &files);
		ret = c->tracked ? 0 : -ENOMEM;
	}
	if (ret) {
		close(fd);
		conn_log(LOG_WARNING, c, "refused: %s", cg_strerror(ret));
		reply_status(c, req, ret);
		return REQ_DROP;
	}
	conn_serve_tracked(c, c->tracked);
	if (req->flags & CG_HELLO_PRELOAD)
		c->tracked->preload_hooks = req->id;
	adopt_forks(c->tracked);
	cg__rep_init(&rep, req);
	rep.u.features = features;
	conn_log(LOG_INFO, c, "tracking, uffd features %#llx",
		 (unsigned long long)features);
	return reply(c, &rep);
}

/* Which adopted uffd is the peer's own, proven: daemon/adopt.c. */
static enum req_result do_child_hello(struct conn *c, const struct cg__req *req,
				      int fd)
{
	int ret = adopt_child_hello(c, req->pid);

	(void)fd;
	if (!ret && (req->flags & CG_HELLO_PRELOAD))
		c->tracked->preload_hooks = req->id;
	return reply_status(c, req, ret);
}

/* cowguardctl: it sees, it tracks nothing. */
static enum req_result do_ctl_hello(struct conn *c, const struct cg__req *req,
				    int fd)
{
	(void)fd;
	c->kind = CONN_CTL;
	return reply_status(c, req, 0);
}

static void log_registered(struct conn *c, const struct cg__req *req, int status)
{
	const struct cg__mm *mm = &c->tracked->mm;
	struct cg__status_region rec;

	/* Counting walks the region: not for a line that is not written. */
	if (!c->srv->opt.verbose)
		return;
	if (status || cg__mm_status_region_at(mm, req->addr, &rec)) {
		conn_log(LOG_DEBUG, c, "register %#llx+%#llx: %s",
			 (unsigned long long)req->addr,
			 (unsigned long long)req->len, cg_strerror(status));
		return;
	}
	conn_log(LOG_DEBUG, c, "registered %#llx+%#llx (%s): %llu pages "
		 "present, %llu exclusive", (unsigned long long)req->addr,
		 (unsigned long long)req->len, cg__mm_kind_at(mm, req->addr),
		 (unsigned long long)rec.present,
		 (unsigned long long)rec.exclusive);
}

/*
 * Per-user bounds (quota.c), before the engine adds anything.  A range the
 * engine would refuse anyway is left to it, for its errno.
 */
static int user_quota(struct conn *c, const struct cg__req *req)
{
	bool bad_range = !req->len || (req->addr | req->len) & (CG_PAGE_SIZE - 1) ||
			 req->addr + req->len < req->addr;

	if (bad_range)
		return 0;
	if (req->op == CG_OP_REGISTER)
		return quota_register(c->srv, c->tracked->uid, req->len);
	if (req->op == CG_OP_PIN)
		return quota_pin(c->srv, c->tracked->uid);
	return 0;
}


/*
 * The next slices of a lazy registration (a stream: requests sent
 * meanwhile wait, faults are served between turns).  Answered when none is
 * left; a failure undoes the registration.
 */
static enum req_result register_step(struct conn *c)
{
	struct stream *s = &c->stream;
	struct cg__mm *mm = &c->tracked->mm;
	uint64_t until = cg__now_ns() + REGISTER_TURN_NS;
	int ret;

	do
		ret = cg__mm_learn_pending(mm, REGISTER_SLICE, until);
	while (ret > 0 && cg__now_ns() < until);
	cg__mm_service_backlog(mm);
	if (ret > 0)
		return REQ_KEEP;
	s->active = false;
	if (ret)
		cg__mm_unregister(mm, s->req.addr, s->req.len);
	log_registered(c, &s->req, ret);
	if (reply_status(c, &s->req, ret))
		return REQ_DROP;
	return tracked_tampered(c->tracked) ? REQ_DROP : REQ_KEEP;
}

static enum req_result do_register_lazy(struct conn *c, const struct cg__req *req)
{
	struct cg__mm *mm = &c->tracked->mm;
	int ret = cg__mm_register_lazy(mm, req->addr, req->len);

	cg__mm_service_backlog(mm);
	if (ret == -EDQUOT || ret == -EMLINK)
		quota_client_refused(c->srv, c->cred.uid, c->cred.pid,
				     cg__op_name(req->op), ret);
	if (ret) {
		log_registered(c, req, ret);
		return reply_status(c, req, ret);
	}
	c->stream = (struct stream){ .req = *req, .active = true };
	return register_step(c);
}

/*
 * The next slice of an audit of t's [audit_start, audit_end): 1 while
 * more is left, 0 when s->audit is the report, or -errno.
 */
static int audit_slice(struct stream *s, struct tracked *t)
{
	int ret = 0;

	if (!s->auditing) {
		ret = cg__mm_audit_begin(&t->mm, s->audit_start,
					 s->audit_end - s->audit_start, &s->audit);
		s->pos = s->audit_start;
		s->auditing = !ret;
	}
	if (!ret)
		ret = cg__mm_audit_part(&t->mm, &s->pos, s->audit_end,
					&s->audit, cg__now_ns() + AUDIT_TURN_NS);
	cg__mm_service_backlog(&t->mm);
	tracked_backlog_check(t);
	if (ret <= 0)
		s->auditing = false;
	return ret;
}

/* AUDIT: answered when its last slice is done (a stream, as REGISTER). */
static enum req_result audit_range_step(struct conn *c)
{
	struct stream *s = &c->stream;
	int ret = audit_slice(s, c->tracked);
	struct cg__rep rep;

	if (ret > 0)
		return REQ_KEEP;
	s->active = false;
	cg__rep_init(&rep, &s->req);
	rep.status = ret;
	rep.u.audit = s->audit;
	if (reply(c, &rep))
		return REQ_DROP;
	return tracked_tampered(c->tracked) ? REQ_DROP : REQ_KEEP;
}

static enum req_result do_audit_range(struct conn *c,
				      const struct cg__req *req)
{
	c->stream = (struct stream){
		.req = *req, .active = true,
		.audit_start = req->addr, .audit_end = req->addr + req->len,
	};
	return audit_range_step(c);
}

/*
 * A pin the preload shim made: counted by its hook, which the pin's name
 * says (CG_PRELOAD_CONSUMER).  The client names it: this is what it asked
 * for, as the hooks in its hello are.
 */
static void count_preload_pin(struct tracked *t, const struct cg__req *req)
{
	static const char *const hooks[] = CG_PRELOAD_HOOK_NAMES;
	const size_t prefix = sizeof(CG_PRELOAD_CONSUMER) - 1;
	char name[sizeof(req->name) + 1] = "";

	if (!t->preload_hooks)
		return;
	memcpy(name, req->name, sizeof(req->name));
	if (strncmp(name, CG_PRELOAD_CONSUMER, prefix))
		return;
	for (size_t i = 0; i < sizeof(hooks) / sizeof(*hooks); i++)
		if (!strcmp(name + prefix, hooks[i]))
			t->preload_pins[i]++;
}

/* The engine's answer to req, logged where it says something. */
static enum req_result engine_reply(struct conn *c, const struct cg__req *req,
				    struct cg__rep *rep)
{
	if (rep->status == -EDQUOT || rep->status == -EMLINK)
		quota_client_refused(c->srv, c->cred.uid, c->cred.pid,
				     cg__op_name(req->op), rep->status);
	if (req->op == CG_OP_REGISTER)
		log_registered(c, req, rep->status);
	if (req->op == CG_OP_PIN && !rep->status)
		count_preload_pin(c->tracked, req);
	if (req->op == CG_OP_UNPIN && rep->status == -ENOTRECOVERABLE)
		conn_log(LOG_WARNING, c, "pin %llu violated: the page at "
			 "%#llx was replaced while pinned",
			 (unsigned long long)req->id,
			 (unsigned long long)rep->u.pinned.bad_addr);
	if (reply(c, rep))
		return REQ_DROP;
	return tracked_tampered(c->tracked) ? REQ_DROP : REQ_KEEP;
}

/*
 * PIN and UNPIN: a 2 MiB window at a time (lib/engine/pins.c), for at most
 * PIN_TURN_NS a turn.  In one go, a pin of 1 GiB shared with a child held
 * the loop 3.6 s, and the commit of a pin, or its unpin, 22-35 ms a GiB.
 */
static enum req_result pin_step(struct conn *c)
{
	struct stream *s = &c->stream;
	struct cg__rep rep;

	if (cg__mm_dispatch_step(&c->tracked->mm, &s->req, &rep,
				 cg__now_ns() + PIN_TURN_NS))
		return REQ_KEEP;
	s->active = false;
	return engine_reply(c, &s->req, &rep);
}

static enum req_result do_pin(struct conn *c, const struct cg__req *req)
{
	struct cg__rep rep;

	if (!cg__mm_dispatch_start(&c->tracked->mm, req, &rep))
		return engine_reply(c, req, &rep);
	c->stream = (struct stream){ .req = *req, .active = true };
	return pin_step(c);
}

/* What the engine serves, within the user's bounds (quota.c). */
static enum req_result do_engine(struct conn *c, const struct cg__req *req,
				 int fd)
{
	struct cg__rep rep;
	int ret = user_quota(c, req);

	(void)fd;
	if (ret)
		return reply_status(c, req, ret);
	if (req->op == CG_OP_REGISTER && !req->flags && req->len > REGISTER_SLICE)
		return do_register_lazy(c, req);
	if (req->op == CG_OP_AUDIT)
		return do_audit_range(c, req);
	if (req->op == CG_OP_PIN || req->op == CG_OP_UNPIN)
		return do_pin(c, req);
	cg__mm_dispatch(&c->tracked->mm, req, &rep);
	return engine_reply(c, req, &rep);
}

static bool may_see(const struct conn *c, const struct tracked *t)
{
	return c->cred.uid == 0 || c->cred.uid == t->uid;
}

static enum req_result send_client(struct conn *c, const struct cg__req *req,
				   struct tracked *t)
{
	struct cg__rep rep;

	cg__rep_init(&rep, req);
	rep.rec = CG_REC_CLIENT;
	/*
	 * Writes the kernel resolved on its own, counted for this record and
	 * the region records after it.  Failing, the counts are the last known.
	 */
	cg__mm_collect_all(&t->mm);
	cg__mm_status_client(&t->mm, &rep.u.client);
	rep.u.client.parent_pid = t->parent_pid;
	rep.u.client.uid = t->uid;
	rep.u.client.preload_hooks = t->preload_hooks;
	memcpy(rep.u.client.preload_pins, t->preload_pins,
	       sizeof(t->preload_pins));
	return reply(c, &rep);
}

/* A region's record, with its audit (and the audit's status) if any. */
static enum req_result send_region(struct conn *c, const struct cg__req *req,
				   const struct cg__status_region *rec,
				   const struct cg_audit_report *audit,
				   int status)
{
	struct cg__rep rep;

	cg__rep_init(&rep, req);
	rep.rec = CG_REC_REGION;
	rep.u.region = *rec;
	if (audit)
		rep.u.region.audit = *audit;
	rep.status = status;
	return reply(c, &rep);
}

static enum req_result send_end(struct conn *c, const struct cg__req *req,
				int status)
{
	struct cg__rep rep;

	cg__rep_init(&rep, req);
	rep.rec = CG_REC_END;
	rep.status = status;
	return reply(c, &rep);
}

/* ---- streamed replies ---------------------------------------------------
 *
 * STATUS, AUDIT_PID and PINS can be long: they go out a few packets at a
 * time, as the client reads (request_stream, called again by conn.c when
 * its socket has room).  Between turns tracked address spaces come and go,
 * so a stream holds a serial, never a pointer; a region or pin added or
 * removed meanwhile may be missed or listed twice, as in any listing of a
 * live system.
 */

/*
 * Give serials to the tracked that lack one: those made since the last
 * time, all at the head of the newest-first list.  The oldest of them gets
 * the smallest, so serials keep falling along the list.
 */
static void give_serials(struct server *srv)
{
	unsigned fresh = 0, left;

	for (struct tracked *t = srv->tracked; t && !t->serial; t = t->next)
		fresh++;
	left = fresh;
	for (struct tracked *t = srv->tracked; left; t = t->next)
		t->serial = srv->last_serial + left--;
	srv->last_serial += fresh;
}

/* STATUS: the first tracked c may see whose serial is at most at. */
static struct tracked *status_from(struct conn *c, struct tracked *t,
				   uint64_t at)
{
	for (; t; t = t->next)
		if (t->serial && t->serial <= at && !t->closing && may_see(c, t))
			return t;
	return NULL;
}

/* AUDIT_PID, PINS: the one tracked of the stream, if it is still there. */
static struct tracked *tracked_serial(struct server *srv, uint64_t serial)
{
	for (struct tracked *t = srv->tracked; t; t = t->next)
		if (t->serial == serial && !t->closing)
			return t;
	return NULL;
}

/* The end of a stream, with status. */
static enum step step_end(struct conn *c, int status)
{
	return send_end(c, &c->stream.req, status) ? STEP_DROP : STEP_END;
}

/*
 * One packet of each stream, from *t.  Record 0 is the client, then its
 * regions (or pins).
 */
static enum step status_step(struct conn *c, struct tracked **t)
{
	struct stream *s = &c->stream;
	struct cg__status_region rec;
	enum req_result ret;

	if (!*t)
		return step_end(c, 0);
	if ((*t)->serial != s->at) {	/* the one it was in went away */
		s->at = (*t)->serial;
		s->next = 0;
	}
	if (s->next == 0) {
		ret = send_client(c, &s->req, *t);
	} else if (cg__mm_status_region(&(*t)->mm, s->next - 1, &rec)) {
		*t = status_from(c, (*t)->next, s->at - 1);
		s->at = *t ? (*t)->serial : 0;
		s->next = 0;
		return STEP_MORE;
	} else {
		ret = send_region(c, &s->req, &rec, NULL, 0);
	}
	s->next++;
	return ret ? STEP_DROP : STEP_MORE;
}

static enum step audit_step(struct conn *c, struct tracked **t)
{
	struct stream *s = &c->stream;
	struct cg__status_region rec;
	enum req_result ret;
	int status;

	if (!*t)
		return step_end(c, -ESRCH);
	if (s->next == 0) {
		ret = send_client(c, &s->req, *t);
		s->next++;
		return ret ? STEP_DROP : STEP_MORE;
	}
	if (!s->auditing) {
		if (cg__mm_status_region(&(*t)->mm, s->next - 1, &rec)) {
			cg__mm_service_backlog(&(*t)->mm);
			tracked_backlog_check(*t);
			return step_end(c, 0);
		}
		s->audit_start = rec.start;
		s->audit_end = rec.start + rec.len;
	}
	status = audit_slice(s, *t);
	if (status > 0)
		return STEP_YIELD;
	/* The region audited, wherever the list moved it meanwhile. */
	ret = cg__mm_status_region_at(&(*t)->mm, s->audit_start, &rec)
		      ? REQ_KEEP
		      : send_region(c, &s->req, &rec, &s->audit, status);
	s->next++;
	return ret ? STEP_DROP : STEP_MORE;
}

static enum step pins_step(struct conn *c, struct tracked **t)
{
	struct stream *s = &c->stream;
	struct cg__rep rep;

	if (!*t)
		return step_end(c, -ESRCH);
	cg__rep_init(&rep, &s->req);
	rep.rec = CG_REC_PIN;
	if (cg__mm_status_pin(&(*t)->mm, s->next++, &rep.u.pin))
		return step_end(c, 0);
	return reply(c, &rep) ? STEP_DROP : STEP_MORE;
}

static enum req_result stream_turn(struct conn *c)
{
	struct stream *s = &c->stream;
	enum step (*step)(struct conn *, struct tracked **);
	enum step ret = STEP_MORE;
	struct tracked *t;

	if (s->req.op == CG_OP_REGISTER)
		return c->tracked ? register_step(c) : REQ_DROP;
	if (s->req.op == CG_OP_AUDIT)
		return c->tracked ? audit_range_step(c) : REQ_DROP;
	if (s->req.op == CG_OP_PIN || s->req.op == CG_OP_UNPIN)
		return c->tracked ? pin_step(c) : REQ_DROP;
	if (s->req.op == CG_OP_STATUS) {
		step = status_step;
		t = status_from(c, c->srv->tracked, s->at);
	} else {
		step = s->req.op == CG_OP_PINS ? pins_step : audit_step;
		t = tracked_serial(c->srv, s->at);
	}
	/* Pointers hold for a turn: a tracked is freed on a later one. */
	for (int n = 0; ret == STEP_MORE && n < STREAM_TURN && conn_has_room(c);
	     n++)
		ret = step(c, &t);
	if (ret == STEP_END || ret == STEP_DROP)
		s->active = false;
	return ret == STEP_DROP ? REQ_DROP : REQ_KEEP;
}

enum req_result request_stream(struct conn *c)
{
	enum req_result ret = stream_turn(c);

	if (c->tracked)
		tracked_backlog_check(c->tracked);
	return ret;
}

static enum req_result stream_start(struct conn *c, const struct cg__req *req,
				    uint64_t at)
{
	c->stream = (struct stream){ .req = *req, .at = at, .active = true };
	return request_stream(c);
}

static enum req_result do_status(struct conn *c, const struct cg__req *req,
				 int fd)
{
	(void)fd;
	give_serials(c->srv);
	return stream_start(c, req, c->srv->last_serial);
}

/* AUDIT_PID and PINS: one client's records, if c may see them. */
static enum req_result do_one_client(struct conn *c, const struct cg__req *req,
				     int fd)
{
	struct tracked *t = tracked_find_pid(c->srv, (pid_t)req->pid);

	(void)fd;
	if (!t)
		return send_end(c, req, -ESRCH);
	if (!may_see(c, t))
		return send_end(c, req, -EACCES);
	give_serials(c->srv);
	return stream_start(c, req, t->serial);
}

/* ---- snapshots by cowguardctl ------------------------------------------- */

/*
 * Whether c may make t's writes wait on it (a snapshot): root, or t's
 * own user where the kernel would let that user trace t.  /proc/PID/mem
 * is owned by root while a process is not dumpable (a setuid program, one
 * that said PR_SET_DUMPABLE 0); /proc/PID itself keeps its owner
 * (measured on 6.18).
 */
static bool may_act(const struct conn *c, const struct tracked *t)
{
	char path[40];
	struct stat st;

	if (c->cred.uid == 0)
		return true;
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)t->mm.pid);
	return c->cred.uid == t->uid && !stat(path, &st) &&
	       st.st_uid == c->cred.uid;
}

/* The engine of t serves req for cowguardctl; its status to *status. */
static enum req_result ctl_engine(struct conn *c, struct tracked *t,
				  const struct cg__req *req, int *status)
{
	struct cg__rep rep;

	cg__mm_dispatch(&t->mm, req, &rep);
	tracked_backlog_check(t);
	if (status)
		*status = rep.status;
	return reply(c, &rep) ? REQ_DROP : REQ_KEEP;
}

static enum req_result ctl_snapshot_begin(struct conn *c,
					  const struct cg__req *req)
{
	struct tracked *t = tracked_find_pid(c->srv, (pid_t)req->pid);
	enum req_result ret;
	int status;

	if (c->snap_of)
		return reply_status(c, req, -EBUSY);
	if (!t)
		return reply_status(c, req, -ESRCH);
	if (!may_see(c, t) || !may_act(c, t))
		return reply_status(c, req, -EACCES);
	/* The client's last image is its own: no parent for us. */
	if (req->flags)
		return reply_status(c, req, -EINVAL);
	ret = ctl_engine(c, t, req, &status);
	if (!status) {
		give_serials(c->srv);
		c->snap_of = t->serial;
		conn_log(LOG_INFO, c, "snapshot of pid %d begun", (int)t->mm.pid);
	}
	return ret;
}

/*
 * SNAPSHOT_*: a client's own, served by its engine as any op; or
 * cowguardctl's of a client it may act on, one at a time, begun with
 * req.pid and ended at the latest with its connection.
 */
static enum req_result do_snapshot(struct conn *c, const struct cg__req *req,
				   int fd)
{
	struct tracked *t;
	struct cg__req end;

	if (c->kind != CONN_CTL)
		return c->tracked ? do_engine(c, req, fd)
				  : reply_status(c, req, -EPERM);
	if (req->op == CG_OP_SNAPSHOT_BEGIN)
		return ctl_snapshot_begin(c, req);
	t = c->snap_of ? tracked_serial(c->srv, c->snap_of) : NULL;
	if (!t)
		return reply_status(c, req, c->snap_of ? -ESRCH : -ENOENT);
	if (req->op != CG_OP_SNAPSHOT_END)
		return ctl_engine(c, t, req, NULL);
	end = *req;
	end.flags |= CG__SNAP_NOT_OURS;
	c->snap_of = 0;
	return ctl_engine(c, t, &end, NULL);
}

void request_conn_gone(struct conn *c)
{
	struct tracked *t = c->snap_of ? tracked_serial(c->srv, c->snap_of)
				       : NULL;

	c->snap_of = 0;
	if (!t || cg__mm_snap_end(&t->mm, CG__SNAP_FAILED | CG__SNAP_NOT_OURS))
		return;
	tracked_backlog_check(t);
	conn_log(LOG_WARNING, c, "gone during its snapshot of pid %d: ended, "
		 "its writes go on", (int)t->mm.pid);
}

/* ---- the op table -------------------------------------------------------- */

/*
 * A handler of the table: the packet, and its fd, -1 unless the op's row
 * says it carries one.
 */
typedef enum req_result serve_fn(struct conn *c, const struct cg__req *req,
				 int fd);

/* Each op's row of CG_OP_MAP (lib/wire/protocol.h), its handler do_<served>. */
static const struct op {
	unsigned from;		/* enum cg__from: who may send it */
	bool fd;		/* its packet carries an fd */
	serve_fn *serve;
} ops[CG_OP_MAX] = {
#define X(name, str, from, fd, served)                                       \
	[CG_OP_##name] = { from, fd == CG_FD, do_##served },
	CG_OP_MAP(X)
#undef X
};

/* An op the map has not: the engine's to refuse, for a client only. */
static const struct op unknown_op = { CG_FROM_APP, false, do_engine };

static const struct op *op_row(unsigned op)
{
	return op < CG_OP_MAX && ops[op].serve ? &ops[op] : &unknown_op;
}

/*
 * Whether c may send op: it is of a kind the row names, and what the
 * engine serves needs an address space to serve it against.
 */
static bool allowed(const struct conn *c, const struct op *op)
{
	static const unsigned kind_is[] = {
		[CONN_NEW] = CG_FROM_NEW, [CONN_APP] = CG_FROM_APP,
		[CONN_CTL] = CG_FROM_CTL, [CONN_REFUSED] = 0,
	};

	if (!(op->from & kind_is[c->kind]))
		return false;
	return op->serve != do_engine || c->tracked;
}

/* A packet of another protocol, or of another major: refused, once said. */
static bool foreign(struct conn *c, const struct cg__req *req)
{
	if (req->magic != CG_PROTO_MAGIC) {
		conn_log(LOG_WARNING, c, "dropped: not the cowguard protocol");
		return true;
	}
	if (req->major == CG_PROTO_MAJOR)
		return false;
	conn_log(LOG_WARNING, c, "dropped: protocol %u.%u, we speak %u.%u",
		 req->major, req->minor, CG_PROTO_MAJOR, CG_PROTO_MINOR);
	reply_status(c, req, -EPROTONOSUPPORT);
	return true;
}

enum req_result request_dispatch(struct conn *c, const struct cg__req *req,
				 int fd)
{
	const struct op *op = op_row(req->op);
	enum req_result ret;

	if (foreign(c, req))
		goto drop;
	if (fd >= 0 && !op->fd) {
		conn_log(LOG_WARNING, c, "dropped: unexpected fd with %s",
			 cg__op_name(req->op));
		goto drop;
	}
	if (!allowed(c, op)) {
		conn_log(LOG_WARNING, c, "dropped: %s not allowed here",
			 cg__op_name(req->op));
		reply_status(c, req, -EPERM);
		goto drop;
	}
	ret = op->serve(c, req, fd);
	if (c->tracked)
		tracked_backlog_check(c->tracked);
	return ret;
drop:
	if (fd >= 0)
		close(fd);
	return REQ_DROP;
}
