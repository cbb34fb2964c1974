// SPDX-License-Identifier: MIT
/*
 * Tracked address spaces: the uffds cowguardd services.  A client's own
 * lives as long as its connection.  A child's arrives in a fork event with
 * no pid; it is served at once (its faults must not wait) and named when the
 * child connects and says hello, or dropped with its parent's connection,
 * or when its process exits or execs unnamed (noticed at the parent's next
 * fork).  All of that is adoption's (daemon/adopt.c), which calls here:
 * nothing here calls it.
 */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "kernel/clock.h"
#include "kernel/uffd.h"

/*
 * How long to keep looking at a uffd that just had work.  A writer walking
 * through memory faults again within microseconds of being woken, and
 * meeting it awake saves a cross-CPU wake-up each time (tens of
 * microseconds on this VM).  Bounded, so other clients wait at most this.
 */
#define SPIN_NS (50 * 1000)
/*
 * However busy it stays: a client that raises events without pause would
 * otherwise keep the loop here for good.
 */
#define TURN_NS (1000 * 1000)

/*
 * An ioctl on a client's uffd fails while one of its events is unread (or
 * being raised: a fork copying a big address space); we read what comes
 * and retry.  A client raising events without pause would hold everyone
 * here: it gets this long, then -ETIME, and its library asks again.
 */
#define IOCTL_PATIENCE_NS (1000 * 1000)


bool tracked_tampered(const struct tracked *t)
{
	if (!t->mm.tampered)
		return false;
	log_warn("pid %d dropped: it %s", (int)t->mm.pid, t->mm.tampered);
	return true;
}

static void drop(struct tracked *t)
{
	if (t->drop)
		t->drop(t);
	else
		tracked_close(t);
}

/* Serve t's uffd for a turn; false when t was dropped for tampering. */
static bool serve(struct tracked *t)
{
	uint64_t start = cg__now_ns(), until = start + SPIN_NS;
	int ret;

	do {
		ret = cg__mm_service(&t->mm);
		if (ret > 0)
			until = cg__now_ns() + SPIN_NS;
		if (until > start + TURN_NS)
			until = start + TURN_NS;
	} while (ret >= 0 && cg__now_ns() < until);
	if (tracked_tampered(t)) {
		drop(t);
		return false;
	}
	if (ret < 0)
		log_warn("pid %d: servicing its uffd: %s", (int)t->mm.pid,
			 cg_strerror(ret));
	tracked_backlog_check(t);
	return true;
}

static void on_uffd(uv_poll_t *h, int status, int events)
{
	struct tracked *t = h->data;

	(void)events;
	/*
	 * The kernel polls a uffd made blocking as EPOLLERR, and libuv then
	 * stops watching it: only the client sharing its file could do that.
	 */
	if (status < 0 && cg__uffd_made_blocking(t->mm.uffd))
		t->mm.tampered = CG__TAMPERED_BLOCKING;
	else if (status < 0)
		log_warn("uffd poll of pid %d: %s", (int)t->mm.pid,
			 uv_strerror(status));
	if (status >= 0)
		serve(t);
	else if (tracked_tampered(t))
		drop(t);
}

/*
 * Messages an ioctl read while it waited are handled a few batches a
 * call (lib/engine/events.c), and the uffd does not poll readable for them:
 * they are served on the loop's next turns, one turn each per client.
 * After a drop the list may have changed: the next turn starts over.
 */
static void on_backlog(uv_idle_t *h)
{
	struct server *srv = h->data;
	bool more = false;

	for (struct tracked *t = srv->tracked; t; t = t->next) {
		if (t->closing || !cg__mm_pending(&t->mm))
			continue;
		if (!serve(t)) {
			more = true;
			break;
		}
		more |= cg__mm_pending(&t->mm);
	}
	if (!more)
		uv_idle_stop(h);
}

void tracked_backlog_check(struct tracked *t)
{
	if (!t->closing && cg__mm_pending(&t->mm)) {
		t->srv->backlog_idle.data = t->srv;
		uv_idle_start(&t->srv->backlog_idle, on_backlog);
	}
}

int tracked_poll(struct tracked *t)
{
	int ret = uv_poll_init(t->srv->loop, &t->poll, t->mm.uffd);

	return ret ? ret : uv_poll_start(&t->poll, UV_READABLE, on_uffd);
}

struct tracked *tracked_new(struct server *srv, int uffd, uint64_t features,
			    pid_t pid, uid_t uid, struct client_files *files)
{
	struct tracked *t = calloc(1, sizeof(*t));

	if (!t) {
		if (files)
			client_files_close(files);
		return NULL;
	}
	/*
	 * Frames and kpageflags are root's (the kernel hides them from other
	 * users): the engine uses them for root's clients only, so that an
	 * audit or an unpin tells no one else what the kernel would not.
	 */
	cg__mm_init(&t->mm, uffd, features, 0, -1,
		    uid == 0 ? srv->kpageflags_fd : -1);
	if (files)
		cg__mm_set_process(&t->mm, pid, files->pagemap, files->smaps);
	t->mm.pfn_visible = uid == 0 && srv->kpageflags_fd >= 0;
	/* A client's hello proves nothing of whose uffd it sent (lib/engine/mm.c). */
	t->mm.uffd_unproven = pid != 0;
	t->mm.limits = srv->opt.limits;
	t->mm.ioctl_patience_ns = IOCTL_PATIENCE_NS;
	t->uid = uid;
	t->srv = srv;
	t->poll.data = t;
	t->next = srv->tracked;
	srv->tracked = t;
	if (uffd >= 0 && tracked_poll(t)) {
		srv->tracked = t->next;
		cg__mm_destroy(&t->mm);
		free(t);
		return NULL;
	}
	return t;
}

struct tracked *tracked_take(struct server *srv, struct cg__mm *mm, uid_t uid)
{
	struct tracked *t = tracked_new(srv, -1, 0, 0, uid, NULL);

	if (!t) {
		cg__mm_destroy(mm);
		free(mm);
		return NULL;
	}
	/* tracked_new made an empty mm: take over the given one instead. */
	cg__mm_destroy(&t->mm);
	t->mm = *mm;
	free(mm);
	return t;
}

static void on_closed(uv_handle_t *h)
{
	struct tracked *t = h->data;

	cg__mm_destroy(&t->mm);
	free(t);
}

void tracked_close(struct tracked *t)
{
	struct server *srv = t->srv;

	if (t->closing)
		return;
	t->closing = true;
	for (struct tracked **p = &srv->tracked; *p; p = &(*p)->next)
		if (*p == t) {
			*p = t->next;
			break;
		}
	/* Its unnamed children go with it: nobody can claim them any more. */
	for (struct tracked *c = srv->tracked, *next; c; c = next) {
		next = c->next;
		if (!c->conn && t->mm.pid && c->parent_pid == t->mm.pid)
			tracked_close(c);
	}
	if (t->conn)
		t->conn->tracked = NULL;
	t->poll.data = t;
	/* A handle that was never initialised has no loop to close it. */
	if (uv_handle_get_type((uv_handle_t *)&t->poll) == UV_POLL)
		uv_close((uv_handle_t *)&t->poll, on_closed);
	else
		on_closed((uv_handle_t *)&t->poll);
}

struct tracked *tracked_find_pid(struct server *srv, pid_t pid)
{
	for (struct tracked *t = srv->tracked; t; t = t->next)
		if (t->mm.pid == pid && !t->closing)
			return t;
	return NULL;
}
