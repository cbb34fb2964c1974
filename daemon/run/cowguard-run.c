// SPDX-License-Identifier: MIT
/*
 * cowguard-run: run a program that was not written for cowguard with the
 * preload shim (libcowguard-preload.so, lib/preload/), which pins what the
 * program hands to vmsplice, zero-copy sends, io_uring and libibverbs.
 *
 *   cowguard-run [--mode auto|daemon|embedded] [--hooks LIST] [--strict]
 *                [--check] [--log FILE] [--no-inherit] [--restore IMAGE]
 *                [--] CMD [ARG...]
 *
 * It sets the environment the shim reads (LD_PRELOAD, appended to one
 * already set, and COWGUARD_*), learns once what an O_DIRECT write does
 * here (COWGUARD_ODIRECT), and execs CMD.  --check runs CMD as far as
 * its libraries are loaded and reports which hooks it can reach.
 * --restore starts CMD on the memory of a snapshot image
 * (lib/preload/restore.c).
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "kernel/odirect.h"

#ifndef CG_PRELOAD_PATH
#define CG_PRELOAD_PATH "/usr/local/lib/libcowguard-preload.so"
#endif

struct run {
	const char *mode, *hooks, *log, *restore;
	bool strict, check, no_inherit;
	char shim[PATH_MAX];
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: cowguard-run [OPTION...] [--] CMD [ARG...]\n"
		"Run CMD with cowguard's preload shim: the pages it hands to\n"
		"vmsplice, MSG_ZEROCOPY sends, io_uring fixed buffers and RDMA\n"
		"memory regions are made its own first.\n"
		"  --mode MODE   auto (default): cowguardd if it serves us, else\n"
		"                unshare without tracking; daemon; embedded\n"
		"                (unshare without tracking)\n"
		"  --hooks LIST  only these hooks: vmsplice,zerocopy,uring,verbs,odirect\n"
		"  --strict      abort where cowguard cannot protect a call\n"
		"  --check       report which hooks CMD can reach, and exit\n"
		"  --log FILE    the shim's lines to FILE (default: stderr)\n"
		"  --no-inherit  CMD's children and exec'd programs run without\n"
		"                the shim\n"
		"  --restore IMAGE  start CMD on the memory of a snapshot: its\n"
		"                regions mapped back where they were before\n"
		"                main() and filled lazily (exit 126 when they\n"
		"                cannot be)\n"
		"  -h, --help    this text\n"
		"The shim: $COWGUARD_PRELOAD, else libcowguard-preload.so beside\n"
		"this program, else %s.\n", CG_PRELOAD_PATH);
}

/* Returns the index of CMD in argv, or -1 (usage error), 0 (--help). */
static int parse(int argc, char **argv, struct run *r)
{
	static const struct option opts[] = {
		{ "mode", required_argument, NULL, 'm' },
		{ "hooks", required_argument, NULL, 'k' },
		{ "strict", no_argument, NULL, 's' },
		{ "check", no_argument, NULL, 'c' },
		{ "log", required_argument, NULL, 'l' },
		{ "no-inherit", no_argument, NULL, 'n' },
		{ "restore", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (strcmp(optarg, "auto") && strcmp(optarg, "daemon") &&
			    strcmp(optarg, "embedded")) {
				fprintf(stderr, "cowguard-run: --mode %s: not auto, "
					"daemon or embedded\n", optarg);
				return -1;
			}
			r->mode = optarg;
			break;
		case 'k': r->hooks = optarg; break;
		case 's': r->strict = true; break;
		case 'c': r->check = true; break;
		case 'l': r->log = optarg; break;
		case 'n': r->no_inherit = true; break;
		case 'r': r->restore = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return -1;
		}
	}
	if (r->restore && r->check) {
		fprintf(stderr, "cowguard-run: --restore and --check: one or "
			"the other\n");
		return -1;
	}
	if (optind >= argc) {
		fprintf(stderr, "cowguard-run: no command to run\n");
		usage(stderr);
		return -1;
	}
	return optind;
}

static bool readable(const char *path)
{
	return path && *path && access(path, R_OK) == 0;
}

