// SPDX-License-Identifier: MIT
/*
 * Programs built without any cowguard header or library (tests/apps/) run
 * with and without cowguard-run.  Without it, a vmsplice after fork hands
 * the pipe a page the parent's next write leaves behind (the control); with
 * it, the shim pins the page first (through the suite's daemon: tracked,
 * the containing mapping registered) or, with no daemon, unshares it, and
 * the pipe reads the new data.  Zero-copy sends hold their pin until the
 * completion is read; io_uring fixed buffers until they are unregistered.
 * The shim says what it did in COWGUARD_LOG's last line, which the cases
 * read.  --check names the hooks a program reaches; the shim is never in
 * the way of a program it cannot serve.
 */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "wire/protocol.h"

/* The control: the kernel alone, no shim. */
static const struct h_app stale_without = { "vmsplice-after-fork", "", NULL,
					      1, { NULL } };
static const struct h_app tracked = {
	"vmsplice-after-fork", "", "--mode daemon", 0,
	{ "pinned: vmsplice 1,", "mappings registered 1;", "held at exit" },
};
static const struct h_app tracked_syscall = {
	"vmsplice-after-fork", "--syscall", "--mode daemon", 0,
	{ "pinned: vmsplice 1,", "unprotected 0;" },
};
static const struct h_app tracked_heap = {
	"vmsplice-after-fork", "--malloc", "--mode daemon", 0,
	{ "pinned: vmsplice 1,", "unprotected 0;" },
};
static const struct h_app unshared = {
	"vmsplice-after-fork", "", "--mode embedded", 0,
	{ "pinned: vmsplice 0,", "unprotected 0;" },
};
static const struct h_app unshared_heap = {
	"vmsplice-after-fork", "--malloc", "--mode embedded", 0,
	{ "pinned: vmsplice 0,", "unprotected 0;" },
};
static const struct h_app zerocopy_done = {
	"zerocopy-send-after-fork", "", "--mode daemon", 0,
	{ "zerocopy 1,", "pins held at exit 0" },
};
static const struct h_app zerocopy_pending = {
	"zerocopy-send-after-fork", "--no-completion", "--mode daemon", 0,
	{ "zerocopy 1,", "pins held at exit 1" },
};
static const struct h_app zerocopy_mmsg = {
	"zerocopy-send-after-fork", "--sendmmsg", "--mode daemon", 0,
	{ "zerocopy 2,", "pins held at exit 0" },
};
static const struct h_app uring_liburing = {
	"uring-fixed-after-fork", "", "--mode daemon", 0,
	{ "uring 1,", "pins held at exit 0", "replaced while pinned 0;" },
};
static const struct h_app uring_syscall = {
	"uring-fixed-after-fork", "--syscall", "--mode daemon", 0,
	{ "uring 1,", "pins held at exit 0", "replaced while pinned 0;" },
};
/*
 * A fork while the pipe holds the page: the pin ends before it (no
 * MADV_DONTFORK, which would crash a child touching the rest of a malloc'd
 * page), and the pipe reads what the page held at the fork.
 */
static const struct h_app fork_while_spliced = {
	"vmsplice-after-fork", "--malloc --fork-while-spliced", "--mode daemon", 1,
	{ "pinned: vmsplice 1,", "pins ended by a fork 1;",
	  "replaced while pinned 0;" },
};
/*
 * An RDMA memory region, through ibv_reg_mr@IBVERBS_1.1 (what the
 * ibv_reg_mr() macro calls for constant access flags) and through
 * ibv_reg_mr_iova2: pinned before the registration, checked at
 * deregistration.  Needs a device: the guests' rxe0.
 */
static const struct h_app verbs_mr = {
	"verbs-mr-after-fork", "", "--mode daemon", 0,
	{ "verbs 1,", "replaced while pinned 0;", "pins held at exit 0" },
};
static const struct h_app verbs_mr_iova2 = {
	"verbs-mr-after-fork", "--iova2", "--mode daemon", 0,
	{ "verbs 1,", "replaced while pinned 0;", "pins held at exit 0" },
};
/* Only the hooks asked for run. */
static const struct h_app hooks_off = {
	"vmsplice-after-fork", "", "--mode daemon --hooks uring", 1,
	{ "pinned: vmsplice 0,", NULL },
};

