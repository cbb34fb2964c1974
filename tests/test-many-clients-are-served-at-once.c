// SPDX-License-Identifier: MIT
/*
 * One daemon serves many clients at once, each with threads writing, a
 * fork and an audit, and keeps their states apart.  Bugs this catches:
 * state or faults crossing clients, a client starved or left blocked while
 * the daemon serves another, a daemon that cannot take the load.
 */
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"

#define CLIENTS 8
#define THREADS 3
#define LEN (4 * MIB)

struct writer {
	char *p;
	size_t off;
	char c;
};

/* Each thread writes every THREADS-th page of the region. */
static void *write_stripe(void *arg)
{
	struct writer *w = arg;

	for (size_t off = w->off; off < LEN; off += THREADS * 4096)
		w->p[off] = w->c;
	return NULL;
}

/* A whole client, in a child process: exit status says what went wrong. */
static int client(void *arg)
{
	int id = (int)(intptr_t)arg;
	struct cg_options o = { .mode = CG_MODE_DAEMON, .socket_path = h_socket() };
	struct writer w[THREADS];
	pthread_t t[THREADS];
	struct cg_audit_report a;
	struct cg_stats st;
	struct cg *cg;
	char *p = mmap(NULL, LEN, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	pid_t pid;

	if (p == MAP_FAILED || madvise(p, LEN, MADV_NOHUGEPAGE))
		return 10;
	memset(p, 'a', LEN);
	if (cg_open(&o, sizeof(o), &cg) || cg_register(cg, p, LEN, 0))
		return 11;
	/* A fork makes every page maybe-shared: writes must unshare them. */
	pid = fork();
	if (pid == 0)
		_exit(p[0] == 'a' ? 0 : 1);
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct writer){ p, (size_t)i * 4096, (char)('A' + id) };
		if (pthread_create(&t[i], NULL, write_stripe, &w[i]))
			return 12;
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	if (h_wait(pid))
		return 13;
	for (size_t off = 0; off < LEN; off += 4096)
		if (p[off] != 'A' + id || p[off + 1] != 'a')
			return 14;
	if (cg_audit(cg, p, LEN, &a, sizeof(a)) || a.unsafe || a.conservative)
		return 15;
	if (cg_stats(cg, &st, sizeof(st)) || st.wp_faults < LEN / 4096 || st.fork_events != 1)
		return 16;
	cg_close(cg);
	return 0;
}

START_TEST(eight_clients_writing_and_forking_at_once_are_all_served_apart)
{
	pid_t pids[CLIENTS];

	for (int i = 0; i < CLIENTS; i++)
		pids[i] = h_fork(client, (void *)(intptr_t)i);
	for (int i = 0; i < CLIENTS; i++) {
		int status = h_wait(pids[i]);

		ck_assert_msg(status == 0, "client %d exited %d", i, status);
	}
	ck_assert(h_status_gone(pids[0], 2000));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("many clients are served at once");
	TCase *tc = tcase_create("clients");

	h_timeout(tc, 60);
	h_add(tc, eight_clients_writing_and_forking_at_once_are_all_served_apart);
	suite_add_tcase(s, tc);
	return h_main(s, H_NEED_DAEMON);
}
