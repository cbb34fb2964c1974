// SPDX-License-Identifier: MIT
/*
 * Clients in containers are served, and the pids they send are read in
 * their own namespace.  This binary, run again as a helper under
 * `unshare --pid --fork --mount-proc` (and with `--user --map-root-user`),
 * is pid 1 of a new pid namespace: it registers and pins, forks a child
 * through the library (whose CHILD_HELLO names its parent as 1, the
 * parent's pid in there), and the child queries and pins.  The test, in
 * the daemon's namespace, checks that STATUS lists the child under its
 * pid as the daemon sees it, named as a child of the helper.
 *
 * Then a second child, forked raw (no CHILD_HELLO of the library), says
 * CHILD_HELLO naming the helper's pid as the *daemon* sees it.  In the
 * child's namespace that pid is nobody: refused (-ESRCH).  A daemon that
 * read it as its own pid would have found the helper's adopted uffd there
 * and proven it the child's.
 *
 * The cases: a pid namespace (needs root); a user and pid namespace as
 * whoever runs the test (root, or the unprivileged lane's user in the
 * group cowguard); and as root, one as nobody in the group
 * /dev/userfaultfd is opened to.  In a user namespace the daemon sees the
 * client's outer uid and groups, which is what opening the device
 * checked: served (daemon/gate.c).  There the daemon's root is unmapped
 * and shows as 65534, so the helper's library needs
 * COWGUARD_DAEMON_USER=65534 to trust it (without, it refuses: -EACCES).
 * Each case prints why when it is skipped.
 *
 * Bug this catches: a CHILD_HELLO's parent read as a pid of the daemon's
 * namespace (issue 11, row 1): adoption failed in every container, and a
 * pid of the daemon's namespace was taken from a client.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "wire/protocol.h"

#define LEN (16 * 4096)
#define LINE_TIMEOUT_MS 10000
#define NOBODY 65534
#define HELPER_ARG "--in-namespace"

enum ns_case { PID_NS, USER_NS, USER_NS_AS_NOBODY, NS_CASES };

/* ---- the helper, inside the namespaces ---------------------------------- */

static struct cg *helper_open(const char *sock)
{
	struct cg_options o = { .mode = CG_MODE_DAEMON, .socket_path = sock };
	struct cg *cg = NULL;
	int ret = cg_open(&o, sizeof(o), &cg);

	/* The daemon's root, unmapped here, is 65534 to us: trust it. */
	if (ret == -EACCES) {
		printf("I the library refused an unmapped daemon: %d\n", ret);
		setenv("COWGUARD_DAEMON_USER", "65534", 1);
		ret = cg_open(&o, sizeof(o), &cg);
	}
	printf("O %d\n", ret);
	fflush(stdout);
	return ret ? NULL : cg;
}

static void pin_unpin(struct cg *cg, char *p, int *pin, int *unpin)
{
	struct cg_pin *h = NULL;

	*pin = cg_pin(cg, p, LEN, CG_PIN_RO, &h);
	*unpin = *pin ? -1 : cg_unpin(h);
}

/* The child forked through the library: it is served, then waits. */
static _Noreturn void library_child(struct cg *cg, char *p, int wait_fd)
{
	struct cg_page_info info;
	int query, pin, unpin;
	char byte;

	query = cg_query(cg, p, &info, sizeof(info));
	pin_unpin(cg, p, &pin, &unpin);
	printf("C %d %d %d\n", query, pin, unpin);
	fflush(stdout);
	if (read(wait_fd, &byte, 1) < 0)
		_exit(2);
	_exit(0);
}

/* A raw child's CHILD_HELLO naming claim: the status, or -EPIPE. */
static int raw_child_hello(const char *path, pid_t claim)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct cg__req req;
	struct cg__rep rep;
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)))
		return -EPIPE;
	cg__req_init(&req, CG_OP_CHILD_HELLO);
	req.pid = claim;
	if (cg__send(s, &req, sizeof(req), -1) ||
	    cg__recv(s, &rep, sizeof(rep), NULL))
		return -EPIPE;
	return rep.status;
}

/*
 * Forked without the library's atfork handlers (the daemon still adopts
 * its uffd from the fork event), it names claim as its parent.
 */
static int hostile_child(const char *sock, pid_t claim)
{
	int go[2];
	char byte;
	pid_t pid;

	if (pipe(go))
		return -errno;
	pid = (pid_t)syscall(SYS_clone, SIGCHLD, NULL, NULL, NULL, NULL);
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		/* Once the parent's fork returned, the daemon has the event. */
		if (read(go[0], &byte, 1) != 1)
			_exit(2);
		printf("H %d\n", raw_child_hello(sock, claim));
		fflush(stdout);
		_exit(0);
	}
	if (write(go[1], "g", 1) != 1)
		return -EIO;
	return waitpid(pid, NULL, 0) == pid ? 0 : -errno;
}

