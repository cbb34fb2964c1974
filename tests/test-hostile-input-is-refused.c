// SPDX-License-Identifier: MIT
/*
 * Whatever a local process sends the daemon, the daemon refuses what is
 * not the protocol, says why in its log, releases what came with it, and
 * goes on serving everyone else: a client registered before each attack
 * keeps having its writes serviced and audits clean after it.  The client
 * side refuses a server of another major version just as clearly.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "harness.h"
#include "kernel/uffd.h"
#include "wire/protocol.h"

#define VICTIM_LEN (16 * 4096)
#define FLOOD 2000
#define REFUSED 1		/* closed without a reply */

static void sleep_ms(int ms)
{
	struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&t, NULL);
}

/* ---- the bystander --------------------------------------------------- */

struct victim {
	struct cg *cg;
	volatile char *p;
	long log_at;		/* the daemon log's size before the attack */
	int fds;		/* the daemon's fds before the attack, or -1 */
};

static long log_size(void)
{
	char path[256];
	FILE *f;
	long n = -1;

	snprintf(path, sizeof(path), "%s.log", h_socket());
	f = fopen(path, "re");
	if (f && !fseek(f, 0, SEEK_END))
		n = ftell(f);
	if (f)
		fclose(f);
	return n;
}

static void victim_track(struct victim *v)
{
	v->cg = h_open(H_DAEMON);
	ck_assert_int_eq(cg_register(v->cg, (void *)v->p, VICTIM_LEN, 0), 0);
	/* The harness's STATUS connection counts in the daemon's fds. */
	ck_assert_int_eq(h_status_client(getpid(), NULL), 1);
	v->fds = h_daemon_pid() > 0 ? h_fd_count(h_daemon_pid()) : -1;
	v->log_at = h_daemon_pid() > 0 ? log_size() : -1;
}

static void victim_open(struct victim *v)
{
	v->p = h_map(H_4K, VICTIM_LEN, 'V');
	victim_track(v);
}

/*
 * Wait up to 2 s for text in the log of the daemon on socket path, from
 * byte from on; *found says whether it came.  Returns what the log held
 * there (malloc'd, NULL when nothing).
 */
static char *log_wait(const char *path, long from, const char *text,
		      bool *found)
{
	char log[256], *seen = NULL;
	size_t cap = 0;

	snprintf(log, sizeof(log), "%s.log", path);
	*found = false;
	for (int ms = 0; !*found && ms < 2000; ms += 10) {
		FILE *f = fopen(log, "re");
		ssize_t n;

		ck_assert(f != NULL);
		fseek(f, from, SEEK_SET);
		n = getdelim(&seen, &cap, 0, f);
		fclose(f);
		*found = n > 0 && strstr(seen, text);
		if (!*found)
			sleep_ms(10);
	}
	return seen;
}

/*
 * The reason must reach the daemon's log (ours only: a lane's shared
 * daemon logs elsewhere), its fds come back to where they were, and the
 * bystander is served as before.
 */
static void victim_unaffected(struct victim *v, const char *reason)
{
	struct cg_page_info info;
	struct cg_stats st;
	int fds = v->fds;

	for (int ms = 0; v->fds >= 0 && ms < 2000; ms += 10) {
		fds = h_fd_count(h_daemon_pid());
		if (fds == v->fds)
			break;
		sleep_ms(10);
	}
	ck_assert_msg(fds == v->fds, "daemon fds: %d before, %d after", v->fds,
		      fds);
	if (v->log_at >= 0) {
		bool found;
		char *text = log_wait(h_socket(), v->log_at, reason, &found);

		ck_assert_msg(found, "the daemon logged no \"%s\" after the attack; "
			      "it logged: %s", reason, text ? text : "(nothing)");
		free(text);
	}
	v->p[4096] = 'W';
	ck_assert_int_eq(cg_query(v->cg, (const void *)(v->p + 4096), &info, sizeof(info)), 0);
	ck_assert(info.present && info.exclusive && info.dirty);
	ck_assert_int_eq(cg_stats(v->cg, &st, sizeof(st)), 0);
	ck_assert_uint_ge(st.wp_faults, 1);
	h_audit_clean(v->cg, (void *)v->p, VICTIM_LEN);
	cg_close(v->cg);
	munmap((void *)v->p, VICTIM_LEN);
}

