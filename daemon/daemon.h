/* SPDX-License-Identifier: MIT */
/* cowguardd internals shared by its files. */
#ifndef CG_DAEMON_H
#define CG_DAEMON_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <syslog.h>
#include <uv.h>

#include "engine/engine.h"
#include "wire/protocol.h"

struct server;

struct tracked;

/* Replies a client has not read yet, oldest first (conn.c). */
struct outq {
	struct cg__rep *pkts;		/* a ring of OUTQ_MAX, made when first needed */
	unsigned head, len;
};

/* Requests that came in while a streamed reply was still going out. */
struct parked {
	struct cg__req *reqs;		/* a ring of PARKED_MAX */
	unsigned head, len;
};

/*
 * A streamed reply (STATUS, AUDIT_PID, PINS) in progress, made a few
 * packets at a time as the client reads (requests.c).  Tracked address
 * spaces may come and go meanwhile, so it remembers them by serial, never
 * by pointer.
 */
struct stream {
	struct cg__req req;		/* the request it answers */
	uint64_t at;			/* the serial of the tracked it is in */
	size_t next;			/* that tracked's next record */
	bool active;
	uint64_t pos;			/* how far an audit or a pin got */
	/* An audit in slices: its range and its report. */
	bool auditing;
	uint64_t audit_start, audit_end;
	struct cg_audit_report audit;
};

/* A client's /proc/PID/pagemap and smaps: fds, -1 where none. */
struct client_files {
	int pagemap, smaps;
};

/* A connection: an application, a forked child, or cowguardctl. */
struct conn {
	uv_poll_t poll;
	uv_timer_t hello_timer;		/* drops a connection that never says hello */
	uv_timer_t write_timer;		/* drops one that stops reading its replies */
	int open_handles;		/* freed when all three are closed */
	int sock;
	int events;			/* what poll waits for */
	struct ucred cred;
	/*
	 * The peer's process, bound at accept (lib/kernel/process.h); an
	 * application's goes to its tracked address space at hello.
	 */
	struct cg__proc proc;
	/*
	 * The pagemap and smaps its hello came with (CG_HELLO_PROCFS), -1
	 * each without: client_files.c takes them, conn_close() closes what
	 * is left.
	 */
	struct client_files files;
	/* CONN_REFUSED: over a bound; its hello gets the errno `refusal`. */
	enum { CONN_NEW, CONN_APP, CONN_CTL, CONN_REFUSED } kind;
	int refusal;
	struct tracked *tracked;	/* the address space it speaks for */
	/* CONN_CTL: the serial of the client it snapshots, or 0. */
	uint64_t snap_of;
	struct server *srv;
	struct conn *next;
	struct outq out;
	struct parked parked;
	struct stream stream;
};

/* An address space whose uffd the daemon services. */
struct tracked {
	uv_poll_t poll;
	struct cg__mm mm;
	uid_t uid;
	pid_t parent_pid;		/* an adopted child's parent, or 0 */
	uint64_t preload_hooks;		/* CG_HELLO_PRELOAD's, or 0 */
	uint64_t preload_pins[CG_PRELOAD_MAX_HOOKS];	/* by hook's name */
	struct conn *conn;		/* NULL until a child says hello */
	/*
	 * How t goes when its client must (conn.c sets it with conn): by its
	 * connection, which closes t.  NULL: tracked_close(t) alone.
	 */
	void (*drop)(struct tracked *t);
	struct server *srv;
	struct tracked *next;
	bool closing;
	/*
	 * Given by a stream (requests.c) to those that lack one; the list
	 * is newest first, so serials fall along it.  0: none yet.
	 */
	uint64_t serial;
};

/* quota.c: what one user may make the daemon hold (root: 4 times it). */
struct user_quota {
	uint64_t max_bytes;	/* registered, adopted children's included */
	uint64_t max_mem;	/* the daemon's memory, estimated; 0: default */
	uint32_t max_pins;
	uint32_t max_children;	/* unnamed adopted children */
};
#define USER_QUOTA_DEFAULTS                                                   \
	{ .max_bytes = 1ULL << 40, .max_pins = 16384, .max_children = 256 }
enum { QUOTA_OPT_BYTES = 512, QUOTA_OPT_PINS, QUOTA_OPT_CHILDREN,
       QUOTA_OPT_MEM };
