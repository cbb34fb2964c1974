/* SPDX-License-Identifier: MIT */
/* What an O_DIRECT write does to a page a fork left shared: lib/kernel/odirect.c. */
#ifndef CG_ODIRECT_H
#define CG_ODIRECT_H

#include <stdbool.h>

enum cg__odirect {
	CG__ODIRECT_UNKNOWN,	/* could not be learned: take it as plain */
	CG__ODIRECT_PLAIN,	/* it reads the shared page (plain reference) */
	CG__ODIRECT_UNSHARES,	/* the kernel gave us our own copy first */
};

/*
 * For the filesystem fd is on (learned once per filesystem, by doing it).
 * Safe from any thread; the first call on a filesystem forks the process
 * once (a raw clone: lib/kernel/raw_fork.h), and says so in *learned.
 */
enum cg__odirect cg__odirect_write(int fd, bool *learned);

/*
 * The same for the filesystem of directory dir, probed at every call:
 * what cowguard-run learns once for the programs it starts.
 */
enum cg__odirect cg__odirect_write_in(const char *dir);

/* In words, for a log line. */
const char *cg__odirect_name(enum cg__odirect what);
/*
 * As one word for COWGUARD_ODIRECT ("plain", "unshares"), and back
 * (anything else: UNKNOWN).
 */
const char *cg__odirect_token(enum cg__odirect what);
enum cg__odirect cg__odirect_parse(const char *token);

#endif
