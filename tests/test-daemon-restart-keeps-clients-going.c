// SPDX-License-Identifier: MIT
/*
 * A daemon restart (systemd's Restart=) costs a client nothing but the page
 * state it had, and only until the next call.  While a thread writes into
 * registered memory the test SIGKILLs the daemon: the writer never waits
 * long, no write is lost, and calls in the gap behave as include/cowguard.h
 * says (CG_MODE_DAEMON: -ENOTCONN, cg_unregister forgets).  A new daemon on
 * the same socket tracks the client again at its next call, with the
 * regions it had.  CG_MODE_AUTO with no daemon coming back goes on
 * embedded, where the writes are seen again, and a call the daemon died
 * under is asked again there.  A fork in the gap leaves
 * parent and child each to come back on its own.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "harness.h"
#include "track-util.h"
#include "wire/protocol.h"

#define PAGES 64
#define LEN ((size_t)PAGES * 4096)
#define MAX_BLOCK_NS (1000ULL * 1000 * 1000)

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

static void sleep_ms(int ms)
{
	struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&t, NULL);
}

/* Writes round r into the first word of every page, round after round. */
struct writer {
	pthread_t thread;
	volatile uint64_t *p;
	atomic_ullong rounds;		/* completed */
	atomic_ullong worst_ns;		/* the longest single store */
	atomic_bool stop;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;

	while (!atomic_load(&w->stop)) {
		uint64_t r = atomic_load(&w->rounds) + 1;

		for (size_t i = 0; i < PAGES; i++) {
			uint64_t t0 = now_ns(), took;

			w->p[i * 4096 / sizeof(uint64_t)] = r;
			took = now_ns() - t0;
			if (took > atomic_load(&w->worst_ns))
				atomic_store(&w->worst_ns, took);
		}
		atomic_store(&w->rounds, r);
	}
	return NULL;
}

static void writer_start(struct writer *w, void *p)
{
	memset(w, 0, sizeof(*w));
	w->p = p;
	ck_assert_int_eq(pthread_create(&w->thread, NULL, writer_main, w), 0);
}

/* Wait (up to 2 s) for n more complete rounds: the writer is not stuck. */
static void writer_goes_on(struct writer *w, unsigned n, const char *when)
{
	uint64_t want = atomic_load(&w->rounds) + n;

	for (int ms = 0; ms < 2000 && atomic_load(&w->rounds) < want; ms++)
		sleep_ms(1);
	ck_assert_msg(atomic_load(&w->rounds) >= want,
		      "%s: the writer did %llu rounds in 2 s, wanted %llu", when,
		      (unsigned long long)atomic_load(&w->rounds),
		      (unsigned long long)want);
}

/* Stop it and check that every page holds the last round it wrote. */
static void writer_stop(struct writer *w)
{
	uint64_t last;

	atomic_store(&w->stop, true);
	pthread_join(w->thread, NULL);
	last = atomic_load(&w->rounds);
	for (size_t i = 0; i < PAGES; i++)
		ck_assert_msg(w->p[i * 4096 / sizeof(uint64_t)] == last,
			      "page %zu holds round %llu, the writer's last was %llu",
			      i, (unsigned long long)w->p[i * 4096 / sizeof(uint64_t)],
			      (unsigned long long)last);
	ck_assert_msg(atomic_load(&w->worst_ns) < MAX_BLOCK_NS,
		      "a write was blocked for %llu ms",
		      (unsigned long long)(atomic_load(&w->worst_ns) / 1000000));
}

/* Our own daemon, on a socket of our own, that we may kill. */
static pid_t start_daemon(char *path, size_t size, const char *name)
{
	pid_t pid;

	snprintf(path, size, "%s.%s", h_socket(), name);
	pid = h_daemon_start(path);
	ck_assert_msg(pid > 0, "cannot start a daemon on %s", path);
	return pid;
}

static void kill_daemon(pid_t pid)
{
	ck_assert_int_eq(kill(pid, SIGKILL), 0);
	ck_assert_int_eq(h_wait(pid), 128 + SIGKILL);
}

static struct cg *open_at(const char *path, enum cg_mode mode)
{
	struct cg_options o = { .mode = mode, .socket_path = path };
	struct cg *cg = NULL;
	int ret = cg_open(&o, sizeof(o), &cg);

