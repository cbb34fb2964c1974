// SPDX-License-Identifier: MIT
/* Connections: accepting, reading packets, and letting go. */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "daemon.h"

static void on_handle_closed(uv_handle_t *h)
{
	struct conn *c = h->data;

	if (--c->open_handles)
		return;
	close(c->sock);
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
	srv->nconns--;
	/* The client's state and its uffd go with its connection. */
	if (c->tracked)
		tracked_close(c->tracked);
	uv_close((uv_handle_t *)&c->poll, on_handle_closed);
	uv_close((uv_handle_t *)&c->hello_timer, on_handle_closed);
}

/*
 * A connection holds one of --max-clients slots from accept on: one that
 * never says hello would hold it for good, and enough of them would lock
 * every client out.
 */
static void on_hello_timeout(uv_timer_t *t)
{
	struct conn *c = t->data;

	if (c->kind != CONN_NEW)
		return;
	conn_log(4, c, "dropped: no hello within %u ms",
		 c->srv->opt.hello_timeout_ms);
	conn_close(c);
}

static void on_readable(uv_poll_t *h, int status, int events)
{
	struct conn *c = h->data;
	struct cg__req req = { 0 };
	int fd, ret;

	(void)events;
	if (status < 0) {
		conn_close(c);
		return;
	}
	ret = cg__recv(c->sock, &req, sizeof(req), &fd);
	if (ret == -EAGAIN)
		return;
	if (ret == -ECONNRESET) {
		conn_log(7, c, "disconnected");
		conn_close(c);
		return;
	}
	/* Another major's packet: its header is enough to say so and refuse. */
	if (ret == -EPROTONOSUPPORT) {
		request_dispatch(c, &req, -1);
		conn_close(c);
		return;
	}
	if (ret) {
		conn_log(4, c, "dropped: unreadable request (%s)", cg_strerror(ret));
		conn_close(c);
		return;
	}
	if (request_dispatch(c, &req, fd))
		conn_close(c);
}

static int conn_setup(struct conn *c)
{
	/*
	 * A client that stops reading is dropped.  libuv makes the socket
	 * non-blocking, so requests.c waits for room itself; this bounds
	 * the wait should the socket ever block.
	 */
	struct timeval tv = { .tv_sec = 1 };
	socklen_t len = sizeof(c->cred);

	if (getsockopt(c->sock, SOL_SOCKET, SO_PEERCRED, &c->cred, &len) ||
	    setsockopt(c->sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)))
		return -errno;
	return 0;
}

static void on_accept(uv_poll_t *h, int status, int events)
{
	struct server *srv = h->data;
	struct conn *c;
	int sock;

	(void)status;
	(void)events;
	sock = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (sock < 0)
		return;
	if (srv->nconns >= srv->opt.max_conns) {
		log_warn("refusing a connection: %u connections already",
			 srv->nconns);
		close(sock);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(sock);
		return;
	}
	c->sock = sock;
	c->srv = srv;
	if (conn_setup(c) || uv_poll_init(srv->loop, &c->poll, sock)) {
		close(sock);
		free(c);
		return;
	}
	c->poll.data = c;
	uv_timer_init(srv->loop, &c->hello_timer);
	c->hello_timer.data = c;
	c->open_handles = 2;
	c->next = srv->conns;
	srv->conns = c;
	srv->nconns++;
	uv_poll_start(&c->poll, UV_READABLE | UV_DISCONNECT, on_readable);
	uv_timer_start(&c->hello_timer, on_hello_timeout,
		       srv->opt.hello_timeout_ms, 0);
	conn_log(7, c, "connected");
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct server *srv = h->data;

	log_info("signal %d: shutting down", signum);
	server_stop(srv);
}

int server_start(struct server *srv)
{
	int ret;

	srv->listen_poll.data = srv;
	srv->sigint.data = srv->sigterm.data = srv;
	ret = uv_poll_init(srv->loop, &srv->listen_poll, srv->listen_fd);
	if (!ret)
		ret = uv_poll_start(&srv->listen_poll, UV_READABLE, on_accept);
	if (!ret)
		ret = uv_signal_init(srv->loop, &srv->sigint);
	if (!ret)
		ret = uv_signal_start(&srv->sigint, on_signal, SIGINT);
	if (!ret)
		ret = uv_signal_init(srv->loop, &srv->sigterm);
	if (!ret)
		ret = uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
	return ret;
}

void server_stop(struct server *srv)
{
	while (srv->conns)
		conn_close(srv->conns);
	while (srv->tracked)
		tracked_close(srv->tracked);
	uv_close((uv_handle_t *)&srv->listen_poll, NULL);
	uv_close((uv_handle_t *)&srv->sigint, NULL);
	uv_close((uv_handle_t *)&srv->sigterm, NULL);
}