/* ---- a raw peer ------------------------------------------------------ */

static int raw_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(s, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	ck_assert_msg(connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0,
		      "connect: %s", strerror(errno));
	return s;
}

/*
 * What the daemon did with the connection: the status of its reply (it
 * then hangs up), or REFUSED when it hung up without one.
 */
static int answer(int s)
{
	struct pollfd p = { .fd = s, .events = POLLIN };
	struct cg__rep rep;
	int ret, status;

	ck_assert_int_eq(poll(&p, 1, 5000), 1);
	ret = cg__recv(s, &rep, sizeof(rep), NULL);
	if (ret == -ECONNRESET) {
		close(s);
		return REFUSED;
	}
	ck_assert_msg(ret == 0, "reading the reply: %s", strerror(-ret));
	ck_assert_uint_eq(rep.magic, CG_PROTO_MAGIC);
	status = rep.status;
	/* And then nothing more: the connection is dropped. */
	ck_assert_int_eq(poll(&p, 1, 5000), 1);
	ck_assert_int_eq(cg__recv(s, &rep, sizeof(rep), NULL), -ECONNRESET);
	close(s);
	return status;
}

static int send_bytes(int s, const void *buf, size_t len, int fd)
{
	return cg__send(s, buf, len, fd);
}

static int hello_with(int fd)
{
	struct cg__req req;
	int s = raw_connect(h_socket());

	cg__req_init(&req, CG_OP_HELLO);
	ck_assert_int_eq(send_bytes(s, &req, sizeof(req), fd), 0);
	return answer(s);
}

/* ---- the cases ------------------------------------------------------- */

/*
 * A hello with something else than a uffd: the fd it carries (-1: none),
 * and one more to close after it (-1: none).
 */
struct fake_uffd {
	int (*open)(int *other);
};

static int open_pipe(int *other)
{
	int fds[2];

	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	*other = fds[1];
	return fds[0];
}

static int open_eventfd(int *other)
{
	int efd = eventfd(0, EFD_CLOEXEC);

	ck_assert_int_ge(efd, 0);
	*other = -1;
	return efd;
}

static int open_nothing(int *other)
{
	*other = -1;
	return -1;
}

static void a_hello_without_a_uffd_is_refused(const void *arg, int mode,
					      enum h_kind kind)
{
	const struct fake_uffd *f = arg;
	struct victim v;
	int fd, other;

	(void)mode;
	(void)kind;
	victim_open(&v);
	fd = f->open(&other);
	ck_assert_int_eq(hello_with(fd), -EBADF);
	if (fd >= 0)
		close(fd);
	if (other >= 0)
		close(other);
	victim_unaffected(&v, "refused: hello without a userfaultfd");
}

/*
 * A packet a hostile client sends on a connection of its own: made into
 * buf (zeroed, PACKET_MAX bytes) as the victim is, its length returned;
 * what the daemon answers (REFUSED: it closes without a word), and what
 * it logs.
 */
#define PACKET_MAX (sizeof(struct cg__req) + 64)
struct bad_packet {
	size_t (*make)(const struct victim *v, char *buf);
	int answer;
	const char *logged;
};

static size_t make_garbage(const struct victim *v, char *buf)
{
	(void)v;
	srand(42);
	for (size_t i = 0; i < sizeof(struct cg__req); i++)
		buf[i] = (char)rand();
	buf[0] = 'x';		/* never the magic */
	return sizeof(struct cg__req);
}

static size_t make_hello(char *buf, unsigned major)
{
	struct cg__req req;

	cg__req_init(&req, CG_OP_HELLO);
	if (major)
		req.major = (uint16_t)major;
	memcpy(buf, &req, sizeof(req));
	return sizeof(req);
}

static size_t make_truncated(const struct victim *v, char *buf)
{
	(void)v;
	return make_hello(buf, 0) / 2;
}

static size_t make_oversized(const struct victim *v, char *buf)
{
	(void)v;
	return make_hello(buf, 0) + 32;
}

static size_t make_major_99(const struct victim *v, char *buf)
{
	(void)v;
	return make_hello(buf, 99);
}

/* A version 99 packet need not be our size. */
static size_t make_major_99_larger(const struct victim *v, char *buf)
{
	(void)v;
	return make_hello(buf, 99) + 64;
}

