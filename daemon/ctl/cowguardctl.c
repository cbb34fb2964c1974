// SPDX-License-Identifier: MIT
/*
 * cowguardctl: what cowguardd tracks, and whether it agrees with the kernel.
 *
 *   cowguardctl [--socket PATH] [--timeout SECONDS] [--json] status
 *   cowguardctl [--socket PATH] [--timeout SECONDS] [--json] audit PID
 *   cowguardctl [--socket PATH] [--timeout SECONDS] [--json] pins PID
 *   cowguardctl [--socket PATH] [--timeout SECONDS] metrics
 *   cowguardctl [--json] image FILE
 *   cowguardctl [--socket PATH] [--timeout SECONDS] [--json] snapshot PID -o FILE
 *
 * A reply is collected whole (clients, each with its regions; or a
 * client's pins), then printed by one of three formatters: aligned tables
 * for people, one JSON object, or Prometheus metrics.  Every wait for
 * cowguardd ends after --timeout seconds (timeout.c).
 * Exit status: 0 success (audit: zero unsafe and zero conservative pages),
 * 1 audit not clean, 2 usage, connection, timeout or daemon error.
 */
#include <errno.h>
#include <getopt.h>
#include <langinfo.h>
#include <locale.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "ctl.h"

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

/* ---- asking --------------------------------------------------------------- */

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
		ctl_timeout_arm(o);
		ret = take(out, &rep, &req, &status);
		if (ret == 0)
			ret = cg__client_next(cli, &rep);
	}
	return ret < 0 ? ret : status;
}

