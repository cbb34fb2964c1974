// SPDX-License-Identifier: MIT
/* cowguardd: start-up, options, privileges, and the event loop. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon.h"
#include "notify.h"

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: cowguardd [OPTION]...\n"
		"Service the userfaultfd write-protect faults and events of the\n"
		"processes that connect, and keep their page state.\n"
		"Runs in the foreground and logs to stderr.\n\n"
		"  -s, --socket PATH        listen on PATH (default %s, or the\n"
		"                           socket systemd passes in)\n"
		"      --max-clients N      connections at once (default 1024); the\n"
		"                           last 4 (a quarter, below 16) are root's\n"
		"      --max-conns-per-user N  connections of one user other than\n"
		"                           root (default 256)\n"
		"      --hello-timeout MS   drop a connection that has not said\n"
		"                           hello within MS ms (default 10000)\n"
		"      --max-regions N      regions per client (default 4096)\n"
		"      --max-bytes BYTES    registered bytes per client (default 1T;\n"
		"                           suffixes K M G T)\n"
		"      --max-children N     unnamed forked children per client "
		"(default 64)\n"
		"      --max-pins N         pins per client (default 4096)\n"
		"  -v, --verbose            log every connection and fork\n"
		"  -h, --help               this text\n"
		"  -V, --version            the version\n",
		CG_DEFAULT_SOCKET);
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'T': v <<= 10; /* fall through */
	case 'G': v <<= 10; /* fall through */
	case 'M': v <<= 10; /* fall through */
	case 'K': v <<= 10; end++; break;
	case 0: break;
	default: return -EINVAL;
	}
	if (*end)
		return -EINVAL;
	*out = v;
	return 0;
}

enum { OPT_MAX_CLIENTS = 256, OPT_MAX_REGIONS, OPT_MAX_BYTES, OPT_MAX_CHILDREN,
       OPT_MAX_PINS, OPT_HELLO_TIMEOUT, OPT_MAX_CONNS_PER_USER };

static int parse_args(int argc, char **argv, struct options *opt)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "max-clients", required_argument, NULL, OPT_MAX_CLIENTS },
		{ "max-regions", required_argument, NULL, OPT_MAX_REGIONS },
		{ "max-bytes", required_argument, NULL, OPT_MAX_BYTES },
		{ "max-children", required_argument, NULL, OPT_MAX_CHILDREN },
		{ "max-pins", required_argument, NULL, OPT_MAX_PINS },
		{ "hello-timeout", required_argument, NULL, OPT_HELLO_TIMEOUT },
		{ "max-conns-per-user", required_argument, NULL,
		  OPT_MAX_CONNS_PER_USER },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 }
	};
	uint64_t n;
	int c;

	while ((c = getopt_long(argc, argv, "s:vhV", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			opt->socket_path = optarg;
			break;
		case 'v':
			opt->verbose = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("cowguardd %d.%d (protocol %d.%d)\n", CG_VERSION_MAJOR,
			       CG_VERSION_MINOR, CG_PROTO_MAJOR, CG_PROTO_MINOR);
			exit(0);
		case OPT_MAX_CLIENTS:
		case OPT_MAX_REGIONS:
		case OPT_MAX_BYTES:
		case OPT_MAX_CHILDREN:
		case OPT_MAX_PINS:
		case OPT_HELLO_TIMEOUT:
		case OPT_MAX_CONNS_PER_USER:
			if (parse_size(optarg, &n) || !n ||
			    (c != OPT_MAX_BYTES && n > UINT32_MAX)) {
				fprintf(stderr, "cowguardd: bad number '%s'\n", optarg);
				return -EINVAL;
			}
			if (c == OPT_MAX_CLIENTS)
				opt->max_conns = (unsigned)n;
			else if (c == OPT_MAX_REGIONS)
				opt->limits.max_regions = (uint32_t)n;
			else if (c == OPT_MAX_BYTES)
				opt->limits.max_bytes = n;
			else if (c == OPT_MAX_PINS)
				opt->limits.max_pins = (uint32_t)n;
			else if (c == OPT_MAX_CONNS_PER_USER)
				opt->max_conns_per_user = (unsigned)n;
			else if (c == OPT_HELLO_TIMEOUT)
				opt->hello_timeout_ms = (unsigned)n;
			else
				opt->max_children = (unsigned)n;
			break;
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return -EINVAL;
	}
	return 0;
}

/*
 * Every client costs a socket, a uffd, a pagemap and an smaps fd, and
 * each of its unnamed children a uffd; a few more are the daemon's own.  Short of
 * that, a busy daemon would refuse work with EMFILE: say so at start.
 */
static void raise_nofile(const struct options *opt)
{
	uint64_t need = (uint64_t)opt->max_conns * (4 + opt->max_children) + 32;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
		log_warn("RLIMIT_NOFILE is %llu; --max-clients %u with "
			 "--max-children %u may need %llu fds (LimitNOFILE=)",
			 (unsigned long long)rl.rlim_cur, opt->max_conns,
			 opt->max_children, (unsigned long long)need);
}

static int open_and_start(struct server *srv)
{
	int ret;

	srv->listen_fd = listen_open(srv->opt.socket_path);
	if (srv->listen_fd < 0) {
		log_err("cannot listen on %s: %s", srv->opt.socket_path,
			strerror(-srv->listen_fd));
		return srv->listen_fd;
	}
	/* Opened before the capabilities go; reading it needs none after. */
	srv->kpageflags_fd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	if (srv->kpageflags_fd < 0)
		log_warn("no /proc/kpageflags (%s): audits fall back to pagemap's "
			 "mapcount bit", strerror(errno));
	raise_nofile(&srv->opt);
	ret = caps_drop();
	if (ret)
		log_warn("cannot drop capabilities (%s): running with what we have",
			 strerror(-ret));
	srv->loop = uv_default_loop();
	return server_start(srv);
}

/* Hold or release SIGINT and SIGTERM. */
static void stop_signals(int how)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigprocmask(how, &set, NULL);
}

