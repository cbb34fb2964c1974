// SPDX-License-Identifier: MIT
/*
 * One connection: its admission (within the bounds), reading its packets,
 * queueing its replies, and letting go.  One event loop serves every
 * client, so nothing here ever waits for one: a reply that does not fit in
 * a client's socket waits in a bounded queue of its own, and a client that
 * fills it, or reads none of it for a while, is dropped.  The listening
 * socket, and the server's start and stop, are server.c's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon.h"

/* Replies queued for one client, beyond what its socket holds. */
#define OUTQ_BYTES (64 * 1024)
#define OUTQ_MAX ((unsigned)(OUTQ_BYTES / sizeof(struct cg__rep)))
/* A stream makes more only while the queue is below this. */
#define OUTQ_STREAM_MAX (OUTQ_MAX / 4)
/* Requests held while a stream goes out: a client waits for its replies. */
#define PARKED_MAX 16
/* A client with replies queued that reads none for this long is dropped. */
#define WRITE_TIMEOUT_MS 1000
/*
 * The last slots of --max-clients are root's, so that a user who fills the
 * rest (under its per-user bound, or many users together) cannot keep an
 * administrator's cowguardctl out.  A quarter of them when there are few.
 */
#define ROOT_SLOTS 4
/*
 * A refused connection gets the reason in the reply to its hello, so it
 * is kept until the hello comes (or this long): closing with the hello
 * unread would turn the reply into ECONNRESET.  This many at once; beyond
 * that, refused connections are closed at once.
 */
#define REFUSING_MAX 16
#define REFUSING_WAIT_MS 1000
/* Refusals logged: one line a second at most. */
#define REFUSAL_LOG_MS 1000

static void on_handle_closed(uv_handle_t *h)
{
	struct conn *c = h->data;

	if (--c->open_handles)
		return;
	close(c->sock);
	client_files_close(&c->files);
	cg__proc_release(&c->proc);
	free(c->out.pkts);
	free(c->parked.reqs);
	free(c);
}

