/* SPDX-License-Identifier: MIT */
/* cowguardctl internals: a collected reply, and its two formatters. */
#ifndef CG_CTL_H
#define CG_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "cowguard.h"
#include "protocol.h"

#define EXIT_CLEAN 0
#define EXIT_UNCLEAN 1
#define EXIT_ERROR 2

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

struct ctl_opts {
	const char *socket;
	bool json;
	enum cg__op op;
	pid_t pid;			/* audit, pins */
};

/* UFFD_FEATURE_* names by bit number, as far as Linux 6.8 (MOVE). */
extern const char *const ctl_feature_names[];
#define CTL_NFEATURES 17

/* The counters of struct cg_stats, in its order, with their JSON names. */
#define STATS_MAP(X)                                                          \
	X(wp_faults) X(fork_events) X(pages_shared_by_fork)                   \
	X(pages_made_exclusive) X(remaps) X(removals) X(unmaps)               \
	X(thp_splits) X(audits) X(mismatches) X(regions) X(registered_bytes) \
	X(pins) X(pin_violations) X(unshare_copies) X(unshare_reuses)

const char *ctl_kind_name(uint32_t kind, bool json);
const char *ctl_truth_name(enum cg_truth truth);
/* A pin's mode ("RO", "RW") and how fork leaves it ("foll_pin", "dontfork"). */
const char *ctl_pin_mode(uint32_t flags, bool json);
const char *ctl_pin_fork(uint32_t flags);

/* ctl-text.c: aligned tables for people. */
void text_status(const struct ctl_reply *r, const struct ctl_opts *o);
void text_audit(const struct ctl_client *cl,
		const struct cg_audit_report *total, bool clean);
void text_pins(const struct ctl_reply *r, const struct ctl_opts *o);

/* ctl-json.c: one JSON object. */
void json_status(const struct ctl_reply *r, const struct ctl_opts *o);
void json_audit(const struct ctl_client *cl,
		const struct cg_audit_report *total, bool clean);
void json_pins(const struct ctl_reply *r, const struct ctl_opts *o);

#endif
