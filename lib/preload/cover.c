// SPDX-License-Identifier: MIT
/*
 * Registering memory the program never registered: on a pin, the
 * anonymous private mappings that hold the span, each whole, so that a
 * later fork or pin there finds it tracked.  A mapping registered before
 * and grown since gets its new part registered on its own.
 *
 * /proc/self/maps is read with raw system calls: the shim's own work must
 * not reach another library's hooks of open or read.  Not covered: file
 * mappings and shared memory (uffd-wp tracks private anonymous memory),
 * and the main thread's stack, which grows by faults of its own.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cowguard.h"
#include "preload.h"

#define MAX_COVERED 1024

/* What the shim registered: start, end of each range. */
static struct {
	pthread_mutex_t lock;
	uint64_t range[MAX_COVERED][2];
	size_t n;
} covered = { .lock = PTHREAD_MUTEX_INITIALIZER };

struct mapping {
	uint64_t start, end;
	bool anon;		/* private, anonymous (or private hugetlb) */
	bool stack;
};

/* One line of maps: "start-end perms offset dev inode [path]". */
static bool parse(const char *line, struct mapping *m)
{
	unsigned long long start, end, inode;
	char perms[5], path[64] = "";
	int n = sscanf(line, "%llx-%llx %4s %*x %*s %llu %63s", &start, &end,
		       perms, &inode, path);

	if (n < 4)
		return false;
	m->start = start;
	m->end = end;
	m->stack = !strcmp(path, "[stack]");
	m->anon = perms[3] == 'p' &&
		  (!inode || !strncmp(path, "/anon_hugepage", 14));
	return true;
}

/* The mapping that contains addr, from /proc/self/maps. */
static int find(uint64_t addr, struct mapping *out)
{
	char buf[8192], line[512];
	size_t have = 0;
	int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/maps",
			      O_RDONLY | O_CLOEXEC);
	int ret = -ENOENT;

	if (fd < 0)
		return -errno;
	for (;;) {
		long n = syscall(SYS_read, fd, buf + have, sizeof(buf) - have - 1);
		char *p = buf, *nl;

		if (n <= 0)
			break;
		have += (size_t)n;
		buf[have] = 0;
		while ((nl = memchr(p, '\n', have - (size_t)(p - buf)))) {
			size_t len = (size_t)(nl - p);

			memcpy(line, p, len < sizeof(line) ? len : sizeof(line) - 1);
			line[len < sizeof(line) ? len : sizeof(line) - 1] = 0;
			p = nl + 1;
			if (parse(line, out) && addr >= out->start &&
			    addr < out->end) {
				ret = 0;
				goto out;
			}
		}
		have -= (size_t)(p - buf);
		memmove(buf, p, have);
	}
out:
	syscall(SYS_close, fd);
	return ret;
}

/* The first part [*lo, *hi) of [start, end) the shim has not registered. */
static bool uncovered(uint64_t start, uint64_t end, uint64_t *lo, uint64_t *hi)
{
	*lo = start;
	for (size_t i = 0; i < covered.n && *lo < end; i++)
		if (covered.range[i][0] <= *lo && *lo < covered.range[i][1]) {
			*lo = covered.range[i][1];
			i = (size_t)-1;	/* ranges are unordered: look again */
		}
	if (*lo >= end)
		return false;
	*hi = end;
	for (size_t i = 0; i < covered.n; i++)
		if (covered.range[i][0] > *lo && covered.range[i][0] < *hi)
			*hi = covered.range[i][0];
	return true;
}

/* Register the parts of m the shim has not, under covered.lock. */
static int cover_mapping(struct cg *cg, const struct mapping *m)
{
	uint64_t lo, hi;
	int ret = 0;

	while (!ret && uncovered(m->start, m->end, &lo, &hi)) {
		if (covered.n == MAX_COVERED)
			return -EDQUOT;
		ret = cg_register(cg, (void *)(uintptr_t)lo, hi - lo, 0);
		if (!ret) {
			covered.range[covered.n][0] = lo;
			covered.range[covered.n][1] = hi;
			covered.n++;
			cg__shim_counts.registered++;
		}
	}
	return ret;
}

/* The end of the covered range holding addr, or addr when none does. */
static uint64_t covered_to(uint64_t addr)
{
	for (size_t i = 0; i < covered.n; i++)
		if (covered.range[i][0] <= addr && addr < covered.range[i][1])
			return covered.range[i][1];
	return addr;
}

int cg__cover(struct cg *cg, uint64_t addr, uint64_t len)
{
	uint64_t end = addr + len;
	int ret = 0;

	pthread_mutex_lock(&covered.lock);
	while (!ret && addr < end) {
		struct mapping m;

		/* Registered already: no need to read maps on every pin. */
		if (covered_to(addr) > addr) {
			addr = covered_to(addr);
			continue;
		}
		ret = find(addr, &m);
		if (!ret && (!m.anon || m.stack))
			ret = -ENOENT;
		if (!ret)
			ret = cover_mapping(cg, &m);
		if (!ret)
			addr = m.end;
	}
	pthread_mutex_unlock(&covered.lock);
	return ret;
}

void cg__uncover(uint64_t addr, uint64_t len)
{
	pthread_mutex_lock(&covered.lock);
	for (size_t i = 0; i < covered.n;) {
		if (covered.range[i][0] < addr + len && addr < covered.range[i][1]) {
			covered.n--;
			memcpy(covered.range[i], covered.range[covered.n],
			       sizeof(covered.range[i]));
		} else {
			i++;
		}
	}
	pthread_mutex_unlock(&covered.lock);
}
