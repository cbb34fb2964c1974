// SPDX-License-Identifier: MIT
/*
 * A client keeps a file of the uffd it hands over, and through it can set
 * traps for the one thread that serves every client:
 *
 *  - It clears O_NONBLOCK, which belongs to the open file it shares with
 *    the daemon.  The kernel then polls the uffd as an error, and a read
 *    racing the change sleeps until the client's next message.
 *  - It registers MODE_MISSING itself over memory the daemon will read to
 *    unshare (a uffd of its own, after unregistering ours), and drops the
 *    page.  The daemon's read faults there and waits, killable only, on a
 *    uffd whose messages nobody answers.
 *
 * The first is attacked end to end (the client is dropped with one log
 * line, another client's query is answered meanwhile), and its race
 * through the daemon's read (lib/kernel/uffd.c), which must return at once.  The second through the engine's
 * touch (lib/engine/touch.c), as the daemon sets it up: the read is given up and
 * the client named tampering, instead of a hang.
 *
 * Bugs these catch: issue 11 row 2 (the daemon in D state for good) and
 * its sibling through the uffd's file flags.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/touch.h"
#include "harness.h"
#include "kernel/procfs.h"
#include "kernel/uffd.h"
#include "wire.h"
#include "wire/protocol.h"

#define LEN (16 * 4096)
#define ANSWER_MAX_MS 1000.0	/* a bound, not a benchmark */

/* Whether the daemon closes s within ms. */
static bool dropped_within(int s, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	char b;

	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return read(s, &b, 1) <= 0 && errno != EAGAIN;
}

/*
 * A hostile client of its own, by the wire: LEN bytes mapped and written,
 * registered through a fresh uffd (to *uffd).  The socket, or -1.
 */
static int hostile_client(char **p, int *uffd)
{
	*p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		  -1, 0);
	if (*p == MAP_FAILED)
		return -1;
	memset(*p, 'H', LEN);
	return wire_client(h_socket(), *p, LEN, uffd);
}

/*
 * Run a hostile client (one of the functions below) in a child, which
 * returns 0 once the daemon dropped it, and wait for it: it must have been
 * dropped.  who says which client, in the failure message.
 */
static void hostile_child_is_dropped(int (*hostile)(void *), const char *who)
{
	int status = h_wait(h_fork(hostile, NULL));

	ck_assert_msg(status == 0, "%s was not dropped (child status %d)", who,
		      status);
}

static void *write_first_page(void *p)
{
	*(volatile char *)p = 'W';
	return NULL;
}

/*
 * The hostile client, in a child: 0 when the daemon dropped it.  The write
 * that makes the daemon look is a thread's: dropped, its fault is never
 * answered (we keep the uffd's file), and the thread dies with us.
 */
static int make_its_uffd_blocking(void *unused)
{
	pthread_t writer;
	char *p;
	int uffd, s = hostile_client(&p, &uffd);

	(void)unused;
	if (s < 0)
		return 3;
	if (fcntl(uffd, F_SETFL, fcntl(uffd, F_GETFL) & ~O_NONBLOCK))
		return 4;
	if (pthread_create(&writer, NULL, write_first_page, p))
		return 5;
	return dropped_within(s, 5000) ? 0 : 6;
}

START_TEST(a_client_that_makes_its_uffd_blocking_is_dropped)
{
	struct cg_options o = { CG_MODE_DAEMON, h_socket() };
	char *v = h_map(H_4K, LEN, 'V');
	struct cg_page_info info;
	struct cg *cg = NULL;
	double t0, took;

	ck_assert_int_eq(cg_open(&o, sizeof(o), &cg), 0);
	if (h_skip_if_async(cg, "the hostile client's write raises no message, "
			    "so there is no read for the trap to spring on")) {
		cg_close(cg);
		munmap(v, LEN);
		return;
	}
	ck_assert_int_eq(cg_register(cg, v, LEN, 0), 0);
	hostile_child_is_dropped(make_its_uffd_blocking,
				 "the client that made its uffd blocking");
	t0 = h_now_ms();
	ck_assert_int_eq(cg_query(cg, v, &info, sizeof(info)), 0);
	took = h_now_ms() - t0;
	ck_assert_msg(took < ANSWER_MAX_MS, "another client waited %.0f ms", took);
	/* The daemon of the unprivileged lane logs where we cannot read. */
	if (h_daemon_pid())
		ck_assert_int_eq(h_log_lines(h_socket(), "dropped: it made its "
					     "uffd blocking"), 1);
	cg_close(cg);
	munmap(v, LEN);
}
END_TEST

static void *read_first_page(void *p)
{
	(void)*(volatile char *)p;
	return NULL;
}