	ck_assert_msg(ret == 0, "cg_open: %s", cg_strerror(ret));
	ck_assert_int_eq(cg_mode(cg), CG_MODE_DAEMON);
	return cg;
}

/* The daemon at path's STATUS record of pid: 1 listed, 0 not, or -errno. */
static int status_at(const char *path, pid_t pid, struct cg__status_client *out)
{
	struct cg__client ctl = { .sock = -1 };
	struct cg__req req;
	struct cg__rep rep;
	int ret, found = 0;

	ret = cg__client_open_ctl(&ctl, path);
	if (ret)
		return ret;
	cg__req_init(&req, CG_OP_STATUS);
	ret = cg__client_call(&ctl, &req, &rep);
	while (!ret && rep.rec != CG_REC_END) {
		if (rep.rec == CG_REC_CLIENT && rep.u.client.pid == pid) {
			found = 1;
			*out = rep.u.client;
		}
		ret = cg__client_next(&ctl, &rep);
	}
	cg__client_close(&ctl);
	return ret ? ret : rep.status ? rep.status : found;
}

static void assert_listed(const char *path, pid_t pid, uint64_t bytes)
{
	struct cg__status_client sc;
	int ret = status_at(path, pid, &sc);

	ck_assert_msg(ret == 1, "pid %d is not listed by the new daemon (%d)",
		      (int)pid, ret);
	ck_assert_uint_eq(sc.nregions, 1);
	ck_assert_uint_eq(sc.stats.registered_bytes, bytes);
}

static const enum cg_mode restart_modes[] = { CG_MODE_DAEMON, CG_MODE_AUTO };

START_TEST(a_restarted_daemon_tracks_the_client_again_at_its_next_call)
{
	enum cg_mode mode = restart_modes[_i];
	char path[160];
	pid_t daemon;
	struct cg *cg;
	struct writer w;
	struct cg_page_info info;
	struct cg_audit_report audit;
	struct cg_stats st;
	char *p, *extra;

	if (!h_have_own_daemon("kills and restarts its daemon"))
		return;
	daemon = start_daemon(path, sizeof(path), mode == CG_MODE_AUTO ? "auto"
								      : "daemon");
	p = h_map(H_4K, LEN, 'A');
	extra = h_map(H_4K, 8 * 4096, 'E');
	cg = open_at(path, mode);
	ck_assert_int_eq(cg_register(cg, p, LEN, 0), 0);
	ck_assert_int_eq(cg_register(cg, extra, 4 * 4096, 0), 0);
	writer_start(&w, p);
	writer_goes_on(&w, 2, "before the kill");

	kill_daemon(daemon);
	writer_goes_on(&w, 2, "with the daemon killed");
	if (mode == CG_MODE_DAEMON) {
		/* The gap: page state unknown, and said so. */
		ck_assert_int_eq(cg_query(cg, p, &info, sizeof(info)), -ENOTCONN);
		ck_assert_int_eq(cg_audit(cg, p, LEN, &audit, sizeof(audit)), -ENOTCONN);
		ck_assert_int_eq(cg_stats(cg, &st, sizeof(st)), -ENOTCONN);
		ck_assert_int_eq(cg_register(cg, extra + 4 * 4096, 4096, 0), -ENOTCONN);
		/* Nothing tracks it now: forgetting it is all there is to do. */
		ck_assert_int_eq(cg_unregister(cg, extra, 4 * 4096), 0);
		ck_assert_int_eq(cg_unregister(cg, extra, 4 * 4096), -ENOENT);
		ck_assert_int_eq(cg_mode(cg), CG_MODE_DAEMON);
	} else {
		/* AUTO keeps its place until it is called: nothing to ask yet. */
		ck_assert_int_eq(cg_unregister(cg, extra, 4 * 4096), 0);
	}

	daemon = start_daemon(path, sizeof(path), mode == CG_MODE_AUTO ? "auto"
								      : "daemon");
	ck_assert_int_eq(cg_query(cg, p, &info, sizeof(info)), 0);
	ck_assert_int_eq(cg_mode(cg), CG_MODE_DAEMON);
	ck_assert(info.present);
	assert_listed(path, getpid(), LEN);
	/* Registered again, so protected again: the writer's faults are seen. */
	writer_goes_on(&w, 2, "after the restart");
	ck_assert_int_eq(cg_stats(cg, &st, sizeof(st)), 0);
	ck_assert_uint_ge(st.wp_faults, PAGES);
	writer_stop(&w);
	h_audit_clean(cg, p, LEN);
	cg_close(cg);
	ck_assert_int_eq(h_daemon_stop(daemon), 0);
	munmap(p, LEN);
	munmap(extra, 8 * 4096);
}
END_TEST

