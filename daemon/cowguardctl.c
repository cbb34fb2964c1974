// SPDX-License-Identifier: MIT
/*
 * cowguardctl: what cowguardd tracks, and whether it agrees with the kernel.
 *
 *   cowguardctl [--socket PATH] [--json] status
 *   cowguardctl [--socket PATH] [--json] audit PID
 *   cowguardctl [--socket PATH] [--json] pins PID
 *
 * A reply is collected whole (clients, each with its regions; or a
 * client's pins), then printed
 * by one of two formatters: aligned tables for people, or one JSON object.
 * Exit status: 0 success (audit: zero unsafe and zero conservative pages),
 * 1 audit not clean, 2 usage, connection or daemon error.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "ctl.h"

#define EXIT_CLEAN 0
#define EXIT_UNCLEAN 1
#define EXIT_ERROR 2

/* ---- names ---------------------------------------------------------------- */

const char *ctl_kind_name(uint32_t kind, bool json)
{
	static const char *const text[] = { "none", "4 KiB", "THP", "THP split",
					    "hugetlb 2 MiB", "hugetlb 1 GiB" };
	static const char *const id[] = { "none", "4k", "thp", "thp_pte",
					  "hugetlb_2m", "hugetlb_1g" };

	if (kind >= sizeof(id) / sizeof(*id))
		return "unknown";
	return json ? id[kind] : text[kind];
}

const char *ctl_truth_name(enum cg_truth truth)
{
	switch (truth) {
	case CG_TRUTH_KPAGEFLAGS:
		return "kpageflags";
	case CG_TRUTH_MAPCOUNT:
		return "mapcount";
	}
	return "none";
}

const char *ctl_pin_mode(uint32_t flags, bool json)
{
	if (flags & CG_PIN_RW)
		return json ? "rw" : "RW";
	return json ? "ro" : "RO";
}

/* With a kernel pin fork copies the pages; without, they are DONTFORK. */
const char *ctl_pin_fork(uint32_t flags)
{
	return flags & CG_PIN_FOLL_PIN ? "foll_pin" : "dontfork";
}

/* UFFD_FEATURE_* by bit number, as far as Linux 6.8 (MOVE). */
const char *const ctl_feature_names[] = {
	"pagefault_flag_wp", "event_fork", "event_remap", "event_remove",
	"missing_hugetlbfs", "missing_shmem", "event_unmap", "sigbus",
	"thread_id", "minor_hugetlbfs", "minor_shmem", "exact_address",
	"wp_hugetlbfs_shmem", "wp_unpopulated", "poison", "wp_async", "move",
};

/* ---- receiving ------------------------------------------------------------ */

static void *grow(void *v, size_t *cap, size_t n, size_t size)
{
	size_t ncap = *cap ? *cap * 2 : 8;
	void *p;

	if (n < *cap)
		return v;
	p = realloc(v, ncap * size);
	if (p)
		*cap = ncap;
	return p;
}

static int add_client(struct ctl_reply *out, const struct cg__status_client *c)
{
	struct ctl_client *v = grow(out->clients, &out->cap, out->n, sizeof(*v));

	if (!v)
		return -ENOMEM;
	out->clients = v;
	memset(&v[out->n], 0, sizeof(*v));
	v[out->n++].c = *c;
	return 0;
}

static int add_region(struct ctl_reply *out, const struct cg__rep *rep)
{
	struct ctl_client *c;
	struct ctl_region *v;

	if (!out->n)
		return -EPROTO;		/* a region belongs to the client before it */
	c = &out->clients[out->n - 1];
	v = grow(c->regions, &c->cap, c->nregions, sizeof(*v));
	if (!v)
		return -ENOMEM;
	c->regions = v;
	v[c->nregions].r = rep->u.region;
	v[c->nregions++].status = rep->status;
	return 0;
}

static int add_pin(struct ctl_reply *out, const struct cg__status_pin *p)
{
	struct cg__status_pin *v = grow(out->pins, &out->pins_cap, out->npins,
					sizeof(*v));

	if (!v)
		return -ENOMEM;
	out->pins = v;
	v[out->npins] = *p;
	/* The daemon NUL-pads the name; make sure it ends. */
	v[out->npins++].consumer[sizeof(p->consumer) - 1] = 0;
	return 0;
}

