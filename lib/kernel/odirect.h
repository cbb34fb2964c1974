/* SPDX-License-Identifier: MIT */
/* What an O_DIRECT write does to a page a fork left shared: lib/kernel/odirect.c. */
#ifndef CG_ODIRECT_H
#define CG_ODIRECT_H

#include <stddef.h>
#include <sys/types.h>

enum cg__odirect {
	CG__ODIRECT_UNKNOWN,	/* could not be learned: take it as plain */
	CG__ODIRECT_PLAIN,	/* it reads the shared page (plain reference) */
	CG__ODIRECT_UNSHARES,	/* the kernel gave us our own copy first */
};

/*
 * For the filesystem of directory dir, whose st_dev goes to *dev.  Forks
 * (twice before the kernel probe of lib/kernel/kernel.c has run): for a
 * launcher, not for a program behind its back.
 */
enum cg__odirect cg__odirect_write_in(const char *dir, dev_t *dev);

/*
 * As COWGUARD_ODIRECT says it ("plain", "unshares:DEV"), and back
 * (anything else: UNKNOWN; dev is set for UNSHARES only).
 */
int cg__odirect_format(char *buf, size_t size, enum cg__odirect what,
		       dev_t dev);
enum cg__odirect cg__odirect_parse(const char *s, dev_t *dev);

#endif
