// SPDX-License-Identifier: MIT
/*
 * A program that knows nothing of cowguard and keeps its state in an
 * arena at a fixed address (fixed-arena.h), for `cowguard-run --restore`:
 * run on a snapshot of an earlier run's memory, it finds the arena there
 * already (MAP_FIXED_NOREPLACE fails with EEXIST) and checks it.
 *
 *   fixed-arena check SEED [close-loop|close-range|closefrom|dup2-over]
 *
 * The last word has it first drop every descriptor past stderr, as
 * programs that daemonize do: close() of each, close_range(2),
 * closefrom(3) (looked up: glibc 2.34), or dup2() of stdin over each.
 *
 * Exit status: 0 the arena was there and held SEED's pattern (holes
 * zeros), 2 error, 3 a page differs, 4 no arena (mapped afresh), 5 no
 * closefrom() here.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fixed-arena.h"

#define FD_MAX 1024

/* Every descriptor past stderr dropped the way how says: 0, or 5. */
static int drop_fds(const char *how)
{
	void (*closefrom_fn)(int);

	if (!strcmp(how, "close-loop")) {
		for (int fd = 3; fd < FD_MAX; fd++)
			close(fd);
	} else if (!strcmp(how, "close-range")) {
		syscall(SYS_close_range, 3, ~0U, 0);
	} else if (!strcmp(how, "closefrom")) {
		closefrom_fn = (void (*)(int))dlsym(RTLD_DEFAULT, "closefrom");
		if (!closefrom_fn)
			return 5;
		closefrom_fn(3);
	} else {
		for (int fd = 3; fd < FD_MAX; fd++)
			dup2(0, fd);
	}
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t seed;
	void *p;
	long bad;

	if ((argc != 3 && argc != 4) || strcmp(argv[1], "check")) {
		fprintf(stderr, "usage: fixed-arena check SEED "
			"[close-loop|close-range|closefrom|dup2-over]\n");
		return 2;
	}
	seed = strtoull(argv[2], NULL, 0);
	if (argc == 4 && drop_fds(argv[3]))
		return 5;
	p = mmap(ARENA_ADDR, ARENA_LEN, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (p != MAP_FAILED) {
		printf("fixed-arena: no arena at %p: mapped afresh\n", ARENA_ADDR);
		return 4;
	}
	if (errno != EEXIST) {
		perror("fixed-arena: mmap");
		return 2;
	}
	bad = arena_differs(ARENA_ADDR, seed);
	if (bad >= 0) {
		printf("fixed-arena: page %ld differs from seed %#llx's\n", bad,
		       (unsigned long long)seed);
		return 3;
	}
	printf("fixed-arena: the arena at %p is back, %lu KiB as written\n",
	       ARENA_ADDR, ARENA_LEN >> 10);
	return 0;
}