/* The shim's path into r->shim; false when there is none to be had. */
static bool find_shim(struct run *r)
{
	const char *env = getenv("COWGUARD_PRELOAD");
	char self[PATH_MAX];
	ssize_t n;

	if (env && *env) {
		snprintf(r->shim, sizeof(r->shim), "%s", env);
		return readable(r->shim);
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = 0;
		snprintf(r->shim, sizeof(r->shim), "%s/libcowguard-preload.so",
			 dirname(self));
		if (readable(r->shim))
			return true;
	}
	snprintf(r->shim, sizeof(r->shim), "%s", CG_PRELOAD_PATH);
	return readable(r->shim);
}

static int set_env(const struct run *r)
{
	const char *old = getenv("LD_PRELOAD");
	char preload[2 * PATH_MAX];

	if (old && *old)
		snprintf(preload, sizeof(preload), "%s %s", old, r->shim);
	else
		snprintf(preload, sizeof(preload), "%s", r->shim);
	return setenv("LD_PRELOAD", preload, 1) ||
	       (r->mode && setenv("COWGUARD_MODE", r->mode, 1)) ||
	       (r->hooks && setenv("COWGUARD_HOOKS", r->hooks, 1)) ||
	       (r->log && setenv("COWGUARD_LOG", r->log, 1)) ||
	       (r->strict && setenv("COWGUARD_STRICT", "1", 1)) ||
	       (r->no_inherit && setenv("COWGUARD_NO_INHERIT", "1", 1)) ||
	       (r->restore && setenv("COWGUARD_RESTORE", r->restore, 1)) ? -errno
	       : 0;
}

/*
 * Whether the kernel unshares before an O_DIRECT write reads a page a fork
 * left shared (lib/kernel/odirect.c), learned once here, before the
 * program runs, for it and all it starts: in the first of these
 * directories that takes an O_DIRECT file.  The shim pins O_DIRECT writes
 * except where this found the kernel to unshare (that filesystem only).
 */
static void learn_odirect(void)
{
	const char *dirs[] = { ".", getenv("TMPDIR"), "/var/tmp", "/tmp" };
	enum cg__odirect what = CG__ODIRECT_UNKNOWN;
	char token[64];
	dev_t dev = 0;

	if (getenv("COWGUARD_ODIRECT"))
		return;
	for (size_t i = 0; i < 4 && what == CG__ODIRECT_UNKNOWN; i++)
		if (dirs[i] && *dirs[i])
			what = cg__odirect_write_in(dirs[i], &dev);
	if (what == CG__ODIRECT_UNKNOWN)
		return;
	cg__odirect_format(token, sizeof(token), what, dev);
	setenv("COWGUARD_ODIRECT", token, 1);
}

/* CMD's file into path, searched in $PATH as execvp() does; false if none. */
static bool find_cmd(const char *cmd, char *path, size_t size)
{
	const char *p = getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin";

	if (strchr(cmd, '/')) {
		snprintf(path, size, "%s", cmd);
		return true;
	}
	while (*p) {
		size_t n = strcspn(p, ":");

		snprintf(path, size, "%.*s/%s", (int)n, p, cmd);
		if (access(path, X_OK) == 0)
			return true;
		p += n + (p[n] == ':');
	}
	return false;
}

/* Whether path is an ELF program with no interpreter: a static binary. */
static bool static_binary(const char *cmd)
{
	char path[PATH_MAX];
	Elf64_Ehdr eh;
	bool interp = false;
	int fd;

	if (!find_cmd(cmd, path, sizeof(path)))
		return false;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	if (pread(fd, &eh, sizeof(eh), 0) == sizeof(eh) &&
	    !memcmp(eh.e_ident, ELFMAG, SELFMAG) &&
	    eh.e_ident[EI_CLASS] == ELFCLASS64) {
		for (int i = 0; i < eh.e_phnum; i++) {
			Elf64_Phdr ph;

			if (pread(fd, &ph, sizeof(ph),
				  (off_t)(eh.e_phoff + (uint64_t)i * eh.e_phentsize)) !=
			    sizeof(ph))
				break;
			interp |= ph.p_type == PT_INTERP;
		}
		close(fd);
		return !interp;
	}
	close(fd);
	return false;
}