static int helper(const char *sock)
{
	int reg, pin, unpin, wait[2];
	struct cg *cg = helper_open(sock);
	char *p, line[64];
	long claim;
	pid_t child;

	if (!cg)
		return 1;
	p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0);
	if (p == MAP_FAILED || pipe(wait))
		return 2;
	memset(p, 'A', LEN);
	reg = cg_register(cg, p, LEN, 0);
	pin_unpin(cg, p, &pin, &unpin);
	printf("P %d %d %d %d\n", (int)getpid(), reg, pin, unpin);
	fflush(stdout);
	child = fork();
	if (child == 0) {
		close(wait[1]);
		library_child(cg, p, wait[0]);
	}
	/* The test names our pid in its namespace, once it saw the child. */
	if (!fgets(line, sizeof(line), stdin) || sscanf(line, "%ld", &claim) != 1)
		return 3;
	hostile_child(sock, (pid_t)claim);
	close(wait[1]);
	waitpid(child, NULL, 0);
	cg_close(cg);
	return 0;
}

/* ---- the test, in the daemon's namespaces ------------------------------- */

struct spawned {
	pid_t unshare;
	int out;		/* the helper's stdout and stderr */
	int in;			/* its stdin */
	char buf[4096];		/* read from out, not yet taken */
	size_t len;
};

/* In the forked child: become who the case runs as. */
static int become(enum ns_case c, gid_t dev_gid)
{
	if (c != USER_NS_AS_NOBODY)
		return 0;
	if (setgroups(1, &dev_gid) || setresgid(NOBODY, NOBODY, NOBODY) ||
	    setresuid(NOBODY, NOBODY, NOBODY))
		return -1;
	return 0;
}

static void spawn(struct spawned *sp, enum ns_case c, gid_t dev_gid)
{
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	const char *argv[12];
	int to[2], from[2], k = 0;

	ck_assert_int_gt(n, 0);
	self[n] = 0;
	argv[k++] = "unshare";
	if (c != PID_NS) {
		argv[k++] = "--user";
		argv[k++] = "--map-root-user";
	}
	argv[k++] = "--pid";
	argv[k++] = "--fork";
	argv[k++] = "--kill-child";
	argv[k++] = "--mount-proc";
	argv[k++] = self;
	argv[k++] = HELPER_ARG;
	argv[k++] = h_socket();
	argv[k] = NULL;
	ck_assert_int_eq(pipe(to), 0);
	ck_assert_int_eq(pipe(from), 0);
	memset(sp, 0, sizeof(*sp));
	sp->unshare = fork();
	ck_assert_int_ge(sp->unshare, 0);
	if (sp->unshare == 0) {
		dup2(to[0], 0);
		dup2(from[1], 1);
		dup2(from[1], 2);
		if (become(c, dev_gid))
			_exit(120);
		execvp("unshare", (char *const *)argv);
		printf("unshare: cannot run: %s\n", strerror(errno));
		_exit(127);
	}
	close(to[0]);
	close(from[1]);
	sp->in = to[1];
	sp->out = from[0];
}

/* Take one line from sp's buffer into line, if it holds a whole one. */
static bool take_line(struct spawned *sp, char *line, size_t len)
{
	char *nl = memchr(sp->buf, '\n', sp->len);
	size_t n;

	if (!nl)
		return false;
	n = (size_t)(nl - sp->buf) + 1;
	snprintf(line, len, "%.*s", (int)(n - 1), sp->buf);
	memmove(sp->buf, sp->buf + n, sp->len - n);
	sp->len -= n;
	return true;
}

/* The helper's next line with this tag (or unshare's complaint), or NULL. */
static char *next_line(struct spawned *sp, char tag, char *line, size_t len)
{
	struct pollfd pf = { .fd = sp->out, .events = POLLIN };

	for (;;) {
		ssize_t n;

		while (take_line(sp, line, len))
			if (line[0] == tag || strncmp(line, "unshare:", 8) == 0)
				return line;
		if (sp->len == sizeof(sp->buf) || poll(&pf, 1, LINE_TIMEOUT_MS) != 1)
			return NULL;
		n = read(sp->out, sp->buf + sp->len, sizeof(sp->buf) - sp->len);
		if (n <= 0)
			return NULL;
		sp->len += (size_t)n;
	}
}

