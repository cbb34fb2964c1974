/* SPDX-License-Identifier: MIT */
/*
 * The wire protocol between libcowguard and cowguardd: fixed-size packets
 * on a SOCK_SEQPACKET Unix socket, so a packet is one message and an fd
 * rides with the packet that needs it.  Both ends are built from this
 * header; the major version guards every layout below.
 */
#ifndef CG_PROTOCOL_H
#define CG_PROTOCOL_H

#include <stdint.h>
#include <sys/types.h>

#include "cowguard.h"

#define CG_PROTO_MAGIC 0x43475244u	/* "CGRD" */
/*
 * Packets are compared by size, so any change to a layout below is a new
 * major (an older peer is told "another protocol major", not a bare
 * protocol error): 2 since struct cg_stats gained unshare_writes and a PIN
 * reply its write-unshare span; 3 since a STATUS client record carries the
 * preload shim's hooks; 4 since it counts the pins made through each.
 */
#define CG_PROTO_MAJOR 4
#define CG_PROTO_MINOR 3		/* 3: cowguardctl may snapshot a client */

/*
 * Who may send an op: a connection yet to say hello, a client (one that
 * said HELLO, or CHILD_HELLO), cowguardctl (after CTL_HELLO).
 */
enum cg__from { CG_FROM_NEW = 1, CG_FROM_APP = 2, CG_FROM_CTL = 4 };
enum cg__fd { CG_NOFD, CG_FD };

/*
 * HELLO and CHILD_HELLO flag: the packet's last two fds are the sender's
 * /proc/self/pagemap and /proc/self/smaps, opened by the sender, so that
 * the kernel decides with its credentials what the daemon reads of it.
 */
#define CG_HELLO_PROCFS (1u << 0)
/*
 * HELLO and CHILD_HELLO: the client is the preload shim (lib/preload/);
 * req.id holds its hooks, a bit each, named by CG_PRELOAD_HOOK_NAMES in
 * that order.  STATUS reports them (cowguardctl status).
 */
#define CG_HELLO_PRELOAD (1u << 1)
#define CG_PRELOAD_HOOK_NAMES { "vmsplice", "zerocopy", "uring", "verbs", \
				"odirect" }
#define CG_PRELOAD_MAX_HOOKS 8
/*
 * The shim's pins are named "shim:" and the hook's name (at most 15
 * bytes): cowguardd counts a preloaded client's pins by it.
 */
#define CG_PRELOAD_CONSUMER "shim:"

/*
 * The operations, one row each, X(name, string, from, fd, served):
 *  - from: who may send it (enum cg__from, or-ed);
 *  - fd: CG_FD if its packet carries an fd; with any other op an fd is a
 *    protocol error;
 *  - served: by the daemon's handler do_<served> (daemon/requests.c), or,
 *    as engine, by cg__mm_dispatch() against the sender's own address
 *    space, in the daemon and in embedded mode alike.
 * The daemon's permission check, fd rule and dispatch all follow from it.
 * A row's place is its number on the wire: a new op goes at the end.
 */