/*
 * Whether the dynamic loader runs cmd in secure-execution mode, where it
 * ignores an LD_PRELOAD like ours: set-user-ID, set-group-ID, or file
 * capabilities (ld.so(8)).
 */
static bool secure_exec(const char *cmd)
{
	char path[PATH_MAX];
	struct stat st;

	if (!find_cmd(cmd, path, sizeof(path)) || stat(path, &st))
		return false;
	return (st.st_mode & (S_ISUID | S_ISGID)) ||
	       getxattr(path, "security.capability", NULL, 0) > 0;
}

/* --check: CMD's report on a pipe, printed; 0, or 1 when none came. */
static int check(char **cmd)
{
	char fdstr[16], buf[4096];
	int fds[2], status = 0;
	size_t got = 0;
	ssize_t n;
	pid_t pid;

	if (pipe(fds))
		return 1;
	snprintf(fdstr, sizeof(fdstr), "%d", fds[1]);
	setenv("COWGUARD_CHECK", fdstr, 1);
	pid = fork();
	if (pid == 0) {
		close(fds[0]);
		execvp(cmd[0], cmd);
		fprintf(stderr, "cowguard-run: %s: %s\n", cmd[0], strerror(errno));
		_exit(127);
	}
	close(fds[1]);
	while ((n = read(fds[0], buf, sizeof(buf))) > 0) {
		fwrite(buf, 1, (size_t)n, stdout);
		got += (size_t)n;
	}
	close(fds[0]);
	if (pid > 0)
		waitpid(pid, &status, 0);
	if (got) {
		printf("O_DIRECT writes: %s\n", getenv("COWGUARD_ODIRECT") ?
		       getenv("COWGUARD_ODIRECT") :
		       "unknown here: each is pinned after a fork");
		return 0;
	}
	if (static_binary(cmd[0]))
		printf("%s is a static binary: no hook can reach it (the shim "
		       "is never loaded)\n", cmd[0]);
	else
		printf("%s reported nothing: the shim was not loaded (exit "
		       "status %d)\n", cmd[0], WIFEXITED(status) ?
		       WEXITSTATUS(status) : 128 + WTERMSIG(status));
	return 1;
}

/*
 * --restore: the image is readable, and the shim is loaded into CMD (a
 * static binary never loads it, nor the loader in secure-execution mode):
 * CMD must not run thinking its memory came back.  0, or the exit status.
 */
static int restore_possible(const struct run *r, const char *cmd)
{
	const char *why;

	if (!readable(r->restore)) {
		fprintf(stderr, "cowguard-run: --restore %s: %s\n", r->restore,
			strerror(errno));
		return 2;
	}
	why = static_binary(cmd) ? "a static binary"
	      : secure_exec(cmd) ? "set-user-ID, set-group-ID or given file "
				   "capabilities"
				 : NULL;
	if (why) {
		fprintf(stderr, "cowguard-run: --restore: %s is %s: the shim "
			"that restores is never loaded into it\n", cmd, why);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct run r = { 0 };
	int first = parse(argc, argv, &r), ret;

	if (first <= 0)
		return first ? 2 : 0;
	if (r.restore && (ret = restore_possible(&r, argv[first])))
		return ret;
	if (!find_shim(&r)) {
		fprintf(stderr, "cowguard-run: no preload shim at %s: %s runs "
			"without cowguard\n", r.shim, argv[first]);
		if (r.strict || r.check || r.restore)
			return 1;
	} else if ((ret = set_env(&r))) {
		fprintf(stderr, "cowguard-run: %s\n", strerror(-ret));
		return 1;
	} else {
		learn_odirect();
	}
	if (r.check)
		return check(&argv[first]);
	execvp(argv[first], &argv[first]);
	fprintf(stderr, "cowguard-run: %s: %s\n", argv[first], strerror(errno));
	return errno == ENOENT ? 127 : 126;
}
