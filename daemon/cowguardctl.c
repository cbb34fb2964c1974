// SPDX-License-Identifier: MIT
/*
 * cowguardctl: what cowguardd tracks, and whether it agrees with the kernel.
 *
 *   cowguardctl [--socket PATH] [--json] status
 *   cowguardctl [--socket PATH] [--json] audit PID
 *
 * A reply is collected whole (clients, each with its regions), then printed
 * by one of two formatters: aligned tables for people, or one JSON object.
 * Exit status: 0 success (audit: zero unsafe and zero conservative pages),
 * 1 audit not clean, 2 usage, connection or daemon error.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
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
};

struct ctl_opts {
	const char *socket;
	bool json;
	enum cg__op op;
	pid_t pid;			/* audit */
};

/* ---- names ---------------------------------------------------------------- */

static const char *kind_name(uint32_t kind, bool json)
{
	static const char *const text[] = { "none", "4 KiB", "THP", "THP split",
					    "hugetlb 2 MiB", "hugetlb 1 GiB" };
	static const char *const id[] = { "none", "4k", "thp", "thp_pte",
					  "hugetlb_2m", "hugetlb_1g" };

	if (kind >= sizeof(id) / sizeof(*id))
		return "unknown";
	return json ? id[kind] : text[kind];
}

static const char *truth_name(enum cg_truth truth)
{
	switch (truth) {
	case CG_TRUTH_KPAGEFLAGS:
		return "kpageflags";
	case CG_TRUTH_MAPCOUNT:
		return "mapcount";
	}
	return "none";
}

/* UFFD_FEATURE_* by bit number, as far as Linux 6.8 (MOVE). */
static const char *const feature_names[] = {
	"pagefault_flag_wp", "event_fork", "event_remap", "event_remove",
	"missing_hugetlbfs", "missing_shmem", "event_unmap", "sigbus",
	"thread_id", "minor_hugetlbfs", "minor_shmem", "exact_address",
	"wp_hugetlbfs_shmem", "wp_unpopulated", "poison", "wp_async", "move",
};
#define NFEATURES (sizeof(feature_names) / sizeof(*feature_names))

/* The counters of struct cg_stats, in its order, with their JSON names. */
#define STATS_MAP(X)                                                          \
	X(wp_faults) X(fork_events) X(pages_shared_by_fork)                   \
	X(pages_made_exclusive) X(remaps) X(removals) X(unmaps)               \
	X(thp_splits) X(audits) X(mismatches) X(regions) X(registered_bytes)

/* ---- receiving ------------------------------------------------------------ */

static void *grow(void *v, size_t *cap, size_t n, size_t size)
{
	size_t ncap = *cap ? *cap * 2 : 8;
	void *p;

	if (n < *cap)
		return v;
	p = realloc(v, ncap * size);
	if (p)
		*cap = ncap;
	return p;
}

static int add_client(struct ctl_reply *out, const struct cg__status_client *c)
{
	struct ctl_client *v = grow(out->clients, &out->cap, out->n, sizeof(*v));

	if (!v)
		return -ENOMEM;
	out->clients = v;
	memset(&v[out->n], 0, sizeof(*v));
	v[out->n++].c = *c;
	return 0;
}

static int add_region(struct ctl_reply *out, const struct cg__rep *rep)
{
	struct ctl_client *c;
	struct ctl_region *v;

	if (!out->n)
		return -EPROTO;		/* a region belongs to the client before it */
	c = &out->clients[out->n - 1];
	v = grow(c->regions, &c->cap, c->nregions, sizeof(*v));
	if (!v)
		return -ENOMEM;
	c->regions = v;
	v[c->nregions].r = rep->u.region;
	v[c->nregions++].status = rep->status;
	return 0;
}

static void reply_free(struct ctl_reply *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->clients[i].regions);
	free(r->clients);
}

/* One packet of the stream; returns 1 at its end (*status: the op's). */
static int take(struct ctl_reply *out, const struct cg__rep *rep,
		const struct cg__req *req, int *status)
{
	if (rep->magic != CG_PROTO_MAGIC || rep->op != req->op)
		return -EPROTO;
	switch (rep->rec) {
	case CG_REC_END:
		*status = rep->status;
		return 1;
	case CG_REC_CLIENT:
		return add_client(out, &rep->u.client);
	case CG_REC_REGION:
		return add_region(out, rep);
	}
	return -EPROTO;
}