#define QUOTA_LONGOPTS                                                        \
	{ "max-user-bytes", required_argument, NULL, QUOTA_OPT_BYTES },       \
	{ "max-user-pins", required_argument, NULL, QUOTA_OPT_PINS },         \
	{ "max-user-children", required_argument, NULL, QUOTA_OPT_CHILDREN }, \
	{ "max-user-memory", required_argument, NULL, QUOTA_OPT_MEM }
enum { QUOTA_BYTES, QUOTA_PINS, QUOTA_CHILDREN, QUOTA_MEM, QUOTA_CLIENT,
       QUOTA_VMAS, QUOTA_KINDS };

/*
 * What serving a packet leaves of its connection: kept, or to be dropped
 * (the reason is logged).
 */
enum req_result { REQ_KEEP = 0, REQ_DROP = -1 };

struct options {
	const char *socket_path;
	struct user_quota user;
	struct cg__limits limits;
	unsigned max_conns;
	unsigned max_conns_per_user;	/* root has no such bound */
	unsigned max_client_vmas;	/* cg__smaps_limit() */
	unsigned hello_timeout_ms;	/* from accept to hello */
	unsigned max_children;		/* unnamed adopted children per parent */
	bool verbose;
};

struct server {
	uv_loop_t *loop;
	uv_poll_t listen_poll;
	uv_signal_t sigint, sigterm;
	int listen_fd;
	int kpageflags_fd;
	struct options opt;
	struct conn *conns;
	unsigned nconns;		/* CONN_REFUSED ones not counted */
	unsigned nrefusing;		/* CONN_REFUSED ones waiting for a hello */
	struct tracked *tracked;
	uint64_t last_serial;		/* the newest tracked's serial */
	/* Out of fds: a spare to give up for a moment, or a pause. */
	int spare_fd;
	uv_timer_t accept_timer;
	/*
	 * What serves a connection's packets and streamed replies
	 * (requests.c): conn.c is the transport only.  Set before
	 * server_start().
	 */
	enum req_result (*dispatch)(struct conn *c, const struct cg__req *req,
				    int fd);
	enum req_result (*stream)(struct conn *c);
	/* c is closing: what it drove of another client ends. */
	void (*conn_gone)(struct conn *c);
	/* Runs while a tracked's backlog waits (tracked_backlog_check()). */
	uv_idle_t backlog_idle;
	unsigned fd_refused;		/* connections refused in this burst */
	/* Refusals are logged at most once a second, with a count. */
	struct refusal_log {
		uint64_t last_ms;
		unsigned unlogged;
	} refusal_log;
	struct refusal_log quota_log[QUOTA_KINDS];
};

/*
 * log.c: one line to stderr, prefixed by its level, one of syslog.h's
 * LOG_ERR .. LOG_DEBUG (LOG_DEBUG only with --verbose).
 */
