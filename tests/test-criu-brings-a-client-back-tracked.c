// SPDX-License-Identifier: MIT
/*
 * CRIU dumps a process that uses cowguard and restores it, in both modes,
 * with cowguard's plugin (lib/criu/, criu --libdir): the memory comes
 * back whole, tracked again, its history unknown (the first collect
 * reports every page, the next only what was written since), and the
 * audit is clean.  Without the plugin the dump is refused: CRIU takes
 * neither the engine's uffd nor the socket to cowguardd.
 *
 * The client is the test's binary run again (--client), a child of the
 * test: it stamps every page, registers, collects once, says "ready" and
 * waits for "go" (files: CRIU restores no pipe to a process outside the
 * dump), then checks all that and says what failed in its log.  The test
 * is its subreaper, so that it can wait for the restored process, which
 * criu restore -d leaves behind.
 *
 * Runs where `criu check` passes: the 6.1 and 5.10 guests; Debian's
 * criu 3.17 fails it on 6.18 ("Unexpected rt vDSO area bounds") and the
 * test says so and skips.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "wire/protocol.h"

#define PG 4096UL
#define PAGES 256
#define LEN (PAGES * PG)
#define STAMP 0x63726975ULL	/* "criu" */
#define WAIT_MS 120000
/* The client's status when told to quit, never restored. */
#define QUIT_STATUS 3

static bool exists(const char *dir, const char *name)
{
	char path[600];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return !access(path, F_OK);
}

static void touch(const char *dir, const char *name)
{
	char path[600];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
}

/* ---- the client ------------------------------------------------------------ */

static int client_fails(const char *what, int ret)
{
	printf("client: %s (%d)\n", what, ret);
	return 1;
}

static size_t reported(struct cg *cg, char *p, size_t *ranges, bool *has)
{
	struct cg_range out[PAGES];
	void *next;
	size_t total = 0;
	int n = cg_track_collect(cg, p, LEN, out, PAGES, &next);

	*ranges = n < 0 ? 0 : (size_t)n;
	for (int i = 0; i < n; i++) {
		total += out[i].len;
		if (has && (char *)out[i].addr <= p + 7 * PG &&
		    p + 7 * PG < (char *)out[i].addr + out[i].len)
			*has = true;
	}
	return n < 0 ? 0 : total;
}

/* What the restored client checks, once told to go on. */
static int after_restore(struct cg *cg, char *p)
{
	struct cg_audit_report a;
	bool has = false;
	size_t n, total;
	int ret;

	for (size_t i = 0; i < PAGES; i++)
		if (*(uint64_t *)(p + i * PG) != (STAMP << 16 | i))
			return client_fails("a page came back changed", (int)i);
	/* Its history is unknown: written, for all anyone knows. */
	total = reported(cg, p, &n, NULL);
	if (total != LEN)
		return client_fails("the first collect did not report every page", (int)(total / PG));
	p[7 * PG] = 1;
	total = reported(cg, p, &n, &has);
	if (!has || total >= LEN / 2)
		return client_fails("the next collect missed the write or reported too much",
			    (int)(total / PG));
	ret = cg_audit(cg, p, LEN, &a, sizeof(a));
	if (ret || a.unsafe || a.conservative)
		return client_fails("the audit is not clean", ret ? ret : (int)(a.unsafe + a.conservative));
	return 0;
}

static int client(int mode, const char *socket_path, const char *dir)
{
	struct cg_options o = { .mode = mode == H_DAEMON ? CG_MODE_DAEMON : CG_MODE_EMBEDDED,
				.socket_path = socket_path };
	struct cg *cg;
	size_t n;
	char *p;
	int ret;

	setvbuf(stdout, NULL, _IONBF, 0);
	p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return client_fails("mmap", -errno);
	for (size_t i = 0; i < PAGES; i++)
		*(uint64_t *)(p + i * PG) = STAMP << 16 | i;
	ret = cg_open(&o, sizeof(o), &cg);
	if (ret)
		return client_fails("cg_open", ret);
	ret = cg_register(cg, p, LEN, 0);
	if (ret)
		return client_fails("cg_register", ret);
	reported(cg, p, &n, NULL);
	touch(dir, "ready");
	for (int ms = 0; !exists(dir, "go"); ms += 10) {
		if (exists(dir, "quit"))
			return QUIT_STATUS;
		if (ms > WAIT_MS)
			return client_fails("never told to go on", 0);
		h_sleep_ms(10);
	}
	ret = after_restore(cg, p);
	cg_close(cg);
	if (!ret)
		printf("client: restored, tracked, audit clean\n");
	return ret;
}

