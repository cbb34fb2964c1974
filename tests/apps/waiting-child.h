/* SPDX-License-Identifier: MIT */
/*
 * What the programs of tests/apps/ share, and nothing of cowguard: a child
 * that keeps its copy of the parent's buffer, so that the buffer's pages
 * stay COW-shared, until the parent lets it go; then it checks its copy.
 */
#ifndef CG_APPS_WAITING_CHILD_H
#define CG_APPS_WAITING_CHILD_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

struct waiting_child {
	pid_t pid;	/* -1: pipe or fork failed (errno says why) */
	int go;		/* the parent's end of the child's pipe */
};

/*
 * Fork the child.  Released (or orphaned: it holds no end of its pipe but
 * its own, so the parent's exit lets it go too), it exits 0 when the first
 * and the last byte of [p, p+len) still read 'A', 3 otherwise.
 */
static inline struct waiting_child waiting_child_start(const volatile char *p,
							size_t len)
{
	struct waiting_child w = { -1, -1 };
	int go[2];

	if (pipe(go))
		return w;
	w.pid = fork();
	if (w.pid == 0) {
		char c;

		close(go[1]);
		if (read(go[0], &c, 1) != 1)
			_exit(2);
		_exit(p[0] == 'A' && p[len - 1] == 'A' ? 0 : 3);
	}
	close(go[0]);
	w.go = go[1];
	return w;
}

/* Let the child go and reap it: its exit status, 128 + signal, or -1. */
static inline int waiting_child_end(struct waiting_child *w)
{
	int status;

	if (write(w->go, "g", 1) != 1 || waitpid(w->pid, &status, 0) != w->pid)
		return -1;
	close(w->go);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

#endif
