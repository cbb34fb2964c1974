// SPDX-License-Identifier: MIT
/*
 * cowguardd serves as the system user cowguard, not as root (issue 11, row
 * 9), started either way it is started:
 *  - as root by hand with --user cowguard: it makes its socket, then
 *    becomes the user (and its group, no other);
 *  - as the user, with the three capabilities ambient, as
 *    cowguardd.service's User= and AmbientCapabilities= start it (setpriv
 *    plays systemd here).
 * Each way: /proc/PID/status shows the user's uid and gid in every slot,
 * no supplementary group, and exactly the documented capabilities
 * (docs/security.md); a client of another user (cowguard-test, in the
 * group cowguard) is served: registered, its fork adopted, a fork-shared
 * buffer pinned, audits clean; and neither another user nor the service
 * user itself without capabilities may signal or trace the daemon.  Run
 * as the user, the daemon is the socket's listener, which clients trust
 * without $COWGUARD_DAEMON_USER because it is the system user cowguard; a
 * socket served by another unprivileged user is still refused.  And
 * --user that names no user, root, or a user it cannot become (not root,
 * or no CAP_SETUID) stops the start with exit status 1: never a root
 * daemon by surprise.
 *
 * Root only: it makes the user cowguard if missing (useradd, as
 * `systemd-sysusers cowguard.conf` would); without root, or where the
 * user cannot be made, every case says why it skips.
 *
 * Bugs this catches: a daemon that stays uid 0, keeps a supplementary
 * group, loses its permitted set at setresuid() (no PR_SET_KEEPCAPS: the
 * client's pagemap and fork events then fail), keeps a capability it does
 * not need or an ambient one; a failed switch that goes on as root; a
 * client that refuses the daemon's own user, or trusts anyone.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define SERVICE "cowguard"	/* the daemon's user, cowguardd.service's User= */
#define GROUP "cowguard"	/* /dev/userfaultfd's group for clients */
#define CLIENT "cowguard-test"	/* scripts/run-unprivileged.sh's user */
#define FOREIGN "nobody"
#define SYSTEM_UID_MAX 999
#define CAPS "+sys_ptrace,+dac_read_search,+sys_admin"
#define PAGES 16
#define LEN (PAGES * 4096)
#define WAIT_MS 5000

#define BIT(c) (1ULL << (c))
static const unsigned long long want_eff = BIT(CAP_SYS_PTRACE) |
					   BIT(CAP_DAC_READ_SEARCH);
static const unsigned long long want_prm = BIT(CAP_SYS_PTRACE) |
					   BIT(CAP_DAC_READ_SEARCH) |
					   BIT(CAP_SYS_ADMIN);

/* _i of the cases that start a daemon: how it is started. */
enum how { BY_ROOT_WITH_USER, AS_USER_WITH_AMBIENT_CAPS, N_HOW };
static const char *const how_name[] = { "root, --user " SERVICE,
					"as " SERVICE ", ambient capabilities" };

struct daemon {
	pid_t pid;
	char dir[32];
	char sock[64];
	char log[72];
};

struct ids {
	uid_t uid;
	gid_t gid;
};

static bool readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 1;
}

static bool have_setpriv(void)
{
	if (system("command -v setpriv >/dev/null 2>&1") == 0)
		return true;
	h_skip("no setpriv (util-linux) to start cowguardd as systemd would");
	return false;
}

/* What `systemd-sysusers cowguard.conf` makes: the group's own user. */
static void make_service_user(void)
{
	int ret = system("getent group " GROUP " >/dev/null && g='--gid " GROUP
			 "' || g=--user-group; useradd --system $g "
			 "--no-create-home --home-dir / --shell /usr/sbin/nologin "
			 SERVICE " >/dev/null 2>&1");

	if (ret)
		printf("NOTE: useradd %s failed (status %d)\n", SERVICE, ret);
}