static size_t make_register(const struct victim *v, char *buf)
{
	struct cg__req req;

	cg__req_init(&req, CG_OP_REGISTER);
	req.addr = (uintptr_t)v->p;
	req.len = VICTIM_LEN;
	memcpy(buf, &req, sizeof(req));
	return sizeof(req);
}

static void a_bad_packet_is_refused(const void *arg, int mode,
				    enum h_kind kind)
{
	const struct bad_packet *b = arg;
	char buf[PACKET_MAX] = { 0 };
	struct victim v;
	size_t len;
	int s;

	(void)mode;
	(void)kind;
	victim_open(&v);
	len = b->make(&v, buf);
	s = raw_connect(h_socket());
	ck_assert_int_eq(send_bytes(s, buf, len, -1), 0);
	ck_assert_int_eq(answer(s), b->answer);
	victim_unaffected(&v, b->logged);
}

static const struct fake_uffd a_pipe = { open_pipe };
static const struct fake_uffd an_eventfd = { open_eventfd };
static const struct fake_uffd no_fd = { open_nothing };
static const struct bad_packet garbage = {
	make_garbage, REFUSED, "dropped: not the cowguard protocol"
};
static const struct bad_packet truncated = {
	make_truncated, REFUSED, "dropped: unreadable request"
};
static const struct bad_packet oversized = {
	make_oversized, REFUSED, "dropped: unreadable request"
};
static const struct bad_packet major_99 = {
	make_major_99, -EPROTONOSUPPORT, "dropped: protocol 99."
};
static const struct bad_packet major_99_larger = {
	make_major_99_larger, -EPROTONOSUPPORT, "dropped: protocol 99."
};
static const struct bad_packet before_hello = {
	make_register, -EPERM, "dropped: register not allowed here"
};

static const struct h_case packets[] = {
	H_CASE_AS(a_hello_that_carries_a_pipe_instead_of_a_uffd_is_refused,
		  a_hello_without_a_uffd_is_refused, &a_pipe, 0, 0),
	H_CASE_AS(a_hello_that_carries_an_eventfd_is_refused,
		  a_hello_without_a_uffd_is_refused, &an_eventfd, 0, 0),
	H_CASE_AS(a_hello_with_no_fd_is_refused,
		  a_hello_without_a_uffd_is_refused, &no_fd, 0, 0),
	H_CASE_AS(garbage_bytes_are_refused, a_bad_packet_is_refused,
		  &garbage, 0, 0),
	H_CASE_AS(a_truncated_packet_is_refused, a_bad_packet_is_refused,
		  &truncated, 0, 0),
	H_CASE_AS(a_packet_of_the_wrong_size_is_refused,
		  a_bad_packet_is_refused, &oversized, 0, 0),
	H_CASE_AS(an_unknown_major_version_is_refused, a_bad_packet_is_refused,
		  &major_99, 0, 0),
	H_CASE_AS(an_unknown_major_version_of_another_size_is_refused,
		  a_bad_packet_is_refused, &major_99_larger, 0, 0),
	H_CASE_AS(a_request_before_hello_is_refused, a_bad_packet_is_refused,
		  &before_hello, 0, 0),
};

START_TEST(a_second_hello_is_refused)
{
	struct victim v;
	struct cg__client c = { .sock = -1 };
	struct cg__req req;
	int uffd;

	victim_open(&v);
	ck_assert_int_eq(cg__client_open(&c, h_socket()), 0);
	uffd = cg__uffd_create();
	ck_assert_int_ge(uffd, 0);
	cg__req_init(&req, CG_OP_HELLO);
	ck_assert_int_eq(send_bytes(c.sock, &req, sizeof(req), uffd), 0);
	close(uffd);
	ck_assert_int_eq(answer(c.sock), -EPERM);
	victim_unaffected(&v, "dropped: hello not allowed here");
}
END_TEST

/* ---- claims on another process's uffd --------------------------------- */

/*
 * A process forked before any registration (so no uffd of its own waits)
 * that says CHILD_HELLO for a parent when told to.  As a grandchild it is
 * forked only then, by the child, so that its parent is not the test.
 */
struct claimer {
	pid_t pid;
	int go, result;		/* go: test -> claimer; result: back */
};