static const struct h_case apps[] = {
	H_CASE_AS(without_the_shim_a_vmsplice_after_fork_reads_stale_data,
		  h_app_runs_as_said, &stale_without, 0, 0),
	H_CASE_AS(under_cowguard_run_the_pipe_reads_the_new_data_and_the_page_is_tracked,
		  h_app_runs_as_said, &tracked, 0, 0),
	H_CASE_AS(a_vmsplice_through_syscall_is_pinned_too,
		  h_app_runs_as_said, &tracked_syscall, 0, 0),
	H_CASE_AS(a_malloced_buffer_is_pinned_with_the_heap_registered,
		  h_app_runs_as_said, &tracked_heap, 0, 0),
	H_CASE_AS(without_a_daemon_the_shim_unshares_and_the_pipe_reads_the_new_data,
		  h_app_runs_as_said, &unshared, 0, 0),
	H_CASE_AS(without_a_daemon_a_malloced_buffer_is_unshared_too,
		  h_app_runs_as_said, &unshared_heap, 0, 0),
	H_CASE_AS(a_zero_copy_send_holds_its_pin_until_its_completion_is_read,
		  h_app_runs_as_said, &zerocopy_done, 0, 0),
	H_CASE_AS(a_zero_copy_send_whose_completion_is_never_read_keeps_its_pin,
		  h_app_runs_as_said, &zerocopy_pending, 0, 0),
	H_CASE_AS(each_message_of_a_zero_copy_sendmmsg_is_pinned_until_its_completion,
		  h_app_runs_as_said, &zerocopy_mmsg, 0, 0),
	H_CASE_AS(io_uring_fixed_buffers_are_pinned_until_unregistered,
		  h_app_runs_as_said, &uring_liburing, 0, 0),
	H_CASE_AS(io_uring_fixed_buffers_registered_by_syscall_are_pinned_too,
		  h_app_runs_as_said, &uring_syscall, 0, 0),
	H_CASE_AS(a_fork_while_the_pipe_holds_the_page_ends_the_pin_and_harms_no_child,
		  h_app_runs_as_said, &fork_while_spliced, 0, 0),
	H_CASE_AS(an_rdma_memory_region_is_pinned_and_checked_at_deregistration,
		  h_app_runs_as_said, &verbs_mr, 0, 0),
	H_CASE_AS(an_mr_registered_through_ibv_reg_mr_iova2_is_pinned_too,
		  h_app_runs_as_said, &verbs_mr_iova2, 0, 0),
	H_CASE_AS(a_hook_left_out_of_hooks_does_nothing,
		  h_app_runs_as_said, &hooks_off, 0, 0),
};

/*
 * The device itself reads the region back (RDMA READ on rxe0) and sees the
 * parent's write, with the shim and without it: every kernel here protects
 * this path itself (5.10's and 6.1's ib_umem_get() pin even a read-only MR
 * for writing, FOLL_FORCE, which breaks COW; 5.19+ unshares read-only
 * pins), so the case holds the shim to its own counters: both MRs pinned,
 * neither page replaced.
 */
START_TEST(an_rdma_read_sees_the_parents_write_and_the_shim_pinned_both_mrs)
{
	const struct h_app without = {
		"verbs-rdma-read-after-fork", "", NULL, 0, { NULL },
	};
	const struct h_app with = {
		"verbs-rdma-read-after-fork", "", "--mode daemon", 0,
		{ "verbs 2,", "replaced while pinned 0;", "pins held at exit 0" },
	};

	if (h_app_checked(&without, NULL))
		h_app_checked(&with, NULL);
}
END_TEST

/*
 * A command line under cowguard-run, with env before it (the daemon's
 * socket the suite's unless env names another): its output and status.
 * "APP:" at the start of cmd stands for tests/apps/ of the build.
 */