/*
 * A write made while the daemon was down was seen by nobody: once the
 * client is tracked again (by a new daemon, or embedded), write tracking
 * reports every page of its regions as written, once.
 */
START_TEST(writes_in_the_gap_are_reported_by_the_next_collect)
{
	enum cg_mode mode = restart_modes[_i];
	char path[160], *p = h_map(H_4K, 4 * 4096, 'A');
	pid_t daemon;
	struct cg *cg;

	if (!h_have_own_daemon("kills and restarts its daemon"))
		return;
	daemon = start_daemon(path, sizeof(path), "gap");
	cg = open_at(path, mode);
	ck_assert_int_eq(cg_register(cg, p, 4 * 4096, 0), 0);
	ck_assert_uint_eq(tu_collect(cg, p, 4 * 4096, NULL), 0);
	kill_daemon(daemon);
	p[4096] = 'G';
	/* DAEMON: a new daemon; AUTO: none, so embedded. */
	if (mode == CG_MODE_DAEMON)
		daemon = start_daemon(path, sizeof(path), "gap");
	ck_assert_uint_eq(tu_collect(cg, p, 4 * 4096, NULL), 4 * 4096);
	ck_assert_uint_eq(tu_collect(cg, p, 4 * 4096, NULL), 0);
	cg_close(cg);
	if (mode == CG_MODE_DAEMON)
		ck_assert_int_eq(h_daemon_stop(daemon), 0);
	munmap(p, 4 * 4096);
}
END_TEST

START_TEST(with_no_daemon_back_an_auto_client_goes_on_embedded)
{
	char path[160];
	pid_t daemon;
	struct cg *cg;
	struct writer w;
	struct cg_stats st;
	char *p;

	if (!h_have_own_daemon("kills its daemon"))
		return;
	daemon = start_daemon(path, sizeof(path), "gone");
	p = h_map(H_4K, LEN, 'A');
	cg = open_at(path, CG_MODE_AUTO);
	ck_assert_int_eq(cg_register(cg, p, LEN, 0), 0);
	writer_start(&w, p);
	writer_goes_on(&w, 2, "before the kill");

	kill_daemon(daemon);
	writer_goes_on(&w, 2, "with the daemon killed");
	ck_assert_int_eq(cg_stats(cg, &st, sizeof(st)), 0);
	ck_assert_int_eq(cg_mode(cg), CG_MODE_EMBEDDED);
	ck_assert_uint_eq(st.regions, 1);
	ck_assert_uint_eq(st.registered_bytes, LEN);
	/* Every page was protected again: each is seen at its next write. */
	writer_goes_on(&w, 2, "embedded");
	ck_assert_int_eq(cg_stats(cg, &st, sizeof(st)), 0);
	ck_assert_uint_ge(st.wp_faults, PAGES);
	writer_stop(&w);
	h_audit_clean(cg, p, LEN);
	cg_close(cg);
	munmap(p, LEN);
}
END_TEST

/* A region registered by another thread, its result kept. */
struct late_register {
	struct cg *cg;
	char *p;
	int ret;
};

static void *late_register_main(void *arg)
{
	struct late_register *l = arg;

	l->ret = cg_register(l->cg, l->p, LEN, 0);
	return NULL;
}

/*
 * The daemon is stopped with the request unread, then killed: the call
 * meets the hang-up, and CG_MODE_AUTO asks it again of the engine here.
 */
