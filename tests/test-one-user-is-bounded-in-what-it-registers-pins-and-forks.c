// SPDX-License-Identifier: MIT
/*
 * What one user makes cowguardd hold is bounded across all of that user's
 * clients and their adopted children, not per client (issue 11, row 6):
 * registered bytes (--max-user-bytes), pins (--max-user-pins), unnamed
 * children (--max-user-children) and the daemon's memory
 * (--max-user-memory).  Each refusal is a specific errno, -EDQUOT or
 * -ENOSPC (memory), and one line in the log.
 *
 * The clients here are root's, whose bound is 4 times each option (root's
 * services share one uid): each case starts a daemon of its own with one
 * option set, and two clients of the same user share the bound.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define ROOT_FACTOR 4

static pid_t daemon_with(char *path, size_t size, const char *name,
			 const char *opt, const char *val)
{
	pid_t d;

	snprintf(path, size, "%s.%s", h_socket(), name);
	d = h_daemon_start_opt(path, opt, val);
	ck_assert_int_gt(d, 0);
	return d;
}

static struct cg *open_at(const char *path)
{
	struct cg_options o = { CG_MODE_DAEMON, path };
	struct cg *cg;

	ck_assert_int_eq(cg_open(&o, sizeof(o), &cg), 0);
	return cg;
}

static void *reserve(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	ck_assert(p != MAP_FAILED);
	return p;
}

/* Log lines are written as they happen; give the daemon a moment. */
static int lines(const char *path, const char *text)
{
	struct timespec t = { 0, 50 * 1000 * 1000 };

	nanosleep(&t, NULL);
	return h_log_lines(path, text);
}

START_TEST(registered_bytes_are_bounded_across_the_clients_of_one_user)
{
	size_t bound = ROOT_FACTOR * 64 * MIB, half = bound / 2;
	struct cg *a, *b;
	char path[256];
	char *p, *q, *r;
	pid_t d;

	if (!h_have_own_daemon("starts daemons with small quotas"))
		return;
	d = daemon_with(path, sizeof(path), "bytes", "--max-user-bytes", "64M");
	a = open_at(path);
	b = open_at(path);
	p = reserve(half);
	q = reserve(half);
	r = reserve(4096);
	ck_assert_int_eq(cg_register(a, p, half, 0), 0);
	ck_assert_int_eq(cg_register(b, q, half, 0), 0);
	/* Each client is far below any per-client bound; the user is at its. */
	ck_assert_int_eq(cg_register(b, r, 4096, 0), -EDQUOT);
	ck_assert_int_eq(lines(path, "(--max-user-bytes)"), 1);
	/* What one client gives back, another may take. */
	ck_assert_int_eq(cg_unregister(a, p, half), 0);
	ck_assert_int_eq(cg_register(b, r, 4096, 0), 0);
	cg_close(a);
	cg_close(b);
	munmap(p, half);
	munmap(q, half);
	munmap(r, 4096);
	ck_assert_int_eq(h_daemon_stop(d), 0);
}
END_TEST

START_TEST(pins_are_bounded_across_the_clients_of_one_user)
{
	int max = ROOT_FACTOR * 2, made = 0;
	struct cg_pin *pins[ROOT_FACTOR * 2 + 1];
	struct cg *cg[2];
	char path[256];
	char *p = h_map(H_4K, 16 * 4096, 'p');
	pid_t d;

	if (!h_have_own_daemon("starts daemons with small quotas"))
		return;
	d = daemon_with(path, sizeof(path), "pins", "--max-user-pins", "2");
	for (int i = 0; i < 2; i++) {
		cg[i] = open_at(path);
		ck_assert_int_eq(cg_register(cg[i], p + i * 8 * 4096, 8 * 4096, 0), 0);
	}
	/* Taken in turns by the two clients: the bound is the user's. */
	for (; made < max; made++)
		ck_assert_int_eq(cg_pin(cg[made % 2], p + (made % 2) * 8 * 4096,
					4096, CG_PIN_RO, &pins[made]), 0);
	ck_assert_int_eq(cg_pin(cg[0], p, 4096, CG_PIN_RO, &pins[made]), -EDQUOT);
	ck_assert_int_eq(cg_pin(cg[1], p + 8 * 4096, 4096, CG_PIN_RO, &pins[made]),
			 -EDQUOT);
	/* Two refusals within a second: one line, the second counted. */
	ck_assert_int_eq(lines(path, "(--max-user-pins)"), 1);
	ck_assert_int_eq(cg_unpin(pins[0]), 0);
	ck_assert_int_eq(cg_pin(cg[0], p, 4096, CG_PIN_RO, &pins[0]), 0);
	for (int i = 0; i < made; i++)
		ck_assert_int_eq(cg_unpin(pins[i]), 0);
	cg_close(cg[0]);
	cg_close(cg[1]);
	munmap(p, 16 * 4096);
	ck_assert_int_eq(h_daemon_stop(d), 0);
}
END_TEST

