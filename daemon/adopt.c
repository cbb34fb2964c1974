// SPDX-License-Identifier: MIT
/*
 * Adoption that knows the child.  A fork event hands us the child's uffd
 * but no pid; the child's library then connects and says CHILD_HELLO with
 * its parent's pid.  Before a connection gets an adopted uffd:
 *
 *  1. It must be a child of that parent: ppid in /proc/PID/stat.  When the
 *     parent has died since (the child was reparented), only the proof
 *     below will do.
 *  2. The uffd must be the one of its own mm.  Several unnamed children of
 *     one parent can wait at once (forks from several threads, a raw
 *     _Fork() child that never says hello) and hellos arrive in any order.
 *     The proof: flip the uffd-wp bit of one registered page through a
 *     candidate uffd and read bit 57 (PM_UFFD_WP) of that address in
 *     /proc/PID/pagemap.  Only the uffd of PID's own mm changes it.  The
 *     bit is then put back as the candidate's engine has it.
 *
 * Flipping is race-free for the child: it has one thread (num_threads is
 * checked), blocked until we reply.  A wrong candidate is another unnamed
 * child: one waiting for its own reply is as still; a raw _Fork() child
 * that runs on could write to that one page in the microseconds it is
 * unprotected (when the flip clears protection), and that write would go
 * unseen: its state says maybe-shared where the kernel has it exclusive,
 * conservative, never unsafe.  Candidates are tried newest first, so such
 * old children come last.
 *
 * With no registered page present in the child, one is mapped first (a
 * one-byte process_vm_readv maps the zero page, as a read by the child
 * would) and flipped the safe way: protect, then unprotect.  Only when
 * that is impossible too (hugetlb regions only, none populated) or the
 * child has other threads does a weaker test decide: the one candidate
 * whose regions the child maps, as the same kinds, with the right ppid;
 * none is -ESRCH, several -EBUSY.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "compat.h"
#include "daemon.h"
#include "mm_internal.h"
#include "procfs.h"
#include "uffd.h"

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

void adopt_reap(struct server *srv, pid_t parent)
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

static uint64_t pme_at(int pagemap, uint64_t addr)
{
	uint64_t pme = 0;

	cg__pagemap_read(pagemap, addr, 1, &pme);
	return pme;
}

static bool pme_present(uint64_t pme)
{
	return pme & (PM_PRESENT | PM_SWAPPED);
}

/* A unit of r that the engine has populated and pagemap shows present. */
static bool present_unit(struct cg__region *r, int pagemap, struct unit *u)
{
	struct cg__runs runs;
	bool found = false;

	if (cg__region_collect(r, r->start, r->len, CG_ST_PRESENT, CG_ST_PRESENT,
			       &runs))
		return false;
	/* A few runs are enough: a wrong mm is told by the flip, not by this. */
	for (size_t i = 0; i < runs.n && i < 8 && !found; i++)
		if (pme_present(pme_at(pagemap, runs.v[i].start))) {
			cg__region_unit(r, runs.v[i].start, &u->addr, &u->len);
			found = true;
		}
	cg__runs_free(&runs);
	return found;
}

static bool find_unit(struct tracked *t, int pagemap, struct unit *u)
{
	for (size_t i = 0; i < t->mm.nregions; i++)
		if (present_unit(t->mm.regions[i], pagemap, u))
			return true;
	return false;
}

/*
 * No page present: map the zero page at the start of a 4 KiB or THP region
 * of the child, by reading a byte of it as the child itself might.  The
 * flip then covers the whole 2 MiB of a THP region, so as not to split a
 * huge zero page.  Not hugetlb: a read would take a huge page from the pool.
 */
static bool map_zero_unit(struct tracked *t, pid_t pid, int pagemap,
			  struct unit *u)
{
	for (size_t i = 0; i < t->mm.nregions; i++) {
		struct cg__region *r = t->mm.regions[i];
		char byte;
		struct iovec local = { &byte, 1 };
		struct iovec remote = { (void *)(uintptr_t)r->start, 1 };

		if (r->kind == CG_RK_HUGETLB)
			continue;
		if (process_vm_readv(pid, &local, 1, &remote, 1, 0) == 1 &&
		    pme_present(pme_at(pagemap, r->start))) {
			u->addr = r->start;
			u->len = r->kind == CG_RK_THP ? CG_PMD_SIZE : CG_PAGE_SIZE;
			return true;
		}
	}
	return false;
}

/* Whether pid maps every region of t, as the same kind: its child might. */
static bool mapped_alike(struct tracked *t, pid_t pid)
{
	for (size_t i = 0; i < t->mm.nregions; i++) {
		struct cg__region *r = t->mm.regions[i];
		struct cg__vma_kind k;

		if (cg__vma_probe(pid, r->start, r->len, &k) || k.kind != r->kind)
			return false;
	}
	return true;
}

