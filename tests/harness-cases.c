// SPDX-License-Identifier: MIT
/*
 * The test matrix: each behaviour a suite adds is crossed here with the
 * modes and page kinds it applies to, and each cell becomes a test of its
 * own, named "case (mode, kind)".  Check then names the cell in a failure,
 * and h_skip() in a skip line, without a suite writing it out.
 */
#include <stdio.h>
#include <stdlib.h>

#include "harness.h"

struct cell {
	TTest test;			/* what Check runs: run_cell(index) */
	const TTest *fn;		/* a START_TEST function, or NULL */
	const struct h_case *row;	/* or a row of a case table */
	int arg;			/* fn's _i */
	int mode;			/* -1: not per mode */
	int kind;			/* -1: not per kind */
	char name[160];
};

/* Reachable to the end, so that no leak checker counts the cells. */
static struct cell **cells;
static size_t ncells, cells_cap;
static const struct cell *running;

/*
 * CG_TEST_1G_ONE_MODE (the guest lanes, scripts/vm-check.sh): a 1 GiB
 * cell runs in daemon mode only.  The engine is one in both modes, and
 * under emulation a 1 GiB cell costs 15-40 s, a third of the 6.1 lane
 * (2026-12-07).
 */
static bool left_out(const struct cell *c)
{
	return c->kind == H_HUGETLB_1G && c->mode == H_EMBEDDED &&
	       getenv("CG_TEST_1G_ONE_MODE");
}

static void run_cell(int i)
{
	const struct cell *c = cells[i];

	running = c;
	if (left_out(c))
		h_skip("1 GiB pages run in daemon mode only in this lane "
		       "(CG_TEST_1G_ONE_MODE)");
	else if (c->row)
		c->row->run(c->row->arg, c->mode < 0 ? H_DAEMON : c->mode,
			    c->kind < 0 ? H_4K : (enum h_kind)c->kind);
	else
		c->fn->fn(c->arg);
}

static void name_cell(struct cell *c, const char *name)
{
	if (c->mode >= 0 && c->kind >= 0)
		snprintf(c->name, sizeof(c->name), "%s (%s, %s)", name,
			 h_mode_name(c->mode), h_kind_name(c->kind));
	else if (c->mode >= 0)
		snprintf(c->name, sizeof(c->name), "%s (%s)", name,
			 h_mode_name(c->mode));
	else if (c->kind >= 0)
		snprintf(c->name, sizeof(c->name), "%s (%s)", name,
			 h_kind_name(c->kind));
	else
		snprintf(c->name, sizeof(c->name), "%s", name);
}

static void add_cell(TCase *tc, struct cell *c, const char *name,
		     const char *file, int line)
{
	if (ncells == cells_cap) {
		cells_cap = cells_cap ? 2 * cells_cap : 64;
		cells = realloc(cells, cells_cap * sizeof(*cells));
		if (!cells)
			abort();
	}
	name_cell(c, name);
	c->test = (TTest){ c->name, run_cell, file, line };
	cells[ncells] = c;
	tcase_add_loop_test(tc, &c->test, (int)ncells, (int)ncells + 1);
	ncells++;
}

/* Each (mode, kind) of the masks, or -1 where a mask is 0. */
static void cross(unsigned modes, unsigned kinds,
		  void (*add)(int mode, int kind, void *arg), void *arg)
{
	for (int m = modes ? 0 : -1; m < (modes ? 2 : 0); m++) {
		if (m >= 0 && !(modes & 1u << m))
			continue;
		for (int k = kinds ? 0 : -1; k < (kinds ? 4 : 0); k++)
			if (k < 0 || kinds & 1u << k)
				add(m, k, arg);
	}
}

struct adding {
	TCase *tc;
	const TTest *fn;
	const struct h_case *row;
};

static void add_one(int mode, int kind, void *arg)
{
	const struct adding *a = arg;
	struct cell *c = calloc(1, sizeof(*c));

	if (!c)
		abort();
	c->fn = a->fn;
	c->row = a->row;
	c->mode = mode;
	c->kind = kind;
	/* What h_add_modes() and friends passed before: see harness.h. */
	c->arg = mode >= 0 && kind >= 0 ? mode * 4 + kind
		 : mode >= 0		? mode
		 : kind >= 0		? kind
					: 0;
	add_cell(a->tc, c, a->row ? a->row->name : a->fn->name,
		 a->row ? a->row->file : a->fn->file,
		 a->row ? a->row->line : a->fn->line);
}

void h_add_test(TCase *tc, const TTest *fn, unsigned modes, unsigned kinds)
{
	struct adding a = { tc, fn, NULL };

	cross(modes, kinds, add_one, &a);
}

void h_add_loop(TCase *tc, const TTest *fn, int n)
{
	for (int i = 0; i < n; i++) {
		struct cell *c = calloc(1, sizeof(*c));
		char name[128];

		if (!c)
			abort();
		c->fn = fn;
		c->arg = i;
		c->mode = c->kind = -1;
		snprintf(name, sizeof(name), "%s [%d]", fn->name, i);
		add_cell(tc, c, name, fn->file, fn->line);
	}
}

void h_add_cases(TCase *tc, const struct h_case *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct adding a = { tc, NULL, &rows[i] };

		cross(rows[i].modes, rows[i].kinds, add_one, &a);
	}
}

const char *h_case_name(void)
{
	return running ? running->name : NULL;
}