static int claim(pid_t parent, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct cg__req req;
	struct cg__rep rep;
	int s, status = -EIO;

	s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (s >= 0 && !connect(s, (struct sockaddr *)&sa, sizeof(sa))) {
		cg__req_init(&req, CG_OP_CHILD_HELLO);
		req.pid = parent;
		if (!cg__send(s, &req, sizeof(req), -1) &&
		    !cg__recv(s, &rep, sizeof(rep), NULL))
			status = rep.status;
	}
	if (s >= 0)
		close(s);
	return status;
}

static int claim_main(int go_rd, int result_wr, pid_t parent, bool grandchild)
{
	int status;
	pid_t pid;
	char go;

	if (read(go_rd, &go, 1) != 1)
		return 2;
	if (!grandchild) {
		status = claim(parent, h_socket());
	} else if ((pid = fork()) == 0) {
		status = claim(parent, h_socket());
		_exit(write(result_wr, &status, sizeof(status)) == sizeof(status)
			      ? 0 : 3);
	} else {
		return pid > 0 && h_wait(pid) == 0 && read(go_rd, &go, 1) == 1
			       ? 0 : 5;
	}
	if (write(result_wr, &status, sizeof(status)) != sizeof(status))
		return 3;
	return read(go_rd, &go, 1) == 1 ? 0 : 4;
}

/*
 * Start it after the victim's memory is mapped and populated (so that it
 * maps the same pages) and before it is registered; it claims to be the
 * test's child.
 */
static struct claimer claimer_start(bool grandchild)
{
	struct claimer c;
	pid_t parent = getpid();
	int go[2], res[2];

	ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(res, O_CLOEXEC), 0);
	c.pid = fork();
	ck_assert_int_ge(c.pid, 0);
	if (c.pid == 0)
		_exit(claim_main(go[0], res[1], parent, grandchild));
	close(go[0]);
	close(res[1]);
	c.go = go[1];
	c.result = res[0];
	return c;
}

static int claimer_claim(struct claimer *c)
{
	struct pollfd p = { .fd = c->result, .events = POLLIN };
	int status = -ETIMEDOUT;

	ck_assert_int_eq(write(c->go, "g", 1), 1);
	if (poll(&p, 1, 5000) == 1)
		ck_assert_int_eq(read(c->result, &status, sizeof(status)),
				 sizeof(status));
	return status;
}

static void claimer_end(struct claimer *c)
{
	ck_assert_int_eq(write(c->go, "g", 1), 1);
	ck_assert_int_eq(h_wait(c->pid), 0);
	close(c->go);
	close(c->result);
}

/*
 * A real child of the client, forked before the client registered
 * anything (same pages, no uffd of its own), claims to be the fork that
 * produced the silent child's uffd.  Its ppid is right; its memory is not
 * the one that uffd covers.
 */
START_TEST(a_child_claiming_a_sibling_s_uffd_is_refused)
{
	struct cg__status_client sc;
	struct claimer c;
	struct victim v;
	struct h_waiter silent;

	v.p = h_map(H_4K, VICTIM_LEN, 'V');
	c = claimer_start(false);
	victim_track(&v);
	silent = h_fork_checking(&(struct h_check){ .raw = true });
	ck_assert_int_eq(h_status_client(0, &sc), 1);
	ck_assert_int_eq(sc.parent_pid, getpid());
	ck_assert_int_eq(claimer_claim(&c), -ESRCH);
	/* The silent child's uffd is still unnamed, still waiting. */
	ck_assert_int_eq(h_status_client(c.pid, NULL), 0);
	ck_assert_int_eq(h_status_client(0, NULL), 1);
	claimer_end(&c);
	ck_assert_int_eq(h_release(&silent), 0);
	v.fds = -1;	/* the silent child's uffd goes at our next fork or close */
	victim_unaffected(&v, "none of 1 has a region registered in it");
}
END_TEST

