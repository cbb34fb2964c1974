/* SPDX-License-Identifier: MIT */
/*
 * engine-memory: what cowguardd keeps per tracked 4 KiB page (issue 14
 * asks at most 4 bits), for a 1 GiB region led through the states a
 * program gives its memory, step by step:
 *
 *   registered     nothing populated yet
 *   half written   every other 2 MiB written whole
 *   forked         a child keeps a copy: what was written is maybe-shared
 *   scattered      the parent writes every 3rd page of one 2 MiB in four:
 *                  those chunks hold pages of different states
 *   pinned         64 MiB of it pinned read-only
 *   unpinned       and unpinned: the pin's frames go with it
 *
 * After each step the daemon's engine memory for this client (cowguardctl
 * --json status: engine_memory_bytes, which counts the regions' state,
 * the frames of pinned units and the pins) over the region's 4 KiB pages,
 * in bits.  Needs cowguardd at $COWGUARD_SOCKET (make bench starts one).
 *
 * Run: engine-memory [--mib N]
 */
#include <errno.h>
#include <stdint.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "cowguard.h"

#define PAGE 4096UL
#define CHUNK (2 * MIB)

/* This client's engine memory, from cowguardctl; -1 if not listed. */
static long long engine_bytes(const char *ctl)
{
	char cmd[PATH_MAX + 64], out[1 << 16], key[32];
	size_t n;
	FILE *f;
	char *at;

	snprintf(cmd, sizeof(cmd), "%s --json status 2>/dev/null", ctl);
	f = popen(cmd, "r");
	if (!f)
		return -1;
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = 0;
	pclose(f);
	snprintf(key, sizeof(key), "\"pid\": %d,", (int)getpid());
	at = strstr(out, key);
	at = at ? strstr(at, "\"engine_memory_bytes\":") : NULL;
	return at ? strtoll(at + strlen("\"engine_memory_bytes\":"), NULL, 10)
		  : -1;
}

/* The most bits a page any step cost, for the target; -1: one was not seen. */
static double worst_bits;

static void step(const char *what, const char *ctl, size_t len)
{
	long long bytes = engine_bytes(ctl);
	double bits = (double)bytes * 8 / (double)(len / PAGE);

	if (bytes < 0) {
		printf("  %-14s (not listed by cowguardctl)\n", what);
		worst_bits = -1;
		return;
	}
	printf("  %-14s %12lld %10.3f\n", what, bytes, bits);
	if (worst_bits >= 0 && bits > worst_bits)
		worst_bits = bits;
}

/* The cowguardctl beside this program's build tree (build/bench/..). */
static void ctl_path(char *out, size_t size)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0) {
		snprintf(out, size, "cowguardctl");
		return;
	}
	self[n] = 0;
	snprintf(out, size, "%s/../cowguardctl", dirname(self));
}

static int walk(struct cg *cg, char *p, size_t len, const char *ctl)
{
	struct cg_pin *pin = NULL;
	int go[2];
	pid_t child;
	char c;

	step("registered", ctl, len);
	for (size_t off = 0; off < len; off += 2 * CHUNK)
		memset(p + off, 'A', CHUNK);
	step("half written", ctl, len);
	if (pipe(go))
		return 2;
	child = fork();
	if (child == 0) {
		close(go[1]);
		_exit(read(go[0], &c, 1) < 0);
	}
	close(go[0]);
	step("forked", ctl, len);
	for (size_t off = 0; off < len; off += 4 * CHUNK)
		for (size_t pg = 0; pg < CHUNK; pg += 3 * PAGE)
			p[off + pg] = 'B';
	step("scattered", ctl, len);
	if (cg_pin(cg, p, 64 * MIB < len ? 64 * MIB : len,
		   CG_PIN_RO, &pin) == 0)
		step("pinned", ctl, len);
	else
		printf("  pinned         (the pin failed)\n");
	if (pin) {
		/* The frames go with the pin: back to the page state alone. */
		cg_unpin(pin);
		step("unpinned", ctl, len);
	} else {
		worst_bits = -1;
	}
	close(go[1]);
	waitpid(child, NULL, 0);
	if (worst_bits < 0)
		printf("  target <= 4 bits/page: not measured (a step is "
		       "missing)\n");
	else
		printf("  target <= 4 bits/page: %s (at most %.3f)\n",
		       worst_bits <= 4 ? "met" : "MISSED", worst_bits);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mib", required_argument, NULL, 'm' },
		{ 0 },
	};
	struct cg_options o = { .mode = CG_MODE_DAEMON };
	size_t mib = 1024, len;
	char ctl[PATH_MAX];
	struct cg *cg;
	char *p;
	int c, ret;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1)
		if (c != 'm' || !bench_parse_size(optarg, 1 << 20, &mib) ||
		    mib < 8 || mib % 8) {
			fprintf(stderr, "usage: engine-memory [--mib N] (a "
				"multiple of 8)\n");
			return 2;
		}
	len = mib * MIB;
	ctl_path(ctl, sizeof(ctl));
	ret = cg_open(&o, sizeof(o), &cg);
	if (ret) {
		printf("engine-memory: no cowguardd at $COWGUARD_SOCKET (%s): "
		       "skipped\n", cg_strerror(ret));
		return 0;
	}
	/* 2 MiB aligned, so that chunks and the region's 2 MiB coincide. */
	p = mmap(NULL, len + CHUNK, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return 2;
	p = (char *)(((uintptr_t)p + CHUNK - 1) & ~(uintptr_t)(CHUNK - 1));
	ret = cg_register(cg, p, len, 0);
	if (ret) {
		printf("engine-memory: cg_register: %s\n", cg_strerror(ret));
		return 2;
	}
	printf("engine-memory: a %zu MiB region of 4 KiB pages, through "
	       "cowguardd\n", mib);
	printf("  %-14s %12s %10s\n", "step", "bytes", "bits/page");
	ret = walk(cg, p, len, ctl);
	cg_close(cg);
	return ret;
}
