// SPDX-License-Identifier: MIT
/*
 * Every fork of a daemon-mode client is adopted by the right child.  The
 * daemon gets each child's uffd from a fork event with no pid, and the
 * child's hello names only its parent; with forks from several threads (or
 * an older child that never says hello) several unnamed uffds wait at once
 * and hellos arrive in any order.  The daemon must give each child the
 * uffd of its own mm (daemon/adopt.c proves it through pagemap), and every
 * child that exits or execs must take its record and its fds with it.
 *
 * How a wrong match shows: child i writes page i only, then asks the
 * daemon through its own handle.  Its record must show page i exclusive
 * (its write unshared it) and page i + 1 still maybe-shared.  The record of
 * any other child k shows page i exclusive only if k == i.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "harness.h"
#include "wire/protocol.h"

#define FORKS 100
#define THREADS 4
#define PAGES (FORKS + 2)
#define LEN ((size_t)PAGES * 4096)
#define REPORT_TIMEOUT_MS 30000

/* What a child found, up the shared report pipe (atomic: < PIPE_BUF). */
struct report {
	pid_t pid;
	int index;
	int code;		/* 0, or which check failed */
};

enum {
	OK = 0,
	BAD_SEEN,		/* its write did not land */
	BAD_QUERY,		/* cg_query failed */
	BAD_OWN_PAGE,		/* page i not exclusive: not its record */
	BAD_OTHER_PAGE,		/* page i + 1 exclusive: not its record */
	BAD_MAP,		/* its own mapping failed */
	BAD_OWN_REGISTER,	/* its own mapping cannot be registered */
	BAD_GO,
};

struct fork_ctx {
	struct cg *cg;
	volatile char *p;
	int report_wr, go_rd;
	pid_t pids[FORKS];
	int next;		/* the next index to fork, under lock */
	int total;
	pthread_mutex_t lock;
	char *window;		/* set: a slot of its own for each child */
};

#define SLOT (4 * 4096)

/*
 * With no page of the shared region present, the record can be told by
 * what only this child maps: its slot of the window, made anonymous after
 * the fork.  Registering it goes through the adopted uffd, which fails in
 * any other child's mm: there the slot is still a file mapping.
 */
static int child_code_own_mapping(struct fork_ctx *f, int i)
{
	char *slot = f->window + (size_t)i * SLOT;
	struct cg_page_info info;

	if (mmap(slot, SLOT, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != slot)
		return BAD_MAP;
	memset(slot, 'c', SLOT);
	if (cg_register(f->cg, slot, SLOT, 0))
		return BAD_OWN_REGISTER;
	if (cg_query(f->cg, slot, &info, sizeof(info)) || !info.present || !info.exclusive)
		return BAD_QUERY;
	return OK;
}

static int child_code(struct fork_ctx *f, int i)
{
	volatile char *mine = f->p + (size_t)i * 4096;
	struct cg_page_info own, other;

	if (f->window)
		return child_code_own_mapping(f, i);
	mine[0] = (char)('a' + i % 26);
	if (mine[0] != (char)('a' + i % 26))
		return BAD_SEEN;
	if (cg_query(f->cg, (const void *)mine, &own, sizeof(own)) ||
	    cg_query(f->cg, (const void *)(mine + 4096), &other, sizeof(other)))
		return BAD_QUERY;
	if (!own.present || !own.exclusive || !own.dirty)
		return BAD_OWN_PAGE;
	if (other.exclusive)
		return BAD_OTHER_PAGE;
	return OK;
}

/* A forked child: check, report, wait to be let go, then exit or exec. */
static void child_main(struct fork_ctx *f, int i)
{
	struct report r = { getpid(), i, child_code(f, i) };
	char go;

	if (write(f->report_wr, &r, sizeof(r)) != sizeof(r))
		_exit(2);
	if (read(f->go_rd, &go, 1) != 1)
		_exit(3);
	if (i % 2)
		execl("/bin/true", "true", (char *)NULL);
	_exit(0);
}

static void *forker(void *arg)
{
	struct fork_ctx *f = arg;

	for (;;) {
		int i;
		pid_t pid;

		pthread_mutex_lock(&f->lock);
		i = f->next < f->total ? f->next++ : -1;
		pthread_mutex_unlock(&f->lock);
		if (i < 0)
			return NULL;
		pid = fork();
		if (pid == 0)
			child_main(f, i);
		f->pids[i] = pid;
	}
}

/* A cowguardctl connection of our own, opened before counting fds. */
static struct cg__client ctl = { .sock = -1 };

/* How many records STATUS lists with this parent (pid 0: unnamed only). */
static int listed_children(pid_t parent, bool unnamed_only)
{
	struct cg__req req;
	struct cg__rep rep;
	int ret, n = 0;

	if (ctl.sock < 0 && (ret = cg__client_open_ctl(&ctl, h_socket())))
		return ret;
	cg__req_init(&req, CG_OP_STATUS);
	ret = cg__client_call(&ctl, &req, &rep);
	while (!ret && rep.rec != CG_REC_END) {
		if (rep.rec == CG_REC_CLIENT && rep.u.client.parent_pid == parent &&
		    (!unnamed_only || rep.u.client.pid == 0))
			n++;
		ret = cg__client_next(&ctl, &rep);
	}
	return ret ? ret : rep.status ? rep.status : n;
}

static void sleep_ms(int ms)
{
	struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&t, NULL);
}