#define CG_OP_MAP(X)                                                          \
	/* a client: its uffd, un-negotiated */                               \
	/* (CG_HELLO_PROCFS: then its pagemap and smaps fds too) */         \
	X(HELLO, "hello", CG_FROM_NEW, CG_FD, hello)                          \
	/* a forked child: which one am I */                                  \
	X(CHILD_HELLO, "child-hello", CG_FROM_NEW, CG_NOFD, child_hello)      \
	/* cowguardctl: no uffd */                                            \
	X(CTL_HELLO, "ctl-hello", CG_FROM_NEW, CG_NOFD, ctl_hello)            \
	X(REGISTER, "register", CG_FROM_APP, CG_NOFD, engine)                 \
	X(UNREGISTER, "unregister", CG_FROM_APP, CG_NOFD, engine)             \
	X(QUERY, "query", CG_FROM_APP, CG_NOFD, engine)                       \
	X(AUDIT, "audit", CG_FROM_APP, CG_NOFD, engine)                       \
	X(STATS, "stats", CG_FROM_APP, CG_NOFD, engine)                       \
	X(FORK_PREPARE, "fork-prepare", CG_FROM_APP, CG_NOFD, engine)         \
	X(PIN, "pin", CG_FROM_APP, CG_NOFD, engine)                           \
	X(UNPIN, "unpin", CG_FROM_APP, CG_NOFD, engine)                       \
	/* done with the THP chunks a PIN handed over (its addr, len) */      \
	X(MOVE, "move", CG_FROM_APP, CG_NOFD, engine)                         \
	/* clients and regions */                                             \
	X(STATUS, "status", CG_FROM_APP | CG_FROM_CTL, CG_NOFD, status)       \
	/* audit every region of a client */                                  \
	X(AUDIT_PID, "audit-pid", CG_FROM_APP | CG_FROM_CTL, CG_NOFD,         \
	  one_client)                                                         \
	/* a client's pins */                                                 \
	X(PINS, "pins", CG_FROM_APP | CG_FROM_CTL, CG_NOFD, one_client)     \
	/* the units written in [addr, addr+len) since the last, armed again */ \
	X(TRACK_COLLECT, "track-collect", CG_FROM_APP, CG_NOFD, engine)      \
	/*								      \
	 * live snapshot: freeze, then [addr, addr+len) saved: what next;    \
	 * from cowguardctl, of the client req.pid (BEGIN) it may act on     \
	 */								      \
	X(SNAPSHOT_BEGIN, "snapshot-begin", CG_FROM_APP | CG_FROM_CTL,        \
	  CG_NOFD, snapshot)						      \
	X(SNAPSHOT_STEP, "snapshot-step", CG_FROM_APP | CG_FROM_CTL, CG_NOFD, \
	  snapshot)							      \
	X(SNAPSHOT_END, "snapshot-end", CG_FROM_APP | CG_FROM_CTL, CG_NOFD,   \
	  snapshot)

enum cg__op {
	CG_OP_NONE = 0,
#define X(name, ...) CG_OP_##name,
	CG_OP_MAP(X)
#undef X
	CG_OP_MAX
};

const char *cg__op_name(unsigned op);

/*
 * REGISTER again after the daemon went away (lib/reconnect.c): writes
 * were unseen meanwhile, so every page is written for write tracking.
 */
#define CG__REGISTER_UNSEEN (1u << 30)

/* PIN: unshare THP as the kernel does, by no move (one failed). */
#define CG__PIN_NO_MOVE (1u << 29)

/* TRACK_COLLECT: ranges a reply carries at most. */
#define CG__TRACK_MAX 16

struct cg__track_range {
	uint64_t addr, len;
};

/*
 * SNAPSHOT_STEP's answer: the next window to save, in the region
 * [area_start, area_start + area_len) of kind (enum cg_page_kind); bit i
 * of bits set: save [start + (i << shift), + (1 << shift)), for i below
 * nbits (at most 512); bit i of kept set: that granule was present and
 * not written since the parent snapshot (incremental).  area_len 0: all
 * is saved.
 */
#define CG__SNAP_BITS 512
#define CG__SNAP_URGENT (1u << 0)	/* a write waits for it */

/* SNAPSHOT_BEGIN's req.flags, and SNAPSHOT_END's. */
#define CG__SNAP_INCREMENTAL (1u << 0)
#define CG__SNAP_FAILED (1u << 1)
/* END: the image is not the client's own: no incremental builds on it. */
#define CG__SNAP_NOT_OURS (1u << 2)

struct cg__snap_window {
	uint64_t area_start, area_len;
	uint32_t kind, shift;
	uint64_t start;
	uint32_t nbits, flags;
	uint64_t bits[CG__SNAP_BITS / 64];
	uint64_t kept[CG__SNAP_BITS / 64];
	uint64_t waits;		/* writes that waited, so far */
};