/* The only child of parent, found by a scan of /proc: or 0. */
static pid_t child_of(pid_t parent)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t found = 0;

	while (d && (e = readdir(d)) && !found) {
		char path[300], buf[512], *q;
		int ppid = 0;
		FILE *f;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		buf[fread(buf, 1, sizeof(buf) - 1, f)] = 0;
		fclose(f);
		q = strrchr(buf, ')');
		if (q && sscanf(q + 1, " %*c %d", &ppid) == 1 && ppid == parent)
			found = atoi(e->d_name);
	}
	if (d)
		closedir(d);
	return found;
}

/* With its stdin closed the helper ends, and unshare with it. */
static int finish(struct spawned *sp)
{
	close(sp->in);
	close(sp->out);
	return h_wait(sp->unshare);
}

/* What the test needs for case c, or false after saying why it skips. */
static bool case_runs(enum ns_case c, gid_t *dev_gid)
{
	struct stat st;

	if (c == PID_NS)
		return h_have_root("a pid namespace without a user namespace");
	if (c == USER_NS)
		return true;
	if (!h_have_root("to become nobody in the device's group"))
		return false;
	if (stat("/dev/userfaultfd", &st) || st.st_gid == 0 ||
	    (st.st_mode & 0060) != 0060) {
		h_skip("/dev/userfaultfd is opened to no group here (make check "
		       "opens it to cowguard in its unprivileged lane)");
		return false;
	}
	*dev_gid = st.st_gid;
	return true;
}

START_TEST(clients_in_a_pid_and_user_namespace_are_served)
{
	static const char *const names[] = {
		"a pid namespace", "a user and pid namespace",
		"a user and pid namespace, as nobody in the device's group",
	};
	enum ns_case c = (enum ns_case)_i;
	struct cg__status_client sc;
	char line[512], buf[32];
	static struct spawned sp;
	int ns_pid, reg, pin, unpin, query, status;
	gid_t dev_gid = 0;
	pid_t helper_pid, child;

	if (!case_runs(c, &dev_gid))
		return;
	spawn(&sp, c, dev_gid);
	if (!next_line(&sp, 'P', line, sizeof(line))) {
		kill(sp.unshare, SIGKILL);
		finish(&sp);
		ck_abort_msg("%s: the helper said nothing", names[c]);
	}
	if (strncmp(line, "unshare:", 8) == 0) {
		finish(&sp);
		h_skip("%s: %s", names[c], line);
		return;
	}
	ck_assert_msg(sscanf(line, "P %d %d %d %d", &ns_pid, &reg, &pin, &unpin) == 4,
		      "%s: the helper said %s", names[c], line);
	ck_assert_msg(ns_pid == 1 && reg == 0 && pin == 0 && unpin == 0,
		      "%s: the helper, pid %d there: register %d, pin %d, "
		      "unpin %d", names[c], ns_pid, reg, pin, unpin);
	ck_assert_ptr_nonnull(next_line(&sp, 'C', line, sizeof(line)));
	ck_assert_msg(sscanf(line, "C %d %d %d", &query, &pin, &unpin) == 3 &&
		      query == 0 && pin == 0 && unpin == 0,
		      "%s: the forked child: %s", names[c], line);
	/* Our pids for them: their pids in there differ. */
	helper_pid = child_of(sp.unshare);
	ck_assert_int_gt(helper_pid, 1);
	child = child_of(helper_pid);
	ck_assert_int_gt(child, 0);
	ck_assert_msg(h_status_client(child, &sc) == 1 &&
		      sc.parent_pid == (int64_t)helper_pid,
		      "%s: the child %d is not named as a child of %d", names[c],
		      (int)child, (int)helper_pid);
	/* Now a child names the helper by our pid, not its own. */
	snprintf(buf, sizeof(buf), "%d\n", (int)helper_pid);
	ck_assert_int_eq(write(sp.in, buf, strlen(buf)), (ssize_t)strlen(buf));
	ck_assert_ptr_nonnull(next_line(&sp, 'H', line, sizeof(line)));
	ck_assert_int_eq(sscanf(line, "H %d", &status), 1);
	ck_assert_msg(status == -ESRCH, "%s: a CHILD_HELLO naming %d, the helper's "
		      "pid in the daemon's namespace: %d (%s), not -ESRCH",
		      names[c], (int)helper_pid, status, cg_strerror(status));
	ck_assert_int_eq(finish(&sp), 0);
}
END_TEST

int main(int argc, char **argv)
{
	Suite *s;
	TCase *tc;

	if (argc == 3 && strcmp(argv[1], HELPER_ARG) == 0)
		return helper(argv[2]);
	s = suite_create("clients in a pid and user namespace are served");
	tc = tcase_create("namespaces");
	h_timeout(tc, 60);
	h_add_loop(tc, clients_in_a_pid_and_user_namespace_are_served, NS_CASES);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
