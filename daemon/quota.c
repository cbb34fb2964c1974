// SPDX-License-Identifier: MIT
/*
 * Per-user quotas.  A user can open many connections and fork many
 * children, so bounds per client bound nothing: what one user makes the
 * daemon hold is summed over every address space tracked for that uid,
 * adopted children included (they are tracked under their parent's uid).
 *
 * Checked where state is added (a registration, a pin, an adopted child),
 * against what it would add, so the daemon refuses before it grows rather
 * than after.  State that grows with the client's own writes (a chunk's
 * pages diverging: at most 4 bits per registered 4 KiB page) is bounded by
 * the bytes a user may register.
 *
 * Root is bounded too, at ROOT_FACTOR times each bound: the system's own
 * services all run as root and share that one uid, so it gets several
 * users' worth; but not without bound, so that a runaway root service
 * cannot take the daemon from everyone else.
 *
 * Sums are taken over the tracked list when asked, not kept: they cannot
 * drift from what is really held, and they are asked only by requests that
 * add state, never by faults.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/sysinfo.h>

#include "daemon.h"

/* Refusals of one kind are logged once a second at most, with a count. */
#define QUOTA_LOG_MS 1000
/* Root's processes together get this many users' worth. */
#define ROOT_FACTOR 4
/* The default --max-user-memory: this, or a 16th of RAM if less. */
#define MEM_DEFAULT (256ULL << 20)

struct usage {
	uint64_t bytes, mem;
	uint32_t pins, children;
};

/* uid's share of a bound. */
static uint64_t bound(uid_t uid, uint64_t max)
{
	if (uid)
		return max;
	return max > UINT64_MAX / ROOT_FACTOR ? UINT64_MAX : max * ROOT_FACTOR;
}

/* The daemon's memory for one tracked address space, estimated. */
static uint64_t tracked_mem(const struct tracked *t)
{
	return sizeof(*t) + cg__mm_footprint(&t->mm);
}

/* What uid holds; the memory (a walk of every region) only if mem. */
static void usage_of(const struct server *srv, uid_t uid, bool mem,
		     struct usage *u)
{
	*u = (struct usage){ 0 };
	for (const struct tracked *t = srv->tracked; t; t = t->next) {
		struct cg_stats st;

		if (t->closing || t->uid != uid)
			continue;
		cg__mm_stats(&t->mm, &st);
		u->bytes += st.registered_bytes;
		u->pins += (uint32_t)st.pins;
		u->children += !t->conn && t->parent_pid;
		u->mem += mem ? tracked_mem(t) : 0;
	}
}

static uint64_t mem_default(void)
{
	struct sysinfo si;
	uint64_t ram;

	if (sysinfo(&si))
		return MEM_DEFAULT;
	ram = (uint64_t)si.totalram * si.mem_unit;
	return ram / 16 < MEM_DEFAULT ? ram / 16 : MEM_DEFAULT;
}

/*
 * One line per refusal, or a count when they come faster than that: a
 * client looping on a refused request must not flood the journal.  Whether
 * to log one of this kind now; *more says whether some went unlogged.
 */
static bool log_due(struct server *srv, int kind, bool *more)
{
	struct refusal_log *rl = &srv->quota_log[kind];
	uint64_t now = uv_now(srv->loop) + 1;	/* 0 is "never" */

	if (rl->last_ms && now - rl->last_ms < QUOTA_LOG_MS) {
		rl->unlogged++;
		return false;
	}
	*more = rl->unlogged;
	rl->last_ms = now;
	rl->unlogged = 0;
	return true;
}

#define MORE_REFUSED " (and more refused since the last such line)"

static void refused(struct server *srv, int kind, uid_t uid, const char *what,
		    uint64_t have, uint64_t add, uint64_t max, const char *opt)
{
	bool more;

	if (log_due(srv, kind, &more))
		log_warn("uid %u: refused: %s %" PRIu64 " + %" PRIu64 " over %"
			 PRIu64 " (%s)%s", (unsigned)uid, what, have, add, max,
			 opt, more ? MORE_REFUSED : "");
}

void quota_client_refused(struct server *srv, uid_t uid, pid_t pid,
			  const char *op, int status)
{
	bool vmas = status == -EMLINK, more;

	if (log_due(srv, vmas ? QUOTA_VMAS : QUOTA_CLIENT, &more))
		log_warn("pid %d uid %u: refused: %s %s%s", (int)pid,
			 (unsigned)uid, op, vmas ?
			 "of a process with more VMAs than --max-client-vmas" :
			 "over a bound of the client (--max-regions, "
			 "--max-bytes, --max-pins)", more ? MORE_REFUSED : "");
}

static int check_mem(struct server *srv, uid_t uid, const struct usage *u,
		     uint64_t add)
{
	uint64_t max;

	if (!srv->opt.user.max_mem)
		srv->opt.user.max_mem = mem_default();
	max = bound(uid, srv->opt.user.max_mem);
	if (u->mem + add <= max)
		return 0;
	refused(srv, QUOTA_MEM, uid, "daemon memory", u->mem, add, max,
		"--max-user-memory");
	return -ENOSPC;
}

int quota_register(struct server *srv, uid_t uid, uint64_t len)
{
	uint64_t max = bound(uid, srv->opt.user.max_bytes);
	struct usage u;

	usage_of(srv, uid, true, &u);
	if (len > max || u.bytes > max - len) {
		refused(srv, QUOTA_BYTES, uid, "registered bytes", u.bytes, len,
			max, "--max-user-bytes");
		return -EDQUOT;
	}
	return check_mem(srv, uid, &u, cg__region_cost(len));
}

int quota_pin(struct server *srv, uid_t uid)
{
	uint64_t max = bound(uid, srv->opt.user.max_pins);
	struct usage u;

	/*
	 * Pins are bounded by count, which bounds their records; their
	 * frames (root's alone) by the pages registered, and what a pin takes
	 * while it is made by its window (lib/engine/pins.c).  A pin is asked for
	 * often: no walk of every region for it.
	 */
	usage_of(srv, uid, false, &u);
	if (u.pins + 1 <= max)
		return 0;
	refused(srv, QUOTA_PINS, uid, "pins", u.pins, 1, max, "--max-user-pins");
	return -EDQUOT;
}

int quota_child(struct server *srv, uid_t uid, const struct cg__mm *parent)
{
	uint64_t mem = sizeof(struct tracked), add = parent->stats.registered_bytes;
	uint64_t max_bytes = bound(uid, srv->opt.user.max_bytes);
	struct usage u;

	usage_of(srv, uid, true, &u);
	if (u.children + 1 > bound(uid, srv->opt.user.max_children)) {
		refused(srv, QUOTA_CHILDREN, uid, "unnamed children", u.children,
			1, bound(uid, srv->opt.user.max_children),
			"--max-user-children");
		return -EDQUOT;
	}
	/* The child gets a copy of every region of its parent. */
	if (add > max_bytes || u.bytes > max_bytes - add) {
		refused(srv, QUOTA_BYTES, uid, "registered bytes (a child's)",
			u.bytes, add, max_bytes, "--max-user-bytes");
		return -EDQUOT;
	}
	return check_mem(srv, uid, &u, mem + cg__mm_regions_footprint(parent));
}
