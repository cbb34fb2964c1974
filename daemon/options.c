// SPDX-License-Identifier: MIT
/* Values of cowguardd's command line: numbers with a unit, per-user bounds. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "daemon.h"

int parse_size(const char *s, uint64_t *out)
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

int option_user_quota(int c, const char *arg, struct user_quota *q)
{
	uint64_t n;

	if (c < QUOTA_OPT_BYTES || c > QUOTA_OPT_MEM)
		return -ENOENT;
	if (parse_size(arg, &n) || !n ||
	    ((c == QUOTA_OPT_PINS || c == QUOTA_OPT_CHILDREN) && n > UINT32_MAX)) {
		fprintf(stderr, "cowguardd: bad number '%s'\n", arg);
		return -EINVAL;
	}
	if (c == QUOTA_OPT_BYTES)
		q->max_bytes = n;
	else if (c == QUOTA_OPT_PINS)
		q->max_pins = (uint32_t)n;
	else if (c == QUOTA_OPT_CHILDREN)
		q->max_children = (uint32_t)n;
	else
		q->max_mem = n;
	return 0;
}