/* Connect and collect; the clock starts before connect() and at each answer. */
static int ask(const struct ctl_opts *o, struct ctl_reply *out, bool *connected)
{
	struct cg__client cli = { .sock = -1 };
	int ret;

	*connected = false;
	ctl_timeout_arm(o);
	ret = cg__client_open_ctl(&cli, o->socket);
	if (!ret) {
		*connected = true;
		ctl_timeout_arm(o);
		ret = fetch(&cli, o, out);
		cg__client_close(&cli);
	}
	ctl_timeout_stop(o);
	return ret;
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

static int show_metrics(const struct ctl_reply *r, const struct ctl_opts *o)
{
	int ret = metrics_print(r, o);

	if (ret) {
		err("metrics", ret);
		metrics_down(stdout, o);
		return EXIT_ERROR;
	}
	return EXIT_CLEAN;
}

static int show(const struct ctl_reply *r, const struct ctl_opts *o)
{
	switch (o->cmd) {
	case CTL_STATUS:
		return show_status(r, o);
	case CTL_AUDIT:
		return show_audit(r, o);
	case CTL_PINS:
		return show_pins(r, o);
	case CTL_METRICS:
		return show_metrics(r, o);
	case CTL_IMAGE:
		break;		/* run() shows it, asking nothing */
	case CTL_SNAPSHOT:
		for (size_t i = 0; i < r->n; i++)
			if (r->clients[i].c.pid == o->pid)
				return ctl_snapshot(o, &r->clients[i]);
		fprintf(stderr, "cowguardctl: snapshot: pid %d is not a client "
			"of cowguardd you may see\n", (int)o->pid);
		return EXIT_ERROR;
	}
	return EXIT_ERROR;
}

/* Say why asking failed, naming the socket (sanitized: it may be anything). */
static void say_failure(const struct ctl_opts *o, int ret, bool connected)
{
	char sock[CTL_TEXT_SAFE_LEN(sizeof(((struct cg__client *)0)->path))];
	char what[CTL_TEXT_SAFE_LEN(sizeof(((struct cg__client *)0)->path)) + 64];
	const char *cmd = o->cmd == CTL_AUDIT ? "audit" : o->cmd == CTL_PINS
			  ? "pins" : o->cmd == CTL_METRICS ? "metrics"
			  : o->cmd == CTL_SNAPSHOT ? "snapshot" : "status";

	ctl_text_safe(o->socket, o->utf8, sock, sizeof(sock));
	if (!connected)
		snprintf(what, sizeof(what), "cannot connect to cowguardd at %s",
			 sock);
	else if (o->pid && ret == -ESRCH)
		snprintf(what, sizeof(what), "%s: pid %d is not a client of "
			 "cowguardd", cmd, (int)o->pid);
	else if (o->pid)
		snprintf(what, sizeof(what), "%s of pid %d", cmd, (int)o->pid);
	else if (ret == -ETIMEDOUT)
		snprintf(what, sizeof(what), "%s: cowguardd at %s", cmd, sock);
	else
		snprintf(what, sizeof(what), "%s", cmd);
	err(what, ret);
}

static int run(const struct ctl_opts *o)
{
	struct ctl_reply reply = { 0 };
	bool connected;
	int ret, code;

	if (o->cmd == CTL_IMAGE)
		return ctl_image(o);
	ret = ctl_timeout_start(o);
	if (ret) {
		err("cannot set the timeout", ret);
		return EXIT_ERROR;
	}
	ret = ask(o, &reply, &connected);
	if (ret) {
		say_failure(o, ret, connected);
		if (o->cmd == CTL_METRICS)
			metrics_down(stdout, o);
		code = EXIT_ERROR;
	} else {
		code = show(&reply, o);
	}
	reply_free(&reply);
	ctl_timeout_end();
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
		"       cowguardctl [OPTION]... metrics\n"
		"       cowguardctl [--json] image FILE\n"
		"       cowguardctl [OPTION]... snapshot PID -o FILE\n"
		"Show what cowguardd tracks, or audit a client's page state\n"
		"against the kernel's.\n\n"
		"  status      every client you may see: regions, page counts by\n"
		"              state, counters, engine memory\n"
		"  audit PID   compare each region of client PID with the kernel\n"
		"  pins PID    the pins client PID holds: range, size, mode (RO,\n"
		"              RW), how fork treats them (foll_pin: the consumer\n"
		"              holds a kernel pin; dontfork: MADV_DONTFORK),\n"
		"              consumer, age\n"
		"  metrics     every client's counters and page counts in the\n"
		"              Prometheus text format (node_exporter's textfile\n"
		"              collector); cowguard_up 0 when cowguardd does not\n"
		"              answer\n"
		"  image FILE  what the snapshot image FILE holds (cg_snapshot),\n"
		"              every checksum checked; no daemon needed\n"
		"  snapshot PID -o FILE\n"
		"              a live snapshot of client PID (daemon mode) into\n"
		"              FILE, while it runs: its writes to pages not saved\n"
		"              yet wait; root or its own user only; a progress\n"
		"              bar on a terminal\n\n"
		"  -s, --socket PATH   the daemon's socket (default $COWGUARD_SOCKET,\n"
		"                      else %s)\n"
		"  -t, --timeout SECONDS  give up when cowguardd has not answered\n"
		"                      for this long (default %g; fractions allowed;\n"
		"                      0 waits as long as the library does, 30 s\n"
		"                      for each answer)\n"
		"  -j, --json          one JSON object instead of tables\n"
		"  -o, --output FILE   snapshot: the image to write (mode 0600)\n"
		"  -h, --help          this text\n"
		"  -V, --version       the version\n\n"
		"Exit status: 0 success (audit: zero unsafe and zero conservative\n"
		"pages), 1 audit found mismatches or could not audit a region,\n"
		"2 usage, connection, timeout or daemon error (such as no such\n"
		"client), or an image refused (image says why).\n",
		CG_DEFAULT_SOCKET, CTL_DEFAULT_TIMEOUT);
}