/* The hostile client, in a child: adds MODE_MISSING through its uffd. */
static int register_missing_through_its_uffd(void *unused)
{
	pthread_t reader;
	char *p;
	int uffd, s = hostile_client(&p, &uffd);

	(void)unused;
	if (s < 0)
		return 3;
	if (cg__uffd_register_mode(uffd, (uintptr_t)p, LEN,
				   UFFDIO_REGISTER_MODE_MISSING |
				   UFFDIO_REGISTER_MODE_WP) ||
	    madvise(p, 4096, MADV_DONTNEED))
		return 4;
	if (pthread_create(&reader, NULL, read_first_page, p))
		return 5;
	return dropped_within(s, 5000) ? 0 : 6;
}

START_TEST(a_client_that_registers_missing_faults_through_its_uffd_is_dropped)
{
	hostile_child_is_dropped(register_missing_through_its_uffd,
				 "the client that registered missing faults "
				 "through its uffd");
	if (h_daemon_pid())
		ck_assert_int_eq(h_log_lines(h_socket(), "dropped: it registered "
					     "modes of its own"), 1);
}
END_TEST

START_TEST(a_read_of_a_uffd_made_blocking_does_not_wait)
{
	int uffd = cg__uffd_create();
	char buf[sizeof(struct uffd_msg)];
	struct uffdio_api api = { .api = UFFD_API };
	double t0, took;
	ssize_t got;

	ck_assert_int_ge(uffd, 0);
	ck_assert_int_eq(ioctl(uffd, UFFDIO_API, &api), 0);
	ck_assert_int_eq(cg__uffd_bound_reads(), 0);
	ck_assert_int_eq(cg__uffd_read(uffd, buf, sizeof(buf)), 0);
	ck_assert_int_eq(fcntl(uffd, F_SETFL, 0), 0);
	t0 = h_now_ms();
	/* Nothing (RWF_NOWAIT, 6.6+), or found blocking (the timer). */
	got = cg__uffd_read(uffd, buf, sizeof(buf));
	took = h_now_ms() - t0;
	ck_assert_msg(got == 0 || got == -EPERM, "read: %zd", got);
	ck_assert_msg(took < ANSWER_MAX_MS, "returned after %.0f ms", took);
	close(uffd);
}
END_TEST

/*
 * The trap's client, in a child: a region registered MODE_MISSING on a
 * uffd of its own, its page absent.  Reports ready, then waits to be ended.
 */
static int set_missing_trap(void *p, int ready)
{
	struct uffdio_api api = { .api = UFFD_API };
	int uffd = cg__uffd_create();

	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) ||
	    cg__uffd_register_mode(uffd, (uintptr_t)p, LEN,
				   UFFDIO_REGISTER_MODE_MISSING) ||
	    madvise(p, LEN, MADV_DONTNEED))
		return 2;
	if (write(ready, "r", 1) != 1)
		return 3;
	pause();
	return 0;
}

START_TEST(a_read_that_waits_on_the_client_s_own_registration_is_given_up)
{
	char *p = h_map(H_4K, LEN, 'T');
	struct cg__mm *mm = calloc(1, sizeof(*mm));
	uint64_t addr = (uintptr_t)p + 4096;
	int pipefd[2];
	double t0, took;
	ssize_t got;
	pid_t child;
	char b;

	/* Our reader must reach a process that is not its descendant. */
	if (!h_have_root("process_vm_readv into a sibling (Yama)"))
		return;
	ck_assert_ptr_nonnull(mm);
	ck_assert_int_eq(pipe(pipefd), 0);
	child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0)
		_exit(set_missing_trap(p, pipefd[1]));
	ck_assert_int_eq(read(pipefd[0], &b, 1), 1);
	mm->pid = child;
	mm->uffd = mm->pagemap_fd = -1;
	mm->smaps_fd = cg__smaps_open(child);
	ck_assert_int_ge(mm->smaps_fd, 0);

	cg__touch_isolate();
	t0 = h_now_ms();
	got = cg__touch(mm, &addr, 1);
	took = h_now_ms() - t0;
	ck_assert_msg(got == -EPERM, "touch returned %zd, not -EPERM", got);
	ck_assert_ptr_nonnull(mm->tampered);
	ck_assert_msg(took < ANSWER_MAX_MS, "given up after %.0f ms", took);
	/* The next touch gets a new reader; the page is still a trap. */
	mm->tampered = NULL;
	ck_assert_int_eq(cg__touch(mm, &addr, 1), -EPERM);

	kill(child, SIGKILL);
	h_wait(child);
	close(mm->smaps_fd);
	free(mm);
	munmap(p, LEN);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("a client cannot make the daemon wait on it");
	TCase *tc = tcase_create("traps");

	h_timeout(tc, 20);
	h_add(tc, a_client_that_makes_its_uffd_blocking_is_dropped);
	h_add(tc, a_read_of_a_uffd_made_blocking_does_not_wait);
	h_add(tc, a_client_that_registers_missing_faults_through_its_uffd_is_dropped);
	h_add(tc, a_read_that_waits_on_the_client_s_own_registration_is_given_up);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
