// SPDX-License-Identifier: MIT
/*
 * Adoption that knows the child, whole: from the fork event to the child's
 * hello.  It sits above tracked.c and calls it (to make, poll and close
 * tracked address spaces); tracked.c never calls here, and learns of forks
 * only through the hooks adopt_forks() gives the engine.
 *
 * A fork event hands us the child's uffd but no pid: it is served at once,
 * unnamed, within the parent's bounds.  The child's library then connects
 * and says CHILD_HELLO with its parent's pid.  Before a connection gets an
 * adopted uffd:
 *
 *  1. It must be a child of that parent: ppid in /proc/PID/stat.  When the
 *     parent has died since (the child was reparented), only the proof
 *     below will do.
 *  2. The uffd must be the one of its own mm.  Several unnamed children of
 *     one parent can wait at once (forks from several threads, a raw
 *     _Fork() child that never says hello) and hellos arrive in any order.
 *     The proof: unregister one unit of a region through a candidate
 *     uffd and read the VmFlags of that address in /proc/PID/smaps ("uw"
 *     gone?).  Only the uffd of PID's own mm changes its VMAs.  Then the
 *     unit is registered again and its protection put back as the
 *     candidate's engine has it.  This works on every kernel with uffd-wp
 *     (5.10 has no uffd-wp bit in pagemap, which an earlier proof read),
 *     needs no page present, and never touches the child's memory (a read
 *     of it could wait on a uffd only we would answer).
 *
 * Flipping is race-free for the child: it has one thread (num_threads is
 * checked), blocked until we reply.  A wrong candidate is another unnamed
 * child: one waiting for its own reply is as still; a raw _Fork() child
 * that runs on could write to that unit in the microseconds it is
 * unprotected, and that write would go unseen.  Candidates are tried
 * newest first, so such old children come last.  Without a region, or
 * with other threads, there is no proof, and no claim is accepted: a
 * wrong uffd would aim the daemon at a process the client need not be.
 *
 * The parent a child names is a pid of the child's own pid namespace (a
 * client in a container knows no other), never read as one of ours: it is
 * the client bound (lib/kernel/process.c) as that pid of that namespace.  What is
 * read of the child by pid (/proc/PID/stat, smaps, pagemap) counts only if
 * the child is still the process bound at connect afterwards.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "engine/engine.h"
#include "kernel/compat.h"
#include "kernel/procfs.h"
#include "kernel/uffd.h"

/* Where no process maps anything registered: a liveness probe's target. */
#define PROBE_ADDR 0x7fffffffe000ULL
#define MAX_CANDIDATES 256

struct unit {
	uint64_t addr, len;
};

/* ppid and num_threads (fields 4 and 20) from /proc/PID/stat. */
static int read_stat(pid_t pid, pid_t *ppid, long *threads)
{
	char path[64], buf[1024], *p;
	FILE *f;
	int n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	n = (int)fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n > 0 ? n : 0] = 0;
	/* The command name may hold spaces and parentheses: skip to its end. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
			 "%*u %*u %*d %*d %*d %*d %ld", ppid, threads) != 2)
		return -EIO;
	return 0;
}

/* Whether the mm behind an unnamed child's uffd still has users. */
static bool mm_alive(const struct tracked *t)
{
	/* The kernel answers ESRCH before anything else once the mm is gone. */
	return cg__uffd_wp(t->mm.uffd, PROBE_ADDR, CG_PAGE_SIZE, true) != -ESRCH;
}

/* Release the unnamed children of parent whose process exited or exec'd. */
static void adopt_reap(struct server *srv, pid_t parent)
{
	for (struct tracked *t = srv->tracked, *next; t; t = next) {
		next = t->next;
		if (t->conn || t->mm.pid || t->parent_pid != parent ||
		    t->closing || mm_alive(t))
			continue;
		log_debug("pid %d: an unnamed child exited or exec'd: released "
			  "its uffd", (int)parent);
		/* Only t leaves the list; its memory lives until the loop turns. */
		tracked_close(t);
	}
}

/* ---- at the fork: the child's uffd, served unnamed ---------------------- */

static unsigned count_children(struct server *srv, pid_t parent)
{
	unsigned n = 0;

	for (struct tracked *t = srv->tracked; t; t = t->next)
		n += !t->conn && t->parent_pid == parent && !t->closing;
	return n;
}

/*
 * Before a fork event's child is copied: within its user's bounds
 * (quota.c), the copy being what the child will cost.
 */