static void reply_free(struct ctl_reply *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->clients[i].regions);
	free(r->clients);
	free(r->pins);
}

/* One packet of the stream; returns 1 at its end (*status: the op's). */
static int take(struct ctl_reply *out, const struct cg__rep *rep,
		const struct cg__req *req, int *status)
{
	if (rep->magic != CG_PROTO_MAGIC || rep->op != req->op)
		return -EPROTO;
	switch (rep->rec) {
	case CG_REC_END:
		*status = rep->status;
		return 1;
	case CG_REC_CLIENT:
		return add_client(out, &rep->u.client);
	case CG_REC_REGION:
		return add_region(out, rep);
	case CG_REC_PIN:
		return add_pin(out, &rep->u.pin);
	}
	return -EPROTO;
}

/* Ask, and collect the streamed reply.  Returns 0, -errno, or the op's. */
static int fetch(struct cg__client *cli, const struct ctl_opts *o,
		 struct ctl_reply *out)
{
	struct cg__req req;
	struct cg__rep rep;
	int ret, status = 0;

	cg__req_init(&req, o->op);
	req.pid = o->pid;
	ret = cg__client_call(cli, &req, &rep);
	while (!ret) {
		ret = take(out, &rep, &req, &status);
		if (ret == 0)
			ret = cg__client_next(cli, &rep);
	}
	return ret < 0 ? ret : status;
}

/* ---- commands ------------------------------------------------------------- */

static void err(const char *what, int ret)
{
	fprintf(stderr, "cowguardctl: %s: %s\n", what, cg_strerror(ret));
}

static int show_status(const struct ctl_reply *r, const struct ctl_opts *o)
{
	if (o->json)
		json_status(r, o);
	else
		text_status(r, o);
	return EXIT_CLEAN;
}

/* Sum the regions' reports; false if any region could not be audited. */
static bool audit_total(const struct ctl_client *cl,
			struct cg_audit_report *t)
{
	bool all = true;

	memset(t, 0, sizeof(*t));
	for (size_t i = 0; i < cl->nregions; i++) {
		const struct cg_audit_report *a = &cl->regions[i].r.audit;

		if (cl->regions[i].status) {
			all = false;
			continue;
		}
		t->pages += a->pages;
		t->present += a->present;
		t->exact += a->exact;
		t->unsafe += a->unsafe;
		t->conservative += a->conservative;
		t->unknowable += a->unknowable;
		t->presence += a->presence;
	}
	return all;
}

static int show_audit(const struct ctl_reply *r, const struct ctl_opts *o)
{
	struct cg_audit_report total;
	bool clean;

	if (r->n != 1) {
		err("audit", -EPROTO);
		return EXIT_ERROR;
	}
	clean = audit_total(&r->clients[0], &total) && !total.unsafe &&
		!total.conservative;
	if (o->json)
		json_audit(&r->clients[0], &total, clean);
	else
		text_audit(&r->clients[0], &total, clean);
	return clean ? EXIT_CLEAN : EXIT_UNCLEAN;
}

static int show_pins(const struct ctl_reply *r, const struct ctl_opts *o)
{
	if (o->json)
		json_pins(r, o);
	else
		text_pins(r, o);
	return EXIT_CLEAN;
}