/* Ask, and collect the streamed reply.  Returns 0, -errno, or the op's. */
static int fetch(struct cg__client *cli, const struct ctl_opts *o,
		 struct ctl_reply *out)
{
	struct cg__req req;
	struct cg__rep rep;
	int ret, status = 0;

	cg__req_init(&req, o->op);
	req.pid = o->pid;
	ret = cg__client_call(cli, &req, &rep);
	while (!ret) {
		ret = take(out, &rep, &req, &status);
		if (ret == 0)
			ret = cg__client_next(cli, &rep);
	}
	return ret < 0 ? ret : status;
}

/* ---- text ----------------------------------------------------------------- */

static const char *human_size(uint64_t bytes, char *buf, size_t len)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)bytes;
	unsigned u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%" PRIu64 " B", bytes);
	else
		snprintf(buf, len, "%.1f %s", v, unit[u]);
	return buf;
}

static void text_client_header(const struct cg__status_client *c)
{
	char mem[32];

	if (c->pid)
		printf("client %" PRId64, c->pid);
	else
		printf("unnamed child of %" PRId64, c->parent_pid);
	if (c->pid && c->parent_pid)
		printf(", forked from %" PRId64, c->parent_pid);
	printf(" (uid %" PRIu32 ", %" PRIu32 " region%s, engine memory %s)\n",
	       c->uid, c->nregions, c->nregions == 1 ? "" : "s",
	       human_size(c->footprint, mem, sizeof(mem)));
	printf("  features  %#" PRIx64 ":", c->features);
	for (unsigned b = 0; b < NFEATURES; b++)
		if (c->features & (1ULL << b))
			printf(" %s", feature_names[b]);
	printf("\n\n");
}

#define STATUS_COLS "  %-31s %-13s %9s %9s %9s %12s %9s %9s\n"
#define STATUS_ROW "  %-31s %-13s %9s %9" PRIu64 " %9" PRIu64 " %12" PRIu64 \
		   " %9" PRIu64 " %9" PRIu64 "\n"

static void text_region_row(const struct cg__status_region *r)
{
	char range[40], size[32];

	snprintf(range, sizeof(range), "0x%" PRIx64 "-0x%" PRIx64, r->start,
		 r->start + r->len);
	printf(STATUS_ROW, range, kind_name(r->kind, false),
	       human_size(r->len, size, sizeof(size)), r->present, r->exclusive,
	       r->shared, r->dirty, r->wp);
}

