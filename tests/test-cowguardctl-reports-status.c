// SPDX-License-Identifier: MIT
/*
 * cowguardctl shows what the daemon tracks: `status` lists this process
 * and its region (as tables, and as one valid JSON object), `audit PID`
 * passes for a clean client, and an audit of a process that is not a
 * client fails with a message that says so.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"

#define LEN (4 * MIB)
static char *map_and_register(struct cg **cg)
{
	char *p = h_map(H_4K, LEN, 'A');

	*cg = h_open(H_DAEMON);
	ck_assert_int_eq(cg_register(*cg, p, LEN, 0), 0);
	return p;
}

/*
 * Python reads the JSON (failing on anything invalid) and prints our
 * client's regions as "start-end kind size", one a line.
 */
#define PY_REGIONS                                                            \
	"import json,sys; d=json.load(sys.stdin); "                           \
	"[print(r['start']+'-'+r['end'], r['kind'], r['size']) "              \
	"for c in d['clients'] if c['pid']==%d for r in c['regions']]"

START_TEST(json_status_is_valid_json_listing_this_process_and_its_region)
{
	struct cg *cg;
	char *p = map_and_register(&cg);
	char want[128];
	struct h_run *r = malloc(sizeof(*r));

	ck_assert_ptr_nonnull(r);
	if (!h_have_python())
		goto out;
	h_run_cmd(r, "%s --socket '%s' --json status | python3 -c \"" PY_REGIONS
		"\" 2>&1", h_ctl_path(), h_socket(), (int)getpid());
	snprintf(want, sizeof(want), "%#" PRIxPTR "-%#" PRIxPTR " 4k %llu\n",
		 (uintptr_t)p, (uintptr_t)(p + LEN), (unsigned long long)LEN);
	ck_assert_msg(r->status == 0, "cowguardctl --json status | python3: "
		      "status %d: %s", r->status, r->out);
	ck_assert_str_eq(r->out, want);

	/* The pipeline hides cowguardctl's status: check it alone. */
	h_run_cmd(r, "%s --socket '%s' --json status >/dev/null", h_ctl_path(),
		h_socket());
	ck_assert_int_eq(r->status, 0);
out:
	free(r);
	cg_close(cg);
	munmap(p, LEN);
}
END_TEST

START_TEST(text_status_shows_this_process_and_its_region)
{
	struct cg *cg;
	char *p = map_and_register(&cg);
	char want[128];
	struct h_run *r = malloc(sizeof(*r));

	ck_assert_ptr_nonnull(r);
	h_run_cmd(r, "%s --socket '%s' status 2>&1", h_ctl_path(), h_socket());
	ck_assert_msg(r->status == 0, "status %d: %s", r->status, r->out);
	snprintf(want, sizeof(want), "client %d ", (int)getpid());
	ck_assert_msg(strstr(r->out, want), "no '%s' in:\n%s", want, r->out);
	snprintf(want, sizeof(want), "%#" PRIxPTR "-%#" PRIxPTR, (uintptr_t)p,
		 (uintptr_t)(p + LEN));
	ck_assert_msg(strstr(r->out, want), "no '%s' in:\n%s", want, r->out);
	free(r);
	cg_close(cg);
	munmap(p, LEN);
}
END_TEST

START_TEST(audit_of_a_clean_client_exits_zero)
{
	struct cg *cg;
	char *p = map_and_register(&cg);
	struct h_run *r = malloc(sizeof(*r));

	ck_assert_ptr_nonnull(r);
	p[0] = 'B';	/* a serviced write, for something to agree on */
	h_run_cmd(r, "%s --socket '%s' audit %d 2>&1", h_ctl_path(), h_socket(),
		(int)getpid());
	ck_assert_msg(r->status == 0, "audit: status %d:\n%s", r->status, r->out);
	ck_assert_msg(strstr(r->out, "clean: 0 unsafe, 0 conservative"),
		      "no verdict in:\n%s", r->out);
	if (h_have_python()) {
		h_run_cmd(r, "%s --socket '%s' --json audit %d | python3 -c "
			"\"import json,sys; d=json.load(sys.stdin); "
			"print(d['clean'], d['total']['pages'])\" 2>&1",
			h_ctl_path(), h_socket(), (int)getpid());
		ck_assert_msg(r->status == 0, "%s", r->out);
		ck_assert_str_eq(r->out, "True 1024\n");
	}
	free(r);
	cg_close(cg);
	munmap(p, LEN);
}
END_TEST

START_TEST(audit_of_a_process_that_is_not_a_client_fails_and_says_so)
{
	struct h_run *r = malloc(sizeof(*r));

	ck_assert_ptr_nonnull(r);
	/* Check's runner, our parent, never connects. */
	h_run_cmd(r, "%s --socket '%s' audit %d 2>&1", h_ctl_path(), h_socket(),
		(int)getppid());
	ck_assert_int_ne(r->status, 0);
	ck_assert_msg(strstr(r->out, "is not a client of cowguardd"),
		      "unclear message: %s", r->out);
	h_run_cmd(r, "%s --socket '%s' audit nonsense 2>&1", h_ctl_path(), h_socket());
	ck_assert_int_eq(r->status, 2);
	free(r);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cowguardctl reports status");
	TCase *tc = tcase_create("cowguardctl");

	h_timeout(tc, 15);
	h_add(tc, json_status_is_valid_json_listing_this_process_and_its_region);
	h_add(tc, text_status_shows_this_process_and_its_region);
	h_add(tc, audit_of_a_clean_client_exits_zero);
	h_add(tc, audit_of_a_process_that_is_not_a_client_fails_and_says_so);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