/* The user cowguard, made if missing; false (after saying why) if none. */
static bool service_user(struct ids *out)
{
	struct passwd *pw;

	if (!h_have_root("starts cowguardd as root and makes the user " SERVICE))
		return false;
	pw = getpwnam(SERVICE);
	if (!pw) {
		make_service_user();
		pw = getpwnam(SERVICE);
	}
	if (!pw) {
		h_skip("no user %s, and useradd could not make it (read-only "
		       "/etc?)", SERVICE);
		return false;
	}
	if (pw->pw_uid == 0 || pw->pw_uid > SYSTEM_UID_MAX) {
		h_skip("the user %s is uid %u, not a system user: clients do not "
		       "trust it", SERVICE, (unsigned)pw->pw_uid);
		return false;
	}
	out->uid = pw->pw_uid;
	out->gid = pw->pw_gid;
	return true;
}

static const char *daemon_bin(void)
{
	static char bin[256];
	const char *dir = getenv("CG_BUILDDIR");

	snprintf(bin, sizeof(bin), "%s/cowguardd", dir ? dir : "build");
	return bin;
}

static void exec_daemon(const struct daemon *d, enum how how)
{
	const char *bin = daemon_bin();
	int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

	/* A root shell's group, which the daemon must not keep as a member. */
	gid_t root_group = 0;

	if (fd >= 0)
		dup2(fd, 2);
	if (setgroups(1, &root_group))
		_exit(126);
	if (how == BY_ROOT_WITH_USER)
		execl(bin, bin, "--verbose", "--socket", d->sock, "--user", SERVICE,
		      (char *)NULL);
	else
		execlp("setpriv", "setpriv", "--reuid=" SERVICE, "--regid=" SERVICE,
		       "--clear-groups", "--inh-caps=" CAPS, "--ambient-caps=" CAPS,
		       "--bounding-set=-all," CAPS, bin, "--verbose", "--socket",
		       d->sock, (char *)NULL);
	_exit(127);
}

static void show_log(const struct daemon *d)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "cat '%s' >&2", d->log);
	if (system(cmd))
		fprintf(stderr, "no log at %s\n", d->log);
}

/*
 * Start cowguardd the way how says, on a socket in a fresh directory (the
 * user's own when it makes the socket as that user).
 */
static void daemon_start(struct daemon *d, enum how how, const struct ids *svc)
{
	struct timespec pause = { 0, 10 * 1000 * 1000 };

	snprintf(d->dir, sizeof(d->dir), "/tmp/cgown.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(d->dir));
	ck_assert_int_eq(chmod(d->dir, 0755), 0);
	if (how == AS_USER_WITH_AMBIENT_CAPS)
		ck_assert_int_eq(chown(d->dir, svc->uid, svc->gid), 0);
	snprintf(d->sock, sizeof(d->sock), "%s/cowguardd.sock", d->dir);
	/* Where h_log_lines() looks. */
	snprintf(d->log, sizeof(d->log), "%s.log", d->sock);
	d->pid = fork();
	ck_assert_int_ge(d->pid, 0);
	if (d->pid == 0)
		exec_daemon(d, how);
	for (int i = 0; i < 500 && !h_connectable(d->sock); i++) {
		if (waitpid(d->pid, NULL, WNOHANG) == d->pid) {
			show_log(d);
			ck_abort_msg("cowguardd (%s) exited at start", how_name[how]);
		}
		nanosleep(&pause, NULL);
	}
	ck_assert_msg(h_connectable(d->sock), "cowguardd (%s) did not come up",
		      how_name[how]);
	/*
	 * It listens before it becomes its user: "listening on" is logged
	 * once it has (a slow guest showed the gap).
	 */
	for (int i = 0; i < 500 && h_log_lines(d->sock, "listening on") < 1; i++)
		nanosleep(&pause, NULL);
	ck_assert_msg(h_log_lines(d->sock, "listening on") >= 1, "cowguardd "
		      "(%s) never said it was listening", how_name[how]);
}

static void daemon_stop(struct daemon *d)
{
	char cmd[64];
	int status = h_daemon_stop(d->pid);

	if (status)
		show_log(d);
	ck_assert_msg(status == 0, "cowguardd exited with status %d", status);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->dir);
	if (system(cmd))
		fprintf(stderr, "could not remove %s\n", d->dir);
}