static int run(const struct ctl_opts *o)
{
	struct cg__client cli = { .sock = -1 };
	struct ctl_reply reply = { 0 };
	char what[300];
	int ret, code;

	ret = cg__client_open_ctl(&cli, o->socket);
	if (ret) {
		snprintf(what, sizeof(what), "cannot connect to cowguardd at %s",
			 o->socket);
		err(what, ret);
		return EXIT_ERROR;
	}
	ret = fetch(&cli, o, &reply);
	cg__client_close(&cli);
	if (ret) {
		if (o->op != CG_OP_STATUS && ret == -ESRCH)
			snprintf(what, sizeof(what), "%s: pid %d is not a client "
				 "of cowguardd", o->op == CG_OP_PINS ? "pins"
				 : "audit", (int)o->pid);
		else if (o->op == CG_OP_AUDIT_PID)
			snprintf(what, sizeof(what), "audit of pid %d", (int)o->pid);
		else if (o->op == CG_OP_PINS)
			snprintf(what, sizeof(what), "pins of pid %d", (int)o->pid);
		else
			snprintf(what, sizeof(what), "status");
		err(what, ret);
		code = EXIT_ERROR;
	} else {
		code = o->op == CG_OP_STATUS ? show_status(&reply, o)
		       : o->op == CG_OP_PINS ? show_pins(&reply, o)
					     : show_audit(&reply, o);
	}
	reply_free(&reply);
	if (fflush(stdout) && code == EXIT_CLEAN)
		code = EXIT_ERROR;
	return code;
}

/* ---- options -------------------------------------------------------------- */

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: cowguardctl [OPTION]... status\n"
		"       cowguardctl [OPTION]... audit PID\n"
		"       cowguardctl [OPTION]... pins PID\n"
		"Show what cowguardd tracks, or audit a client's page state\n"
		"against the kernel's.\n\n"
		"  status      every client you may see: regions, page counts by\n"
		"              state, counters, engine memory\n"
		"  audit PID   compare each region of client PID with the kernel\n"
		"  pins PID    the pins client PID holds: range, size, mode (RO,\n"
		"              RW), how fork treats them (foll_pin: the consumer\n"
		"              holds a kernel pin; dontfork: MADV_DONTFORK),\n"
		"              consumer, age\n\n"
		"  -s, --socket PATH   the daemon's socket (default $COWGUARD_SOCKET,\n"
		"                      else %s)\n"
		"  -j, --json          one JSON object instead of tables\n"
		"  -h, --help          this text\n"
		"  -V, --version       the version\n\n"
		"Exit status: 0 success (audit: zero unsafe and zero conservative\n"
		"pages), 1 audit found mismatches or could not audit a region,\n"
		"2 usage, connection or daemon error (such as no such client).\n",
		CG_DEFAULT_SOCKET);
}

static int parse_pid(const char *s, pid_t *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v <= 0 || v > INT32_MAX)
		return -EINVAL;
	*out = (pid_t)v;
	return 0;
}

static int parse_command(int argc, char **argv, struct ctl_opts *o)
{
	if (argc == 1 && !strcmp(argv[0], "status")) {
		o->op = CG_OP_STATUS;
		return 0;
	}
	if (argc == 2 && (!strcmp(argv[0], "audit") || !strcmp(argv[0], "pins"))) {
		o->op = argv[0][0] == 'a' ? CG_OP_AUDIT_PID : CG_OP_PINS;
		if (parse_pid(argv[1], &o->pid)) {
			fprintf(stderr, "cowguardctl: not a pid: '%s'\n", argv[1]);
			return -EINVAL;
		}
		return 0;
	}
	usage(stderr);
	return -EINVAL;
}

static const char *default_socket(void)
{
	const char *env = getenv("COWGUARD_SOCKET");

	return env && *env ? env : CG_DEFAULT_SOCKET;
}

/* Returns 0, 1 when done (--help, --version), or -EINVAL. */
static int parse_args(int argc, char **argv, struct ctl_opts *o)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 }
	};
	int c;

	o->socket = default_socket();
	while ((c = getopt_long(argc, argv, "s:jhV", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			o->socket = optarg;
			break;
		case 'j':
			o->json = true;
			break;
		case 'h':
			usage(stdout);
			return 1;
		case 'V':
			printf("cowguardctl %d.%d (protocol %d.%d)\n",
			       CG_VERSION_MAJOR, CG_VERSION_MINOR, CG_PROTO_MAJOR,
			       CG_PROTO_MINOR);
			return 1;
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	return parse_command(argc - optind, argv + optind, o);
}

int main(int argc, char **argv)
{
	struct ctl_opts o = { 0 };
	int ret = parse_args(argc, argv, &o);

	if (ret)
		return ret > 0 ? EXIT_CLEAN : EXIT_ERROR;
	return run(&o);
}