/* Put a candidate's protection over u back to what its engine says. */
static void restore_unit(struct tracked *t, const struct unit *u)
{
	struct cg__region *r = cg__mm_find(&t->mm, u->addr);
	uint64_t at = u->addr, end = u->addr + u->len;
	struct cg__runs runs = { 0 };

	if (!r || cg__region_collect(r, u->addr, u->len, CG_ST_PRESENT | CG_ST_WP,
				     CG_ST_PRESENT | CG_ST_WP, &runs)) {
		/* Not ours to track there: nothing may stay protected. */
		cg__mm_ioctl_wp(&t->mm, u->addr, u->len, false);
		return;
	}
	for (size_t i = 0; i < runs.n; i++) {
		if (runs.v[i].start > at)
			cg__mm_ioctl_wp(&t->mm, at, runs.v[i].start - at, false);
		cg__mm_ioctl_wp(&t->mm, runs.v[i].start, runs.v[i].len, true);
		at = runs.v[i].start + runs.v[i].len;
	}
	if (at < end)
		cg__mm_ioctl_wp(&t->mm, at, end - at, false);
	cg__runs_free(&runs);
}

/* Flip u's uffd-wp bit through t's uffd: does pid's pagemap see it? */
static bool flips(struct tracked *t, int pagemap, const struct unit *u)
{
	bool before = pme_at(pagemap, u->addr) & PM_UFFD_WP, after;
	int ret = cg__mm_ioctl_wp(&t->mm, u->addr, u->len, !before);

	after = pme_at(pagemap, u->addr) & PM_UFFD_WP;
	/* ENOENT: not registered in that mm; still undo what may have been. */
	restore_unit(t, u);
	cg__mm_service_backlog(&t->mm);
	return !ret && after != before;
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

/* The candidate whose uffd flips a bit of pid's memory, or NULL. */
static struct tracked *prove(struct tracked **v, size_t n, pid_t pid,
			     int pagemap, bool *tried)
{
	struct unit u;

	*tried = false;
	for (size_t i = 0; i < n; i++) {
		if (!find_unit(v[i], pagemap, &u))
			continue;
		*tried = true;
		if (flips(v[i], pagemap, &u))
			return v[i];
	}
	if (*tried)
		return NULL;
	for (size_t i = 0; i < n && !*tried; i++)
		*tried = map_zero_unit(v[i], pid, pagemap, &u);
	if (!*tried)
		return NULL;
	/* Every candidate again, on the page just mapped. */
	for (size_t i = 0; i < n; i++)
		if (flips(v[i], pagemap, &u))
			return v[i];
	return NULL;
}

int adopt_claim(struct conn *c, pid_t parent, int pagemap, struct tracked **out)
{
	struct tracked *v[MAX_CANDIDATES];
	pid_t pid = c->cred.pid, ppid = 0;
	long threads = 0;
	bool tried = false;
	size_t n;
	int ret;

	if (parent <= 0) {
		conn_log(4, c, "refused as a child: no parent named (%d)",
			 (int)parent);
		return -ESRCH;
	}
	ret = read_stat(pid, &ppid, &threads);
	if (ret) {
		conn_log(4, c, "refused as a child of %d: its /proc stat: %s",
			 (int)parent, cg_strerror(ret));
		return -ESRCH;
	}
	n = candidates(c->srv, parent, c->cred.uid, v);
	if (!n) {
		conn_log(4, c, "refused as a child of %d: no adopted uffd to "
			 "claim", (int)parent);
		return -ESRCH;
	}
	*out = threads == 1 ? prove(v, n, pid, pagemap, &tried) : NULL;
	if (*out) {
		conn_log(7, c, "child of %d%s: its uffd proven by its pagemap "
			 "(1 of %zu)", (int)parent,
			 ppid == parent ? "" : " (reparented)", n);
		return 0;
	}
	if (ppid != parent) {
		conn_log(4, c, "refused as a child of %d: its parent is %d, and "
			 "no adopted uffd is proven its own", (int)parent, (int)ppid);
		return -EPERM;
	}
	if (tried) {
		conn_log(4, c, "refused as a child of %d: none of %zu adopted "
			 "uffds is its own", (int)parent, n);
		return -ESRCH;
	}
	/* Nothing to flip: only the layout of its memory can still tell. */
	for (size_t i = 0; i < n;)
		if (mapped_alike(v[i], pid))
			i++;
		else
			v[i] = v[--n];
	if (n != 1) {
		conn_log(4, c, "refused as a child of %d: %zu adopted uffds match "
			 "its memory, and no page to tell by (%ld threads)",
			 (int)parent, n, threads);
		return n ? -EBUSY : -ESRCH;
	}
	*out = v[0];
	conn_log(6, c, "child of %d: the one adopted uffd its memory matches, "
		 "unproven (no page to flip, %ld threads)", (int)parent, threads);
	return 0;
}