/* The text after "name:" in /proc/pid/status, tabs and all. */
static void status_field(pid_t pid, const char *name, char *out, size_t n)
{
	char path[64], line[512];
	size_t len = strlen(name);
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	ck_assert_ptr_nonnull(f);
	out[0] = 0;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, name, len) == 0 && line[len] == ':') {
			snprintf(out, n, "%s", line + len + 1 + strspn(line + len + 1, "\t "));
			out[strcspn(out, "\n")] = 0;
			break;
		}
	fclose(f);
}

static void assert_ids(pid_t pid, const char *name, unsigned id)
{
	char got[128], want[128];

	status_field(pid, name, got, sizeof(got));
	snprintf(want, sizeof(want), "%u\t%u\t%u\t%u", id, id, id, id);
	ck_assert_msg(strcmp(got, want) == 0, "%s: '%s', want '%s' (real, "
		      "effective, saved, file system)", name, got, want);
}

static void assert_caps(pid_t pid, const char *name, unsigned long long want)
{
	char got[128];

	status_field(pid, name, got, sizeof(got));
	ck_assert_msg(strtoull(got, NULL, 16) == want, "%s: %s, want %016llx",
		      name, got, want);
}

START_TEST(the_daemon_is_its_user_with_only_the_documented_capabilities)
{
	struct daemon d;
	struct ids svc;
	char got[128];

	if (!service_user(&svc) ||
	    (_i == AS_USER_WITH_AMBIENT_CAPS && !have_setpriv()))
		return;
	daemon_start(&d, _i, &svc);
	assert_ids(d.pid, "Uid", svc.uid);
	assert_ids(d.pid, "Gid", svc.gid);
	status_field(d.pid, "Groups", got, sizeof(got));
	ck_assert_msg(got[strspn(got, " ")] == 0, "%s: supplementary groups "
		      "'%s', want none", how_name[_i], got);
	assert_caps(d.pid, "CapInh", 0);
	assert_caps(d.pid, "CapPrm", want_prm);
	assert_caps(d.pid, "CapEff", want_eff);
	assert_caps(d.pid, "CapBnd", want_prm);
	assert_caps(d.pid, "CapAmb", 0);
	status_field(d.pid, "NoNewPrivs", got, sizeof(got));
	ck_assert_str_eq(got, "1");
	if (_i == BY_ROOT_WITH_USER)
		ck_assert_int_eq(h_log_lines(d.sock, "running as user " SERVICE), 1);
	daemon_stop(&d);
}
END_TEST

/* ---- a client of another user ------------------------------------------- */

struct client {
	const char *sock;
	char devdir[80];	/* where its private /dev/userfaultfd is made */
	uid_t uid;
	gid_t gid, group;
	int report_wr;
};

/*
 * What `make install` does for the group, in a mount namespace of the
 * client's own (as test-daemon-restart-keeps-clients-going.c does): a node
 * of /dev/userfaultfd's device, root:cowguard 0660, mounted over it.  The
 * daemon finds it through /proc/PID/root (daemon/gate.c).
 */
static int private_uffd_device(const struct client *c)
{
	char node[100];
	struct stat st;

	if (stat("/dev/userfaultfd", &st) || !S_ISCHR(st.st_mode))
		return -ENOENT;
	snprintf(node, sizeof(node), "%s/userfaultfd", c->devdir);
	if (unshare(CLONE_NEWNS) ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
	    mount("tmpfs", c->devdir, "tmpfs", 0, "mode=0755") ||
	    mknod(node, S_IFCHR | 0600, st.st_rdev) || chown(node, 0, c->group) ||
	    chmod(node, 0660) ||
	    mount(node, "/dev/userfaultfd", NULL, MS_BIND, NULL))
		return -errno;
	return 0;
}

