// SPDX-License-Identifier: MIT
/*
 * Running under systemd: readiness and status (sd_notify), the fds we were
 * handed, and naming the socket we listen on.
 *
 * The sd_notify protocol is spoken here directly rather than through
 * libsystemd: it is one datagram of KEY=VALUE lines to the AF_UNIX socket
 * $NOTIFY_SOCKET names (a path, or an abstract name when it starts with
 * '@'), about thirty lines, and it spares a privileged daemon a library
 * dependency (and its own dependencies) for them.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon.h"
#include "notify.h"

#define SD_LISTEN_FDS_START 3
/* STATUS= is refreshed at most this often, and only when it changed. */
#define STATUS_EVERY_MS 1000

/* $NOTIFY_SOCKET as an address; returns its length, 0 for none, -errno. */
static int notify_addr(struct sockaddr_un *sa)
{
	const char *path = getenv("NOTIFY_SOCKET");
	size_t n;

	if (!path || !*path)
		return 0;
	n = strlen(path);
	/* Newer systemd may name a vsock ("vsock:..."): not for a host daemon. */
	if (path[0] != '/' && path[0] != '@')
		return -EAFNOSUPPORT;
	if (n >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, path, n);
	/* Abstract: a leading NUL, and the length says where the name ends. */
	if (path[0] == '@')
		sa->sun_path[0] = 0;
	return (int)(offsetof(struct sockaddr_un, sun_path) + n);
}

int notify_send(const char *msg)
{
	struct sockaddr_un sa;
	int len = notify_addr(&sa), fd, ret = 1;

	if (len <= 0)
		return len;
	/* A socket per message, as sd_notify does: nothing to keep or reopen. */
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa,
		   (socklen_t)len) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

static unsigned count_tracked(const struct server *srv)
{
	unsigned n = 0;

	for (const struct tracked *t = srv->tracked; t; t = t->next)
		n += !t->closing;
	return n;
}

/* STATUS= for `systemctl status`: what is served now. */
static void send_status(struct notifier *n, const char *prefix)
{
	char msg[128];

	n->last_conns = n->srv->nconns;
	n->last_tracked = count_tracked(n->srv);
	snprintf(msg, sizeof(msg), "%sSTATUS=serving %u client%s (%u connection%s)",
		 prefix, n->last_tracked, n->last_tracked == 1 ? "" : "s",
		 n->last_conns, n->last_conns == 1 ? "" : "s");
	notify_send(msg);
}

/* Connections come and go in conn.c; a look now and then keeps it apart. */
static void on_status_timer(uv_timer_t *t)
{
	struct notifier *n = t->data;

	if (n->srv->nconns != n->last_conns ||
	    count_tracked(n->srv) != n->last_tracked)
		send_status(n, "");
}

/* server.c shuts the server down on the same signals; we only say so. */
static void on_stop_signal(uv_signal_t *h, int signum)
{
	(void)signum;
	notify_stop(h->data);
}

static int start_signal(struct notifier *n, uv_signal_t *h, int signum)
{
	int ret = uv_signal_init(n->srv->loop, h);

	if (ret)
		return ret;
	h->data = n;
	uv_unref((uv_handle_t *)h);
	return uv_signal_start(h, on_stop_signal, signum);
}

int notify_start(struct notifier *n, struct server *srv)
{
	int ret;

	if (!getenv("NOTIFY_SOCKET"))
		return 0;
	n->srv = srv;
	n->started = true;
	/* Ready whatever follows: without it systemd would fail the start. */
	send_status(n, "READY=1\n");
	ret = uv_timer_init(srv->loop, &n->status_timer);
	if (ret)
		return ret;
	n->status_timer.data = n;
	/* Unreferenced: when the server's handles close, the loop ends. */
	uv_unref((uv_handle_t *)&n->status_timer);
	ret = uv_timer_start(&n->status_timer, on_status_timer, STATUS_EVERY_MS,
			     STATUS_EVERY_MS);
	if (!ret)
		ret = start_signal(n, &n->sigint, SIGINT);
	if (!ret)
		ret = start_signal(n, &n->sigterm, SIGTERM);
	return ret;
}

static void close_handle(uv_handle_t *h)
{
	if (h->type != UV_UNKNOWN_HANDLE && !uv_is_closing(h))
		uv_close(h, NULL);
}

void notify_stop(struct notifier *n)
{
	if (!n->started)
		return;
	n->started = false;
	notify_send("STOPPING=1\nSTATUS=stopping");
	close_handle((uv_handle_t *)&n->status_timer);
	close_handle((uv_handle_t *)&n->sigint);
	close_handle((uv_handle_t *)&n->sigterm);
}

/* sd_listen_fds(): how many fds from 3 on systemd passed us, or 0. */
static unsigned listen_fds(void)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	long n;

	if (!pid || !fds || atol(pid) != (long)getpid())
		return 0;
	n = atol(fds);
	return n > 0 && n < 1024 ? (unsigned)n : 0;
}

/* close_range() came with Linux 5.9: before it, walk /proc/self/fd. */
static int close_from_proc(int first)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		int fd = atoi(e->d_name);

		if (fd >= first && fd != dirfd(d))
			close(fd);
	}
	closedir(d);
	return 0;
}

/*
 * Whatever started us may have leaked fds into us (a terminal's, a
 * script's pipes, a parent's secrets): a root daemon should hold none of
 * them, nor pass them on.
 */
int close_inherited_fds(void)
{
	int first = SD_LISTEN_FDS_START + (int)listen_fds();

	if (!close_range((unsigned)first, ~0U, 0))
		return 0;
	if (errno != ENOSYS)
		return -errno;
	return close_from_proc(first);
}

const char *socket_name(int fd, char *buf, size_t len)
{
	struct sockaddr_un sa;
	socklen_t salen = sizeof(sa);
	size_t n;

	memset(&sa, 0, sizeof(sa));
	if (getsockname(fd, (struct sockaddr *)&sa, &salen) ||
	    salen <= offsetof(struct sockaddr_un, sun_path) ||
	    sa.sun_family != AF_UNIX) {
		snprintf(buf, len, "(unnamed)");
		return buf;
	}
	n = salen - offsetof(struct sockaddr_un, sun_path);
	if (sa.sun_path[0])	/* a path: NUL-terminated, or filling sun_path */
		snprintf(buf, len, "%.*s", (int)strnlen(sa.sun_path, n), sa.sun_path);
	else			/* abstract: the length says where it ends */
		snprintf(buf, len, "@%.*s", (int)(n - 1), sa.sun_path + 1);
	return buf;
}
