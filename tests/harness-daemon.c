// SPDX-License-Identifier: MIT
/* The test daemon and the programs around it: start, stop, ask, count. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "kernel/compat.h"
#include "harness.h"
#include "harness-internal.h"

const char *h_socket(void)
{
	return h__sock_path;
}

pid_t h_daemon_pid(void)
{
	return h__daemon_pid;
}

const char *h__external_socket(void)
{
	const char *s = getenv("CG_TEST_DAEMON_SOCKET");

	return s && *s ? s : NULL;
}

bool h_have_root(const char *what)
{
	if (geteuid() == 0)
		return true;
	h_skip("needs root: %s", what);
	return false;
}

bool h_have_own_daemon(const char *what)
{
	if (!h__external_socket())
		return true;
	h_skip("needs its own daemon: %s", what);
	return false;
}

struct cg *h_open(int mode)
{
	struct cg_options o = {
		.mode = mode == H_DAEMON ? CG_MODE_DAEMON : CG_MODE_EMBEDDED,
		.socket_path = h__sock_path[0] ? h__sock_path : NULL,
	};
	struct cg *cg = NULL;
	int ret = cg_open(&o, sizeof(o), &cg);

	ck_assert_msg(ret == 0, "cg_open(%s): %s", h_mode_name(mode),
		      cg_strerror(ret));
	ck_assert_int_eq(cg_mode(cg), o.mode);
	return cg;
}

bool h_wp_async(struct cg *cg)
{
	return cg_features(cg) & UFFD_FEATURE_WP_ASYNC;
}

bool h_write_after_fork_is_known_ours(struct cg *cg, void *addr)
{
	struct cg_audit_report rep;

	if (!h_wp_async(cg))
		return true;
	return !cg_audit(cg, addr, 4096, &rep, sizeof(rep)) &&
	       rep.truth == CG_TRUTH_KPAGEFLAGS;
}

bool h_thp_moves(struct cg *cg)
{
	return cg_features(cg) & UFFD_FEATURE_MOVE;
}

bool h_skip_if_async(struct cg *cg, const char *why)
{
	if (!h_wp_async(cg))
		return false;
	h_skip("asynchronous write protection: %s", why);
	return true;
}

int h_log_lines(const char *socket_path, const char *text)
{
	char log[256], *line = NULL;
	size_t cap = 0;
	int n = 0;
	FILE *f;

	snprintf(log, sizeof(log), "%s.log", socket_path);
	f = fopen(log, "re");
	ck_assert(f != NULL);
	while (getline(&line, &cap, f) > 0)
		n += strstr(line, text) != NULL;
	free(line);
	fclose(f);
	return n;
}

bool h_connectable(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	bool ok;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

pid_t h_daemon_start(const char *path)
{
	return h_daemon_start_opt(path, NULL, NULL);
}

pid_t h_daemon_start_opt(const char *path, const char *opt, const char *val)
{
	const char *dir = getenv("CG_BUILDDIR");
	char bin[256], log[256];
	struct timespec pause = { 0, 10 * 1000 * 1000 };
	pid_t pid;

	snprintf(bin, sizeof(bin), "%s/cowguardd", dir ? dir : "build");
	snprintf(log, sizeof(log), "%s.log", path);
	pid = fork();
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

		if (fd >= 0)
			dup2(fd, 2);
		execl(bin, bin, "--verbose", "--socket", path, opt, val,
		      (char *)NULL);
		fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
		_exit(127);
	}
	if (pid < 0)
		return -1;
	for (int i = 0; i < 500; i++) {
		if (h_connectable(path))
			return pid;
		if (waitpid(pid, NULL, WNOHANG) == pid)
			break;
		nanosleep(&pause, NULL);
	}
	fprintf(stderr, "harness: cowguardd (%s) did not come up; see %s\n", bin,
		log);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

int h_daemon_stop(pid_t pid)
{
	int status = 0;

	if (pid <= 0)
		return 0;
	kill(pid, SIGTERM);
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The STATUS connection, opened on first use and kept: see harness.h. */
static struct cg__client status_ctl = { .sock = -1 };

