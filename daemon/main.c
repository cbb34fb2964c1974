// SPDX-License-Identifier: MIT
/* cowguardd: start-up, options, privileges, and the event loop. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon.h"
#include "engine/engine.h"
#include "kernel/procfs.h"
#include "kernel/uffd.h"
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
		"      --max-bytes BYTES    registered bytes per client (default 256G;\n"
		"                           suffixes K M G T)\n"
		"      --max-children N     unnamed forked children per client "
		"(default 64)\n"
		"      --max-pins N         pins per client (default 4096)\n"
		"      --max-client-vmas N  VMAs of a client's address space read\n"
		"                           for one request (default 16384): a\n"
		"                           registration past them fails, EMLINK\n"
		"      --max-user-bytes B   registered bytes of one user, adopted\n"
		"                           children included (default 1T)\n"
		"      --max-user-pins N    pins of one user (default 16384)\n"
		"      --max-user-children N  unnamed children of one user (256)\n"
		"      --max-user-memory B  the daemon's memory for one user\n"
		"                           (default 256M, or RAM/16 if less);\n"
		"                           root gets 4 times each\n"
		"  -u, --user NAME          started as root: become user NAME (and\n"
		"                           its group, no other) once the socket is\n"
		"                           made, keeping only the capabilities the\n"
		"                           daemon needs; exit 1 if that fails\n"
		"  -v, --verbose            log every connection and fork\n"
		"  -h, --help               this text\n"
		"  -V, --version            the version\n",
		CG_DEFAULT_SOCKET);
}

enum { OPT_MAX_CLIENTS = 256, OPT_MAX_REGIONS, OPT_MAX_BYTES, OPT_MAX_CHILDREN,
       OPT_MAX_PINS, OPT_HELLO_TIMEOUT, OPT_MAX_CONNS_PER_USER,
       OPT_MAX_CLIENT_VMAS };

/*
 * --user: whom to become after the socket is made.  Not in struct options:
 * it matters once, at start, and nowhere after.
 */
static struct run_as {
	const char *name;	/* NULL: stay who we are */
	uid_t uid;
	gid_t gid;
} run_as;

static int parse_args(int argc, char **argv, struct options *opt)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "user", required_argument, NULL, 'u' },
		{ "max-clients", required_argument, NULL, OPT_MAX_CLIENTS },
		{ "max-regions", required_argument, NULL, OPT_MAX_REGIONS },
		{ "max-bytes", required_argument, NULL, OPT_MAX_BYTES },
		{ "max-children", required_argument, NULL, OPT_MAX_CHILDREN },
		{ "max-pins", required_argument, NULL, OPT_MAX_PINS },
		{ "hello-timeout", required_argument, NULL, OPT_HELLO_TIMEOUT },
		{ "max-conns-per-user", required_argument, NULL,
		  OPT_MAX_CONNS_PER_USER },
		{ "max-client-vmas", required_argument, NULL,
		  OPT_MAX_CLIENT_VMAS },
		QUOTA_LONGOPTS,
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 }
	};
	uint64_t n;
	int c;

	while ((c = getopt_long(argc, argv, "s:u:vhV", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			opt->socket_path = optarg;
			break;
		case 'u':
			run_as.name = optarg;
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
		case OPT_MAX_CLIENT_VMAS:
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
			else if (c == OPT_MAX_CLIENT_VMAS)
				opt->max_client_vmas = (unsigned)n;
			else
				opt->max_children = (unsigned)n;
			break;
		default:
			if (!option_user_quota(c, optarg, &opt->user))
				break;
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
 * Every client costs a socket, a pidfd, a uffd, a pagemap and an smaps fd,
 * and each of its unnamed children a uffd; a few more are the daemon's
 * own.  Short of that, a busy daemon would refuse work with EMFILE: say so
 * at start.
 */
static void raise_nofile(const struct options *opt)
{
	uint64_t need = (uint64_t)opt->max_conns * (5 + opt->max_children) + 32;
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

/*
 * Who --user names, looked up before anything is made: a name that is
 * unknown, root, or one we cannot become stops the start here.
 */
static int resolve_user(struct run_as *u)
{
	struct passwd *pw;

	if (!u->name)
		return 0;
	errno = 0;
	pw = getpwnam(u->name);
	if (!pw) {
		log_err("--user %s: %s", u->name,
			errno ? strerror(errno) : "no such user");
		return -ENOENT;
	}
	if (pw->pw_uid == 0) {
		log_err("--user %s: that is uid 0; name a service user", u->name);
		return -EINVAL;
	}
	if (geteuid() != 0 && geteuid() != pw->pw_uid) {
		log_err("--user %s: running as uid %u, only root may become "
			"uid %u", u->name, (unsigned)geteuid(),
			(unsigned)pw->pw_uid);
		return -EPERM;
	}
	u->uid = pw->pw_uid;
	u->gid = pw->pw_gid;
	return 0;
}

/*
 * After the socket and /proc/kpageflags are open, which need root or the
 * capabilities systemd gave.  Asked to leave root, failing is fatal: never
 * serve as root by surprise.  Otherwise, as before, a daemon that cannot
 * trim its capabilities says so and runs with what it has.
 */
static int drop_privileges(void)
{
	int ret;

	if (run_as.name && geteuid() != run_as.uid) {
		ret = caps_become(run_as.uid, run_as.gid);
		if (ret) {
			log_err("cannot become user %s (uid %u): %s; not serving "
				"as root", run_as.name, (unsigned)run_as.uid,
				strerror(-ret));
			return ret;
		}
		log_info("running as user %s (uid %u, gid %u)", run_as.name,
			 (unsigned)run_as.uid, (unsigned)run_as.gid);
		return 0;
	}
	ret = caps_drop();
	if (ret)
		log_warn("cannot drop capabilities (%s): running with what we have",
			 strerror(-ret));
	if (geteuid() == 0)
		log_info("running as root (--user NAME would leave it)");
	return 0;
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
	ret = drop_privileges();
	if (ret)
		return ret;
	/* The loop thread serves everyone: nothing a client does may hold it. */
	cg__touch_isolate();
	ret = cg__uffd_bound_reads();
	if (ret) {
		log_err("cannot bound reads of client uffds: %s", strerror(-ret));
		return ret;
	}
	srv->loop = uv_default_loop();
	srv->dispatch = request_dispatch;
	srv->stream = request_stream;
	srv->conn_gone = request_conn_gone;
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
			.limits = { .max_bytes = 256ULL << 30, .max_regions = 4096,
				    .max_pins = 4096 },
			.max_conns = 1024,
			.max_conns_per_user = 256,
			.hello_timeout_ms = 10000,
			.max_children = 64,
			.max_client_vmas = 16384,
			.user = USER_QUOTA_DEFAULTS,
		},
	};
	/* First, before anything of ours could take one of their numbers. */
	int ret = close_inherited_fds();

	if (ret)
		log_warn("cannot close inherited fds: %s", strerror(-ret));
	if (parse_args(argc, argv, &srv.opt))
		return 2;
	log_set_verbose(srv.opt.verbose);
	/* A client's VMAs cost each read of its smaps: docs/security.md. */
	cg__smaps_limit(srv.opt.max_client_vmas);
	if (resolve_user(&run_as))
		return 1;
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