static void text_stats(const struct cg_stats *s)
{
	unsigned i = 0;

	printf("\n  counters\n");
#define X(name)                                                               \
	printf("%s%-20s %10" PRIu64, i % 3 ? "   " : "    ", #name, s->name);  \
	if (++i % 3 == 0)                                                     \
		printf("\n");
	STATS_MAP(X)
#undef X
	if (i % 3)
		printf("\n");
}

static void text_status_client(const struct ctl_client *cl)
{
	const struct cg__status_client *c = &cl->c;
	char size[32];

	text_client_header(c);
	printf(STATUS_COLS, "REGION", "KIND", "SIZE", "PRESENT", "EXCLUSIVE",
	       "MAYBE-SHARED", "DIRTY", "WP");
	for (size_t i = 0; i < cl->nregions; i++)
		text_region_row(&cl->regions[i].r);
	printf(STATUS_ROW, "total", "",
	       human_size(c->stats.registered_bytes, size, sizeof(size)),
	       c->present, c->exclusive, c->shared, c->dirty, c->wp);
	text_stats(&c->stats);
}

static void text_status(const struct ctl_reply *r, const struct ctl_opts *o)
{
	printf("cowguardd at %s: %zu client%s\n", o->socket, r->n,
	       r->n == 1 ? "" : "s");
	for (size_t i = 0; i < r->n; i++) {
		printf("\n");
		text_status_client(&r->clients[i]);
	}
}

#define AUDIT_COLS "  %-31s %-13s %8s %8s %8s %7s %13s %11s %9s  %s\n"
#define AUDIT_ROW "  %-31s %-13s %8" PRIu64 " %8" PRIu64 " %8" PRIu64     \
		  " %7" PRIu64 " %13" PRIu64 " %11" PRIu64 " %9" PRIu64 "  %s\n"

static void text_audit_row(const char *what, const char *kind,
			   const struct cg_audit_report *a, const char *truth)
{
	printf(AUDIT_ROW, what, kind, a->pages, a->present, a->exact, a->unsafe,
	       a->conservative, a->unknowable, a->presence, truth);
}

/* The truth every audited region used, or "mixed". */
static const char *total_truth(const struct ctl_client *cl)
{
	const char *t = "none";

	for (size_t i = 0; i < cl->nregions; i++) {
		const char *one = truth_name(cl->regions[i].r.audit.truth);

		if (cl->regions[i].status)
			continue;
		if (strcmp(t, "none") && strcmp(t, one))
			return "mixed";
		t = one;
	}
	return t;
}

static void text_audit(const struct ctl_client *cl,
		       const struct cg_audit_report *total, bool clean)
{
	char range[40];

	text_client_header(&cl->c);
	printf(AUDIT_COLS, "REGION", "KIND", "PAGES", "PRESENT", "EXACT",
	       "UNSAFE", "CONSERVATIVE", "UNKNOWABLE", "PRESENCE", "TRUTH");
	for (size_t i = 0; i < cl->nregions; i++) {
		const struct ctl_region *r = &cl->regions[i];

		snprintf(range, sizeof(range), "0x%" PRIx64 "-0x%" PRIx64,
			 r->r.start, r->r.start + r->r.len);
		if (r->status)
			printf("  %-31s %-13s audit failed: %s\n", range,
			       kind_name(r->r.kind, false), cg_strerror(r->status));
		else
			text_audit_row(range, kind_name(r->r.kind, false),
				       &r->r.audit, truth_name(r->r.audit.truth));
	}
	text_audit_row("total", "", total, total_truth(cl));
	printf("\n%s: %" PRIu64 " unsafe, %" PRIu64 " conservative, %" PRIu64
	       " unknowable\n", clean ? "clean" : "NOT CLEAN", total->unsafe,
	       total->conservative, total->unknowable);
}

/* ---- JSON ----------------------------------------------------------------- */

/* A small emitter: pretty-printed, commas handled, strings escaped. */
struct jw {
	unsigned depth;
	bool first;
};

static void jw_key(struct jw *w, const char *key)
{
	printf("%s\n%*s", w->first ? "" : ",", 2 * w->depth, "");
	w->first = false;
	if (key)
		printf("\"%s\": ", key);	/* keys are ours: no escaping */
}

static void jw_open(struct jw *w, const char *key, char brace)
{
	if (w->depth)
		jw_key(w, key);
	putchar(brace);
	w->depth++;
	w->first = true;
}

static void jw_close(struct jw *w, char brace)
{
	w->depth--;
	if (!w->first)
		printf("\n%*s", 2 * w->depth, "");
	putchar(brace);
	w->first = false;
	if (!w->depth)
		putchar('\n');
}

static void jw_u64(struct jw *w, const char *key, uint64_t v)
{
	jw_key(w, key);
	printf("%" PRIu64, v);
}

static void jw_pid(struct jw *w, const char *key, int64_t pid)
{
	jw_key(w, key);
	if (pid)
		printf("%" PRId64, pid);
	else
		printf("null");
}

static void jw_bool(struct jw *w, const char *key, bool v)
{
	jw_key(w, key);
	fputs(v ? "true" : "false", stdout);
}

static void jw_addr(struct jw *w, const char *key, uint64_t v)
{
	jw_key(w, key);
	printf("\"0x%" PRIx64 "\"", v);
}

static void jw_str(struct jw *w, const char *key, const char *s)
{
	jw_key(w, key);
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static void json_pages(struct jw *w, uint64_t present, uint64_t excl,
		       uint64_t shared, uint64_t dirty, uint64_t wp)
{
	jw_open(w, "pages", '{');
	jw_u64(w, "present", present);
	jw_u64(w, "exclusive", excl);
	jw_u64(w, "maybe_shared", shared);
	jw_u64(w, "dirty", dirty);
	jw_u64(w, "write_protected", wp);
	jw_close(w, '}');
}

static void json_stats(struct jw *w, const struct cg_stats *s)
{
	jw_open(w, "stats", '{');
#define X(name) jw_u64(w, #name, s->name);
	STATS_MAP(X)
#undef X
	jw_close(w, '}');
}

static void json_features(struct jw *w, uint64_t features)
{
	jw_u64(w, "features", features);
	jw_open(w, "feature_names", '[');
	for (unsigned b = 0; b < NFEATURES; b++)
		if (features & (1ULL << b))
			jw_str(w, NULL, feature_names[b]);
	jw_close(w, ']');
}

static void json_audit_report(struct jw *w, const struct cg_audit_report *a)
{
	jw_u64(w, "pages", a->pages);
	jw_u64(w, "present", a->present);
	jw_u64(w, "exact", a->exact);
	jw_u64(w, "unsafe", a->unsafe);
	jw_u64(w, "conservative", a->conservative);
	jw_u64(w, "unknowable", a->unknowable);
	jw_u64(w, "presence", a->presence);
}

static void json_region(struct jw *w, const struct ctl_region *cr, bool audit)
{
	const struct cg__status_region *r = &cr->r;

	jw_open(w, NULL, '{');
	jw_addr(w, "start", r->start);
	jw_addr(w, "end", r->start + r->len);
	jw_u64(w, "size", r->len);
	jw_str(w, "kind", kind_name(r->kind, true));
	json_pages(w, r->present, r->exclusive, r->shared, r->dirty, r->wp);
	if (audit && cr->status) {
		jw_str(w, "error", cg_strerror(cr->status));
	} else if (audit) {
		jw_open(w, "audit", '{');
		jw_str(w, "truth", truth_name(r->audit.truth));
		json_audit_report(w, &r->audit);
		jw_close(w, '}');
	}
	jw_close(w, '}');
}

static void json_client(struct jw *w, const struct ctl_client *cl, bool audit)
{
	const struct cg__status_client *c = &cl->c;

	jw_pid(w, "pid", c->pid);
	jw_pid(w, "parent_pid", c->parent_pid);
	jw_bool(w, "unnamed", c->pid == 0);
	jw_u64(w, "uid", c->uid);
	json_features(w, c->features);
	jw_u64(w, "engine_memory_bytes", c->footprint);
	json_pages(w, c->present, c->exclusive, c->shared, c->dirty, c->wp);
	json_stats(w, &c->stats);
	jw_open(w, "regions", '[');
	for (size_t i = 0; i < cl->nregions; i++)
		json_region(w, &cl->regions[i], audit);
	jw_close(w, ']');
}

static void json_status(const struct ctl_reply *r, const struct ctl_opts *o)
{
	struct jw w = { 0 };

	jw_open(&w, NULL, '{');
	jw_str(&w, "socket", o->socket);
	jw_open(&w, "clients", '[');
	for (size_t i = 0; i < r->n; i++) {
		jw_open(&w, NULL, '{');
		json_client(&w, &r->clients[i], false);
		jw_close(&w, '}');
	}
	jw_close(&w, ']');
	jw_close(&w, '}');
}

static void json_audit(const struct ctl_client *cl,
		       const struct cg_audit_report *total, bool clean)
{
	struct jw w = { 0 };

	jw_open(&w, NULL, '{');
	json_client(&w, cl, true);
	jw_open(&w, "total", '{');
	json_audit_report(&w, total);
	jw_close(&w, '}');
	jw_bool(&w, "clean", clean);
	jw_close(&w, '}');
}

/* ---- commands ------------------------------------------------------------- */

static void err(const char *what, int ret)
{
	fprintf(stderr, "cowguardctl: %s: %s\n", what, cg_strerror(ret));
}

static int show_status(const struct ctl_reply *r, const struct ctl_opts *o)
{
	if (o->json)
		json_status(r, o);
	else
		text_status(r, o);
	return EXIT_CLEAN;
}

/* Sum the regions' reports; false if any region could not be audited. */
static bool audit_total(const struct ctl_client *cl,
			struct cg_audit_report *t)
{
	bool all = true;

	memset(t, 0, sizeof(*t));
	for (size_t i = 0; i < cl->nregions; i++) {
		const struct cg_audit_report *a = &cl->regions[i].r.audit;

		if (cl->regions[i].status) {
			all = false;
			continue;
		}
		t->pages += a->pages;
		t->present += a->present;
		t->exact += a->exact;
		t->unsafe += a->unsafe;
		t->conservative += a->conservative;
		t->unknowable += a->unknowable;
		t->presence += a->presence;
	}
	return all;
}

static int show_audit(const struct ctl_reply *r, const struct ctl_opts *o)
{
	struct cg_audit_report total;
	bool clean;

	if (r->n != 1) {
		err("audit", -EPROTO);
		return EXIT_ERROR;
	}
	clean = audit_total(&r->clients[0], &total) && !total.unsafe &&
		!total.conservative;
	if (o->json)
		json_audit(&r->clients[0], &total, clean);
	else
		text_audit(&r->clients[0], &total, clean);
	return clean ? EXIT_CLEAN : EXIT_UNCLEAN;
}

static int run(const struct ctl_opts *o)
{
	struct cg__client cli = { .sock = -1 };
	struct ctl_reply reply = { 0 };
	char what[300];
	int ret, code;

	ret = cg__client_open_ctl(&cli, o->socket);
	if (ret) {
		snprintf(what, sizeof(what), "cannot connect to cowguardd at %s",
			 o->socket);
		err(what, ret);
		return EXIT_ERROR;
	}
	ret = fetch(&cli, o, &reply);
	cg__client_close(&cli);
	if (ret) {
		if (o->op == CG_OP_AUDIT_PID && ret == -ESRCH)
			snprintf(what, sizeof(what), "audit: pid %d is not a client "
				 "of cowguardd", (int)o->pid);
		else if (o->op == CG_OP_AUDIT_PID)
			snprintf(what, sizeof(what), "audit of pid %d", (int)o->pid);
		else
			snprintf(what, sizeof(what), "status");
		err(what, ret);
		code = EXIT_ERROR;
	} else {
		code = o->op == CG_OP_STATUS ? show_status(&reply, o)
					     : show_audit(&reply, o);
	}
	reply_free(&reply);
	if (fflush(stdout) && code == EXIT_CLEAN)
		code = EXIT_ERROR;
	return code;
}

/* ---- options -------------------------------------------------------------- */

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: cowguardctl [OPTION]... status\n"
		"       cowguardctl [OPTION]... audit PID\n"
		"Show what cowguardd tracks, or audit a client's page state\n"
		"against the kernel's.\n\n"
		"  status      every client you may see: regions, page counts by\n"
		"              state, counters, engine memory\n"
		"  audit PID   compare each region of client PID with the kernel\n\n"
		"  -s, --socket PATH   the daemon's socket (default $COWGUARD_SOCKET,\n"
		"                      else %s)\n"
		"  -j, --json          one JSON object instead of tables\n"
		"  -h, --help          this text\n"
		"  -V, --version       the version\n\n"
		"Exit status: 0 success (audit: zero unsafe and zero conservative\n"
		"pages), 1 audit found mismatches or could not audit a region,\n"
		"2 usage, connection or daemon error (such as no such client).\n",
		CG_DEFAULT_SOCKET);
}