/* A process that is no child of the client claims one of its uffds. */
START_TEST(a_process_that_is_not_the_child_is_refused)
{
	struct claimer c;
	struct victim v;
	struct h_waiter silent;

	v.p = h_map(H_4K, VICTIM_LEN, 'V');
	c = claimer_start(true);
	victim_track(&v);
	silent = h_fork_checking(&(struct h_check){ .raw = true });
	ck_assert_int_eq(claimer_claim(&c), -EPERM);
	ck_assert_int_eq(h_status_client(0, NULL), 1);
	claimer_end(&c);
	ck_assert_int_eq(h_release(&silent), 0);
	v.fds = -1;
	victim_unaffected(&v, "and no adopted uffd is proven its own");
}
END_TEST

/* Forked before the victim even mapped its memory: nothing of it to claim. */
START_TEST(a_child_that_maps_none_of_the_memory_is_refused)
{
	struct claimer c = claimer_start(false);
	struct victim v;
	struct h_waiter silent;

	victim_open(&v);
	silent = h_fork_checking(&(struct h_check){ .raw = true });
	ck_assert_int_eq(claimer_claim(&c), -ESRCH);
	ck_assert_int_eq(h_status_client(0, NULL), 1);
	claimer_end(&c);
	ck_assert_int_eq(h_release(&silent), 0);
	v.fds = -1;
	victim_unaffected(&v, "has a region registered in it");
}
END_TEST

/* ---- the client against a server of another major ---------------------- */

struct fake {
	int listen_fd;
	size_t reply_size;	/* bytes of the reply packet */
};

static void *fake_server(void *arg)
{
	struct fake *f = arg;
	char buf[512];
	struct cg__rep *rep = (struct cg__rep *)buf;
	struct cg__req req;
	int s = accept4(f->listen_fd, NULL, NULL, SOCK_CLOEXEC), fd;

	if (s < 0)
		return NULL;
	if (!cg__recv(s, &req, sizeof(req), &fd)) {
		memset(buf, 0, sizeof(buf));
		cg__rep_init(rep, &req);
		rep->major = CG_PROTO_MAJOR + 1;
		cg__send(s, buf, f->reply_size, -1);
		if (fd >= 0)
			close(fd);
	}
	sleep_ms(100);
	close(s);
	return NULL;
}

