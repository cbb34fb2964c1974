// SPDX-License-Identifier: MIT
/*
 * A client killed without a word (SIGKILL) costs the daemon nothing after:
 * its connection's hang-up drops its record from STATUS and closes every fd
 * the daemon held for it (socket, uffd, pagemap).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "wire/protocol.h"

#define LEN (8 * MIB)

/* The client: register 8 MiB, say so, and wait to be killed. */
static int client_registers_and_waits(void *arg)
{
	int ready_wr = *(int *)arg;
	struct cg_options o = { .mode = CG_MODE_DAEMON, .socket_path = h_socket() };
	struct cg *cg;
	char *p;

	p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0);
	if (p == MAP_FAILED)
		return 2;
	memset(p, 'A', LEN);
	if (cg_open(&o, sizeof(o), &cg) || cg_register(cg, p, LEN, 0))
		return 3;
	if (write(ready_wr, "r", 1) != 1)
		return 4;
	for (;;)
		pause();
}

static int ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int)((t.tv_sec - t0->tv_sec) * 1000 +
		     (t.tv_nsec - t0->tv_nsec) / 1000000);
}

/* Wait up to ms for the daemon's fd count to come back to want. */
static int fd_count_settles(pid_t daemon, int want, int ms)
{
	struct timespec pause = { 0, 10 * 1000 * 1000 };
	int n = h_fd_count(daemon);

	for (int waited = 0; n != want && waited < ms; waited += 10) {
		nanosleep(&pause, NULL);
		n = h_fd_count(daemon);
	}
	return n;
}

START_TEST(a_sigkilled_client_leaves_no_record_and_no_fd_in_the_daemon)
{
	pid_t daemon = h_daemon_pid();
	struct cg__status_client sc;
	struct timespec killed;
	struct pollfd pfd;
	int ready[2], before, during, after;
	char c;
	pid_t pid;

	if (!h_have_own_daemon("counts the fds in the daemon's /proc/PID/fd"))
		return;
	/* Open the harness's STATUS connection first: it counts in both. */
	ck_assert_int_eq(h_status_client(getpid(), NULL), 0);
	before = h_fd_count(daemon);
	ck_assert_int_gt(before, 0);

	ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
	pid = h_fork(client_registers_and_waits, &ready[1]);
	close(ready[1]);
	pfd = (struct pollfd){ .fd = ready[0], .events = POLLIN };
	if (poll(&pfd, 1, 5000) != 1 || read(ready[0], &c, 1) != 1) {
		kill(pid, SIGKILL);
		ck_abort_msg("the client never registered (status %d)", h_wait(pid));
	}
	close(ready[0]);

	ck_assert_int_eq(h_status_client(pid, &sc), 1);
	ck_assert_uint_eq(sc.stats.registered_bytes, LEN);
	during = h_fd_count(daemon);
	ck_assert_msg(during > before, "the daemon holds %d fds with a client, "
		      "%d without", during, before);

	ck_assert_int_eq(kill(pid, SIGKILL), 0);
	clock_gettime(CLOCK_MONOTONIC, &killed);
	ck_assert_int_eq(h_wait(pid), 128 + SIGKILL);
	/* Both within 2 s of the kill. */
	ck_assert_msg(h_status_gone(pid, 2000 - ms_since(&killed)),
		      "killed client %d still listed after 2 s", (int)pid);
	after = fd_count_settles(daemon, before, 2000 - ms_since(&killed));
	ck_assert_msg(after == before, "daemon fds: %d before the client, %d "
		      "with it, %d 2 s after it was killed", before, during, after);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("killed client frees its state");
	TCase *tc = tcase_create("kill");

	h_timeout(tc, 15);
	h_add(tc, a_sigkilled_client_leaves_no_record_and_no_fd_in_the_daemon);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