/* A usage error: what was wrong, and where to read more.  Returns -EINVAL. */
static int bad_usage(const struct ctl_opts *o, const char *fmt, const char *arg)
{
	char safe[CTL_TEXT_SAFE_LEN(64)];

	fputs("cowguardctl: ", stderr);
	fprintf(stderr, fmt, arg ? ctl_text_safe(arg, o->utf8, safe, sizeof(safe))
				 : "");
	fputs("\nTry 'cowguardctl --help' for more information.\n", stderr);
	return -EINVAL;
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

/* Seconds, fractions allowed, at most a day; 0 is no timeout. */
static int parse_timeout(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < 0 || v > 86400)
		return -EINVAL;
	*out = v;
	return 0;
}

static const struct command {
	const char *name;
	enum ctl_cmd cmd;
	enum cg__op op;		/* what it asks cowguardd (CG_OP_NONE: none) */
	bool takes_pid;
	bool takes_path;
} commands[] = {
	{ "status", CTL_STATUS, CG_OP_STATUS, false, false },
	{ "audit", CTL_AUDIT, CG_OP_AUDIT_PID, true, false },
	{ "pins", CTL_PINS, CG_OP_PINS, true, false },
	{ "metrics", CTL_METRICS, CG_OP_STATUS, false, false },
	{ "image", CTL_IMAGE, CG_OP_NONE, false, true },
	/* The client's record first: how far the progress bar has to go. */
	{ "snapshot", CTL_SNAPSHOT, CG_OP_STATUS, true, false },
};

static int parse_command(int argc, char **argv, struct ctl_opts *o)
{
	const struct command *c = NULL;

	if (argc == 0)
		return bad_usage(o, "no command given%s", NULL);
	for (size_t i = 0; i < sizeof(commands) / sizeof(*commands); i++)
		if (!strcmp(argv[0], commands[i].name))
			c = &commands[i];
	if (!c)
		return bad_usage(o, "unknown command '%s'", argv[0]);
	o->cmd = c->cmd;
	o->op = c->op;
	if (c->takes_pid && argc != 2)
		return bad_usage(o, "%s needs one PID", c->name);
	if (c->takes_path && argc != 2)
		return bad_usage(o, "%s needs one FILE", c->name);
	if (!c->takes_pid && !c->takes_path && argc != 1)
		return bad_usage(o, "%s takes no argument", c->name);
	if (c->takes_path)
		o->path = argv[1];
	if (c->takes_pid && parse_pid(argv[1], &o->pid))
		return bad_usage(o, "not a pid: '%s'", argv[1]);
	if (c->cmd == CTL_SNAPSHOT && !o->output)
		return bad_usage(o, "snapshot needs -o FILE%s", NULL);
	if (c->cmd != CTL_SNAPSHOT && o->output)
		return bad_usage(o, "-o is for snapshot only%s", NULL);
	return 0;
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
		{ "timeout", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 }
	};
	int c;

	o->socket = default_socket();
	o->timeout = CTL_DEFAULT_TIMEOUT;
	while ((c = getopt_long(argc, argv, "s:t:jo:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			o->socket = optarg;
			break;
		case 't':
			if (parse_timeout(optarg, &o->timeout))
				return bad_usage(o, "--timeout: not a number of "
						 "seconds from 0 to 86400: '%s'",
						 optarg);
			break;
		case 'j':
			o->json = true;
			break;
		case 'o':
			o->output = optarg;
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
			/* getopt said what was wrong. */
			fputs("Try 'cowguardctl --help' for more information.\n",
			      stderr);
			return -EINVAL;
		}
	}
	return parse_command(argc - optind, argv + optind, o);
}

int main(int argc, char **argv)
{
	struct ctl_opts o = { 0 };
	int ret;

	/* The character type only: numbers stay in the C locale's format. */
	setlocale(LC_CTYPE, "");
	o.utf8 = !strcmp(nl_langinfo(CODESET), "UTF-8");
	ret = parse_args(argc, argv, &o);
	if (ret)
		return ret > 0 ? EXIT_CLEAN : EXIT_ERROR;
	return run(&o);
}