START_TEST(the_client_refuses_a_server_of_another_major_version)
{
	static const size_t sizes[] = { sizeof(struct cg__rep), 300, 16 };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[] = "/tmp/cgfake.XXXXXX";

	ck_assert(mkdtemp(dir) != NULL);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/fake.sock", dir);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(*sizes); i++) {
		struct fake f = { .reply_size = sizes[i] };
		struct cg_options o = { CG_MODE_DAEMON, sa.sun_path };
		struct cg *cg = NULL;
		pthread_t t;
		int ret;

		f.listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
		unlink(sa.sun_path);
		ck_assert_int_eq(bind(f.listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		ck_assert_int_eq(listen(f.listen_fd, 4), 0);
		ck_assert_int_eq(pthread_create(&t, NULL, fake_server, &f), 0);
		ret = cg_open(&o, sizeof(o), &cg);
		pthread_join(t, NULL);
		close(f.listen_fd);
		ck_assert_msg(ret == -EPROTONOSUPPORT, "a %zu-byte reply of major "
			      "%d: cg_open gave %d (%s)", sizes[i],
			      CG_PROTO_MAJOR + 1, ret, cg_strerror(ret));
	}
	unlink(sa.sun_path);
	rmdir(dir);
}
END_TEST

/* ---- silence --------------------------------------------------------- */

/*
 * A connection holds a --max-clients slot from accept on; one that never
 * says hello is dropped after --hello-timeout, and one that did stays.
 */
START_TEST(a_connection_that_never_says_hello_is_dropped_after_the_timeout)
{
	struct cg_options o = { .mode = CG_MODE_DAEMON };
	struct timespec t0, t1;
	struct cg_page_info info;
	char path[160], *p;
	struct pollfd pf;
	struct cg *cg;
	bool found;
	long ms;
	pid_t d;

	if (!h_have_own_daemon("starts a daemon with --hello-timeout 300"))
		return;
	snprintf(path, sizeof(path), "%s.hello", h_socket());
	d = h_daemon_start_opt(path, "--hello-timeout", "300");
	ck_assert_int_gt(d, 0);
	o.socket_path = path;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pf = (struct pollfd){ .fd = raw_connect(path), .events = POLLIN };
	ck_assert_int_eq(cg_open(&o, sizeof(o), &cg), 0);

	ck_assert_int_eq(poll(&pf, 1, 5000), 1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	ck_assert_msg(pf.revents & POLLHUP, "revents %#x", pf.revents);
	ck_assert_msg(ms >= 250, "dropped after %ld ms, before the timeout", ms);
	free(log_wait(path, 0, "dropped: no hello within 300 ms", &found));
	ck_assert(found);

	p = h_map(H_4K, 4 * 4096, 'A');
	ck_assert_int_eq(cg_register(cg, p, 4 * 4096, 0), 0);
	p[0] = 'B';
	ck_assert_int_eq(cg_query(cg, p, &info, sizeof(info)), 0);
	ck_assert(info.present && info.exclusive && info.dirty);
	cg_close(cg);
	munmap(p, 4 * 4096);
	close(pf.fd);
	ck_assert_int_eq(h_daemon_stop(d), 0);
}
END_TEST

/* ---- a flood --------------------------------------------------------- */

static int *flood_open(int n)
{
	int *s = malloc((size_t)n * sizeof(*s));
	struct rlimit rl;

	ck_assert(s != NULL);
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	for (int i = 0; i < n; i++)
		s[i] = raw_connect(h_socket());
	return s;
}

/* How many of the flood's connections the daemon hung up on. */
static int flood_refused(const int *s, int n)
{
	int refused = 0;

	for (int i = 0; i < n; i++) {
		struct pollfd p = { .fd = s[i], .events = POLLIN };

		refused += poll(&p, 1, 0) == 1 && (p.revents & POLLHUP);
	}
	return refused;
}

START_TEST(a_flood_of_connections_is_refused_beyond_the_limit)
{
	struct cg_page_info info;
	struct victim v;
	struct rlimit rl;
	int *s, refused = 0;
	struct timespec t0, t1;
	struct cg *late;

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max < FLOOD + 100) {
		h_skip("RLIMIT_NOFILE hard limit %llu: cannot hold %d connections",
		       (unsigned long long)rl.rlim_max, FLOOD);
		return;
	}
	victim_open(&v);
	s = flood_open(FLOOD);
	/* The daemon answers the bystander at once, flood or not. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	v.p[0] = 'F';
	ck_assert_int_eq(cg_query(v.cg, (const void *)v.p, &info, sizeof(info)), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ck_assert_msg(t1.tv_sec - t0.tv_sec < 2, "the bystander waited %ld s",
		      (long)(t1.tv_sec - t0.tv_sec));
	ck_assert(info.dirty);
	/* Beyond --max-clients (1024 by default), connections are refused. */
	for (int ms = 0; ms < 5000; ms += 20) {
		refused = flood_refused(s, FLOOD);
		if (refused >= FLOOD - 1024)
			break;
		sleep_ms(20);
	}
	if (h_daemon_pid() > 0)
		ck_assert_msg(refused >= FLOOD - 1024, "%d of %d flood connections "
			      "refused", refused, FLOOD);
	ck_assert_msg(refused < FLOOD, "every connection was refused");
	for (int i = 0; i < FLOOD; i++)
		close(s[i]);
	free(s);
	/* Room again: a new client works. */
	for (int ms = 0; ms < 5000; ms += 20) {
		struct cg_options o = { CG_MODE_DAEMON, h_socket() };

		late = NULL;
		if (!cg_open(&o, sizeof(o), &late))
			break;
		sleep_ms(20);
	}
	ck_assert_msg(late != NULL, "no client could connect after the flood");
	cg_close(late);
	victim_unaffected(&v, "refusing a connection: 1024 connections already");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("hostile input is refused");
	TCase *tc = tcase_create("hostile");

	h_timeout(tc, 30);
	H_ADD_CASES(tc, packets);
	h_add(tc, a_second_hello_is_refused);
	h_add(tc, a_child_claiming_a_sibling_s_uffd_is_refused);
	h_add(tc, a_process_that_is_not_the_child_is_refused);
	h_add(tc, a_child_that_maps_none_of_the_memory_is_refused);
	h_add(tc, the_client_refuses_a_server_of_another_major_version);
	h_add(tc, a_connection_that_never_says_hello_is_dropped_after_the_timeout);
	h_add(tc, a_flood_of_connections_is_refused_beyond_the_limit);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