struct cg__req {
	uint32_t magic;
	uint16_t op;
	uint16_t major;
	uint16_t minor;
	uint16_t pad;
	uint32_t flags;
	uint64_t addr;
	uint64_t len;
	int64_t pid;		/* AUDIT_PID, PINS: whose; CHILD_HELLO: the parent */
	uint64_t id;		/* UNPIN: which pin; TRACK_COLLECT: most ranges */
	char name[16];		/* PIN: the consumer, NUL-padded */
};

/* Per-client and per-region records, streamed by STATUS and AUDIT_PID. */
struct cg__status_client {
	int64_t pid;		/* 0: an adopted child not yet identified */
	int64_t parent_pid;	/* the client it was forked from, or 0 */
	uint32_t uid;
	uint32_t nregions;
	uint64_t features;
	struct cg_stats stats;
	uint64_t present, exclusive, shared, dirty, wp, footprint;
	uint64_t preload_hooks;	/* CG_HELLO_PRELOAD's bits; 0: not preloaded */
	/* Pins made through each hook, by CG_PRELOAD_CONSUMER's name. */
	uint64_t preload_pins[CG_PRELOAD_MAX_HOOKS];
};

struct cg__status_region {
	int64_t pid;
	uint64_t start, len;
	uint32_t kind;		/* enum cg_page_kind of its units */
	uint32_t pad;
	uint64_t present, exclusive, shared, dirty, wp;
	struct cg_audit_report audit;	/* AUDIT_PID only */
};

struct cg__status_pin {
	int64_t pid;
	uint64_t id, start, len;
	uint32_t flags;		/* CG_PIN_* */
	uint32_t pad;
	uint64_t age_ms;
	char consumer[16];
};

enum cg__rec {
	CG_REC_END = 0,		/* last packet of a reply */
	CG_REC_CLIENT,
	CG_REC_REGION,
	CG_REC_PIN,
};

struct cg__rep {
	uint32_t magic;
	uint16_t op;
	uint16_t major;
	uint16_t minor;
	uint16_t rec;		/* enum cg__rec for streamed replies */
	int32_t status;		/* 0 or -errno */
	union {
		uint64_t features;		/* HELLO */
		struct cg_page_info page;	/* QUERY */
		struct cg_audit_report audit;	/* AUDIT */
		struct cg_stats stats;		/* STATS */
		struct cg__status_client client;
		struct cg__status_region region;
		struct cg__status_pin pin;
		struct {
			uint64_t id;
			uint64_t bad_addr;	/* UNPIN: the replaced page */
			uint64_t bad_len;	/* PIN -EAGAIN: write-unshare */
			uint64_t move_len;	/* PIN -EAGAIN: copy to move */
		} pinned;			/* PIN, UNPIN */
		struct {
			uint64_t next;		/* where to go on; len's end: done */
			uint32_t n, pad;
			struct cg__track_range r[CG__TRACK_MAX];
		} track;			/* TRACK_COLLECT */
		struct cg__snap_window snap;	/* SNAPSHOT_STEP */
	} u;
};

/* The most fds a packet carries: a HELLO's uffd, pagemap and smaps. */
#define CG__MAX_FDS 3

/* Send one packet, with fd (>= 0) attached.  Returns 0 or -errno. */
int cg__send(int sock, const void *buf, size_t len, int fd);
/* Send one packet with the n fds (all >= 0) attached, in that order. */
int cg__send_fds(int sock, const void *buf, size_t len, const int *fds,
		 size_t n);

/*
 * Receive one packet of exactly len bytes; *fd gets an attached fd or -1
 * (fd may be NULL: any fd received is closed).  Returns 0, -ECONNRESET at
 * end of stream, -EPROTO on a packet of another size, -EPROTONOSUPPORT on
 * one of another size whose header names another major version (buf then
 * holds that header), or -errno.
 */
int cg__recv(int sock, void *buf, size_t len, int *fd);
/*
 * cg__recv() keeping up to max attached fds, in order, in fds (*n of
 * them); any more are closed.
 */
int cg__recv_fds(int sock, void *buf, size_t len, int *fds, size_t max,
		 size_t *n);

void cg__req_init(struct cg__req *req, enum cg__op op);
void cg__rep_init(struct cg__rep *rep, const struct cg__req *req);

#endif