void conn_close(struct conn *c)
{
	struct server *srv = c->srv;

	if (uv_is_closing((uv_handle_t *)&c->poll))
		return;
	for (struct conn **p = &srv->conns; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	if (c->kind == CONN_REFUSED)
		srv->nrefusing--;
	else
		srv->nconns--;
	srv->conn_gone(c);
	/* The client's state and its uffd go with its connection. */
	if (c->tracked)
		tracked_close(c->tracked);
	uv_close((uv_handle_t *)&c->poll, on_handle_closed);
	uv_close((uv_handle_t *)&c->hello_timer, on_handle_closed);
	uv_close((uv_handle_t *)&c->write_timer, on_handle_closed);
}

/* ---- replies that wait -------------------------------------------------- */

bool conn_has_room(const struct conn *c)
{
	return c->out.len < OUTQ_STREAM_MAX;
}

static void close_with_conn(struct tracked *t)
{
	conn_close(t->conn);
}

void conn_serve_tracked(struct conn *c, struct tracked *t)
{
	c->tracked = t;
	c->kind = CONN_APP;
	t->conn = c;
	t->drop = close_with_conn;
	cg__proc_move(&t->mm.proc, &c->proc);
}

static int outq_push(struct conn *c, const struct cg__rep *rep)
{
	struct outq *q = &c->out;

	if (!q->pkts) {
		q->pkts = malloc(OUTQ_MAX * sizeof(*q->pkts));
		if (!q->pkts)
			return -ENOMEM;
	}
	if (q->len == OUTQ_MAX)
		return -ENOBUFS;
	q->pkts[(q->head + q->len) % OUTQ_MAX] = *rep;
	q->len++;
	return 0;
}

int conn_send(struct conn *c, const struct cg__rep *rep)
{
	/* Behind queued packets it must wait its turn. */
	if (!c->out.len) {
		int ret = cg__send(c->sock, rep, sizeof(*rep), -1);

		if (ret != -EAGAIN)
			return ret;
	}
	return outq_push(c, rep);
}

/*
 * Send what the socket takes.  Returns the packets sent, or -errno when the
 * client cannot be written to at all (it hung up).
 */
static int outq_flush(struct conn *c)
{
	struct outq *q = &c->out;
	int sent = 0, ret;

	while (q->len) {
		ret = cg__send(c->sock, &q->pkts[q->head], sizeof(*q->pkts), -1);
		if (ret == -EAGAIN)
			break;
		if (ret)
			return ret;
		q->head = (q->head + 1) % OUTQ_MAX;
		q->len--;
		sent++;
	}
	return sent;
}

static void on_write_timeout(uv_timer_t *t)
{
	struct conn *c = t->data;

	conn_log(LOG_WARNING, c, "dropped: read none of its %u queued replies "
		 "for %u ms", c->out.len, WRITE_TIMEOUT_MS);
	conn_close(c);
}

static void on_io(uv_poll_t *h, int status, int events);

/*
 * Poll for room while anything waits to go out, and time the client's
 * reading from the last packet it took.
 */
static void conn_watch(struct conn *c, bool progressed)
{
	bool waiting = c->out.len || c->stream.active;
	int events = UV_READABLE | UV_DISCONNECT | (waiting ? UV_WRITABLE : 0);

	/* Changing what epoll waits for costs a system call: only on change. */
	if (events != c->events) {
		uv_poll_start(&c->poll, events, on_io);
		c->events = events;
	}
	if (!c->out.len)
		uv_timer_stop(&c->write_timer);
	else if (progressed || !uv_is_active((uv_handle_t *)&c->write_timer))
		uv_timer_start(&c->write_timer, on_write_timeout,
			       WRITE_TIMEOUT_MS, 0);
}

/* ---- requests that wait ------------------------------------------------- */

static int park(struct conn *c, const struct cg__req *req)
{
	struct parked *p = &c->parked;

	if (!p->reqs) {
		p->reqs = malloc(PARKED_MAX * sizeof(*p->reqs));
		if (!p->reqs)
			return -ENOMEM;
	}
	if (p->len == PARKED_MAX)
		return -ENOBUFS;
	p->reqs[(p->head + p->len) % PARKED_MAX] = *req;
	p->len++;
	return 0;
}

/* Answer parked requests until one starts a stream. */
static enum req_result run_parked(struct conn *c)
{
	struct parked *p = &c->parked;

	while (p->len && !c->stream.active) {
		struct cg__req req = p->reqs[p->head];

		p->head = (p->head + 1) % PARKED_MAX;
		p->len--;
		if (c->srv->dispatch(c, &req, -1))
			return REQ_DROP;
	}
	return REQ_KEEP;
}

/*
 * A request arrives.  While a streamed reply goes out the request waits
 * (its reply must come after the stream's end), a few at most: a client
 * that sends more without reading is over its bound.
 */
static enum req_result take_request(struct conn *c, const struct cg__req *req,
				    int fd)
{
	int ret;

	if (!c->stream.active && !c->parked.len)
		return c->srv->dispatch(c, req, fd);
	/* Only a first packet carries an fd; a later one is a protocol error. */
	if (fd >= 0) {
		close(fd);
		conn_log(LOG_WARNING, c, "dropped: unexpected fd with %s",
			 cg__op_name(req->op));
		return REQ_DROP;
	}
	ret = park(c, req);
	if (ret == -ENOBUFS)
		conn_log(LOG_WARNING, c, "dropped: %u more requests while it "
			 "reads none of %u queued replies", c->parked.len,
			 c->out.len);
	else if (ret)
		conn_log(LOG_WARNING, c, "dropped: %s", cg_strerror(ret));
	return ret ? REQ_DROP : REQ_KEEP;
}

/* The socket has room: send the queue, then go on with the stream. */
static enum req_result on_room(struct conn *c, bool *progressed)
{
	int sent = outq_flush(c);

	if (sent < 0) {
		conn_log(LOG_DEBUG, c, "disconnected while replies waited (%s)",
			 cg_strerror(sent));
		return REQ_DROP;
	}
	*progressed = sent > 0;
	if (c->stream.active && conn_has_room(c) && c->srv->stream(c))
		return REQ_DROP;
	return run_parked(c);
}

/* ---- reading ------------------------------------------------------------ */

/* A refused connection's hello gets the reason, and the connection goes. */
static void refuse_hello(struct conn *c, const struct cg__req *req, int fd)
{
	struct cg__rep rep;

	if (fd >= 0)
		close(fd);
	cg__rep_init(&rep, req);
	rep.status = c->refusal;
	cg__send(c->sock, &rep, sizeof(rep), -1);
	conn_close(c);
}

/*
 * A connection holds one of --max-clients slots from accept on: one that
 * never says hello would hold it for good, and enough of them would lock
 * every client out.  A refused one that never says hello just goes.
 */
static void on_hello_timeout(uv_timer_t *t)
{
	struct conn *c = t->data;

	if (c->kind == CONN_NEW)
		conn_log(LOG_WARNING, c, "dropped: no hello within %u ms",
			 c->srv->opt.hello_timeout_ms);
	else if (c->kind != CONN_REFUSED)
		return;
	conn_close(c);
}

/* Read one packet, if one came. */
static enum req_result on_packet(struct conn *c)
{
	struct cg__req req = { 0 };
	int fds[CG__MAX_FDS], fd, ret;
	size_t n;

	ret = cg__recv_fds(c->sock, &req, sizeof(req), fds, CG__MAX_FDS, &n);
	/* A hello's /proc files aside, one fd at most goes with a request. */
	n = client_files_keep(&c->files, &req, fds, n);
	fd = n ? fds[0] : -1;
	while (n > 1)
		close(fds[--n]);
	if (ret == -EAGAIN)
		return REQ_KEEP;
	if (c->kind == CONN_REFUSED) {
		if (!ret)
			refuse_hello(c, &req, fd);
		return REQ_DROP;
	}
	if (ret == -ECONNRESET) {
		conn_log(LOG_DEBUG, c, "disconnected");
		return REQ_DROP;
	}
	/* Another major's packet: its header is enough to say so and refuse. */
	if (ret == -EPROTONOSUPPORT) {
		c->srv->dispatch(c, &req, -1);
		return REQ_DROP;
	}
	if (ret) {
		conn_log(LOG_WARNING, c, "dropped: unreadable request (%s)",
			 cg_strerror(ret));
		return REQ_DROP;
	}
	return take_request(c, &req, fd);
}

static void on_io(uv_poll_t *h, int status, int events)
{
	struct conn *c = h->data;
	bool progressed = false;

	if (status < 0) {
		conn_close(c);
		return;
	}
	if ((events & UV_WRITABLE) && on_room(c, &progressed)) {
		conn_close(c);
		return;
	}
	/* conn_close() of a refused one is done; closing twice is harmless. */
	if ((events & (UV_READABLE | UV_DISCONNECT)) && on_packet(c)) {
		conn_close(c);
		return;
	}
	conn_watch(c, progressed);
}

/* ---- admission ---------------------------------------------------------- */

static unsigned conns_of(const struct server *srv, uid_t uid)
{
	unsigned n = 0;

	for (const struct conn *c = srv->conns; c; c = c->next)
		n += c->kind != CONN_REFUSED && c->cred.uid == uid;
	return n;
}

static unsigned root_slots(const struct server *srv)
{
	unsigned quarter = srv->opt.max_conns / 4;

	return quarter < ROOT_SLOTS ? quarter : ROOT_SLOTS;
}

/*
 * Whether to log a refusal now: at most one line a second, so that a flood
 * of connections does not flood the log.  *unlogged gets how many went
 * unlogged since the last line.
 */
static bool refusal_log_due(struct server *srv, unsigned *unlogged)
{
	struct refusal_log *rl = &srv->refusal_log;
	uint64_t now = uv_now(srv->loop) + 1;	/* 0 is "never" */

	if (rl->last_ms && now - rl->last_ms < REFUSAL_LOG_MS) {
		rl->unlogged++;
		return false;
	}
	*unlogged = rl->unlogged;
	rl->last_ms = now;
	rl->unlogged = 0;
	return true;
}

/*
 * Whether a peer may have a slot: 0, or the errno its hello will get, and
 * why in why.  Root is bounded only by --max-clients, and has the last
 * slots to itself.
 */
static int admit(struct server *srv, const struct ucred *cred, char *why,
		 size_t len)
{
	unsigned max = srv->opt.max_conns, mine;

	if (srv->nconns >= max) {
		snprintf(why, len, "%u connections already", srv->nconns);
		return -EAGAIN;
	}
	if (cred->uid == 0)
		return 0;
	if (srv->nconns >= max - root_slots(srv)) {
		snprintf(why, len, "uid %u: the last %u of %u slots are root's",
			 (unsigned)cred->uid, root_slots(srv), max);
		return -EAGAIN;
	}
	mine = conns_of(srv, cred->uid);
	if (mine >= srv->opt.max_conns_per_user) {
		snprintf(why, len, "uid %u has %u already (--max-conns-per-user)",
			 (unsigned)cred->uid, mine);
		return -EUSERS;
	}
	return 0;
}

static void refused(struct server *srv, const char *why)
{
	unsigned unlogged;

	if (!refusal_log_due(srv, &unlogged))
		return;
	if (unlogged)
		log_warn("refusing a connection: %s (and %u more since the last "
			 "such line)", why, unlogged);
	else
		log_warn("refusing a connection: %s", why);
}

/*
 * A client is a process, not a pid: bind the connection to its peer's
 * process now, as near to its connect() as we can (lib/kernel/process.c), before
 * its pid can be anyone else's.  A peer gone already, or whose pid is not
 * in our namespace (0), is nobody to serve.
 */
static int bind_peer(struct conn *c)
{
	int ret = cg__proc_bind(&c->proc, c->sock, c->cred.pid);

	if (ret)
		log_debug("pid %d uid %u: dropped at connect: its process: %s",
			  (int)c->cred.pid, (unsigned)c->cred.uid, cg_strerror(ret));
	return ret;
}

static int conn_init(struct conn *c, struct server *srv, int sock)
{
	socklen_t len = sizeof(c->cred);
	char why[128];
	int ret;

	c->sock = sock;
	c->srv = srv;
	cg__proc_init(&c->proc);
	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &c->cred, &len))
		return -errno;
	c->refusal = admit(srv, &c->cred, why, sizeof(why));
	if (c->refusal)
		refused(srv, why);
	/* Past the few we keep to tell why, a refused one just goes. */
	if (c->refusal && srv->nrefusing >= REFUSING_MAX)
		return c->refusal;
	ret = c->refusal ? 0 : bind_peer(c);
	if (ret)
		return ret;
	if (uv_poll_init(srv->loop, &c->poll, sock))
		return -ENOMEM;
	c->kind = c->refusal ? CONN_REFUSED : CONN_NEW;
	c->poll.data = c;
	uv_timer_init(srv->loop, &c->hello_timer);
	uv_timer_init(srv->loop, &c->write_timer);
	c->hello_timer.data = c->write_timer.data = c;
	c->open_handles = 3;
	return 0;
}

int conn_new(struct server *srv, int sock)
{
	struct conn *c = calloc(1, sizeof(*c));
	unsigned wait;
	int ret;

	if (c)
		c->files = (struct client_files){ -1, -1 };
	ret = c ? conn_init(c, srv, sock) : -ENOMEM;

	if (ret) {
		close(sock);
		if (c)
			cg__proc_release(&c->proc);
		free(c);
		return ret;
	}
	c->next = srv->conns;
	srv->conns = c;
	if (c->kind == CONN_REFUSED)
		srv->nrefusing++;
	else
		srv->nconns++;
	wait = srv->opt.hello_timeout_ms;
	if (c->kind == CONN_REFUSED && wait > REFUSING_WAIT_MS)
		wait = REFUSING_WAIT_MS;
	c->events = UV_READABLE | UV_DISCONNECT;
	uv_poll_start(&c->poll, c->events, on_io);
	uv_timer_start(&c->hello_timer, on_hello_timeout, wait, 0);
	if (c->kind == CONN_NEW)
		conn_log(LOG_DEBUG, c, "connected");
	return 0;
}