int h_status_client(pid_t pid, struct cg__status_client *out)
{
	struct cg__req req;
	struct cg__rep rep;
	int ret, found = 0;

	if (status_ctl.sock < 0) {
		ret = cg__client_open_ctl(&status_ctl, h__sock_path);
		if (ret)
			return ret;
	}
	cg__req_init(&req, CG_OP_STATUS);
	ret = cg__client_call(&status_ctl, &req, &rep);
	while (!ret && rep.rec != CG_REC_END) {
		if (rep.rec == CG_REC_CLIENT && rep.u.client.pid == pid) {
			found = 1;
			if (out)
				*out = rep.u.client;
		}
		ret = cg__client_next(&status_ctl, &rep);
	}
	if (ret) {
		cg__client_close(&status_ctl);
		return ret;
	}
	return rep.status ? rep.status : found;
}

bool h_status_gone(pid_t pid, int ms)
{
	struct timespec pause = { 0, 10 * 1000 * 1000 };

	for (int waited = 0; waited <= ms; waited += 10) {
		if (h_status_client(pid, NULL) == 0)
			return true;
		nanosleep(&pause, NULL);
	}
	return false;
}

int h_daemon_pin(pid_t pid, unsigned n, struct cg__status_pin *out)
{
	struct cg__client ctl;
	struct cg__req req;
	struct cg__rep rep;
	unsigned seen = 0;
	int ret = cg__client_open_ctl(&ctl, h__sock_path);

	if (ret)
		return ret;
	cg__req_init(&req, CG_OP_PINS);
	req.pid = pid;
	ret = cg__client_call(&ctl, &req, &rep);
	while (!ret && rep.rec != CG_REC_END) {
		if (rep.rec == CG_REC_PIN && seen++ == n && out)
			*out = rep.u.pin;
		ret = cg__client_next(&ctl, &rep);
	}
	cg__client_close(&ctl);
	if (ret)
		return ret;
	return rep.status ? rep.status : seen > n;
}

int h_fd_count(pid_t pid)
{
	char path[64];
	struct dirent *d;
	DIR *dir;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	dir = opendir(path);
	if (!dir)
		return -errno;
	while ((d = readdir(dir)))
		if (d->d_name[0] != '.')
			n++;
	closedir(dir);
	return n;
}

void h_run_cmd(struct h_run *r, const char *fmt, ...)
{
	char cmd[2048];
	size_t n = 0, got;
	va_list ap;
	FILE *f;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	f = popen(cmd, "r");
	ck_assert_msg(f != NULL, "popen %s", cmd);
	while (n < sizeof(r->out) - 1 &&
	       (got = fread(r->out + n, 1, sizeof(r->out) - 1 - n, f)) > 0)
		n += got;
	r->out[n] = 0;
	st = pclose(f);
	r->status = st < 0 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st)
						: 128 + WTERMSIG(st);
}

const char *h_ctl_path(void)
{
	static char path[256];
	const char *dir = getenv("CG_BUILDDIR");

	snprintf(path, sizeof(path), "%s/cowguardctl", dir ? dir : "build");
	return path;
}

bool h_have_python(void)
{
	if (system("command -v python3 >/dev/null 2>&1") == 0)
		return true;
	h_skip("no python3 to check the JSON with");
	return false;
}

/* A daemon that ended badly (a sanitizer report, a crash) fails the suite. */
int h__stop_suite_daemon(void)
{
	char cmd[256];
	int status = h_daemon_stop(h__daemon_pid);

	h__daemon_pid = 0;
	if (status == 0)
		return 0;
	fprintf(stderr, "harness: cowguardd exited with status %d; its log:\n",
		status);
	snprintf(cmd, sizeof(cmd), "cat '%s.log' >&2", h__sock_path);
	if (system(cmd))
		fprintf(stderr, "harness: no log\n");
	return 1;
}
