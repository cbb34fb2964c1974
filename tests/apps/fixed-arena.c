// SPDX-License-Identifier: MIT
/*
 * A program that knows nothing of cowguard and keeps its state in an
 * arena at a fixed address (fixed-arena.h), for `cowguard-run --restore`:
 * run on a snapshot of an earlier run's memory, it finds the arena there
 * already (MAP_FIXED_NOREPLACE fails with EEXIST) and checks it.
 *
 *   fixed-arena check SEED
 *
 * Exit status: 0 the arena was there and held SEED's pattern (holes
 * zeros), 2 error, 3 a page differs, 4 no arena (mapped afresh).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "fixed-arena.h"

int main(int argc, char **argv)
{
	uint64_t seed;
	void *p;
	long bad;

	if (argc != 3 || strcmp(argv[1], "check")) {
		fprintf(stderr, "usage: fixed-arena check SEED\n");
		return 2;
	}
	seed = strtoull(argv[2], NULL, 0);
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