/* Wait up to ms for no record of our children and the fd count to be want. */
static void assert_all_released(int want_fds, int ms)
{
	pid_t daemon = h_daemon_pid();
	int listed = -1, fds = want_fds;

	for (int waited = 0; waited <= ms; waited += 20) {
		listed = listed_children(getpid(), false);
		fds = daemon > 0 ? h_fd_count(daemon) : want_fds;
		if (listed == 0 && fds == want_fds)
			return;
		sleep_ms(20);
	}
	ck_abort_msg("%d s after the children were gone: %d of their records "
		     "listed, daemon fds %d, %d before the forks", ms / 1000,
		     listed, fds, want_fds);
}

static void read_reports(struct fork_ctx *f, int rd, int n)
{
	struct pollfd p = { .fd = rd, .events = POLLIN };
	int bad = 0, first_bad = -1, first_code = 0;

	for (int got = 0; got < n; got++) {
		struct report r;

		if (poll(&p, 1, REPORT_TIMEOUT_MS) != 1 ||
		    read(rd, &r, sizeof(r)) != sizeof(r)) {
			for (int i = 0; i < f->total; i++)
				kill(f->pids[i], SIGKILL);
			ck_abort_msg("only %d of %d children reported in %d s", got,
				     n, REPORT_TIMEOUT_MS / 1000);
		}
		if (r.code && !bad++) {
			first_bad = r.index;
			first_code = r.code;
		}
	}
	ck_assert_msg(bad == 0, "%d of %d children found another's record under "
		      "their pid (first: child %d, check %d)", bad, n, first_bad,
		      first_code);
}

static void let_go_and_reap(struct fork_ctx *f, int go_wr)
{
	char go[FORKS];

	memset(go, 'g', sizeof(go));
	ck_assert_int_eq(write(go_wr, go, (size_t)f->total), f->total);
	for (int i = 0; i < f->total; i++)
		ck_assert_msg(h_wait(f->pids[i]) == 0, "child %d (%s) failed", i,
			      i % 2 ? "exec" : "exit");
}

static void fork_all(struct fork_ctx *f, int threads)
{
	pthread_t t[THREADS];

	for (int i = 0; i < threads; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, forker, f), 0);
	for (int i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < f->total; i++)
		ck_assert_msg(f->pids[i] > 0, "fork %d failed", i);
}