static int parse_pid(const char *s, pid_t *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v <= 0 || v > INT32_MAX)
		return -EINVAL;
	*out = (pid_t)v;
	return 0;
}

static int parse_command(int argc, char **argv, struct ctl_opts *o)
{
	if (argc == 1 && !strcmp(argv[0], "status")) {
		o->op = CG_OP_STATUS;
		return 0;
	}
	if (argc == 2 && !strcmp(argv[0], "audit")) {
		o->op = CG_OP_AUDIT_PID;
		if (parse_pid(argv[1], &o->pid)) {
			fprintf(stderr, "cowguardctl: not a pid: '%s'\n", argv[1]);
			return -EINVAL;
		}
		return 0;
	}
	usage(stderr);
	return -EINVAL;
}

static const char *default_socket(void)
{
	const char *env = getenv("COWGUARD_SOCKET");

	return env && *env ? env : CG_DEFAULT_SOCKET;
}

/* Returns 0, 1 when done (--help, --version), or -EINVAL. */
static int parse_args(int argc, char **argv, struct ctl_opts *o)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 }
	};
	int c;

	o->socket = default_socket();
	while ((c = getopt_long(argc, argv, "s:jhV", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			o->socket = optarg;
			break;
		case 'j':
			o->json = true;
			break;
		case 'h':
			usage(stdout);
			return 1;
		case 'V':
			printf("cowguardctl %d.%d (protocol %d.%d)\n",
			       CG_VERSION_MAJOR, CG_VERSION_MINOR, CG_PROTO_MAJOR,
			       CG_PROTO_MINOR);
			return 1;
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	return parse_command(argc - optind, argv + optind, o);
}

int main(int argc, char **argv)
{
	struct ctl_opts o = { 0 };
	int ret = parse_args(argc, argv, &o);

	if (ret)
		return ret > 0 ? EXIT_CLEAN : EXIT_ERROR;
	return run(&o);
}
