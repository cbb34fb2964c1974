// SPDX-License-Identifier: MIT
/*
 * The server: its listening socket, accepting (and what to do when file
 * descriptors run out), the signals that stop it, its start and its stop.
 * What happens to a connection once accepted is conn.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon.h"

/* With no spare fd to give up, accepting pauses this long. */
#define ACCEPT_PAUSE_MS 100

/* ---- out of file descriptors -------------------------------------------- */

static void on_accept(uv_poll_t *h, int status, int events);

static void on_accept_resume(uv_timer_t *t)
{
	struct server *srv = t->data;

	if (srv->spare_fd < 0)
		srv->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	uv_poll_start(&srv->listen_poll, UV_READABLE, on_accept);
}

/*
 * accept4() failed for want of an fd, and the connection stays queued: the
 * listener stays readable and the loop would spin on it.  Give up the
 * spare fd for a moment to take the connection and close it (the client
 * sees its connection closed), or with no spare, stop listening a while.
 */
static void fds_short(struct server *srv, int err)
{
	if (!srv->fd_refused++)
		log_warn("out of file descriptors (%s): refusing connections "
			 "until some close", strerror(err));
}

static void out_of_fds(struct server *srv, int err)
{
	int sock, accept_err;

	fds_short(srv, err);
	if (srv->spare_fd >= 0) {
		close(srv->spare_fd);
		sock = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		accept_err = errno;
		if (sock >= 0)
			close(sock);
		srv->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		/* Taken, or gone meanwhile: either way the listener is quiet. */
		if (srv->spare_fd >= 0 && (sock >= 0 || accept_err == EAGAIN ||
					   accept_err == ECONNABORTED))
			return;
	}
	uv_poll_stop(&srv->listen_poll);
	uv_timer_start(&srv->accept_timer, on_accept_resume, ACCEPT_PAUSE_MS, 0);
}

static void on_accept(uv_poll_t *h, int status, int events)
{
	struct server *srv = h->data;
	int sock, ret;

	(void)status;
	(void)events;
	sock = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (sock < 0) {
		if (errno == EMFILE || errno == ENFILE)
			out_of_fds(srv, errno);
		return;
	}
	/* Taken, but its pidfd found no fd left: as short. */
	ret = conn_new(srv, sock);
	if (ret == -EMFILE || ret == -ENFILE) {
		fds_short(srv, -ret);
	} else if (srv->fd_refused) {
		log_info("file descriptors again: %u connections were refused "
			 "meanwhile", srv->fd_refused);
		srv->fd_refused = 0;
	}
}

/* ---- the server --------------------------------------------------------- */

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
	srv->accept_timer.data = srv;
	/* Kept for the moment fds run out (out_of_fds). */
	srv->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ret = uv_timer_init(srv->loop, &srv->accept_timer);
	if (!ret)
		ret = uv_idle_init(srv->loop, &srv->backlog_idle);
	if (!ret)
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
	if (srv->spare_fd >= 0)
		close(srv->spare_fd);
	srv->spare_fd = -1;
	uv_close((uv_handle_t *)&srv->accept_timer, NULL);
	uv_close((uv_handle_t *)&srv->backlog_idle, NULL);
	uv_close((uv_handle_t *)&srv->listen_poll, NULL);
	uv_close((uv_handle_t *)&srv->sigint, NULL);
	uv_close((uv_handle_t *)&srv->sigterm, NULL);
}
