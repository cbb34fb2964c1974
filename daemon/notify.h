/* SPDX-License-Identifier: MIT */
/*
 * Telling the service manager how cowguardd is doing: the sd_notify(3)
 * protocol (READY=1, STATUS=..., STOPPING=1) for a Type=notify unit, and
 * the start-up chores that go with running under systemd.
 */
#ifndef CG_DAEMON_NOTIFY_H
#define CG_DAEMON_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

struct server;

/* The notifier of one server; zeroed, then notify_start(). */
struct notifier {
	uv_timer_t status_timer;	/* STATUS= when the counts change */
	uv_signal_t sigint, sigterm;	/* STOPPING=1 as shutdown begins */
	struct server *srv;
	unsigned last_conns, last_tracked;
	bool started;
};

/*
 * Send one message (newline-separated KEY=VALUE lines) to $NOTIFY_SOCKET.
 * Returns 1 sent, 0 when there is no $NOTIFY_SOCKET (not under a
 * Type=notify unit), or -errno.
 */
int notify_send(const char *msg);

/*
 * Say READY=1 with a first STATUS=, then keep STATUS= current and say
 * STOPPING=1 on SIGINT or SIGTERM.  Without $NOTIFY_SOCKET it does
 * nothing.  Its handles never keep the loop alive.  Returns 0 or a libuv
 * error.
 */
int notify_start(struct notifier *n, struct server *srv);

/* Close what notify_start() opened; the loop must run once more after. */
void notify_stop(struct notifier *n);

/*
 * Close every file descriptor above 2 that this process inherited, except
 * the listening sockets systemd passed (LISTEN_FDS, when LISTEN_PID is
 * us).  Call first thing, before anything is opened.  Returns 0 or -errno.
 */
int close_inherited_fds(void);

/*
 * Where fd listens, as the socket itself says (getsockname): its path, an
 * abstract name as "@name", or "(unnamed)".  Returns buf.
 */
const char *socket_name(int fd, char *buf, size_t len);

#endif
