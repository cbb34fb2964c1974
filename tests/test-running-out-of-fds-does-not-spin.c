// SPDX-License-Identifier: MIT
/*
 * When cowguardd runs out of file descriptors, accept4() fails (EMFILE)
 * and the connection stays queued: the listener stays readable, and a
 * level-triggered loop would spin on it at 100% CPU for as long as the
 * connections wait.  The daemon here runs with a low RLIMIT_NOFILE and is
 * sent more connections than it can hold: it must stay (nearly) idle, say
 * so once, and serve a new client once the connections have gone.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define NOFILE 40		/* the daemon's RLIMIT_NOFILE, soft and hard */
#define CONNS 100		/* more than it can hold; below listen()'s 128 */
#define CPU_MAX_MS 200		/* of the daemon's CPU time over 1 s */

static void sleep_ms(int ms)
{
	struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&t, NULL);
}

static int dial(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	if (s < 0)
		return -errno;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa))) {
		close(s);
		return -errno;
	}
	return s;
}

/*
 * A cowguardd of our own whose RLIMIT_NOFILE (hard too: it raises the soft
 * one to the hard) is NOFILE, logging to path.log.
 */
static pid_t daemon_start_short_of_fds(const char *path)
{
	const char *dir = getenv("CG_BUILDDIR");
	struct rlimit rl = { NOFILE, NOFILE };
	char bin[256], log[256];
	pid_t pid;

	snprintf(bin, sizeof(bin), "%s/cowguardd", dir ? dir : "build");
	snprintf(log, sizeof(log), "%s.log", path);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

		if (fd < 0 || dup2(fd, 2) < 0 || setrlimit(RLIMIT_NOFILE, &rl))
			_exit(126);
		execl(bin, bin, "--verbose", "--socket", path, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500; i++) {
		int s = dial(path);

		if (s >= 0) {
			close(s);
			return pid;
		}
		sleep_ms(10);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	ck_abort_msg("cowguardd with %d fds did not come up; see %s", NOFILE, log);
	return -1;
}

/* The CPU time pid has used, user and system, in milliseconds. */
static long cpu_ms(pid_t pid)
{
	unsigned long utime, stime;
	char path[64], buf[1024], *p;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	ck_assert(f != NULL);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	/* Fields 14 and 15, counted after the ")" that ends the name. */
	p = strrchr(buf, ')');
	ck_assert(p != NULL);
	ck_assert_int_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u "
				"%*u %lu %lu", &utime, &stime), 2);
	return (long)((utime + stime) * 1000 / (unsigned long)sysconf(_SC_CLK_TCK));
}


/* A client registers, writes and queries: the daemon serves again. */
static bool served(const char *path)
{
	struct cg_options o = { CG_MODE_DAEMON, path };
	struct cg_page_info info;
	struct cg *cg = NULL;
	char *p = h_map(H_4K, 4 * 4096, 'A');
	bool ok;

	ck_assert(p != NULL);
	ok = !cg_open(&o, sizeof(o), &cg) && !cg_register(cg, p, 4 * 4096, 0);
	if (ok) {
		p[0] = 'B';
		ok = !cg_query(cg, p, &info, sizeof(info)) && info.dirty;
	}
	cg_close(cg);
	munmap(p, 4 * 4096);
	return ok;
}

START_TEST(a_daemon_out_of_fds_stays_idle_and_serves_again_after)
{
	int socks[CONNS], n = 0;
	char path[160];
	long before, used;
	bool ok = false;
	int said;
	pid_t d;

	if (!h_have_own_daemon("starts a daemon with a low RLIMIT_NOFILE"))
		return;
	snprintf(path, sizeof(path), "%s.nofile", h_socket());
	d = daemon_start_short_of_fds(path);
	for (n = 0; n < CONNS; n++) {
		socks[n] = dial(path);
		ck_assert_msg(socks[n] >= 0, "connection %d: %s", n,
			      strerror(-socks[n]));
	}
	sleep_ms(300);		/* it accepts what it can, and runs out */
	before = cpu_ms(d);
	sleep_ms(1000);
	used = cpu_ms(d) - before;
	printf("out of fds: the daemon used %ld ms of CPU in 1 s\n", used);
	fflush(stdout);
	said = h_log_lines(path, "out of file descriptors");
	for (int i = 0; i < n; i++)
		close(socks[i]);
	for (int ms = 0; !ok && ms < 3000; ms += 100) {
		ok = served(path);
		if (!ok)
			sleep_ms(100);
	}
	/* Stopped before any assertion, so that a failure leaves none behind. */
	ck_assert_int_eq(h_daemon_stop(d), 0);
	ck_assert_msg(used < CPU_MAX_MS, "the daemon used %ld ms of CPU in 1 s "
		      "while out of fds", used);
	ck_assert_msg(said == 1, "\"out of file descriptors\" logged %d times",
		      said);
	ck_assert_msg(ok, "no client was served after the connections closed");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("running out of fds does not spin");
	TCase *tc = tcase_create("out of fds");

	h_timeout(tc, 30);
	h_add(tc, a_daemon_out_of_fds_stays_idle_and_serves_again_after);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