/* ---- the test ---------------------------------------------------------------- */

static char plugin_dir[512];
/* Why criu cannot be tried here ("": it can), found once in main(). */
static char unusable[600];

/* The first error of a criu log in r->out, without its prefix. */
#define FIRST_ERROR(log)                                                      \
	"grep -v 'util.c.*exited' " log " | grep -m 1 Error | "                \
	"sed 's/^.*Error ([^)]*): //'"

/*
 * Whether criu, our plugin and `criu check` are here, and criu restores
 * a plain process (not on 5.10 with this userland: the restorer dies of
 * SIGSEGV, cowguard or not).  As root; once for all cells (a fixture
 * run in the parent, whose statics the cells inherit).
 */
static void criu_probe(void)
{
	struct h_run *r;

	if (geteuid())
		return;
	r = malloc(sizeof(*r));

	ck_assert_ptr_nonnull(r);
	snprintf(plugin_dir, sizeof(plugin_dir), "%s/criu", h_builddir());
	h_run_cmd(r, "command -v criu");
	if (r->status) {
		snprintf(unusable, sizeof(unusable), "no criu here (Debian's criu package)");
		goto out;
	}
	if (!exists(plugin_dir, "cowguard.so")) {
		snprintf(unusable, sizeof(unusable),
			 "no %s/cowguard.so: CRIU's plugin header was missing at build time",
			 plugin_dir);
		goto out;
	}
	/*
	 * What criu asks the kernel for and the guests do not load by
	 * themselves: socket diagnostics, and nftables for its network lock.
	 * Through the kernel's modprobe, which the guests point at their own
	 * module tree.
	 */
	h_run_cmd(r, "for m in unix_diag inet_diag tcp_diag udp_diag netlink_diag "
		  "packet_diag nf_tables nft_compat; do "
		  "\"$(cat /proc/sys/kernel/modprobe)\" -q $m; done 2>&1");
	h_run_cmd(r, "criu check >/tmp/cg-criu-check.$$ 2>&1; s=$?; "
		  FIRST_ERROR("/tmp/cg-criu-check.$$") "; rm -f /tmp/cg-criu-check.$$; exit $s");
	if (r->status) {
		r->out[strcspn(r->out, "\n")] = '\0';
		snprintf(unusable, sizeof(unusable), "`criu check` fails on this kernel: %.400s", r->out);
		goto out;
	}
	h_run_cmd(r, "d=$(mktemp -d) && cd \"$d\" || exit 1; "
		  "GLIBC_TUNABLES=glibc.pthread.rseq=0 setsid sleep 60 </dev/null >/dev/null 2>&1 & "
		  "p=$!; sleep 0.2; criu dump -t $p -D . -o d.log && "
		  "criu restore -d -D . -o r.log; s=$?; kill -9 $p 2>/dev/null; "
		  "[ $s = 0 ] || " FIRST_ERROR("[dr].log") "; cd / && rm -rf \"$d\"; exit $s");
	if (r->status) {
		r->out[strcspn(r->out, "\n")] = '\0';
		snprintf(unusable, sizeof(unusable),
			 "criu cannot dump and restore a plain process here: %.400s", r->out);
	}
out:
	free(r);
}

static bool criu_usable(void)
{
	if (*unusable)
		h_skip("%s", unusable);
	return !*unusable;
}

static void scratch_dir(char *dir, size_t len, const char *what)
{
	const char *base = getenv("CG_TEST_SCRATCH");
	struct h_run *r = malloc(sizeof(*r));

	ck_assert_ptr_nonnull(r);
	snprintf(dir, len, "%s/cg-criu-%s-%d", base ? base : "/tmp", what, (int)getpid());
	h_run_cmd(r, "rm -rf '%s' && mkdir -p '%s/img' '%s/no-plugins'", dir, dir, dir);
	ck_assert_int_eq(r->status, 0);
	free(r);
}

static void remove_dir(const char *dir)
{
	struct h_run *r = malloc(sizeof(*r));

	ck_assert_ptr_nonnull(r);
	h_run_cmd(r, "rm -rf '%s'", dir);
	free(r);
}

