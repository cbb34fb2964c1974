// SPDX-License-Identifier: MIT
/* cowguardctl: status, audit and pins as aligned tables. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "client.h"
#include "ctl.h"

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
	if (c->preload_hooks) {
		printf("  preload  ");
		for (unsigned b = 0; b < 64; b++)
			if (c->preload_hooks & (1ULL << b))
				printf(" %s", ctl_preload_hook_name(b));
		printf("  (cowguard-run)\n  pins made");
		for (unsigned b = 0; b < CG_PRELOAD_MAX_HOOKS; b++)
			if (c->preload_hooks & (1ULL << b))
				printf(" %s %" PRIu64, ctl_preload_hook_name(b),
				       c->preload_pins[b]);
		printf("\n");
	}
	printf("  features  %#" PRIx64 ":", c->features);
	for (unsigned b = 0; b < CTL_NFEATURES; b++)
		if (c->features & (1ULL << b))
			printf(" %s", ctl_feature_names[b]);
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
	printf(STATUS_ROW, range, ctl_kind_name(r->kind, false),
	       human_size(r->len, size, sizeof(size)), r->present, r->exclusive,
	       r->shared, r->dirty, r->wp);
}

static void text_stats(const struct cg_stats *s)
{
	unsigned i = 0;

	printf("\n  counters\n");
#define X(name, type, help)                                                   \
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

void text_status(const struct ctl_reply *r, const struct ctl_opts *o)
{
	char sock[CTL_TEXT_SAFE_LEN(sizeof(((struct cg__client *)0)->path))];

	printf("cowguardd at %s: %zu client%s\n",
	       ctl_text_safe(o->socket, o->utf8, sock, sizeof(sock)), r->n,
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
		const char *one = ctl_truth_name(cl->regions[i].r.audit.truth);

		if (cl->regions[i].status)
			continue;
		if (strcmp(t, "none") && strcmp(t, one))
			return "mixed";
		t = one;
	}
	return t;
}

void text_audit(const struct ctl_client *cl,
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
			       ctl_kind_name(r->r.kind, false), cg_strerror(r->status));
		else
			text_audit_row(range, ctl_kind_name(r->r.kind, false),
				       &r->r.audit, ctl_truth_name(r->r.audit.truth));
	}
	text_audit_row("total", "", total, total_truth(cl));
	printf("\n%s: %" PRIu64 " unsafe, %" PRIu64 " conservative, %" PRIu64
	       " unknowable\n", clean ? "clean" : "NOT CLEAN", total->unsafe,
	       total->conservative, total->unknowable);
}

#define PINS_COLS "  %6s  %-31s %10s %-4s %-8s  %-15s %10s\n"

static void text_age(uint64_t ms, char *buf, size_t len)
{
	if (ms < 60 * 1000)
		snprintf(buf, len, "%" PRIu64 ".%03" PRIu64 " s", ms / 1000,
			 ms % 1000);
	else if (ms < 3600 * 1000)
		snprintf(buf, len, "%" PRIu64 " min %02" PRIu64 " s",
			 ms / 60000, ms / 1000 % 60);
	else
		snprintf(buf, len, "%" PRIu64 " h %02" PRIu64 " min",
			 ms / 3600000, ms / 60000 % 60);
}

void text_pins(const struct ctl_reply *r, const struct ctl_opts *o)
{
	char range[40], size[32], age[32], id[24];
	char consumer[CTL_TEXT_SAFE_LEN(sizeof(r->pins->consumer))];

	printf("client %d: %zu pin%s\n", (int)o->pid, r->npins,
	       r->npins == 1 ? "" : "s");
	if (!r->npins)
		return;
	printf(PINS_COLS, "ID", "RANGE", "SIZE", "MODE", "FORK", "CONSUMER",
	       "AGE");
	for (size_t i = 0; i < r->npins; i++) {
		const struct cg__status_pin *p = &r->pins[i];

		snprintf(id, sizeof(id), "%" PRIu64, p->id);
		snprintf(range, sizeof(range), "0x%" PRIx64 "-0x%" PRIx64,
			 p->start, p->start + p->len);
		text_age(p->age_ms, age, sizeof(age));
		printf(PINS_COLS, id, range, human_size(p->len, size, sizeof(size)),
		       ctl_pin_mode(p->flags, false), ctl_pin_fork(p->flags),
		       ctl_text_safe(p->consumer, o->utf8, consumer,
				     sizeof(consumer)), age);
	}
}