/*
 * Children that never name themselves (a raw fork runs no atfork handler)
 * hold the daemon's state until they exit: the user's bound refuses the
 * one past it, before any copy is made, and the refused child's memory
 * goes untracked.
 */
START_TEST(unnamed_children_are_bounded_for_one_user)
{
	int max = ROOT_FACTOR * 1, go[2];
	pid_t kids[ROOT_FACTOR * 1 + 1], d;
	char path[256];
	char *p = h_map(H_4K, 64 * 4096, 'c');
	struct cg *cg;

	if (!h_have_own_daemon("starts daemons with small quotas"))
		return;
	d = daemon_with(path, sizeof(path), "children", "--max-user-children", "1");
	cg = open_at(path);
	ck_assert_int_eq(cg_register(cg, p, 64 * 4096, 0), 0);
	ck_assert_int_eq(pipe(go), 0);
	for (int i = 0; i <= max; i++) {
		kids[i] = (pid_t)syscall(SYS_fork);
		if (kids[i] == 0) {
			char b;

			close(go[1]);
			_exit(read(go[0], &b, 1) == 1 ? 0 : 2);
		}
		ck_assert_int_gt(kids[i], 0);
	}
	ck_assert_int_eq(lines(path, "(--max-user-children)"), 1);
	ck_assert_int_eq(lines(path, "adopted its child"), max);
	ck_assert_int_eq(write(go[1], "gggggggg", (size_t)max + 1), max + 1);
	close(go[1]);
	for (int i = 0; i <= max; i++)
		ck_assert_int_eq(h_wait(kids[i]), 0);
	close(go[0]);
	cg_close(cg);
	munmap(p, 64 * 4096);
	ck_assert_int_eq(h_daemon_stop(d), 0);
}
END_TEST

/*
 * The daemon's memory for a registration is mostly its table of 2 MiB
 * chunks, 16 bytes each, whether any page is there or not: a 768 GiB
 * reservation is 6 MiB of it, over root's 4 MiB here.  Refused with
 * -ENOSPC before anything is made; a small one still goes.
 */
START_TEST(the_daemons_memory_for_one_user_is_bounded)
{
	size_t huge = 768 * GIB;
	char path[256];
	char *p, *q;
	struct cg *cg;
	pid_t d;

	if (!h_have_own_daemon("starts daemons with small quotas"))
		return;
	d = daemon_with(path, sizeof(path), "memory", "--max-user-memory", "1M");
	cg = open_at(path);
	p = mmap(NULL, huge, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		h_skip("cannot reserve 768 GiB of address space here");
		cg_close(cg);
		h_daemon_stop(d);
		return;
	}
	q = reserve(16 * MIB);
	ck_assert_int_eq(cg_register(cg, p, huge, 0), -ENOSPC);
	ck_assert_int_eq(lines(path, "(--max-user-memory)"), 1);
	ck_assert_int_eq(cg_register(cg, q, 16 * MIB, 0), 0);
	cg_close(cg);
	munmap(p, huge);
	munmap(q, 16 * MIB);
	ck_assert_int_eq(h_daemon_stop(d), 0);
}
END_TEST

/*
 * A pin is made a 2 MiB window at a time (lib/engine/pins.c): what it takes while
 * it is made is a window's worth, whatever its size, and a pin of 96 MiB
 * goes under root's 1 MiB here.  Before windows it took 56 bytes a page
 * (1.3 MiB here), and it was counted against the bound.
 */
START_TEST(a_pin_of_much_memory_takes_a_windows_worth_while_it_is_made)
{
	size_t len = 96 * MIB;
	char *p = reserve(len);
	struct cg_pin *pin;
	char path[256];
	struct cg *cg;
	pid_t d;

	if (!h_have_own_daemon("starts daemons with small quotas"))
		return;
	d = daemon_with(path, sizeof(path), "pin-memory", "--max-user-memory",
			"256K");
	cg = open_at(path);
	memset(p, 'p', len);
	ck_assert_int_eq(cg_register(cg, p, len, 0), 0);
	ck_assert_int_eq(cg_pin(cg, p, len, CG_PIN_RO, &pin), 0);
	ck_assert_int_eq(lines(path, "(--max-user-memory)"), 0);
	ck_assert_int_eq(cg_unpin(pin), 0);
	cg_close(cg);
	munmap(p, len);
	ck_assert_int_eq(h_daemon_stop(d), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("one user is bounded in what it registers, pins "
				"and forks");
	TCase *tc = tcase_create("per-user quotas");

	h_timeout(tc, 60);
	h_add(tc, registered_bytes_are_bounded_across_the_clients_of_one_user);
	h_add(tc, pins_are_bounded_across_the_clients_of_one_user);
	h_add(tc, unnamed_children_are_bounded_for_one_user);
	h_add(tc, the_daemons_memory_for_one_user_is_bounded);
	h_add(tc, a_pin_of_much_memory_takes_a_windows_worth_while_it_is_made);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