static struct h_run *run_shell(const char *env, const char *opts,
			       const char *cmd)
{
	struct h_run *out = malloc(sizeof(*out));
	bool app = !strncmp(cmd, "APP:", 4);

	ck_assert_ptr_nonnull(out);
	h_run_cmd(out, "COWGUARD_SOCKET='%s' %s %s/cowguard-run %s -- %s%s%s 2>&1",
		  h_socket(), env, h_builddir(), opts, app ? h_builddir() : "",
		  app ? "/tests/apps/" : "", app ? cmd + 4 : cmd);
	return out;
}

START_TEST(check_names_the_hooks_a_program_reaches)
{
	struct h_run *out;

	if (!h_preload_possible())
		return;
	out = run_shell("", "--check", "APP:vmsplice-after-fork");
	ck_assert_msg(out->status == 0 &&
		      strstr(out->out, "symbol vmsplice (vmsplice): reached") &&
		      strstr(out->out, "hook zerocopy: not reachable"),
		      "status %d: %s", out->status, out->out);
	free(out);
	out = run_shell("", "--check", "APP:uring-fixed-after-fork");
	ck_assert_msg(out->status == 0 &&
		      strstr(out->out, "symbol io_uring_register_buffers "
				       "(uring): reached") &&
		      strstr(out->out, "hook uring: reachable"),
		      "status %d: %s", out->status, out->out);
	free(out);
}
END_TEST

START_TEST(check_says_a_static_binary_cannot_be_hooked)
{
	struct h_run *out;

	if (!h_preload_possible())
		return;
	out = run_shell("", "--check", "APP:static-true");
	ck_assert_msg(out->status == 1 && strstr(out->out, "static binary"),
		      "status %d: %s", out->status, out->out);
	free(out);
}
END_TEST

START_TEST(common_tools_run_unchanged_under_cowguard_run)
{
	struct h_run *out;

	if (!h_preload_possible())
		return;
	out = run_shell("", "", "sh -c 'echo cowguard | tr a-z A-Z; ls / "
			"| grep -c . >/dev/null'");
	ck_assert_msg(out->status == 0 && !strcmp(out->out, "COWGUARD\n"),
		      "status %d: %s", out->status, out->out);
	free(out);
}
END_TEST

/*
 * Programs that fork and exec a lot, and pin nothing: a compiler, make
 * running two jobs at once, python, git.  They run as without the shim.
 */
START_TEST(compilers_make_python_and_git_run_unchanged_under_cowguard_run)
{
	char dir[] = "/tmp/cg-tools.XXXXXX", cmd[1024];
	struct h_run *out;

	if (!h_preload_possible())
		return;
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(cmd, sizeof(cmd), "sh -c 'cd %s && "
		 "printf \"int main(void) { return 0; }\\n\" > a.c && "
		 "cp a.c b.c && cp a.c c.c && "
		 "printf \"all: a b c\\n%%%%: %%%%.c\\n\\tgcc -o \\$@ \\$<\\n\" "
		 "> Makefile && make -s -j2 && ./a && ./b && ./c && echo built'",
		 dir);
	out = run_shell("", "", cmd);
	ck_assert_msg(out->status == 0 && strstr(out->out, "built"),
		      "make -j2 under cowguard-run: status %d: %s", out->status,
		      out->out);
	free(out);
	if (!system("command -v python3 >/dev/null 2>&1")) {
		out = run_shell("", "", "python3 -c 'import subprocess; "
				"print(subprocess.run([\"true\"]).returncode)'");
		ck_assert_msg(out->status == 0 && !strcmp(out->out, "0\n"),
			      "python3: status %d: %s", out->status, out->out);
		free(out);
	}
	if (!system("command -v git >/dev/null 2>&1")) {
		/* HOME there: the unprivileged lane's user may not read root's. */
		snprintf(cmd, sizeof(cmd), "sh -c 'cd %s && export HOME=$PWD && "
			 "git init -q && "
			 "git -c user.name=t -c user.email=t@t add a.c && "
			 "git -c user.name=t -c user.email=t@t commit -qm a && "
			 "git log --oneline | wc -l'", dir);
		out = run_shell("", "", cmd);
		ck_assert_msg(out->status == 0 && !strcmp(out->out, "1\n"),
			      "git: status %d: %s", out->status, out->out);
		free(out);
	}
	out = malloc(sizeof(*out));
	ck_assert_ptr_nonnull(out);
	h_run_cmd(out, "rm -rf '%s'", dir);
	free(out);
}
END_TEST