/* The forked grandchild: adopted, its write seen, its audit clean. */
static int grandchild(struct cg *cg, char *p, int go_rd)
{
	struct cg_page_info info;
	struct cg_audit_report a;
	char go;

	p[0] = 'G';
	if (cg_mode(cg) != CG_MODE_DAEMON ||
	    cg_query(cg, p, &info, sizeof(info)) ||
	    !info.exclusive || !info.dirty ||
	    cg_audit(cg, p, LEN, &a, sizeof(a)) || a.unsafe || a.conservative)
		return 10;
	/* Hold the pages shared until the parent has pinned them. */
	if (read(go_rd, &go, 1) != 1)
		return 11;
	return p[4096] == 'U' ? 0 : 12;
}

#define FAIL(...) do { snprintf(why, n, __VA_ARGS__); return -1; } while (0)

/* Pin the fork-shared pages 1.. while the grandchild holds them. */
static int pin_shared(struct cg *cg, char *p, char *why, size_t n)
{
	struct cg_page_info info;
	struct cg_pin *pin;
	int ret;

	if (cg_query(cg, p + 4096, &info, sizeof(info)) || info.exclusive)
		FAIL("page 1 is not fork-shared after the fork");
	ret = cg_pin(cg, p + 4096, LEN - 4096, CG_PIN_RO, &pin);
	if (ret)
		FAIL("cg_pin of the fork-shared pages: %s", cg_strerror(ret));
	for (int i = 1; i < PAGES; i++)
		if (cg_query(cg, p + i * 4096, &info, sizeof(info)) || !info.exclusive)
			FAIL("page %d is not exclusive once pinned", i);
	p[4096] = 'P';
	ret = cg_unpin(pin);
	if (ret)
		FAIL("cg_unpin: %s", cg_strerror(ret));
	return 0;
}

static int fork_pin_audit(struct cg *cg, char *p, char *why, size_t n)
{
	struct cg_audit_report a;
	struct cg_stats st;
	int go[2], status;
	pid_t pid;

	if (pipe2(go, O_CLOEXEC))
		FAIL("pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		FAIL("fork: %s", strerror(errno));
	if (pid == 0)
		_exit(grandchild(cg, p, go[0]));
	close(go[0]);
	if (pin_shared(cg, p, why, n))
		return -1;
	if (write(go[1], "g", 1) != 1 || waitpid(pid, &status, 0) != pid)
		FAIL("the forked child went away");
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		FAIL("the forked child failed (status %#x: 10 not adopted or not "
		     "clean, 12 saw the parent's write)", status);
	if (cg_stats(cg, &st, sizeof(st)) || st.fork_events < 1)
		FAIL("no fork event followed");
	if (cg_audit(cg, p, LEN, &a, sizeof(a)) || a.unsafe || a.conservative)
		FAIL("audit: %llu unsafe, %llu conservative",
		     (unsigned long long)a.unsafe, (unsigned long long)a.conservative);
	return 0;
}

/* As the client user: register, fork, pin, audit; why says what failed. */
static int client_scenario(const struct client *c, char *why, size_t n)
{
	struct cg_options o = { .mode = CG_MODE_DAEMON, .socket_path = c->sock };
	struct cg *cg;
	char *p;
	int ret;

	if (private_uffd_device(c))
		FAIL("SKIP");
	if (setgroups(1, &c->group) || setresgid(c->gid, c->gid, c->gid) ||
	    setresuid(c->uid, c->uid, c->uid))
		FAIL("becoming %s: %s", CLIENT, strerror(errno));
	/*
	 * A uid change leaves us undumpable, /proc/self root's: a user's
	 * process is not, and its library reads its own pagemap.
	 */
	if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0))
		FAIL("PR_SET_DUMPABLE: %s", strerror(errno));
	/* Trusted for what it is, not because a variable names it. */
	unsetenv("COWGUARD_DAEMON_USER");
	p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0);
	if (p == MAP_FAILED)
		FAIL("mmap: %s", strerror(errno));
	madvise(p, LEN, MADV_NOHUGEPAGE);
	memset(p, 'U', LEN);
	ret = cg_open(&o, sizeof(o), &cg);
	if (ret)
		FAIL("cg_open as %s: %s", CLIENT, cg_strerror(ret));
	ret = cg_register(cg, p, LEN, 0);
	if (ret)
		FAIL("cg_register: %s", cg_strerror(ret));
	if (fork_pin_audit(cg, p, why, n))
		return -1;
	cg_close(cg);
	return 0;
}