START_TEST(a_call_the_daemon_dies_under_is_served_embedded_under_auto)
{
	struct late_register l;
	struct cg_stats st;
	char path[160];
	pthread_t t;
	pid_t daemon;
	char *p;

	if (!h_have_own_daemon("kills its daemon"))
		return;
	daemon = start_daemon(path, sizeof(path), "under");
	p = h_map(H_4K, LEN, 'A');
	l = (struct late_register){ open_at(path, CG_MODE_AUTO),
				    h_map(H_4K, LEN, 'B'), -1 };
	ck_assert_int_eq(cg_register(l.cg, p, LEN, 0), 0);
	ck_assert_int_eq(kill(daemon, SIGSTOP), 0);
	ck_assert_int_eq(pthread_create(&t, NULL, late_register_main, &l), 0);
	usleep(200 * 1000);
	kill_daemon(daemon);
	pthread_join(t, NULL);
	ck_assert_msg(!l.ret, "the call under the hang-up: %s",
		      cg_strerror(l.ret));
	ck_assert_int_eq(cg_mode(l.cg), CG_MODE_EMBEDDED);
	ck_assert_int_eq(cg_stats(l.cg, &st, sizeof(st)), 0);
	ck_assert_uint_eq(st.regions, 2);
	h_audit_clean(l.cg, l.p, LEN);
	cg_close(l.cg);
	munmap(l.p, LEN);
	munmap(p, LEN);
}
END_TEST

/* The child: ask in the gap, then again once the daemon is back. */
struct gap_child {
	struct cg *cg;
	char *p;
	int report_wr, go_rd;
};

static int gap_child_main(void *arg)
{
	struct gap_child *c = arg;
	struct cg_page_info info;
	int r[2];
	char go;

	c->p[0] = 'C';
	r[0] = cg_query(c->cg, c->p, &info, sizeof(info));
	if (write(c->report_wr, &r[0], sizeof(r[0])) != sizeof(r[0]) ||
	    read(c->go_rd, &go, 1) != 1)
		return 2;
	r[1] = cg_query(c->cg, c->p, &info, sizeof(info));
	if (!r[1] && !(info.present && info.exclusive))
		r[1] = -EILSEQ;
	if (write(c->report_wr, &r[1], sizeof(r[1])) != sizeof(r[1]) ||
	    read(c->go_rd, &go, 1) != 1)
		return 3;
	return c->p[0] == 'C' ? 0 : 4;
}

static int read_int(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int v = -ETIMEDOUT;

	if (poll(&p, 1, 10000) == 1 && read(fd, &v, sizeof(v)) != sizeof(v))
		v = -EIO;
	return v;
}

