// SPDX-License-Identifier: MIT
/*
 * splice_stale_read: the stale read through a pipe that the kernel does not
 * prevent, and cg_vmsplice() preventing it.
 *
 * Both runs: fill a page with 'A', fork (the child just waits, keeping the
 * page COW-shared), vmsplice the page into a pipe, write 'B' over it in the
 * parent, read the pipe.  With plain vmsplice() the pipe holds a reference
 * to the shared page, the parent's write copies it away, and the pipe
 * returns 'A': what the buffer held before the write.  With cg_vmsplice()
 * the page is made exclusive first, the write lands in the page the pipe
 * holds, and the pipe returns 'B'.
 *
 * Exits 0 when the cowguard run reads 'B' (whatever the plain run reads:
 * a kernel that unshares for vmsplice is good news), 1 otherwise.
 *
 * Usage: splice_stale_read   (no arguments; -h or --help prints the usage)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cowguard.h>
#include <cowguard/splice.h>

#define PAGE 4096

/* A child that keeps the page mapped until go is written, then checks it. */
static pid_t fork_waiting(const volatile char *page, int *go)
{
	int fds[2];
	pid_t pid;
	char c;

	if (pipe(fds))
		return -1;
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		close(fds[1]);
		if (read(fds[0], &c, 1) != 1)
			_exit(2);
		_exit(page[0] == 'A' ? 0 : 3);
	}
	close(fds[0]);
	*go = fds[1];
	return pid;
}

static int release(pid_t pid, int go)
{
	int status;

	if (write(go, "g", 1) != 1)
		return -1;
	close(go);
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static char read_pipe(int fd)
{
	char buf[PAGE];
	ssize_t got = 0, n;

	while (got < PAGE && (n = read(fd, buf + got, PAGE - (size_t)got)) > 0)
		got += n;
	return got == PAGE ? buf[0] : '?';
}

static char *map_page(void)
{
	char *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	memset(p, 'A', PAGE);
	return p;
}

/* Plain vmsplice(): what the pipe reads after the parent's write. */
static char without_cowguard(void)
{
	char *p = map_page();
	int fds[2], go;
	char got = '?';
	pid_t pid;

	if (!p || pipe(fds))
		return '?';
	pid = fork_waiting(p, &go);
	if (pid > 0 && vmsplice(fds[1], &(struct iovec){ p, PAGE }, 1, 0) == PAGE) {
		memset(p, 'B', PAGE);
		got = read_pipe(fds[0]);
	}
	if (pid > 0 && release(pid, go) != 0)
		got = '?';
	close(fds[0]);
	close(fds[1]);
	munmap(p, PAGE);
	return got;
}

/* cg_vmsplice(): the same steps through cowguard. */
static char with_cowguard(struct cg *cg, int *unpin)
{
	struct cg_pin *pin = NULL;
	char *p = map_page();
	int fds[2], go, ret;
	char got = '?';
	ssize_t n;
	pid_t pid;

	if (!p || pipe(fds))
		return '?';
	ret = cg_register(cg, p, PAGE, 0);
	if (ret) {
		fprintf(stderr, "splice_stale_read: cg_register: %s\n", cg_strerror(ret));
		return '?';
	}
	pid = fork_waiting(p, &go);
	n = cg_vmsplice(cg, fds[1], &(struct iovec){ p, PAGE }, 1, 0, &pin);
	if (n == PAGE) {
		memset(p, 'B', PAGE);
		got = read_pipe(fds[0]);
		/* The pipe is drained: its references are gone. */
		*unpin = cg_unpin(pin);
	} else {
		fprintf(stderr, "splice_stale_read: cg_vmsplice: %s\n",
			n < 0 ? cg_strerror((int)n) : "short");
	}
	if (pid > 0 && release(pid, go) != 0)
		got = '?';
	cg_unregister(cg, p, PAGE);
	close(fds[0]);
	close(fds[1]);
	munmap(p, PAGE);
	return got;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: splice_stale_read\n"
		"       splice_stale_read -h | --help\n"
		"\n"
		"Shows the stale read through a pipe after fork(): vmsplice a\n"
		"COW-shared page, write 'B' over it, read the pipe; once plain,\n"
		"once with cg_vmsplice().  Exits 0 when the cowguard run reads 'B',\n"
		"1 otherwise.\n");
}

/* A bad argument: what is wrong and the usage on stderr, exit status 2. */
static void __attribute__((format(printf, 1, 2), noreturn))
bad_usage(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "splice_stale_read: ");
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
	struct cg *cg;
	int unpin = 1, ret;	/* 1: not reached */
	char plain, guarded;

	parse_args(argc, argv);
	plain = without_cowguard();
	printf("without cowguard: vmsplice, then the parent writes 'B': the pipe "
	       "reads '%c'%s\n", plain,
	       plain == 'A' ? "  <- stale: the page the parent wrote was a copy"
			    : plain == 'B' ? "  (this kernel unshares for vmsplice)"
					   : "  (the run failed)");
	ret = cg_open(NULL, 0, &cg);
	if (ret) {
		fprintf(stderr, "splice_stale_read: cg_open: %s\n", cg_strerror(ret));
		return 1;
	}
	guarded = with_cowguard(cg, &unpin);
	printf("with cowguard (%s mode): cg_vmsplice, then the parent writes 'B': "
	       "the pipe reads '%c'; cg_unpin: %s\n",
	       cg_mode(cg) == CG_MODE_DAEMON ? "daemon" : "embedded", guarded,
	       unpin > 0 ? "not reached" : cg_strerror(unpin));
	cg_close(cg);
	return guarded == 'B' && unpin == 0 ? 0 : 1;
}
