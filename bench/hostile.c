/* SPDX-License-Identifier: MIT */
/*
 * hostile: what one client can make cowguardd spend, and what the others
 * feel meanwhile (issue 11, row 6).  A victim, another process registered
 * on its own, queries its pages every millisecond through the whole run;
 * its latencies while the daemon serves it alone are the baseline, and each
 * hostile phase is printed as a ratio to it:
 *
 *   pins      N overlapping pins of one populated 64 MiB range, then unpinned
 *   register  one MAP_NORESERVE region of --gib GiB, registered
 *   fork      F forks of that client (children stay alive), one at a time
 *
 * and, for each, the daemon's RSS growth (/proc/PID/status, VmRSS; the
 * daemon's pid from SO_PEERCRED) and how long the hostile client waited.
 * Needs the daemon at $COWGUARD_SOCKET, started with quotas that admit the
 * phases (scripts/run-bench.sh's daemon does).
 *
 * Run: hostile [--pins N] [--gib G] [--forks F] [--quick]
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "sysfile.h"
#include "cowguard.h"

#define PHASES 4
#define SAMPLES 20000
#define VICTIM_PAGES 1024
#define PIN_MIB 64

enum { PH_BASE, PH_PINS, PH_REGISTER, PH_FORK };
static const char *const phase_name[PHASES] = {
	"baseline (victim alone)", "overlapping pins", "huge registration",
	"forks of a big client",
};

/* Shared with the victim: the phase now, and its samples per phase (ms). */
struct shared {
	volatile int phase;		/* -1: stop */
	volatile int error;
	int n[PHASES];		/* a phase of PHASES or more: not recorded */
	double ms[PHASES][SAMPLES];
};

static double now_ms(void)
{
	return (double)bench_now_ns() / 1e6;
}

static void victim(struct shared *sh)
{
	struct cg_options o = { CG_MODE_DAEMON, NULL };
	size_t len = VICTIM_PAGES * 4096UL;
	struct cg_page_info info;
	struct timespec nap = { 0, 1000000 };
	struct cg *cg;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED || (memset(p, 'v', len), 0) ||
	    cg_open(&o, sizeof(o), &cg) || cg_register(cg, p, len, 0)) {
		sh->error = 1;
		_exit(1);
	}
	for (unsigned i = 0; sh->phase >= 0; i++) {
		int ph = sh->phase;
		char *page = p + (size_t)(i % VICTIM_PAGES) * 4096;
		double t0 = now_ms();

		*page = 'w';	/* a write fault on the first round */
		if (cg_query(cg, page, &info, sizeof(info)))
			sh->error = 2;
		if (ph >= 0 && ph < PHASES && sh->n[ph] < SAMPLES)
			sh->ms[ph][sh->n[ph]++] = now_ms() - t0;
		nanosleep(&nap, NULL);
	}
	cg_close(cg);
	_exit(0);
}

static pid_t daemon_pid(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path = getenv("COWGUARD_SOCKET");
	struct ucred cred = { 0 };
	socklen_t l = sizeof(cred);
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s",
		 path ? path : CG_DEFAULT_SOCKET);
	if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) ||
	    getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cred, &l))
		cred.pid = 0;
	if (s >= 0)
		close(s);
	return cred.pid;
}