static int client_main(void *arg)
{
	const struct client *c = arg;
	char why[256] = "ok";

	client_scenario(c, why, sizeof(why));
	return write(c->report_wr, why, strlen(why) + 1) > 0 ? 0 : 2;
}

/* cowguard-test, or nobody, with the group cowguard; false if no group. */
static bool client_user(struct client *c)
{
	struct passwd *pw = getpwnam(CLIENT);
	struct group *g = getgrnam(GROUP);

	if (!pw)
		pw = getpwnam(FOREIGN);
	if (!g || !pw || pw->pw_uid == 0) {
		h_skip("no group %s or no unprivileged user to be its member",
		       GROUP);
		return false;
	}
	c->uid = pw->pw_uid;
	c->gid = pw->pw_gid;
	c->group = g->gr_gid;
	return true;
}

START_TEST(a_client_of_another_user_is_registered_adopted_pinned_and_audits_clean)
{
	struct client c = { 0 };
	struct daemon d;
	struct ids svc;
	char why[256] = "";
	int rep[2];
	pid_t pid;

	if (!service_user(&svc) || !client_user(&c) ||
	    (_i == AS_USER_WITH_AMBIENT_CAPS && !have_setpriv()))
		return;
	daemon_start(&d, _i, &svc);
	c.sock = d.sock;
	snprintf(c.devdir, sizeof(c.devdir), "%s/dev", d.dir);
	ck_assert_int_eq(mkdir(c.devdir, 0755), 0);
	ck_assert_int_eq(pipe2(rep, O_CLOEXEC), 0);
	c.report_wr = rep[1];
	pid = h_fork(client_main, &c);
	close(rep[1]);
	if (!readable(rep[0], 3 * WAIT_MS) || read(rep[0], why, sizeof(why) - 1) <= 0)
		snprintf(why, sizeof(why), "no report from the client");
	ck_assert_int_eq(h_wait(pid), 0);
	close(rep[0]);
	if (strcmp(why, "SKIP") == 0) {
		h_skip("no /dev/userfaultfd, or no mount namespace to give it to "
		       "the group %s in", GROUP);
		daemon_stop(&d);
		return;
	}
	if (strcmp(why, "ok"))
		show_log(&d);
	ck_assert_msg(strcmp(why, "ok") == 0, "%s: client of uid %u: %s",
		      how_name[_i], (unsigned)c.uid, why);
	daemon_stop(&d);
}
END_TEST

/*
 * Root's clients are audited by PageAnonExclusive: /proc/kpageflags, opened
 * as root before the switch, and frame numbers in their pagemap, opened
 * with CAP_SYS_ADMIN raised for the moment.  Their fork and pin too.
 */