void log_msg(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void log_set_verbose(bool verbose);
#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
/*
 * Per-connection logging names the peer, as CRIU's lp_err() does; level
 * as log_msg()'s.
 */
#define conn_log(level, c, fmt, ...)                                          \
	log_msg(level, "pid %d uid %u: " fmt, (int)(c)->cred.pid,             \
		(unsigned)(c)->cred.uid, ##__VA_ARGS__)

/* options.c: a number with an optional K, M, G or T; 0 or -EINVAL. */
int parse_size(const char *s, uint64_t *out);
/* A --max-user-* option: 0, -EINVAL (said why), -ENOENT (not one). */
int option_user_quota(int c, const char *arg, struct user_quota *q);

/*
 * quota.c.  Whether uid may register len more bytes, pin once more, or
 * have parent's fork adopted: 0, or -EDQUOT (bytes, pins, children) or
 * -ENOSPC (the daemon's memory for that user), logged.
 */
int quota_register(struct server *srv, uid_t uid, uint64_t len);
int quota_pin(struct server *srv, uid_t uid);
int quota_child(struct server *srv, uid_t uid, const struct cg__mm *parent);
/*
 * The engine refused a request of uid's client over a per-client bound
 * (status -EDQUOT, or -EMLINK: --max-client-vmas): log.
 */
void quota_client_refused(struct server *srv, uid_t uid, pid_t pid,
			  const char *op, int status);
/* caps.c */
int caps_drop(void);
/* From root to uid/gid (--user), keeping what caps_drop() keeps; 0 or -errno. */
int caps_become(uid_t uid, gid_t gid);
int open_pagemap_privileged(pid_t pid);

/* listen.c */
int listen_open(const char *path);

/*
 * client_files.c.  Keep the /proc files a hello came with, of the n fds
 * received with req, in f: returns how many fds are left for the request.
 */
size_t client_files_keep(struct client_files *f, const struct cg__req *req,
			 const int *fds, size_t n);
/*
 * The pagemap and smaps of c's process into out (the caller's to close):
 * the ones it sent when they are its own, else the daemon's.  0 or -errno
 * (no pagemap).
 */
int client_files_open(struct conn *c, struct client_files *out);
void client_files_close(struct client_files *f);

/*
 * server.c: accept on srv->listen_fd and stop at SIGINT or SIGTERM.
 * server_start() returns 0 or libuv's error.
 */
int server_start(struct server *srv);
void server_stop(struct server *srv);

/* conn.c: an accepted sock; 0, or why it was closed at once. */
int conn_new(struct server *srv, int sock);
void conn_close(struct conn *c);
/*
 * Send one packet of a reply, or queue it while the client's socket is
 * full.  Returns 0, -ENOBUFS (the queue is full: drop the client), or the
 * error of sending.
 */
int conn_send(struct conn *c, const struct cg__rep *rep);
/* Whether the queue has room for a stream to go on. */
bool conn_has_room(const struct conn *c);
/*
 * c speaks for t from now on: an application's connection, t's process
 * c's, and t dropped by closing c.
 */
void conn_serve_tracked(struct conn *c, struct tracked *t);

/*
 * tracked.c.  A client's address space: its files (taken, closed on
 * failure) when pid is known, NULL for an unnamed child (pid 0).
 */
struct tracked *tracked_new(struct server *srv, int uffd, uint64_t features,
			    pid_t pid, uid_t uid, struct client_files *files);
void tracked_close(struct tracked *t);
/*
 * Serve mm, an address space the engine made (a fork event's child): t
 * takes it over, or it is freed and NULL returned.  Not polled yet.
 */
struct tracked *tracked_take(struct server *srv, struct cg__mm *mm, uid_t uid);
/* Watch t's uffd from the loop: 0 or libuv's error. */
int tracked_poll(struct tracked *t);
struct tracked *tracked_find_pid(struct server *srv, pid_t pid);
/*
 * Whether the client did what only a hostile client does with the uffd it
 * handed over (mm.tampered): then one line is logged, and it must go.
 */
bool tracked_tampered(const struct tracked *t);
/*
 * After anything that served t's engine: messages left in its backlog are
 * served on the loop's next turns (srv->backlog_idle).
 */
void tracked_backlog_check(struct tracked *t);

/*
 * adopt.c: forked children, from the fork event to their hello.  Have t's
 * forks adopted: each child's uffd is served, unnamed, from the fork on.
 */
void adopt_forks(struct tracked *t);
/*
 * Which adopted uffd a forked child's connection may claim: the unnamed
 * child of parent whose uffd is c's peer's own, proven by its smaps (an
 * fd); the reason for a refusal is logged.  Returns 0 and *out, -ESRCH (none is proven:
 * also with no region to prove by, or with other threads running), -EPERM (not that parent's child, and none proven).
 */
int adopt_claim(struct conn *c, pid_t parent, int smaps, struct tracked **out);
/*
 * A CHILD_HELLO naming claim, a pid of the child's own namespace, as its
 * parent: c is given its adopted uffd, or 0 is not returned (-ESRCH,
 * -EPERM, -errno; the reason is logged).
 */
int adopt_child_hello(struct conn *c, int64_t claim);

/*
 * gate.c: whether c's peer may hand us a uffd to track: root, or a member
 * of the group /dev/userfaultfd is opened to.  Returns 0, or -EPERM with
 * the reason in why.
 */
int gate_hello(const struct conn *c, char *why, size_t n);

/* requests.c */
/* The packet, with fd (or -1), as the op table says (lib/wire/protocol.h). */
enum req_result request_dispatch(struct conn *c, const struct cg__req *req,
				 int fd);
/*
 * Make more of c's streamed reply while its queue has room, at most a
 * turn's worth (c->stream.active then says whether it is done).
 */
enum req_result request_stream(struct conn *c);
/* c is closing: a snapshot it drives ends, its client's writes go on. */
void request_conn_gone(struct conn *c);

#endif