START_TEST(the_preload_is_inherited_unless_no_inherit_is_asked)
{
	struct h_run *out;

	if (!h_preload_possible())
		return;
	out = run_shell("", "", "sh -c 'echo \"[$LD_PRELOAD]\"'");
	ck_assert_msg(strstr(out->out, "libcowguard-preload.so]"), "%s", out->out);
	free(out);
	out = run_shell("LD_PRELOAD=", "--no-inherit", "sh -c 'echo \"[$LD_PRELOAD]\"'");
	ck_assert_msg(out->status == 0 && !strcmp(out->out, "[]\n"), "%s",
		      out->out);
	free(out);
}
END_TEST

/* Fail-open: no daemon, and no shim at all, leave the program working. */
START_TEST(a_program_runs_whatever_cowguard_cannot_do)
{
	struct h_run *out;

	if (!h_preload_possible())
		return;
	out = run_shell("COWGUARD_SOCKET=/nonexistent", "--mode daemon",
			"APP:vmsplice-after-fork");
	ck_assert_msg(out->status == 0 && strstr(out->out, "no cowguardd"),
		      "status %d: %s", out->status, out->out);
	free(out);
	out = run_shell("COWGUARD_PRELOAD=/nonexistent.so", "",
			"APP:vmsplice-after-fork");
	ck_assert_msg(out->status == 1 && strstr(out->out, "no preload shim"),
		      "status %d: %s", out->status, out->out);
	free(out);
	out = run_shell("COWGUARD_SOCKET=/nonexistent", "--mode daemon --strict",
			"APP:vmsplice-after-fork");
	ck_assert_msg(out->status == 128 + 6, "--strict without a daemon: "
		      "status %d, not SIGABRT: %s", out->status, out->out);
	free(out);
}
END_TEST

/*
 * fio, a real program that registers its buffers through syscall():
 * io_uring with fixed buffers (one per queue slot: 4) and O_DIRECT,
 * verified by CRC, runs through under the shim, which pinned them.  Its
 * jobs run as threads (--thread), so that the shim's line at exit counts
 * them (a job process ends by _exit).  fio closes the ring without
 * unregistering: the pins stay until exit (docs/preload.md).
 */
START_TEST(fio_with_io_uring_fixed_buffers_verifies_under_cowguard_run)
{
	char dir[PATH_MAX], log[PATH_MAX + 16];
	struct h_run *out;

	if (!h_preload_possible())
		return;
	if (system("command -v fio >/dev/null 2>&1")) {
		h_skip("no fio (make deps installs it)");
		return;
	}
	/*
	 * O_DIRECT wants a disk: $TMPDIR (the guests' scratch disk), else
	 * /var/tmp (the host's), else /tmp.
	 */
	snprintf(dir, sizeof(dir), "%s/cg-fio.XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/var/tmp");
	if (!mkdtemp(dir)) {
		snprintf(dir, sizeof(dir), "/tmp/cg-fio.XXXXXX");
		ck_assert_ptr_nonnull(mkdtemp(dir));
	}
	snprintf(log, sizeof(log), "%s/shim.log", dir);
	out = malloc(sizeof(*out));
	ck_assert_ptr_nonnull(out);
	h_run_cmd(out, "COWGUARD_SOCKET='%s' %s/cowguard-run --mode daemon "
		  "--log %s -- fio --name=cg --directory=%s --ioengine=io_uring "
		  "--fixedbufs --direct=1 --rw=write --bs=4k --size=2M "
		  "--iodepth=4 --verify=crc32c --do_verify=1 --verify_state_save=0 "
		  "--thread 2>&1; "
		  "echo status $?; cat %s", h_socket(), h_builddir(), log, dir, log);
	if (!strstr(out->out, "status 0\n") &&
	    strstr(out->out, "does not support")) {
		h_skip("%s takes no O_DIRECT here", dir);
	} else {
		ck_assert_msg(strstr(out->out, "status 0\n") &&
			      strstr(out->out, "uring 4,") &&
			      strstr(out->out, "replaced while pinned 0;"),
			      "%s", out->out);
		ck_assert_msg(!strstr(out->out, "verify: bad"), "%s", out->out);
	}
	free(out);
	out = run_shell("", "--check", "fio --version");
	ck_assert_msg(strstr(out->out, "symbol syscall (vmsplice, uring): "
				       "reached") &&
		      strstr(out->out, "hook uring: reachable"), "%s", out->out);
	free(out);
	out = malloc(sizeof(*out));
	ck_assert_ptr_nonnull(out);
	h_run_cmd(out, "rm -rf '%s'", dir);
	free(out);
}
END_TEST

