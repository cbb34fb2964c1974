/* SPDX-License-Identifier: MIT */
/* cowguardctl internals: a collected reply, its formatters, and escaping. */
#ifndef CG_CTL_H
#define CG_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "cowguard.h"
#include "wire/protocol.h"

#define EXIT_CLEAN 0
#define EXIT_UNCLEAN 1
#define EXIT_ERROR 2

/* Seconds cowguardctl waits for each answer of cowguardd by default. */
#define CTL_DEFAULT_TIMEOUT 5.0

struct ctl_region {
	struct cg__status_region r;
	int status;			/* the region's audit: 0 or -errno */
};

struct ctl_client {
	struct cg__status_client c;
	struct ctl_region *regions;
	size_t nregions, cap;
};

struct ctl_reply {
	struct ctl_client *clients;
	size_t n, cap;
	struct cg__status_pin *pins;	/* PINS */
	size_t npins, pins_cap;
};

enum ctl_cmd {
	CTL_STATUS, CTL_AUDIT, CTL_PINS, CTL_METRICS, CTL_IMAGE, CTL_SNAPSHOT
};

struct ctl_opts {
	const char *socket;
	bool json;
	bool utf8;			/* the terminal's charset is UTF-8 */
	double timeout;			/* seconds per answer; 0: wait forever */
	enum ctl_cmd cmd;
	enum cg__op op;			/* what cmd asks the daemon */
	pid_t pid;			/* audit, pins, snapshot */
	const char *path;		/* image */
	const char *output;		/* snapshot: -o FILE */
};

/*
 * names.c: the words for the daemon's numbers.  UFFD_FEATURE_* names by
 * bit number, as far as Linux 6.8 (MOVE).
 */
extern const char *const ctl_feature_names[];
#define CTL_NFEATURES 17

/*
 * The counters of struct cg_stats, in its order: X(name, type, help), the
 * type as Prometheus has it (a counter only grows while the client lives;
 * a gauge is a current value), the help from include/cowguard.h.
 */
#define STATS_MAP(X)                                                          \
	X(wp_faults, counter, "Write-protect faults resolved.")               \
	X(fork_events, counter, "Forks followed.")                            \
	X(pages_shared_by_fork, counter,                                      \
	  "4 KiB pages that a fork turned maybe-shared.")                     \
	X(pages_made_exclusive, counter,                                      \
	  "Maybe-shared 4 KiB pages made exclusive.")                         \
	X(remaps, counter, "mremap events.")                                  \
	X(removals, counter, "MADV_DONTNEED and MADV_REMOVE events.")        \
	X(unmaps, counter, "munmap events.")                                  \
	X(thp_splits, counter, "Huge units followed down to 4 KiB.")          \
	X(audits, counter, "Audits run.")                                     \
	X(mismatches, counter,                                                \
	  "Unsafe plus conservative pages, over all audits.")                 \
	X(regions, gauge, "Regions currently registered.")                    \
	X(registered_bytes, gauge, "Bytes currently registered.")             \
	X(pins, gauge, "Pins currently held.")                                \
	X(pin_violations, counter, "Unpins that found a page replaced.")      \
	X(unshare_copies, counter, "Pages a pin had copied to unshare.")      \
	X(unshare_reuses, counter,                                            \
	  "Maybe-shared pages a pin found the client's alone.")               \
	X(unshare_writes, counter,                                            \
	  "Pages a pin had the client unshare by a write fault.")              \
	X(unshare_moves, counter,                                             \
	  "Pages of THPs a pin unshared whole by moving a copy in.")        \
	X(unshare_fills, counter,                                             \
	  "4 KiB pages a pin unshared by copying them out and back in.")

const char *ctl_kind_name(uint32_t kind, bool json);
const char *ctl_truth_name(enum cg_truth truth);
/* The preload shim's hook of bit (CG_HELLO_PRELOAD). */
const char *ctl_preload_hook_name(unsigned bit);
/* A pin's mode ("RO", "RW") and how fork leaves it ("foll_pin", "dontfork"). */
const char *ctl_pin_mode(uint32_t flags, bool json);
const char *ctl_pin_fork(uint32_t flags);

/*
 * escape.c: strings that came from elsewhere (a pin's consumer, named
 * by the client; a socket path; a command line) made safe for where they
 * go.  ctl_utf8_next() decodes one UTF-8 sequence strictly (no overlong
 * forms, surrogates or code points past U+10FFFF): its length and *cp, or
 * 0 when s does not start with a valid one.
 */
size_t ctl_utf8_next(const char *s, size_t n, uint32_t *cp);
/*
 * For a terminal: s with every byte that could move the cursor, change
 * colours or hide text written as \xNN, and a backslash as \\.  buf gets
 * as much as fits whole, always NUL-terminated; returns buf.  Printable
 * ASCII passes; valid UTF-8 of printable characters only when utf8.
 */
const char *ctl_text_safe(const char *s, bool utf8, char *buf, size_t len);
/* Room ctl_text_safe() needs for n bytes: four per byte, and the NUL. */
#define CTL_TEXT_SAFE_LEN(n) (4 * (n) + 1)
/* s as the body of a JSON string (no quotes), always valid UTF-8. */
void ctl_json_escape(FILE *f, const char *s);
/* s as a Prometheus label value (no quotes), always valid UTF-8. */
void ctl_prom_escape(FILE *f, const char *s);

/*
 * timeout.c: --timeout.  ctl_timeout_start() makes ready what a
 * timeout writes (returns 0 or -errno); ctl_timeout_arm() starts the clock
 * again (before connecting, at each answer); ctl_timeout_stop() stops it;
 * ctl_timeout_end() frees.  When o->timeout runs out with no answer, the
 * process writes a line naming the socket and the timeout to stderr (and
 * cowguard_up 0 to stdout, for metrics) and exits EXIT_ERROR.
 */
int ctl_timeout_start(const struct ctl_opts *o);
void ctl_timeout_arm(const struct ctl_opts *o);
void ctl_timeout_stop(const struct ctl_opts *o);
void ctl_timeout_end(void);

/* text.c: aligned tables for people. */
void text_status(const struct ctl_reply *r, const struct ctl_opts *o);
void text_audit(const struct ctl_client *cl,
		const struct cg_audit_report *total, bool clean);
void text_pins(const struct ctl_reply *r, const struct ctl_opts *o);

/* json.c: one JSON object. */
void json_status(const struct ctl_reply *r, const struct ctl_opts *o);
void json_audit(const struct ctl_client *cl,
		const struct cg_audit_report *total, bool clean);
void json_pins(const struct ctl_reply *r, const struct ctl_opts *o);

/*
 * metrics.c: the Prometheus text exposition format (0.0.4), for
 * node_exporter's textfile collector.  metrics_down() is the whole output
 * when cowguardd did not answer (cowguard_up 0), written to f: stdout, or
 * a buffer made ahead for the timeout's signal handler to write(2).
 * metrics_print() returns 0, or -ENOMEM before it writes anything.
 */
int metrics_print(const struct ctl_reply *r, const struct ctl_opts *o);

/* image.c: show and check the snapshot image o->path; the exit status. */
int ctl_image(const struct ctl_opts *o);
/*
 * snapshot.c: a live snapshot of client o->pid (cl: its record, for the
 * progress bar's end) into o->output; the exit status.
 */
int ctl_snapshot(const struct ctl_opts *o, const struct ctl_client *cl);
void metrics_down(FILE *f, const struct ctl_opts *o);

#endif
