// SPDX-License-Identifier: MIT
/*
 * A forked child keeps being tracked.  Daemon mode: the daemon adopts the
 * child's uffd from the fork event and the child's library reconnects with
 * CHILD_HELLO, so the child's writes are serviced, its state is its own,
 * STATUS names it under its pid and parent, and its record goes when it
 * exits or execs.  Embedded mode: the child starts a fresh engine and
 * handler thread, and its writes are seen there.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "wire/protocol.h"

#define LEN (4 * 4096)
#define REPORT_TIMEOUT_MS 5000

/* What the child saw through its inherited handle, sent up a pipe. */
struct child_report {
	int query_ret, stats_ret, audit_ret;
	struct cg_page_info info;
	struct cg_stats stats;
	struct cg_audit_report audit;
	char seen;		/* p[0] after its write */
};

struct child_arg {
	struct cg *cg;
	volatile char *p;
	int report_wr;		/* child -> test */
	int go_rd;		/* test -> child: exit (or exec) now */
};

static int read_full(int fd, void *buf, size_t len, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (poll(&p, 1, timeout_ms) != 1)
		return -ETIMEDOUT;
	return read(fd, buf, len) == (ssize_t)len ? 0 : -EIO;
}

/* The child writes, reports what its handle says, and waits to be let go. */
static int child_writes_and_reports(void *arg)
{
	struct child_arg *c = arg;
	struct child_report r;
	char go;

	memset(&r, 0, sizeof(r));
	c->p[0] = 'C';
	r.seen = c->p[0];
	r.query_ret = cg_query(c->cg, (const void *)c->p, &r.info, sizeof(r.info));
	r.stats_ret = cg_stats(c->cg, &r.stats, sizeof(r.stats));
	r.audit_ret = cg_audit(c->cg, (void *)c->p, LEN, &r.audit, sizeof(r.audit));
	if (write(c->report_wr, &r, sizeof(r)) != sizeof(r))
		return 2;
	if (read(c->go_rd, &go, 1) != 1)
		return 3;
	return 0;
}