static int may_adopt(struct cg__mm *parent, void *arg)
{
	struct tracked *pt = arg;

	/* Unnamed children that exited or exec'd count no more. */
	adopt_reap(pt->srv, parent->pid);
	if (count_children(pt->srv, parent->pid) >= pt->srv->opt.max_children) {
		log_warn("pid %d: more than %u unnamed children, not tracking "
			 "the new one", (int)parent->pid, pt->srv->opt.max_children);
		return -EDQUOT;
	}
	return quota_child(pt->srv, pt->uid, parent);
}

/* A fork event: serve the child's uffd until the child names itself. */
static void adopt(struct cg__mm *parent, struct cg__mm *child, void *arg)
{
	struct tracked *pt = arg, *t;

	/* may_adopt() has checked the bounds. */
	t = tracked_take(pt->srv, child, pt->uid);
	if (!t)
		return;
	/* The child's own forks are adopted in turn. */
	adopt_forks(t);
	t->parent_pid = parent->pid;
	if (tracked_poll(t)) {
		log_err("pid %d: cannot poll its child's uffd", (int)parent->pid);
		tracked_close(t);
		return;
	}
	/* Protecting the child may have read its messages: handle them. */
	cg__mm_service_backlog(&t->mm);
	tracked_backlog_check(t);
	log_debug("pid %d forked: adopted its child's uffd", (int)parent->pid);
}

void adopt_forks(struct tracked *t)
{
	t->mm.adopt = adopt;
	t->mm.may_adopt = may_adopt;
	t->mm.adopt_arg = t;
}

/* ---- at the hello: which unnamed uffd is the child's -------------------- */

/*
 * Unregister u through t's uffd: does pid's smaps stop showing it
 * registered ("uw")?  Then register it again and put its protection back
 * as the engine has it (unregistering clears the uffd-wp bits).  A
 * registration cannot be narrowed in place: the kernel skips a VMA that
 * already has every mode asked for, so registering for write protection
 * alone over a range also registered for missing faults changes nothing.
 */
static bool vma_flips(struct tracked *t, pid_t pid, int smaps,
		      const struct unit *u)
{
	int ret = cg__uffd_unregister(t->mm.uffd, u->addr, u->len);
	bool seen = !ret && cg__vma_flag(smaps, u->addr, "uw") == 0;

	if (!ret && cg__uffd_register(t->mm.uffd, u->addr, u->len))
		log_err("pid %d: a candidate uffd could not register "
			"%#llx+%#llx again", (int)pid,
			(unsigned long long)u->addr, (unsigned long long)u->len);
	if (!ret)
		cg__mm_reprotect(&t->mm, u->addr, u->len);
	cg__mm_service_backlog(&t->mm);
	tracked_backlog_check(t);
	return seen;
}

/* The live unnamed children of parent with uid, newest first. */
static size_t candidates(struct server *srv, pid_t parent, uid_t uid,
			 struct tracked **v)
{
	size_t n = 0;

	adopt_reap(srv, parent);
	for (struct tracked *t = srv->tracked; t && n < MAX_CANDIDATES; t = t->next)
		if (!t->conn && !t->mm.pid && t->parent_pid == parent &&
		    t->uid == uid && !t->closing)
			v[n++] = t;
	return n;
}

/*
 * The candidate whose uffd changes pid's own VMAs, or NULL.  Only a unit
 * pid's smaps shows registered can be told by unregistering it.
 */
static struct tracked *prove(struct tracked **v, size_t n, pid_t pid,
			     int smaps, bool *tried)
{
	struct tracked *found = NULL;
	struct unit u;

	*tried = false;
	for (size_t i = 0; i < n && !found; i++) {
		if (cg__mm_first_unit(&v[i]->mm, &u.addr, &u.len) ||
		    cg__vma_flag(smaps, u.addr, "uw") != 1)
			continue;
		*tried = true;
		if (vma_flips(v[i], pid, smaps, &u))
			found = v[i];
	}
	return found;
}