static int phase_pins(struct cg *cg, int npins, pid_t dpid, long *peak_kb)
{
	size_t len = PIN_MIB * MIB;
	struct cg_pin **pins = calloc((size_t)npins, sizeof(*pins));
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int ret, made = 0;

	if (!pins || p == MAP_FAILED)
		return -ENOMEM;
	memset(p, 'p', len);
	ret = cg_register(cg, p, len, 0);
	for (; !ret && made < npins; made++)
		ret = cg_pin(cg, p, len, CG_PIN_RO, &pins[made]);
	if (ret)
		printf("  pin %d of %d: %s\n", made + 1, npins, cg_strerror(ret));
	*peak_kb = sys_rss_kb(dpid);
	for (int i = 0; i < made; i++)
		cg_unpin(pins[i]);
	free(pins);
	return made;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double p99_of(struct shared *sh, int ph)
{
	if (!sh->n[ph])
		return 0;
	qsort(sh->ms[ph], (size_t)sh->n[ph], sizeof(double), cmp_double);
	return sh->ms[ph][sh->n[ph] * 99 / 100];
}

static double max_of(const struct shared *sh, int ph)
{
	return sh->n[ph] ? sh->ms[ph][sh->n[ph] - 1] : 0;
}

static void print_victim(struct shared *sh)
{
	double base = p99_of(sh, PH_BASE);

	printf("victim QUERY latency (ms), by phase of the hostile client:\n");
	printf("  %-28s %8s %8s %8s %10s\n", "phase", "samples", "p99", "max",
	       "p99/base");
	for (int ph = 0; ph < PHASES; ph++) {
		double p99 = ph ? p99_of(sh, ph) : base;

		printf("  %-28s %8d %8.2f %8.2f", phase_name[ph], sh->n[ph], p99,
		       max_of(sh, ph));
		bench_print_ratio(p99, base);
		printf("\n");
	}
}

/*
 * Between phases the victim's samples are not kept for a while, so that a
 * query a phase held up is not counted in the next.
 */
static void gap(struct shared *sh)
{
	struct timespec t = { 0, 300 * 1000000L };

	sh->phase = PHASES;
	nanosleep(&t, NULL);
}

static void hostile(struct shared *sh, pid_t dpid, int npins, size_t gib,
		    int nforks)
{
	struct cg_options o = { CG_MODE_DAEMON, NULL };
	pid_t kids[64];
	size_t len = gib << 30;
	long kb0, peak = 0;
	double t0;
	struct cg *cg;
	char *big;
	int ret, made, nk = 0;

	if (cg_open(&o, sizeof(o), &cg)) {
		printf("hostile: cannot open a daemon handle\n");
		return;
	}
	sh->phase = PH_PINS;
	kb0 = sys_rss_kb(dpid);
	t0 = now_ms();
	made = phase_pins(cg, npins, dpid, &peak);
	printf("  %d pins of one %d MiB range: %.1f ms, daemon RSS %+.1f MiB "
	       "with them all held\n", made, PIN_MIB, now_ms() - t0,
	       (double)(peak - kb0) / 1024);

	gap(sh);
	sh->phase = PH_REGISTER;
	big = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	kb0 = sys_rss_kb(dpid);
	t0 = now_ms();
	ret = big == MAP_FAILED ? -ENOMEM : cg_register(cg, big, len, 0);
	printf("  register %zu GiB MAP_NORESERVE: %s, %.1f ms, daemon RSS "
	       "%+.1f MiB\n", gib, cg_strerror(ret), now_ms() - t0,
	       (double)(sys_rss_kb(dpid) - kb0) / 1024);
	if (!ret)
		memset(big, 'b', 16 * MIB);	/* a little of it populated */

	gap(sh);
	sh->phase = PH_FORK;
	kb0 = sys_rss_kb(dpid);
	t0 = now_ms();
	for (int i = 0; i < nforks && nk < 64; i++) {
		pid_t pid = fork();

		if (pid == 0) {
			pause();
			_exit(0);
		}
		if (pid > 0)
			kids[nk++] = pid;
	}
	printf("  %d forks: %.1f ms, daemon RSS %+.1f MiB\n", nk,
	       now_ms() - t0, (double)(sys_rss_kb(dpid) - kb0) / 1024);
	for (int i = 0; i < nk; i++) {
		kill(kids[i], SIGKILL);
		waitpid(kids[i], NULL, 0);
	}
	cg_close(cg);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "pins", required_argument, NULL, 'p' },
		{ "gib", required_argument, NULL, 'g' },
		{ "forks", required_argument, NULL, 'f' },
		{ "quick", no_argument, NULL, 'q' },
		{ 0 }
	};
	size_t npins = 300, gib = 128, nforks = 8;
	struct shared *sh;
	pid_t dpid, vpid;
	int c, status;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if ((c == 'p' && !bench_parse_size(optarg, 100000, &npins)) ||
		    (c == 'g' && !bench_parse_size(optarg, 1 << 20, &gib)) ||
		    (c == 'f' && !bench_parse_size(optarg, 64, &nforks)) || c == '?') {
			fprintf(stderr, "usage: hostile [--pins N] [--gib G] "
				"[--forks F] [--quick]\n");
			return 2;
		}
		if (c == 'q') {
			npins = 50;
			gib = 16;
			nforks = 2;
		}
	}
	dpid = daemon_pid();
	if (!dpid) {
		printf("hostile: no daemon at $COWGUARD_SOCKET, skipped\n");
		return 0;
	}
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return 1;
	sh->phase = PH_BASE;
	vpid = fork();
	if (vpid == 0)
		victim(sh);
	sleep(1);
	printf("hostile: daemon pid %d; %zu pins, %zu GiB, %zu forks\n",
	       (int)dpid, npins, gib, nforks);
	hostile(sh, dpid, (int)npins, gib, (int)nforks);
	sh->phase = -1;
	waitpid(vpid, &status, 0);
	if (sh->error)
		printf("victim: failed (%d)\n", sh->error);
	print_victim(sh);
	return sh->error ? 1 : 0;
}
