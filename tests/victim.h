/* SPDX-License-Identifier: MIT */
/*
 * The victim of the tests in which one client must not slow the others
 * down: another process, a registered client of the daemon at a socket,
 * that writes to its protected pages and queries them, a page a turn,
 * going round them, and times each turn: the write (the first to a page,
 * a protection fault the daemon serves), the query, and both together.
 * It reports through a pipe: a process a test forks must not ck_assert
 * (harness.h).  Header-only, static inline, like verbs-util.h.
 *
 *	struct victim v = victim_start(&spec);	(registered, waiting)
 *	victim_go(&v);				(it measures from here)
 *	... the load, until victim_done(&v) ...
 *	struct victim_result r = victim_finish(&v);	(reaped)
 *
 * victim_assert_enough() checks it got through enough turns to judge by;
 * which times a test asserts, and against what bound, is the test's.
 */
#ifndef CG_TESTS_VICTIM_H
#define CG_TESTS_VICTIM_H

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"

struct victim_spec {
	const char *socket;	/* the daemon it is a client of */
	int pages;		/* its region; the turns go round it */
	int turns;		/* it stops after this many turns, */
	int max_ms;		/* or this long after victim_go(), done or not */
	int pause_ms;		/* between turns */
	bool audit;		/* audit its region at the end: unsafe */
};

struct victim_ms {
	double p99, max;
};

struct victim_result {
	int error;		/* 0, or where it failed (a line of victim.h) */
	int done;		/* turns: a page written, then queried */
	unsigned long unsafe;	/* its audit at the end, with spec.audit */
	struct victim_ms write, query, turn;	/* turn: write and query */
};

struct victim {
	pid_t pid;
	int go, result;		/* write end; read end */
};

static inline int victim_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static inline struct victim_ms victim_percentiles(double *v, int n)
{
	struct victim_ms ms = { 0, 0 };

	qsort(v, (size_t)n, sizeof(*v), victim_cmp_double);
	if (n) {
		ms.p99 = v[n * 99 / 100];
		ms.max = v[n - 1];
	}
	return ms;
}

/* Write and query a page a turn, timing both, until done or out of time. */
static inline void victim_measure(const struct victim_spec *spec,
				  struct cg *cg, char *p,
				  struct victim_result *r)
{
	double *writes = calloc(3 * (size_t)spec->turns, sizeof(double));
	double *queries = writes + spec->turns, *turns = queries + spec->turns;
	double start = h_now_ms();
	struct cg_page_info info;

	if (!writes) {
		r->error = __LINE__;
		return;
	}
	for (r->done = 0; r->done < spec->turns &&
	     h_now_ms() - start < spec->max_ms; r->done++) {
		volatile char *page = p + (size_t)(r->done % spec->pages) * 4096;
		double t0 = h_now_ms(), t1, t2;

		*page = 'W';
		t1 = h_now_ms();
		if (cg_query(cg, (const void *)page, &info, sizeof(info)) ||
		    !info.dirty) {
			r->error = __LINE__;
			break;
		}
		t2 = h_now_ms();
		writes[r->done] = t1 - t0;
		queries[r->done] = t2 - t1;
		turns[r->done] = t2 - t0;
		if (spec->pause_ms)
			h_sleep_ms(spec->pause_ms);
	}
	if (!r->error) {
		r->write = victim_percentiles(writes, r->done);
		r->query = victim_percentiles(queries, r->done);
		r->turn = victim_percentiles(turns, r->done);
	}
	free(writes);
}

/* In the child: no ck_assert; the result goes back through out. */
static inline int victim_main(const struct victim_spec *spec, int ready,
			      int go, int out)
{
	struct cg_options o = { CG_MODE_DAEMON, spec->socket };
	struct victim_result r = { 0 };
	size_t len = (size_t)spec->pages * 4096;
	struct cg_audit_report a;
	struct cg *cg = NULL;
	char *p, b;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0);
	if (p == MAP_FAILED)
		r.error = __LINE__;
	else
		memset(p, 'V', len);
	if (!r.error && (cg_open(&o, sizeof(o), &cg) || cg_register(cg, p, len, 0)))
		r.error = __LINE__;
	if (write(ready, "r", 1) != 1 || read(go, &b, 1) != 1)
		return 2;
	if (!r.error)
		victim_measure(spec, cg, p, &r);
	if (!r.error && spec->audit) {
		if (cg_audit(cg, p, len, &a, sizeof(a)))
			r.error = __LINE__;
		else
			r.unsafe = a.unsafe;
	}
	cg_close(cg);
	return write(out, &r, sizeof(r)) == sizeof(r) ? 0 : 3;
}

/* The victim, forked: back once it is registered, waiting for victim_go(). */
static inline struct victim victim_start(const struct victim_spec *spec)
{
	int ready[2], go[2], res[2];
	struct victim v;
	char b;

	ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(res, O_CLOEXEC), 0);
	v.pid = fork();
	ck_assert_int_ge(v.pid, 0);
	if (v.pid == 0)
		_exit(victim_main(spec, ready[1], go[0], res[1]));
	close(ready[1]);
	close(go[0]);
	close(res[1]);
	ck_assert_int_eq(read(ready[0], &b, 1), 1);
	close(ready[0]);
	v.go = go[1];
	v.result = res[0];
	return v;
}

static inline void victim_go(const struct victim *v)
{
	ck_assert_int_eq(write(v->go, "g", 1), 1);
}

/* Whether it has reported (v->result is readable): done, or failed. */
static inline bool victim_done(const struct victim *v)
{
	struct pollfd p = { .fd = v->result, .events = POLLIN };

	return poll(&p, 1, 0) == 1;
}

/*
 * That the victim did not fail and got through at least min_done turns,
 * enough to judge its times by.  who, when not NULL, names the case in
 * the messages.
 */
static inline void victim_assert_enough(const struct victim_result *r,
					const struct victim_spec *spec,
					int min_done, const char *who)
{
	const char *sep = who ? ": " : "";

	who = who ? who : "";
	ck_assert_msg(r->error == 0, "%s%sthe victim failed at line %d of "
		      "victim.h", who, sep, r->error);
	ck_assert_msg(r->done >= min_done, "%s%sthe victim did only %d turns "
		      "(of %d needed) in %d ms", who, sep, r->done, min_done,
		      spec->max_ms);
}

/* Its result, once it reports; then it is reaped, and must have exited 0. */
static inline struct victim_result victim_finish(struct victim *v)
{
	struct victim_result r;

	ck_assert_int_eq(read(v->result, &r, sizeof(r)), (ssize_t)sizeof(r));
	ck_assert_int_eq(h_wait(v->pid), 0);
	close(v->go);
	close(v->result);
	return r;
}

#endif