START_TEST(a_root_client_is_audited_by_the_kernel_s_page_flags)
{
	struct cg_options o = { .mode = CG_MODE_DAEMON };
	struct cg_audit_report a;
	struct cg_pin *pin;
	struct h_waiter w;
	struct daemon d;
	struct ids svc;
	struct cg *cg;
	char *p;

	if (!service_user(&svc) ||
	    (_i == AS_USER_WITH_AMBIENT_CAPS && !have_setpriv()))
		return;
	daemon_start(&d, _i, &svc);
	unsetenv("COWGUARD_DAEMON_USER");
	o.socket_path = d.sock;
	ck_assert_int_eq(cg_open(&o, sizeof(o), &cg), 0);
	p = h_map(H_4K, LEN, 'R');
	ck_assert_int_eq(cg_register(cg, p, LEN, 0), 0);
	w = h_fork_waiting(p + 4096, 'R');
	ck_assert_int_eq(cg_pin(cg, p + 4096, LEN - 4096, CG_PIN_RO, &pin), 0);
	p[4096] = 'P';
	ck_assert_int_eq(cg_unpin(pin), 0);
	a = h_audit_clean(cg, p, LEN);
	/* 4 KiB pages: each one's flags can be read, given its frame. */
	if (h_truth_is_kpageflags())
		ck_assert_msg(a.truth == CG_TRUTH_KPAGEFLAGS &&
			      a.exact == a.present && a.present == PAGES &&
			      a.unknowable == 0, "%s: a root client's audit: truth "
			      "%d (kpageflags: %d), %llu present, %llu exact, %llu "
			      "unknowable", how_name[_i], a.truth, CG_TRUTH_KPAGEFLAGS,
			      (unsigned long long)a.present,
			      (unsigned long long)a.exact,
			      (unsigned long long)a.unknowable);
	ck_assert_int_eq(h_release(&w), 0);
	cg_close(cg);
	munmap(p, LEN);
	daemon_stop(&d);
}
END_TEST

/* ---- who may signal or trace it ----------------------------------------- */

/* What a process of uid/gid (no capability left) may do to pid. */
enum { MAY_SIGNAL = 1, MAY_TRACE = 2, MAY_READ_MEMORY = 4, MAY_OPEN_MEM = 8 };

static int try_daemon(pid_t pid, uid_t uid, gid_t gid)
{
	char buf[8], path[64];
	struct iovec local = { buf, sizeof(buf) }, remote = { (void *)0x400000, 8 };
	int may = 0, fd;

	if (setgroups(0, NULL) || setresgid(gid, gid, gid) ||
	    setresuid(uid, uid, uid))
		return 100;
	if (kill(pid, 0) == 0)
		may |= MAY_SIGNAL;
	if (ptrace(PTRACE_SEIZE, pid, 0, 0) == 0)
		may |= MAY_TRACE;
	/* EFAULT would be "allowed, nothing there": only EPERM is refusal. */
	if (process_vm_readv(pid, &local, 1, &remote, 1, 0) >= 0 || errno != EPERM)
		may |= MAY_READ_MEMORY;
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
		may |= MAY_OPEN_MEM;
	return may;
}

struct try_arg {
	pid_t pid;
	uid_t uid;
	gid_t gid;
};

static int try_main(void *arg)
{
	const struct try_arg *t = arg;

	return try_daemon(t->pid, t->uid, t->gid);
}

START_TEST(another_user_can_neither_signal_nor_trace_it_nor_can_its_own_user_without_capabilities)
{
	struct client c = { 0 };
	struct daemon d;
	struct ids svc;
	struct try_arg t;
	int may;

	if (!service_user(&svc) || !client_user(&c) ||
	    (_i == AS_USER_WITH_AMBIENT_CAPS && !have_setpriv()))
		return;
	daemon_start(&d, _i, &svc);
	t = (struct try_arg){ d.pid, c.uid, c.gid };
	may = h_wait(h_fork(try_main, &t));
	ck_assert_msg(may == 0, "%s: uid %u may (1 signal, 2 trace, 4 read its "
		      "memory, 8 open its mem): %d", how_name[_i],
		      (unsigned)c.uid, may);
	/* Its own uid may signal it, as any user its processes; no more. */
	t = (struct try_arg){ d.pid, svc.uid, svc.gid };
	may = h_wait(h_fork(try_main, &t));
	ck_assert_msg(may == MAY_SIGNAL, "%s: %s without capabilities may (1 "
		      "signal, 2 trace, 4 read its memory, 8 open its mem): %d, "
		      "want 1", how_name[_i], SERVICE, may);
	ck_assert_int_eq(kill(d.pid, 0), 0);
	daemon_stop(&d);
}
END_TEST