START_TEST(a_fork_while_the_daemon_is_down_leaves_both_to_come_back)
{
	char path[160];
	pid_t daemon, pid;
	struct gap_child c;
	struct cg_page_info info;
	int rep[2], go[2];
	uint64_t t0;

	if (!h_have_own_daemon("kills and restarts its daemon"))
		return;
	daemon = start_daemon(path, sizeof(path), "fork");
	c.p = h_map(H_4K, LEN, 'A');
	c.cg = open_at(path, CG_MODE_DAEMON);
	ck_assert_int_eq(cg_register(c.cg, c.p, LEN, 0), 0);
	kill_daemon(daemon);

	ck_assert_int_eq(pipe2(rep, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
	c.report_wr = rep[1];
	c.go_rd = go[0];
	t0 = now_ns();
	pid = h_fork(gap_child_main, &c);
	ck_assert_msg(now_ns() - t0 < MAX_BLOCK_NS, "fork took %llu ms",
		      (unsigned long long)((now_ns() - t0) / 1000000));
	ck_assert_int_eq(read_int(rep[0]), -ENOTCONN);
	ck_assert_int_eq(cg_query(c.cg, c.p, &info, sizeof(info)), -ENOTCONN);

	daemon = start_daemon(path, sizeof(path), "fork");
	ck_assert_int_eq(write(go[1], "g", 1), 1);
	ck_assert_int_eq(read_int(rep[0]), 0);
	/* The child came back as a client of its own, with its region. */
	assert_listed(path, pid, LEN);
	ck_assert_int_eq(cg_query(c.cg, c.p, &info, sizeof(info)), 0);
	assert_listed(path, getpid(), LEN);
	ck_assert_int_eq(c.p[0], 'A');
	ck_assert_int_eq(write(go[1], "g", 1), 1);
	ck_assert_int_eq(h_wait(pid), 0);
	h_audit_clean(c.cg, c.p, LEN);
	cg_close(c.cg);
	ck_assert_int_eq(h_daemon_stop(daemon), 0);
	close(rep[0]);
	close(rep[1]);
	close(go[0]);
	close(go[1]);
	munmap(c.p, LEN);
}
END_TEST

/*
 * The same as an unprivileged client: a member of the group "cowguard"
 * (its uffd from /dev/userfaultfd), served by a root daemon.  It runs in a
 * child that drops to that user; each step's result comes up a pipe.
 */
enum { STEP_OK = 0, STEP_SKIP = 1000 };

struct unpriv {
	const char *path;
	char devdir[170];	/* where a private /dev/userfaultfd is made */
	uid_t uid;
	gid_t gid, group;
	int report_wr, go_rd;
};

static int step(const struct unpriv *u, int result)
{
	char go;

	if (write(u->report_wr, &result, sizeof(result)) != sizeof(result) ||
	    read(u->go_rd, &go, 1) != 1)
		_exit(2);
	return result;
}

/* Wait for the writer to do n more rounds; -ETIMEDOUT if it is stuck. */
static int rounds_go_on(struct writer *w, unsigned n)
{
	uint64_t want = atomic_load(&w->rounds) + n;

	for (int ms = 0; ms < 2000 && atomic_load(&w->rounds) < want; ms++)
		sleep_ms(1);
	return atomic_load(&w->rounds) >= want ? 0 : -ETIMEDOUT;
}

/*
 * What `make install` does for the group, in a mount namespace of our own:
 * a node of /dev/userfaultfd's device, root:cowguard 0660, mounted over it.
 * Nothing outside this process changes.  Returns 0 or -errno.
 */
static int private_uffd_device(const struct unpriv *u)
{
	char node[200];
	struct stat st;

	if (stat("/dev/userfaultfd", &st) || !S_ISCHR(st.st_mode))
		return -ENOENT;
	snprintf(node, sizeof(node), "%s/userfaultfd", u->devdir);
	if (unshare(CLONE_NEWNS) ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
	    mount("tmpfs", u->devdir, "tmpfs", 0, "mode=0755") ||
	    mknod(node, S_IFCHR | 0600, st.st_rdev) || chown(node, 0, u->group) ||
	    chmod(node, 0660) ||
	    mount(node, "/dev/userfaultfd", NULL, MS_BIND, NULL))
		return -errno;
	return 0;
}

static int unpriv_main(void *arg)
{
	const struct unpriv *u = arg;
	struct cg_options o = { .mode = CG_MODE_DAEMON, .socket_path = u->path };
	struct cg_page_info info;
	struct cg_stats st;
	struct writer w;
	struct cg *cg;
	uint64_t last;
	void *p;
	int ret;

	if (private_uffd_device(u))
		return step(u, STEP_SKIP), 0;
	/*
	 * Dumpable again, as after a login's exec: changed ids leave it not,
	 * and the daemon serves no user a process whose /proc files the
	 * kernel keeps from that user.
	 */
	if (setgroups(1, &u->group) || setresgid(u->gid, u->gid, u->gid) ||
	    setresuid(u->uid, u->uid, u->uid) ||
	    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0))
		return step(u, -errno), 3;
	p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0);
	if (p == MAP_FAILED)
		return step(u, -ENOMEM), 3;
	memset(p, 'U', LEN);
	madvise(p, LEN, MADV_NOHUGEPAGE);
	ret = cg_open(&o, sizeof(o), &cg);
	if (!ret)
		ret = cg_register(cg, p, LEN, 0);
	if (ret)
		return step(u, ret), 3;
	memset(&w, 0, sizeof(w));
	w.p = p;
	if (pthread_create(&w.thread, NULL, writer_main, &w))
		return step(u, -EAGAIN), 3;
	step(u, rounds_go_on(&w, 2));			/* ready: kill it */
	ret = rounds_go_on(&w, 2);
	if (!ret && cg_query(cg, p, &info, sizeof(info)) != -ENOTCONN)
		ret = -EILSEQ;
	step(u, ret);					/* in the gap */
	ret = cg_query(cg, p, &info, sizeof(info));
	if (!ret && cg_mode(cg) != CG_MODE_DAEMON)
		ret = -EILSEQ;
	if (!ret)
		ret = rounds_go_on(&w, 2);
	if (!ret)
		ret = cg_stats(cg, &st, sizeof(st));
	if (!ret && st.wp_faults < PAGES)
		ret = -EILSEQ;
	step(u, ret);					/* back: check STATUS */
	atomic_store(&w.stop, true);
	pthread_join(w.thread, NULL);
	last = atomic_load(&w.rounds);
	for (size_t i = 0; i < PAGES; i++)
		if (w.p[i * 4096 / sizeof(uint64_t)] != last)
			return 4;
	if (atomic_load(&w.worst_ns) >= MAX_BLOCK_NS)
		return 5;
	cg_close(cg);
	return 0;
}

