// SPDX-License-Identifier: MIT
/*
 * A user outside the cowguard group, who may have neither userfaultfd(2)
 * (no CAP_SYS_PTRACE) nor /dev/userfaultfd, gets -EPERM from cg_open in
 * every mode, and cg_strerror tells them what to do: join the group
 * "cowguard" that may open /dev/userfaultfd.  In daemon mode too: the
 * client creates the uffd, the daemon only negotiates it.
 *
 * Bugs this catches: falling back to a UFFD_USER_MODE_ONLY uffd (the
 * kernel grants one to anybody, and it turns read(2) into protected
 * memory into EFAULT), a generic errno or text that names no way out, a
 * daemon-mode open that succeeds or fails differently from embedded.
 *
 * The user is nobody, with no supplementary group, run through setpriv(1):
 * the test binary runs itself (through /proc/self/fd, so that the tree may
 * sit where nobody cannot look) with --open MODE SOCKET.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

#define OUTSIDER "nobody"
#define GROUP "cowguard"
#define REPORT_MAX 1024

static const enum cg_mode modes[] = { CG_MODE_DAEMON, CG_MODE_EMBEDDED,
				      CG_MODE_AUTO };
static const char *const mode_names[] = { "daemon", "embedded", "auto" };

/* The child, as the outsider: cg_open, then "<ret>\n<cg_strerror(ret)>". */
static int child_open(const char *mode, const char *sock)
{
	struct cg_options o = { .socket_path = sock };
	struct cg *cg = NULL;
	int ret;

	for (size_t i = 0; i < sizeof(modes) / sizeof(*modes); i++)
		if (strcmp(mode, mode_names[i]) == 0)
			o.mode = modes[i];
	ret = cg_open(&o, sizeof(o), &cg);
	printf("%d\n%s\n", ret, cg_strerror(ret));
	if (!ret)
		cg_close(cg);
	return 0;
}

/* Whether an outsider could have a full uffd anyway: then there is no test. */
static bool outsiders_are_refused(void)
{
	struct stat st;
	FILE *f = fopen("/proc/sys/vm/unprivileged_userfaultfd", "re");
	int v = 0;

	if (f) {
		if (fscanf(f, "%d", &v) != 1)
			v = 0;
		fclose(f);
	}
	if (v) {
		h_skip("vm.unprivileged_userfaultfd is %d: every user may have a "
		       "full userfaultfd", v);
		return false;
	}
	if (stat("/dev/userfaultfd", &st) == 0 && (st.st_mode & 0006) == 0006) {
		h_skip("/dev/userfaultfd is open to every user (mode %o)",
		       st.st_mode & 07777);
		return false;
	}
	return true;
}

/* Run ourselves as the outsider with --open; returns what it printed. */
static void run_as_outsider(const struct passwd *pw, const char *mode,
			    char *out, size_t len)
{
	char uid[16], gid[16], exe[32];
	int fds[2], self, status;
	size_t n = 0;
	ssize_t got;
	pid_t pid;

	self = open("/proc/self/exe", O_RDONLY);	/* kept over exec */
	ck_assert_int_ge(self, 0);
	snprintf(exe, sizeof(exe), "/proc/self/fd/%d", self);
	snprintf(uid, sizeof(uid), "--reuid=%u", (unsigned)pw->pw_uid);
	snprintf(gid, sizeof(gid), "--regid=%u", (unsigned)pw->pw_gid);
	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(fds[1], 1);
		dup2(fds[1], 2);
		execlp("setpriv", "setpriv", uid, gid, "--clear-groups",
		       "--inh-caps=-all", exe, "--open", mode, h_socket(),
		       (char *)NULL);
		printf("exec setpriv: %s\n", strerror(errno));
		_exit(127);
	}
	close(fds[1]);
	close(self);
	while (n < len - 1) {
		struct pollfd p = { .fd = fds[0], .events = POLLIN };

		if (poll(&p, 1, 10000) != 1)
			break;
		got = read(fds[0], out + n, len - 1 - n);
		if (got <= 0)
			break;
		n += (size_t)got;
	}
	out[n] = 0;
	close(fds[0]);
	status = h_wait(pid);
	ck_assert_msg(status == 0, "the child as %s exited %d: %s", pw->pw_name,
		      status, out);
}

START_TEST(cg_open_as_a_user_outside_the_group_is_eperm_and_says_which_group)
{
	const char *mode = mode_names[_i];
	char out[REPORT_MAX], *text;
	struct passwd *pw;
	int ret;

	if (!h_have_root("becomes " OUTSIDER " to call cg_open") ||
	    !outsiders_are_refused())
		return;
	pw = getpwnam(OUTSIDER);
	if (!pw) {
		h_skip("no user %s", OUTSIDER);
		return;
	}
	run_as_outsider(pw, mode, out, sizeof(out));
	text = strchr(out, '\n');
	ck_assert_msg(text && sscanf(out, "%d", &ret) == 1,
		      "%s mode: no report from the child: %s", mode, out);
	text++;
	ck_assert_msg(ret == -EPERM, "%s mode, as %s: cg_open returned %d (%s), "
		      "want -EPERM", mode, OUTSIDER, ret, text);
	ck_assert_msg(strstr(text, "group '" GROUP "'") &&
			      strstr(text, "/dev/userfaultfd"),
		      "%s mode: cg_strerror(-EPERM) names no group and device: %s",
		      mode, text);
	/* The parent's own text: the same call, the same words. */
	ck_assert_msg(strncmp(text, cg_strerror(-EPERM), strlen(cg_strerror(-EPERM))) == 0,
		      "%s mode: the child's text differs: %s", mode, text);
}
END_TEST

int main(int argc, char **argv)
{
	Suite *s;
	TCase *tc;

	if (argc == 4 && strcmp(argv[1], "--open") == 0)
		return child_open(argv[2], argv[3]);
	s = suite_create("user outside group gets a clear error");
	tc = tcase_create("outsider");
	h_timeout(tc, 20);
	h_add_loop(tc, cg_open_as_a_user_outside_the_group_is_eperm_and_says_which_group, sizeof(modes) / sizeof(*modes));
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
