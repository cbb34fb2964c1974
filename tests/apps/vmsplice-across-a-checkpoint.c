// SPDX-License-Identifier: MIT
/*
 * A program that knows nothing of cowguard, for CRIU under the preload
 * shim: it hands a buffer to a pipe with vmsplice and reads it back, says
 * so (the file DIR/spliced-1), waits for DIR/go while it is dumped and
 * restored, does it again (DIR/spliced-2), and waits for DIR/quit.  It
 * waits by looking for files: CRIU restores no pipe to a process outside
 * the dump.
 *
 *   vmsplice-across-a-checkpoint DIR
 *
 * Exit status: 0, 2 error, 4 never told to go on (two minutes).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#define LEN (64 * 1024)
#define WAIT_MS (120 * 1000)

static int fail(const char *what)
{
	fprintf(stderr, "vmsplice-across-a-checkpoint: %s: %s\n", what, strerror(errno));
	return 2;
}

/* Through a pipe and back: 0 when all of it came back as it was. */
static int splice_once(char *p)
{
	static char back[LEN];
	struct iovec iov = { p, LEN };
	int pfd[2], ret = -1;

	if (pipe(pfd))
		return -1;
	if (vmsplice(pfd[1], &iov, 1, 0) == LEN && read(pfd[0], back, LEN) == LEN)
		ret = memcmp(back, p, LEN) ? -1 : 0;
	close(pfd[0]);
	close(pfd[1]);
	return ret;
}

static int say(const char *dir, const char *name)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static int wait_for(const char *dir, const char *name)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	for (int ms = 0; access(path, F_OK); ms += 10) {
		if (ms > WAIT_MS)
			return -1;
		usleep(10 * 1000);
	}
	return 0;
}

int main(int argc, char **argv)
{
	char *p;

	if (argc != 2) {
		fprintf(stderr, "usage: vmsplice-across-a-checkpoint DIR\n");
		return 2;
	}
	p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return fail("mmap");
	memset(p, 'A', LEN);
	if (splice_once(p) || say(argv[1], "spliced-1"))
		return fail("the first vmsplice");
	if (wait_for(argv[1], "go"))
		return 4;
	memset(p, 'B', LEN);
	if (splice_once(p) || say(argv[1], "spliced-2"))
		return fail("the second vmsplice");
	return wait_for(argv[1], "quit") ? 4 : 0;
}
