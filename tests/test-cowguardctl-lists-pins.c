// SPDX-License-Identifier: MIT
/*
 * `cowguardctl pins PID` lists the pins a client holds (id, range, size,
 * mode, whether fork copies the pages for the consumer's kernel pin or the
 * range is MADV_DONTFORK, the consumer, the age), as a table and as valid
 * JSON; a pin released leaves the list; a pid that is no client fails and
 * says so.  `status` carries the pin counters (pins, pin_violations,
 * unshare_copies, unshare_reuses) with the values cg_stats() reports.
 *
 * Bugs this catches: pins not listed or listed wrong (mode, fork
 * treatment, consumer, range end), a stale pin after cg_unpin(), a JSON
 * field missing or invalid JSON, and counters missing from status.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "handle.h"
#include "harness.h"
#include "pin-util.h"

#define LEN (16 * PG)
static void assert_has(const struct h_run *r, const char *want)
{
	ck_assert_msg(strstr(r->out, want), "no '%s' in:\n%s", want, r->out);
}

/* Two pins: RO without a kernel pin, RW with one, named consumers. */
struct fixture {
	struct cg *cg;
	char *p;
	struct cg_pin *ro, *rw;
	char ro_range[64], rw_range[64];
};

static void setup(struct fixture *f)
{
	f->p = h_map(H_4K, LEN, 'A');
	f->cg = h_open(H_DAEMON);
	ck_assert_int_eq(cg_register(f->cg, f->p, LEN, 0), 0);
	ck_assert_int_eq(cg__pin(f->cg, f->p, 4 * PG, CG_PIN_RO, "vmsplice",
				 &f->ro), 0);
	ck_assert_int_eq(cg_pin(f->cg, f->p + 8 * PG, 2 * PG,
				CG_PIN_RW | CG_PIN_FOLL_PIN, &f->rw), 0);
	snprintf(f->ro_range, sizeof(f->ro_range), "%#" PRIxPTR "-%#" PRIxPTR,
		 (uintptr_t)f->p, (uintptr_t)(f->p + 4 * PG));
	snprintf(f->rw_range, sizeof(f->rw_range), "%#" PRIxPTR "-%#" PRIxPTR,
		 (uintptr_t)(f->p + 8 * PG), (uintptr_t)(f->p + 10 * PG));
}

static void teardown(struct fixture *f)
{
	if (f->ro)
		ck_assert_int_eq(cg_unpin(f->ro), 0);
	if (f->rw)
		ck_assert_int_eq(cg_unpin(f->rw), 0);
	cg_close(f->cg);
	munmap(f->p, LEN);
}

START_TEST(text_pins_lists_each_pin_with_mode_fork_and_consumer)
{
	struct h_run *r = malloc(sizeof(*r));
	struct fixture f = { 0 };
	char want[128];

	ck_assert_ptr_nonnull(r);
	setup(&f);
	h_run_cmd(r, "%s --socket '%s' pins %d 2>&1", h_ctl_path(), h_socket(),
		(int)getpid());
	ck_assert_msg(r->status == 0, "status %d: %s", r->status, r->out);
	snprintf(want, sizeof(want), "client %d: 2 pins", (int)getpid());
	assert_has(r, want);
	assert_has(r, "CONSUMER");
	/* One line per pin: its range, then size, mode, fork, consumer. */
	for (int i = 0; i < 2; i++) {
		const char *line = strstr(r->out, i ? f.rw_range : f.ro_range);
		char row[256];

		ck_assert_msg(line, "no pin %s in:\n%s",
			      i ? f.rw_range : f.ro_range, r->out);
		snprintf(row, sizeof(row), "%.*s", (int)strcspn(line, "\n"), line);
		ck_assert_msg(i ? strstr(row, "8.0 KiB") && strstr(row, " RW ") &&
				      strstr(row, "foll_pin") &&
				      strstr(row, "application")
				: strstr(row, "16.0 KiB") && strstr(row, " RO ") &&
				      strstr(row, "dontfork") &&
				      strstr(row, "vmsplice"),
			      "wrong row: %s", row);
	}
	/* Released pins leave the list. */
	ck_assert_int_eq(cg_unpin(f.ro), 0);
	f.ro = NULL;
	h_run_cmd(r, "%s --socket '%s' pins %d 2>&1", h_ctl_path(), h_socket(),
		(int)getpid());
	ck_assert_int_eq(r->status, 0);
	snprintf(want, sizeof(want), "client %d: 1 pin\n", (int)getpid());
	assert_has(r, want);
	ck_assert_msg(!strstr(r->out, f.ro_range), "unpinned range listed:\n%s",
		      r->out);
	teardown(&f);
	free(r);
}
END_TEST

/* Python reads the JSON (failing on anything invalid), prints each pin. */
#define PY_PINS                                                               \
	"import json,sys; d=json.load(sys.stdin); "                           \
	"assert d['pid']==%d; "                                               \
	"[print(p['start']+'-'+p['end'], p['size'], p['mode'], p['fork'], "   \
	"p['foll_pin'], p['consumer'], p['age_ms']>=%d, type(p['id']).__name__) " \
	"for p in d['pins']]"