/* Fork a child running fn with the pipes of arg set up; arg->cg, p given. */
static pid_t start_child(int (*fn)(void *), struct child_arg *arg, int *report_rd,
			 int *go_wr)
{
	int rep[2], go[2];
	pid_t pid;

	ck_assert_int_eq(pipe2(rep, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
	arg->report_wr = rep[1];
	arg->go_rd = go[0];
	pid = h_fork(fn, arg);
	close(rep[1]);
	close(go[0]);
	*report_rd = rep[0];
	*go_wr = go[1];
	return pid;
}

static void let_go(pid_t pid, int report_rd, int go_wr, int want_status)
{
	ck_assert_int_eq(write(go_wr, "g", 1), 1);
	ck_assert_int_eq(h_wait(pid), want_status);
	close(report_rd);
	close(go_wr);
}

static void check_child_report(const struct child_report *r, int mode)
{
	ck_assert_int_eq(r->seen, 'C');
	ck_assert_msg(r->query_ret == 0, "child's cg_query: %s",
		      cg_strerror(r->query_ret));
	ck_assert_msg(r->info.present && r->info.exclusive && r->info.dirty,
		      "%s child's view of its written page: present %d "
		      "exclusive %d dirty %d", h_mode_name(mode), r->info.present,
		      r->info.exclusive, r->info.dirty);
	ck_assert_msg(r->stats_ret == 0, "child's cg_stats: %s",
		      cg_strerror(r->stats_ret));
	ck_assert_uint_ge(r->stats.wp_faults, 1);
	ck_assert_msg(r->audit_ret == 0, "child's cg_audit: %s",
		      cg_strerror(r->audit_ret));
	ck_assert_msg(r->audit.unsafe == 0 && r->audit.conservative == 0,
		      "child's audit: %llu unsafe, %llu conservative",
		      (unsigned long long)r->audit.unsafe,
		      (unsigned long long)r->audit.conservative);
	/* As root the child is judged by PageAnonExclusive, like its parent. */
	if (h_truth_is_kpageflags())
		ck_assert_int_eq(r->audit.truth, CG_TRUTH_KPAGEFLAGS);
}

START_TEST(a_child_write_is_serviced_and_makes_the_page_exclusive_in_the_child_only)
{
	char *p = h_map(H_4K, LEN, 'A');
	struct cg *cg;
	struct child_arg arg = { .p = p };
	struct child_report r;
	struct cg_page_info info;
	int report_rd, go_wr, ret;
	pid_t pid;

	if (_i == H_EMBEDDED &&
	    !h_fork_safe_allocator("embedded: a fork while the handler thread runs"))
		return;
	cg = arg.cg = h_open(_i);
	ck_assert_int_eq(cg_register(cg, p, LEN, 0), 0);
	pid = start_child(child_writes_and_reports, &arg, &report_rd, &go_wr);
	ret = read_full(report_rd, &r, sizeof(r), REPORT_TIMEOUT_MS);
	if (ret) {
		kill(pid, SIGKILL);
		ck_abort_msg("%s: no report from the child in %d ms (%s; it "
			     "ended with status %d, 137 = killed by us): was its "
			     "write serviced?", h_mode_name(_i), REPORT_TIMEOUT_MS,
			     strerror(-ret), h_wait(pid));
	}
	check_child_report(&r, _i);

	/* The parent's page is its own: unchanged, and still maybe-shared. */
	ck_assert_int_eq(p[0], 'A');
	ck_assert_int_eq(cg_query(cg, p, &info, sizeof(info)), 0);
	ck_assert_msg(info.present && !info.exclusive,
		      "parent's page after the child's write: present %d "
		      "exclusive %d", info.present, info.exclusive);
	h_audit_clean(cg, p, LEN);
	let_go(pid, report_rd, go_wr, 0);
	cg_close(cg);
	munmap(p, LEN);
}
END_TEST

START_TEST(the_daemon_lists_a_child_under_its_pid_and_parent_until_it_exits)
{
	char *p = h_map(H_4K, LEN, 'A');
	struct cg *cg = h_open(H_DAEMON);
	struct child_arg arg = { .cg = cg, .p = p };
	struct cg__status_client sc;
	struct child_report r;
	int report_rd, go_wr;
	pid_t pid;

	ck_assert_int_eq(cg_register(cg, p, LEN, 0), 0);
	pid = start_child(child_writes_and_reports, &arg, &report_rd, &go_wr);
	ck_assert_int_eq(read_full(report_rd, &r, sizeof(r), REPORT_TIMEOUT_MS), 0);

	ck_assert_int_eq(h_status_client(pid, &sc), 1);
	ck_assert_int_eq(sc.parent_pid, getpid());
	ck_assert_uint_eq(sc.nregions, 1);
	ck_assert_uint_ge(sc.stats.wp_faults, 1);
	/* Ours is still listed, as ours. */
	ck_assert_int_eq(h_status_client(getpid(), &sc), 1);
	ck_assert_int_eq(sc.parent_pid, 0);

	let_go(pid, report_rd, go_wr, 0);
	ck_assert_msg(h_status_gone(pid, 2000),
		      "the exited child %d is still listed after 2 s", (int)pid);
	ck_assert_int_eq(h_status_client(getpid(), NULL), 1);
	cg_close(cg);
	munmap(p, LEN);
}
END_TEST

/* Tell the test we are named, then exec something that outlives the check. */
static int child_execs(void *arg)
{
	struct child_arg *c = arg;
	struct cg_stats st;
	char go;

	if (cg_stats(c->cg, &st, sizeof(st)))
		return 2;
	if (write(c->report_wr, "n", 1) != 1 || read(c->go_rd, &go, 1) != 1)
		return 3;
	execl("/bin/sleep", "sleep", "10", (char *)NULL);
	return 4;
}

START_TEST(a_child_that_execs_releases_its_state_in_the_daemon)
{
	char *p = h_map(H_4K, LEN, 'A');
	struct cg *cg = h_open(H_DAEMON);
	struct child_arg arg = { .cg = cg, .p = p };
	int report_rd, go_wr;
	bool gone;
	char named;
	pid_t pid;

	ck_assert_int_eq(cg_register(cg, p, LEN, 0), 0);
	pid = start_child(child_execs, &arg, &report_rd, &go_wr);
	ck_assert_int_eq(read_full(report_rd, &named, 1, REPORT_TIMEOUT_MS), 0);
	ck_assert_int_eq(h_status_client(pid, NULL), 1);

	/* sleep(1) runs on: the record must go because of the exec alone. */
	ck_assert_int_eq(write(go_wr, "g", 1), 1);
	gone = h_status_gone(pid, 2000);
	ck_assert_int_eq(waitpid(pid, NULL, WNOHANG), 0);
	kill(pid, SIGKILL);
	h_wait(pid);
	ck_assert_msg(gone, "child %d still listed 2 s after its exec", (int)pid);
	ck_assert_int_eq(h_status_client(getpid(), NULL), 1);
	close(report_rd);
	close(go_wr);
	cg_close(cg);
	munmap(p, LEN);
}
END_TEST

/*
 * _Fork() runs no atfork handler: the daemon adopts the child's uffd from
 * the fork event but never learns its pid.  Its faults must still be
 * serviced (the daemon serves an adopted uffd at once), not left to hang.
 */
START_TEST(a_child_that_never_says_hello_still_has_its_writes_serviced)
{
	volatile char *p = h_map(H_4K, LEN, 'A');
	struct cg *cg = h_open(H_DAEMON);
	struct cg__status_client sc;
	int rep[2], go[2], ret;
	char seen;
	pid_t pid;

	ck_assert_int_eq(cg_register(cg, (void *)p, LEN, 0), 0);
	ck_assert_int_eq(pipe2(rep, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
	pid = _Fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		p[0] = 'C';
		seen = p[0];
		if (write(rep[1], &seen, 1) != 1 || read(go[0], &seen, 1) != 1)
			_exit(2);
		_exit(0);
	}
	close(rep[1]);
	close(go[0]);
	ret = read_full(rep[0], &seen, 1, REPORT_TIMEOUT_MS);
	if (ret) {
		kill(pid, SIGKILL);
		ck_abort_msg("the unnamed child's write was not serviced in %d ms "
			     "(status %d, 137 = killed by us)", REPORT_TIMEOUT_MS,
			     h_wait(pid));
	}
	ck_assert_int_eq(seen, 'C');
	ck_assert_int_eq(p[0], 'A');
	ck_assert_int_eq(h_status_client(0, &sc), 1);
	ck_assert_int_eq(sc.parent_pid, getpid());
	/* Asynchronous: the kernel serviced it, and no pagemap tells us. */
	if (!h_wp_async(cg))
		ck_assert_uint_ge(sc.stats.wp_faults, 1);
	let_go(pid, rep[0], go[1], 0);
	cg_close(cg);
	munmap((void *)p, LEN);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("child uffd is adopted");
	TCase *tc = tcase_create("child");

	h_timeout(tc, 15);
	h_add_modes(tc, a_child_write_is_serviced_and_makes_the_page_exclusive_in_the_child_only);
	h_add(tc, the_daemon_lists_a_child_under_its_pid_and_parent_until_it_exits);
	h_add(tc, a_child_that_execs_releases_its_state_in_the_daemon);
	h_add(tc, a_child_that_never_says_hello_still_has_its_writes_serviced);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