/* The daemon lists a preloaded client with its hooks. */
/*
 * A preloaded process is listed with its hooks and the pins made through
 * each (the daemon counts the shim's pins by their names), in the raw
 * record and in cowguardctl's words.
 */
START_TEST(cowguardctl_status_shows_a_preloaded_process_its_hooks_and_its_pins)
{
	struct cg__status_client rec = { 0 };
	struct h_run *out;
	pid_t pid;
	int listed = 0;

	if (!h_preload_possible())
		return;
	out = malloc(sizeof(*out));
	ck_assert_ptr_nonnull(out);
	h_run_cmd(out, "COWGUARD_SOCKET='%s' %s/cowguard-run --hooks "
		  "vmsplice,uring -- %s/tests/apps/vmsplice-after-fork --linger "
		  ">/dev/null 2>&1 & echo $!", h_socket(), h_builddir(),
		  h_builddir());
	pid = (pid_t)atoi(out->out);
	ck_assert_int_gt(pid, 0);
	for (int ms = 0; ms < 5000 && !(listed == 1 && rec.preload_pins[0]);
	     ms += 20) {
		listed = h_status_client(pid, &rec);
		h_sleep_ms(20);
	}
	h_run_cmd(out, "%s --socket '%s' status", h_ctl_path(), h_socket());
	kill(pid, SIGTERM);
	ck_assert_msg(listed == 1 && rec.preload_hooks == (1u << 0 | 1u << 2),
		      "pid %d: listed %d, preload hooks %#llx", (int)pid, listed,
		      (unsigned long long)rec.preload_hooks);
	ck_assert_msg(rec.preload_pins[0] == 1 && rec.preload_pins[2] == 0,
		      "pins made: vmsplice %llu, uring %llu, not 1 and 0",
		      (unsigned long long)rec.preload_pins[0],
		      (unsigned long long)rec.preload_pins[2]);
	ck_assert_msg(strstr(out->out, "preload   vmsplice uring") &&
		      strstr(out->out, "pins made vmsplice 1 uring 0"),
		      "cowguardctl status: %s", out->out);
	free(out);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("programs unaware of cowguard are protected "
				"under cowguard-run");
	TCase *tc = tcase_create("apps");
	TCase *launcher = tcase_create("cowguard-run");

	h_timeout(tc, 60);
	h_timeout(launcher, 60);
	H_ADD_CASES(tc, apps);
	h_add(tc, an_rdma_read_sees_the_parents_write_and_the_shim_pinned_both_mrs);
	h_add(launcher, check_names_the_hooks_a_program_reaches);
	h_add(launcher, check_says_a_static_binary_cannot_be_hooked);
	h_add(launcher, common_tools_run_unchanged_under_cowguard_run);
	h_add(launcher, compilers_make_python_and_git_run_unchanged_under_cowguard_run);
	h_add(launcher, the_preload_is_inherited_unless_no_inherit_is_asked);
	h_add(launcher, a_program_runs_whatever_cowguard_cannot_do);
	h_add(launcher, cowguardctl_status_shows_a_preloaded_process_its_hooks_and_its_pins);
	h_add(launcher, fio_with_io_uring_fixed_buffers_verifies_under_cowguard_run);
	suite_add_tcase(s, tc);
	suite_add_tcase(s, launcher);
	return h_main(s, H_NEED_DAEMON);
}