START_TEST(json_pins_is_valid_json_with_every_field)
{
	struct timespec pause = { 0, 100 * 1000 * 1000 };
	struct h_run *r = malloc(sizeof(*r));
	struct fixture f = { 0 };
	char want[512];

	ck_assert_ptr_nonnull(r);
	setup(&f);
	nanosleep(&pause, NULL);
	if (h_have_python()) {
		h_run_cmd(r, "%s --socket '%s' --json pins %d | python3 -c \""
			PY_PINS "\" | sort 2>&1", h_ctl_path(), h_socket(),
			(int)getpid(), (int)getpid(), 100);
		snprintf(want, sizeof(want),
			 "%s 16384 ro dontfork False vmsplice True int\n"
			 "%s 8192 rw foll_pin True application True int\n",
			 f.ro_range, f.rw_range);
		ck_assert_msg(r->status == 0, "status %d: %s", r->status, r->out);
		ck_assert_str_eq(r->out, want);
		h_run_cmd(r, "%s --socket '%s' --json pins %d >/dev/null", h_ctl_path(),
			h_socket(), (int)getpid());
		ck_assert_int_eq(r->status, 0);
	}
	teardown(&f);
	if (h_have_python()) {
		h_run_cmd(r, "%s --socket '%s' --json pins %d 2>/dev/null | python3 -c \"import "
			"json,sys; print(json.load(sys.stdin)['pins'])\" 2>&1",
			h_ctl_path(), h_socket(), (int)getpid());
		/* The handle is closed: not a client any more, or no pins. */
		ck_assert_msg(r->status != 0 || !strcmp(r->out, "[]\n"),
			      "pins after close: %s", r->out);
	}
	free(r);
}
END_TEST

START_TEST(pins_of_a_process_that_is_not_a_client_fails_and_says_so)
{
	struct h_run *r = malloc(sizeof(*r));

	ck_assert_ptr_nonnull(r);
	h_run_cmd(r, "%s --socket '%s' pins %d 2>&1", h_ctl_path(), h_socket(),
		(int)getppid());
	ck_assert_int_eq(r->status, 2);
	assert_has(r, "is not a client of cowguardd");
	h_run_cmd(r, "%s --socket '%s' pins 2>&1", h_ctl_path(), h_socket());
	ck_assert_int_eq(r->status, 2);
	h_run_cmd(r, "%s --socket '%s' pins x 2>&1", h_ctl_path(), h_socket());
	ck_assert_int_eq(r->status, 2);
	free(r);
}
END_TEST

#define PY_STATS                                                              \
	"import json,sys; d=json.load(sys.stdin); "                           \
	"s=[c['stats'] for c in d['clients'] if c['pid']==%d][0]; "           \
	"print(s['pins'], s['pin_violations'], s['unshare_copies'], "         \
	"s['unshare_reuses'])"

START_TEST(status_shows_the_pin_counters)
{
	struct h_run *r = malloc(sizeof(*r));
	struct fixture f = { 0 };
	struct h_waiter w;
	struct cg_stats s;
	char want[128];

	ck_assert_ptr_nonnull(r);
	f.p = h_map(H_4K, LEN, 'A');
	f.cg = h_open(H_DAEMON);
	ck_assert_int_eq(cg_register(f.cg, f.p, LEN, 0), 0);
	/* A child shares the pages: the pin copies them. */
	w = h_fork_waiting(f.p, 'A');
	ck_assert_int_eq(cg_pin(f.cg, f.p, 4 * PG, CG_PIN_RO, &f.ro), 0);
	ck_assert_int_eq(h_release(&w), 0);
	s = ph_stats(f.cg);
	ck_assert_uint_eq(s.pins, 1);
	ck_assert_uint_eq(s.unshare_copies, 4);

	h_run_cmd(r, "%s --socket '%s' status 2>&1", h_ctl_path(), h_socket());
	ck_assert_msg(r->status == 0, "status %d: %s", r->status, r->out);
	assert_has(r, "pin_violations");
	assert_has(r, "unshare_reuses");
	if (h_have_python()) {
		h_run_cmd(r, "%s --socket '%s' --json status | python3 -c \""
			PY_STATS "\" 2>&1", h_ctl_path(), h_socket(), (int)getpid());
		snprintf(want, sizeof(want), "%llu %llu %llu %llu\n",
			 (unsigned long long)s.pins,
			 (unsigned long long)s.pin_violations,
			 (unsigned long long)s.unshare_copies,
			 (unsigned long long)s.unshare_reuses);
		ck_assert_msg(r->status == 0, "status %d: %s", r->status, r->out);
		ck_assert_str_eq(r->out, want);
	}
	teardown(&f);
	free(r);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cowguardctl lists pins");
	TCase *tc = tcase_create("cowguardctl");

	h_timeout(tc, 15);
	h_add(tc, text_pins_lists_each_pin_with_mode_fork_and_consumer);
	h_add(tc, json_pins_is_valid_json_with_every_field);
	h_add(tc, pins_of_a_process_that_is_not_a_client_fails_and_says_so);
	h_add(tc, status_shows_the_pin_counters);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