static int read_step(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int v = -ETIMEDOUT;

	if (poll(&p, 1, 10000) == 1 && read(fd, &v, sizeof(v)) != sizeof(v))
		v = -EIO;
	return v;
}

START_TEST(an_unprivileged_client_is_tracked_again_after_a_restart)
{
	struct unpriv u;
	struct group *g = getgrnam("cowguard");
	struct passwd *pw = getpwnam("cowguard-test");
	char path[160];
	pid_t daemon, pid;
	int rep[2], go[2], ret;

	if (!h_have_root("drops to an unprivileged user") ||
	    !h_have_own_daemon("kills and restarts its daemon"))
		return;
	if (!g) {
		h_skip("no group cowguard (make install, or scripts/run-unprivileged.sh, adds it)");
		return;
	}
	u.group = g->gr_gid;
	u.uid = pw ? pw->pw_uid : 65534;
	u.gid = pw ? pw->pw_gid : 65534;
	daemon = start_daemon(path, sizeof(path), "unpriv");
	u.path = path;
	snprintf(u.devdir, sizeof(u.devdir), "%s.dev", path);
	ck_assert_int_eq(mkdir(u.devdir, 0755), 0);
	ck_assert_int_eq(pipe2(rep, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
	u.report_wr = rep[1];
	u.go_rd = go[0];
	pid = h_fork(unpriv_main, &u);

	ret = read_step(rep[0]);
	if (ret == STEP_SKIP) {
		h_skip("no /dev/userfaultfd, or no mount namespace to give it to "
		       "the group cowguard in");
		ck_assert_int_eq(write(go[1], "g", 1), 1);
		ck_assert_int_eq(h_wait(pid), 0);
		ck_assert_int_eq(h_daemon_stop(daemon), 0);
		return;
	}
	ck_assert_msg(ret == 0, "unprivileged client, before the kill: %s",
		      cg_strerror(ret));
	kill_daemon(daemon);
	ck_assert_int_eq(write(go[1], "g", 1), 1);
	ret = read_step(rep[0]);
	ck_assert_msg(ret == 0, "unprivileged client, in the gap: %d (%s)", ret,
		      cg_strerror(ret));
	daemon = start_daemon(path, sizeof(path), "unpriv");
	ck_assert_int_eq(write(go[1], "g", 1), 1);
	ret = read_step(rep[0]);
	ck_assert_msg(ret == 0, "unprivileged client, after the restart: %d (%s)",
		      ret, cg_strerror(ret));
	assert_listed(path, pid, LEN);
	ck_assert_int_eq(write(go[1], "g", 1), 1);
	ck_assert_int_eq(h_wait(pid), 0);
	ck_assert_int_eq(h_daemon_stop(daemon), 0);
	rmdir(u.devdir);
	close(rep[0]);
	close(rep[1]);
	close(go[0]);
	close(go[1]);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("daemon restart keeps clients going");
	TCase *tc = tcase_create("restart");

	/*
	 * Protected again means a fault for every page written: no page is
	 * unprotected with its neighbour's fault, in the daemons started
	 * here (which inherit it) nor in an embedded engine.
	 */
	setenv("COWGUARD_WP_AROUND", "4", 1);
	h_timeout(tc, 30);
	h_add_loop(tc, a_restarted_daemon_tracks_the_client_again_at_its_next_call, 2);
	h_add_loop(tc, writes_in_the_gap_are_reported_by_the_next_collect, 2);
	h_add(tc, with_no_daemon_back_an_auto_client_goes_on_embedded);
	h_add(tc, a_call_the_daemon_dies_under_is_served_embedded_under_auto);
	h_add(tc, a_fork_while_the_daemon_is_down_leaves_both_to_come_back);
	h_add(tc, an_unprivileged_client_is_tracked_again_after_a_restart);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
