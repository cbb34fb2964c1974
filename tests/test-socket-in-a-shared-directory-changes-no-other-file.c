// SPDX-License-Identifier: MIT
/*
 * `cowguardd --socket PATH` in a directory others can write (/tmp, say):
 * root makes the socket there before it drops its capabilities, and
 * anyone may rename something else into PATH at any moment.  The daemon
 * must never act on PATH by name after bind(): a chmod(PATH) would follow
 * a symlink swapped in for the socket and make its target (/etc/shadow)
 * mode 0666.  The test makes that moment happen every time: it traces the
 * daemon (ptrace), stops it as bind() returns, swaps a symlink to a 0600
 * file in for the socket, and lets it run on.  The file must stay 0600.
 *
 * Also: the socket comes out srw-rw-rw- whatever umask the daemon was
 * started with (it is no longer chmod-ed after the fact), and a file that
 * is not a socket at PATH is neither removed nor replaced (the daemon
 * refuses to start) where it used to be unlinked.
 *
 * Bugs this catches: chmod(path) after bind(); unlink(path) of whatever
 * is there; a socket that comes out with the umask's mode.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define SECRET_MODE 0600

struct shared_dir {
	char dir[32];
	char sock[64];
	char secret[64];	/* a file the daemon must not touch */
};

static void shared_dir_make(struct shared_dir *d)
{
	int fd;

	snprintf(d->dir, sizeof(d->dir), "/tmp/cgshared.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(d->dir));
	/* As /tmp: anyone may create and rename here. */
	ck_assert_int_eq(chmod(d->dir, 01777), 0);
	snprintf(d->sock, sizeof(d->sock), "%s/cowguardd.sock", d->dir);
	snprintf(d->secret, sizeof(d->secret), "%s/secret", d->dir);
	fd = open(d->secret, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, SECRET_MODE);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "secret\n", 7), 7);
	close(fd);
	ck_assert_int_eq(chmod(d->secret, SECRET_MODE), 0);
}

static void shared_dir_remove(struct shared_dir *d)
{
	char cmd[64];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->dir);
	if (system(cmd))
		fprintf(stderr, "could not remove %s\n", d->dir);
}

static mode_t mode_of(const char *path, bool follow)
{
	struct stat st;

	ck_assert_msg((follow ? stat(path, &st) : lstat(path, &st)) == 0,
		      "stat %s: %s", path, strerror(errno));
	return st.st_mode;
}

/* The child: be traced from before exec on. */
static void exec_traced(const char *sock)
{
	const char *dir = getenv("CG_BUILDDIR");
	char bin[256], log[80];
	int fd;

	snprintf(bin, sizeof(bin), "%s/cowguardd", dir ? dir : "build");
	snprintf(log, sizeof(log), "%s.log", sock);
	fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0 || dup2(fd, 2) < 0 || ptrace(PTRACE_TRACEME, 0, 0, 0))
		_exit(126);
	raise(SIGSTOP);
	execl(bin, bin, "--verbose", "--socket", sock, (char *)NULL);
	_exit(127);
}

/*
 * Run the tracee from one syscall stop to the next until bind() returns;
 * returns false if it exits first.  sig is a signal to pass on.
 */
static bool run_to_bind_exit(pid_t pid)
{
	bool in_bind = false;
	int sig = 0, status;

	for (;;) {
		struct __ptrace_syscall_info info;

		ck_assert_int_eq(ptrace(PTRACE_SYSCALL, pid, 0, sig), 0);
		sig = 0;
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		if (WIFEXITED(status) || WIFSIGNALED(status))
			return false;
		if (WSTOPSIG(status) != (SIGTRAP | 0x80)) {
			/* The exec event, or a signal of its own to deliver. */
			if (status >> 8 != (SIGTRAP | (PTRACE_EVENT_EXEC << 8)))
				sig = WSTOPSIG(status);
			continue;
		}
		ck_assert_int_gt(ptrace(PTRACE_GET_SYSCALL_INFO, pid,
					(void *)sizeof(info), &info), 0);
		if (info.op == PTRACE_SYSCALL_INFO_ENTRY)
			in_bind = info.entry.nr == SYS_bind;
		else if (info.op == PTRACE_SYSCALL_INFO_EXIT && in_bind)
			return true;
	}
}