/* ---- whom the client trusts --------------------------------------------- */

/* A fake server as user: accept one connection, report how many fds came. */
static int fake_server(const struct passwd *pw, const char *path, int ready_wr,
		       int report_wr)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	union {
		char buf[CMSG_SPACE(4 * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	char data[4096];
	struct iovec iov = { data, sizeof(data) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
			    .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
	int lfd, c, fds = 0;

	if (setgroups(0, NULL) || setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) ||
	    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid))
		return 2;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    chmod(path, 0666) || listen(lfd, 4) || write(ready_wr, "r", 1) != 1)
		return 3;
	if (!readable(lfd, WAIT_MS) || (c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0)
		return 4;
	/* A client that sent its uffd waits for a reply: hang up on it. */
	if (readable(c, 1000) && recvmsg(c, &m, MSG_CMSG_CLOEXEC) > 0 &&
	    CMSG_FIRSTHDR(&m))
		fds = (int)((CMSG_FIRSTHDR(&m)->cmsg_len - CMSG_LEN(0)) / sizeof(int));
	close(c);
	return write(report_wr, &fds, sizeof(fds)) == sizeof(fds) ? 0 : 5;
}

/* Serve as user, let a root client try with no $COWGUARD_DAEMON_USER. */
static int connect_to_fake(const struct passwd *pw, int *fds)
{
	struct cg_options o = { .mode = CG_MODE_DAEMON };
	char dir[32] = "/tmp/cgfake.XXXXXX", path[64], r;
	struct cg *cg = NULL;
	int ready[2], report[2], ret;
	pid_t pid;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(chown(dir, pw->pw_uid, pw->pw_gid), 0);
	snprintf(path, sizeof(path), "%s/cowguardd.sock", dir);
	ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(report, O_CLOEXEC), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(fake_server(pw, path, ready[1], report[1]));
	close(ready[1]);
	close(report[1]);
	ck_assert_msg(readable(ready[0], WAIT_MS) && read(ready[0], &r, 1) == 1,
		      "the fake server as %s did not come up", pw->pw_name);
	unsetenv("COWGUARD_DAEMON_USER");
	o.socket_path = path;
	ret = cg_open(&o, sizeof(o), &cg);
	ck_assert_msg(readable(report[0], WAIT_MS) &&
		      read(report[0], fds, sizeof(*fds)) == sizeof(*fds),
		      "no report from the fake server as %s", pw->pw_name);
	ck_assert_int_eq(h_wait(pid), 0);
	close(ready[0]);
	close(report[0]);
	unlink(path);
	rmdir(dir);
	return ret;
}

START_TEST(the_user_cowguard_is_trusted_without_being_named_and_nobody_else)
{
	struct passwd *pw;
	struct ids svc;
	int fds = -1, ret;

	if (!service_user(&svc))
		return;
	pw = getpwnam(_i ? SERVICE : FOREIGN);
	if (!pw || (!_i && pw->pw_uid == 0)) {
		h_skip("no unprivileged user %s", FOREIGN);
		return;
	}
	ret = connect_to_fake(pw, &fds);
	if (_i) {
		/*
		 * Trusted: the hello went with its uffd and its own pagemap
		 * and smaps (then a hang-up).
		 */
		ck_assert_msg(ret != -EACCES && fds == 3, "a server as %s: cg_open "
			      "%d (%s), %d fds sent, want the uffd and two /proc "
			      "files", SERVICE, ret, cg_strerror(ret), fds);
	} else {
		ck_assert_msg(ret == -EACCES && fds == 0, "a server as %s: cg_open "
			      "%d (%s), %d fds sent, want -EACCES and none",
			      FOREIGN, ret, cg_strerror(ret), fds);
	}
}
END_TEST

/* ---- --user that cannot be honoured ------------------------------------- */

struct refusal {
	const char *run_as;	/* a setpriv prefix, or "": FOREIGN_PREFIX */
	const char *user;
	const char *says;	/* in its log */
	bool made_socket;	/* the failure comes after the socket is made */
};

/* Made with the foreign user's ids: its group's name differs by system. */
#define FOREIGN_PREFIX "setpriv as " FOREIGN

static const struct refusal refusals[] = {
	{ "", "no-such-user-of-cowguard", "no such user", false },
	{ "", "root", "that is uid 0", false },
	{ FOREIGN_PREFIX, SERVICE, "only root may become", false },
	/* Root, but without CAP_SETUID: the switch itself fails. */
	{ "setpriv --bounding-set=-setuid ", SERVICE, "not serving as root", true },
};
#define N_REFUSALS (sizeof(refusals) / sizeof(*refusals))

START_TEST(a_user_it_cannot_become_stops_the_start)
{
	const struct refusal *r = &refusals[_i];
	struct h_run *run;
	char dir[32] = "/tmp/cgnouser.XXXXXX", sock[64], cmd[64], prefix[128];
	struct passwd *pw;
	struct ids svc;

	if (!service_user(&svc) || (r->run_as[0] && !have_setpriv()))
		return;
	/* After service_user(): getpwnam() reuses its result's memory. */
	pw = getpwnam(FOREIGN);
	snprintf(prefix, sizeof(prefix), "%s", r->run_as);
	if (strcmp(r->run_as, FOREIGN_PREFIX) == 0) {
		if (!pw || pw->pw_uid == 0) {
			h_skip("no unprivileged user %s", FOREIGN);
			return;
		}
		snprintf(prefix, sizeof(prefix), "setpriv --reuid=%u --regid=%u "
			 "--clear-groups ", (unsigned)pw->pw_uid,
			 (unsigned)pw->pw_gid);
	}
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(chmod(dir, 0777), 0);
	snprintf(sock, sizeof(sock), "%s/cowguardd.sock", dir);
	run = malloc(sizeof(*run));
	ck_assert_ptr_nonnull(run);
	/* Bounded: a daemon that went on anyway would serve forever. */
	h_run_cmd(run, "timeout 10 %s%s --socket %s --user %s 2>&1 </dev/null", prefix,
		  daemon_bin(), sock, r->user);
	ck_assert_msg(run->status == 1 && strstr(run->out, r->says),
		      "%s--user %s: exit status %d (124: still serving after "
		      "10 s), want 1 and a line with "
		      "\"%s\"; it said: %s", prefix, r->user, run->status,
		      r->says, run->out);
	ck_assert_msg(!h_connectable(sock), "--user %s: its socket still answers",
		      r->user);
	ck_assert_msg((access(sock, F_OK) == 0) == r->made_socket,
		      "--user %s: socket %s, want it %s", r->user,
		      access(sock, F_OK) ? "absent" : "there",
		      r->made_socket ? "made" : "not made before the check");
	free(run);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd))
		fprintf(stderr, "could not remove %s\n", dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("daemon runs as its own user");
	TCase *tc = tcase_create("user");

	h_timeout(tc, 60);
	h_add_loop(tc, the_daemon_is_its_user_with_only_the_documented_capabilities, N_HOW);
	h_add_loop(tc, a_client_of_another_user_is_registered_adopted_pinned_and_audits_clean, N_HOW);
	h_add_loop(tc, a_root_client_is_audited_by_the_kernel_s_page_flags, N_HOW);
	h_add_loop(tc, another_user_can_neither_signal_nor_trace_it_nor_can_its_own_user_without_capabilities, N_HOW);
	/* A server as nobody, then as cowguard. */
	h_add_loop(tc, the_user_cowguard_is_trusted_without_being_named_and_nobody_else, 2);
	h_add_loop(tc, a_user_it_cannot_become_stops_the_start, N_REFUSALS);
	suite_add_tcase(s, tc);
	return h_main(s, 0);
}