/*
 * From the moment the socket takes connections a client may ask us to stop
 * (a test, systemd): hold SIGINT and SIGTERM until their handlers are in
 * place, then take what came meanwhile through them (measured on a slow
 * guest: killed by SIGTERM between listen() and the handlers).
 */
static int setup(struct server *srv)
{
	int ret;

	stop_signals(SIG_BLOCK);
	ret = open_and_start(srv);
	stop_signals(SIG_UNBLOCK);
	return ret;
}

/* Run until SIGINT or SIGTERM, telling systemd how it goes (notify.c). */
static void serve(struct server *srv)
{
	struct notifier notifier = { 0 };
	char name[sizeof(((struct sockaddr_un *)0)->sun_path) + 2];
	int ret;

	/* The socket's own name: under socket activation, the unit's. */
	log_info("listening on %s", socket_name(srv->listen_fd, name, sizeof(name)));
	ret = notify_start(&notifier, srv);
	if (ret)
		log_warn("cannot keep systemd informed: %s", uv_strerror(ret));
	uv_run(srv->loop, UV_RUN_DEFAULT);
	notify_stop(&notifier);
	/* Let the notifier's handles finish closing before the loop goes. */
	uv_run(srv->loop, UV_RUN_NOWAIT);
	uv_loop_close(srv->loop);
}

int main(int argc, char **argv)
{
	struct server srv = {
		.opt = {
			.socket_path = CG_DEFAULT_SOCKET,
			.limits = { .max_bytes = 1ULL << 40, .max_regions = 4096,
				    .max_pins = 4096 },
			.max_conns = 1024,
			.max_conns_per_user = 256,
			.hello_timeout_ms = 10000,
			.max_children = 64,
		},
	};
	/* First, before anything of ours could take one of their numbers. */
	int ret = close_inherited_fds();

	if (ret)
		log_warn("cannot close inherited fds: %s", strerror(-ret));
	if (parse_args(argc, argv, &srv.opt))
		return 2;
	log_set_verbose(srv.opt.verbose);
	signal(SIGPIPE, SIG_IGN);
	ret = setup(&srv);
	if (ret)
		return 1;
	serve(&srv);
	if (srv.kpageflags_fd >= 0)
		close(srv.kpageflags_fd);
	log_info("stopped");
	return 0;
}