static void setup(struct fork_ctx *f, int total, int fill, int *report_rd,
		  int *go_wr)
{
	int rep[2], go[2];

	memset(f, 0, sizeof(*f));
	f->p = h_map(H_4K, LEN, fill);
	f->cg = h_open(H_DAEMON);
	f->total = total;
	pthread_mutex_init(&f->lock, NULL);
	ck_assert_int_eq(cg_register(f->cg, (void *)f->p, LEN, 0), 0);
	ck_assert_int_eq(pipe2(rep, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
	f->report_wr = rep[1];
	f->go_rd = go[0];
	*report_rd = rep[0];
	*go_wr = go[1];
}

/*
 * The daemon's fds now, after our STATUS connections are open (they count
 * in it: the harness keeps them), with no unnamed child of ours listed.
 */
static int daemon_fds_before(void)
{
	ck_assert_int_eq(listed_children(getpid(), false), 0);
	ck_assert_int_eq(h_status_client(getpid(), NULL), 1);
	return h_daemon_pid() > 0 ? h_fd_count(h_daemon_pid()) : 0;
}

/* One more fork, which notices that the silent child is gone. */
static void fork_once_more(struct fork_ctx *f, int report_rd, int go_wr)
{
	f->next = 0;
	f->total = 1;
	fork_all(f, 1);
	read_reports(f, report_rd, 1);
	let_go_and_reap(f, go_wr);
}

START_TEST(a_hundred_forks_from_four_threads_are_each_adopted_by_their_own_child)
{
	struct fork_ctx f;
	struct cg__status_client sc;
	struct cg_stats st;
	int report_rd, go_wr, before;

	setup(&f, FORKS, 'P', &report_rd, &go_wr);
	before = daemon_fds_before();

	fork_all(&f, THREADS);
	read_reports(&f, report_rd, FORKS);

	ck_assert_int_eq(cg_stats(f.cg, &st, sizeof(st)), 0);
	ck_assert_uint_eq(st.fork_events, FORKS);
	/* Alive and named: each is listed under its own pid, as our child. */
	for (int i = 0; i < FORKS; i += 7) {
		int ret = h_status_client(f.pids[i], &sc);

		ck_assert_msg(ret == 1, "child %d (pid %d) is not listed (%d)", i,
			      (int)f.pids[i], ret);
		ck_assert_int_eq(sc.parent_pid, getpid());
		ck_assert_uint_ge(sc.stats.wp_faults, 1);
	}
	ck_assert_int_eq(listed_children(getpid(), true), 0);

	let_go_and_reap(&f, go_wr);
	assert_all_released(before, 5000);
	/* Our own memory is ours still: the children's writes were theirs. */
	for (int i = 0; i < FORKS; i++)
		ck_assert_int_eq(f.p[(size_t)i * 4096], 'P');
	h_audit_clean(f.cg, (void *)f.p, LEN);
	cg_close(f.cg);
	munmap((void *)f.p, LEN);
}
END_TEST

/*
 * With a child that never says hello (no atfork handler runs) waiting
 * unnamed, n more children say hello: each is adopted, the silent one's
 * uffd alone is left unnamed, and once it exits our next fork releases it
 * (the daemon's fds back to what they were).
 */
static void the_silent_child_is_left_unnamed(struct fork_ctx *f, int n,
					     int report_rd, int go_wr)
{
	int before = daemon_fds_before();
	struct h_waiter silent = h_fork_checking(&(struct h_check){ .raw = true });

	ck_assert_int_eq(listed_children(getpid(), true), 1);
	fork_all(f, 2);
	read_reports(f, report_rd, n);
	ck_assert_int_eq(listed_children(getpid(), true), 1);
	let_go_and_reap(f, go_wr);
	ck_assert_int_eq(h_release(&silent), 0);
	fork_once_more(f, report_rd, go_wr);
	assert_all_released(before, 5000);
}

/*
 * An older child that never says hello waits unnamed: handing the oldest unnamed uffd to each hello, as a
 * first-come rule would, gives every later child that one.  Once it exits,
 * its uffd is released at our next fork.
 */
START_TEST(a_child_is_told_apart_from_an_older_one_that_never_said_hello)
{
	enum { N = 20 };
	struct fork_ctx f;
	struct cg_stats st;
	int report_rd, go_wr;

	setup(&f, N, 'P', &report_rd, &go_wr);
	the_silent_child_is_left_unnamed(&f, N, report_rd, go_wr);
	/* N children, the silent one, and the one more fork. */
	ck_assert_int_eq(cg_stats(f.cg, &st, sizeof(st)), 0);
	ck_assert_uint_eq(st.fork_events, N + 2);
	cg_close(f.cg);
	munmap((void *)f.p, LEN);
}
END_TEST

/*
 * The same with nothing of the registered region populated: the daemon
 * has no page to flip until it maps one (the zero page, by a read).
 */
START_TEST(a_child_is_identified_when_no_registered_page_is_present)
{
	enum { N = 20 };
	struct fork_ctx f;
	int report_rd, go_wr, exe;

	setup(&f, N, -1, &report_rd, &go_wr);
	/* A file mapping, which no uffd may register: each child replaces a slot. */
	exe = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(exe, 0);
	f.window = mmap(NULL, N * SLOT, PROT_READ, MAP_PRIVATE, exe, 0);
	ck_assert(f.window != MAP_FAILED);
	close(exe);
	the_silent_child_is_left_unnamed(&f, N, report_rd, go_wr);
	cg_close(f.cg);
	munmap(f.window, N * SLOT);
	munmap((void *)f.p, LEN);
}
END_TEST

/*
 * Children that never say hello are bounded (--max-children, 64 for the
 * harness's daemon): beyond that a child's uffd is not kept, and its
 * writes go on untracked rather than wait.  Once they exit, our next fork
 * finds them gone and is adopted again.
 */
START_TEST(unnamed_children_are_bounded_and_released_when_they_exit)
{
	enum { MAX = 64, N = MAX + 4 };
	volatile char *p = h_map(H_4K, LEN, 'P');
	struct cg *cg;
	pid_t pids[N];
	int go[2], ready[2];
	char b;

	if (!h_have_own_daemon("its daemon runs with --max-children 64"))
		return;
	cg = h_open(H_DAEMON);
	ck_assert_int_eq(cg_register(cg, (void *)p, LEN, 0), 0);
	ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
	for (int i = 0; i < N; i++) {
		pids[i] = _Fork();
		ck_assert_int_ge(pids[i], 0);
		if (pids[i] == 0) {
			p[(size_t)i * 4096] = 'c';	/* tracked or not, never stuck */
			if (write(ready[1], "r", 1) != 1 || read(go[0], &b, 1) != 1)
				_exit(2);
			_exit(p[(size_t)i * 4096] == 'c' ? 0 : 3);
		}
	}
	for (int i = 0; i < N; i++) {
		struct pollfd pf = { .fd = ready[0], .events = POLLIN };

		ck_assert_msg(poll(&pf, 1, 5000) == 1 && read(ready[0], &b, 1) == 1,
			      "only %d of %d unnamed children wrote", i, N);
	}
	ck_assert_int_eq(listed_children(getpid(), true), MAX);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(write(go[1], "g", 1), 1);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(h_wait(pids[i]), 0);
	/* The next fork finds them gone, and its child is adopted. */
	pids[0] = _Fork();
	ck_assert_int_ge(pids[0], 0);
	if (pids[0] == 0)
		_exit(read(go[0], &b, 1) == 1 ? 0 : 2);
	ck_assert_int_eq(listed_children(getpid(), true), 1);
	ck_assert_int_eq(write(go[1], "g", 1), 1);
	ck_assert_int_eq(h_wait(pids[0]), 0);
	cg_close(cg);
	close(go[0]);
	close(go[1]);
	close(ready[0]);
	close(ready[1]);
	munmap((void *)p, LEN);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("a hundred forks are each adopted");
	TCase *tc = tcase_create("forks");

	h_timeout(tc, 60);
	h_add(tc, a_hundred_forks_from_four_threads_are_each_adopted_by_their_own_child);
	h_add(tc, a_child_is_told_apart_from_an_older_one_that_never_said_hello);
	h_add(tc, a_child_is_identified_when_no_registered_page_is_present);
	h_add(tc, unnamed_children_are_bounded_and_released_when_they_exit);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