/*
 * Before 5.13 ptrace cannot read a thread's rseq registration, and criu
 * 3.17 refuses to dump one that has it (glibc 2.35+ registers every
 * thread): there the client runs without, as a user would have to.
 */
static bool rseq_hidden_from_ptrace(void)
{
	struct utsname u;
	int major = 0, minor = 0;

	return !uname(&u) && sscanf(u.release, "%d.%d", &major, &minor) == 2 &&
	       (major < 5 || (major == 5 && minor < 13));
}

/*
 * Run argv in a session of its own, its output in DIR/client.log and no
 * input (no terminal, no pipe: what CRIU dumps without --shell-job), and
 * wait until it makes the file DIR/ready_file.
 */
static pid_t spawn(const char *dir, char *const argv[], const char *ready_file)
{
	char log[600];
	pid_t pid = fork();
	int fd;

	ck_assert_int_ge(pid, 0);
	if (!pid) {
		setsid();
		snprintf(log, sizeof(log), "%s/client.log", dir);
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(126);
		fd = open("/dev/null", O_RDONLY);
		if (fd < 0 || dup2(fd, 0) < 0)
			_exit(126);
		if (rseq_hidden_from_ptrace())
			setenv("GLIBC_TUNABLES", "glibc.pthread.rseq=0", 1);
		execv(argv[0], argv);
		_exit(127);
	}
	for (int ms = 0; !exists(dir, ready_file); ms += 10) {
		int status;

		ck_assert_msg(waitpid(pid, &status, WNOHANG) == 0,
			      "%s ended before it made %s (status %#x)", argv[0],
			      ready_file, status);
		ck_assert_msg(ms < WAIT_MS, "%s never made %s", argv[0], ready_file);
		h_sleep_ms(10);
	}
	return pid;
}

/* The client is this program again, run with --client. */
static pid_t start_client(int mode, const char *dir)
{
	char m[16], *argv[] = { "/proc/self/exe", "--client", m, (char *)h_socket(),
				(char *)dir, NULL };

	snprintf(m, sizeof(m), "%d", mode);
	return spawn(dir, argv, "ready");
}

/* criu's exit status; its log's errors in r->out. */
static int criu(struct h_run *r, const char *dir, const char *verb,
		const char *args)
{
	h_run_cmd(r, "criu %s -D '%s/img' -o %s.log -v4 %s >/dev/null 2>&1; s=$?; "
		  "grep -E 'Error|Warn' '%s/img/%s.log' | tail -n 15; exit $s",
		  verb, dir, verb, args, dir, verb);
	return r->status;
}

static int wait_exit(pid_t pid)
{
	int status;

	for (int ms = 0; ms <= WAIT_MS; ms += 10) {
		pid_t got = waitpid(pid, &status, WNOHANG);

		if (got == pid)
			return status;
		ck_assert_int_ge(got, 0);
		h_sleep_ms(10);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	ck_abort_msg("the restored client never ended");
	return -1;
}

static void print_log(const char *dir)
{
	struct h_run *r = malloc(sizeof(*r));

	ck_assert_ptr_nonnull(r);
	h_run_cmd(r, "cat '%s/client.log'", dir);
	printf("%s", r->out);
	free(r);
}

/* Dump pid (which kills it) and restore it, with our plugin. */
static void dump_and_restore(const char *dir, pid_t pid)
{
	struct h_run *r = malloc(sizeof(*r));
	char args[1024];
	int status;

	ck_assert_ptr_nonnull(r);
	snprintf(args, sizeof(args), "-L '%s' -t %d", plugin_dir, (int)pid);
	if (criu(r, dir, "dump", args)) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		print_log(dir);
		ck_abort_msg("criu dump failed:\n%s", r->out);
	}
	/* Its pid must be free for the restore. */
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	snprintf(args, sizeof(args), "-L '%s' -d", plugin_dir);
	ck_assert_msg(!criu(r, dir, "restore", args), "criu restore failed:\n%s", r->out);
	free(r);
}

static void expect_exit(const char *dir, pid_t pid, int want)
{
	int status = wait_exit(pid);

	if (!WIFEXITED(status) || WEXITSTATUS(status) != want) {
		print_log(dir);
		ck_abort_msg("the client ended with status %#x, not exit %d: see its log above",
			     status, want);
	}
}