int adopt_claim(struct conn *c, pid_t parent, int smaps, struct tracked **out)
{
	struct tracked *v[MAX_CANDIDATES];
	pid_t pid = c->cred.pid, ppid = 0;
	long threads = 0;
	bool tried = false;
	char why[64];
	size_t n;
	int ret;

	if (parent <= 0) {
		conn_log(LOG_WARNING, c, "refused as a child: no parent named "
			 "(%d)", (int)parent);
		return -ESRCH;
	}
	ret = read_stat(pid, &ppid, &threads);
	if (ret) {
		conn_log(LOG_WARNING, c, "refused as a child of %d: its /proc "
			 "stat: %s", (int)parent, cg_strerror(ret));
		return -ESRCH;
	}
	n = candidates(c->srv, parent, c->cred.uid, v);
	if (!n) {
		conn_log(LOG_WARNING, c, "refused as a child of %d: no "
			 "adopted uffd to claim", (int)parent);
		return -ESRCH;
	}
	/* Another thread of the child could write unseen during the flip. */
	*out = threads == 1 ? prove(v, n, pid, smaps, &tried) : NULL;
	if (*out) {
		conn_log(LOG_DEBUG, c, "child of %d%s: its uffd proven by its "
			 "VMAs (1 of %zu, %ld threads)", (int)parent,
			 ppid == parent ? "" : " (reparented)", n, threads);
		return 0;
	}
	/* Without a proof nothing else will do: a wrong uffd aims us. */
	if (tried)
		snprintf(why, sizeof(why), "none of %zu changes its VMAs", n);
	else if (threads != 1)
		snprintf(why, sizeof(why), "it runs %ld threads", threads);
	else
		snprintf(why, sizeof(why), "none of %zu has a region registered "
			 "in it", n);
	conn_log(LOG_WARNING, c, "refused as a child of %d (its parent is "
		 "%d): %s, and no adopted uffd is proven its own", (int)parent,
		 (int)ppid, why);
	return ppid == parent ? -ESRCH : -EPERM;
}

/*
 * Which client the child's parent is, in our pid namespace: the one bound
 * as pid claim of the child's own namespace.  A parent that exited since
 * the fork is still found while its connection lives (the child may hold
 * it).  Newest first: a pid reused in that namespace names the later one.
 */
static int named_parent(const struct conn *c, int64_t claim, pid_t *parent)
{
	if (claim <= 0 || claim > INT32_MAX) {
		conn_log(LOG_WARNING, c, "refused as a child: no parent named "
			 "(%lld)", (long long)claim);
		return -ESRCH;
	}
	for (const struct tracked *t = c->srv->tracked; t; t = t->next)
		if (t->mm.pid && !t->closing && t->mm.proc.pidfd >= 0 &&
		    t->mm.proc.pidns == c->proc.pidns &&
		    t->mm.proc.ns_pid == (pid_t)claim) {
			*parent = t->mm.pid;
			return 0;
		}
	conn_log(LOG_WARNING, c, "refused as a child of %lld: no client is "
		 "that pid in its pid namespace (%lld is %d there)",
		 (long long)claim, (long long)claim, (int)c->proc.ns_pid);
	return -ESRCH;
}

/* Give t to c: its process, its files (taken), its connection. */
static void name_child(struct conn *c, struct tracked *t,
		       const struct client_files *files)
{
	cg__mm_set_process(&t->mm, c->cred.pid, files->pagemap, files->smaps);
	t->mm.pfn_visible = c->cred.uid == 0 && c->srv->kpageflags_fd >= 0;
	/* parent_pid stays: STATUS reports whom a named child came from. */
	conn_serve_tracked(c, t);
}

int adopt_child_hello(struct conn *c, int64_t claim)
{
	struct client_files files;
	struct tracked *t;
	pid_t parent;
	int ret;

	ret = named_parent(c, claim, &parent);
	if (ret)
		return ret;
	ret = client_files_open(c, &files);
	if (ret) {
		conn_log(LOG_WARNING, c, "refused as a child of %d: its "
			 "pagemap: %s", (int)parent, cg_strerror(ret));
		return ret;
	}
	ret = adopt_claim(c, parent, files.smaps, &t);
	/* What adopt_claim() read by pid was the child's only if it still is. */
	if (!ret) {
		ret = cg__proc_check(&c->proc, files.pagemap);
		if (ret)
			conn_log(LOG_WARNING, c, "refused as a child of %d: "
				 "it exited, exec'd or changed its owner "
				 "meanwhile (%s)", (int)parent,
				 cg_strerror(ret));
	}
	if (ret) {
		client_files_close(&files);
		return ret;
	}
	name_child(c, t, &files);
	conn_log(LOG_DEBUG, c, "named as a child of %d (%lld in its pid "
		 "namespace)", (int)parent, (long long)claim);
	return 0;
}
