/* SPDX-License-Identifier: MIT */
/* Daemon mode, client side: one connection to cowguardd. */
#ifndef CG_CLIENT_H
#define CG_CLIENT_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/un.h>

#include "wire/protocol.h"

struct cg__client {
	int sock;
	uint64_t features;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	/*
	 * The server may be root, us, $COWGUARD_DAEMON_USER's uid or the
	 * system user cowguard's ((uid_t)-1: none), resolved at connect.
	 */
	uid_t daemon_uid;
	uid_t service_uid;
};

/*
 * Whom a client trusts with its uffd: the server's SO_PEERCRED uid (the
 * process that listened on the socket; under systemd socket activation,
 * PID 1) must be 0, our effective uid, the system user cowguard (a uid
 * from 1 to 999: cowguardd.service's User=), or the user
 * $COWGUARD_DAEMON_USER names (a user name, or a uid in decimal) for a
 * cowguardd run as another service user.  The variable is read with
 * secure_getenv() (a set-user-ID program ignores it) when connecting; one
 * that names no user adds no one.
 * Otherwise the connection is closed before any uffd is created or sent.
 *
 * Connect to the daemon at path and hand it a fresh, un-negotiated uffd;
 * the daemon negotiates it (it may have CAP_SYS_PTRACE, which EVENT_FORK
 * needs) and becomes its only holder: we close our copy, so that if the
 * daemon dies the kernel releases the uffd and wakes every blocked fault.
 * Returns 0 or -errno (-ECONNREFUSED/-ENOENT: no daemon; -EACCES: the
 * socket is served by a user we do not trust, see above).
 */
int cg__client_open(struct cg__client *c, const char *path);
void cg__client_close(struct cg__client *c);

/* One request and its reply.  Returns 0 or -errno; rep->status is the op's. */
int cg__client_call(struct cg__client *c, const struct cg__req *req,
		    struct cg__rep *rep);

/*
 * In a forked child: replace the inherited connection (same fd number) by
 * a new one that tells the daemon which adopted uffd is ours.
 * Only async-signal-safe calls.  Returns 0 or -errno.
 */
int cg__client_child(struct cg__client *c, pid_t parent);

/* Connect without a uffd, for cowguardctl.  Returns 0 or -errno. */
int cg__client_open_ctl(struct cg__client *c, const char *path);

/* Receive the next packet of a streamed reply (STATUS, AUDIT_PID). */
int cg__client_next(struct cg__client *c, struct cg__rep *rep);

/*
 * Set by the preload shim before its cg_open(): its hooks, sent with every
 * hello (CG_HELLO_PRELOAD).  0 everywhere else.
 */
extern uint64_t cg__preload_hooks;

#endif