static bool log_says_listening(const char *sock)
{
	char log[80], buf[4096];

	snprintf(log, sizeof(log), "%s.log", sock);
	for (int ms = 0; ms < 5000; ms += 10) {
		struct timespec t = { 0, 10 * 1000 * 1000 };
		FILE *f = fopen(log, "re");
		size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

		if (f)
			fclose(f);
		buf[n] = 0;
		if (strstr(buf, "listening on"))
			return true;
		nanosleep(&t, NULL);
	}
	return false;
}

/* What someone with write access to the directory does: rename over it. */
static void swap_in_symlink(const struct shared_dir *d)
{
	char tmp[80];

	snprintf(tmp, sizeof(tmp), "%s/planted", d->dir);
	ck_assert_int_eq(symlink(d->secret, tmp), 0);
	ck_assert_int_eq(rename(tmp, d->sock), 0);
}

START_TEST(a_symlink_swapped_in_for_the_socket_after_bind_keeps_its_target_mode)
{
	struct shared_dir d;
	int status;
	pid_t pid;

	if (!h_have_own_daemon("traces a cowguardd of its own"))
		return;
	shared_dir_make(&d);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		exec_traced(d.sock);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFSTOPPED(status) && WSTOPSIG(status) == SIGSTOP);
	ck_assert_int_eq(ptrace(PTRACE_SETOPTIONS, pid, 0,
				PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACEEXEC |
				PTRACE_O_EXITKILL), 0);
	ck_assert_msg(run_to_bind_exit(pid), "cowguardd exited before bind()");
	ck_assert(S_ISSOCK(mode_of(d.sock, false)));
	swap_in_symlink(&d);
	ck_assert_int_eq(ptrace(PTRACE_DETACH, pid, 0, 0), 0);
	/* "listening on" comes after the chmod, if any. */
	ck_assert_msg(log_says_listening(d.sock), "cowguardd did not start; "
		      "see %s.log", d.sock);
	h_daemon_stop(pid);
	ck_assert_msg((mode_of(d.secret, true) & 07777) == SECRET_MODE,
		      "the file a symlink swapped in for the socket pointed to "
		      "became %04o (was %04o)", mode_of(d.secret, true) & 07777,
		      SECRET_MODE);
	shared_dir_remove(&d);
}
END_TEST

START_TEST(the_socket_is_open_to_all_whatever_the_umask)
{
	struct shared_dir d;
	mode_t old;
	pid_t pid;

	if (!h_have_own_daemon("starts a cowguardd of its own"))
		return;
	shared_dir_make(&d);
	old = umask(077);
	pid = h_daemon_start(d.sock);
	umask(old);
	ck_assert_int_gt(pid, 0);
	ck_assert_msg((mode_of(d.sock, false) & 0777) == 0666, "the socket is "
		      "%04o, want 0666", mode_of(d.sock, false) & 0777);
	ck_assert_int_eq(h_daemon_stop(pid), 0);
	shared_dir_remove(&d);
}
END_TEST

START_TEST(a_file_at_the_socket_path_is_not_removed)
{
	struct shared_dir d;
	pid_t pid;

	if (!h_have_own_daemon("starts a cowguardd of its own"))
		return;
	shared_dir_make(&d);
	ck_assert_int_eq(rename(d.secret, d.sock), 0);
	pid = h_daemon_start(d.sock);
	if (pid > 0)
		h_daemon_stop(pid);
	ck_assert_msg(S_ISREG(mode_of(d.sock, false)), "the file at the socket "
		      "path was replaced (cowguardd %s)",
		      pid > 0 ? "started on it" : "did not start");
	ck_assert_msg(pid < 0, "cowguardd started on a path that held a file");
	shared_dir_remove(&d);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("socket in a shared directory changes no other file");
	TCase *tc = tcase_create("shared");

	h_timeout(tc, 30);
	h_add(tc, a_symlink_swapped_in_for_the_socket_after_bind_keeps_its_target_mode);
	h_add(tc, the_socket_is_open_to_all_whatever_the_umask);
	h_add(tc, a_file_at_the_socket_path_is_not_removed);
	suite_add_tcase(s, tc);
	return h_main(s, 0);
}
