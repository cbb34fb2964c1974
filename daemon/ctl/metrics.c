// SPDX-License-Identifier: MIT
/*
 * cowguardctl metrics: the daemon's clients and their counters in the
 * Prometheus text exposition format, version 0.0.4, as node_exporter's
 * textfile collector reads it (systemd/cowguard-metrics.service writes
 * it there every 30 s):
 *
 *   # HELP cowguard_client_wp_faults_total Write-protect faults resolved.
 *   # TYPE cowguard_client_wp_faults_total counter
 *   cowguard_client_wp_faults_total{pid="4242",uid="1000"} 17
 *
 * Every family has its HELP and TYPE first and its samples together (the
 * format allows a family once); no timestamps (the collector refuses
 * them).  A client is labelled by pid and uid.  Its counters start at 0
 * with the client and go when it goes, which Prometheus's rate() and
 * increase() take as resets.
 *
 * An adopted child that has not said hello yet has no pid (it has one as
 * soon as its atfork handler reconnects): it would have no label to tell
 * it from its siblings, so only their number is exported.
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

#define PAGES "4 KiB pages "

struct family {
	const char *name;	/* after "cowguard_client_", before "_total" */
	const char *type;	/* "counter" gets "_total" */
	const char *help;	/* ours: no backslash, no newline to escape */
	size_t off;		/* of its uint64_t in struct cg__status_client */
};

static const struct family client_families[] = {
#define X(f, type, help)                                                      \
	{ #f, #type, help, offsetof(struct cg__status_client, stats.f) },
	STATS_MAP(X)
#undef X
	{ "pages_present", "gauge", PAGES "present in registered regions.",
	  offsetof(struct cg__status_client, present) },
	{ "pages_exclusive", "gauge", PAGES "the client maps alone.",
	  offsetof(struct cg__status_client, exclusive) },
	{ "pages_maybe_shared", "gauge", PAGES "that may be shared (COW).",
	  offsetof(struct cg__status_client, shared) },
	{ "pages_dirty", "gauge", PAGES "written since registration.",
	  offsetof(struct cg__status_client, dirty) },
	{ "pages_write_protected", "gauge", PAGES "whose next write is seen.",
	  offsetof(struct cg__status_client, wp) },
	{ "engine_memory_bytes", "gauge",
	  "Memory the page-state engine uses for the client.",
	  offsetof(struct cg__status_client, footprint) },
};

static void header(const char *name, const char *type, const char *help)
{
	printf("# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void up(FILE *f, const struct ctl_opts *o, int value)
{
	fprintf(f, "# HELP cowguard_up Whether cowguardd answered on the "
		"socket (1) or not (0).\n# TYPE cowguard_up gauge\n"
		"cowguard_up{socket=\"");
	ctl_prom_escape(f, o->socket);
	fprintf(f, "\"} %d\n", value);
}

void metrics_down(FILE *f, const struct ctl_opts *o)
{
	up(f, o, 0);
}

/*
 * Which clients get series of their own: named ones, each pid once (a
 * duplicate label set is an error to the collector; a pid is listed twice
 * only in the moment a process exits and its number is reused).
 */
static bool *exported(const struct ctl_reply *r, size_t *unnamed)
{
	bool *out = calloc(r->n ? r->n : 1, sizeof(*out));

	*unnamed = 0;
	if (!out)
		return NULL;
	for (size_t i = 0; i < r->n; i++) {
		out[i] = r->clients[i].c.pid != 0;
		if (!out[i])
			(*unnamed)++;
		for (size_t j = 0; j < i && out[i]; j++)
			if (out[j] && r->clients[j].c.pid == r->clients[i].c.pid)
				out[i] = false;
	}
	return out;
}

static void client_family(const struct family *fam, const struct ctl_reply *r,
			  const bool *listed)
{
	bool counter = !strcmp(fam->type, "counter");
	char name[96];

	snprintf(name, sizeof(name), "cowguard_client_%s%s", fam->name,
		 counter ? "_total" : "");
	header(name, fam->type, fam->help);
	for (size_t i = 0; i < r->n; i++) {
		const struct cg__status_client *c = &r->clients[i].c;
		uint64_t v;

		if (!listed[i])
			continue;
		memcpy(&v, (const char *)c + fam->off, sizeof(v));
		printf("%s{pid=\"%" PRId64 "\",uid=\"%" PRIu32 "\"} %" PRIu64 "\n",
		       name, c->pid, c->uid, v);
	}
}

/* Returns 0, or -ENOMEM before anything is written. */
int metrics_print(const struct ctl_reply *r, const struct ctl_opts *o)
{
	size_t unnamed, named = 0;
	bool *listed = exported(r, &unnamed);

	if (!listed)
		return -ENOMEM;
	for (size_t i = 0; i < r->n; i++)
		named += listed[i];
	up(stdout, o, 1);
	header("cowguard_clients", "gauge",
	       "Clients of cowguardd with a pid (all of them as root).");
	printf("cowguard_clients %zu\n", named);
	header("cowguard_unnamed_children", "gauge",
	       "Forked children adopted whose process has not said hello yet.");
	printf("cowguard_unnamed_children %zu\n", unnamed);
	for (size_t i = 0; i < sizeof(client_families) / sizeof(*client_families); i++)
		client_family(&client_families[i], r, listed);
	free(listed);
	return 0;
}
