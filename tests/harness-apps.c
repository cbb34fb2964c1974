// SPDX-License-Identifier: MIT
/*
 * The harness's part for the programs of tests/apps/: run one with or
 * without cowguard-run, and hold it to its exit status and to what the
 * shim says in COWGUARD_LOG's file (its last line counts what it did).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

const char *h_builddir(void)
{
	return getenv("CG_BUILDDIR") ? getenv("CG_BUILDDIR") : "build";
}

/*
 * LD_PRELOAD puts the shim before the sanitizers' runtime, which must come
 * first; the lanes without sanitizers run these.
 */
bool h_preload_possible(void)
{
#ifdef __SANITIZE_ADDRESS__
	h_skip("LD_PRELOAD of the shim in a sanitizers' build (the ASan "
	       "runtime must be first in the library list)");
	return false;
#else
	return true;
#endif
}

/* Run one app (under cowguard-run with r->run), its log kept in log. */
static void run_app(const struct h_app *r, const char *log, struct h_run *out)
{
	unlink(log);
	if (r->run)
		h_run_cmd(out, "COWGUARD_SOCKET='%s' %s/cowguard-run --log %s %s "
			  "-- %s/tests/apps/%s %s 2>&1", h_socket(), h_builddir(),
			  log, r->run, h_builddir(), r->app, r->args);
	else
		h_run_cmd(out, "%s/tests/apps/%s %s 2>&1", h_builddir(), r->app,
			  r->args);
}

static void read_log(const char *log, char *text, size_t size)
{
	FILE *f = fopen(log, "re");

	text[0] = 0;
	if (f) {
		text[fread(text, 1, size - 1, f)] = 0;
		fclose(f);
	}
	unlink(log);
}

bool h_app_checked(const struct h_app *r, struct h_run *keep)
{
	char log[128], text[4096];
	struct h_run *out;

	if (!h_preload_possible())
		return false;
	out = keep ? keep : malloc(sizeof(*out));
	ck_assert_ptr_nonnull(out);
	snprintf(log, sizeof(log), "/tmp/cg-preload.%d.log", (int)getpid());
	run_app(r, log, out);
	read_log(log, text, sizeof(text));
	if (out->status == 77) {
		h_skip("%s: %s", r->app, out->out);
		if (!keep)
			free(out);
		return false;
	}
	ck_assert_msg(out->status == r->status, "%s %s%s%s: exit %d, not %d: "
		      "%s; the shim's log: %s", r->app, r->args,
		      r->run ? " under cowguard-run " : "", r->run ? r->run : "",
		      out->status, r->status, out->out, text);
	for (int i = 0; i < 3 && r->logged[i]; i++)
		ck_assert_msg(strstr(text, r->logged[i]), "%s %s: the shim's "
			      "log lacks \"%s\": %s", r->app, r->args,
			      r->logged[i], text);
	if (!keep)
		free(out);
	return true;
}

void h_app_runs_as_said(const void *arg, int mode, enum h_kind kind)
{
	(void)mode;
	(void)kind;
	h_app_checked(arg, NULL);
}