START_TEST(a_client_dumped_and_restored_by_criu_is_tracked_again)
{
	int mode = _i;
	char dir[512];
	pid_t pid;

	if (!h_have_root("criu dumps and restores as root") || !criu_usable())
		return;
	ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	scratch_dir(dir, sizeof(dir), h_mode_name(mode));
	pid = start_client(mode, dir);
	dump_and_restore(dir, pid);
	touch(dir, "go");
	expect_exit(dir, pid, 0);
	remove_dir(dir);
}
END_TEST

/* Whether the daemon lists pid, with a pin the shim made. */
static bool tracked_with_a_shim_pin(pid_t pid)
{
	struct cg__status_client c;
	uint64_t pins = 0;

	if (h_status_client(pid, &c) != 1 || !c.preload_hooks)
		return false;
	for (int i = 0; i < CG_PRELOAD_MAX_HOOKS; i++)
		pins += c.preload_pins[i];
	return pins > 0;
}

/*
 * The shim's handle is a daemon client's: the restored program's next pin
 * comes back to the daemon (and the shim has no tracking of its own in
 * embedded mode).
 */
START_TEST(a_program_under_the_preload_shim_is_tracked_again_after_criu)
{
	char dir[512], run[512], app[512];
	char *argv[] = { run, "--mode", "daemon", "--", app, dir, NULL };
	pid_t pid;

	if (!h_have_root("criu dumps and restores as root") || !criu_usable())
		return;
	if (!h_preload_possible())
		return;
	ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	scratch_dir(dir, sizeof(dir), "preload");
	snprintf(run, sizeof(run), "%s/cowguard-run", h_builddir());
	snprintf(app, sizeof(app), "%s/tests/apps/vmsplice-across-a-checkpoint", h_builddir());
	setenv("COWGUARD_SOCKET", h_socket(), 1);
	pid = spawn(dir, argv, "spliced-1");
	ck_assert_msg(tracked_with_a_shim_pin(pid), "the daemon does not track the program");
	dump_and_restore(dir, pid);
	/* The dumped one's connection went with it; the restored one has made none yet. */
	ck_assert_msg(h_status_gone(pid, 5000), "the daemon still lists the dumped program");
	touch(dir, "go");
	for (int ms = 0; !exists(dir, "spliced-2"); ms += 10) {
		ck_assert_msg(ms < WAIT_MS, "the restored program never spliced again");
		h_sleep_ms(10);
	}
	ck_assert_msg(tracked_with_a_shim_pin(pid),
		      "the daemon does not track the restored program");
	touch(dir, "quit");
	expect_exit(dir, pid, 0);
	remove_dir(dir);
}
END_TEST

START_TEST(without_the_plugin_criu_refuses_to_dump_a_client)
{
	int mode = _i, status;
	struct h_run *r = malloc(sizeof(*r));
	char dir[512], args[1024];
	pid_t pid;

	ck_assert_ptr_nonnull(r);
	if (!h_have_root("criu dumps as root") || !criu_usable())
		goto out;
	scratch_dir(dir, sizeof(dir), h_mode_name(mode));
	pid = start_client(mode, dir);
	snprintf(args, sizeof(args), "-L '%s/no-plugins' -t %d", dir, (int)pid);
	ck_assert_msg(criu(r, dir, "dump", args), "criu dumped a client without the plugin");
	ck_assert_msg(strstr(r->out, mode == H_DAEMON ? "External socket" : "userfaultfd"),
		      "criu refused for another reason:\n%s", r->out);
	/* The refused dump left the client running. */
	ck_assert_int_eq(waitpid(pid, &status, WNOHANG), 0);
	touch(dir, "quit");
	expect_exit(dir, pid, QUIT_STATUS);
	remove_dir(dir);
out:
	free(r);
}
END_TEST

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "--client"))
		return client(atoi(argv[2]), argv[3], argv[4]);

	Suite *s = suite_create("criu brings a client back tracked");
	TCase *tc = tcase_create("criu");

	h_timeout(tc, 300);
	tcase_add_unchecked_fixture(tc, criu_probe, NULL);
	h_add_modes(tc, a_client_dumped_and_restored_by_criu_is_tracked_again);
	h_add_modes(tc, without_the_plugin_criu_refuses_to_dump_a_client);
	h_add(tc, a_program_under_the_preload_shim_is_tracked_again_after_criu);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
