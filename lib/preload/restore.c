// SPDX-License-Identifier: MIT
/*
 * `cowguard-run --restore IMAGE`: the program starts on the memory of a
 * snapshot.  Before main(), the image's regions are mapped back where
 * they were and filled lazily (cg_restore_start(): a fault is served at
 * once, the rest copied in meanwhile); a thread of the shim waits for the
 * fill and logs it.  For programs whose state lives at addresses of their
 * own choosing (an arena at a fixed address): the program finds the
 * region there already (MAP_FIXED_NOREPLACE fails with EEXIST).
 *
 * The image is checked whole before anything is mapped.  A program whose
 * memory cannot come back never runs: the shim says why on stderr and
 * exits 126.  What it execs, and its children's execs, start afresh.
 * The fill needs the image's fd and the library's uffd until it is done:
 * a program that closes every fd as it starts would read zeros where the
 * fill had not come, so the program's closes leave them open (guard.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cowguard.h"
#include "preload.h"
#include "restore.h"

struct waiter {
	struct cg_restore *r;
	int fd;
	char path[PATH_MAX];
};

static void *wait_fill(void *arg)
{
	struct waiter *w = arg;
	struct cg_restore_info info = { 0 };
	int ret;

	/* Ours: its closes of the guarded descriptors go through. */
	cg__shim_enter_thread();
	ret = cg_restore_wait(w->r, &info, sizeof(info));

	if (ret)
		cg__shim_log("restore of %s: %s", w->path, cg_strerror(ret));
	else
		cg__shim_log("restored %s: %llu KiB in %llu regions, %llu "
			     "faults served, the first after %.2f ms, all in "
			     "after %.2f ms", w->path,
			     (unsigned long long)info.restored_bytes / 1024,
			     (unsigned long long)info.regions,
			     (unsigned long long)info.faults,
			     info.first_fault_ns / 1e6, info.drain_ns / 1e6);
	close(w->fd);
	free(w);
	return NULL;
}

static void refuse(const char *path, const char *why)
{
	dprintf(STDERR_FILENO, "cowguard-run: cannot restore %s: %s; the "
		"program does not run\n", path, why);
	_exit(126);
}

void cg__shim_restore(void)
{
	const char *env = getenv("COWGUARD_RESTORE");
	struct waiter *w;
	pthread_attr_t attr;
	pthread_t t;
	int ret;

	if (!env || !*env)
		return;
	w = calloc(1, sizeof(*w));
	if (!w)
		refuse(env, strerror(ENOMEM));
	snprintf(w->path, sizeof(w->path), "%s", env);
	unsetenv("COWGUARD_RESTORE");
	w->fd = open(w->path, O_RDONLY | O_CLOEXEC);
	if (w->fd < 0)
		refuse(w->path, strerror(errno));
	ret = cg_restore_start(NULL, w->fd, 0, &w->r);
	if (ret)
		refuse(w->path, cg_strerror(ret));
	/* Kept from a program that closes what it did not open (guard.c). */
	if (cg__shim_guard(w->fd) || cg__shim_guard(cg__restore_uffd(w->r)))
		cg__shim_log("restore of %s: its descriptors are not guarded",
			     w->path);
	pthread_atfork(NULL, NULL, cg__shim_unguard_all);
	/* The program may be done before the fill: say it began. */
	cg__shim_log("restoring %s: mapped, filled meanwhile", w->path);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	ret = pthread_create(&t, &attr, wait_fill, w);
	pthread_attr_destroy(&attr);
	/* The library's thread fills it all the same: only the log is lost. */
	if (ret)
		cg__shim_log("restore of %s: no thread to wait for it: %s",
			     w->path, strerror(ret));
}
