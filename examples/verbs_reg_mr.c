// SPDX-License-Identifier: MIT
/*
 * verbs_reg_mr: register an RDMA memory region through cowguard.
 *
 * Opens the first device ibv_get_device_list() finds, maps a buffer,
 * registers it with cowguard, forks (the child keeps the buffer COW-shared),
 * and registers a read-only MR of it with cg_ibv_reg_mr(): the pages are
 * made exclusive before the kernel pins them, so the parent's next write
 * lands in the page the device reads.  Prints what cowguard did, writes,
 * deregisters with cg_ibv_dereg_mr() (which checks no page was replaced).
 * With no RDMA device it says so and exits 0.
 *
 * Usage: verbs_reg_mr   (no arguments; -h or --help prints the usage)
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cowguard.h>
#include <cowguard/verbs.h>

#define LEN (64 * 4096)

struct verbs {
	struct ibv_device **list;
	struct ibv_context *ctx;
	struct ibv_pd *pd;
};

/* 1: opened, 0: no device, -1: failed. */
static int verbs_open(struct verbs *v)
{
	int n = 0;

	v->list = ibv_get_device_list(&n);
	if (!v->list || n == 0) {
		printf("verbs_reg_mr: no RDMA device (ibv_get_device_list found "
		       "none%s%s): nothing to register\n", v->list ? "" : ": ",
		       v->list ? "" : strerror(errno));
		if (v->list)
			ibv_free_device_list(v->list);
		return 0;
	}
	v->ctx = ibv_open_device(v->list[0]);
	v->pd = v->ctx ? ibv_alloc_pd(v->ctx) : NULL;
	if (!v->pd) {
		fprintf(stderr, "verbs_reg_mr: %s on %s: %s\n",
			v->ctx ? "ibv_alloc_pd" : "ibv_open_device",
			ibv_get_device_name(v->list[0]), strerror(errno));
		return -1;
	}
	printf("verbs_reg_mr: device %s\n", ibv_get_device_name(v->list[0]));
	return 1;
}

static void verbs_close(struct verbs *v)
{
	if (v->pd)
		ibv_dealloc_pd(v->pd);
	if (v->ctx)
		ibv_close_device(v->ctx);
	ibv_free_device_list(v->list);
}

static int run(struct cg *cg, struct ibv_pd *pd, char *buf)
{
	struct cg_stats before, after;
	struct cg_mr *mr = NULL;
	int go[2], status, ret;
	pid_t pid;
	char c;

	if (pipe(go))
		return -errno;
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		close(go[1]);
		_exit(read(go[0], &c, 1) == 1 && buf[0] == 'A' ? 0 : 3);
	}
	close(go[0]);
	cg_stats(cg, &before, sizeof(before));
	ret = cg_ibv_reg_mr(cg, pd, buf, LEN, IBV_ACCESS_REMOTE_READ, &mr);
	if (ret) {
		fprintf(stderr, "verbs_reg_mr: cg_ibv_reg_mr: %s\n", cg_strerror(ret));
	} else {
		cg_stats(cg, &after, sizeof(after));
		printf("registered %d KiB read-only: lkey %#x rkey %#x; cowguard "
		       "copied %llu COW-shared pages first\n", LEN / 1024,
		       cg_ibv_mr(mr)->lkey, cg_ibv_mr(mr)->rkey,
		       (unsigned long long)(after.unshare_copies -
					    before.unshare_copies));
		memset(buf, 'B', LEN);	/* lands in the registered pages */
		ret = cg_ibv_dereg_mr(mr);
		printf("cg_ibv_dereg_mr: %s\n", cg_strerror(ret));
	}
	if (write(go[1], "g", 1) != 1 || waitpid(pid, &status, 0) != pid)
		return ret ? ret : -ECHILD;
	close(go[1]);
	printf("child kept its own data: %s\n",
	       WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "yes" : "NO");
	return ret;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: verbs_reg_mr\n"
		"       verbs_reg_mr -h | --help\n"
		"\n"
		"Registers a COW-shared buffer as a read-only RDMA MR with\n"
		"cg_ibv_reg_mr() on the first device found, writes, and deregisters\n"
		"with cg_ibv_dereg_mr().  Exits 0 when no page was replaced, or when\n"
		"there is no RDMA device (it says so); 1 otherwise.\n");
}

/* A bad argument: what is wrong and the usage on stderr, exit status 2. */
static void __attribute__((format(printf, 1, 2), noreturn))
bad_usage(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "verbs_reg_mr: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	usage(stderr);
	exit(2);
}

/* No arguments but -h/--help. */
static void parse_args(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			exit(0);
		}
		bad_usage("unknown argument '%s' (this program takes none)", argv[i]);
	}
}

int main(int argc, char **argv)
{
	struct verbs v = { 0 };
	struct cg *cg;
	char *buf;
	int ret;

	parse_args(argc, argv);
	ret = verbs_open(&v);

	if (ret <= 0)
		return ret ? 1 : 0;
	ret = cg_open(NULL, 0, &cg);
	if (ret) {
		fprintf(stderr, "verbs_reg_mr: cg_open: %s\n", cg_strerror(ret));
		verbs_close(&v);
		return 1;
	}
	buf = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		   -1, 0);
	if (buf == MAP_FAILED)
		return 1;
	memset(buf, 'A', LEN);
	ret = cg_register(cg, buf, LEN, 0);
	if (ret)
		fprintf(stderr, "verbs_reg_mr: cg_register: %s\n", cg_strerror(ret));
	else
		ret = run(cg, v.pd, buf);
	cg_close(cg);
	munmap(buf, LEN);
	verbs_close(&v);
	return ret ? 1 : 0;
}
