// SPDX-License-Identifier: MIT
/* cowguardctl: status, audit and pins as one JSON object. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"

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

/* Strings may be the client's (a pin's consumer): see escape.c. */
static void jw_str(struct jw *w, const char *key, const char *s)
{
	jw_key(w, key);
	putchar('"');
	ctl_json_escape(stdout, s);
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
#define X(name, type, help) jw_u64(w, #name, s->name);
	STATS_MAP(X)
#undef X
	jw_close(w, '}');
}

static void json_features(struct jw *w, uint64_t features)
{
	jw_u64(w, "features", features);
	jw_open(w, "feature_names", '[');
	for (unsigned b = 0; b < CTL_NFEATURES; b++)
		if (features & (1ULL << b))
			jw_str(w, NULL, ctl_feature_names[b]);
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
	jw_str(w, "kind", ctl_kind_name(r->kind, true));
	json_pages(w, r->present, r->exclusive, r->shared, r->dirty, r->wp);
	if (audit && cr->status) {
		jw_str(w, "error", cg_strerror(cr->status));
	} else if (audit) {
		jw_open(w, "audit", '{');
		jw_str(w, "truth", ctl_truth_name(r->audit.truth));
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
	jw_bool(w, "preloaded", c->preload_hooks != 0);
	jw_open(w, "preload_hooks", '[');
	for (unsigned b = 0; b < 64; b++)
		if (c->preload_hooks & (1ULL << b))
			jw_str(w, NULL, ctl_preload_hook_name(b));
	jw_close(w, ']');
	/* Pins made through each hook the client runs, by name. */
	jw_open(w, "preload_pins", '{');
	for (unsigned b = 0; b < CG_PRELOAD_MAX_HOOKS; b++)
		if (c->preload_hooks & (1ULL << b))
			jw_u64(w, ctl_preload_hook_name(b), c->preload_pins[b]);
	jw_close(w, '}');
	jw_u64(w, "engine_memory_bytes", c->footprint);
	json_pages(w, c->present, c->exclusive, c->shared, c->dirty, c->wp);
	json_stats(w, &c->stats);
	jw_open(w, "regions", '[');
	for (size_t i = 0; i < cl->nregions; i++)
		json_region(w, &cl->regions[i], audit);
	jw_close(w, ']');
}

void json_status(const struct ctl_reply *r, const struct ctl_opts *o)
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

void json_audit(const struct ctl_client *cl,
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

void json_pins(const struct ctl_reply *r, const struct ctl_opts *o)
{
	struct jw w = { 0 };

	jw_open(&w, NULL, '{');
	jw_pid(&w, "pid", o->pid);
	jw_open(&w, "pins", '[');
	for (size_t i = 0; i < r->npins; i++) {
		const struct cg__status_pin *p = &r->pins[i];

		jw_open(&w, NULL, '{');
		jw_u64(&w, "id", p->id);
		jw_addr(&w, "start", p->start);
		jw_addr(&w, "end", p->start + p->len);
		jw_u64(&w, "size", p->len);
		jw_str(&w, "mode", ctl_pin_mode(p->flags, true));
		jw_str(&w, "fork", ctl_pin_fork(p->flags));
		jw_bool(&w, "foll_pin", p->flags & CG_PIN_FOLL_PIN);
		jw_str(&w, "consumer", p->consumer);
		jw_u64(&w, "age_ms", p->age_ms);
		jw_close(&w, '}');
	}
	jw_close(&w, ']');
	jw_close(&w, '}');
}
